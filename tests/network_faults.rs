//! Network faults between the recorder and its servers, made by a proxy the test
//! controls (tests/common/proxy.rs) in front of the primary and of replica r1: a delay
//! of 250 ms, then 5 s, then back; a silent cut (connections held open, nothing
//! forwarded), then back; reset connections, then back. Each test asserts what was
//! recorded and what the live checks said, not only that the recorder lived.

mod common;

use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::proxy::{Mode, Proxy};
use common::*;
use serde_json::Value;

/// One fault (or its absence) held for a while.
struct Phase {
    name: &'static str,
    mode: Mode,
    hold: Duration,
}

/// The sequence the issue asks for, applied to one proxy.
fn fault_sequence() -> Vec<Phase> {
    let p = |name, mode, secs| Phase {
        name,
        mode,
        hold: Duration::from_secs(secs),
    };
    vec![
        p("before", Mode::Pass, 2),
        p("delay 250ms", Mode::Delay(Duration::from_millis(250)), 3),
        p("delay 5s", Mode::Delay(Duration::from_secs(5)), 4),
        p("after delay", Mode::Pass, 3),
        p("silent", Mode::Silent, 4),
        p("after silent", Mode::Pass, 3),
        p("reset", Mode::Reset, 3),
        p("after reset", Mode::Pass, 3),
    ]
}

/// One answer of the live check during a phase.
#[derive(Debug)]
struct Answer {
    at: Duration,
    replica: &'static str,
    code: u16,
    reason: String,
}

/// Runs the phases on `proxy`, asking `/check/{r1,r2}` every 100 ms; returns each
/// phase's start (UTC µs) and answers.
fn drive(proxy: &Proxy, port: u16) -> Vec<(&'static str, i64, Vec<Answer>)> {
    let mut out = Vec::new();
    for phase in fault_sequence() {
        proxy.set(phase.mode);
        let start_us = now_us();
        let start = Instant::now();
        let mut answers = Vec::new();
        while start.elapsed() < phase.hold {
            for replica in ["r1", "r2"] {
                let r = http(port, "GET", &format!("/check/{replica}"), &[])
                    .expect("the live check answers during a network fault");
                answers.push(Answer {
                    at: start.elapsed(),
                    replica,
                    code: r.code,
                    reason: r.json()["reason"].as_str().unwrap_or("").to_string(),
                });
            }
            sleep(Duration::from_millis(100));
        }
        out.push((phase.name, start_us, answers));
    }
    out
}

/// The outcomes of `replica`'s exported rounds between two times, counted by name.
fn outcomes(rows: &[Row], replica: &str, from_us: i64, to_us: i64) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.replica == replica && (from_us..to_us).contains(&r.t_us))
    {
        *counts.entry(r.outcome.clone()).or_default() += 1;
    }
    counts
}

/// The time from a phase's start to the first answer of 200 for `replica` that follows
/// an answer out of the pool (or the first of the phase, when it starts in).
fn back_in(answers: &[Answer], replica: &str) -> Option<Duration> {
    let mine: Vec<&Answer> = answers.iter().filter(|a| a.replica == replica).collect();
    let first_in = match mine.iter().position(|a| a.code != 200) {
        None => 0,
        Some(out) => out + mine[out..].iter().position(|a| a.code == 200)?,
    };
    Some(mine[first_in].at)
}

/// The time from a phase's start to the first answer out of the pool for `replica`.
fn out_after(answers: &[Answer], replica: &str) -> Option<Duration> {
    answers
        .iter()
        .find(|a| a.replica == replica && a.code != 200)
        .map(|a| a.at)
}

/// What one recording through the faults left behind.
struct Recording {
    store: std::path::PathBuf,
    phases: Vec<(&'static str, i64, Vec<Answer>)>,
    /// The recorder's /status at the end.
    status: Value,
    /// The recorder's log (default level: warn).
    stderr: String,
}

/// Records through a proxy in front of `target` ("primary" or "r1") while the phases run.
fn record_through_faults(dir: &TempDir, cluster: &str, target: &str) -> Recording {
    let proxy = Proxy::start(if target == "primary" {
        PRIMARY
    } else {
        REPLICAS[0].1
    });
    let via = proxy.address();
    let (primary, r1) = if target == "primary" {
        (via.as_str(), REPLICAS[0].1)
    } else {
        (PRIMARY, via.as_str())
    };
    let store = dir.path().join("s.redb");
    let (config, port) = http_lab_config(
        dir,
        cluster,
        primary,
        &[("r1", r1), ("r2", REPLICAS[1].1)],
        &format!("interval = \"50ms\"\nstore = \"{}\"", store.display()),
    );
    let recorder = start_in_pool(&config, port);
    let phases = drive(&proxy, port);
    let status = http(port, "GET", "/status", &[]).unwrap().json();
    let (_, stderr) = recorder.stop();
    Recording {
        store,
        phases,
        status,
        stderr,
    }
}

/// How many runs of failures of `probe` on `node` the log opened and closed.
fn logged_runs(stderr: &str, probe: &str, node: &str) -> (usize, usize) {
    let count = |what: &str| {
        stderr
            .lines()
            .filter(|l| l.contains(what) && l.contains(&format!(" node={node} ")))
            .count()
    };
    (
        count(&format!("{probe} failed (repeats at debug level")),
        count(&format!("{probe} recovered")),
    )
}

/// Every successful round of a healthy replica keeps a lower bound near 0 (the lab's
/// replicas never lag), and bounded rounds have lo <= lag <= hi.
fn assert_bounds_hold(rows: &[Row]) {
    for r in rows.iter().filter(|r| r.outcome == "ok") {
        if let Some(lo) = r.lo_ms {
            assert!(lo < 50.0, "a healthy replica got lag >= {lo} ms: {r:?}");
        }
        if let (Some(lag), Some(lo), Some(hi)) = (r.lag_ms, r.lo_ms, r.hi_ms) {
            assert!(lo <= lag && lag <= hi, "{r:?}");
        }
    }
}

/// Prints what each phase recorded, for the test log and the figures.
fn report(
    rows: &[Row],
    phases: &[(&'static str, i64, Vec<Answer>)],
    end_us: i64,
) -> Vec<BTreeMap<String, usize>> {
    let mut per_phase = Vec::new();
    for (i, (name, start_us, answers)) in phases.iter().enumerate() {
        let to = phases.get(i + 1).map_or(end_us, |p| p.1);
        let counts = outcomes(rows, "r1", *start_us, to);
        eprintln!(
            "{name}: r1 rounds {counts:?}; r1 out after {:?}, in after {:?}; r1 reasons {:?}",
            out_after(answers, "r1"),
            back_in(answers, "r1"),
            answers
                .iter()
                .filter(|a| a.replica == "r1")
                .map(|a| a.reason.as_str())
                .collect::<std::collections::BTreeSet<_>>()
        );
        for r in rows
            .iter()
            .filter(|r| r.replica == "r1" && r.outcome != "ok" && (*start_us..to).contains(&r.t_us))
        {
            eprintln!("    {}: {:?}", r.outcome, r.reason);
        }
        per_phase.push(counts);
    }
    per_phase
}

#[test]
fn a_replica_behind_a_slow_then_cut_then_resetting_network_is_unreachable_never_lagging() {
    let _lab = take_lab();
    let dir = TempDir::new("net-replica");
    let Recording {
        store,
        phases,
        status,
        stderr,
    } = record_through_faults(&dir, "it_net_r", "r1");
    let rows = export_rows(&store);
    let per_phase = report(&rows, &phases, now_us());
    eprintln!("probe errors: {}", status["probe_errors"]);

    for (name, _, answers) in &phases {
        for a in answers {
            assert_ne!(a.reason, "lagging", "{name}: {a:?}");
            if a.replica == "r2" {
                assert_eq!(a.code, 200, "{name}: r2 left the pool: {a:?}");
            }
        }
    }
    // 250 ms reads still measure: r1 stays in and every read is its own round.
    let (_, _, delayed) = &phases[1];
    assert!(delayed.iter().all(|a| a.code == 200), "{delayed:?}");
    assert!(
        per_phase[1].get("ok").copied().unwrap_or(0) >= 5,
        "{:?}",
        per_phase[1]
    );
    // A 5 s delay and a silent cut time out; a reset is an I/O error. Each ends the
    // phase out of the pool as unreachable or stale.
    for (i, failure) in [(2, "timeout"), (4, "timeout"), (6, "io_error")] {
        let (name, _, answers) = &phases[i];
        assert!(
            per_phase[i].get(failure).copied().unwrap_or(0) > 0,
            "{name}: no {failure} recorded: {:?}",
            per_phase[i]
        );
        let last = answers.iter().rev().find(|a| a.replica == "r1").unwrap();
        assert!(
            last.code != 200 && ["unreachable", "stale"].contains(&last.reason.as_str()),
            "{name}: r1 ends the fault as {last:?}"
        );
    }
    // Each fault's end is followed by r1 back in the pool within one backoff (1 s)
    // plus a reconnect.
    for i in [3, 5, 7] {
        let (name, _, answers) = &phases[i];
        let back = back_in(answers, "r1");
        assert!(
            back.is_some_and(|d| d < Duration::from_millis(2500)),
            "{name}: r1 back in after {back:?}"
        );
    }
    assert!(
        status["probe_errors"]["read"]["timeout"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{status}"
    );
    // Three faults, each logged once when it starts and once when it ends.
    let (opened, closed) = logged_runs(&stderr, "read", "r1");
    assert!(
        opened == 3 && closed == 3,
        "{opened} runs, {closed} recoveries: {stderr}"
    );
    assert_eq!(status["clusters"][0]["beats_failed"], 0, "{status}");
    assert_bounds_hold(&rows);

    let doc = analyze_json(&store);
    for r in doc["replicas"].as_array().unwrap() {
        assert_eq!(r["episodes"].as_array().unwrap().len(), 0, "{r:#}");
        assert_eq!(r["lag"]["above_max_lag_s"], 0.0, "{r:#}");
    }
}

#[test]
fn a_primary_behind_a_slow_then_cut_then_resetting_network_is_an_outage_never_lag() {
    let _lab = take_lab();
    let dir = TempDir::new("net-primary");
    let Recording {
        store,
        phases,
        status,
        stderr,
    } = record_through_faults(&dir, "it_net_p", "primary");
    let rows = export_rows(&store);
    report(&rows, &phases, now_us());
    eprintln!("probe errors: {}", status["probe_errors"]);

    // Only the primary's network fails: both replicas stay in the pool throughout.
    for (name, _, answers) in &phases {
        for a in answers {
            assert_eq!(a.code, 200, "{name}: {a:?}");
        }
    }
    let beats = &status["probe_errors"]["beat"];
    assert!(beats["timeout"].as_u64().unwrap_or(0) > 0, "{status}");
    assert!(
        beats["io_error"].as_u64().unwrap_or(0) + beats["driver_error"].as_u64().unwrap_or(0) > 0,
        "{status}"
    );
    let (opened, closed) = logged_runs(&stderr, "beat", "primary");
    assert!(
        opened == 3 && closed == 3,
        "{opened} runs, {closed} recoveries: {stderr}"
    );
    assert_bounds_hold(&rows);

    let doc = analyze_json(&store);
    let outages = doc["clusters"][0]["primary_outages"].as_array().unwrap();
    eprintln!("primary outages: {outages:?}");
    // One outage per fault that stops acknowledgements (a 250 ms delay does not), each
    // as long as the fault plus at most a backoff and a reconnect.
    let held: Vec<f64> = fault_sequence()
        .iter()
        .filter(|p| {
            matches!(p.mode, Mode::Silent | Mode::Reset)
                || p.mode == Mode::Delay(Duration::from_secs(5))
        })
        .map(|p| p.hold.as_secs_f64())
        .collect();
    assert_eq!(outages.len(), held.len(), "{outages:#?}");
    for (o, held) in outages.iter().zip(&held) {
        let secs = o["duration_s"].as_f64().unwrap();
        assert!(
            (held - 0.5..held + 2.0).contains(&secs),
            "a {held} s fault is an outage of {secs} s"
        );
    }
    for r in doc["replicas"].as_array().unwrap() {
        assert_eq!(r["episodes"].as_array().unwrap().len(), 0, "{r:#}");
        assert_eq!(r["lag"]["above_max_lag_s"], 0.0, "{r:#}");
    }
}

/// The proxies' client-to-server delay in the reconnection test: a query takes one
/// delay, a MariaDB connection six (authentication, the driver's and the session's
/// settings, the prepared statement: 1.23 s when it was timed with the first read).
const SLOW_LINK: Duration = Duration::from_millis(200);

/// The primary and r1 behind a link that delays each request by [`SLOW_LINK`] from the
/// start; their connections are reset half-way and made again over it. A connection's
/// setup is not lag:
/// - r1's reads each take one delay, never the several a connection takes: its first
///   read included, and the first after the reset;
/// - r2's rounds that show the newest beat are bounded by about that beat's one-delay
///   write. The first new beat after the reconnection is bounded too: timed with its
///   connection, it took longer than the continuity limit (two intervals) and lost its
///   upper bound.
#[test]
fn a_reconnection_over_a_slow_link_does_not_widen_the_bounds() {
    let _lab = take_lab();
    let dir = TempDir::new("net-reconnect");
    let (primary, r1) = (Proxy::start(PRIMARY), Proxy::start(REPLICAS[0].1));
    for proxy in [&primary, &r1] {
        proxy.set(Mode::Delay(SLOW_LINK));
    }
    let store = dir.path().join("s.redb");
    let (config, port) = http_lab_config(
        &dir,
        "it_net_reconnect",
        &primary.address(),
        &[("r1", &r1.address()), ("r2", REPLICAS[1].1)],
        &format!("interval = \"250ms\"\nstore = \"{}\"", store.display()),
    );
    let recorder = start_in_pool(&config, port);
    sleep(Duration::from_secs(3));
    for proxy in [&primary, &r1] {
        proxy.set(Mode::Reset);
    }
    sleep(Duration::from_millis(500));
    let reconnect_us = now_us();
    for proxy in [&primary, &r1] {
        proxy.set(Mode::Delay(SLOW_LINK));
    }
    sleep(Duration::from_secs(4));
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");

    let limit_ms = 2.0 * SLOW_LINK.as_secs_f64() * 1e3;
    let reads = export_json(&store, &["--reads", "--replica", "r1"]);
    let at = |r: &Value| utc_us(r["time_utc"].as_str().unwrap());
    let ok: Vec<&Value> = reads.iter().filter(|r| r["outcome"] == "ok").collect();
    let failed_at_reset = reads
        .iter()
        .filter(|r| r["outcome"] != "ok" && at(r) < reconnect_us)
        .count();
    let ok_after = ok.iter().filter(|r| at(r) > reconnect_us).count();
    eprintln!(
        "r1: {} reads ok ({ok_after} after the reconnection), {failed_at_reset} failed at the reset; slowest {:?} ms",
        ok.len(),
        ok.iter()
            .filter_map(|r| r["rtt_ms"].as_f64())
            .reduce(f64::max)
    );
    assert!(failed_at_reset > 0 && ok_after >= 5, "{reads:#?}");
    for r in &ok {
        let rtt_ms = r["rtt_ms"].as_f64().unwrap();
        assert!(rtt_ms < limit_ms, "a read timed with its connection: {r}");
    }

    let rows: Vec<Row> = export_rows(&store)
        .into_iter()
        .filter(|r| r.replica == "r2" && r.outcome == "ok")
        .collect();
    let newest: Vec<&Row> = rows
        .iter()
        .filter(|r| r.lag_kind.as_deref() == Some("bounded") && r.lo_ms == Some(0.0))
        .collect();
    eprintln!(
        "r2: {} of {} rounds bounded showing the newest beat; widest {:?} ms",
        newest.len(),
        rows.len(),
        newest.iter().filter_map(|r| r.hi_ms).reduce(f64::max)
    );
    for r in &newest {
        assert!(
            r.hi_ms.unwrap() < limit_ms,
            "a beat timed with its connection: {r:?}"
        );
    }
    let shown_at_reconnect = rows
        .iter()
        .take_while(|r| r.t_us < reconnect_us)
        .last()
        .and_then(|r| r.seq);
    let first_new = rows
        .iter()
        .find(|r| r.t_us > reconnect_us && r.seq != shown_at_reconnect)
        .expect("r2 shows a beat written after the reconnection");
    assert!(
        first_new.lag_kind.as_deref() == Some("bounded") && first_new.hi_ms < Some(limit_ms),
        "the first beat after the reconnection: {first_new:?}"
    );
}
