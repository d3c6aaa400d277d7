//! Retention against the lab's real servers: `record --retain` keeps the store's size
//! flat while it records, and `lagtrace prune` drops old data offline (and refuses a
//! store a recorder has open). They take turns through the lab lock.

mod common;

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

fn setup(dir: &TempDir, cluster: &str) -> std::path::PathBuf {
    init_config(
        dir,
        &lab_config(cluster, PRIMARY, &REPLICAS, "LAGTRACE_IT_PASSWORD"),
    )
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// At 1 ms (about 3,000 samples a second) with a 10 s retention for 60 s, the file is
/// no bigger at the end than after 20 s, while the data it holds moves on; without the
/// retention the same recording doubles in size between those two times.
#[test]
fn record_with_a_retention_keeps_the_store_flat() {
    let _lab = take_lab();
    let dir = TempDir::new("ret-live");
    let config = setup(&dir, "ret_live");
    let store = dir.path().join("r.redb");
    let started = Instant::now();
    let child = start_record(
        &config,
        &store,
        &["--interval", "1ms", "--retain", "10s", "--duration", "60s"],
    );
    let mut sizes = Vec::new();
    for at in [20, 30, 40, 50, 58] {
        sleep(Duration::from_secs(at).saturating_sub(started.elapsed()));
        sizes.push(size(&store));
    }
    finish_record(child);
    let stopped = now_us();
    let after_20s = sizes[0];
    assert!(
        sizes.iter().all(|&s| s <= after_20s + after_20s / 5),
        "store sizes at 20, 30, 40, 50, 58 s: {sizes:?}"
    );

    // What is left is the last 10 s, and a chunk or so more.
    let rows = export_rows(&store);
    let first = rows.iter().map(|r| r.t_us).min().unwrap();
    let kept_s = (stopped - first) as f64 / 1e6;
    assert!((10.0..16.0).contains(&kept_s), "{kept_s:.1} s kept");
    // The oldest reads kept still find their beats: no round is left without a lag.
    let unmatched = rows
        .iter()
        .filter(|r| r.outcome == "ok" && r.lag_ms.is_none());
    assert_eq!(unmatched.count(), 0);
    eprintln!("retain 10s at 1 ms: sizes {sizes:?} bytes, {kept_s:.1} s kept at the end");
}

/// A store recorded for 20 s, pruned to its last 10 s: a dry run counts and changes
/// nothing, the prune drops what it counted and the file shrinks; a store in use, a
/// missing file and an out-of-range age are one line each and a non-zero exit.
#[test]
fn prune_drops_old_chunks_offline() {
    let _lab = take_lab();
    let dir = TempDir::new("ret-prune");
    let config = setup(&dir, "ret_prune");
    let store = dir.path().join("p.redb");
    let store_arg = store.to_str().unwrap();
    let recorder = start_record(&config, &store, &["--interval", "1ms"]);
    sleep(Duration::from_secs(20));

    // While the recorder has it open.
    let busy = lagtrace()
        .args(["prune", "--older-than", "10s", "--store", store_arg])
        .output()
        .unwrap();
    let (_, stderr) = texts(&busy);
    assert_eq!(busy.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    signal(recorder.id(), "INT");
    finish_record(recorder);

    let rows_before = export_rows(&store).len();
    let size_before = size(&store);
    let dry = lagtrace()
        .args([
            "prune",
            "--older-than",
            "10s",
            "--dry-run",
            "--store",
            store_arg,
        ])
        .output()
        .unwrap();
    let (dry_out, dry_err) = texts(&dry);
    assert!(dry.status.success(), "{dry_err}");
    assert!(dry_out.starts_with("lagtrace: would drop "), "{dry_out}");
    assert_eq!(
        export_rows(&store).len(),
        rows_before,
        "a dry run changed the store"
    );

    let done = lagtrace()
        .args(["prune", "--older-than", "10s", "--store", store_arg])
        .output()
        .unwrap();
    let (out, err) = texts(&done);
    assert!(done.status.success(), "{err}");
    let count = |text: &str, after: &str| -> u64 {
        let rest = &text[text.find(after).unwrap() + after.len()..];
        rest.split(' ').next().unwrap().parse().unwrap()
    };
    let dropped = count(&out, "dropped ");
    assert!(dropped > 0, "{out}");
    // Between the dry run and the prune, time moved on by a fraction of a chunk.
    assert!(count(&dry_out, "would drop ") <= dropped, "{dry_out}{out}");
    let rows = export_rows(&store);
    let first = rows.iter().map(|r| r.t_us).min().unwrap();
    assert!(now_us() - first < 16_000_000, "{out}");
    assert!(
        rows.len() < rows_before * 3 / 4,
        "{} of {rows_before} rows",
        rows.len()
    );
    assert!(size(&store) < size_before, "{out}");
    eprintln!("prune: {}", out.trim());

    for (args, code, says) in [
        (
            vec!["--older-than", "1s", "--store", store_arg],
            2,
            "out of range",
        ),
        (
            vec!["--older-than", "1d", "--store", "/nonexistent/x.redb"],
            2,
            "x.redb",
        ),
    ] {
        let out = lagtrace().arg("prune").args(&args).output().unwrap();
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}
