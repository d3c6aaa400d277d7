//! `record`'s live listeners against the lab, as a load balancer, Prometheus and an
//! operator's curl would use them: /check, /ignore-lag, maintenance files, /status,
//! /metrics (checked by promtool) and the HAProxy agent protocol. These tests change the
//! lab, so they take turns through one lock.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Every field the issue promises in a check's JSON body.
const FIELDS: [&str; 13] = [
    "replica",
    "cluster",
    "state",
    "reason",
    "since",
    "lag_ms",
    "lag_lo_ms",
    "lag_hi_ms",
    "vector",
    "io_running",
    "sql_running",
    "seconds_behind_master",
    "sql_delay_s",
];

/// Waits until both replicas are in the pool (the recorder has measured lag and
/// polled status), failing the test after 15 s.
fn wait_in_pool(port: u16) {
    for (name, _) in REPLICAS {
        let path = format!("/check/{name}");
        let took = wait_http(port, &path, Duration::from_secs(15), |r| r.code == 200);
        assert!(
            took.is_some(),
            "{name} never came into the pool: {:?}",
            http(port, "GET", &path, &[])
        );
    }
}

fn agent(port: u16, line: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the agent");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn checks_status_metrics_and_agent_answer_from_the_recorder() {
    let _lab = take_lab();
    let dir = TempDir::new("http");
    let (port, agent_port) = (free_port(), free_port());
    let config = live_config(&dir, "it_http", port, agent_port);
    let _rec = Recorder::start(&config);
    wait_in_pool(port);

    // A healthy replica: 200 with every field.
    let r = http(port, "GET", "/check/r1", &[]).unwrap();
    assert_eq!(r.code, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    for f in FIELDS {
        assert!(doc.get(f).is_some(), "no {f} in {doc}");
    }
    assert_eq!(
        (doc["replica"].as_str(), doc["state"].as_str()),
        (Some("r1"), Some("in"))
    );
    assert_eq!(doc["reason"], "healthy");
    let lag_ms = doc["lag_ms"].as_f64().expect("lag measured");
    let (lo, hi) = (
        doc["lag_lo_ms"].as_f64().unwrap(),
        doc["lag_hi_ms"].as_f64().unwrap(),
    );
    assert!(lo <= lag_ms && lag_ms <= hi && hi < 1000.0, "{doc}");
    assert_eq!(doc["io_running"], true);
    assert_eq!(doc["seconds_behind_master"], 0);

    // HEAD: the status alone.
    let r = http(port, "HEAD", "/check/r2", &[]).unwrap();
    assert_eq!((r.code, r.body.as_str()), (200, ""));
    assert_eq!(http(port, "GET", "/ignore-lag/r2", &[]).unwrap().code, 200);

    // Errors: unknown replica, unknown or malformed paths, other methods, bad HTTP.
    let r = http(port, "GET", "/check/nosuch", &[]).unwrap();
    assert_eq!(r.code, 404);
    assert!(
        r.json()["error"].as_str().unwrap().contains("nosuch"),
        "{r:?}"
    );
    for path in [
        "/check/",
        "/check",
        "/check/r1/x",
        "/",
        "/checks/r1",
        "/check/..%2Fr1",
    ] {
        let r = http(port, "GET", path, &[]).unwrap();
        assert_eq!(r.code, 404, "{path}: {r:?}");
        assert!(r.json().get("error").is_some(), "{path}: {r:?}");
    }
    let r = http(port, "POST", "/check/r1", &["Content-Length: 0"]).unwrap();
    assert_eq!(r.code, 405, "{r:?}");
    assert!(r.json().get("error").is_some());
    let r = http(port, "DELETE", "/status", &[]).unwrap();
    assert_eq!(r.code, 405, "{r:?}");
    let r = http_raw(port, "GARBAGE\r\n\r\n").unwrap();
    assert_eq!(r.code, 400, "{r:?}");

    // /status: the whole topology.
    let status = http(port, "GET", "/status", &[]).unwrap().json();
    let replicas = status["clusters"][0]["replicas"].as_array().unwrap();
    assert_eq!(status["clusters"][0]["cluster"], "it_http");
    assert_eq!(replicas.len(), 2);
    assert!(status["clusters"][0]["beats_ok"].as_u64().unwrap() > 0);

    // /metrics: classic text that promtool accepts, OpenMetrics when asked for.
    let r = http(port, "GET", "/metrics", &[]).unwrap();
    assert_eq!(r.code, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    for name in [
        "lagtrace_replica_lag_seconds{cluster=\"it_http\",replica=\"r1\"}",
        "lagtrace_replica_lag_lower_seconds{",
        "lagtrace_replica_lag_upper_seconds{",
        "lagtrace_replica_vector{",
        "lagtrace_replica_io_running{",
        "lagtrace_replica_sql_running{",
        "lagtrace_replica_seconds_behind_master{",
        "lagtrace_replica_heartbeat_age_seconds{",
        "lagtrace_beats_total{cluster=\"it_http\"}",
        "lagtrace_build_info{version=",
    ] {
        assert!(r.body.contains(name), "no {name} in\n{}", r.body);
    }
    promtool_accepts(&r.body);
    let r = http(
        port,
        "GET",
        "/metrics",
        &["Accept: application/openmetrics-text; version=1.0.0"],
    )
    .unwrap();
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(r.body.ends_with("# EOF\n"), "{}", r.body);

    // The agent protocol.
    assert_eq!(agent(agent_port, "r1\n"), "up ready\n");
    assert_eq!(
        agent(agent_port, "nosuch\n"),
        "down #unknown replica nosuch\n"
    );
}

/// Runs `promtool check metrics` on `text`; fails the test with its complaints.
fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): `make test` installs it (Debian package prometheus)")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success(),
        "promtool rejected /metrics: {stdout}{stderr}\n{text}"
    );
}

#[test]
fn lag_stall_and_maintenance_change_the_answers() {
    let _lab = take_lab();
    let dir = TempDir::new("http-stall");
    let (port, agent_port) = (free_port(), free_port());
    let config = live_config(&dir, "it_http", port, agent_port);
    let _rec = Recorder::start(&config);
    wait_in_pool(port);

    // The heartbeat table locked on r1 for 4 s: the SQL thread runs but lags. Out of
    // the pool as lagging; still fine for a backup pool.
    let _restore = Restore(vec!["resume"], &[]);
    let blocker = std::thread::spawn(|| lab(&["block"], &[("LOAD_SECONDS", "4")]));
    let took = wait_http(port, "/check/r1", Duration::from_secs(4), |r| r.code == 503);
    let r = http(port, "GET", "/check/r1", &[]).unwrap();
    assert!(took.is_some(), "r1 stayed in the pool while lagging: {r:?}");
    assert_eq!(r.json()["reason"], "lagging", "{r:?}");
    // Judged by the point estimate (the bounds are one beat wide, narrower than max_lag).
    let doc = r.json();
    let (lo, lag) = (
        doc["lag_lo_ms"].as_f64().unwrap(),
        doc["lag_ms"].as_f64().unwrap(),
    );
    assert!(lag > 1000.0 && lo <= lag, "{r:?}");
    let r = http(port, "GET", "/ignore-lag/r1", &[]).unwrap();
    assert_eq!(
        r.code, 200,
        "ignore-lag should keep a lagging replica: {r:?}"
    );
    assert_eq!(http(port, "GET", "/check/r2", &[]).unwrap().code, 200);
    assert_eq!(agent(agent_port, "r1\n").split(' ').next(), Some("down"));
    blocker.join().unwrap();
    let back = wait_http(port, "/check/r1", Duration::from_secs(5), |r| r.code == 200);
    assert!(back.is_some(), "r1 did not come back after the lock");

    // The SQL thread stopped: out for both checks.
    lab(&["stall"], &[]);
    let took = wait_http(port, "/ignore-lag/r1", Duration::from_secs(3), |r| {
        r.code == 503
    });
    assert!(took.is_some(), "ignore-lag kept a stopped replica");
    let r = http(port, "GET", "/check/r1", &[]).unwrap();
    assert_eq!(r.code, 503);
    assert_eq!(r.json()["sql_running"], false, "{r:?}");
    lab(&["resume"], &[]);
    assert!(wait_http(port, "/check/r1", Duration::from_secs(5), |r| r.code == 200).is_some());

    // A maintenance file: 404 for both checks, at once, and back when removed.
    let file = dir.path().join("maintenance").join("r1");
    std::fs::write(&file, "kernel upgrade\n").unwrap();
    let r = http(port, "GET", "/check/r1", &[]).unwrap();
    assert_eq!(
        (r.code, r.json()["state"].as_str()),
        (404, Some("maintenance"))
    );
    assert_eq!(http(port, "GET", "/ignore-lag/r1", &[]).unwrap().code, 404);
    assert!(agent(agent_port, "r1\n").starts_with("maint"));
    std::fs::remove_file(&file).unwrap();
    assert_eq!(http(port, "GET", "/check/r1", &[]).unwrap().code, 200);
}

/// Runs `record` on `config` until it exits by itself (within 10 s): exit code and
/// stderr.
fn record_fails(config: &Path) -> (Option<i32>, String) {
    let mut rec = Recorder::start(config);
    for _ in 0..200 {
        if let Ok(Some(status)) = rec.0.try_wait() {
            let mut err = String::new();
            rec.0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("record kept running");
}

#[test]
fn listen_problems_are_one_clear_line_before_any_store() {
    let _lab = take_lab();
    let dir = TempDir::new("http-bind");
    let (port, agent_port) = (free_port(), free_port());
    let config = live_config(&dir, "it_http", port, agent_port);
    let store = dir.path().join("live.redb");

    // The port is taken.
    let taken = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (code, err) = record_fails(&config);
    drop(taken);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        !store.exists(),
        "a store was created by a recorder that could not start"
    );

    // A non-loopback address warns (this one, from TEST-NET-1, cannot be bound here:
    // nothing listens beyond loopback).
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&format!("127.0.0.1:{port}"), "192.0.2.1:9104");
    let config = dir.write("nonlocal.toml", &text);
    let (code, err) = record_fails(&config);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not a loopback address"), "{err}");
    assert!(err.contains("cannot listen on 192.0.2.1:9104"), "{err}");
}
