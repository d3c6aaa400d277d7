//! `lagtrace replay`: runs a recording through the pool state machine
//! (analysis::health, the same one the live checks use) and prints every change of
//! state, as fast as possible or paced at `speed` times real time, optionally
//! re-emitting statsd metrics. The clusters' recorded events (primary down and up,
//! failovers, splits, source and read-only changes) come in their time order among the changes.

use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::{CmdError, Selection, us};
use crate::analysis::health::{self, Change, Event, Health, Pool, Thresholds};
use crate::analysis::{outages, series};
use crate::clock::format_utc_us;
use crate::config::{StatsdConfig, parse_duration};
use crate::output::report::human_us;
use crate::output::statsd::Statsd;
use crate::samples::event::EventKind;

/// `lagtrace replay`'s command line.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    lagtrace replay --store lagtrace.redb --max-lag 1s --recover-lag 500ms\n  \
    lagtrace replay --store lagtrace.redb --max-lag 5s --min-duration 10s --replica db2\n  \
    lagtrace replay --store lagtrace.redb --speed 60 --statsd 127.0.0.1:8125\n\n\
    Prints every change in/out of the pool and why, then per replica how often and how\n\
    long it was out: \"with these thresholds, how often would it have left the pool?\"")]
pub struct Args {
    #[command(flatten)]
    pub select: Selection,
    /// Out of the pool when lag exceeds this
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub max_lag: Duration,
    /// ... back in when lag falls under this
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub recover_lag: Duration,
    /// A new state must hold this long before it is taken
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub min_duration: Duration,
    /// Out when no read came for this long
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub stale: Duration,
    /// Compare lag minus the intended delay (SQL_Delay) with the thresholds
    #[arg(long)]
    pub ignore_intended_delay: bool,
    /// Take a replica out while its source is down (the primary unreachable from the
    /// recorder and from the replica), as `[http] out_when_source_down` does live
    #[arg(long)]
    pub out_when_source_down: bool,
    /// 0: as fast as possible; N: N times real time
    #[arg(long, value_name = "N", default_value = "0")]
    pub speed: f64,
    /// Re-emit statsd metrics to HOST:PORT while replaying (needs --speed above 0)
    #[arg(long, value_name = "HOST:PORT")]
    pub statsd: Option<String>,
    /// Prefix of the re-emitted statsd metrics
    #[arg(long, value_name = "PREFIX", default_value = "lagtrace")]
    pub statsd_prefix: String,
}

impl Args {
    fn thresholds(&self) -> Thresholds {
        Thresholds {
            max_lag_us: us(self.max_lag),
            recover_lag_us: us(self.recover_lag),
            min_duration_us: us(self.min_duration),
            stale_us: us(self.stale),
            ignore_intended_delay: self.ignore_intended_delay,
            out_when_source_down: self.out_when_source_down,
        }
    }

    /// `--statsd` and `--statsd-prefix`, checked.
    fn statsd(&self) -> Result<Option<StatsdConfig>, CmdError> {
        let Some(a) = &self.statsd else {
            return Ok(None);
        };
        let address = crate::config::statsd_address(a)
            .map_err(|e| CmdError::BadInput(format!("--statsd: {e}")))?;
        crate::config::check_statsd_prefix(&self.statsd_prefix)
            .map_err(|e| CmdError::BadInput(format!("--statsd-prefix: {e}")))?;
        Ok(Some(StatsdConfig {
            address,
            prefix: self.statsd_prefix.clone(),
        }))
    }
}

/// One replica's replay state.
struct Replica<'a> {
    cluster: &'a str,
    replica: &'a str,
    events: Vec<Event<'a>>,
    health: Health,
    next: usize,
    changes: Vec<Change>,
    /// Time spent out of the pool so far, µs, and when the current stay out began.
    out_us: i64,
    out_since: Option<i64>,
}

pub fn run(args: &Args) -> Result<(), CmdError> {
    let filter = args.select.filter()?;
    let thresholds = args.thresholds();
    let th = &thresholds;
    super::analyze::check_thresholds(th.max_lag_us, th.recover_lag_us)?;
    let statsd = checked_statsd(args)?;
    let (rec, bar) = super::load_recording(&args.select.store, &filter)?;
    let stale_us = th.stale_us;

    let series: Vec<(series::LagSeries, Vec<crate::samples::StatusSample>)> = rec
        .replicas
        .iter()
        .map(|rs| Ok((series::replica_series(&rec, rs)?, rs.status.collect()?)))
        .collect::<Result<_, crate::store::StoreError>>()?;
    // Each cluster's outages tell its replicas' state machines, as the live beats do,
    // when their source may be down.
    let mut outages = std::collections::HashMap::new();
    for (cluster, beats) in &rec.beats {
        outages.insert(cluster.as_str(), outages::cluster_outages(beats)?);
    }
    drop(bar);
    let mut replicas: Vec<Replica> = rec
        .replicas
        .iter()
        .zip(&series)
        .map(|(rs, (s, status))| Replica {
            cluster: &rs.cluster,
            replica: &rs.replica,
            events: with_outages(
                health::events(&s.points, &s.failures, status),
                outages.get(rs.cluster.as_str()).map_or(&[], Vec::as_slice),
            ),
            health: Health::new(Thresholds { stale_us, ..*th }),
            next: 0,
            changes: Vec::new(),
            out_us: 0,
            out_since: None,
        })
        .collect();

    // Every replica's events in one time order: a heap of (next time, replica).
    let mut heap: BinaryHeap<std::cmp::Reverse<(i64, usize)>> = replicas
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.events.first().map(|e| std::cmp::Reverse((e.t_us(), i))))
        .collect();
    let t0 = heap.peek().map(|r| r.0.0);
    let wall0 = Instant::now();
    let paced = args.speed > 0.0;
    let mut out = String::new();
    let mut fresh = Vec::new();
    // What happened to the clusters, as recorded (pool changes are replayed instead).
    let mut recorded = rec
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.kind(),
                EventKind::PrimaryDown
                    | EventKind::PrimaryUp
                    | EventKind::Failover
                    | EventKind::Split
                    | EventKind::SplitEnd
                    | EventKind::SourceChange
                    | EventKind::RoleChange
            )
        })
        .peekable();
    while let Some(std::cmp::Reverse((t, i))) = heap.pop() {
        if let (true, Some(t0)) = (paced, t0) {
            let due = Duration::from_secs_f64((t - t0) as f64 / 1e6 / args.speed);
            if let Some(wait) = due.checked_sub(wall0.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        while let Some(e) = recorded.next_if(|e| e.t_us <= t) {
            let line = recorded_line(e);
            if paced {
                super::print_stdout(&line)?;
            } else {
                out.push_str(&line);
            }
        }
        let r = &mut replicas[i];
        for line in replay_event(r, statsd.as_ref(), &mut fresh) {
            if paced {
                super::print_stdout(&line)?;
                if let Some(s) = &statsd {
                    s.flush();
                }
            } else {
                out.push_str(&line);
            }
        }
        if let Some(e) = r.events.get(r.next) {
            heap.push(std::cmp::Reverse((e.t_us(), i)));
        }
    }
    if let Some(s) = &statsd {
        s.flush();
    }
    for e in recorded {
        out.push_str(&recorded_line(e));
    }
    out.push_str(&summary(&replicas, th));
    super::print_stdout(&out)
}

/// A replica's events with its cluster's outages among them: the source may be down
/// from each outage's first failed beat to the next good one.
fn with_outages<'a>(
    mut events: Vec<Event<'a>>,
    outages: &[outages::PrimaryOutage],
) -> Vec<Event<'a>> {
    for o in outages {
        events.push(Event::Source {
            t_us: o.start_us,
            down: true,
        });
        if let Some(end_us) = o.end_us {
            events.push(Event::Source {
                t_us: end_us,
                down: false,
            });
        }
    }
    events.sort_by_key(Event::t_us);
    events
}

/// The statsd client `--statsd` asks for, once the pacing allows it.
fn checked_statsd(args: &Args) -> Result<Option<Statsd>, CmdError> {
    let config = args.statsd()?;
    if !(args.speed >= 0.0 && args.speed.is_finite()) {
        return Err(CmdError::BadInput(
            "--speed must be 0 (as fast as possible) or a positive factor".to_string(),
        ));
    }
    if config.is_some() && args.speed == 0.0 {
        return Err(CmdError::BadInput(
            "--statsd needs --speed above 0 (otherwise every metric arrives at once)".to_string(),
        ));
    }
    config
        .as_ref()
        .map(Statsd::new)
        .transpose()
        .map_err(|e| CmdError::BadInput(e.to_string()))
}

/// Replica `r` takes its next event: statsd gets its figures, and each pool change it
/// makes is counted and returned as a line (`fresh` is scratch space).
fn replay_event(r: &mut Replica, statsd: Option<&Statsd>, fresh: &mut Vec<Change>) -> Vec<String> {
    let ev = r.events[r.next];
    r.next += 1;
    fresh.clear();
    r.health.feed(&ev, fresh);
    if let Some(s) = statsd {
        match ev {
            Event::Lag { lag, .. } => s.lag(r.cluster, r.replica, &lag),
            Event::Status(st) => {
                if let Some(ch) = st.main_channel() {
                    s.status(r.cluster, r.replica, ch);
                }
            }
            Event::Failure { .. } | Event::Source { .. } => {}
        }
    }
    let mut lines = Vec::new();
    for c in fresh.iter() {
        match (c.pool, r.out_since) {
            (Pool::Out, None) => r.out_since = Some(c.t_us),
            (Pool::In, Some(since)) => {
                r.out_us += c.t_us - since;
                r.out_since = None;
            }
            _ => {}
        }
        lines.push(change_line(r.cluster, r.replica, c, r.changes.is_empty()));
        r.changes.push(c.clone());
    }
    lines
}

/// A recorded cluster event among the replayed pool changes.
fn recorded_line(e: &crate::store::events::RecordedEvent) -> String {
    format!(
        "{}  {}  {}  {}  (recorded)\n",
        format_utc_us(e.t_us),
        e.cluster(),
        e.doc.event,
        crate::output::report::event_detail(e)
    )
}

fn change_line(cluster: &str, replica: &str, c: &Change, first: bool) -> String {
    format!(
        "{}  {cluster}/{replica}  {:<3}  {}{}\n",
        format_utc_us(c.t_us),
        match c.pool {
            Pool::In => "in",
            Pool::Out => "out",
        },
        c.reason,
        if first { "  (first state)" } else { "" }
    )
}

fn summary(replicas: &[Replica], th: &Thresholds) -> String {
    let mut s = format!(
        "\nwith max-lag {}, recover-lag {}, min-duration {}, stale after {}:\n",
        human_us(th.max_lag_us),
        human_us(th.recover_lag_us),
        human_us(th.min_duration_us),
        human_us(th.stale_us)
    );
    for r in replicas {
        let first = r.events.first().map_or(0, |e| e.t_us());
        let last = r.events.last().map_or(0, |e| e.t_us());
        let outs = r
            .changes
            .iter()
            .skip(1)
            .filter(|c| c.pool == Pool::Out)
            .count();
        let out_us = r.out_us + r.out_since.map_or(0, |since| last - since);
        let span = (last - first).max(1);
        let _ = writeln!(
            s,
            "  {}/{}: left the pool {outs} time(s), out for {} of {} ({:.1} %){}",
            r.cluster,
            r.replica,
            human_us(out_us),
            human_us(last - first),
            100.0 * out_us as f64 / span as f64,
            if r.out_since.is_some() {
                ", out at the end"
            } else {
                ""
            }
        );
    }
    s
}
