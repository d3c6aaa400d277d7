//! A planned failover under a running recorder (`make failover`: replica2 becomes the
//! primary, replica1 and the old primary replicate from it), then `make failback`, and a
//! split (`make split`: two writable servers). The beat writer follows the primary
//! within a backoff, replica1's lag after the switch is measured against the new
//! primary, and a split (the primary still taking writes) does not move beats: the
//! second primary's side is measured as a part of its own.

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
        &format!(
            "id = \"t\"\ninterval = \"10ms\"\nstore = \"{}\"",
            store.display()
        ),
    );
    let recorder = start_in_pool(&config, port);
    sleep(Duration::from_secs(2));
    assert_eq!(row_server_id(REPLICAS[0].1, "it_failover#t"), "1");

    lab(&["failover"], &[]);
    // Beats reach the new primary (server_id 3) and replicate to replica1 within a
    // backoff (1 s) and a few beats.
    let moved = wait_row(REPLICAS[0].1, "it_failover#t", "3", Duration::from_secs(5));
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
    let back = wait_row(REPLICAS[0].1, "it_failover#t", "1", Duration::from_secs(5));
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

/// A split with a follower on the second primary's side (`make chain`, then `make
/// split`: replica1 replicates from replica2, which starts taking writes): beats stay
/// on the primary; once `split` fires, replica2 gets beats of its own as the part
/// `it_split~r2`, replica1 is measured against them (its true lag: well under a
/// second, not the split's growing age) and both leave the cluster's pool as `split`;
/// `make failback` ends the split (`split_end`) and both come back.
#[test]
fn a_split_keeps_beats_on_the_primary_and_measures_the_second_primarys_side() {
    let _lab = take_lab();
    let _restore = Restore(vec!["failback"], &[]);
    lab(&["chain"], &[]);
    let dir = TempDir::new("split");
    let out = dir.path().join("split.json");
    let store = dir.path().join("s.redb");
    let (config, port) = http_lab_config(
        &dir,
        "it_split",
        PRIMARY,
        &REPLICAS,
        &format!(
            "id = \"t\"\ninterval = \"10ms\"\nstatus_every = \"200ms\"\nstore = \"{}\"\n\n\
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
    // `split` fires once replica2 has taken writes alone for 3 s; then r2 has a part.
    wait_all_split(port, Duration::from_secs(10));
    let r1 = status_of(port, "r1");
    assert_eq!(r1["part"], "it_split~r2", "{r1}");
    assert_eq!(r1["state"], "out", "{r1}");
    // The part's beats reach r1 through r2: its row there was written by r2 (server 3).
    sleep(Duration::from_secs(3));
    assert_eq!(row_server_id(REPLICAS[0].1, "it_split~t"), "3");
    let r1 = status_of(port, "r1");
    assert!(r1["lag_hi_ms"].as_f64().unwrap() < 1000.0, "{r1}");
    // The real primary freezes for 1.5 s during the split: its beats time out, and r2
    // takes writes, but it already did before: no failover (issue 30, finding 3).
    let primary = lab_pid("primary");
    signal(primary, "STOP");
    sleep(Duration::from_millis(1500));
    signal(primary, "CONT");
    sleep(Duration::from_secs(2));
    assert_eq!(row_server_id(PRIMARY, "it_split#t"), "1");
    lab(&["failback"], &[]);
    // Back on the cluster's side: both re-enter its pool.
    wait_in_pool(port, &["r1", "r2"]);
    assert!(status_of(port, "r1")["part"].is_null());
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
        serde_json::json!([])
    );
    assert_eq!(split["split"]["following"]["r2"], serde_json::json!(["r1"]));
    // Stored, with the split's end.
    let stored = export_json(&store, &["--events"]);
    let at = |event: &str| {
        let e = stored
            .iter()
            .find(|e| e["event"] == event)
            .unwrap_or_else(|| panic!("no {event} in {stored:?}"));
        utc_us(e["time_utc"].as_str().unwrap())
    };
    let (split_us, end_us) = (at("split"), at("split_end"));
    assert!(
        end_us > split_us + 2_500_000,
        "the split lasted {} µs",
        end_us - split_us
    );
    // During the split r1 was read against the part's beats, and truly: lag under a
    // second (the cluster's beats never reached it); neither was read as the cluster's.
    let rows = export_json(&store, &[]);
    let of = |cluster: &'static str, replica: &'static str| {
        rows.iter()
            .filter(move |r| r["cluster"] == cluster && r["replica"] == replica)
    };
    let mut part: Vec<f64> = of("it_split~r2", "r1")
        .filter_map(|r| r["lag_hi_ms"].as_f64())
        .collect();
    assert!(part.len() > 100, "{} rounds", part.len());
    let max = part.iter().copied().fold(0.0, f64::max);
    assert!(max < 1000.0, "r1's lag against r2 reached {max} ms");
    assert!(median(&mut part) < 50.0);
    let margin_us = 500_000;
    for name in ["r1", "r2"] {
        let during = of("it_split", name).filter(|r| {
            let t_us = utc_us(r["time_utc"].as_str().unwrap());
            t_us > split_us + margin_us && t_us < end_us - margin_us
        });
        assert_eq!(
            during.count(),
            0,
            "{name} was read as the cluster's replica during the split"
        );
    }
    // analyze shows the part as a cluster of its own.
    let doc = analyze_json(&store);
    let r1 = doc["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cluster"] == "it_split~r2" && r["replica"] == "r1")
        .unwrap_or_else(|| panic!("no it_split~r2/r1 in {doc}"));
    let max = r1["lag"]["percentiles"]["max_ms"].as_f64().unwrap();
    assert!(max < 1000.0, "{r1}");
    let main_r1 = doc["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cluster"] == "it_split" && r["replica"] == "r1")
        .unwrap();
    // On the cluster's side, r1's episodes (its lag against the primary's beats while
    // the split formed, and its fetch of what it missed once pointed back) are the
    // split's, not a slow applier's (finding 9).
    let episodes = main_r1["episodes"].as_array().unwrap();
    eprintln!("it_split/r1 episodes: {}", main_r1["episodes"]);
    assert!(!episodes.is_empty(), "{main_r1}");
    for e in episodes {
        let codes: Vec<&str> = e["causes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["code"].as_str())
            .collect();
        assert!(codes.contains(&"split"), "{e}");
        assert!(!codes.contains(&"threads_running"), "{e}");
    }
}
