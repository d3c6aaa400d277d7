//! PostgreSQL clusters (`kind = "postgres"`) against the PostgreSQL lab (`make up
//! DB=postgres`: a primary and two streaming standbys on 127.0.0.1:15432-15434).

mod common;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

static PG_LAB: Mutex<()> = Mutex::new(());

/// Takes the PostgreSQL lab for one test that records or disturbs it.
fn take_pg_lab() -> MutexGuard<'static, ()> {
    PG_LAB.lock().unwrap_or_else(|e| e.into_inner())
}

/// The PostgreSQL lab's primary and standbys, as the tests name them.
const PG_PRIMARY: &str = "127.0.0.1:15432";
const PG_STANDBYS: [(&str, &str); 2] = [("s1", "127.0.0.1:15433"), ("s2", "127.0.0.1:15434")];

/// A config with one PostgreSQL cluster on the lab, the password from
/// LAGTRACE_IT_PASSWORD.
fn pg_config(dir: &TempDir, cluster: &str) -> std::path::PathBuf {
    let standbys: Vec<String> = PG_STANDBYS
        .iter()
        .map(|(n, a)| format!("{n} = \"{a}\""))
        .collect();
    dir.write(
        "lagtrace.toml",
        &format!(
            "[connection]\nuser = \"lagtrace\"\npassword_env = \"LAGTRACE_IT_PASSWORD\"\n\n\
             [[cluster]]\nname = \"{cluster}\"\nkind = \"postgres\"\nprimary = \"{PG_PRIMARY}\"\nreplicas = {{ {} }}\n",
            standbys.join(", ")
        ),
    )
}

/// Runs `lagtrace ARGS` with the lab's password; returns the exit code, stdout, stderr.
fn run(args: &[&str], config: &std::path::Path, password: &str) -> (Option<i32>, String, String) {
    let out = lagtrace()
        .args(args)
        .arg("-c")
        .arg(config)
        .env("LAGTRACE_IT_PASSWORD", password)
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    (out.status.code(), stdout, stderr)
}

/// `init` creates the schema and the rows on the primary and finds them on both
/// standbys; a second `init` changes nothing.
#[test]
fn init_creates_the_schema_and_the_standbys_show_the_row() {
    ensure_pg_lab();
    let dir = TempDir::new("pg-init");
    let config = pg_config(&dir, "it_pg_init");
    let (code, stdout, stderr) = run(&["init"], &config, LAB_PASSWORD);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("primary it_pg_init (127.0.0.1:15432): OK, schema "),
        "{stdout}"
    );
    assert!(
        lines[0].contains("heartbeat rows for cluster it_pg_init"),
        "{stdout}"
    );
    for (line, (name, address)) in lines[1..].iter().zip(PG_STANDBYS) {
        assert!(
            line.starts_with(&format!("replica it_pg_init/{name} ({address}): OK, lagtrace reads lagtrace.heartbeat (cluster it_pg_init, seq 0)")),
            "{stdout}"
        );
    }
    let (code, stdout, _) = run(&["init"], &config, LAB_PASSWORD);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("schema already at version 1"), "{stdout}");
}

/// `init` never writes to a standby given as the primary, and names why each host
/// failed: a standby, a server that is not one, a wrong password, nothing listening.
#[test]
fn init_refuses_a_standby_as_primary_and_says_why_each_host_failed() {
    ensure_pg_lab();
    let dir = TempDir::new("pg-init-bad");
    let swapped = dir.write(
        "swapped.toml",
        &format!(
            "[connection]\nuser = \"lagtrace\"\npassword_env = \"LAGTRACE_IT_PASSWORD\"\n\n\
             [[cluster]]\nname = \"it_pg_swap\"\nkind = \"postgres\"\nprimary = \"{}\"\n\
             replicas = {{ s1 = \"{PG_PRIMARY}\", s9 = \"127.0.0.1:15499\" }}\n",
            PG_STANDBYS[0].1
        ),
    );
    let (code, stdout, stderr) = run(&["init", "--wait", "1s"], &swapped, LAB_PASSWORD);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("FAILED, refusing to write: it is in recovery (a standby)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("it_pg_swap/s1 (127.0.0.1:15432): FAILED, not a standby"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "it_pg_swap/s9 (127.0.0.1:15499): FAILED, cannot connect: connection refused"
        ),
        "{stdout}"
    );
    assert!(stderr.contains("init failed on 3 of 3 hosts"), "{stderr}");

    let config = pg_config(&dir, "it_pg_pw");
    let (code, stdout, _) = run(&["init"], &config, "not-the-password");
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("FAILED, access denied for user lagtrace"),
        "{stdout}"
    );
    assert!(!stdout.contains("not-the-password"), "{stdout}");
}

/// `check` (the Nagios plugin) on the PostgreSQL lab: OK with a lag well under a
/// second for both standbys; with standby1's replay paused, CRITICAL for it (exit 2)
/// with the paused replay named, standby2 still OK.
#[test]
fn check_is_ok_then_critical_for_a_paused_replay() {
    let _lab = take_pg_lab();
    let dir = TempDir::new("pg-check");
    let (config, _, _) = pg_record_config(&dir, "it_pg_check");
    let (code, stdout, stderr) = run(&["check"], &config, LAB_PASSWORD);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (line, (name, _)) in lines.iter().zip(PG_STANDBYS) {
        assert!(
            line.starts_with(&format!("OK - it_pg_check/{name}: lag 0.0")),
            "{stdout}"
        );
    }
    let resume = Undo("resume");
    lab(&["stall"], &[("DB", "postgres"), ("REPLICA", "1")]);
    let (code, stdout, stderr) = run(
        &[
            "check",
            "--crit",
            "1s",
            "--warn",
            "500ms",
            "--timeout",
            "1s",
        ],
        &config,
        LAB_PASSWORD,
    );
    drop(resume);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains("CRITICAL - it_pg_check/s1: lag above 1.0")
            && stdout.contains("replay paused"),
        "{stdout}"
    );
    assert!(stdout.contains("OK - it_pg_check/s2: lag 0.0"), "{stdout}");
}

/// A config for `record` on the PostgreSQL lab: 10 ms beats, status every 200 ms, the
/// store in `dir`, `[http]` on a free port (max_lag 1 s); init has run. Returns the
/// config, the store and the port.
fn pg_record_config(dir: &TempDir, cluster: &str) -> (PathBuf, PathBuf, u16) {
    ensure_pg_lab();
    let store = dir.path().join("s.redb");
    let port = free_port();
    let base = std::fs::read_to_string(pg_config(dir, cluster)).unwrap();
    let config = dir.write(
        "lagtrace.toml",
        &format!(
            "{base}\n[record]\nid = \"t\"\ninterval = \"10ms\"\nstatus_every = \"200ms\"\nstore = \"{}\"\n\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\nmax_lag = \"1s\"\n",
            store.display()
        ),
    );
    let (code, stdout, stderr) = run(&["init"], &config, LAB_PASSWORD);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    (config, store, port)
}

/// The analyze document's entry for standby `name`.
fn standby<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["replica"] == name)
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

/// Steady state at 10 ms beats: both standbys enter the pool, their median lag is
/// under 2 ms and every round's bounds hold (lower under upper).
#[test]
fn steady_standbys_lag_under_2_ms_with_true_bounds() {
    let _lab = take_pg_lab();
    let dir = TempDir::new("pg-steady");
    let (config, store, port) = pg_record_config(&dir, "it_pg_steady");
    let recorder = Recorder::start(&config);
    wait_in_pool(port, &["s1", "s2"]);
    sleep(Duration::from_secs(4));
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");
    let doc = analyze_json(&store);
    for name in ["s1", "s2"] {
        let s = standby(&doc, name);
        let p50 = s["lag"]["percentiles"]["p50_ms"].as_f64().unwrap();
        assert!(p50 < 2.0, "{name}: median lag {p50} ms");
        assert_eq!(s["episodes"].as_array().unwrap().len(), 0, "{s}");
        // PostgreSQL's own figures are stored and shown beside lagtrace's: its
        // replay_lag from the sender's pg_stat_replication (beats keep WAL flowing, so
        // it is not NULL) and the replay timestamp's age.
        let pg = &s["postgres"];
        eprintln!("{name}: lagtrace p50 {p50} ms; postgres {pg}");
        assert!(pg["samples"].as_u64().unwrap() >= 10, "{pg}");
        for figure in ["replay_lag", "replay_age"] {
            let p50 = pg[figure]["p50_ms"].as_f64();
            assert!(p50.is_some_and(|v| v < 1000.0), "{figure}: {pg}");
        }
    }
    let rows = export_json(&store, &[]);
    let bounded: Vec<_> = rows.iter().filter(|r| r["lag_kind"] == "bounded").collect();
    assert!(bounded.len() > 400, "{} bounded rounds", bounded.len());
    for r in bounded {
        let (lo, hi) = (
            r["lag_lo_ms"].as_f64().unwrap(),
            r["lag_hi_ms"].as_f64().unwrap(),
        );
        assert!(0.0 <= lo && lo <= hi, "{r}");
    }
}

/// Runs `lab <command> DB=postgres REPLICA=1` on drop: a test's disturbance of
/// standby1 is undone even when the test fails.
struct Undo(&'static str);

impl Drop for Undo {
    fn drop(&mut self) {
        lab(&[self.0], &[("DB", "postgres"), ("REPLICA", "1")]);
    }
}

/// What a recorder saw while standby1 was disturbed.
struct Disturbed {
    store: PathBuf,
    /// `/check/s1`, `/check/s2` and `/metrics` at the end of the disturbance.
    s1: Response,
    s2: Response,
    metrics: Response,
    /// The disturbance lasted at least `shortest_s` and at most `longest_s` (each lab
    /// command takes effect somewhere within its run).
    shortest_s: f64,
    longest_s: f64,
}

/// Records cluster `cluster` (10 ms beats) with standby1 disturbed by `lab <start>` for
/// `hold`, then `lab <undo>`, until standby1 is back in the pool.
fn disturb_standby1(
    dir: &TempDir,
    cluster: &str,
    (start, undo): (&str, &'static str),
    hold: Duration,
) -> Disturbed {
    let (config, store, port) = pg_record_config(dir, cluster);
    let recorder = Recorder::start(&config);
    wait_in_pool(port, &["s1", "s2"]);
    sleep(Duration::from_secs(1));
    let started = Instant::now();
    let guard = Undo(undo);
    lab(&[start], &[("DB", "postgres"), ("REPLICA", "1")]);
    let in_effect_by = started.elapsed();
    sleep(hold);
    let s1 = http(port, "GET", "/check/s1", &[]).unwrap();
    let s2 = http(port, "GET", "/check/s2", &[]).unwrap();
    let metrics = http(port, "GET", "/metrics", &[]).unwrap();
    let undone_from = started.elapsed();
    drop(guard);
    let undone_by = started.elapsed();
    wait_in_pool(port, &["s1"]);
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");
    Disturbed {
        store,
        s1,
        s2,
        metrics,
        shortest_s: (undone_from - in_effect_by).as_secs_f64(),
        longest_s: undone_by.as_secs_f64(),
    }
}

/// standby1's one episode in `doc` (analyze JSON): its peak is as long as the
/// disturbance (within 2 %) and its first cause is `cause`; standby2 has none. Returns
/// standby1's document and the peak, s.
fn one_episode_as_long_as<'a>(
    doc: &'a serde_json::Value,
    d: &Disturbed,
    cause: &str,
) -> (&'a serde_json::Value, f64) {
    let s = standby(doc, "s1");
    let episodes = s["episodes"].as_array().unwrap();
    assert_eq!(episodes.len(), 1, "{s}");
    assert_eq!(episodes[0]["causes"][0]["code"], cause, "{s}");
    let peak_s = episodes[0]["peak_ms"].as_f64().unwrap() / 1000.0;
    assert!(
        peak_s >= d.shortest_s * 0.98 && peak_s <= d.longest_s * 1.02,
        "peak {peak_s} s for a disturbance between {} and {} s",
        d.shortest_s,
        d.longest_s
    );
    assert_eq!(standby(doc, "s2")["episodes"].as_array().unwrap().len(), 0);
    (s, peak_s)
}

/// WAL replay paused for 10 s on standby1 (`make stall DB=postgres`): its lag peaks at
/// the pause's length within 2 %, falls behind at one second per second (vector -1),
/// the episode names the paused replay and the live check and /metrics take it out;
/// standby2 never leaves the pool.
#[test]
fn a_paused_replay_is_lag_as_long_as_the_pause() {
    let _lab = take_pg_lab();
    let dir = TempDir::new("pg-stall");
    let d = disturb_standby1(
        &dir,
        "it_pg_stall",
        ("stall", "resume"),
        Duration::from_secs(10),
    );
    assert_eq!(
        (d.s1.code, &d.s1.json()["reason"]),
        (503, &"replay_paused".into())
    );
    assert_eq!(d.s2.code, 200, "{}", d.s2.json());
    // Prometheus sees the same: s1 out of the pool with replay stopped and a lag of
    // seconds, s2 in.
    let gauge = |name: &str, replica: &str| -> f64 {
        let key = format!("lagtrace_{name}{{cluster=\"it_pg_stall\",replica=\"{replica}\"}} ");
        d.metrics
            .body
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("no {key} in\n{}", d.metrics.body))
            .parse()
            .unwrap()
    };
    assert_eq!(gauge("replica_sql_running", "s1"), 0.0);
    assert_eq!(gauge("replica_in_pool", "s1"), 0.0);
    assert!(
        gauge("replica_lag_seconds", "s1") > 5.0,
        "{}",
        d.metrics.body
    );
    assert_eq!(gauge("replica_in_pool", "s2"), 1.0);
    assert_eq!(gauge("replica_io_running", "s2"), 1.0);
    let doc = analyze_json(&d.store);
    let (s, peak_s) = one_episode_as_long_as(&doc, &d, "replay_paused");
    eprintln!(
        "paused replay: lagtrace peak {peak_s:.3} s; postgres {}",
        s["postgres"]
    );
    let fall = s["episodes"][0]["fall_vector"].as_f64().unwrap();
    assert!((fall + 1.0).abs() < 0.05, "fall vector {fall}");
}

/// The PostgreSQL primary's processes (the postmaster and its children: backends,
/// WAL senders, writers), frozen with SIGSTOP until this is dropped.
struct Frozen(Vec<String>);

/// Sends `signal` (`STOP`, `KILL`) to a PostgreSQL lab node's postmaster and all its
/// children; returns their pids.
fn signal_node(node: &str, signal: &str) -> Vec<String> {
    let pidfile = repo_root().join(format!(".lab/pg/{node}/data/postmaster.pid"));
    let postmaster = std::fs::read_to_string(&pidfile).unwrap();
    let postmaster = postmaster.lines().next().unwrap().trim().to_string();
    let children = std::process::Command::new("pgrep")
        .args(["-P", &postmaster])
        .output()
        .unwrap();
    let mut pids = vec![postmaster];
    pids.extend(
        String::from_utf8_lossy(&children.stdout)
            .split_whitespace()
            .map(String::from),
    );
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .args(&pids)
        .status()
        .unwrap();
    assert!(status.success(), "cannot send {signal} to {node}: {pids:?}");
    pids
}

impl Frozen {
    fn primary() -> Frozen {
        Frozen(signal_node("primary", "STOP"))
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-CONT")
            .args(&self.0)
            .status();
    }
}

/// Records the lab with the primary frozen for 6 s, a second in; returns the live
/// check's codes for both standbys near the freeze's end, and the store.
fn record_a_frozen_primary(dir: &TempDir) -> (Vec<u16>, PathBuf) {
    let (config, store, port) = pg_record_config(dir, "it_pg_frozen");
    let recorder = Recorder::start(&config);
    wait_in_pool(port, &["s1", "s2"]);
    sleep(Duration::from_secs(1));
    let frozen = Frozen::primary();
    sleep(Duration::from_secs(6));
    let checks: Vec<u16> = ["s1", "s2"]
        .iter()
        .map(|s| http(port, "GET", &format!("/check/{s}"), &[]).unwrap().code)
        .collect();
    drop(frozen);
    sleep(Duration::from_secs(3));
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");
    (checks, store)
}

/// The primary frozen for 6 s: an outage, not lag. analyze finds one primary outage of
/// about that length; the standbys, which have every acknowledged beat, get lower
/// bounds only (no upper bound exists without a newer beat), no episode and no
/// invented lag; the live check keeps them in the pool.
#[test]
fn a_frozen_primary_is_an_outage_not_lag() {
    let _lab = take_pg_lab();
    let mut dir = TempDir::new("pg-frozen");
    let (mut checks, mut store) = record_a_frozen_primary(&dir);
    // The one true lag a freeze can cause (as on MariaDB, tests/incidents.rs): a beat
    // acknowledged just before the freeze that the WAL sender had not sent yet, which
    // the standby then really lacks. The freeze is taken again once when it happened.
    if checks != [200, 200] {
        eprintln!(
            "a standby left the pool during the freeze (a beat acknowledged, not yet sent?); once more"
        );
        dir = TempDir::new("pg-frozen-again");
        (checks, store) = record_a_frozen_primary(&dir);
    }
    assert_eq!(checks, [200, 200]);
    let doc = analyze_json(&store);
    let outages = doc["clusters"][0]["primary_outages"].as_array().unwrap();
    assert_eq!(outages.len(), 1, "{:#}", doc["clusters"]);
    let secs = outages[0]["duration_s"].as_f64().unwrap();
    assert!((5.0..8.0).contains(&secs), "a 6 s freeze reads as {secs} s");
    for name in ["s1", "s2"] {
        let s = standby(&doc, name);
        assert_eq!(s["episodes"].as_array().unwrap().len(), 0, "{s}");
        assert!(
            s["coverage"]["at_least_rounds"].as_u64().unwrap() > 100,
            "{s}"
        );
        let max_ms = s["lag"]["percentiles"]["max_ms"].as_f64().unwrap();
        assert!(max_ms < 100.0, "{name}: bounded lag up to {max_ms} ms");
    }
}

/// Sets standby1's recovery_min_apply_delay back to 0 on drop.
struct NoDelay;

impl Drop for NoDelay {
    fn drop(&mut self) {
        lab(&["stop-lag"], &[("DB", "postgres"), ("REPLICA", "1")]);
    }
}

/// `recovery_min_apply_delay = 2s` on standby1 (`make start-lag LAG=2s DB=postgres`):
/// its lag is the delay (PostgreSQL applies a commit once its primary timestamp plus
/// the delay has passed; the lab's servers share one clock), it is reported as the
/// intended delay, and with `ignore_intended_delay` the live check keeps it in the pool
/// although the delay is over `max_lag`; standby2 is not delayed.
#[test]
fn an_intended_delay_is_lag_reported_as_intended_and_can_be_ignored() {
    let _lab = take_pg_lab();
    let dir = TempDir::new("pg-delay");
    let (config, store, port) = pg_record_config(&dir, "it_pg_delay");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "max_lag = \"1s\"",
            "max_lag = \"1s\"\nignore_intended_delay = [\"s1\"]",
        ),
    )
    .unwrap();
    let _no_delay = NoDelay;
    lab(
        &["start-lag"],
        &[("DB", "postgres"), ("REPLICA", "1"), ("LAG", "2s")],
    );
    let recorder = Recorder::start(&config);
    wait_in_pool(port, &["s1", "s2"]);
    sleep(Duration::from_secs(5));
    let s1 = http(port, "GET", "/check/s1", &[]).unwrap();
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(s1.code, 200, "{}", s1.json());
    assert_eq!(s1.json()["sql_delay_s"], 2);
    assert!(
        s1.json()["lag_ms"].as_f64().unwrap() > 1900.0,
        "{}",
        s1.json()
    );
    let doc = analyze_json(&store);
    let s = standby(&doc, "s1");
    assert_eq!(s["intended_delay"]["max_s"], 2, "{s}");
    let p50 = s["lag"]["percentiles"]["p50_ms"].as_f64().unwrap();
    assert!(
        (1950.0..2300.0).contains(&p50),
        "s1: median lag {p50} ms for a 2 s delay"
    );
    let p50 = standby(&doc, "s2")["lag"]["percentiles"]["p50_ms"]
        .as_f64()
        .unwrap();
    assert!(p50 < 2.0, "s2: median lag {p50} ms");
}

/// Puts the lab's own topology back on drop (`make failback DB=postgres`).
struct Failback;

impl Drop for Failback {
    fn drop(&mut self) {
        lab(&["failback"], &[("DB", "postgres")]);
    }
}

/// `/status`'s primary address (where beats go) on `port`.
fn primary_address(port: u16) -> String {
    let status = http(port, "GET", "/status", &[]).unwrap().json();
    status["clusters"][0]["primary"]["address"]
        .as_str()
        .unwrap()
        .to_string()
}

/// psql as lagtrace on the lab node at `port`: the first column of the first row.
fn psql_value(port: u16, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-U", "lagtrace", "-d", "postgres", "-c", sql])
        .env("PGPASSWORD", LAB_PASSWORD)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The heartbeat row's `writer` on standby1.
fn writer_seen_on_standby1(cluster: &str) -> String {
    psql_value(
        15433,
        &format!("SELECT writer FROM lagtrace.heartbeat WHERE cluster = '{cluster}'"),
    )
}

/// A WAL position on the lab node at `port` (`lsn`: an expression such as
/// `pg_current_wal_flush_lsn()`), in bytes.
fn wal_bytes(port: u16, lsn: &str) -> u64 {
    let v = psql_value(port, &format!("SELECT ({lsn} - '0/0'::pg_lsn)::bigint"));
    v.parse()
        .unwrap_or_else(|_| panic!("{lsn} on port {port}: {v:?}"))
}

/// A planned switchover under a recorder (`make failover DB=postgres`: the primary
/// shuts down, standby2 is promoted, standby1 and the old primary stream from it),
/// then `make failback DB=postgres`: the beat writer follows the promoted server each
/// time (the row on standby1 shows who wrote it), `failover` fires once each way, and
/// standby1's lag while standby2 is the primary is measured against it: under a second.
#[test]
fn beats_follow_a_promoted_standby_and_back() {
    let _lab = take_pg_lab();
    let dir = TempDir::new("pg-failover");
    let fired = dir.path().join("fired.json");
    let (config, store, port) = pg_record_config(&dir, "it_pg_failover");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[triggers]\nfailover = [\"/usr/bin/tee\", \"-a\", \"{}\"]\n",
            fired.display()
        ),
    )
    .unwrap();
    let _failback = Failback;
    let recorder = Recorder::start(&config);
    wait_in_pool(port, &["s1", "s2"]);
    sleep(Duration::from_secs(1));
    lab(&["failover"], &[("DB", "postgres")]);
    let moved = wait_http(port, "/status", Duration::from_secs(10), |r| {
        r.json()["clusters"][0]["primary"]["address"] == PG_STANDBYS[1].1
    });
    assert!(
        moved.is_some(),
        "beats did not follow: {}",
        primary_address(port)
    );
    let switched = now_us();
    sleep(Duration::from_secs(4));
    assert_eq!(
        writer_seen_on_standby1("it_pg_failover#t"),
        PG_STANDBYS[1].1
    );
    let back_from = now_us();
    lab(&["failback"], &[("DB", "postgres")]);
    let back = wait_http(port, "/status", Duration::from_secs(10), |r| {
        r.json()["clusters"][0]["primary"]["address"] == PG_PRIMARY
    });
    assert!(
        back.is_some(),
        "beats did not come back: {}",
        primary_address(port)
    );
    // The writer moved back; its next beat (after a backoff of up to a second) lands
    // on the primary, and standby1 shows who wrote it.
    let landed = Instant::now();
    while writer_seen_on_standby1("it_pg_failover#t") != PG_PRIMARY {
        assert!(
            landed.elapsed() < Duration::from_secs(5),
            "no beat from the primary reached standby1 within 5 s of the failback"
        );
        sleep(Duration::from_millis(50));
    }
    wait_in_pool(port, &["s1", "s2"]);
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");
    let docs = json_documents(&fired);
    let moves: Vec<(&str, &str)> = docs
        .iter()
        .map(|d| {
            (
                d["previous_primary"]["name"].as_str().unwrap(),
                d["node"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(moves, [("primary", "s2"), ("s2", "primary")], "{docs:?}");
    // standby1 against standby2's beats: a second after the switch until the failback.
    let rows = export_json(&store, &["--replica", "s1"]);
    let during: Vec<f64> = rows
        .iter()
        .filter(|r| {
            let t = utc_us(r["time_utc"].as_str().unwrap());
            t > switched + 1_000_000 && t < back_from
        })
        .filter_map(|r| r["lag_hi_ms"].as_f64())
        .collect();
    assert!(during.len() > 100, "{} rounds", during.len());
    let max = during.iter().copied().fold(0.0, f64::max);
    assert!(
        max < 1000.0,
        "standby1's lag against the promoted standby reached {max} ms"
    );
}

/// Capacity as the test measures it on the servers: WAL bytes per second flushed on the
/// primary before the pause (λ), and replayed by standby1 from its resume until it has
/// replayed what the primary had flushed (μ).
#[derive(Debug)]
struct WalTruth {
    arrival_per_s: f64,
    apply_per_s: f64,
    catch_up_s: f64,
}

/// Under the load already running: λ over 6 s, standby1's replay paused for `pause`,
/// then μ through its catch-up, read from the servers as fast as psql goes.
fn pause_standby1_and_measure(pause: Duration) -> WalTruth {
    let flushed = || wal_bytes(15432, "pg_current_wal_flush_lsn()");
    let replayed = || wal_bytes(15433, "pg_last_wal_replay_lsn()");
    let (t0, w0) = (Instant::now(), flushed());
    sleep(Duration::from_secs(6));
    let (t1, w1) = (Instant::now(), flushed());
    let arrival_per_s = (w1 - w0) as f64 / (t1 - t0).as_secs_f64();
    let resume = Undo("resume");
    lab(&["stall"], &[("DB", "postgres"), ("REPLICA", "1")]);
    sleep(pause);
    let r0 = replayed();
    drop(resume);
    let resumed = Instant::now();
    let r1 = loop {
        let on_primary = flushed();
        let r = replayed();
        if r >= on_primary {
            break r;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(120),
            "standby1 did not catch up in 120 s ({r} of {on_primary})"
        );
    };
    let catch_up_s = resumed.elapsed().as_secs_f64();
    WalTruth {
        arrival_per_s,
        apply_per_s: (r1 - r0) as f64 / catch_up_s,
        catch_up_s,
    }
}

/// Capacity under pgbench's TPC-B-like load (`make oltp DB=postgres`, two clients, as
/// fast as the machine goes): standby1's replay paused for 30 s, then its catch-up.
/// The throughput estimator (replay-LSN progress in the drain over WAL arrival
/// outside episodes, both in WAL bytes) lands within 20 % of μ/λ measured on the
/// servers in the same run; the catch-up estimator (from the lag series) is reported.
/// The episode's cause is the paused replay.
#[test]
fn capacity_from_replay_progress_holds_under_pgbench() {
    let _lab = take_pg_lab();
    let dir = TempDir::new("pg-capacity");
    let (config, store, port) = pg_record_config(&dir, "it_pg_cap");
    // A short run makes pgbench's tables first (once per lab).
    lab(
        &["oltp"],
        &[
            ("DB", "postgres"),
            ("RATE", "100"),
            ("THREADS", "1"),
            ("LOAD_SECONDS", "1"),
        ],
    );
    let load = Background::start(
        &["oltp"],
        &[
            ("DB", "postgres"),
            ("RATE", "1000"),
            ("THREADS", "2"),
            ("LOAD_SECONDS", "300"),
        ],
    );
    let recorder = Recorder::start(&config);
    wait_in_pool(port, &["s1", "s2"]);
    sleep(Duration::from_secs(4));
    // Replay here is 20 to 30 times faster than the load writes: a 60 s pause drains in
    // 2 to 3 s, long enough for both estimators (a drain of 1 s or more) to average
    // over a few dozen status samples.
    let truth = pause_standby1_and_measure(Duration::from_secs(60));
    // The recording goes on past the catch-up: arrival is measured outside episodes.
    sleep(Duration::from_secs(8));
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");
    load.stop_running();

    let doc = analyze_json(&store);
    let s = standby(&doc, "s1");
    let c = truth.apply_per_s / truth.arrival_per_s;
    let cap = &s["capacity"];
    let tp = &cap["throughput"];
    let throughput = tp["capacity"]
        .as_f64()
        .unwrap_or_else(|| panic!("no throughput capacity (truth {truth:?}): {cap}"));
    assert_eq!(tp["unit"], "wal_bytes", "{tp}");
    let replay = cap["replay"]["capacity"].as_f64().unwrap_or(f64::NAN);
    let line = format!(
        "truth C {c:.2} (replayed {:.2} MB/s over {:.2} s, arrivals {:.2} MB/s); \
         throughput C {throughput:.2} ({:+.0} %: replayed {:.2} MB/s over {:.2} s, \
         arrivals {:.2} MB/s over {:.1} s); catch-up C {replay:.2} ({:+.0} %)",
        truth.apply_per_s / 1e6,
        truth.catch_up_s,
        truth.arrival_per_s / 1e6,
        100.0 * (throughput / c - 1.0),
        tp["apply_wal_bytes_per_s"].as_f64().unwrap() / 1e6,
        tp["drain_s"].as_f64().unwrap(),
        tp["arrival_wal_bytes_per_s"].as_f64().unwrap() / 1e6,
        tp["arrival_s"].as_f64().unwrap(),
        100.0 * (replay / c - 1.0),
    );
    eprintln!("pgbench: {line}");
    assert!(
        (throughput - c).abs() <= 0.2 * c,
        "throughput estimator: {line}"
    );
    let paused = s["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["causes"][0]["code"] == "replay_paused")
        .count();
    assert_eq!(paused, 1, "{s}");
}

/// A PostgreSQL cluster given as `nodes`, standbys first: `init` and `record` find the
/// primary (the one server not in recovery) and its standbys (by their WAL receivers'
/// sender), the primary's node is out of the pool with reason `primary`, and after
/// `make failover DB=postgres` the demoted primary is measured as a standby of the
/// promoted one, in the pool with a lag under a second.
#[test]
fn nodes_find_the_primary_and_measure_the_demoted_one_after_a_failover() {
    let _lab = take_pg_lab();
    ensure_pg_lab();
    let dir = TempDir::new("pg-nodes");
    let port = free_port();
    let config = dir.write(
        "lagtrace.toml",
        &format!(
            "[connection]\nuser = \"lagtrace\"\npassword_env = \"LAGTRACE_IT_PASSWORD\"\n\n\
             [[cluster]]\nname = \"it_pg_nodes\"\nkind = \"postgres\"\n\
             nodes = {{ s2 = \"{}\", s1 = \"{}\", p = \"{PG_PRIMARY}\" }}\n\n\
             [record]\ninterval = \"20ms\"\nstatus_every = \"200ms\"\nstore = \"{}\"\n\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\nmax_lag = \"1s\"\n",
            PG_STANDBYS[1].1,
            PG_STANDBYS[0].1,
            dir.path().join("s.redb").display()
        ),
    );
    let (code, stdout, stderr) = run(&["init"], &config, LAB_PASSWORD);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("replica it_pg_nodes/s1"), "{stdout}");
    let _failback = Failback;
    let recorder = Recorder::start(&config);
    wait_in_pool(port, &["s1", "s2"]);
    assert_eq!(primary_address(port), PG_PRIMARY);
    let p = http(port, "GET", "/check/p", &[]).unwrap();
    assert_eq!(
        (p.code, p.json()["reason"].as_str()),
        (503, Some("primary"))
    );

    lab(&["failover"], &[("DB", "postgres")]);
    let demoted = wait_http(port, "/check/p", Duration::from_secs(15), |x| x.code == 200);
    assert!(
        demoted.is_some(),
        "the old primary never joined the pool: {}",
        http(port, "GET", "/status", &[]).unwrap().json()
    );
    let doc = http(port, "GET", "/check/p", &[]).unwrap().json();
    assert!(doc["lag_ms"].as_f64().unwrap() < 1000.0, "{doc}");
    let new = http(port, "GET", "/check/s2", &[]).unwrap().json();
    assert_eq!(new["reason"], "primary", "{new}");
    assert_eq!(primary_address(port), PG_STANDBYS[1].1);
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");
}

/// A split brain with a follower on the second primary's side (`make chain
/// DB=postgres`: standby1 streams from standby2; then `make split DB=postgres`:
/// standby2 is promoted while the primary still writes, and standby1 follows it onto
/// its new timeline). Beats stay on the primary; once `split` fires, standby2 gets
/// beats of its own as the part `it_pg_split~s2` (on the row `it_pg_split~t`, which
/// the part's writer creates there), standby1 is measured against them (its true lag,
/// not the split's growing age) and both leave the cluster's pool as `split`. `make
/// failback DB=postgres` rebuilds both from the primary: `split_end`, and both come
/// back.
#[test]
fn a_split_measures_the_promoted_standbys_side_against_its_own_beats() {
    let _lab = take_pg_lab();
    let dir = TempDir::new("pg-split");
    let (config, store, port) = pg_record_config(&dir, "it_pg_split");
    let fired = dir.path().join("fired.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[triggers]\nsplit = [\"/usr/bin/tee\", \"-a\", \"{}\"]\n",
            fired.display()
        ),
    )
    .unwrap();
    let _failback = Failback;
    lab(&["chain"], &[("DB", "postgres")]);
    let recorder = Recorder::start(&config);
    wait_in_pool(port, &["s1", "s2"]);
    lab(&["split"], &[("DB", "postgres")]);
    wait_all_split(port, Duration::from_secs(15));
    assert_eq!(primary_address(port), PG_PRIMARY);
    let s1 = status_of(port, "s1");
    assert_eq!(
        (&s1["part"], &s1["state"]),
        (&"it_pg_split~s2".into(), &"out".into()),
        "{s1}"
    );
    // The part's beats reach standby1 through standby2, which wrote them.
    sleep(Duration::from_secs(3));
    assert_eq!(
        psql_value(
            15433,
            "SELECT writer FROM lagtrace.heartbeat WHERE cluster = 'it_pg_split~t'"
        ),
        PG_STANDBYS[1].1
    );
    let s1 = status_of(port, "s1");
    assert!(s1["lag_hi_ms"].as_f64().unwrap() < 1000.0, "{s1}");
    lab(&["failback"], &[("DB", "postgres")]);
    wait_in_pool(port, &["s1", "s2"]);
    assert!(status_of(port, "s1")["part"].is_null());
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");
    let docs = json_documents(&fired);
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert_eq!(
        docs[0]["split"]["following"]["s2"],
        serde_json::json!(["s1"])
    );
    let stored = export_json(&store, &["--events"]);
    assert!(
        stored.iter().any(|e| e["event"] == "split_end"),
        "{stored:?}"
    );
    // standby1 read against the part's beats: well under a second throughout.
    let rows = export_json(&store, &[]);
    let part: Vec<f64> = rows
        .iter()
        .filter(|r| r["cluster"] == "it_pg_split~s2" && r["replica"] == "s1")
        .filter_map(|r| r["lag_hi_ms"].as_f64())
        .collect();
    assert!(part.len() > 100, "{} rounds", part.len());
    let max = part.iter().copied().fold(0.0, f64::max);
    assert!(
        max < 1000.0,
        "standby1's lag against standby2 reached {max} ms"
    );
}

/// standby1's WAL receiver stopped for 6 s (`make io-stop DB=postgres`): nothing more
/// reaches it, so its lag grows a second per second; the live check takes it out with
/// reason `wal_receiver_stopped` (PostgreSQL's words, not a thread's), the episode's
/// cause says the same and its peak is the stop's length; after `make io-start` it
/// catches up and comes back. standby2 never leaves the pool.
#[test]
fn a_stopped_wal_receiver_is_lag_and_named_so() {
    let _lab = take_pg_lab();
    let dir = TempDir::new("pg-io-stop");
    let d = disturb_standby1(
        &dir,
        "it_pg_io",
        ("io-stop", "io-start"),
        Duration::from_secs(6),
    );
    let doc = d.s1.json();
    assert_eq!(
        (d.s1.code, doc["reason"].as_str()),
        (503, Some("wal_receiver_stopped")),
        "{doc}"
    );
    assert!(doc["lag_lo_ms"].as_f64().unwrap() > 4000.0, "{doc}");
    assert_eq!(d.s2.code, 200, "{}", d.s2.json());
    let analyzed = analyze_json(&d.store);
    let (_, peak_s) = one_episode_as_long_as(&analyzed, &d, "wal_receiver_stopped");
    eprintln!(
        "stopped receiver: peak {peak_s:.3} s for a stop between {:.3} and {:.3} s",
        d.shortest_s, d.longest_s
    );
}

/// Brings the PostgreSQL lab's stopped nodes back (`make up DB=postgres`) on drop.
struct Up;

impl Drop for Up {
    fn drop(&mut self) {
        lab(&["up"], &[("DB", "postgres")]);
    }
}

/// standby1 killed (SIGKILL to its postmaster and every process of it, as a crash or
/// the OOM killer would) for 4 s, then started again (crash recovery, then streaming):
/// while it is down it is unreachable, never lagging, and a gap, not an episode, in
/// analyze; it comes back into the pool once it answers; standby2 never leaves.
#[test]
fn a_killed_standby_is_unreachable_never_lag_and_comes_back() {
    let _lab = take_pg_lab();
    let dir = TempDir::new("pg-kill");
    let (config, store, port) = pg_record_config(&dir, "it_pg_kill");
    let recorder = Recorder::start(&config);
    wait_in_pool(port, &["s1", "s2"]);
    sleep(Duration::from_secs(1));
    let up = Up;
    signal_node("standby1", "KILL");
    sleep(Duration::from_secs(4));
    let s1 = http(port, "GET", "/check/s1", &[]).unwrap();
    let s2 = http(port, "GET", "/check/s2", &[]).unwrap();
    let restarted = Instant::now();
    drop(up);
    wait_in_pool(port, &["s1"]);
    let back_after = restarted.elapsed();
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");
    let doc = s1.json();
    assert_eq!(s1.code, 503, "{doc}");
    assert!(
        ["unreachable", "stale"].contains(&doc["reason"].as_str().unwrap()),
        "{doc}"
    );
    assert_eq!(s2.code, 200, "{}", s2.json());
    let analyzed = analyze_json(&store);
    let s = standby(&analyzed, "s1");
    assert_eq!(s["episodes"].as_array().unwrap().len(), 0, "{s}");
    assert_eq!(s["lag"]["above_max_lag_s"], 0.0, "{s}");
    let gaps = s["coverage"]["gaps"].as_array().unwrap();
    let down: f64 = gaps
        .iter()
        .filter(|g| g["kind"] == "unreachable")
        .map(|g| g["duration_s"].as_f64().unwrap())
        .sum();
    eprintln!(
        "killed standby: unreachable for {down:.2} s in analyze; back in the pool {back_after:?} after the restart began"
    );
    assert!(down >= 3.5, "{gaps:?}");
    assert_eq!(
        standby(&analyzed, "s2")["episodes"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}
