//! `lagtrace init` against the lab's real servers, run as a user would.

mod common;

use common::{LAB_PASSWORD, PRIMARY, REPLICAS, TempDir, ensure_lab, lab_config, lagtrace, texts};

fn init(dir: &TempDir, config: &str, password: &str) -> std::process::Output {
    let path = dir.write("lagtrace.toml", config);
    lagtrace()
        .args(["init", "--wait", "5s", "-c"])
        .arg(path)
        .env("LAGTRACE_IT_PASSWORD", password)
        .output()
        .unwrap()
}

#[test]
fn init_twice_is_idempotent() {
    ensure_lab();
    let dir = TempDir::new("init-twice");
    let config = lab_config("it_twice", PRIMARY, &REPLICAS, "LAGTRACE_IT_PASSWORD");
    for run in 1..=2 {
        let out = init(&dir, &config, LAB_PASSWORD);
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "run {run}: {stdout}{stderr}");
        assert_eq!(stdout.matches(": OK, ").count(), 3, "run {run}: {stdout}");
        assert!(
            stdout.contains("primary it_twice (127.0.0.1:13306): OK"),
            "{stdout}"
        );
        assert!(
            stdout.contains("replica it_twice/r1 (127.0.0.1:13307): OK"),
            "{stdout}"
        );
        assert!(
            stdout.contains("replica it_twice/r2 (127.0.0.1:13308): OK"),
            "{stdout}"
        );
        if run == 2 {
            assert!(stdout.contains("schema already at version 1"), "{stdout}");
        }
    }
}

#[test]
fn init_with_password_file() {
    ensure_lab();
    let dir = TempDir::new("init-pwfile");
    let pw = dir.write("password", &format!("{LAB_PASSWORD}\n"));
    let config = lab_config("it_pwfile", PRIMARY, &REPLICAS, "UNUSED").replace(
        "password_env = \"UNUSED\"",
        &format!("password_file = \"{}\"", pw.display()),
    );
    let out = init(&dir, &config, "");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
}

#[test]
fn init_pointed_at_a_replica_refuses_to_write() {
    ensure_lab();
    let dir = TempDir::new("init-replica");
    let config = lab_config(
        "it_replica",
        "127.0.0.1:13307",
        &[("r2", "127.0.0.1:13308")],
        "LAGTRACE_IT_PASSWORD",
    );
    let out = init(&dir, &config, LAB_PASSWORD);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "primary it_replica (127.0.0.1:13307): FAILED, refusing to write: it is a replica of 127.0.0.1:13306"
        ),
        "{stdout}"
    );
    assert_eq!(
        stderr.trim_end(),
        "lagtrace: init failed on 2 of 2 hosts (see the lines above)"
    );
}

#[test]
fn wrong_password_is_access_denied_and_never_printed() {
    ensure_lab();
    let dir = TempDir::new("init-badpw");
    let config = lab_config("it_badpw", PRIMARY, &REPLICAS, "LAGTRACE_IT_PASSWORD");
    let secret = "not-the-password-4711";
    let out = init(&dir, &config, secret);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "primary it_badpw (127.0.0.1:13306): FAILED, access denied for user lagtrace"
        ),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("FAILED, access denied").count(),
        3,
        "{stdout}"
    );
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "password leaked"
    );
}

#[test]
fn host_that_refuses_is_reported_and_others_still_checked() {
    ensure_lab();
    let dir = TempDir::new("init-refused");
    // Nothing listens on 13399 (the lab uses 13306-13308 only).
    let config = lab_config(
        "it_refused",
        "127.0.0.1:13399",
        &REPLICAS,
        "LAGTRACE_IT_PASSWORD",
    );
    let out = init(&dir, &config, LAB_PASSWORD);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "primary it_refused (127.0.0.1:13399): FAILED, cannot connect: connection refused"
        ),
        "{stdout}"
    );
    // The replicas were reached: their lines explain that the row never arrived.
    assert_eq!(
        stdout
            .matches("heartbeat row for cluster it_refused is not visible")
            .count(),
        2,
        "{stdout}"
    );
}
