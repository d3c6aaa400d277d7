//! The store's file system fills up under a running recorder: a small tmpfs the test
//! mounts (root only, as CI runs), filled with a file and freed again. The recorder
//! must log one error, keep probing and answering checks, keep its samples in memory,
//! store them all once space returns, and leave a store that opens with everything.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A tmpfs of `size` mounted on `dir/fs`, unmounted when dropped.
struct SmallFs(PathBuf);

impl SmallFs {
    /// None when this process may not mount (not root): the test then says so and
    /// passes without running.
    fn mount(dir: &TempDir, size: &str) -> Option<SmallFs> {
        let path = dir.path().join("fs");
        std::fs::create_dir_all(&path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallFs(path))
    }

    /// Writes a file until the file system is full; returns its path.
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        // The last partial block: fill byte by byte what is left.
        while f.write_all(&[0]).is_ok() {}
        filler
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A file removed when dropped.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn status(port: u16) -> Value {
    http(port, "GET", "/status", &[])
        .expect("the recorder answers /status")
        .json()
}

fn reads_ok(status: &Value, replica: &str) -> u64 {
    status["clusters"][0]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["replica"] == replica)
        .unwrap()["reads_ok"]
        .as_u64()
        .unwrap()
}

/// Starts a recorder at 10 ms flushing every 500 ms on a store in `fs`, with checks on
/// a free port; returns it, the port and the store's path.
fn start(dir: &TempDir, fs: &SmallFs, cluster: &str) -> (Recorder, u16, PathBuf) {
    let store = fs.0.join("s.redb");
    let (config, port) = http_lab_config(
        dir,
        cluster,
        PRIMARY,
        &REPLICAS,
        &format!(
            "interval = \"10ms\"\nflush = \"500ms\"\nstore = \"{}\"",
            store.display()
        ),
    );
    (start_in_pool(&config, port), port, store)
}

/// The longest time between two successive exported rounds of `replica`, ms.
fn longest_hole_ms(store: &Path, replica: &str) -> (usize, f64) {
    let rows: Vec<Row> = export_rows(store)
        .into_iter()
        .filter(|r| r.replica == replica)
        .collect();
    let hole = rows
        .windows(2)
        .map(|w| (w[1].t_us - w[0].t_us) as f64 / 1000.0)
        .fold(0.0, f64::max);
    (rows.len(), hole)
}

#[test]
fn a_full_disk_pauses_storing_only_and_everything_is_stored_when_space_returns() {
    let _lab = take_lab();
    let dir = TempDir::new("disk-full");
    let Some(fs) = SmallFs::mount(&dir, "8m") else {
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    };
    let (recorder, port, store) = start(&dir, &fs, "it_full");
    sleep(Duration::from_secs(2));
    let filler = fs.fill();
    let full_at = now_us();
    // The next flush fails (within 500 ms) and the next live update shows it (1 s).
    assert!(
        wait_http(
            port,
            "/status",
            Duration::from_secs(5),
            |r| r.json()["store_writable"] == false
        )
        .is_some(),
        "the full disk never showed in /status"
    );
    let during = status(port);
    sleep(Duration::from_secs(5));
    let later = status(port);
    // Probing and the checks go on while nothing can be stored.
    assert_eq!(during["store_writable"], false, "{during}");
    assert!(
        reads_ok(&later, "r1") >= reads_ok(&during, "r1") + 200,
        "reads stopped with the disk: {during} then {later}"
    );
    assert_eq!(http(port, "GET", "/check/r1", &[]).unwrap().code, 200);
    std::fs::remove_file(&filler).unwrap();
    assert!(
        wait_http(
            port,
            "/status",
            Duration::from_secs(5),
            |r| r.json()["store_writable"] == true
        )
        .is_some(),
        "storing never resumed once space returned"
    );
    sleep(Duration::from_secs(1));
    let (code, stderr) = recorder.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let failed: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("store write failed"))
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "one error line for the whole fault: {stderr}"
    );
    assert!(
        failed[0].contains("ERROR") && failed[0].contains("no space left on device"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("store writes resumed").count(),
        1,
        "{stderr}"
    );

    // Everything recorded while the disk was full was stored afterwards: no hole in
    // the rounds at 10 ms (a read takes well under 100 ms on the lab).
    for replica in ["r1", "r2"] {
        let (rounds, hole) = longest_hole_ms(&store, replica);
        eprintln!(
            "{replica}: {rounds} rounds, longest hole {hole:.1} ms (disk full at {full_at} µs for 6 s)"
        );
        assert!(rounds > 500, "{replica}: {rounds} rounds");
        assert!(hole < 200.0, "{replica}: a hole of {hole} ms");
    }
    assert_eq!(status_unstored(&later), 0);
}

fn status_unstored(status: &Value) -> u64 {
    status["unstored_samples"].as_u64().unwrap()
}

#[test]
fn a_disk_still_full_at_shutdown_fails_with_the_count_and_keeps_the_store_readable() {
    let _lab = take_lab();
    let dir = TempDir::new("disk-full-stop");
    let Some(fs) = SmallFs::mount(&dir, "8m") else {
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    };
    let (recorder, _port, store) = start(&dir, &fs, "it_full_stop");
    sleep(Duration::from_secs(2));
    let full_at = now_us();
    let filler = Removed(fs.fill());
    sleep(Duration::from_secs(3));
    let (code, stderr) = recorder.stop();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("lagtrace: ")
            && last.contains("no space left on device")
            && last.contains("samples could not be stored"),
        "{stderr}"
    );
    // While the disk stays full the store reads if redb closed it cleanly (its header
    // needs no new space; whether the last failed commit left it so depends on where it
    // failed), and otherwise cannot be repaired and says so in one line.
    let out = lagtrace()
        .args(["export", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let (_, err) = texts(&out);
    match out.status.code() {
        Some(0) => eprintln!("the store read while the disk was still full"),
        Some(1) => assert!(
            err.lines().count() == 1 && err.contains("free space on its disk"),
            "{err}"
        ),
        other => panic!("export exited {other:?}: {err}"),
    }
    // Once space returns it opens with everything stored before the fault.
    drop(filler);
    let rows = export_rows(&store);
    let before = rows.iter().filter(|r| r.t_us < full_at - 500_000).count();
    eprintln!("{} rows, {before} from before the fault", rows.len());
    assert!(
        before > 100,
        "the samples before the fault were lost: {before}"
    );
}
