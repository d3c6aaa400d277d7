//! The system clock stepped under a running recorder (libfaketime, Debian's `faketime`,
//! moves the wall clock of the recorder's process only; the monotonic clock stays real,
//! as after an NTP step): +1 h, then -1 h. No lag value may change, and the recorded
//! times stay continuous. Then a recorder started while the clock is an hour behind
//! appends a session an hour "before" the first one, and its lags are as true.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread::sleep;
use std::time::Duration;

use common::*;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const HOUR_US: i64 = 3_600_000_000;

/// `lagtrace record` with its wall clock offset by the contents of `offset_file`
/// (e.g. `+1h`), read again at every clock call.
fn record_with_fake_clock(config: &Path, store: &Path, offset_file: &Path, args: &[&str]) -> Child {
    start_record_env(
        config,
        store,
        args,
        &[
            ("LD_PRELOAD", LIBFAKETIME.as_ref()),
            ("FAKETIME_TIMESTAMP_FILE", offset_file.as_os_str()),
            ("FAKETIME_NO_CACHE", "1".as_ref()),
            ("DONT_FAKE_MONOTONIC", "1".as_ref()),
        ],
    )
}

/// The recorder's idea of the wall clock: the Date header of an HTTP answer, UTC µs.
fn date_header_us(port: u16) -> i64 {
    let r = http(port, "GET", "/status", &[]).expect("/status answers");
    let date = r.header("date").expect("a Date header").to_string();
    utc_us(&chrono_free_http_date(&date).unwrap_or_else(|| panic!("odd Date: {date}")))
}

/// `Sun, 29 Nov 2026 20:28:29 GMT` as `2026-11-29 20:28:29`.
fn chrono_free_http_date(date: &str) -> Option<String> {
    let parts: Vec<&str> = date.split_whitespace().collect();
    let [_, day, month, year, time, _] = parts[..] else {
        return None;
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|&x| x == month)? + 1;
    Some(format!("{year}-{m:02}-{day:0>2} {time}"))
}

fn set_offset(file: &Path, offset: &str) {
    std::fs::write(file, format!("{offset}\n")).unwrap();
}

/// A read made before the session's first beat (the binary log stream's setup reads the
/// row once as it starts): no lag to judge.
fn before_first_beat(r: &Row) -> bool {
    r.reason
        .as_deref()
        .is_some_and(|why| why.contains("before this session's first acknowledged"))
}

/// Checks that a healthy replica's successful rounds between two times have true,
/// tight lag and no hole, and returns how many there were.
fn assert_true_lags(rows: &[Row], replica: &str, from_us: i64, to_us: i64) -> usize {
    let mine: Vec<&Row> = rows
        .iter()
        .filter(|r| r.replica == replica && !before_first_beat(r))
        .filter(|r| (from_us..=to_us).contains(&r.t_us))
        .collect();
    for r in &mine {
        assert_eq!(r.outcome, "ok", "{r:?}");
        assert_eq!(r.lag_kind.as_deref(), Some("bounded"), "{r:?}");
        let (lo, hi) = (r.lo_ms.unwrap(), r.hi_ms.unwrap());
        assert!(lo < 50.0 && hi < 100.0, "{r:?}");
    }
    for w in mine.windows(2) {
        let step_ms = (w[1].t_us - w[0].t_us) / 1000;
        assert!(
            (0..300).contains(&step_ms),
            "a {step_ms} ms step between rounds: {w:?}"
        );
    }
    mine.len()
}

#[test]
fn clock_steps_during_and_before_recording_change_no_lag() {
    steps_change_no_lag("poll");
}

/// The binary log stream takes each message's arrival from the kernel's receive time,
/// which is on the kernel's wall clock: a shifted clock of the process's own must not
/// make those look an hour old or an hour ahead.
#[test]
fn clock_steps_change_no_lag_read_from_the_binary_log_stream() {
    steps_change_no_lag("binlog");
}

fn steps_change_no_lag(probe: &str) {
    if !Path::new(LIBFAKETIME).exists() {
        panic!("{LIBFAKETIME} is missing: apt-get install faketime (make test installs it)");
    }
    let _lab = take_lab();
    let dir = TempDir::new(&format!("clock-steps-{probe}"));
    let record = format!("interval = \"10ms\"\nprobe = \"{probe}\"");
    let (config, port) = http_lab_config(&dir, "it_clock", PRIMARY, &REPLICAS, &record);
    let store: PathBuf = dir.path().join("s.redb");
    let offset = dir.path().join("offset");
    set_offset(&offset, "+0");

    let started = now_us();
    let child = record_with_fake_clock(&config, &store, &offset, &[]);
    assert!(
        wait_http(port, "/check/r1", Duration::from_secs(10), |r| r.code
            == 200)
        .is_some(),
        "r1 never entered the pool"
    );
    sleep(Duration::from_secs(2));
    set_offset(&offset, "+1h");
    sleep(Duration::from_secs(1));
    // The step reached the recorder's process (its HTTP Date header reads the wall
    // clock), and its checks still answer from the real lag.
    let ahead = date_header_us(port) - now_us();
    assert!(
        (HOUR_US - 5_000_000..HOUR_US + 5_000_000).contains(&ahead),
        "{ahead} µs"
    );
    sleep(Duration::from_secs(2));
    set_offset(&offset, "-1h");
    // (hyper caches the Date header until the clock passes its next second, so a step
    // back does not show there; session 2 below shows that one reaches the process.)
    sleep(Duration::from_secs(1));
    assert_eq!(http(port, "GET", "/check/r1", &[]).unwrap().code, 200);
    sleep(Duration::from_secs(2));
    signal(child.id(), "INT");
    finish_record(child);
    let stopped = now_us();

    // Session 1: every round stamped by the real (monotonic) time, continuous through
    // both steps, with the lag of a healthy replica.
    let rows = export_rows(&store);
    for replica in ["r1", "r2"] {
        let n = assert_true_lags(&rows, replica, started, stopped);
        assert!(n > 500, "{replica}: {n} rounds in 9 s at 10 ms");
        assert_eq!(
            rows.iter()
                .filter(|r| r.replica == replica && !before_first_beat(r))
                .count(),
            n,
            "{replica}: rounds stamped outside the real recording time"
        );
    }

    // Session 2, started with the clock an hour behind: its rounds are stamped an hour
    // early (its anchor is the wall clock), and their lags are as true.
    set_offset(&offset, "-1h");
    let child = record_with_fake_clock(&config, &store, &offset, &["--duration", "4s"]);
    finish_record(child);
    let rows = export_rows(&store);
    for replica in ["r1", "r2"] {
        let n = assert_true_lags(
            &rows,
            replica,
            started - HOUR_US - 60_000_000,
            started - 60_000_000,
        );
        assert!(n > 200, "{replica}: {n} rounds in 4 s at 10 ms");
    }
    let doc = analyze_json(&store);
    for r in doc["replicas"].as_array().unwrap() {
        assert_eq!(r["episodes"].as_array().unwrap().len(), 0, "{r:#}");
        let max_ms = r["lag"]["percentiles"]["max_ms"].as_f64().unwrap();
        assert!(max_ms < 100.0, "{}: max lag {max_ms} ms", r["replica"]);
        // Session 2 numbers its beats above session 1's but sent them an hour earlier:
        // session 1's rounds are all still matched (before, half were foreign beats).
        assert_eq!(r["coverage"]["foreign_rounds"], 0, "{r:#}");
    }
    for replica in ["r1", "r2"] {
        let n = assert_true_lags(&rows, replica, started, stopped);
        assert!(n > 500, "{replica}: {n} rounds of session 1 left");
    }
}

/// `check` numbers its beat with the wall clock: after a step back its row holds a
/// higher seq, which made every later check UNKNOWN ("another check"). It now numbers
/// just above the row.
#[test]
fn check_after_a_clock_step_back_is_ok() {
    let _lab = take_lab();
    let dir = TempDir::new("clock-check");
    let config = init_config(
        &dir,
        &lab_config("it_clock_check", PRIMARY, &REPLICAS, "LAGTRACE_IT_PASSWORD"),
    );
    let offset = dir.path().join("offset");
    let check = |at: &str| {
        set_offset(&offset, at);
        let out = lagtrace()
            .args(["check", "-c"])
            .arg(&config)
            .env("LAGTRACE_IT_PASSWORD", LAB_PASSWORD)
            .env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", &offset)
            .env("FAKETIME_NO_CACHE", "1")
            .env("DONT_FAKE_MONOTONIC", "1")
            .output()
            .unwrap();
        let (stdout, stderr) = texts(&out);
        (out.status.code(), format!("{stdout}{stderr}"))
    };
    let (code, text) = check("+0");
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = check("-1h");
    assert_eq!(code, Some(0), "a check an hour behind the last: {text}");
    assert!(text.starts_with("OK"), "{text}");
}
