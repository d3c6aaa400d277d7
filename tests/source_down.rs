//! A primary that shuts down cleanly (SIGTERM), on the lab's real servers: the
//! replicas' IO threads leave `Yes` (MariaDB's `Connecting`), lagtrace's beats fail,
//! and the replicas hold everything the primary committed. Down by agreement, the
//! primary is an outage (one `primary_down`), and the replicas stay in the read pool,
//! judged by their lag, with the reason `source_down`; they used to leave it within
//! 1.5 s, every one of them. The same for a PostgreSQL primary's fast shutdown, where
//! the standbys' WAL receivers stop.

mod common;

use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

/// The PostgreSQL lab's primary and standbys, as this test names them.
const PG_PRIMARY: &str = "127.0.0.1:15432";
const PG_STANDBYS: [(&str, &str); 2] = [("r1", "127.0.0.1:15433"), ("r2", "127.0.0.1:15434")];

#[test]
fn a_primary_that_shuts_down_keeps_its_replicas_in_the_pool() {
    let _lab = take_lab();
    let _restore = Restore(vec!["up"], &[]);
    ensure_lab();
    shut_down_and_check("it_source_down", (PRIMARY, &REPLICAS), "", || {
        signal(lab_pid("primary"), "TERM");
    });
}

#[test]
fn a_postgres_primary_that_shuts_down_keeps_its_standbys_in_the_pool() {
    let _lab = take_lab();
    let _restore = Restore(vec!["up"], &[("DB", "postgres")]);
    ensure_pg_lab();
    shut_down_and_check(
        "it_pg_source_down",
        (PG_PRIMARY, &PG_STANDBYS),
        "kind = \"postgres\"\n",
        || {
            // SIGINT to the postmaster: a fast shutdown.
            let pidfile = repo_root().join(".lab/pg/primary/data/postmaster.pid");
            let text = std::fs::read_to_string(&pidfile).expect("the primary's pid file");
            let pid: u32 = text.lines().next().unwrap().trim().parse().unwrap();
            signal(pid, "INT");
        },
    );
}

/// Records `cluster` on the lab, shuts its primary down with `stop`, and checks both
/// replicas every 200 ms for 8 s from 2 s after the primary stopped listening; then
/// brings the lab up again and checks the events.
fn shut_down_and_check(
    cluster: &str,
    (primary, replicas): (&str, &[(&str, &str); 2]),
    kind: &str,
    stop: impl FnOnce(),
) {
    let dir = TempDir::new("source-down");
    let store = dir.path().join("s.redb");
    let port = free_port();
    let text = lab_config(cluster, primary, replicas, "LAGTRACE_IT_PASSWORD").replacen(
        "[[cluster]]\n",
        &format!("[[cluster]]\n{kind}"),
        1,
    );
    let config = init_config(
        &dir,
        &format!(
            "{text}\n[record]\ninterval = \"100ms\"\nstatus_every = \"200ms\"\nstore = \"{}\"\n\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\nmax_lag = \"1s\"\n",
            store.display()
        ),
    );
    let recorder = start_in_pool(&config, port);
    sleep(Duration::from_secs(1));

    stop();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(primary).is_ok() && Instant::now() < deadline {
        sleep(Duration::from_millis(50));
    }
    // The replicas' IO threads notice within a status poll or two; from then on, for
    // 8 s, every check of either replica.
    sleep(Duration::from_secs(2));
    let mut answers = Vec::new();
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        for (name, _) in replicas {
            let r = http(port, "GET", &format!("/check/{name}"), &[]).expect("a check answer");
            let doc = r.json();
            answers.push((
                name,
                r.code,
                doc["reason"].as_str().unwrap_or("").to_string(),
            ));
        }
        sleep(Duration::from_millis(200));
    }
    let status = http(port, "GET", "/status", &[]).unwrap().json();
    let db = if kind.is_empty() {
        "mariadb"
    } else {
        "postgres"
    };
    lab(&["up"], &[("DB", db)]);
    sleep(Duration::from_secs(3));
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");

    let in_pool = answers.iter().filter(|(_, code, _)| *code == 200).count();
    eprintln!(
        "{cluster}: checks during the shutdown: {in_pool} of {} answered 200",
        answers.len()
    );
    assert!(answers.len() >= 40, "{answers:?}");
    assert_eq!(
        in_pool,
        answers.len(),
        "a replica left the pool while its source was down: {answers:?}\n{status}"
    );
    assert!(
        answers.iter().all(|(_, _, reason)| reason == "source_down"),
        "{answers:?}"
    );
    // The IO threads did leave Yes: the test is of a shutdown, not a freeze.
    let io: Vec<&serde_json::Value> = status["clusters"][0]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["io_running"])
        .collect();
    assert!(io.iter().all(|v| **v == false), "{status}");

    let events = export_json(&store, &["--events"]);
    let count = |kind: &str| events.iter().filter(|e| e["event"] == kind).count();
    assert_eq!(count("primary_down"), 1, "{events:?}");
    assert_eq!(count("primary_up"), 1, "{events:?}");
    // No replica left the pool during the outage. After it, a replica whose IO thread
    // (WAL receiver) takes longer to reconnect than max_lag truly lags (PostgreSQL
    // retries every 5 s by default): it may leave the pool then, as lagging.
    let up_at = events
        .iter()
        .find(|e| e["event"] == "primary_up")
        .and_then(|e| e["time_utc"].as_str())
        .map(utc_us)
        .unwrap();
    for e in events.iter().filter(|e| e["event"] == "replica_down") {
        let at = utc_us(e["time_utc"].as_str().unwrap());
        assert!(
            at > up_at && e["check"]["reason"] == "lagging",
            "a replica left the pool during the outage, or after it for another reason than lag: {e}"
        );
    }
}
