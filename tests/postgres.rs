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

/// Until lagtrace probes PostgreSQL, a command that would connect to a PostgreSQL
/// cluster says so in one line and exits as for a bad config (2; `check` 3, Nagios'
/// UNKNOWN), instead of speaking MySQL to it.
#[test]
fn a_postgres_cluster_is_refused_in_one_line_until_it_is_probed() {
    let dir = TempDir::new("pg-refused");
    let config = pg_config(&dir, "it_pg");
    for (command, code) in [("init", 2), ("check", 3), ("record", 2)] {
        let out = lagtrace()
            .args([command, "-c"])
            .arg(&config)
            .env("LAGTRACE_IT_PASSWORD", LAB_PASSWORD)
            .output()
            .unwrap();
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(code), "{command}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
        assert!(
            stderr.contains("kind = \"postgres\""),
            "{command}: {stderr}"
        );
    }
}
