//! PostgreSQL clusters (`kind = "postgres"`) against the PostgreSQL lab (`make up
//! DB=postgres`: a primary and two streaming standbys on 127.0.0.1:15432-15434).

mod common;

use common::*;

/// The PostgreSQL lab's primary and standbys, as the tests name them.
const PG_PRIMARY: &str = "127.0.0.1:15432";
const PG_STANDBYS: [(&str, &str); 2] = [("s1", "127.0.0.1:15433"), ("s2", "127.0.0.1:15434")];

/// A config with one PostgreSQL cluster on the lab, the password from
/// LAGTRACE_IT_PASSWORD.
fn pg_config(dir: &TempDir, cluster: &str) -> std::path::PathBuf {
    let standbys: Vec<String> = PG_STANDBYS
        .iter()
        .map(|(n, a)| format!("{n} = \"{a}\""))
        .collect();
    dir.write(
        "lagtrace.toml",
        &format!(
            "[connection]\nuser = \"lagtrace\"\npassword_env = \"LAGTRACE_IT_PASSWORD\"\n\n\
             [[cluster]]\nname = \"{cluster}\"\nkind = \"postgres\"\nprimary = \"{PG_PRIMARY}\"\nreplicas = {{ {} }}\n",
            standbys.join(", ")
        ),
    )
}

/// Runs `lagtrace ARGS` with the lab's password; returns the exit code, stdout, stderr.
fn run(args: &[&str], config: &std::path::Path, password: &str) -> (Option<i32>, String, String) {
    let out = lagtrace()
        .args(args)
        .arg("-c")
        .arg(config)
        .env("LAGTRACE_IT_PASSWORD", password)
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    (out.status.code(), stdout, stderr)
}

/// `init` creates the schema and the rows on the primary and finds them on both
/// standbys; a second `init` changes nothing.
#[test]
fn init_creates_the_schema_and_the_standbys_show_the_row() {
    ensure_pg_lab();
    let dir = TempDir::new("pg-init");
    let config = pg_config(&dir, "it_pg_init");
    let (code, stdout, stderr) = run(&["init"], &config, LAB_PASSWORD);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("primary it_pg_init (127.0.0.1:15432): OK, schema "),
        "{stdout}"
    );
    assert!(
        lines[0].contains("heartbeat rows for cluster it_pg_init"),
        "{stdout}"
    );
    for (line, (name, address)) in lines[1..].iter().zip(PG_STANDBYS) {
        assert!(
            line.starts_with(&format!("replica it_pg_init/{name} ({address}): OK, lagtrace reads lagtrace.heartbeat (cluster it_pg_init, seq 0)")),
            "{stdout}"
        );
    }
    let (code, stdout, _) = run(&["init"], &config, LAB_PASSWORD);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("schema already at version 1"), "{stdout}");
}

/// `init` never writes to a standby given as the primary, and names why each host
/// failed: a standby, a server that is not one, a wrong password, nothing listening.
#[test]
fn init_refuses_a_standby_as_primary_and_says_why_each_host_failed() {
    ensure_pg_lab();
    let dir = TempDir::new("pg-init-bad");
    let swapped = dir.write(
        "swapped.toml",
        &format!(
            "[connection]\nuser = \"lagtrace\"\npassword_env = \"LAGTRACE_IT_PASSWORD\"\n\n\
             [[cluster]]\nname = \"it_pg_swap\"\nkind = \"postgres\"\nprimary = \"{}\"\n\
             replicas = {{ s1 = \"{PG_PRIMARY}\", s9 = \"127.0.0.1:15499\" }}\n",
            PG_STANDBYS[0].1
        ),
    );
    let (code, stdout, stderr) = run(&["init", "--wait", "1s"], &swapped, LAB_PASSWORD);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("FAILED, refusing to write: it is in recovery (a standby)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("it_pg_swap/s1 (127.0.0.1:15432): FAILED, not a standby"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "it_pg_swap/s9 (127.0.0.1:15499): FAILED, cannot connect: connection refused"
        ),
        "{stdout}"
    );
    assert!(stderr.contains("init failed on 3 of 3 hosts"), "{stderr}");

    let config = pg_config(&dir, "it_pg_pw");
    let (code, stdout, _) = run(&["init"], &config, "not-the-password");
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("FAILED, access denied for user lagtrace"),
        "{stdout}"
    );
    assert!(!stdout.contains("not-the-password"), "{stdout}");
}

/// Until lagtrace probes PostgreSQL, `check` and `record` on a PostgreSQL cluster say
/// so in one line and exit as for a bad config (`record` 2, `check` 3: Nagios'
/// UNKNOWN), instead of speaking MySQL to it.
#[test]
fn check_and_record_refuse_a_postgres_cluster_in_one_line() {
    let dir = TempDir::new("pg-refused");
    let config = pg_config(&dir, "it_pg");
    for (command, expected) in [("check", 3), ("record", 2)] {
        let (code, _, stderr) = run(&[command], &config, LAB_PASSWORD);
        assert_eq!(code, Some(expected), "{command}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
        assert!(
            stderr.contains("kind = \"postgres\""),
            "{command}: {stderr}"
        );
    }
}
