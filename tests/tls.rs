//! TLS (issue 31) against the labs' real servers, MariaDB and PostgreSQL: every server
//! presents the lab CA's certificate for 127.0.0.1 (`scripts/lab-certs.sh`), and
//! `lagtrace_tls` may connect only over TLS (MariaDB `REQUIRE SSL`, PostgreSQL
//! `hostssl`). Verified connections for init, record (both probes), check, and the
//! servers' own word that the sessions are encrypted; the wrong CA, a certificate for
//! another name, an expired one, `required` against a server without TLS (a proxy that
//! hides it) and the TLS-only user without TLS each fail in one line naming the host,
//! the others go on; `preferred` falls back to plain text and says so; a user that
//! needs a client certificate gets in with `tls_cert` and `tls_key` only.

mod common;

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::proxy::{Speaks, tls_hiding_line};
use common::*;
use serde_json::Value;

const PG_PRIMARY: &str = "127.0.0.1:15432";
const PG_STANDBYS: [(&str, &str); 2] = [("s1", "127.0.0.1:15433"), ("s2", "127.0.0.1:15434")];

/// A file of the lab's TLS directory (`.lab/tls`).
fn lab_tls(file: &str) -> PathBuf {
    repo_root().join(".lab/tls").join(file)
}

/// A config: one cluster of `kind` (`mysql` or `postgres`) named `cluster`, as
/// `user`, with the `[connection]` TLS lines `tls`; `record` lines and `[http]` on
/// `port` when given.
fn config(
    kind: &str,
    (cluster, primary, replicas): (&str, &str, &[(&str, &str)]),
    (user, tls): (&str, &str),
    record: Option<(&Path, u16)>,
) -> String {
    let replicas: Vec<String> = replicas
        .iter()
        .map(|(n, a)| format!("{n} = \"{a}\""))
        .collect();
    // On PostgreSQL each role has a schema of its own (the other's tables are not its).
    let schema = if kind == "postgres" && user != "lagtrace" {
        format!("database = \"{user}\"\n")
    } else {
        String::new()
    };
    let mut text = format!(
        "[connection]\nuser = \"{user}\"\npassword_env = \"LAGTRACE_IT_PASSWORD\"\n\
         connect_timeout = \"2s\"\n{schema}{tls}\n\n\
         [[cluster]]\nname = \"{cluster}\"\nkind = \"{kind}\"\nprimary = \"{primary}\"\n\
         replicas = {{ {} }}\n",
        replicas.join(", ")
    );
    if let Some((store, port)) = record {
        text.push_str(&format!(
            "\n[record]\ninterval = \"10ms\"\nstore = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n",
            store.display()
        ));
    }
    text
}

fn verify_identity() -> String {
    format!(
        "tls = \"verify_identity\"\ntls_ca = \"{}\"",
        lab_tls("ca.pem").display()
    )
}

/// The lines of `text` that name `address`.
fn lines_of<'a>(text: &'a str, address: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(address)).collect()
}

/// Waits until `/status` shows every replica of `names` with a probe and a lag.
fn wait_measuring(port: u16, names: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let doc = http(port, "GET", "/status", &[]).map_or(Value::Null, |r| r.json());
        let all = names.iter().all(|n| {
            doc["clusters"][0]["replicas"].as_array().is_some_and(|rs| {
                rs.iter()
                    .any(|r| r["replica"] == *n && !r["probe"].is_null() && !r["lag_ms"].is_null())
            })
        });
        if all {
            return doc;
        }
        assert!(Instant::now() < deadline, "not measuring {names:?}: {doc}");
        sleep(Duration::from_millis(100));
    }
}

/// `Ssl_accepts` of a MariaDB lab node: TLS handshakes it has accepted.
fn ssl_accepts(node: &str) -> u64 {
    root_sql(node, "SHOW GLOBAL STATUS LIKE 'Ssl_accepts'")
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The TLS verdict `/status` gives the replica `name` (or the primary when `None`).
fn tls_of(doc: &Value, name: Option<&str>) -> Value {
    let c = &doc["clusters"][0];
    match name {
        None => c["primary"]["tls"].clone(),
        Some(n) => c["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["replica"] == n)
            .map_or(Value::Null, |r| r["tls"].clone()),
    }
}

#[test]
fn mariadb_verify_identity_with_a_tls_only_user_records_checks_and_streams() {
    let _lab = take_lab();
    let dir = TempDir::new("tls-maria");
    let store = dir.path().join("s.redb");
    let port = free_port();
    let text = config(
        "mysql",
        ("it_tls", PRIMARY, &REPLICAS),
        ("lagtrace_tls", &format!("{}\n", verify_identity())),
        Some((&store, port)),
    )
    .replace("[record]\n", "[record]\nprobe = \"binlog\"\n");
    let path = dir.write("lagtrace.toml", &text);
    let (code, out) = run_lab(&["init"], &path);
    assert_eq!(code, Some(0), "{out}");
    let verified = "connection: TLS, certificate verified for the server's name (verify_identity)";
    assert_eq!(out.matches(verified).count(), 3, "{out}");
    let before: Vec<u64> = ["primary", "replica1", "replica2"]
        .map(ssl_accepts)
        .to_vec();
    let recorder = Recorder::start(&path);
    let doc = wait_measuring(port, &["r1", "r2"]);
    sleep(Duration::from_secs(2));
    let (code, checked) = run_lab(&["check"], &path);
    let doc_after = http(port, "GET", "/status", &[]).unwrap().json();
    let after: Vec<u64> = ["primary", "replica1", "replica2"]
        .map(ssl_accepts)
        .to_vec();
    let (stopped, log) = recorder.stop();
    assert_eq!(stopped, Some(0), "{log}");
    assert_eq!(code, Some(0), "check: {checked}");
    // Every server took TLS handshakes meanwhile; the user can connect no other way.
    for (i, node) in ["primary", "replica1", "replica2"].iter().enumerate() {
        assert!(
            after[i] > before[i],
            "{node}: Ssl_accepts {} -> {}",
            before[i],
            after[i]
        );
    }
    for name in [None, Some("r1"), Some("r2")] {
        let tls = tls_of(&doc_after, name);
        assert_eq!(tls["encrypted"], true, "{name:?}: {doc_after}");
        assert_eq!(tls["verified"], "identity", "{name:?}: {tls}");
    }
    for r in ["r1", "r2"] {
        let probe = &doc["clusters"][0]["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["replica"] == r)
            .unwrap()["probe"];
        assert_eq!(probe, "binlog", "{doc}");
    }
    let rows = export_rows(&store);
    for r in ["r1", "r2"] {
        let streamed = rows
            .iter()
            .filter(|row| row.replica == r && row.probe == "binlog" && row.lag_ms.is_some())
            .count();
        assert!(streamed > 100, "{r}: {streamed} streamed rounds");
    }
    assert!(!log.contains(LAB_PASSWORD) && !out.contains(LAB_PASSWORD));
}

/// Every session of `user` on the PostgreSQL node at `port`, as (encrypted, all):
/// pg_stat_ssl, read as lagtrace (pg_monitor).
fn pg_ssl_sessions(port: &str, user: &str) -> (u64, u64) {
    let out = std::process::Command::new("psql")
        .args(["-X", "-A", "-t", "-F", " ", "-h", "127.0.0.1", "-p", port])
        .args(["-U", "lagtrace", "-d", "postgres", "-c"])
        .arg(format!(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.usename = '{user}'"
        ))
        .env("PGPASSWORD", LAB_PASSWORD)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut n = text
        .split_whitespace()
        .map(|v| v.parse::<u64>().unwrap_or(0));
    (n.next().unwrap_or(0), n.next().unwrap_or(0))
}

#[test]
fn postgres_verify_full_with_a_hostssl_only_role_records_and_checks() {
    ensure_pg_lab();
    let dir = TempDir::new("tls-pg");
    let store = dir.path().join("s.redb");
    let port = free_port();
    // libpq's name for verify_identity.
    let tls = format!(
        "tls = \"verify-full\"\ntls_ca = \"{}\"\n",
        lab_tls("ca.pem").display()
    );
    let text = config(
        "postgres",
        ("it_tls_pg", PG_PRIMARY, &PG_STANDBYS),
        ("lagtrace_tls", &tls),
        Some((&store, port)),
    );
    let path = dir.write("lagtrace.toml", &text);
    let (code, out) = run_lab(&["init"], &path);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out.matches("certificate verified for the server's name")
            .count(),
        3,
        "{out}"
    );
    let recorder = Recorder::start(&path);
    wait_measuring(port, &["s1", "s2"]);
    sleep(Duration::from_secs(1));
    let sessions: Vec<(u64, u64)> = ["15432", "15433", "15434"]
        .iter()
        .map(|p| pg_ssl_sessions(p, "lagtrace_tls"))
        .collect();
    let (code, checked) = run_lab(&["check"], &path);
    let doc = http(port, "GET", "/status", &[]).unwrap().json();
    let (stopped, log) = recorder.stop();
    assert_eq!(stopped, Some(0), "{log}");
    assert_eq!(code, Some(0), "check: {checked}");
    // The servers say so: every session of the role is encrypted (pg_stat_ssl).
    for (p, (encrypted, all)) in ["15432", "15433", "15434"].iter().zip(&sessions) {
        assert!(
            *all >= 1 && encrypted == all,
            "{p}: {encrypted} of {all} sessions encrypted"
        );
    }
    for name in [None, Some("s1"), Some("s2")] {
        assert_eq!(
            tls_of(&doc, name)["verified"],
            "identity",
            "{name:?}: {doc}"
        );
    }
    let rows = export_rows(&store);
    for s in ["s1", "s2"] {
        let n = rows
            .iter()
            .filter(|row| row.replica == s && row.lag_ms.is_some())
            .count();
        assert!(n > 100, "{s}: {n} rounds");
    }
    assert!(!log.contains(LAB_PASSWORD));
}

/// The wrong CA, a certificate for another name, and the TLS-only user without TLS:
/// one line per host naming it and the reason, exit 1, no password anywhere.
#[test]
fn the_wrong_ca_another_name_or_no_tls_for_a_tls_only_user_fail_in_one_line_per_host() {
    let _lab = take_lab();
    ensure_pg_lab();
    let dir = TempDir::new("tls-fail");
    let cases = [
        (
            format!(
                "tls = \"verify_identity\"\ntls_ca = \"{}\"",
                lab_tls("other-ca.pem").display()
            ),
            "tls: the server's certificate is not signed by a trusted CA",
        ),
        (
            format!("{}\ntls_server_name = \"db.example\"", verify_identity()),
            "tls: the server's certificate is for another name",
        ),
        ("tls = \"disabled\"".to_string(), "access denied"),
    ];
    for (kind, (primary, replicas)) in [
        ("mysql", (PRIMARY, &REPLICAS)),
        ("postgres", (PG_PRIMARY, &PG_STANDBYS)),
    ] {
        for (tls, says) in &cases {
            let text = config(
                kind,
                ("it_tls_fail", primary, replicas),
                ("lagtrace_tls", tls),
                None,
            );
            let path = dir.write("lagtrace.toml", &text);
            let (code, out) = run_lab(&["init"], &path);
            assert_eq!(code, Some(1), "{kind} {tls}: {out}");
            for address in std::iter::once(primary).chain(replicas.iter().map(|(_, a)| *a)) {
                let lines = lines_of(&out, address);
                assert_eq!(lines.len(), 1, "{kind} {tls}: {address}: {out}");
                assert!(lines[0].contains(says), "{kind} {tls}: {}", lines[0]);
            }
            assert!(!out.contains(LAB_PASSWORD), "{out}");
            eprintln!("{kind}, {tls}: {}", lines_of(&out, primary)[0]);
        }
    }
}

/// `required` against a server that offers no TLS fails that server alone, in one
/// line, while the recorder goes on measuring the others; `preferred` connects to it in
/// plain text and says so.
#[test]
fn without_tls_on_one_server_required_fails_it_alone_and_preferred_says_plain_text() {
    let _lab = take_lab();
    ensure_pg_lab();
    for (kind, primary, replicas, speaks) in [
        ("mysql", PRIMARY, REPLICAS, Speaks::Mysql),
        ("postgres", PG_PRIMARY, PG_STANDBYS, Speaks::Postgres),
    ] {
        let dir = TempDir::new("tls-none");
        let hidden = format!("127.0.0.1:{}", tls_hiding_line(replicas[1].1, speaks));
        let replicas = [replicas[0], (replicas[1].0, hidden.as_str())];
        let (a, b) = (replicas[0].0, replicas[1].0);
        // preferred: TLS where offered, plain text where not, said per host.
        let text = config(
            kind,
            ("it_tls_none", primary, &replicas),
            ("lagtrace", "tls = \"preferred\""),
            None,
        );
        let path = dir.write("lagtrace.toml", &text);
        let (code, out) = run_lab(&["init"], &path);
        assert_eq!(code, Some(0), "{kind}: {out}");
        assert!(
            lines_of(&out, &hidden)[0].contains("plain text: the server offers no TLS"),
            "{kind}: {out}"
        );
        assert!(
            lines_of(&out, replicas[0].1)[0].contains("TLS, certificate not checked (preferred)"),
            "{kind}: {out}"
        );
        // required: that server fails, in one line; the others are measured.
        let store = dir.path().join("s.redb");
        let port = free_port();
        let text = config(
            kind,
            ("it_tls_none", primary, &replicas),
            ("lagtrace", "tls = \"required\""),
            Some((&store, port)),
        );
        let path = dir.write("lagtrace.toml", &text);
        let (code, out) = run_lab(&["init"], &path);
        assert_eq!(code, Some(1), "{kind}: {out}");
        let failed = lines_of(&out, &hidden);
        assert_eq!(failed.len(), 1, "{kind}: {out}");
        assert!(
            failed[0].contains("tls: the server does not offer TLS"),
            "{kind}: {}",
            failed[0]
        );
        let recorder = Recorder::start(&path);
        wait_measuring(port, &[a]);
        sleep(Duration::from_secs(2));
        let doc = http(port, "GET", "/status", &[]).unwrap().json();
        let (stopped, log) = recorder.stop();
        assert_eq!(stopped, Some(0), "{log}");
        let r = doc["clusters"][0]["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["replica"] == b)
            .cloned()
            .unwrap();
        assert_eq!(r["state"], "out", "{kind}: {r}");
        assert_eq!(r["reads_ok"], 0, "{kind}: {r}");
        let said: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("does not offer TLS") && l.contains("read failed"))
            .collect();
        assert_eq!(
            said.len(),
            1,
            "{kind}: said once per run of failures:\n{log}"
        );
        let rows = export_rows(&store);
        let measured = rows
            .iter()
            .filter(|row| row.replica == a && row.lag_ms.is_some())
            .count();
        assert!(
            measured > 100,
            "{kind}: {a}: {measured} rounds beside the failing {b}"
        );
        assert!(!log.contains(LAB_PASSWORD));
        eprintln!("{kind}: {}", failed[0]);
    }
}

/// Puts the expired certificate on replica2 (MariaDB reloads it with FLUSH LOCAL SSL, kept out of its binary log; the
/// other servers keep the one they loaded), and the good one back when dropped.
struct ExpiredOnReplica2;

impl ExpiredOnReplica2 {
    fn set(expired: bool) {
        let (pem, key) = if expired {
            ("expired.pem", "expired.key")
        } else {
            ("server-good.pem", "server-good.key")
        };
        if expired {
            std::fs::copy(lab_tls("server.pem"), lab_tls("server-good.pem")).unwrap();
            std::fs::copy(lab_tls("server.key"), lab_tls("server-good.key")).unwrap();
        }
        std::fs::copy(lab_tls(pem), lab_tls("server.pem")).unwrap();
        std::fs::copy(lab_tls(key), lab_tls("server.key")).unwrap();
        root_sql("replica2", "FLUSH LOCAL SSL");
        if expired {
            // The file goes back at once: only replica2 loaded the expired one.
            std::fs::copy(lab_tls("server-good.pem"), lab_tls("server.pem")).unwrap();
            std::fs::copy(lab_tls("server-good.key"), lab_tls("server.key")).unwrap();
        }
    }
}

impl Drop for ExpiredOnReplica2 {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| ExpiredOnReplica2::set(false));
    }
}

#[test]
fn an_expired_certificate_on_one_replica_fails_it_alone() {
    let _lab = take_lab();
    let dir = TempDir::new("tls-expired");
    let store = dir.path().join("s.redb");
    let port = free_port();
    let text = config(
        "mysql",
        ("it_tls_expired", PRIMARY, &REPLICAS),
        ("lagtrace", &verify_identity()),
        Some((&store, port)),
    );
    let path = dir.write("lagtrace.toml", &text);
    let _expired = ExpiredOnReplica2;
    ExpiredOnReplica2::set(true);
    let (code, out) = run_lab(&["init"], &path);
    assert_eq!(code, Some(1), "{out}");
    let failed = lines_of(&out, REPLICAS[1].1);
    assert!(
        failed.len() == 1 && failed[0].contains("the server's certificate expired at 2020-01-02"),
        "{out}"
    );
    let recorder = Recorder::start(&path);
    wait_measuring(port, &["r1"]);
    sleep(Duration::from_secs(2));
    let (stopped, log) = recorder.stop();
    assert_eq!(stopped, Some(0), "{log}");
    let rows = export_rows(&store);
    let r1 = rows
        .iter()
        .filter(|r| r.replica == "r1" && r.lag_ms.is_some())
        .count();
    let r2_ok = rows
        .iter()
        .filter(|r| r.replica == "r2" && r.lag_ms.is_some())
        .count();
    assert!(r1 > 100 && r2_ok == 0, "r1 {r1} rounds, r2 {r2_ok}");
    let r2_failed: Vec<_> = rows.iter().filter(|r| r.replica == "r2").collect();
    assert!(
        r2_failed
            .iter()
            .all(|r| r.reason.as_deref().is_some_and(|w| w.contains("expired"))),
        "{:?}",
        r2_failed.first()
    );
    eprintln!("{}", failed[0]);
}

/// A user that must show a client certificate (MariaDB `REQUIRE X509`, PostgreSQL
/// `clientcert=verify-ca`) gets in with `tls_cert` and `tls_key`, and not without.
#[test]
fn a_client_certificate_lets_the_x509_user_in_and_its_absence_does_not() {
    let _lab = take_lab();
    ensure_pg_lab();
    let dir = TempDir::new("tls-x509");
    let with = format!(
        "{}\ntls_cert = \"{}\"\ntls_key = \"{}\"",
        verify_identity(),
        lab_tls("client.pem").display(),
        lab_tls("client.key").display()
    );
    for (kind, primary, replicas) in [
        ("mysql", PRIMARY, &REPLICAS),
        ("postgres", PG_PRIMARY, &PG_STANDBYS),
    ] {
        let text = config(
            kind,
            ("it_tls_x509", primary, replicas),
            ("lagtrace_x509", &with),
            None,
        );
        let path = dir.write("lagtrace.toml", &text);
        let (code, out) = run_lab(&["init"], &path);
        assert_eq!(code, Some(0), "{kind}: {out}");
        assert_eq!(
            out.matches("certificate verified for the server's name")
                .count(),
            3,
            "{kind}: {out}"
        );
        let (code, out) = run_lab(&["check"], &path);
        assert_eq!(code, Some(0), "{kind} check: {out}");
        let text = config(
            kind,
            ("it_tls_x509", primary, replicas),
            ("lagtrace_x509", &verify_identity()),
            None,
        );
        let path = dir.write("lagtrace.toml", &text);
        let (code, out) = run_lab(&["init"], &path);
        assert_eq!(code, Some(1), "{kind}: {out}");
        let line = lines_of(&out, primary)[0].to_string();
        assert!(line.contains("FAILED, access denied"), "{kind}: {line}");
        assert!(!out.contains(LAB_PASSWORD));
        eprintln!("{kind} without a client certificate: {line}");
    }
}
