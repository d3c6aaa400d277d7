//! The `analyze` report as a readable text table or as JSON (schema in docs/commands.md).
//! Takes the analysis' figures as they are; only formats them.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::analysis::capacity::Estimator;
use crate::analysis::episodes::{Cause, Episode};
use crate::analysis::lag::Lag;
use crate::analysis::pg::PgSummary;
use crate::analysis::report::{
    ClusterReport, Coverage, Gap, LagSummary, ReplicaReport, Settings, VectorSummary,
};
use crate::analysis::stats::{Distribution, Percentiles};
use crate::clock::format_utc_us;
use crate::clock::ms;
use crate::samples::ProgressUnit;
use crate::samples::event::{EventKind, NodeName};
use crate::store::events::RecordedEvent;

/// How `analyze` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A readable table per replica
    Text,
    /// One JSON document (schema in docs/commands.md)
    Json,
}

/// Version of the JSON document; bumped when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 2;

/// How many gaps and episodes the text lists per replica (the longest / first ones);
/// JSON lists them all.
pub const TEXT_LIST_LIMIT: usize = 10;

/// A throughput for people: `412.3 tx/s`, or WAL as `1.84 MB/s` (decimal units).
fn rate(per_s: f64, unit: ProgressUnit) -> String {
    match unit {
        ProgressUnit::Transactions => format!("{per_s:.1} tx/s"),
        ProgressUnit::WalBytes if per_s >= 1e6 => format!("{:.2} MB/s of WAL", per_s / 1e6),
        ProgressUnit::WalBytes => format!("{:.1} kB/s of WAL", per_s / 1e3),
    }
}

/// A duration for people: `0.84 ms`, `12.3 ms`, `4.21 s`, `3 m 05 s`, `2 h 10 m`, `3 d 04 h`.
pub fn human_us(us: i64) -> String {
    let sign = if us < 0 { "-" } else { "" };
    let us = us.unsigned_abs();
    let body = if us < 10_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else if us < 60_000_000 {
        format!("{:.2} s", us as f64 / 1e6)
    } else {
        let s = us / 1_000_000;
        if s < 3600 {
            format!("{} m {:02} s", s / 60, s % 60)
        } else if s < 86_400 {
            format!("{} h {:02} m", s / 3600, s % 3600 / 60)
        } else {
            format!("{} d {:02} h", s / 86_400, s % 86_400 / 3600)
        }
    };
    format!("{sign}{body}")
}

/// A vector as `+0.42`; values that round to zero print as `+0.00`, never `-0.00`.
fn signed(v: f64) -> String {
    let v = if v.abs() < 0.005 { 0.0 } else { v };
    format!("{v:+.2}")
}

fn opt_vector(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), signed)
}

/// The text report of every cluster and replica.
pub fn text(clusters: &[ClusterReport], reports: &[ReplicaReport], settings: &Settings) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lag episodes: over {} until under {}; vector fit over {}",
        human_us(settings.max_lag_us),
        human_us(settings.recover_lag_us),
        human_us(settings.window_us)
    );
    for c in clusters {
        cluster_text(&mut out, c);
    }
    for r in reports {
        out.push('\n');
        replica_text(&mut out, r, settings);
    }
    if reports.is_empty() {
        out.push_str("\nno replica in this recording (with these filters)\n");
    }
    out
}

/// `s` unless there is one.
fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// What a heading says of a list longer than the text shows.
fn first_shown(n: usize) -> String {
    if n > TEXT_LIST_LIMIT {
        format!("; the first {TEXT_LIST_LIMIT}:")
    } else {
        String::new()
    }
}

fn cluster_text(out: &mut String, c: &ClusterReport) {
    out.push('\n');
    if c.outages.is_empty() {
        let _ = writeln!(out, "{}  primary acknowledged every beat", c.cluster);
    } else {
        outages_text(out, c);
    }
    events_text(out, &c.events);
}

fn outages_text(out: &mut String, c: &ClusterReport) {
    let _ = writeln!(
        out,
        "{}  primary unreachable {} time{} (no beat acknowledged; replicas are judged by their lower bounds meanwhile){}",
        c.cluster,
        c.outages.len(),
        plural(c.outages.len()),
        first_shown(c.outages.len())
    );
    for o in c.outages.iter().take(TEXT_LIST_LIMIT) {
        let _ = writeln!(
            out,
            "              from {} to {}  {:>10}  ({} beat{} failed: {}{})",
            format_utc_us(o.start_us),
            o.end_us
                .map_or("the end of the recording".to_string(), format_utc_us),
            human_us(o.duration_us()),
            o.failed_beats,
            plural(o.failed_beats),
            o.outcome.name(),
            o.reason
                .as_ref()
                .map_or(String::new(), |r| format!(", {r}"))
        );
    }
}

/// What a stored event says, in a few words: the node it is about and what happened
/// to it (`primary -> r2` for a failover, the check's detail for a replica).
pub fn event_detail(e: &RecordedEvent) -> String {
    let d = &e.doc;
    let name = |n: &Option<NodeName>| n.as_ref().map_or("?", |n| n.name.as_str()).to_string();
    let node = name(&d.node);
    let reason = d.reason.as_deref();
    let probe = d.probe.as_deref().unwrap_or("?");
    let detail = match e.kind() {
        EventKind::Failover => format!("{} -> {node}", name(&d.previous_primary)),
        EventKind::PrimaryDown => format!("{node}: {}", reason.unwrap_or("")),
        EventKind::PrimaryUp => match d.down_s {
            Some(s) => format!("{node} after {s:.1} s"),
            None => node,
        },
        EventKind::ReplicaDown | EventKind::ReplicaUp => format!(
            "{node}: {}",
            d.check.as_ref().map_or("", |c| c.detail.as_str())
        ),
        EventKind::Split => format!("{node} takes writes too"),
        EventKind::Probe => match reason {
            Some(why) => format!("{node}: {probe} ({why})"),
            None => format!("{node}: {probe}"),
        },
        EventKind::SplitEnd => format!("{node} no longer takes writes beside the primary"),
        EventKind::SourceChange | EventKind::RoleChange => {
            let side = |v: Option<&String>| v.map_or("nothing", |s| s.as_str()).to_string();
            let change = d.change.clone().unwrap_or_default();
            format!(
                "{node}: {} -> {}",
                side(change.from.as_ref()),
                side(change.to.as_ref())
            )
        }
        _ => node,
    };
    if d.while_stopped {
        format!("{detail}  (while no recorder ran)")
    } else {
        detail
    }
}

/// The cluster's events, one line each (trigger runs only counted, failures named).
fn events_text(out: &mut String, events: &[RecordedEvent]) {
    let (runs, changes): (Vec<&RecordedEvent>, Vec<&RecordedEvent>) = events
        .iter()
        .partition(|e| e.kind() == EventKind::TriggerRun);
    if !changes.is_empty() {
        let _ = writeln!(
            out,
            "              {} event{} (lagtrace export --events for every field){}",
            changes.len(),
            plural(changes.len()),
            first_shown(changes.len())
        );
    }
    for e in changes.iter().take(TEXT_LIST_LIMIT) {
        let _ = writeln!(
            out,
            "              {}  {:<13} {}",
            format_utc_us(e.t_us),
            e.doc.event,
            event_detail(e)
        );
    }
    let failed: Vec<&&RecordedEvent> = runs.iter().filter(|r| r.doc.code != Some(0)).collect();
    if !runs.is_empty() {
        let _ = writeln!(
            out,
            "              {} trigger run{}, {} failed{}",
            runs.len(),
            plural(runs.len()),
            failed.len(),
            failed
                .first()
                .map(|f| format!(
                    " (first: {} at {}, {})",
                    f.doc.trigger.as_deref().unwrap_or("?"),
                    format_utc_us(f.t_us),
                    if f.doc.timed_out {
                        "timed out".to_string()
                    } else {
                        f.doc.stderr.as_deref().unwrap_or("no stderr").to_string()
                    }
                ))
                .unwrap_or_default()
        );
    }
}

fn replica_text(out: &mut String, r: &ReplicaReport, settings: &Settings) {
    coverage_text(out, r);
    gaps_text(out, &r.coverage, settings);
    lag_summary_text(out, r, settings);
    if let Some(pg) = &r.postgres {
        postgres_text(out, pg);
    }
    episodes_text(out, &r.episodes);
    vector_text(out, &r.vector);
    capacity_text(out, r);
}

/// The replica's heading and what its reads covered.
fn coverage_text(out: &mut String, r: &ReplicaReport) {
    let c = &r.coverage;
    let _ = match (c.first_us, c.last_us) {
        (Some(f), Some(l)) => writeln!(
            out,
            "{}/{}  {} .. {} ({})",
            r.cluster,
            r.replica,
            format_utc_us(f),
            format_utc_us(l),
            human_us(l - f)
        ),
        _ => writeln!(out, "{}/{}  no reads recorded", r.cluster, r.replica),
    };
    let from_binlog = match c.binlog_reads {
        0 => String::new(),
        n if n == c.reads => " (all from the binary log stream)".to_string(),
        n => format!(" ({n} from the binary log stream)"),
    };
    let _ = writeln!(
        out,
        "  coverage    {} reads{from_binlog}, {} probe rounds with a lag ({} of them only a lower bound), {} failed",
        c.reads, c.rounds, c.at_least_rounds, c.failed_reads
    );
    if c.before_first_beat > 0 {
        let _ = writeln!(
            out,
            "              {} rounds before their session's first beat (after a restart), no lag",
            c.before_first_beat
        );
    }
    if c.foreign_rounds > 0 {
        let seqs: Vec<String> = c.foreign_seqs.iter().map(u64::to_string).collect();
        let _ = writeln!(
            out,
            "              {} rounds showed foreign beats (seq {}): another writer on this heartbeat row, never matched",
            c.foreign_rounds,
            seqs.join(", ")
        );
    }
}

/// The stretches with no data, the longest listed.
fn gaps_text(out: &mut String, c: &Coverage, settings: &Settings) {
    if c.gaps.is_empty() {
        let _ = writeln!(out, "  gaps        none over {}", human_us(settings.gap_us));
    } else {
        let total: i64 = c.gaps.iter().map(|g| g.end_us - g.start_us).sum();
        let _ = writeln!(
            out,
            "  gaps        {} totalling {}{}",
            c.gaps.len(),
            human_us(total),
            if c.gaps.len() > TEXT_LIST_LIMIT {
                format!(" (the {TEXT_LIST_LIMIT} longest below)")
            } else {
                String::new()
            }
        );
        let mut longest: Vec<&Gap> = c.gaps.iter().collect();
        longest.sort_by_key(|g| std::cmp::Reverse(g.end_us - g.start_us));
        longest.truncate(TEXT_LIST_LIMIT);
        longest.sort_by_key(|g| g.start_us);
        for g in longest {
            let _ = writeln!(
                out,
                "              {}  {:>10}  {}",
                format_utc_us(g.start_us),
                human_us(g.end_us - g.start_us),
                g.outcome.map_or("no data".to_string(), |o| format!(
                    "unreachable ({})",
                    o.name()
                ))
            );
        }
    }
}

/// Lag percentiles, bounds, floors and intended delay.
fn lag_summary_text(out: &mut String, r: &ReplicaReport, settings: &Settings) {
    let c = &r.coverage;
    match &r.lag {
        Some(
            l @ LagSummary {
                lag: Some(p),
                width: Some(width),
                ..
            },
        ) => {
            // Percentiles come from a histogram: exact under 2 ms, a hair high above.
            let approximate =
                p.p50.max(p.p90).max(p.p99).max(p.p999) >= Distribution::EXACT_BELOW_US;
            let _ = writeln!(
                out,
                "  lag         p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}{}",
                human_us(p.p50),
                human_us(p.p90),
                human_us(p.p99),
                human_us(p.p999),
                human_us(p.max),
                human_us(p.mean as i64),
                if approximate {
                    "  (percentiles over 2 ms up to 0.1 % high)"
                } else {
                    ""
                }
            );
            let _ = writeln!(
                out,
                "              bounds width p50 {}, p99 {}; above {} for {}",
                human_us(width.p50),
                human_us(width.p99),
                human_us(settings.max_lag_us),
                human_us(l.above_max_us)
            );
        }
        Some(_) => {
            let _ = writeln!(
                out,
                "  lag         no bounded round (see the lower bounds below)"
            );
        }
        None => {
            let _ = writeln!(out, "  lag         not enough data (no successful read)");
        }
    }
    if let Some(max) = r.lag.and_then(|l| l.at_least_max_us) {
        let _ = writeln!(
            out,
            "  at least    {} rounds had only a lower bound (no beat acknowledged after the one seen); highest {}",
            c.at_least_rounds,
            human_us(max)
        );
    }
    if let Some(d) = r.intended_delay.filter(|d| d.max_s > 0) {
        let _ = writeln!(
            out,
            "  intended    SQL_Delay {} s now, up to {} s (part of the lag above, by design)",
            d.last_s, d.max_s
        );
    }
}

/// The vector now and its range, and whether the replica is catching up.
fn vector_text(out: &mut String, v: &VectorSummary) {
    let _ = writeln!(
        out,
        "  vector      now {}  min {}  max {}",
        opt_vector(v.now),
        opt_vector(v.min),
        opt_vector(v.max)
    );
    let lag_now = v.lag_now.map_or("-".to_string(), lag_text);
    let _ = if !v.lagging_now {
        writeln!(out, "  now         caught up (lag {lag_now})")
    } else if let Some(eta) = v.eta_s {
        writeln!(
            out,
            "  now         lagging {lag_now}, catching up at {}: caught up in about {}",
            opt_vector(v.eta_fit.map(|f| f.vector())),
            human_us((eta * 1e6) as i64)
        )
    } else {
        writeln!(out, "  now         lagging {lag_now}, not catching up")
    };
}

/// PostgreSQL's own figures, as it reports them: beside lagtrace's lag, not lag.
fn postgres_text(out: &mut String, pg: &PgSummary) {
    let figure = |p: &Option<Percentiles>| match p {
        Some(p) => format!(
            "p50 {}  p99 {}  max {} ({} of {} polls)",
            human_us(p.p50),
            human_us(p.p99),
            human_us(p.max),
            p.count,
            pg.samples
        ),
        None => format!("NULL in all {} polls", pg.samples),
    };
    let _ = writeln!(
        out,
        "  postgres    replay_lag {}  (pg_stat_replication, as PostgreSQL reports it)",
        figure(&pg.replay_lag)
    );
    let _ = writeln!(
        out,
        "              write_lag {}; flush_lag {}",
        figure(&pg.write_lag),
        figure(&pg.flush_lag)
    );
    let _ = writeln!(
        out,
        "              now() - pg_last_xact_replay_timestamp() {}  (the primary's clock against the recorder's)",
        figure(&pg.replay_age)
    );
}

/// A lag as the text shows it: the point estimate, "at least" its lower bound, or
/// "unknown".
pub fn lag_text(lag: Lag) -> String {
    match lag {
        Lag::Bounded { .. } => lag.point_us().map_or("-".into(), human_us),
        Lag::AtLeast { lo_us } => format!("at least {}", human_us(lo_us)),
        Lag::Unknown(_) => "unknown".into(),
    }
}

fn episodes_text(out: &mut String, episodes: &[Episode]) {
    if episodes.is_empty() {
        let _ = writeln!(out, "  episodes    none");
        return;
    }
    let _ = writeln!(out, "  episodes    {}", episodes.len());
    let _ = writeln!(
        out,
        "      {:<28}  {:>10}  {:>10}  {:>10}  {:>6}  {:>8}  causes",
        "start", "duration", "peak", "to peak", "fall", "catch-up"
    );
    for e in episodes.iter().take(TEXT_LIST_LIMIT) {
        let duration = match (e.end_us, e.cut_by_gap_us) {
            (Some(end), Some(_)) => format!("{}+", human_us(end - e.start_us)),
            (Some(end), None) => human_us(end - e.start_us),
            (None, _) => "ongoing".to_string(),
        };
        let causes: Vec<String> = e.causes.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(
            out,
            "      {:<28}  {:>10}  {:>10}  {:>10}  {:>6}  {:>8}  {}",
            format_utc_us(e.start_us),
            duration,
            human_us(e.peak_lag_us),
            human_us(e.time_to_peak_us()),
            opt_vector(e.fall.map(|f| f.vector())),
            opt_vector(e.catch_up.map(|f| f.vector())),
            if causes.is_empty() {
                "-".to_string()
            } else {
                causes.join("; ")
            }
        );
    }
    if episodes.len() > TEXT_LIST_LIMIT {
        let _ = writeln!(
            out,
            "      ... {} more (--format json lists them all)",
            episodes.len() - TEXT_LIST_LIMIT
        );
    }
    for e in episodes
        .iter()
        .filter(|e| e.cut_by_gap_us.is_some() || e.after_gap_us.is_some())
    {
        let at = format_utc_us(e.start_us);
        if let Some(gap) = e.cut_by_gap_us {
            let _ = writeln!(
                out,
                "      the one from {at} was cut by a {} gap in the data (failed reads or the recorder down): \
                 what the lag did in the gap is unknown; its duration (marked +) is what the data shows",
                human_us(gap)
            );
        }
        if let Some(gap) = e.after_gap_us {
            let _ = writeln!(
                out,
                "      the one from {at} was under way when the data resumed after a {} gap: \
                 its start and time to peak are only what the data shows",
                human_us(gap)
            );
        }
    }
    if let Some(e) = episodes.first().filter(|e| e.before_data) {
        let _ = writeln!(
            out,
            "      the first was already under way when the data begins (the store's start or --from): \
             its start, duration and time to peak are only what the data shows{}",
            if e.peak_index == e.start_index {
                ", and its peak, the data's first lag, may have been higher"
            } else {
                ""
            }
        );
    }
}

/// Whether one of the replica's episodes had `cause` (its kind: `matches` says).
fn episode_cause(r: &ReplicaReport, matches: impl Fn(&Cause) -> bool) -> bool {
    r.episodes.iter().any(|e| e.causes.iter().any(&matches))
}

fn capacity_text(out: &mut String, r: &ReplicaReport) {
    let _ = match &r.planning {
        Some(p) => writeln!(
            out,
            "  capacity    C = {:.2} (from {}): saturation {:.0} %, a day of primary writes \
             replays in {}, headroom {:+.2}",
            p.capacity,
            match p.source {
                Estimator::Throughput => "throughput",
                Estimator::CatchUp => "catch-ups",
            },
            100.0 * p.saturation,
            human_us(p.day_replay_us),
            p.headroom
        ),
        None => writeln!(
            out,
            "  capacity    not enough data for any estimator to plan with"
        ),
    };
    let _ = match &r.replay {
        Some(r) => writeln!(
            out,
            "              from catch-ups:  C = {:.2} (best of {} catch-up(s), {} points)",
            r.capacity, r.catch_ups, r.points,
        ),
        None if episode_cause(r, |c| matches!(c, Cause::IntendedDelay { .. })) => writeln!(
            out,
            "              from catch-ups:  not estimable (an intended delay held the lag: its fall \
             is the delay being lifted, not the applier's speed)"
        ),
        None if episode_cause(r, |c| matches!(c, Cause::Split { .. })) => writeln!(
            out,
            "              from catch-ups:  not estimable (its lag came from a split: its fall is \
             the replica pointed back at the primary, not the applier's speed)"
        ),
        None => writeln!(
            out,
            "              from catch-ups:  not enough data (no sustained catch-up of 1 s or more)"
        ),
    };
    let _ = match &r.throughput {
        Some(t) => writeln!(
            out,
            "              from throughput: C = {:.2} (applied {} over {} backlog drain(s), {}; \
             arrivals {} over {} outside episodes)",
            t.capacity,
            rate(t.apply_per_s, t.unit),
            t.drains,
            human_us(t.drain_us),
            rate(t.arrival_per_s, t.unit),
            human_us(t.arrival_us),
        ),
        None => writeln!(
            out,
            "              from throughput: not enough data (needs GTID positions or LSNs, a backlog \
             drain of 1 s or more and {} s outside episodes)",
            crate::analysis::capacity::MIN_ARRIVAL_US / 1_000_000
        ),
    };
    let _ = match &r.busy {
        Some(b) => writeln!(
            out,
            "              busy time:       SQL thread applying in {:.1} % of {} samples (a sampled \
             fraction that misses short transactions: not a capacity)",
            100.0 * b.fraction,
            b.samples
        ),
        None => writeln!(
            out,
            "              busy time:       not enough data ({} status samples; \
             needs {} outside episodes with the SQL thread running)",
            r.status_samples,
            crate::analysis::capacity::MIN_BUSY_SAMPLES
        ),
    };
}

fn s(us: i64) -> f64 {
    us as f64 / 1e6
}

fn percentiles_json(p: &Percentiles) -> Value {
    json!({
        "p50_ms": ms(p.p50), "p90_ms": ms(p.p90), "p99_ms": ms(p.p99),
        "p999_ms": ms(p.p999), "max_ms": ms(p.max), "mean_ms": p.mean / 1e3,
    })
}

/// The JSON report (one document).
pub fn json(clusters: &[ClusterReport], reports: &[ReplicaReport], settings: &Settings) -> Value {
    json!({
        "schema_version": SCHEMA_VERSION,
        "clusters": clusters.iter().map(|c| json!({
            "cluster": c.cluster,
            "primary_outages": c.outages.iter().map(|o| json!({
                "start_utc": format_utc_us(o.start_us),
                "end_utc": o.end_us.map(format_utc_us),
                "duration_s": s(o.duration_us()),
                "failed_beats": o.failed_beats,
                "outcome": o.outcome.name(),
                "reason": o.reason,
            })).collect::<Vec<_>>(),
            "events": c.events.iter().map(|e| &e.json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "settings": {
            "max_lag_ms": ms(settings.max_lag_us),
            "recover_lag_ms": ms(settings.recover_lag_us),
            "window_ms": ms(settings.window_us),
            "gap_ms": ms(settings.gap_us),
        },
        "replicas": reports.iter().map(replica_json).collect::<Vec<_>>(),
    })
}

fn replica_json(r: &ReplicaReport) -> Value {
    let c = &r.coverage;
    let utc = |t: Option<i64>| t.map(format_utc_us);
    json!({
        "cluster": r.cluster,
        "replica": r.replica,
        "coverage": {
            "first_utc": utc(c.first_us),
            "last_utc": utc(c.last_us),
            "duration_s": c.first_us.zip(c.last_us).map(|(f, l)| s(l - f)),
            "reads": c.reads,
            "rounds": c.rounds,
            "at_least_rounds": c.at_least_rounds,
            "failed_reads": c.failed_reads,
            "binlog_reads": c.binlog_reads,
            "before_first_beat_rounds": c.before_first_beat,
            "foreign_rounds": c.foreign_rounds,
            "foreign_seqs": c.foreign_seqs,
            "gaps": c.gaps.iter().map(|g| json!({
                "start_utc": format_utc_us(g.start_us),
                "end_utc": format_utc_us(g.end_us),
                "duration_s": s(g.end_us - g.start_us),
                "kind": if g.outcome.is_some() { "unreachable" } else { "no_data" },
                "outcome": g.outcome.map(|o| o.name()),
            })).collect::<Vec<_>>(),
        },
        "lag": r.lag.map(|l| json!({
            "count": l.lag.map_or(0, |p| p.count),
            "percentiles": l.lag.as_ref().map(percentiles_json),
            "bound_width": l.width.as_ref().map(percentiles_json),
            "percentiles_exact_below_ms": ms(Distribution::EXACT_BELOW_US),
            "percentiles_relative_error": Distribution::RELATIVE_ERROR,
            "at_least_max_ms": l.at_least_max_us.map(ms),
            "above_max_lag_s": s(l.above_max_us),
        })),
        "intended_delay": r.intended_delay.map(|d| json!({"max_s": d.max_s, "last_s": d.last_s})),
        "postgres": r.postgres.map(|pg| json!({
            "samples": pg.samples,
            "write_lag": pg.write_lag.as_ref().map(percentiles_json),
            "flush_lag": pg.flush_lag.as_ref().map(percentiles_json),
            "replay_lag": pg.replay_lag.as_ref().map(percentiles_json),
            "replay_age": pg.replay_age.as_ref().map(percentiles_json),
        })),
        "episodes": r.episodes.iter().map(|e| json!({
            "start_utc": format_utc_us(e.start_us),
            "started_before_data": e.before_data,
            "started_after_gap_s": e.after_gap_us.map(s),
            "cut_by_gap_s": e.cut_by_gap_us.map(s),
            "end_utc": e.end_us.map(format_utc_us),
            "duration_s": e.end_us.map(|end| s(end - e.start_us)),
            "peak_ms": ms(e.peak_lag_us),
            "peak_utc": format_utc_us(e.peak_at_us),
            "time_to_peak_s": s(e.time_to_peak_us()),
            "fall_vector": e.fall.map(|f| f.vector()),
            "catch_up_vector": e.catch_up.map(|f| f.vector()),
            "causes": e.causes.iter().map(|c| json!({"code": c.code(), "text": c.to_string()})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "vector": {
            "now": r.vector.now,
            "min": r.vector.min,
            "max": r.vector.max,
            "lagging_now": r.vector.lagging_now,
            "lag_now_ms": r.vector.lag_now.and_then(|l| l.judged_us()).map(ms),
            "lag_now_kind": r.vector.lag_now.map(|l| l.kind()),
            "catch_up_vector": r.vector.eta_fit.map(|f| f.vector()),
            "eta_s": r.vector.eta_s,
        },
        "capacity": {
            "planning": r.planning.map(|p| json!({
                "capacity": p.capacity,
                "source": p.source.name(),
                "saturation": p.saturation,
                "day_replays_in_h": p.day_replay_us as f64 / 3.6e9,
                "headroom": p.headroom,
            })),
            "replay": r.replay.map(|p| json!({
                "capacity": p.capacity,
                "catch_ups": p.catch_ups,
                "points": p.points,
            })),
            "throughput": r.throughput.map(|t| json!({
                "capacity": t.capacity,
                "unit": t.unit.key(),
                format!("apply_{}_per_s", t.unit.key()): t.apply_per_s,
                format!("arrival_{}_per_s", t.unit.key()): t.arrival_per_s,
                "drains": t.drains,
                format!("drain_{}", t.unit.key()): t.drained,
                "drain_s": s(t.drain_us),
                format!("arrival_{}", t.unit.key()): t.arrived,
                "arrival_s": s(t.arrival_us),
            })),
            "busy": r.busy.map(|b| json!({
                "fraction": b.fraction,
                "samples": b.samples,
            })),
            "status_samples": r.status_samples,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_us(840), "0.84 ms");
        assert_eq!(human_us(12_345), "12.3 ms");
        assert_eq!(human_us(4_210_000), "4.21 s");
        assert_eq!(human_us(185_000_000), "3 m 05 s");
        assert_eq!(human_us(7_800_000_000), "2 h 10 m");
        assert_eq!(human_us(273_600_000_000), "3 d 04 h");
        assert_eq!(human_us(-1_500_000), "-1.50 s");
    }
}
