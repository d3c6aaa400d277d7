//! `lagtrace check` against the lab's real servers, as Nagios or Icinga would run it:
//! the exit code is the plugin's state. These tests change the lab, so they take turns
//! through one lock.

mod common;

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use common::*;

fn setup(dir: &TempDir) -> PathBuf {
    init_config(
        dir,
        &lab_config("it_check", PRIMARY, &REPLICAS, "LAGTRACE_IT_PASSWORD"),
    )
}

/// Runs `lagtrace check -c CONFIG ARGS`: (exit code, stdout lines, stderr).
fn check(config: &Path, args: &[&str]) -> (i32, Vec<String>, String) {
    let out = lagtrace()
        .args(["check", "-c"])
        .arg(config)
        .args(args)
        .env("LAGTRACE_IT_PASSWORD", LAB_PASSWORD)
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    let code = out.status.code().expect("exited");
    (code, stdout.lines().map(String::from).collect(), stderr)
}

/// The line about `replica`.
fn line<'a>(lines: &'a [String], replica: &str) -> &'a str {
    let name = format!(" - it_check/{replica}: ");
    lines
        .iter()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("no line for {replica} in {lines:?}"))
}

/// The perfdata lag value in seconds (`lag=0.003s;1;5;0`).
fn perf_lag_s(line: &str) -> f64 {
    let value = line
        .split("| lag=")
        .nth(1)
        .and_then(|p| p.split(';').next())
        .unwrap_or_else(|| panic!("no perfdata in {line:?}"));
    value
        .strip_suffix('s')
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad perfdata value in {line:?}"))
}

#[test]
fn healthy_replicas_are_ok_with_perfdata() {
    let _lab = take_lab();
    ensure_lab();
    let dir = TempDir::new("check-ok");
    let config = setup(&dir);
    let (code, lines, stderr) = check(&config, &[]);
    assert_eq!(code, 0, "{lines:?} {stderr}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    for r in ["r1", "r2"] {
        let l = line(&lines, r);
        assert!(l.starts_with("OK - "), "{l}");
        assert!(l.ends_with(";1;5;0"), "{l}");
        let lag = perf_lag_s(l);
        assert!((0.0..0.5).contains(&lag), "{l}");
    }
    // One replica only.
    let (code, lines, _) = check(&config, &["--replica", "r2"]);
    assert_eq!((code, lines.len()), (0, 1), "{lines:?}");
}

#[test]
fn a_stall_longer_than_crit_is_critical_and_then_ok_again() {
    let _lab = take_lab();
    ensure_lab();
    let dir = TempDir::new("check-stall");
    let config = setup(&dir);
    let _restore = Restore(vec!["resume"], &[("REPLICA", "1")]);
    lab(&["stall"], &[("REPLICA", "1")]);
    sleep(Duration::from_secs(1));
    let (code, lines, stderr) = check(
        &config,
        &["--warn", "1s", "--crit", "2s", "--timeout", "3s"],
    );
    assert_eq!(code, 2, "{lines:?} {stderr}");
    let l = line(&lines, "r1");
    assert!(l.starts_with("CRITICAL - "), "{l}");
    assert!(lines[0].starts_with("CRITICAL"), "worst first: {lines:?}");
    assert!(l.contains("SQL thread stopped"), "{l}");
    assert!(perf_lag_s(l) >= 2.0, "{l}");
    assert!(line(&lines, "r2").starts_with("OK - "), "{lines:?}");

    lab(&["resume"], &[("REPLICA", "1")]);
    sleep(Duration::from_millis(500));
    let (code, lines, _) = check(&config, &[]);
    assert_eq!(code, 0, "{lines:?}");
}

#[test]
fn a_stopped_replica_server_is_unknown() {
    let _lab = take_lab();
    ensure_lab();
    let dir = TempDir::new("check-down");
    let config = setup(&dir);
    let _restore = Restore(vec!["up"], &[]);
    signal(lab_pid("replica2"), "KILL");
    sleep(Duration::from_millis(500));
    let (code, lines, stderr) = check(&config, &[]);
    assert_eq!(code, 3, "{lines:?} {stderr}");
    let l = line(&lines, "r2");
    assert!(l.starts_with("UNKNOWN - "), "{l}");
    assert!(
        l.contains("unreachable") && l.ends_with("| lag=U;1;5;0"),
        "{l}"
    );
    assert!(line(&lines, "r1").starts_with("OK - "), "{lines:?}");
    lab(&["up"], &[]);
}

#[test]
fn bad_config_and_arguments_are_unknown_not_critical() {
    let dir = TempDir::new("check-bad");
    let config = dir.write(
        "lagtrace.toml",
        &lab_config("it_check", PRIMARY, &REPLICAS, "LAGTRACE_IT_PASSWORD"),
    );
    let broken = dir.write("broken.toml", "[connection\n");
    let cases: [(&Path, &[&str]); 5] = [
        (&broken, &[]),
        (&config, &["--replica", "nope"]),
        (&config, &["--warn", "5s", "--crit", "1s"]),
        (&config, &["--crit", "soon"]),
        (&config, &["--bogus"]),
    ];
    for (config, args) in cases {
        let (code, lines, stderr) = check(config, args);
        assert_eq!(code, 3, "{args:?}: {lines:?} {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
    // A global flag before the subcommand does not make bad arguments CRITICAL.
    let out = lagtrace()
        .args(["-v", "check", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{:?}", texts(&out));
    // Without a password the check cannot run either.
    let out = lagtrace()
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}
