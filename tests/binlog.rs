//! The binary log probe (`probe = "binlog"` / `"auto"`, issue 12) against the lab's
//! real servers: the steady state (no query per beat, tight bounds), a stalled SQL
//! thread, a replica killed and restarted, binary logs purged and the stream's dump
//! thread killed, a user without the replication grant or without BINLOG MONITOR, and
//! a replica behind a link of known delay (the truth the bounds must hold).

mod common;

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A lab config for `cluster` at 10 ms beats with `probe`, `[http]` on a free port, as
/// `user` (the lab's password); init has run. Returns the config, the store, the port.
fn setup(dir: &TempDir, cluster: &str, probe: &str, user: &str) -> (PathBuf, PathBuf, u16) {
    let port = free_port();
    let store = dir.path().join("s.redb");
    let config = lab_config(cluster, PRIMARY, &REPLICAS, "LAGTRACE_IT_PASSWORD")
        .replace("user = \"lagtrace\"", &format!("user = \"{user}\""));
    let config = format!(
        "{config}\n[record]\ninterval = \"10ms\"\nprobe = \"{probe}\"\nstore = \"{}\"\n\n\
         [http]\nlisten = \"127.0.0.1:{port}\"\nmax_lag = \"1s\"\n",
        store.display()
    );
    (init_config(dir, &config), store, port)
}

/// `Com_select` of a lab node: the SELECT statements it ran.
fn selects(node: &str) -> u64 {
    root_sql(node, "SHOW GLOBAL STATUS LIKE 'Com_select'")
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("Com_select")
}

/// The export rows of `replica` that start within `(from_us, to_us)`.
fn rows_within<'a>(rows: &'a [Row], replica: &str, (from_us, to_us): (i64, i64)) -> Vec<&'a Row> {
    rows.iter()
        .filter(|r| r.replica == replica && r.t_us > from_us && r.t_us < to_us)
        .collect()
}

/// Whether every row came from the binary log stream and measured a lag.
fn all_streamed_ok(rows: &[&Row]) -> bool {
    rows.iter()
        .all(|r| r.probe.starts_with("binlog") && r.outcome == "ok")
}

/// Waits until `/status` says replica `name` is probed by `probe`.
fn wait_probe(port: u16, name: &str, probe: &str) -> Value {
    let found = wait_http(port, "/status", Duration::from_secs(10), |r| {
        r.json()["clusters"][0]["replicas"]
            .as_array()
            .is_some_and(|rs| {
                rs.iter()
                    .any(|r| r["replica"] == name && r["probe"] == probe)
            })
    });
    match found {
        Some(_) => status_of(port, name),
        None => http(port, "GET", "/status", &[]).map_or(Value::Null, |r| r.json()),
    }
}

/// A recorder on the lab (cluster `it_<tag>`, 10 ms beats) following both replicas'
/// binary log streams, once `/status` says it does; with its directory and store.
fn streaming(tag: &str) -> (TempDir, PathBuf, Recorder) {
    let dir = TempDir::new(tag);
    let (config, store, port) = setup(&dir, &format!("it_{tag}"), "binlog", "lagtrace");
    let recorder = Recorder::start(&config);
    for r in ["r1", "r2"] {
        let doc = wait_probe(port, r, "binlog");
        assert_eq!(doc["probe"], "binlog", "{doc}");
    }
    (dir, store, recorder)
}

/// Stops a recorder, failing the test unless it exited 0; returns its log.
fn stop_ok(recorder: Recorder) -> String {
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");
    log
}

fn lag(doc: &Value, replica: &str) -> Value {
    replica_doc(doc, replica)["lag"].clone()
}

#[test]
fn the_stream_sees_every_beat_without_a_query_per_beat_and_with_tight_bounds() {
    let _lab = take_lab();
    let (_dir, store, recorder) = streaming("bl_steady");
    let selects_before = selects("replica1");
    sleep(Duration::from_secs(10));
    let selects_during = selects("replica1") - selects_before;
    stop_ok(recorder);
    // 1000 beats in 10 s; the replica ran the cross-check's read once a second (and
    // the other tests' recorders nothing: the lab is taken).
    eprintln!("replica1 ran {selects_during} SELECTs in 10 s of 10 ms beats");
    assert!(
        selects_during <= 40,
        "{selects_during} SELECTs: a query per beat?"
    );

    let doc = analyze_json(&store);
    for r in ["r1", "r2"] {
        let c = &replica_doc(&doc, r)["coverage"];
        let (reads, binlog) = (
            c["reads"].as_u64().unwrap(),
            c["binlog_reads"].as_u64().unwrap(),
        );
        let lag = lag(&doc, r);
        eprintln!("{r}: {reads} reads, {binlog} from the stream; lag {lag}");
        assert!(binlog + 5 >= reads && reads >= 1000, "{r}: {c}");
        let p50 = lag["percentiles"]["p50_ms"].as_f64().unwrap();
        let width_p50 = lag["bound_width"]["p50_ms"].as_f64().unwrap();
        assert!(p50 < 1.5, "{r}: median lag {p50} ms on an idle lab");
        // The target (p99 <= 2 ms) is a benchmark's (make bench-pt): a replica of a
        // busy shared machine may really fall behind for a moment (one CI run saw r2
        // 150 ms behind once, the lab just out of an OLTP test), and the rounds of
        // such a moment are honestly wide.
        assert!(width_p50 < 2.0, "{r}: bounds width p50 {width_p50} ms");
        assert_eq!(
            replica_doc(&doc, r)["episodes"].as_array().unwrap().len(),
            0
        );
    }
    let rows = export_rows(&store);
    let mut widest: Vec<&Row> = rows.iter().filter(|r| r.hi_ms.is_some()).collect();
    widest.sort_by(|a, b| {
        (b.hi_ms.unwrap() - b.lo_ms.unwrap()).total_cmp(&(a.hi_ms.unwrap() - a.lo_ms.unwrap()))
    });
    for r in widest.iter().take(3) {
        eprintln!("one of the widest rounds: {r:?}");
    }
    assert!(rows.iter().filter(|r| r.probe == "binlog").count() >= 1900);
    assert!(rows.iter().all(|r| r.outcome == "ok"), "a failed read");
}

#[test]
fn a_stalled_sql_thread_is_one_episode_with_its_length_as_peak_from_the_stream() {
    let _lab = take_lab();
    let (_dir, store, recorder) = streaming("bl_stall");
    sleep(Duration::from_secs(3));
    let t0 = now_us();
    lab(&["stall"], &[("REPLICA", "1")]);
    sleep(Duration::from_secs(10));
    lab(&["resume"], &[("REPLICA", "1")]);
    let stall_ms = (now_us() - t0) as f64 / 1000.0;
    sleep(Duration::from_secs(3));
    stop_ok(recorder);

    let doc = analyze_json(&store);
    let r1 = replica_doc(&doc, "r1");
    let eps = r1["episodes"].as_array().unwrap();
    assert_eq!(eps.len(), 1, "{eps:?}");
    let peak = eps[0]["peak_ms"].as_f64().unwrap();
    eprintln!(
        "r1: peak {peak} ms for a {stall_ms} ms stall; {}",
        r1["vector"]
    );
    assert!(
        (peak - stall_ms).abs() <= 0.02 * stall_ms,
        "peak {peak} ms for a {stall_ms} ms stall"
    );
    let min = r1["vector"]["min"].as_f64().unwrap();
    assert!(min < -0.95, "vector min {min}");
    // Through the stall the stream kept observing: the server's binlog heartbeats.
    let rows = export_rows(&store);
    let during = rows_within(&rows, "r1", (t0 + 1_000_000, t0 + 9_000_000));
    assert!(
        during.len() > 400,
        "{} rounds during the stall",
        during.len()
    );
    assert!(all_streamed_ok(&during));
    assert_eq!(
        replica_doc(&doc, "r2")["episodes"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

/// The recorder stopped (SIGSTOP) while a stalled replica resumes: the stream brings
/// the backlog while the recorder cannot read it, and it is read in one burst after.
/// The kernel's receive times say when it came, so no round's lower bound exceeds the
/// true lag (a message read after the stop, taken as just arrived after a quiet
/// stretch, raises the lower bounds of the backlog's beats by the rest of the stop:
/// 1.5 s).
#[test]
fn a_replica_resuming_while_the_recorder_is_stopped_is_read_as_it_caught_up() {
    let _lab = take_lab();
    let (_dir, store, recorder) = streaming("bl_stop_resume");
    sleep(Duration::from_secs(3));
    lab(&["stall"], &[("REPLICA", "1")]);
    let stalled_us = now_us();
    sleep(Duration::from_secs(3));
    signal(recorder.0.id(), "STOP");
    sleep(Duration::from_millis(200));
    let resume_from_us = now_us();
    lab(&["resume"], &[("REPLICA", "1")]);
    let resumed_us = now_us();
    sleep(Duration::from_millis(1500));
    signal(recorder.0.id(), "CONT");
    sleep(Duration::from_secs(3));
    stop_ok(recorder);

    // The replica lacked the beats from the stall's start until the resume ended, and
    // had them a moment after (100 ms allowed for applying the backlog): no lower
    // bound may exceed that. (Upper bounds may: what the socket's buffer could not
    // hold waited at the server until the recorder read again, and arrived then.)
    let stall_ms = (resumed_us - stalled_us) as f64 / 1e3;
    let least_ms = (resume_from_us - stalled_us) as f64 / 1e3;
    let rounds = bounds_after(&store, "r1", stalled_us - 1_000_000);
    let highest = rounds.iter().map(|r| r.lo_ms.unwrap()).fold(0.0, f64::max);
    let doc = analyze_json(&store);
    let eps = replica_doc(&doc, "r1")["episodes"]
        .as_array()
        .unwrap()
        .clone();
    let peak = eps
        .iter()
        .filter_map(|e| e["peak_ms"].as_f64())
        .fold(0.0, f64::max);
    eprintln!(
        "r1: stalled {least_ms:.0}-{stall_ms:.0} ms, the recorder stopped from 3000 ms to \
         {:.0} ms: {} episodes, peak {peak:.0} ms, highest lower bound {highest:.0} ms in {} rounds",
        least_ms + 1500.0,
        eps.len(),
        rounds.len()
    );
    assert!(rounds.len() > 500, "{} rounds", rounds.len());
    assert!(highest <= stall_ms + 100.0, "a lower bound of {highest} ms");
    assert!(
        peak >= least_ms - 100.0,
        "peak {peak} ms for a stall of {least_ms} ms"
    );
}

#[test]
fn a_killed_replica_is_a_gap_and_the_stream_comes_back_by_itself() {
    let _lab = take_lab();
    let (_dir, store, recorder) = streaming("bl_restart");
    sleep(Duration::from_secs(2));
    let killed_at = now_us();
    signal(lab_pid("replica1"), "KILL");
    sleep(Duration::from_secs(3));
    lab(&["up"], &[]);
    let up_at = now_us();
    sleep(Duration::from_secs(5));
    stop_ok(recorder);

    let doc = analyze_json(&store);
    let r1 = replica_doc(&doc, "r1");
    let gaps = r1["coverage"]["gaps"].as_array().unwrap();
    let unreachable: Vec<&Value> = gaps.iter().filter(|g| g["kind"] == "unreachable").collect();
    eprintln!("r1 gaps: {gaps:?}");
    assert!(
        unreachable.iter().any(|g| {
            let s = g["duration_s"].as_f64().unwrap();
            (2.5..=(up_at - killed_at) as f64 / 1e6 + 3.0).contains(&s)
        }),
        "no gap for the {:.1} s the replica was down: {gaps:?}",
        (up_at - killed_at) as f64 / 1e6
    );
    assert_eq!(
        gaps.len(),
        unreachable.len(),
        "one gap, not also silences in it"
    );
    let rows = export_rows(&store);
    let after = rows_within(&rows, "r1", (up_at + 2_000_000, i64::MAX));
    assert!(
        after.len() > 200,
        "{} rounds after the restart",
        after.len()
    );
    assert!(all_streamed_ok(&after), "the stream did not come back");
    // No lag is made up from the downtime: what the replica lacked after its restart
    // it really lacked (it had to fetch the beats of the outage).
    let max = lag(&doc, "r1")["percentiles"]["max_ms"].as_f64().unwrap();
    assert!(
        max < (up_at - killed_at) as f64 / 1000.0 + 3000.0,
        "max lag {max} ms"
    );
}

#[test]
fn purged_logs_and_a_killed_dump_thread_restart_the_stream_at_the_current_position() {
    let _lab = take_lab();
    let (_dir, store, recorder) = streaming("bl_purge");
    sleep(Duration::from_secs(2));
    root_sql("replica1", "FLUSH BINARY LOGS; FLUSH BINARY LOGS");
    root_sql(
        "replica1",
        "PURGE BINARY LOGS BEFORE NOW() + INTERVAL 1 DAY",
    );
    sleep(Duration::from_secs(2));
    let dumps = root_sql(
        "replica1",
        "SELECT id FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%' AND user = 'lagtrace'",
    );
    let ids: Vec<&str> = dumps.split_whitespace().collect();
    assert_eq!(ids.len(), 1, "one stream from the recorder: {dumps:?}");
    let killed_at = now_us();
    root_sql("replica1", &format!("KILL {}", ids[0]));
    sleep(Duration::from_secs(3));
    stop_ok(recorder);

    let rows = export_rows(&store);
    let r1 = rows_within(&rows, "r1", (i64::MIN, i64::MAX));
    // The stream restarts at once: no failed read (before, each restart stored one,
    // and the live check took the replica out and back for a replica that answered).
    let failed: Vec<&&Row> = r1.iter().filter(|r| r.outcome != "ok").collect();
    assert!(
        failed.is_empty(),
        "failed rounds for a restarted stream: {failed:?}"
    );

    let after: Vec<&&Row> = r1.iter().filter(|r| r.t_us > killed_at + 500_000).collect();
    assert!(after.len() > 150 && after.iter().all(|r| r.probe == "binlog" || r.reads == 1));
    // The reconnection invents no lag: its first events are this moment's.
    let doc = analyze_json(&store);
    let max = lag(&doc, "r1")["percentiles"]["max_ms"].as_f64().unwrap();
    assert!(max < 100.0, "max lag {max} ms around a reconnection");
    assert_eq!(
        replica_doc(&doc, "r1")["episodes"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

/// Drops a lab user when the test ends, even by panic.
struct DropUser(&'static str);

impl Drop for DropUser {
    fn drop(&mut self) {
        let sql = format!("DROP USER IF EXISTS '{}'@'127.0.0.1'", self.0);
        let _ = std::panic::catch_unwind(|| root_sql("primary", &sql));
    }
}

/// Creates lab user `user` with the lagtrace schema's grants and `global` on `*.*`,
/// waits until replication has brought it to the replicas, and drops it when the
/// returned guard goes.
fn lab_user(user: &'static str, global: &str) -> DropUser {
    root_sql(
        "primary",
        &format!(
            "CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' IDENTIFIED BY '{LAB_PASSWORD}';\
             GRANT SELECT, INSERT, UPDATE, CREATE ON lagtrace.* TO '{user}'@'127.0.0.1';\
             GRANT {global} ON *.* TO '{user}'@'127.0.0.1'"
        ),
    );
    let drop = DropUser(user);
    let deadline = Instant::now() + Duration::from_secs(10);
    for replica in ["replica1", "replica2"] {
        while root_sql(
            replica,
            &format!("SELECT COUNT(*) FROM mysql.user WHERE user = '{user}'"),
        )
        .trim()
            != "1"
        {
            assert!(
                Instant::now() < deadline,
                "the user never reached {replica}"
            );
            sleep(Duration::from_millis(100));
        }
    }
    drop
}

/// Runs `init` on `config`: it exits with `code` and says `phrase` once for each of the
/// lab's two replicas.
fn init_says_per_replica(config: &Path, code: i32, phrase: &str) {
    let (got, stdout) = run_init(config);
    assert_eq!(got, Some(code), "{stdout}");
    assert_eq!(stdout.matches(phrase).count(), 2, "{stdout}");
}

/// Without `BINLOG MONITOR` the file position is unknown and the stream starts by GTID
/// (the server scans its current binary log file first): it still brings every beat.
#[test]
fn without_binlog_monitor_the_stream_starts_by_gtid_and_brings_every_beat() {
    let _lab = take_lab();
    let user = "lt_no_monitor";
    let _drop = lab_user(user, "SLAVE MONITOR, REPLICATION SLAVE");
    let dir = TempDir::new("bl-gtid");
    let (config, store, port) = setup(&dir, "it_bl_gtid", "binlog", user);
    init_says_per_replica(
        &config,
        0,
        "binary log stream ready, from a GTID (without BINLOG MONITOR",
    );
    let recorder = Recorder::start(&config);
    for r in ["r1", "r2"] {
        wait_probe(port, r, "binlog");
    }
    sleep(Duration::from_secs(3));
    let log = stop_ok(recorder);
    assert_eq!(
        log.matches("starts by GTID").count(),
        2,
        "said once per replica: {log}"
    );
    let rows = export_rows(&store);
    for r in ["r1", "r2"] {
        let mine: Vec<&Row> = rows.iter().filter(|row| row.replica == r).collect();
        // While the stream catches up (the server scans its binary log first), reads
        // measure; from its first beat on, every observation came from the stream.
        assert!(mine.len() > 200, "{r}: {} rounds", mine.len());
        let first = mine.iter().position(|row| row.probe == "binlog").unwrap();
        assert!(
            first < 50,
            "{r}: the stream's first beat came after {first} reads"
        );
        assert!(
            all_streamed_ok(&mine[first..]),
            "{r}: {:?}",
            &mine[first..first + 5]
        );
    }
}

#[test]
fn without_the_replication_grant_auto_polls_and_says_why_and_binlog_fails_reads() {
    let _lab = take_lab();
    let user = "lt_no_binlog";
    let _drop = lab_user(user, "SLAVE MONITOR");

    let dir = TempDir::new("bl-grant");
    let (config, store, port) = setup(&dir, "it_bl_grant", "auto", user);
    // init (setup ran it) reports the replicas as polled, and why.
    init_says_per_replica(
        &config,
        0,
        "polled (no binary log stream: the user may not stream the binary log (grant REPLICATION SLAVE))",
    );
    let recorder = Recorder::start(&config);
    let s1 = wait_probe(port, "r1", "poll");
    assert_eq!(s1["probe"], "poll", "{s1}");
    let note = s1["probe_note"].as_str().unwrap_or("");
    assert!(note.contains("REPLICATION SLAVE"), "{s1}");
    sleep(Duration::from_secs(3));
    let log = stop_ok(recorder);
    assert!(
        log.lines()
            .filter(|l| l.contains("REPLICATION SLAVE"))
            .count()
            == 2,
        "said once per replica: {log}"
    );
    let doc = analyze_json(&store);
    for r in ["r1", "r2"] {
        let c = &replica_doc(&doc, r)["coverage"];
        assert_eq!(c["binlog_reads"], 0, "{c}");
        assert!(c["rounds"].as_u64().unwrap() > 200, "polled: {c}");
    }
    let out = lagtrace()
        .args(["analyze", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let text = texts(&out).0;
    assert!(
        text.contains("probe         r1: poll (the user may not stream the binary log"),
        "{text}"
    );

    // Asked for the stream only: init fails those replicas, reads fail saying why, and
    // nothing is measured.
    let dir = TempDir::new("bl-grant-only");
    let config = std::fs::read_to_string(&config)
        .unwrap()
        .replace("probe = \"auto\"", "probe = \"binlog\"")
        .replace("it_bl_grant", "it_bl_grant_only")
        .replace(
            &store.display().to_string(),
            &dir.path().join("s.redb").display().to_string(),
        );
    let config = dir.write("lagtrace.toml", &config);
    let store = dir.path().join("s.redb");
    init_says_per_replica(
        &config,
        1,
        "FAILED, probe = \"binlog\" but the user may not stream",
    );
    let recorder = Recorder::start(&config);
    sleep(Duration::from_secs(3));
    let log = stop_ok(recorder);
    assert!(log.contains("grant REPLICATION SLAVE"), "{log}");
    let rows = export_rows(&store);
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r.outcome == "access_denied"
            && r.reason
                .as_deref()
                .is_some_and(|w| w.contains("REPLICATION SLAVE"))),
        "{:?}",
        rows.first()
    );
}

/// Points replica2's replication at `port` and back to the primary when dropped.
struct Source;

impl Source {
    fn set(port: u16) {
        root_sql(
            "replica2",
            &format!("STOP SLAVE; CHANGE MASTER TO MASTER_PORT = {port}; START SLAVE"),
        );
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| Source::set(13306));
    }
}

/// The bounded lag rounds of `replica` from `store` after `from_us`.
fn bounds_after(store: &Path, replica: &str, from_us: i64) -> Vec<Row> {
    export_rows(store)
        .into_iter()
        .filter(|r| {
            r.replica == replica && r.t_us > from_us && r.lag_kind.as_deref() == Some("bounded")
        })
        .collect()
}

#[test]
fn behind_a_link_of_known_delay_the_stream_reads_that_delay_within_its_bounds() {
    let _lab = take_lab();
    const D_MS: f64 = 50.0;
    let line = common::proxy::delay_line(PRIMARY, Duration::from_millis(D_MS as u64));
    let _source = Source;
    Source::set(line.port);
    sleep(Duration::from_secs(1));
    let (_dir, store, recorder) = streaming("bl_delay");
    let from = now_us() + 2_000_000;
    sleep(Duration::from_secs(3));
    // The recorder paused now and then for 40 ms (a virtual machine's stolen time):
    // the stream's messages wait unread meanwhile, and must not read as lag.
    for _ in 0..8 {
        signal(recorder.0.id(), "STOP");
        sleep(Duration::from_millis(40));
        signal(recorder.0.id(), "CONT");
        sleep(Duration::from_millis(1000));
    }
    sleep(Duration::from_secs(1));
    stop_ok(recorder);

    let rounds = bounds_after(&store, "r2", from);
    assert!(rounds.len() > 900, "{} rounds", rounds.len());
    let mut judged: Vec<f64> = rounds.iter().map(|r| r.lag_ms.unwrap()).collect();
    let median = median(&mut judged);
    // The true lag: the link's delay (never less), plus the replica applying the beat
    // (well under a millisecond on the idle lab), plus the delay line's own scheduling:
    // a few ms at times, and when it passed a chunk on late in the 200 ms before a read
    // (the beat's whole way from the primary; a busy 2-core machine can stall the line's
    // thread for tens of ms), that lateness too.
    let truth_lo = D_MS;
    let truth_hi = |r: &Row| D_MS + 10.0 + line.late_us(r.t_us - 200_000, r.t_us) as f64 / 1e3;
    let holds = |r: &&Row| r.lo_ms.unwrap() <= truth_hi(r) && r.hi_ms.unwrap() >= truth_lo;
    let widened = rounds.iter().filter(|r| truth_hi(r) > D_MS + 10.0).count();
    let holding = rounds.iter().filter(holds).count();
    for r in rounds.iter().filter(|r| !holds(r)).take(10) {
        eprintln!("bounds miss the truth: {r:?}");
    }
    let share = holding as f64 / rounds.len() as f64;
    eprintln!(
        "r2 behind {D_MS} ms: median {median:.2} ms, bounds hold in {holding} of {} rounds \
         ({widened} with the truth widened by the line's lateness)",
        rounds.len()
    );
    // The point estimate: the middle of the bounds. A beat's event that comes before
    // the stream's check of its socket at the writer's acknowledgement (a race here: both
    // come about 50 ms after a beat's send) starts its run at the check before, an
    // interval earlier, and its lower bound is an interval lower; a stamp cannot say
    // when its first byte came. So about one round in three has bounds [40, 51] ms.
    assert!(
        (D_MS - 5.0..=D_MS + 10.0).contains(&median),
        "median {median} ms behind a {D_MS} ms link"
    );
    assert!(share >= 0.999, "bounds held in {share:.4} of the rounds");
}

#[test]
fn behind_a_narrow_link_a_large_transaction_is_not_read_as_lag() {
    let _lab = take_lab();
    // The recorder reaches r2 through a 2.5 MB/s link; both replicas replicate from the
    // primary directly, so r2 applies what r1 applies, when r1 applies it. One 20 MB
    // transaction then takes 8 s to reach the recorder on r2's stream: that is the
    // recorder's link, not r2's lag.
    const RATE: u64 = 2_500_000;
    let narrow = common::proxy::narrow_line(REPLICAS[1].1, RATE);
    let dir = TempDir::new("bl_narrow");
    let port = free_port();
    let store = dir.path().join("s.redb");
    let r2 = format!("127.0.0.1:{narrow}");
    let config = lab_config(
        "it_bl_narrow",
        PRIMARY,
        &[REPLICAS[0], ("r2", &r2)],
        "LAGTRACE_IT_PASSWORD",
    );
    let config = format!(
        "{config}\n[record]\ninterval = \"10ms\"\nprobe = \"binlog\"\nstore = \"{}\"\n\n\
         [http]\nlisten = \"127.0.0.1:{port}\"\nmax_lag = \"1s\"\n",
        store.display()
    );
    let config = init_config(&dir, &config);
    let recorder = Recorder::start(&config);
    for r in ["r1", "r2"] {
        let doc = wait_probe(port, r, "binlog");
        assert_eq!(doc["probe"], "binlog", "{doc}");
    }
    root_sql(
        "primary",
        "DROP TABLE IF EXISTS lab.wide; \
         CREATE TABLE lab.wide (id INT PRIMARY KEY, pad VARCHAR(1000) NOT NULL) ENGINE=InnoDB",
    );
    sleep(Duration::from_secs(2));
    let from = now_us();
    root_sql(
        "primary",
        "INSERT INTO lab.wide SELECT seq, REPEAT('x', 1000) FROM lab.seq_1_to_20000",
    );
    sleep(Duration::from_secs(12));
    root_sql("primary", "DROP TABLE lab.wide");
    sleep(Duration::from_secs(1));
    let log = stop_ok(recorder);

    let rows: Vec<Row> = export_rows(&store)
        .into_iter()
        .filter(|r| r.t_us > from && r.lag_kind.as_deref() == Some("bounded"))
        .collect();
    let peak = |replica: &str, f: fn(&Row) -> Option<f64>| {
        rows.iter()
            .filter(|r| r.replica == replica)
            .filter_map(f)
            .fold(0.0f64, f64::max)
    };
    let r1_hi = peak("r1", |r| r.hi_ms);
    let r2_lo = peak("r2", |r| r.lo_ms);
    let r2_hi = peak("r2", |r| r.hi_ms);
    eprintln!(
        "20 MB transaction: r1 (direct) peaks at {r1_hi:.0} ms; r2 (behind {:.1} MB/s) \
         lower bound peaks at {r2_lo:.0} ms, upper at {r2_hi:.0} ms",
        RATE as f64 / 1e6
    );
    let doc = analyze_json(&store);
    let episodes = |r: &str| replica_doc(&doc, r)["episodes"].clone();
    eprintln!("episodes: r1 {}\nr2 {}", episodes("r1"), episodes("r2"));
    assert!(r1_hi > 0.0, "no rounds for r1\n{log}");
    // r2's true lag is r1's, give or take the two applying side by side on 2 cores.
    assert!(
        r2_lo <= r1_hi + 300.0,
        "r2's lower bound {r2_lo:.0} ms exceeds r1's true lag {r1_hi:.0} ms: the narrow \
         link's delivery was read as lag\n{log}"
    );
    // While the stream is behind, reads measure: r2 keeps its rounds, and no episode.
    let r2_rounds = rows.iter().filter(|r| r.replica == "r2").count();
    assert!(r2_rounds > 200, "{r2_rounds} rounds for r2 in 13 s");
    assert_eq!(episodes("r2"), serde_json::json!([]), "{log}");
}
