//! `analyze`, `plot` and `replay` on recordings made against the lab's real servers: a
//! stall under a steady load with a known apply cost, and three short lock stalls. These
//! tests change the lab, so they take turns through one lock.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, UNIX_EPOCH};

use common::*;
use serde_json::Value;

fn setup(dir: &TempDir, cluster: &str) -> PathBuf {
    let config = format!(
        "[record]\ninterval = \"10ms\"\nstatus_every = \"100ms\"\n\n{}",
        lab_config(cluster, PRIMARY, &REPLICAS, "LAGTRACE_IT_PASSWORD")
    );
    init_config(dir, &config)
}

fn record(config: &Path, store: &Path, seconds: u32) -> Child {
    lagtrace()
        .args(["record", "--quiet", "-c"])
        .arg(config)
        .arg("--store")
        .arg(store)
        .arg("--duration")
        .arg(format!("{seconds}s"))
        .env("LAGTRACE_IT_PASSWORD", LAB_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lagtrace record")
}

fn finish(child: Child) {
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "record failed: {stdout}{stderr}");
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

/// Under a steady load whose transactions each cost a replica 20 ms to apply (so its
/// applier is ~40 % busy and its capacity ~2.5), replica 1's SQL thread stops for 10 s.
#[test]
fn stall_under_load_has_the_expected_episode_vector_eta_and_capacity() {
    let _lab = take_lab();
    let dir = TempDir::new("an-stall");
    let config = setup(&dir, "an_stall");
    let store = dir.path().join("s.redb");
    let mut load = Command::new(repo_root().join("scripts/lab.sh"))
        .arg("load")
        .envs([("RATE", "20"), ("APPLY_MS", "20"), ("LOAD_SECONDS", "50")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the lab load");
    sleep(Duration::from_secs(1));
    let recorder = record(&config, &store, 45);
    sleep(Duration::from_secs(12));
    let guard = Restore(vec!["resume"], &[("REPLICA", "1")]);
    lab(&["stall"], &[("REPLICA", "1")]);
    sleep(Duration::from_secs(10));
    drop(guard);
    finish(recorder);
    assert!(load.wait().unwrap().success(), "the lab load failed");

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

    let replay = r["capacity"]["replay"]["capacity"]
        .as_f64()
        .expect("C from the catch-up");
    let busy = r["capacity"]["busy"]["capacity"]
        .as_f64()
        .expect("C from busy time");
    assert!(
        (replay - busy).abs() <= 0.25 * replay,
        "capacity from catch-up {replay:.2}, from busy fraction {busy:.2}"
    );

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
         C {replay:.2} (catch-up) vs {busy:.2} (busy), ETA {eta:.2} s vs {actual_s:.2} s"
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
    finish(recorder);

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
