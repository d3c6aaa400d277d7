//! Replication faults on the lab's replica1 while a recorder runs (issue 15): its IO
//! thread stopped (it receives nothing), and a replication error (`lab.sh break`: a
//! duplicate key stops its SQL thread) repaired. Each asserts what analyze says: the
//! episode with the right cause, a peak that matches the fault's length, the recovery,
//! and replica2 untouched.

mod common;

use std::path::PathBuf;
use std::thread::sleep;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn setup(dir: &TempDir, cluster: &str) -> PathBuf {
    let config = lab_config(cluster, PRIMARY, &REPLICAS, "LAGTRACE_IT_PASSWORD");
    init_config(dir, &config)
}

/// The cause codes of an episode.
fn causes(episode: &Value) -> Vec<String> {
    episode["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_string())
        .collect()
}

/// Records 14 s at 10 ms, doing `fault` on replica1 from 3 s and `recover` 5 s later;
/// returns the fault's length in ms and analyze's report.
fn record_fault(tag: &str, fault: &'static str, recover: &'static str) -> (f64, Value) {
    let dir = TempDir::new(tag);
    let config = setup(&dir, &format!("it_{tag}"));
    let store = dir.path().join("s.redb");
    let child = start_record(
        &config,
        &store,
        &["--interval", "10ms", "--duration", "14s"],
    );
    sleep(Duration::from_secs(3));
    let t0 = now_us();
    lab(&[fault], &[("REPLICA", "1")]);
    sleep(Duration::from_secs(5));
    lab(&[recover], &[("REPLICA", "1")]);
    let t1 = now_us();
    finish_record(child);
    ((t1 - t0) as f64 / 1000.0, analyze_json(&store))
}

/// The episode on replica1 matches the fault; replica1 caught up; replica2 had none.
fn assert_one_episode(doc: &Value, fault_ms: f64) -> Value {
    let r1 = replica_doc(doc, "r1");
    let eps = r1["episodes"].as_array().unwrap();
    assert_eq!(eps.len(), 1, "one episode on r1: {eps:?}");
    let e = &eps[0];
    let peak = e["peak_ms"].as_f64().unwrap();
    eprintln!(
        "r1: peak {peak} ms for a {fault_ms} ms fault; causes {}",
        e["causes"]
    );
    assert!(
        (peak - fault_ms).abs() <= 0.05 * fault_ms,
        "peak {peak} ms for a {fault_ms} ms fault"
    );
    assert!(!e["end_utc"].is_null(), "the episode ended: {e}");
    assert_eq!(r1["vector"]["lagging_now"], false);
    assert!(
        r1["vector"]["lag_now_ms"].as_f64().unwrap() < 50.0,
        "caught up: {}",
        r1["vector"]
    );
    let r2 = replica_doc(doc, "r2");
    assert_eq!(r2["episodes"].as_array().unwrap().len(), 0, "r2: {r2}");
    e.clone()
}

#[test]
fn a_stopped_io_thread_is_an_episode_caused_by_it_and_recovers() {
    let _lab = take_lab();
    let _restore = Restore(vec!["io-start"], &[("REPLICA", "1")]);
    let (fault_ms, doc) = record_fault("io-stop", "io-stop", "io-start");
    let e = assert_one_episode(&doc, fault_ms);
    let codes = causes(&e);
    assert!(codes.contains(&"io_thread_stopped".to_string()), "{e}");
    assert!(!codes.contains(&"sql_thread_stopped".to_string()), "{e}");
}

#[test]
fn a_replication_error_is_an_episode_naming_it_and_repair_recovers() {
    let _lab = take_lab();
    let _restore = Restore(vec!["repair"], &[("REPLICA", "1")]);
    let (fault_ms, doc) = record_fault("break", "break", "repair");
    let e = assert_one_episode(&doc, fault_ms);
    let codes = causes(&e);
    assert!(codes.contains(&"sql_thread_stopped".to_string()), "{e}");
    let error = e["causes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == "sql_error")
        .unwrap_or_else(|| panic!("no sql_error cause: {e}"));
    assert!(error["text"].as_str().unwrap().contains("1062"), "{error}");
}

/// Finding 5: under a load that costs the replica 20 ms a transaction, replica1 killed
/// 1 s into its catch-up from a 5 s stall and back 7 s later. Before, one episode ran straight across the gap, its only cause the SQL
/// thread; now the episode under way is cut at its last round before the gap
/// (`cut_by_gap_s`), and none spans it.
#[test]
fn a_replica_killed_during_its_catch_up_cuts_the_episode_at_the_gap() {
    let _lab = take_lab();
    let dir = TempDir::new("rf-kill");
    let config = setup(&dir, "it_rf_kill");
    let store = dir.path().join("s.redb");
    // Transactions that cost the replica 20 ms each: a 5 s backlog takes seconds.
    let load = Background::start(
        &["load"],
        &[("RATE", "20"), ("APPLY_MS", "20"), ("LOAD_SECONDS", "22")],
    );
    let child = start_record(
        &config,
        &store,
        &["--interval", "10ms", "--duration", "22s"],
    );
    sleep(Duration::from_secs(2));
    let resume = Restore(vec!["resume"], &[("REPLICA", "1")]);
    lab(&["stall"], &[("REPLICA", "1")]);
    sleep(Duration::from_secs(5));
    drop(resume);
    sleep(Duration::from_secs(1));
    let killed_us = now_us();
    signal(lab_pid("replica1"), "KILL");
    sleep(Duration::from_secs(7));
    let restarted_us = now_us();
    lab(&["up"], &[]);
    let up_us = now_us();
    finish_record(child);
    drop(load);

    let doc = analyze_json(&store);
    let r1 = replica_doc(&doc, "r1");
    let episodes = r1["episodes"].as_array().unwrap();
    let at = |e: &Value, key: &str| e[key].as_str().map(utc_us);
    let spans = episodes.iter().any(|e| {
        at(e, "start_utc").is_some_and(|s| s < killed_us)
            && at(e, "end_utc").is_none_or(|end| end > up_us)
    });
    assert!(!spans, "an episode runs across the gap: {episodes:#?}");
    let cut = episodes
        .iter()
        .find_map(|e| e["cut_by_gap_s"].as_f64())
        .unwrap_or_else(|| panic!("no episode cut by the gap: {episodes:#?}"));
    // Down from the kill to the restart, and back within `lab up`.
    let (down_s, up_s) = (
        (restarted_us - killed_us) as f64 / 1e6,
        (up_us - killed_us) as f64 / 1e6,
    );
    eprintln!("replica1 down {down_s:.2} s in its catch-up: episode cut by a {cut:.2} s gap");
    assert!(
        (down_s - 0.5..=up_s + 1.0).contains(&cut),
        "cut by {cut} s for {down_s:.2}-{up_s:.2} s down"
    );
}
