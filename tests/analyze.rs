//! `analyze`, `plot` and `replay` on recordings made against the lab's real servers: a
//! stall under a steady load with a known apply cost, and three short lock stalls. These
//! tests change the lab, so they take turns through one lock.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread::sleep;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::*;
use serde_json::Value;

fn setup(dir: &TempDir, cluster: &str) -> PathBuf {
    setup_with(dir, cluster, "status_every = \"100ms\"\n")
}

/// A 10 ms recording of the lab with `record_keys` added to its `[record]` table.
fn setup_with(dir: &TempDir, cluster: &str, record_keys: &str) -> PathBuf {
    let config = format!(
        "[record]\ninterval = \"10ms\"\n{record_keys}\n{}",
        lab_config(cluster, PRIMARY, &REPLICAS, "LAGTRACE_IT_PASSWORD")
    );
    init_config(dir, &config)
}

/// A recording of `seconds` with `--duration`.
fn record(config: &Path, store: &Path, seconds: u32) -> Child {
    start_record(config, store, &["--duration", &format!("{seconds}s")])
}

/// Runs lagtrace with `args`, expecting success; returns stdout.
fn run_ok(args: &[&str]) -> String {
    let out = lagtrace().args(args).output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "lagtrace {args:?} failed: {stderr}");
    stdout
}

fn analyze_json(store: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "analyze",
        "--format",
        "json",
        "--replica",
        "r1",
        "--store",
        store.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let v: Value = serde_json::from_str(&run_ok(&args)).expect("analyze JSON");
    assert_eq!(v["schema_version"], 2);
    assert_eq!(v["replicas"].as_array().unwrap().len(), 1);
    v["replicas"][0].clone()
}

fn rfc3339(t_us: i64) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(t_us as u64)).to_string()
}

/// Capacity as the test measures it from the servers themselves: transactions per second
/// arriving on the primary before the stall (λ), and applied by replica 1 from its
/// resume until it has everything the primary has (μ).
#[derive(Debug)]
struct Truth {
    arrival_tx_per_s: f64,
    apply_tx_per_s: f64,
    catch_up_s: f64,
}

impl Truth {
    fn capacity(&self) -> f64 {
        self.apply_tx_per_s / self.arrival_tx_per_s
    }
}

/// Under the load already running: λ over 6 s, then replica 1's SQL thread stopped for
/// `stall`, then μ through its catch-up, read from the servers every few milliseconds.
fn stall_replica1_and_measure(stall: Duration) -> Truth {
    let mut primary = Sql::open(PRIMARY);
    let mut replica = Sql::open(REPLICAS[0].1);
    let (t0, n0) = (Instant::now(), primary.transactions("gtid_binlog_pos"));
    sleep(Duration::from_secs(6));
    let (t1, n1) = (Instant::now(), primary.transactions("gtid_binlog_pos"));
    let arrival_tx_per_s = (n1 - n0) as f64 / (t1 - t0).as_secs_f64();

    let guard = Restore(vec!["resume"], &[("REPLICA", "1")]);
    lab(&["stall"], &[("REPLICA", "1")]);
    sleep(stall);
    drop(guard);
    let (resumed, a0) = (Instant::now(), replica.transactions("gtid_slave_pos"));
    let (caught_up, a1) = loop {
        let on_primary = primary.transactions("gtid_binlog_pos");
        let applied = replica.transactions("gtid_slave_pos");
        if applied >= on_primary {
            break (Instant::now(), applied);
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(120),
            "replica 1 did not catch up in 120 s ({applied} of {on_primary})"
        );
    };
    let catch_up_s = (caught_up - resumed).as_secs_f64();
    Truth {
        arrival_tx_per_s,
        apply_tx_per_s: (a1 - a0) as f64 / catch_up_s,
        catch_up_s,
    }
}

/// Both capacity estimators of `r` (an analyze JSON replica) within 20 % of the truth;
/// returns a line with every figure. The busy fraction is only reported.
fn check_capacity(r: &Value, truth: &Truth) -> String {
    let c = truth.capacity();
    let cap = &r["capacity"];
    let replay = cap["replay"]["capacity"]
        .as_f64()
        .unwrap_or_else(|| panic!("no capacity from the catch-up (truth {truth:?}): {cap}"));
    let tp = &cap["throughput"];
    let throughput = tp["capacity"]
        .as_f64()
        .unwrap_or_else(|| panic!("no throughput capacity (truth {truth:?}): {cap}"));
    let busy = cap["busy"]["fraction"].as_f64().unwrap_or(f64::NAN);
    let line = format!(
        "truth C {c:.2} (applied {:.0} tx/s over {:.2} s, arrivals {:.0} tx/s); \
         catch-up C {replay:.2} ({:+.0} %), throughput C {throughput:.2} ({:+.0} %: \
         applied {:.0} tx/s over {:.2} s, arrivals {:.0} tx/s over {:.1} s), \
         busy fraction {busy:.2} (1/C {:.2})",
        truth.apply_tx_per_s,
        truth.catch_up_s,
        truth.arrival_tx_per_s,
        100.0 * (replay / c - 1.0),
        100.0 * (throughput / c - 1.0),
        tp["apply_tx_per_s"].as_f64().unwrap(),
        tp["drain_s"].as_f64().unwrap(),
        tp["arrival_tx_per_s"].as_f64().unwrap(),
        tp["arrival_s"].as_f64().unwrap(),
        1.0 / c,
    );
    assert!((replay - c).abs() <= 0.2 * c, "catch-up estimator: {line}");
    assert!(
        (throughput - c).abs() <= 0.2 * c,
        "throughput estimator: {line}"
    );
    line
}

/// Under a steady load whose transactions each cost a replica 20 ms to apply (so its
/// applier is ~40 % busy and its capacity ~2.5), replica 1's SQL thread stops for 10 s.
#[test]
fn stall_under_load_has_the_expected_episode_vector_eta_and_capacity() {
    let _lab = take_lab();
    let dir = TempDir::new("an-stall");
    let config = setup(&dir, "an_stall");
    let store = dir.path().join("s.redb");
    let load = Background::start(
        &["load"],
        &[("RATE", "20"), ("APPLY_MS", "20"), ("LOAD_SECONDS", "50")],
    );
    sleep(Duration::from_secs(1));
    let recorder = record(&config, &store, 45);
    sleep(Duration::from_secs(6));
    let truth = stall_replica1_and_measure(Duration::from_secs(10));
    finish_record(recorder);
    load.wait_ok();

    let r = analyze_json(&store, &[]);
    let episodes = r["episodes"].as_array().unwrap();
    assert_eq!(episodes.len(), 1, "{episodes:#?}");
    let e = &episodes[0];
    let peak_ms = e["peak_ms"].as_f64().unwrap();
    assert!((peak_ms - 10_000.0).abs() <= 500.0, "peak {peak_ms} ms");
    let fall = e["fall_vector"].as_f64().unwrap();
    assert!((fall + 1.0).abs() <= 0.05, "vector during the stall {fall}");
    let catch_up = e["catch_up_vector"].as_f64().unwrap();
    assert!(catch_up > 0.0, "catch-up rate {catch_up}");
    assert!(
        e["causes"][0]["code"] == "sql_thread_stopped",
        "{:?}",
        e["causes"]
    );

    let capacity = check_capacity(&r, &truth);

    // ETA at half catch-up, from an analysis that stops there, against what happened.
    let rows: Vec<Row> = export_rows(&store)
        .into_iter()
        .filter(|r| r.replica == "r1" && r.lag_ms.is_some())
        .collect();
    let peak_at = rows
        .iter()
        .max_by(|a, b| a.lag_ms.unwrap().total_cmp(&b.lag_ms.unwrap()))
        .unwrap()
        .t_us;
    let half = rows
        .iter()
        .find(|r| r.t_us > peak_at && r.lag_ms.unwrap() <= peak_ms / 2.0)
        .expect("half way through the catch-up");
    let done = rows
        .iter()
        .find(|r| r.t_us > half.t_us && r.lag_ms.unwrap() < 50.0)
        .expect("caught up");
    let actual_s = (done.t_us - half.t_us) as f64 / 1e6;
    let at_half = analyze_json(&store, &["--to", &rfc3339(half.t_us)]);
    assert_eq!(at_half["vector"]["lagging_now"], true);
    let eta = at_half["vector"]["eta_s"]
        .as_f64()
        .expect("an ETA while catching up");
    assert!(
        (eta - actual_s).abs() <= 0.25 * actual_s,
        "ETA {eta:.2} s, actually {actual_s:.2} s"
    );

    eprintln!(
        "stall under load: peak {peak_ms:.0} ms, fall {fall:+.3}, catch-up {catch_up:+.3}, \
         ETA {eta:.2} s vs {actual_s:.2} s; {capacity}"
    );

    // Every chart kind is well-formed SVG that names both replicas, and small.
    for kind in ["lag", "vector", "cdf", "overview"] {
        let out = dir.path().join(format!("{kind}.svg"));
        run_ok(&[
            "plot",
            "--kind",
            kind,
            "--store",
            store.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.len() < 1 << 20, "{kind}: {} bytes", text.len());
        let doc = roxmltree::Document::parse(&text)
            .unwrap_or_else(|e| panic!("{kind}.svg is not XML: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let words: String = doc
            .descendants()
            .filter_map(|n| n.text())
            .collect::<Vec<_>>()
            .join(" ");
        for name in ["an_stall/r1", "an_stall/r2"] {
            assert!(words.contains(name), "{kind}.svg does not name {name}");
        }
    }
}

/// A real OLTP write load (sysbench's oltp_write_only, 4 clients, paced at 1000
/// transactions per second, row-based): the primary commits in parallel, replica 1
/// applies on one thread, so its capacity is modest (2.2 on the lab machine on
/// 2026-11-30, whose replica then applied 2400 tx/s; at 1500 tx/s it applied only 1840
/// against 1670 arriving, C 1.1, and a slower day's catch-up ran past 120 s). Replica
/// 1's SQL thread stops for 12 s; both capacity estimators land within 20 % of the
/// capacity the test measures on the servers. The recording and the load go on until
/// replica 1 has caught up, so the whole catch-up is under load and in the recording
/// whatever the machine's speed. Status polls at the default period (1 s; 100 ms while
/// a backlog drains).
///
/// The pace leaves room on purpose: on a 2-core machine the primary, the replicas and
/// sysbench share the CPU, so near saturation (C < 1.5) the primary slows while replica
/// 1 drains, the lag falls faster than the backlog does, and the catch-up estimator
/// reads up to 30 % high. Separate hosts do not couple so.
#[test]
fn capacity_holds_on_an_oltp_write_load() {
    let _lab = take_lab();
    let dir = TempDir::new("an-oltp");
    let config = setup_with(&dir, "an_oltp", "");
    let store = dir.path().join("o.redb");
    // A one-second run creates the sysbench tables first (once per lab).
    lab(&["oltp"], &[("RATE", "100"), ("LOAD_SECONDS", "1")]);
    let load = Background::start(
        &["oltp"],
        &[("RATE", "1000"), ("THREADS", "4"), ("LOAD_SECONDS", "600")],
    );
    sleep(Duration::from_secs(1));
    let recorder = record(&config, &store, 600);
    sleep(Duration::from_secs(6));
    let truth = stall_replica1_and_measure(Duration::from_secs(12));
    // The recording goes on past the catch-up: the estimator looks for the end up to
    // 10 s after the episode, and the arrival rate is measured outside it.
    sleep(Duration::from_secs(8));
    signal(recorder.id(), "INT");
    finish_record(recorder);
    load.stop_running();

    let r = analyze_json(&store, &[]);
    let episodes = r["episodes"].as_array().unwrap();
    // One episode is the stall. Others may come and go around it when the load is near
    // the replica's capacity (an applier that falls a second behind for a moment, as
    // real ones do); they are shown, not failed on: this test is about capacity.
    let stalls = episodes
        .iter()
        .filter(|e| e["causes"][0]["code"] == "sql_thread_stopped")
        .count();
    assert_eq!(stalls, 1, "{episodes:#?}");
    eprintln!(
        "OLTP load: {}; {} episode(s): {}",
        check_capacity(&r, &truth),
        episodes.len(),
        Value::Array(episodes.clone())
    );
}

/// An intended delay is not saturation (issue 30, finding 2): under a steady load of
/// 20 tx/s, each costing the replica 20 ms (its applier ~40 % busy, C ≈ 2.5), replica 1
/// runs with MASTER_DELAY = 5 s for 16 s, holding 5 s of transactions received and not
/// applied on purpose, then without it, working that backlog off. The planning capacity
/// is not estimable or within 20 % of the truth, 1 / (load λ × 20 ms) with λ counted in
/// the primary's table (the recorder's own beats cost the replica next to nothing).
/// Before the fix the delayed stretch and the drain after it read as one drain: 0.93.
#[test]
fn an_intended_delay_does_not_read_as_a_saturated_applier() {
    let _lab = take_lab();
    let dir = TempDir::new("an-delay");
    let config = setup(&dir, "an_delay");
    let store = dir.path().join("d.redb");
    let load = Background::start(
        &["load"],
        &[("RATE", "20"), ("APPLY_MS", "20"), ("LOAD_SECONDS", "32")],
    );
    sleep(Duration::from_secs(1));
    let rows = || {
        let n = root_sql("primary", "SELECT COALESCE(MAX(id), 0) FROM lab.load");
        (Instant::now(), n.trim().parse::<f64>().unwrap())
    };
    let (t0, n0) = rows();
    let recorder = record(&config, &store, 30);
    sleep(Duration::from_secs(3));
    let undo = Restore(vec!["stop-lag"], &[("REPLICA", "1")]);
    lab(&["start-lag"], &[("REPLICA", "1"), ("LAG", "5")]);
    sleep(Duration::from_secs(16));
    drop(undo);
    finish_record(recorder);
    let (t1, n1) = rows();
    load.wait_ok();
    let load_tx_per_s = (n1 - n0) / (t1 - t0).as_secs_f64();
    let truth = 1.0 / (load_tx_per_s * 0.020);

    let r = analyze_json(&store, &[]);
    let cap = &r["capacity"];
    let planning = cap["planning"]["capacity"].as_f64();
    let replay = cap["replay"]["capacity"].as_f64();
    eprintln!(
        "intended delay 5 s for 16 s, load {load_tx_per_s:.1} tx/s: truth C {truth:.2}, \
         planning C {planning:?} from {}, catch-up C {replay:?}",
        cap["planning"]["source"]
    );
    for c in [planning, replay].into_iter().flatten() {
        assert!(
            (c - truth).abs() <= 0.2 * truth,
            "capacity {c:.2} under an intended delay, truth {truth:.2}: {cap} {}",
            r["episodes"]
        );
    }
}

/// Three 3 s stalls with the SQL thread running (a lock holds it): the pool state
/// machine takes replica 1 out and back three times at max-lag 1 s, never at 20 s.
#[test]
fn replay_counts_three_stalls_at_1s_and_none_at_20s() {
    let _lab = take_lab();
    let dir = TempDir::new("an-block");
    let config = setup(&dir, "an_block");
    let store = dir.path().join("b.redb");
    let recorder = record(&config, &store, 22);
    for _ in 0..3 {
        sleep(Duration::from_secs(3));
        lab(&["block"], &[("REPLICA", "1"), ("LOAD_SECONDS", "3")]);
    }
    finish_record(recorder);

    let s = store.to_str().unwrap();
    let strict = run_ok(&[
        "replay",
        "--store",
        s,
        "--max-lag",
        "1s",
        "--recover-lag",
        "500ms",
    ]);
    let changes = |text: &str, what: &str| {
        text.lines()
            .filter(|l| l.contains(&format!("an_block/r1  {what}")))
            .count()
    };
    assert_eq!(changes(&strict, "out "), 3, "{strict}");
    assert_eq!(
        changes(&strict, "in  "),
        4,
        "first state and three returns:\n{strict}"
    );
    assert!(
        strict.contains("an_block/r1: left the pool 3 time(s)"),
        "{strict}"
    );
    assert!(
        strict.contains("an_block/r2: left the pool 0 time(s)"),
        "{strict}"
    );
    assert!(strict.contains("lagging"), "{strict}");

    let lenient = run_ok(&[
        "replay",
        "--store",
        s,
        "--max-lag",
        "20s",
        "--recover-lag",
        "1s",
    ]);
    assert_eq!(changes(&lenient, "out "), 0, "{lenient}");
    assert!(
        lenient.contains("an_block/r1: left the pool 0 time(s)"),
        "{lenient}"
    );
}
