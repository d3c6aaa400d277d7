//! Throttling batch writers on lagtrace's numbers (issue 32) against the lab: the
//! `/throttle/<cluster>` verdict and freno's `/check/<app>/mysql/<cluster>` follow a
//! replica's stall and its end, a force file holds writers back, unknown names are 404
//! naming what exists, and `lagtrace wait` blocks until the cluster may take writes.

mod common;

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

const INTERVAL_MS: u64 = 100;

/// Runs `lagtrace wait -c config ARGS`: its exit code, how long it took, its stderr.
fn wait(config: &Path, args: &[&str]) -> (Option<i32>, Duration, String) {
    let started = Instant::now();
    let out = lagtrace()
        .args(["wait", "-c"])
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    (out.status.code(), started.elapsed(), stderr)
}

#[test]
fn the_verdict_follows_a_stall_and_wait_blocks_until_it_ends() {
    let _lab = take_lab();
    let dir = TempDir::new("throttle");
    let force = dir.path().join("force");
    std::fs::create_dir_all(&force).unwrap();
    let (config, port) = http_lab_config(
        &dir,
        "it_thr",
        PRIMARY,
        &REPLICAS,
        &format!(
            "interval = \"{INTERVAL_MS}ms\"\nstore = \"{}\"\n\n[throttle]\napps = {{ osc = \"3s\" }}\nforce_dir = \"{}\"",
            dir.path().join("s.redb").display(),
            force.display()
        ),
    );
    let recorder = start_in_pool(&config, port);
    let get = |path: &str| http(port, "GET", path, &[]).expect("the recorder answers");
    let ok = get("/throttle/it_thr");
    assert_eq!(ok.code, 200, "{}", ok.body);
    assert_eq!(ok.json()["reason"], "ok", "{}", ok.body);
    let freno = get("/check/osc/mysql/it_thr");
    assert_eq!(
        (freno.code, &freno.json()["StatusCode"]),
        (200, &200.into())
    );
    assert_eq!(
        http(port, "HEAD", "/throttle/it_thr", &[]).unwrap().code,
        200
    );
    // Unknown names: 404, naming what exists.
    let none = get("/throttle/nope");
    assert!(
        none.code == 404 && none.body.contains("it_thr"),
        "{}",
        none.body
    );
    let none = get("/throttle/it_thr?app=nope");
    assert!(
        none.code == 404 && none.body.contains("osc"),
        "{}",
        none.body
    );
    assert_eq!(get("/check/nope/mysql/it_thr").code, 404);

    // replica1's SQL thread stops: the verdict turns within max_lag + 2 intervals.
    let _resume = Restore(vec!["resume"], &[("REPLICA", "1")]);
    let stalled = Instant::now();
    lab(&["stall"], &[("REPLICA", "1")]);
    let turned = loop {
        let t = get("/throttle/it_thr");
        if t.code == 429 {
            break (stalled.elapsed(), t.json());
        }
        assert!(
            stalled.elapsed() < Duration::from_secs(5),
            "still 200: {}",
            t.body
        );
        sleep(Duration::from_millis(10));
    };
    let limit = Duration::from_millis(1_000 + 2 * INTERVAL_MS);
    eprintln!(
        "429 {:.0} ms after the stall began ({}: {})",
        turned.0.as_secs_f64() * 1e3,
        turned.1["reason"],
        turned.1["detail"]
    );
    assert!(
        turned.0 <= limit,
        "429 only after {:?}: {}",
        turned.0,
        turned.1
    );
    assert_eq!(turned.1["replica"], "r1", "{}", turned.1);
    // wait gives up at its timeout, with the reason.
    let (code, took, said) = wait(&config, &["--cluster", "it_thr", "--timeout", "1s"]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("still held back after 1s") && said.contains("r1"),
        "{said}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Resumed: wait returns once r1 is back under max_lag.
    let waiter = std::thread::spawn({
        let config = config.clone();
        move || wait(&config, &["--cluster", "it_thr", "--timeout", "30s"])
    });
    sleep(Duration::from_secs(2));
    let resumed = Instant::now();
    lab(&["resume"], &[("REPLICA", "1")]);
    let (code, _, said) = waiter.join().unwrap();
    let back = resumed.elapsed();
    eprintln!(
        "wait returned {:.0} ms after the resume",
        back.as_secs_f64() * 1e3
    );
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("waiting:"), "{said}");
    assert!(back < Duration::from_secs(3), "{back:?}");

    // A force file holds every writer of the cluster back, or one app's.
    std::fs::write(force.join("app.osc"), "").unwrap();
    assert_eq!(get("/check/osc/mysql/it_thr").code, 429);
    assert_eq!(get("/throttle/it_thr").code, 200);
    std::fs::write(force.join("cluster.it_thr"), "").unwrap();
    let forced = get("/throttle/it_thr");
    assert_eq!(
        (forced.code, &forced.json()["reason"]),
        (429, &"forced".into())
    );
    let metrics = get("/metrics").body;
    assert!(
        metrics.contains("lagtrace_throttled{cluster=\"it_thr\",app=\"\",reason=\"forced\"} 1"),
        "{metrics}"
    );
    for f in ["app.osc", "cluster.it_thr"] {
        std::fs::remove_file(force.join(f)).unwrap();
    }
    assert_eq!(get("/throttle/it_thr").code, 200);
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");

    // No recorder to ask: one line, exit 2.
    let (code, _, said) = wait(&config, &["--cluster", "it_thr"]);
    assert_eq!(code, Some(2), "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.contains("no recorder answers on http://127.0.0.1:"),
        "{said}"
    );
}
