//! Two recorders on one cluster, the natural redundant pair (issue 30, finding 7): each
//! writes its own heartbeat row, so neither takes the other's beats for a stale primary.
//! Before, one `primary_down` fired within a second, one store reported a primary
//! outage and the other a lag episode, on a healthy cluster.

mod common;

use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use common::*;

/// analyze's JSON for `stores` (one or more `--store`), parsed.
fn analyze(stores: &[&Path]) -> serde_json::Value {
    let mut cmd = lagtrace();
    cmd.args(["analyze", "--format", "json"]);
    for s in stores {
        cmd.arg("--store").arg(s);
    }
    let out = cmd.output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "analyze failed: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// No primary outage, and both replicas measured with no episode and every round
/// bounded, in `doc`; returns the rounds per replica.
fn healthy(doc: &serde_json::Value, what: &str) -> Vec<u64> {
    for c in doc["clusters"].as_array().unwrap() {
        assert_eq!(
            c["primary_outages"].as_array().unwrap().len(),
            0,
            "{what}: a primary outage on a healthy cluster: {c}"
        );
    }
    let replicas = doc["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2, "{what}: {doc}");
    replicas
        .iter()
        .map(|r| {
            let episodes = r["episodes"].as_array().unwrap();
            assert!(episodes.is_empty(), "{what}: {episodes:?}");
            let cov = &r["coverage"];
            assert_eq!(cov["foreign_rounds"], 0, "{what}: {cov}");
            assert_eq!(cov["at_least_rounds"], 0, "{what}: {cov}");
            cov["rounds"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn two_recorders_on_one_cluster_measure_it_independently() {
    two_recorders("poll");
}

/// Streaming, each recorder registers with the replica under a server id of its own:
/// with one id, each connection would end the other recorder's stream.
#[test]
fn two_streaming_recorders_keep_both_streams() {
    two_recorders("binlog");
}

/// Two recorders probing with `probe`, 8 s in the pool each, then their stores.
fn two_recorders(probe: &str) {
    let _lab = take_lab();
    let (da, db) = (TempDir::new("two-a"), TempDir::new("two-b"));
    let (sa, sb) = (da.path().join("a.redb"), db.path().join("b.redb"));
    let record = |store: &Path| {
        format!(
            "interval = \"10ms\"\nprobe = \"{probe}\"\nstore = \"{}\"",
            store.display()
        )
    };
    let cluster = format!("two_{probe}");
    let (ca, pa) = http_lab_config(&da, &cluster, PRIMARY, &REPLICAS, &record(&sa));
    let (cb, pb) = http_lab_config(&db, &cluster, PRIMARY, &REPLICAS, &record(&sb));
    let a = start_in_pool(&ca, pa);
    let b = start_in_pool(&cb, pb);
    sleep(Duration::from_secs(8));
    for port in [pa, pb] {
        let status = http(port, "GET", "/status", &[]).unwrap().json();
        for r in status["clusters"][0]["replicas"].as_array().unwrap() {
            assert_eq!(r["state"], "in", "recorder on port {port}: {r}");
        }
    }
    let (_, log_a) = a.stop();
    let (_, log_b) = b.stop();
    for log in [&log_a, &log_b] {
        assert!(!log.contains("another writer"), "{log}");
    }
    // Every read succeeded, and streaming: no stream was ended by the other's.
    for store in [&sa, &sb] {
        let rows = export_rows(store);
        let failed: Vec<&Row> = rows.iter().filter(|r| r.outcome != "ok").collect();
        assert!(failed.is_empty(), "{probe}: failed reads {failed:?}");
        let streamed = rows.iter().filter(|r| r.probe == "binlog").count();
        if probe == "binlog" {
            assert!(
                streamed * 10 >= rows.len() * 9,
                "{streamed} of {} rows streamed",
                rows.len()
            );
        }
    }
    let ra = healthy(&analyze(&[&sa]), "store a");
    let rb = healthy(&analyze(&[&sb]), "store b");
    // Both stores together: one history of the same two replicas, every round of each
    // (before, a follow-up read of one recorder that came after the other's read
    // started a round of its own: ~8 % more rounds).
    // export of both: the rows of each store, each replica's in time order.
    let rows = |stores: &[&Path]| {
        let more: Vec<&str> = stores[1..]
            .iter()
            .flat_map(|s| ["--store", s.to_str().unwrap()])
            .collect();
        export_json(stores[0], &more)
    };
    let (alone, together) = (rows(&[&sa]).len() + rows(&[&sb]).len(), rows(&[&sa, &sb]));
    assert!(
        together.len().abs_diff(alone) <= 4,
        "{} rows of both stores, {alone} alone",
        together.len()
    );
    for replica in ["r1", "r2"] {
        let times: Vec<i64> = together
            .iter()
            .filter(|r| r["replica"] == replica)
            .map(|r| utc_us(r["time_utc"].as_str().unwrap()))
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "{replica}: rows out of order"
        );
    }
    eprintln!(
        "{probe}: export rows: stores alone {alone}, both {}",
        together.len()
    );
    let both = healthy(&analyze(&[&sa, &sb]), "stores a and b");
    eprintln!("{probe}: rounds of r1, r2: store a {ra:?}, store b {rb:?}, both {both:?}");
    for i in 0..2 {
        assert!(
            both[i].abs_diff(ra[i] + rb[i]) <= 2,
            "rounds {both:?}, stores alone {ra:?} + {rb:?}"
        );
    }
}
