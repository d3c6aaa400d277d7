//! Analysis benchmark: synthetic stores holding one day and one week at 100 Hz for one
//! replica (8.64 M and 60.5 M observations, as many beats, a status sample per second,
//! and a 60 s stall every two hours caught up at capacity 3), then `lagtrace analyze`
//! on both, on the day's last 12 hours (`--from`), and `lagtrace plot --kind overview`
//! on the day, timed as a user runs them, with their peak RSS. Prints figures; asserts
//! nothing (the machines are shared and noisy). Targets: a day analyzed in 0.3 s within
//! 150 MB, a week in 2.5 s within the day's memory, a window of the day within the
//! whole day's memory.
//!
//!     cargo bench --bench analysis
//!     LAGTRACE_BENCH_DAYS_ONLY=1 cargo bench --bench analysis   # skip the week
//!
//! The stores are built once (the week takes minutes) and kept in the system temp
//! directory (`lagtrace-bench-analysis/`); delete them to rebuild.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lagtrace::samples::{Beat, ChannelStatus, IoState, Observation, Outcome, Sample, StatusSample};
use lagtrace::store::writer::Appender;
use lagtrace::store::{SessionInfo, Store, cluster_key, replica_key};

const HZ: i64 = 100;
const DAY_S: i64 = 86_400;
const T0_US: i64 = 1_795_000_000_000_000;
const STALL_EVERY_S: i64 = 7_200;
const STALL_S: i64 = 60;
const CAPACITY: f64 = 3.0;

/// Deterministic jitter, so runs are comparable.
struct Jitter(lagtrace::xorshift::XorShift);

impl Jitter {
    fn next(&mut self, max: i64) -> i64 {
        self.0.below(max as u64) as i64
    }
}

/// Primary time (µs since T0) the replica reflects at `t` (µs since T0): it keeps up,
/// except for a stall of STALL_S every STALL_EVERY_S and the catch-up after it.
fn reflected(t: i64) -> i64 {
    let period = STALL_EVERY_S * 1_000_000;
    let start = (t / period) * period + period / 2;
    let stall = STALL_S * 1_000_000;
    if t < start {
        return t;
    }
    if t < start + stall {
        return start;
    }
    // Catching up: h grows at CAPACITY until it meets t.
    let h = start + ((t - start - stall) as f64 * CAPACITY) as i64;
    h.min(t)
}

fn build(path: &Path, seconds: i64) {
    let _ = std::fs::remove_file(path);
    let store = Store::open_or_create(path).unwrap();
    let ids = store
        .intern(&[cluster_key("bench"), replica_key("bench", "r1")])
        .unwrap();
    let session = store
        .begin_session(&SessionInfo {
            started_us: T0_US,
            interval_us: (1_000_000 / HZ) as u64,
            version: "bench".into(),
            host: "bench".into(),
            read_every: 1,
        })
        .unwrap();
    let step = 1_000_000 / HZ;
    let mut j = Jitter(lagtrace::xorshift::XorShift::new(0x9e37_79b9_7f4a_7c15));
    let mut appender = Appender::new(store, session);
    for second in 0..seconds {
        for k in 0..HZ {
            let i = second * HZ + k;
            let send = T0_US + i * step + j.next(100);
            let ack = send + 200 + j.next(400);
            let seq = T0_US as u64 + i as u64;
            appender.add(Sample::Beat {
                cluster: ids[0],
                beat: Beat {
                    seq,
                    t_send_us: send,
                    t_done_us: ack,
                    outcome: Outcome::Ok,
                    reason: None,
                },
            });
            let r_start = ack + 20 + j.next(60);
            let visible = (reflected(r_start - T0_US) / step).min(i);
            appender.add(Sample::Observation {
                replica: ids[1],
                observation: Observation {
                    r_start_us: r_start,
                    r_end_us: r_start + 150 + j.next(300),
                    seq: Some(T0_US as u64 + visible as u64),
                    outcome: Outcome::Ok,
                    reason: None,
                    follow_up: false,
                    probe: Default::default(),
                },
            });
        }
        let t_us = T0_US + second * 1_000_000 + 5_000;
        let lagging = reflected(t_us - T0_US) < t_us - T0_US;
        appender.add(Sample::Status {
            replica: ids[1],
            status: StatusSample {
                postgres: None,
                t_us,
                duration_us: 400,
                outcome: Outcome::Ok,
                reason: None,
                channels: vec![ChannelStatus {
                    channel: String::new(),
                    source: "10.0.0.1:3306".into(),
                    io: IoState::Yes,
                    sql_running: true,
                    seconds_behind_master: Some(0),
                    sql_delay_s: 0,
                    last_io_errno: 0,
                    last_io_error: String::new(),
                    last_sql_errno: 0,
                    last_sql_error: String::new(),
                    gtid_io_pos: format!("0-1-{}", second * 20),
                    gtid_applied_pos: format!("0-1-{}", second * 20),
                    relay_log_space: 4096,
                    sql_applying: Some(lagging || j.next(3) == 0),
                }],
            },
        });
        appender.flush().unwrap();
    }
    appender.finish().unwrap();
}

/// Wall times of `runs` runs of lagtrace with `args`, sorted, and the last stdout.
fn time_runs(args: &[&str], runs: usize) -> (Vec<f64>, String) {
    let mut times = Vec::new();
    let mut stdout = String::new();
    for _ in 0..runs {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_lagtrace"))
            .args(args)
            .output()
            .expect("run lagtrace");
        times.push(started.elapsed().as_secs_f64());
        assert!(
            out.status.success(),
            "lagtrace {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    times.sort_by(f64::total_cmp);
    (times, stdout)
}

/// Peak RSS of one run in MB, when /usr/bin/time is there.
fn peak_rss_mb(args: &[&str]) -> Option<f64> {
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg(env!("CARGO_BIN_EXE_lagtrace"))
        .args(args)
        .output()
        .ok()?;
    let err = String::from_utf8_lossy(&out.stderr);
    let kb: f64 = err.lines().last()?.trim().parse().ok()?;
    Some(kb / 1024.0)
}

/// The store of `days` days, built when missing.
fn store_of(dir: &Path, days: i64) -> PathBuf {
    let store = dir.join(format!(
        "{days}d-{HZ}hz-f{}.redb",
        lagtrace::store::FORMAT_VERSION
    ));
    if !store.exists() {
        let started = Instant::now();
        let partial = dir.join("building.redb");
        build(&partial, days * DAY_S);
        std::fs::rename(&partial, &store).unwrap();
        println!(
            "built {} in {:.1} s",
            store.display(),
            started.elapsed().as_secs_f64()
        );
    }
    store
}

/// Times `lagtrace analyze` on the store of `days` days; returns its peak RSS in MB.
fn analyze(dir: &Path, days: i64, target_s: f64) -> Option<f64> {
    let store = store_of(dir, days);
    let observations = days * DAY_S * HZ;
    let size = std::fs::metadata(&store).unwrap().len();
    println!(
        "store: {days} day(s) at {HZ} Hz, one replica: {observations} observations + as many \
         beats, {size} bytes"
    );
    let args = ["analyze", "--store", store.to_str().unwrap()];
    let (times, text) = time_runs(&args, 3);
    println!(
        "analyze {days} d: {:.3} s best, {:.3} s median of 3 = {:.1} M observations/s (target {target_s} s)",
        times[0],
        times[1],
        observations as f64 / times[1] / 1e6
    );
    let rss = peak_rss_mb(&args);
    if let Some(mb) = rss {
        println!("  peak RSS {mb:.0} MB");
    }
    if std::env::var_os("LAGTRACE_BENCH_VERBOSE").is_some() {
        println!("{text}");
    }
    rss
}

/// Times `lagtrace analyze --from` on the day's last 12 hours, which loads the 6 hours
/// of beats before them too (`BEAT_LOOKBACK_US`); prints its peak RSS against the whole
/// day's `day_rss` (MB).
fn analyze_window(dir: &Path, day_rss: Option<f64>) {
    let store = store_of(dir, 1);
    let from = lagtrace::clock::format_utc_us(T0_US + DAY_S / 2 * 1_000_000);
    let args = [
        "analyze",
        "--store",
        store.to_str().unwrap(),
        "--from",
        &from,
    ];
    let (times, _) = time_runs(&args, 3);
    println!(
        "analyze the day's last 12 h: {:.3} s best, {:.3} s median of 3",
        times[0], times[1]
    );
    if let Some(mb) = peak_rss_mb(&args) {
        let ratio = day_rss.map_or(String::new(), |day| {
            format!(", {:.2} of the whole day's", mb / day)
        });
        println!("  peak RSS {mb:.0} MB{ratio} (target <= 1)");
    }
}

fn main() {
    let dir: PathBuf = std::env::temp_dir().join("lagtrace-bench-analysis");
    std::fs::create_dir_all(&dir).unwrap();
    let day_rss = analyze(&dir, 1, 0.3);
    analyze_window(&dir, day_rss);
    if std::env::var_os("LAGTRACE_BENCH_DAYS_ONLY").is_none() {
        let week_rss = analyze(&dir, 7, 2.5);
        if let (Some(day), Some(week)) = (day_rss, week_rss) {
            println!("  week / day peak RSS: {:.2} (target <= 1)", week / day);
        }
    }

    let store = store_of(&dir, 1);
    let s = store.to_str().unwrap();
    let svg = dir.join("overview.svg");
    let plot = [
        "plot",
        "--kind",
        "overview",
        "--store",
        s,
        "--out",
        svg.to_str().unwrap(),
    ];
    let (times, _) = time_runs(&plot, 3);
    let svg_bytes = std::fs::metadata(&svg).unwrap().len();
    println!(
        "plot --kind overview, 1 d: {:.3} s best, {:.3} s median of 3 (target < 2 s); {svg_bytes} bytes of SVG",
        times[0], times[1]
    );
    if let Some(mb) = peak_rss_mb(&plot) {
        println!("  peak RSS {mb:.0} MB");
    }
}
