//! The live view of `record`: the last lag, bounds and thread states per replica. On a
//! terminal it is a table redrawn each second; otherwise one log line per replica
//! every 10 seconds.

use std::fmt::Write as _;

use crate::analysis::lag::{Lag, Unknown};
use crate::clock::format_utc_us;
use crate::samples::{Observation, Outcome, StatusSample};

/// What the recorder last saw of one replica.
#[derive(Debug, Clone, Default)]
pub struct ReplicaView {
    pub cluster: String,
    pub replica: String,
    /// Its `host:port`, which names what its last connection ended as
    /// (`samples::security`).
    pub address: String,
    pub last: Option<Observation>,
    /// The lag of the last successful read (`None` for a read of a beat not held yet).
    pub lag: Option<Lag>,
    pub status: Option<StatusSample>,
    pub reads_ok: u64,
    pub reads_failed: u64,
}

/// Totals shown under the table.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub beats_ok: u64,
    pub beats_failed: u64,
    pub dropped: u64,
    /// Samples dropped because the store could not be written for too long.
    pub unstored: u64,
    pub statsd_errors: u64,
}

fn ms(us: i64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 1000.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

fn lag_cells(v: &ReplicaView) -> (String, String) {
    match (&v.last, &v.lag) {
        (Some(_), Some(lag @ Lag::Bounded { lo_us, hi_us })) => (
            format!("{} ms", ms(lag.judged_us().unwrap_or_default())),
            format!("[{}, {}]", ms(*lo_us), ms(*hi_us)),
        ),
        (Some(_), Some(Lag::AtLeast { lo_us })) => {
            (format!(">= {} ms", ms(*lo_us)), "no upper bound".into())
        }
        (Some(_), Some(Lag::Unknown(Unknown::ForeignBeat { seq }))) => {
            ("?".into(), format!("foreign beat {seq}"))
        }
        (Some(_), Some(Lag::Unknown(Unknown::BeforeFirstBeat))) => {
            ("?".into(), "before first beat".into())
        }
        (Some(o), None) if o.outcome == Outcome::Ok => ("?".into(), "beat not held".into()),
        (Some(o), None) => (o.outcome.name().into(), String::new()),
        (None, _) => ("-".into(), String::new()),
    }
}

fn status_cells(v: &ReplicaView) -> (String, String, String) {
    let Some(ch) = v.status.as_ref().and_then(|s| s.main_channel()) else {
        let why = v.status.as_ref().map_or("-", |s| {
            if s.outcome == Outcome::Ok {
                "none"
            } else {
                s.outcome.name()
            }
        });
        return (why.into(), why.into(), "-".into());
    };
    let io = ch.io.label();
    let sql = if ch.sql_running { "Yes" } else { "No" };
    let sbm = ch
        .seconds_behind_master
        .map_or("NULL".to_string(), |s| s.to_string());
    (io.into(), sql.into(), sbm)
}

/// What the replica's last connection ended as, in one word: `verified` (its name
/// too), `ca`, `unchecked` (TLS, certificate not checked), `plain`, or `-` before any.
fn tls_cell(v: &ReplicaView) -> &'static str {
    match crate::samples::security::seen(&v.address) {
        None => "-",
        Some(s) if !s.encrypted() => "plain",
        Some(s) => match s.verified() {
            "identity" => "verified",
            "ca" => "ca",
            _ => "unchecked",
        },
    }
}

/// The table shown on a terminal.
pub fn table(views: &[ReplicaView], totals: &Totals, now_us: i64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "lagtrace record  {}", format_utc_us(now_us));
    let _ = writeln!(
        out,
        "{:<12} {:<12} {:>12} {:>22} {:>10} {:>4} {:>8} {:>9} {:>9}",
        "CLUSTER", "REPLICA", "LAG", "BOUNDS ms", "IO", "SQL", "SBM s", "FAILED", "TLS"
    );
    for v in views {
        let (lag, bounds) = lag_cells(v);
        let (io, sql, sbm) = status_cells(v);
        let _ = writeln!(
            out,
            "{:<12} {:<12} {:>12} {:>22} {:>10} {:>4} {:>8} {:>9} {:>9}",
            v.cluster,
            v.replica,
            lag,
            bounds,
            io,
            sql,
            sbm,
            v.reads_failed,
            tls_cell(v)
        );
    }
    let _ = writeln!(
        out,
        "beats ok {}  failed {}  dropped samples {}  unstored samples {}  statsd errors {}",
        totals.beats_ok, totals.beats_failed, totals.dropped, totals.unstored, totals.statsd_errors
    );
    out
}

/// One line per replica, for logs.
pub fn log_lines(views: &[ReplicaView], now_us: i64) -> String {
    let mut out = String::new();
    for v in views {
        let (lag, bounds) = lag_cells(v);
        let (io, sql, sbm) = status_cells(v);
        let _ = writeln!(
            out,
            "{} {}/{} lag={} bounds={} io={} sql={} seconds_behind_master={} reads_ok={} reads_failed={} tls={}",
            format_utc_us(now_us),
            v.cluster,
            v.replica,
            lag.replace(' ', ""),
            bounds.replace(' ', ""),
            io,
            sql,
            sbm,
            v.reads_ok,
            v.reads_failed,
            tls_cell(v)
        );
    }
    out
}

/// Prints console frames on its own thread, so that a terminal that does not take
/// output (paused with Ctrl-S, a stalled pipe) never stalls the probes, which share the
/// sample loop's thread. A frame offered while the last one is still being written is
/// dropped: only the newest picture matters.
pub struct Printer {
    frames: Option<std::sync::mpsc::SyncSender<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Printer {
    pub fn start() -> Printer {
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(1);
        let thread = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                use std::io::Write;
                for frame in rx {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(frame.as_bytes());
                    let _ = out.flush();
                }
            })
            .ok();
        Printer {
            frames: thread.is_some().then_some(tx),
            thread,
        }
    }

    /// Hands `frame` over without waiting; `false` when it was dropped.
    pub fn offer(&self, frame: String) -> bool {
        self.frames
            .as_ref()
            .is_some_and(|tx| tx.try_send(frame).is_ok())
    }

    /// Prints `last` after what is pending and waits until it is written. Call it only
    /// when nothing else waits on this thread (the store is already flushed).
    pub fn finish(mut self, last: Option<String>) {
        if let (Some(tx), Some(last)) = (self.frames.take(), last) {
            let _ = tx.send(last);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_lag_bounds_and_null() {
        let v = ReplicaView {
            cluster: "lab".into(),
            replica: "r1".into(),
            address: "127.0.0.1:1".into(),
            last: Some(Observation {
                r_start_us: 0,
                r_end_us: 1,
                seq: Some(1),
                outcome: Outcome::Ok,
                reason: None,
                follow_up: false,
                probe: Default::default(),
            }),
            lag: Some(Lag::Bounded {
                lo_us: 100,
                hi_us: 900,
            }),
            status: Some(StatusSample {
                postgres: None,
                t_us: 0,
                duration_us: 1,
                outcome: Outcome::Ok,
                reason: None,
                channels: vec![],
            }),
            reads_ok: 3,
            reads_failed: 0,
        };
        let t = table(std::slice::from_ref(&v), &Totals::default(), 0);
        assert!(t.contains("0.50 ms") && t.contains("[0.10, 0.90]"), "{t}");
        let l = log_lines(&[v], 0);
        assert!(
            l.contains("lab/r1 lag=0.50ms bounds=[0.10,0.90] io=none"),
            "{l}"
        );
    }
}
