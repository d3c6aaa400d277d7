//! The password never leaves the place it was given in: every command, run against the
//! lab with the password from an environment variable and from a file, at the highest
//! verbosity and in both log formats, is checked for it in its argv
//! (`/proc/<pid>/cmdline`), its stdout and stderr, and the store file's bytes; a wrong
//! password is checked for in the errors it causes.

mod common;

use std::path::Path;

use common::{LAB_PASSWORD, PRIMARY, REPLICAS, TempDir, ensure_lab, lab_config, lagtrace, texts};

/// Fails the test when `haystack` holds the password, naming where.
fn assert_clean(what: &str, haystack: &[u8], password: &str) {
    let found = haystack
        .windows(password.len())
        .any(|w| w == password.as_bytes());
    assert!(!found, "the password appears in {what}");
}

/// Runs lagtrace with `args` and the lab password in `LAGTRACE_IT_PASSWORD`; checks its
/// output for `password` and returns (exit code, stdout + stderr).
fn run_checked(args: &[&str], password: &str) -> (Option<i32>, String) {
    let out = lagtrace()
        .args(args)
        .env("LAGTRACE_IT_PASSWORD", LAB_PASSWORD)
        .output()
        .unwrap();
    assert_clean(&format!("the stdout of {args:?}"), &out.stdout, password);
    assert_clean(&format!("the stderr of {args:?}"), &out.stderr, password);
    let (stdout, stderr) = texts(&out);
    (out.status.code(), format!("{stdout}{stderr}"))
}

/// Records for a few seconds at -vv, checking the running recorder's argv, then its
/// output; returns the store written.
fn record_checked(dir: &TempDir, config: &Path, format: &str) -> std::path::PathBuf {
    let store = dir.path().join(format!("{format}.redb"));
    let child = lagtrace()
        .args([
            "-vv",
            "--log-format",
            format,
            "record",
            "--duration",
            "3s",
            "-c",
        ])
        .arg(config)
        .arg("--store")
        .arg(&store)
        .env("LAGTRACE_IT_PASSWORD", LAB_PASSWORD)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap();
    assert!(
        !cmdline.is_empty(),
        "read the recorder's argv while it runs"
    );
    assert_clean("the recorder's argv", &cmdline, LAB_PASSWORD);
    let out = child.wait_with_output().unwrap();
    assert_clean("record's stdout", &out.stdout, LAB_PASSWORD);
    assert_clean("record's stderr", &out.stderr, LAB_PASSWORD);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "record failed: {stdout}{stderr}");
    assert!(stdout.contains("recorded"), "{stdout}{stderr}");
    store
}

#[test]
fn the_password_is_in_no_argv_output_log_or_store() {
    ensure_lab();
    let dir = TempDir::new("secrets");
    // From an environment variable...
    let from_env = dir.write(
        "env.toml",
        &lab_config("secrets", PRIMARY, &REPLICAS, "LAGTRACE_IT_PASSWORD"),
    );
    // ... and from a file.
    let password_file = dir.write("password", &format!("{LAB_PASSWORD}\n"));
    let from_file = dir.write(
        "file.toml",
        &lab_config("secrets", PRIMARY, &REPLICAS, "UNUSED").replace(
            "password_env = \"UNUSED\"",
            &format!("password_file = \"{}\"", password_file.display()),
        ),
    );
    for config in [&from_env, &from_file] {
        let c = config.to_str().unwrap();
        let (code, text) = run_checked(&["-vv", "init", "-c", c], LAB_PASSWORD);
        assert_eq!(code, Some(0), "{text}");
        let (code, text) = run_checked(&["-vv", "check", "-c", c], LAB_PASSWORD);
        assert_eq!(code, Some(0), "{text}");
    }
    let mut stores = Vec::new();
    for (config, format) in [(&from_env, "text"), (&from_file, "json")] {
        let store = record_checked(&dir, config, format);
        let bytes = std::fs::read(&store).unwrap();
        assert!(bytes.len() > 10_000, "a store with data");
        assert_clean("the store file", &bytes, LAB_PASSWORD);
        stores.push(store);
    }
    let svg = dir.path().join("lag.svg");
    for store in &stores {
        let s = store.to_str().unwrap();
        for args in [
            vec!["-vv", "analyze", "--store", s, "--format", "json"],
            vec!["-vv", "export", "--store", s],
            vec!["-vv", "plot", "--store", s, "--out", svg.to_str().unwrap()],
            vec!["-vv", "replay", "--store", s],
        ] {
            let (code, text) = run_checked(&args, LAB_PASSWORD);
            assert_eq!(code, Some(0), "{args:?}: {text}");
        }
        assert_clean("the SVG", &std::fs::read(&svg).unwrap(), LAB_PASSWORD);
    }
}

#[test]
fn a_wrong_password_is_not_repeated_in_the_errors_it_causes() {
    ensure_lab();
    let dir = TempDir::new("secrets-wrong");
    let wrong = "not-the-lab-password-7f3a";
    let config = dir.write(
        "lagtrace.toml",
        &lab_config("secrets", PRIMARY, &REPLICAS, "WRONG_PASSWORD"),
    );
    let c = config.to_str().unwrap();
    for args in [
        vec!["-vv", "init", "-c", c],
        vec!["-vv", "check", "-c", c],
        vec!["-vv", "record", "--duration", "2s", "-c", c, "--store"],
    ] {
        let mut cmd = lagtrace();
        cmd.args(&args);
        if args.contains(&"record") {
            cmd.arg(dir.path().join("wrong.redb"));
        }
        let out = cmd.env("WRONG_PASSWORD", wrong).output().unwrap();
        assert_clean(&format!("the stdout of {args:?}"), &out.stdout, wrong);
        assert_clean(&format!("the stderr of {args:?}"), &out.stderr, wrong);
        let (stdout, stderr) = texts(&out);
        let text = format!("{stdout}{stderr}");
        assert!(
            text.to_lowercase().contains("access denied")
                || text.contains("access_denied")
                || text.contains("denied"),
            "{args:?} says why it failed: {text}"
        );
    }
    let store = std::fs::read(dir.path().join("wrong.redb")).unwrap();
    assert_clean("the store file", &store, wrong);
}
