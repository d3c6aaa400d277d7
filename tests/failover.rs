//! A planned failover under a running recorder (`make failover`: replica2 becomes the
//! primary, replica1 and the old primary replicate from it), then `make failback`, and a
//! split (`make split`: two writable servers). The beat writer follows the primary
//! within a backoff, replica1's lag after the switch is measured against the new
//! primary, and a split (the primary still taking writes) does not move beats.

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::*;

/// The server_id in the cluster's heartbeat row as `address` shows it.
fn row_server_id(address: &str, cluster: &str) -> String {
    Sql::open(address).value(&format!(
        "SELECT server_id FROM lagtrace.heartbeat WHERE cluster = '{cluster}'"
    ))
}

fn beats_ok(port: u16) -> u64 {
    http(port, "GET", "/status", &[]).unwrap().json()["clusters"][0]["beats_ok"]
        .as_u64()
        .unwrap()
}

/// Waits up to `limit` for the row to show `server_id` on `address`.
fn wait_row(address: &str, cluster: &str, server_id: &str, limit: Duration) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if row_server_id(address, cluster) == server_id {
            return Some(start.elapsed());
        }
        sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn beats_follow_a_failover_and_the_failback_and_lag_stays_true() {
    let _lab = take_lab();
    let _restore = Restore(vec!["failback"], &[]);
    let dir = TempDir::new("failover");
    let store = dir.path().join("s.redb");
    let (config, port) = http_lab_config(
        &dir,
        "it_failover",
        PRIMARY,
        &REPLICAS,
        &format!("interval = \"10ms\"\nstore = \"{}\"", store.display()),
    );
    let recorder = start_in_pool(&config, port);
    sleep(Duration::from_secs(2));
    assert_eq!(row_server_id(REPLICAS[0].1, "it_failover"), "1");

    lab(&["failover"], &[]);
    // Beats reach the new primary (server_id 3) and replicate to replica1 within a
    // backoff (1 s) and a few beats.
    let moved = wait_row(REPLICAS[0].1, "it_failover", "3", Duration::from_secs(5));
    assert!(moved.is_some(), "beats never moved to replica2");
    let moved_us = now_us();
    let before = beats_ok(port);
    sleep(Duration::from_secs(3));
    assert!(
        beats_ok(port) > before + 100,
        "beats stopped on the new primary"
    );
    assert_eq!(http(port, "GET", "/check/r1", &[]).unwrap().code, 200);
    let settled_us = now_us();

    lab(&["failback"], &[]);
    let back = wait_row(REPLICAS[0].1, "it_failover", "1", Duration::from_secs(5));
    assert!(back.is_some(), "beats never moved back to the primary");
    sleep(Duration::from_secs(2));
    let (_, log) = recorder.stop();
    eprintln!("beats on the new primary after {moved:?}, back after {back:?}");

    // Logged once each way.
    let moves: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("the primary moved"))
        .collect();
    assert_eq!(moves.len(), 2, "{log}");
    assert!(
        moves[0].contains("from=127.0.0.1:13306 to=127.0.0.1:13308"),
        "{log}"
    );
    assert!(
        moves[1].contains("from=127.0.0.1:13308 to=127.0.0.1:13306"),
        "{log}"
    );

    // replica1 once it shows the new primary's beats (from 0.5 s after that to the
    // failback): measured against the new primary, bounded and small.
    let rows = export_rows(&store);
    let after: Vec<&Row> = rows
        .iter()
        .filter(|r| r.replica == "r1" && (moved_us + 500_000..settled_us).contains(&r.t_us))
        .collect();
    assert!(
        after.len() > 100,
        "{} rounds of r1 after the switch",
        after.len()
    );
    for r in &after {
        assert_eq!(r.outcome, "ok", "{r:?}");
        assert_eq!(r.lag_kind.as_deref(), Some("bounded"), "{r:?}");
        assert!(
            r.hi_ms.unwrap() < 1000.0 && r.lo_ms.unwrap() < 50.0,
            "{r:?}"
        );
    }
    // The switches are short primary outages, never lag.
    let doc = analyze_json(&store);
    for o in doc["clusters"][0]["primary_outages"].as_array().unwrap() {
        assert!(o["duration_s"].as_f64().unwrap() < 3.0, "{o}");
    }
    // replica1 is re-pointed to the new primary a moment after beats reach it: it lacks
    // them until then, which is real lag (bounded from below by their acks), at most
    // one short episode per switch.
    let r1 = replica_doc(&doc, "r1");
    let episodes = r1["episodes"].as_array().unwrap();
    for e in episodes {
        eprintln!(
            "r1 episode: {} s, peak {} ms",
            e["duration_s"], e["peak_ms"]
        );
        assert!(
            e["duration_s"].as_f64().unwrap() < 2.0 && e["peak_ms"].as_f64().unwrap() < 2500.0,
            "{e:#}"
        );
    }
    assert!(episodes.len() <= 2, "{r1:#}");
    // The store has both failovers (and no split: the new primary was writable alone
    // once beats moved), and the lag chart marks them.
    let events = export_json(&store, &["--events"]);
    let moves: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["event"] == "failover" || e["event"] == "split")
        .map(|e| {
            (
                e["event"].as_str().unwrap(),
                e["node"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(moves, [("failover", "r2"), ("failover", "primary")]);
    // replica1's re-pointing, and replica2 taking writes then refusing them, stored.
    let changes: Vec<(&str, &str, &str)> = events
        .iter()
        .filter(|e| e["event"] == "source_change" || e["event"] == "role_change")
        .map(|e| {
            (
                e["event"].as_str().unwrap(),
                e["node"]["name"].as_str().unwrap(),
                e["change"]["to"].as_str().unwrap_or("nothing"),
            )
        })
        .collect();
    eprintln!("changes: {changes:?}");
    for expected in [
        ("source_change", "r1", "127.0.0.1:13308"),
        ("source_change", "r1", "127.0.0.1:13306"),
        ("role_change", "r2", "writable"),
        ("role_change", "r2", "read_only"),
    ] {
        assert!(changes.contains(&expected), "{expected:?} in {changes:?}");
    }
    let svg = dir.path().join("lag.svg");
    let plot = lagtrace()
        .args(["plot", "--kind", "lag", "--store"])
        .arg(&store)
        .arg("--out")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(plot.status.success(), "{}", texts(&plot).1);
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.contains("failover to r2") && svg.contains("failover to primary"),
        "the chart marks both failovers"
    );
    // replay puts them among the pool changes it replays.
    let replay = lagtrace()
        .args(["replay", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let (text, err) = texts(&replay);
    assert!(replay.status.success(), "{err}");
    assert!(
        text.contains("it_failover  failover  primary -> r2  (recorded)")
            && text.contains("it_failover  failover  r2 -> primary  (recorded)"),
        "{text}"
    );
}

#[test]
fn a_split_keeps_beats_on_the_primary() {
    let _lab = take_lab();
    let _restore = Restore(vec!["failback"], &[]);
    let dir = TempDir::new("split");
    let out = dir.path().join("split.json");
    let store = dir.path().join("s.redb");
    let (config, port) = http_lab_config(
        &dir,
        "it_split",
        PRIMARY,
        &REPLICAS,
        &format!(
            "interval = \"10ms\"\nstatus_every = \"200ms\"\nstore = \"{}\"\n\n\
             [triggers]\nsplit = [\"/usr/bin/tee\", \"-a\", \"{}\"]\nfailover = [\"/usr/bin/tee\", \"-a\", \"{}\"]",
            store.display(),
            out.display(),
            out.display(),
        ),
    );
    let recorder = start_in_pool(&config, port);
    lab(&["split"], &[]);
    // The primary still takes writes: beats stay there.
    let before = beats_ok(port);
    sleep(Duration::from_secs(2));
    assert!(beats_ok(port) > before + 100);
    assert_eq!(row_server_id(REPLICAS[0].1, "it_split"), "1");
    // `split` fires once replica2 has taken writes alone for 3 s.
    sleep(Duration::from_secs(2));
    let (_, log) = recorder.stop();
    assert!(!log.contains("the primary moved"), "{log}");
    let fired = json_documents(&out);
    assert_eq!(fired.len(), 1, "{fired:?}");
    let split = &fired[0];
    assert_eq!(
        (&split["event"], &split["node"]["name"]),
        (&"split".into(), &"r2".into()),
        "{split}"
    );
    let primaries: Vec<&str> = split["split"]["primaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(primaries, ["primary", "r2"]);
    assert_eq!(
        split["split"]["following"]["primary"],
        serde_json::json!(["r1"])
    );
    assert_eq!(split["split"]["following"]["r2"], serde_json::json!([]));
    // Stored too.
    let stored = export_json(&store, &["--events"]);
    assert!(stored.iter().any(|e| e["event"] == "split"), "{stored:?}");
}
