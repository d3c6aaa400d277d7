//! The lagtrace user's grants: the lab gives exactly what docs/commands.md's "Grants" section
//! documents, and with them the user cannot write outside its own schema, cannot change
//! its own schema's shape beyond what `init` does, cannot administer the server, and
//! cannot write on a read-only replica. (Every other test shows these grants suffice.)
//! Run against a lab with wider grants, it fails without changing anything.

mod common;

use std::process::Command;

use common::*;

/// Runs one statement as the lagtrace user on `address`; Ok(stdout) or Err(stderr).
fn as_lagtrace(address: &str, statement: &str) -> Result<String, String> {
    let (host, port) = address.split_once(':').unwrap();
    let out = Command::new("mariadb")
        .args(["--no-defaults", "--batch", "--skip-column-names"])
        .args(["-h", host, "-P", port, "-u", "lagtrace", "-e", statement])
        .env("MYSQL_PWD", LAB_PASSWORD)
        .output()
        .expect("run the mariadb client");
    let (stdout, stderr) = texts(&out);
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(stderr)
    }
}

/// A grant line with quoting and the password hash left out, one `PRIVILEGE ON
/// object TO user` per privilege (the server merges a user's grants on one object into
/// one line), for comparing.
fn normalized(grant: &str) -> Vec<String> {
    let grant = grant.split(" IDENTIFIED BY").next().unwrap();
    let grant = grant.replace(['`', '\''], "");
    let rest = grant.trim().trim_start_matches("GRANT ");
    let (privileges, target) = rest.split_once(" ON ").expect("GRANT ... ON ...");
    privileges
        .split(", ")
        .map(|p| format!("{} ON {target}", p.trim()))
        .collect()
}

/// The GRANT lines of docs/commands.md's "Grants" section, for the lab's host.
fn documented() -> Vec<String> {
    let doc = std::fs::read_to_string(repo_root().join("docs/commands.md")).unwrap();
    let section = &doc[doc
        .find("### Grants")
        .expect("docs/commands.md has a Grants section")..];
    let block = &section[section.find("```sql").unwrap()..];
    let block = &block[..block[3..].find("```").unwrap()];
    block
        .lines()
        .filter(|l| l.starts_with("GRANT "))
        .flat_map(|l| normalized(&l.trim_end_matches(';').replace("10.0.0.5", "127.0.0.1")))
        .collect()
}

#[test]
fn the_lab_grants_exactly_what_the_docs_document() {
    ensure_lab();
    let shown = as_lagtrace(PRIMARY, "SHOW GRANTS").expect("SHOW GRANTS");
    let mut shown: Vec<String> = shown
        .lines()
        .flat_map(normalized)
        .filter(|g| !g.starts_with("USAGE ON *.*"))
        .collect();
    let mut documented = documented();
    assert_eq!(documented.len(), 7, "{documented:?}");
    shown.sort();
    documented.sort();
    assert_eq!(shown, documented);
}

#[test]
fn the_lagtrace_user_cannot_write_outside_its_schema_or_administer() {
    ensure_lab();
    // The user works where it should (so failures below are privileges, not a login).
    as_lagtrace(PRIMARY, "SELECT COUNT(*) FROM lagtrace.heartbeat").expect("read its row");
    // Each is harmless should it be allowed after all (a no-op, or an error other than
    // "access denied" that fails the test): a lab must not be damaged by its test.
    let denied = [
        "INSERT INTO lab.load (v) VALUES (1)",
        "UPDATE lab.load SET v = v WHERE id = 0",
        "DELETE FROM lab.load WHERE id = 0",
        "SELECT COUNT(*) FROM lab.load",
        "CREATE TABLE lab.load (i INT)",
        "CREATE DATABASE lab",
        "DROP DATABASE lagtrace_no_such_schema",
        "DROP TABLE lagtrace.no_such_table",
        "TRUNCATE TABLE lagtrace.no_such_table",
        "ALTER TABLE lagtrace.no_such_table ADD COLUMN x INT",
        "DELETE FROM lagtrace.heartbeat WHERE cluster = 'no such cluster'",
        "SELECT COUNT(*) FROM mysql.user",
        "SET GLOBAL read_only = 0",
        "CREATE USER 'lagtrace'@'127.0.0.1'",
        "GRANT SELECT ON lab.* TO 'no_such_user'@'127.0.0.1'",
        "CHANGE MASTER 'lagtrace_no_such' TO MASTER_HOST='127.0.0.9'",
    ];
    let mut allowed = Vec::new();
    for statement in denied {
        match as_lagtrace(PRIMARY, statement) {
            Ok(_) => allowed.push(statement),
            Err(e) => assert!(
                [
                    "ERROR 1044",
                    "ERROR 1142",
                    "ERROR 1227",
                    "ERROR 1095",
                    "ERROR 1143"
                ]
                .iter()
                .any(|code| e.contains(code)),
                "{statement}: not an access error: {e}"
            ),
        }
    }
    assert!(
        allowed.is_empty(),
        "allowed to the lagtrace user: {allowed:?}"
    );
    // On a replica even its own row is read-only (read_only=ON, no SUPER).
    for (_, replica) in REPLICAS {
        let e = as_lagtrace(
            replica,
            "UPDATE lagtrace.heartbeat SET seq = seq WHERE cluster = 'no such cluster'",
        )
        .expect_err("a write on a replica");
        assert!(e.contains("ERROR 1290"), "{replica}: {e}");
    }
}
