//! Everything `analyze` says about one replica, computed from its recorded series and
//! its cluster's beats. Times and lags in µs; rates are vectors (seconds per second).

use std::collections::{BTreeMap, VecDeque};

use super::capacity::{
    self, BusyFinder, BusyFraction, Planning, ReplayFinder, ReplayRate, Throughput,
    ThroughputFinder,
};
use super::episodes::{CauseFinder, Episode, EpisodeFinder};
use super::lag::Lag;
use super::outages::PrimaryOutage;
use super::series::{LagPoint, LagSeries};
use super::stats::{Distribution, Percentiles, TimeAbove};
use super::vector::{Fit, FitSums, VectorWindow};
use crate::samples::{Outcome, StatusSample};
use crate::store::StoreError;
use crate::store::scan::Recording;

/// Catch-up ETAs fit at most this much of the current catch-up, µs.
pub const ETA_WINDOW_US: i64 = 10_000_000;

/// The smallest gap between reads reported as "no data", µs.
pub const MIN_GAP_US: i64 = 1_000_000;

/// What the analysis is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub max_lag_us: i64,
    pub recover_lag_us: i64,
    /// Vector fit window.
    pub window_us: i64,
    /// Reads further apart than this leave a "no data" gap.
    pub gap_us: i64,
}

impl Settings {
    /// The settings for `rec`: the thresholds asked for, the fit window widened to
    /// [`fit_window_us`] and the gap rule of [`gap_us`], both from its read period.
    pub fn for_recording(
        rec: &Recording,
        max_lag_us: i64,
        recover_lag_us: i64,
        asked_window_us: i64,
    ) -> Settings {
        Settings {
            max_lag_us,
            recover_lag_us,
            window_us: fit_window_us(rec, asked_window_us),
            gap_us: gap_us(rec),
        }
    }
}

/// The longest time between a replica's regular reads over the recording's sessions
/// (`interval * read_every`), µs.
fn read_period_us(rec: &Recording) -> i64 {
    rec.sessions
        .iter()
        .map(|s| s.read_period_us())
        .max()
        .unwrap_or(0)
}

/// Reads further apart than five read periods (at least [`MIN_GAP_US`]) leave a gap.
pub fn gap_us(rec: &Recording) -> i64 {
    (5 * read_period_us(rec)).max(MIN_GAP_US)
}

/// The vector's fit window: the one asked for, widened to four read periods when reads
/// are sparser than that (a fit needs three points over half its window).
pub fn fit_window_us(rec: &Recording, asked_us: i64) -> i64 {
    asked_us.max(4 * read_period_us(rec))
}

/// Reports of every cluster (in name order) and every replica (in (cluster, replica)
/// order) of the recording. Each replica's rounds are walked once, never all held; a
/// cluster's beats are read once for its first replica and its outages.
pub fn reports(
    rec: &Recording,
    settings: &Settings,
) -> Result<(Vec<ClusterReport>, Vec<ReplicaReport>), StoreError> {
    let mut outages: BTreeMap<&str, Vec<PrimaryOutage>> = BTreeMap::new();
    let mut replicas = Vec::with_capacity(rec.replicas.len());
    for rs in &rec.replicas {
        let first_of_cluster = !outages.contains_key(rs.cluster.as_str());
        let mut builder = ReportBuilder::new(settings);
        let (series, found) = super::series::walk_rounds(rec, rs, first_of_cluster, |batch| {
            batch.rounds.iter().for_each(|p| builder.push(p));
        })?;
        if let Some(found) = found {
            outages.insert(&rs.cluster, found);
        }
        let events = rec.events.iter().filter(|e| e.cluster() == rs.cluster);
        let sides = super::episodes::split_sides(events, &rs.replica);
        replicas.push(
            builder.finish(&rs.cluster, &rs.replica, (&series, &sides), |f| {
                rs.status.for_each_ahead(f)
            })?,
        );
    }
    let clusters = rec
        .beats
        .iter()
        .map(|(cluster, beats)| {
            Ok(ClusterReport {
                cluster: cluster.clone(),
                events: rec
                    .events
                    .iter()
                    .filter(|e| e.cluster() == cluster)
                    .cloned()
                    .collect(),
                outages: match outages.remove(cluster.as_str()) {
                    Some(found) => found,
                    None => super::outages::cluster_outages(beats)?,
                },
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((clusters, replicas))
}

/// A stretch without a lag measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub start_us: i64,
    pub end_us: i64,
    /// `None`: no read at all (recorder not running); `Some`: reads failed this way.
    pub outcome: Option<Outcome>,
}

/// What was recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    pub first_us: Option<i64>,
    pub last_us: Option<i64>,
    pub reads: usize,
    /// Probe rounds with a lag, bounded or "at least" (follow-up reads count once).
    pub rounds: usize,
    /// Of those, rounds with only a lower bound (the primary acknowledged no beat soon
    /// after the one seen).
    pub at_least_rounds: usize,
    pub failed_reads: usize,
    /// Reads that came from the binary log stream (`probe = "binlog"` or `"auto"`).
    pub binlog_reads: usize,
    /// Rounds that showed an older session's beat before this session's first beat
    /// was acknowledged.
    pub before_first_beat: u64,
    /// Rounds that showed a beat this recorder never wrote, and some of those seqs.
    pub foreign_rounds: u64,
    pub foreign_seqs: Vec<u64>,
    pub gaps: Vec<Gap>,
}

/// Lag distribution over the bounded rounds, with the width of their bounds, µs.
/// "At least" rounds have no point estimate: they count apart, by their lower bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LagSummary {
    /// `None` when no round was bounded.
    pub lag: Option<Percentiles>,
    pub width: Option<Percentiles>,
    /// The highest lower bound of the "at least" rounds.
    pub at_least_max_us: Option<i64>,
    /// Time the judged lag was over `max_lag`.
    pub above_max_us: i64,
}

/// The vector over the recording and a catch-up estimate at its end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorSummary {
    pub now: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Lagging (inside an episode) at the end of the recording.
    pub lagging_now: bool,
    /// The last round's lag.
    pub lag_now: Option<Lag>,
    /// Seconds until caught up, when catching up with a confident fit.
    pub eta_s: Option<f64>,
    /// The fit behind the ETA (also present when not confident).
    pub eta_fit: Option<Fit>,
}

/// The intended delay (SQL_Delay) seen in status samples, s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntendedDelay {
    pub max_s: u32,
    pub last_s: u32,
}

/// One cluster's facts: its primary outages and its events, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterReport {
    pub cluster: String,
    pub outages: Vec<super::outages::PrimaryOutage>,
    /// What the recorder saw happen to the cluster (primary down and up, failovers,
    /// pool changes) and the trigger runs, in time order.
    pub events: Vec<crate::store::events::RecordedEvent>,
}

/// Everything about one replica.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaReport {
    pub cluster: String,
    pub replica: String,
    pub coverage: Coverage,
    pub lag: Option<LagSummary>,
    pub intended_delay: Option<IntendedDelay>,
    pub episodes: Vec<Episode>,
    pub vector: VectorSummary,
    pub replay: Option<ReplayRate>,
    pub throughput: Option<Throughput>,
    pub busy: Option<BusyFraction>,
    /// The capacity to plan with, from `throughput` or else `replay`.
    pub planning: Option<Planning>,
    /// Status samples seen (any outcome).
    pub status_samples: usize,
    /// A PostgreSQL standby's own figures, shown beside lagtrace's lag.
    pub postgres: Option<super::pg::PgSummary>,
}

/// The report of one replica from its lag series (its points held) and status samples
/// (in time order).
pub fn replica_report(
    cluster: &str,
    replica: &str,
    series: &LagSeries,
    status: &[StatusSample],
    settings: &Settings,
) -> ReplicaReport {
    let mut builder = ReportBuilder::new(settings);
    series.points.iter().for_each(|p| builder.push(p));
    builder
        .finish(cluster, replica, (series, &[]), |f| {
            status.iter().for_each(f);
            Ok(())
        })
        .expect("samples held cannot fail to decode")
}

/// A replica's report from its rounds fed one by one in time order, then its status
/// samples walked once, in memory that does not grow with their number.
#[derive(Debug)]
pub struct ReportBuilder {
    settings: Settings,
    rounds: usize,
    at_least_rounds: usize,
    lag: Distribution,
    width: Distribution,
    at_least_max_us: Option<i64>,
    above: TimeAbove,
    vector: VectorWindow,
    /// The lowest and highest vector, and the last.
    vector_range: Option<(f32, f32)>,
    vector_now: Option<f32>,
    episodes: EpisodeFinder,
    replay: ReplayFinder,
    /// While an episode is open, its bounded points of the last [`ETA_WINDOW_US`], with
    /// their indices.
    recent: VecDeque<(usize, LagPoint)>,
    last: Option<LagPoint>,
}

impl ReportBuilder {
    pub fn new(settings: &Settings) -> Self {
        ReportBuilder {
            settings: *settings,
            rounds: 0,
            at_least_rounds: 0,
            lag: Distribution::default(),
            width: Distribution::default(),
            at_least_max_us: None,
            above: TimeAbove::new(settings.max_lag_us, settings.gap_us),
            vector: VectorWindow::new(settings.window_us),
            vector_range: None,
            vector_now: None,
            episodes: EpisodeFinder::new(
                settings.max_lag_us,
                settings.recover_lag_us,
                settings.gap_us,
            ),
            replay: ReplayFinder::default(),
            recent: VecDeque::new(),
            last: None,
        }
    }

    /// Feeds the next round (in time order).
    pub fn push(&mut self, p: &LagPoint) {
        let index = self.rounds;
        self.rounds += 1;
        if let (Some(point_us), Some(width_us)) = (p.lag.point_us(), p.lag.width_us()) {
            self.lag.record(point_us);
            self.width.record(width_us);
        }
        if let Lag::AtLeast { lo_us } = p.lag {
            self.at_least_rounds += 1;
            self.at_least_max_us = Some(self.at_least_max_us.map_or(lo_us, |m| m.max(lo_us)));
        }
        self.above.push(p);
        let v = self.vector.push(p);
        if v.is_finite() {
            self.vector_range = Some(
                self.vector_range
                    .map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))),
            );
            self.vector_now = Some(v);
        }
        self.replay.push(p);
        if let Some(e) = self.episodes.push(p) {
            self.replay.episode_ended(e, p);
        }
        // The ETA fits the open episode's catch-up: points are kept only while one is.
        if self.episodes.open_peak().is_none() {
            self.recent.clear();
        } else if p.lag.is_bounded() {
            self.recent.push_back((index, *p));
            while self
                .recent
                .front()
                .is_some_and(|(_, q)| q.t_us < p.t_us - ETA_WINDOW_US)
            {
                self.recent.pop_front();
            }
        }
        self.last = Some(*p);
    }

    /// The report, with the facts of the walk (`series`: its points are not read) and
    /// the replica's status samples, walked once here: `walk_status` calls the function
    /// it is given with each sample in time order.
    /// `sides`: where the replica was on a second primary's side of a split
    /// ([`super::episodes::split_sides`]).
    pub fn finish(
        self,
        cluster: &str,
        replica: &str,
        (series, sides): (&LagSeries, &[super::episodes::SplitSide]),
        walk_status: impl FnOnce(&mut dyn FnMut(&StatusSample)) -> Result<(), StoreError>,
    ) -> Result<ReplicaReport, StoreError> {
        let settings = self.settings;
        // The catch-up so far: from the open episode's peak, at most ETA_WINDOW_US back.
        let eta_fit = self.episodes.open_peak().and_then(|(peak, _)| {
            let mut sums = FitSums::default();
            self.recent
                .iter()
                .filter(|(i, _)| *i >= peak)
                .for_each(|(_, p)| sums.add(p));
            sums.fit()
        });
        let lag_now = self.last.map(|p| p.lag);
        let eta_s = eta_fit
            .filter(|f| f.confident() && f.vector() > 0.0)
            .zip(lag_now.and_then(|l| l.point_us()))
            .map(|(f, lag)| lag as f64 / 1e6 / f.vector());
        let mut eps = self.episodes.finish();
        let vector = VectorSummary {
            now: self.vector_now.map(f64::from),
            min: self.vector_range.map(|(lo, _)| f64::from(lo)),
            max: self.vector_range.map(|(_, hi)| f64::from(hi)),
            // Episodes use the same hysteresis: the last one is open exactly when the
            // replica is over the threshold now.
            lagging_now: eps.last().is_some_and(|e| e.end_us.is_none()),
            lag_now,
            eta_s,
            eta_fit,
        };
        let lag = (self.rounds > 0).then(|| LagSummary {
            lag: self.lag.percentiles(),
            width: self.width.percentiles(),
            at_least_max_us: self.at_least_max_us,
            above_max_us: self.above.total_us(),
        });
        // One walk of the status samples: causes, capacity, busy fraction, delay.
        let last_us = self.last.map_or(0, |p| p.t_us);
        let mut causes = CauseFinder::new(&eps, last_us);
        let mut throughput = ThroughputFinder::new(&eps);
        let mut busy = BusyFinder::new(&eps);
        let mut postgres = super::pg::PgFinder::default();
        let (mut intended_delay, mut status_samples) = (None, 0);
        walk_status(&mut |s| {
            status_samples += 1;
            causes.push(s);
            throughput.push(s);
            busy.push(s);
            postgres.push(s);
            if let Some(c) = s.main_channel() {
                let max_s = intended_delay.map_or(0, |d: IntendedDelay| d.max_s);
                intended_delay = Some(IntendedDelay {
                    max_s: max_s.max(c.sql_delay_s),
                    last_s: c.sql_delay_s,
                });
            }
        })?;
        let (throughput, busy) = (throughput.finish(), busy.finish());
        causes.finish(&mut eps);
        super::episodes::mark_splits(&mut eps, sides);
        let replay = self.replay.finish(&eps);
        Ok(ReplicaReport {
            cluster: cluster.to_string(),
            replica: replica.to_string(),
            coverage: coverage(series, self.rounds, self.at_least_rounds, settings.gap_us),
            lag,
            intended_delay,
            vector,
            replay,
            throughput,
            planning: capacity::planning(throughput.as_ref(), replay.as_ref()),
            busy,
            status_samples,
            postgres: postgres.finish(),
            episodes: eps,
        })
    }
}

/// Gaps are silences longer than `gap_us` and runs of failed reads. A silence between
/// two failed reads of one run (a probe retrying slower than once a second) is part of
/// that run's gap, not a second one.
fn coverage(series: &LagSeries, rounds: usize, at_least_rounds: usize, gap_us: i64) -> Coverage {
    let within_outage = |start: i64, end: i64| {
        series
            .outages
            .iter()
            .any(|o| o.start_us <= start && end <= o.end_us)
    };
    let silences = series
        .silences
        .iter()
        .filter(|(start, end)| end - start > gap_us && !within_outage(*start, *end))
        .map(|&(start_us, end_us)| Gap {
            start_us,
            end_us,
            outcome: None,
        });
    let outages = series.outages.iter().map(|o| Gap {
        start_us: o.start_us,
        end_us: o.end_us,
        outcome: Some(o.outcome),
    });
    let mut gaps: Vec<Gap> = silences.chain(outages).collect();
    gaps.sort_by_key(|g| g.start_us);
    Coverage {
        first_us: series.first_read_us,
        last_us: series.last_read_us,
        reads: series.reads,
        rounds,
        at_least_rounds,
        failed_reads: series.failed_reads,
        binlog_reads: series.binlog_reads,
        before_first_beat: series.before_first_beat,
        foreign_rounds: series.foreign,
        foreign_seqs: series.foreign_seqs.clone(),
        gaps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::series;
    use crate::samples::{BeatTimes, Observation};

    const S: i64 = 1_000_000;
    const CONT: [crate::analysis::lag::Continuity; 1] =
        [crate::analysis::lag::Continuity { limit_us: 30_000 }];

    /// A cluster beating every 10 ms and a replica that stalls at t = 5 s and catches
    /// up at vector +1 from t = 10 s; the recording stops at `until_s`.
    fn recording(until_s: f64) -> LagSeries {
        let step = 10_000;
        let n = (until_s * 100.0) as i64;
        let beats: Vec<BeatTimes> = (1..=n)
            .map(|k| BeatTimes::new(k as u64, k * step, Some(k * step + 200), 0))
            .collect();
        let observations: Vec<Observation> = (1..=n)
            .map(|k| {
                let t = (k * step) as f64 / 1e6;
                // Primary time the replica reflects.
                let h = if t < 5.0 {
                    t
                } else if t < 10.0 {
                    5.0
                } else {
                    (5.0 + 2.0 * (t - 10.0)).min(t)
                };
                let seq = ((h * 1e6) as i64 / step).max(1) as u64;
                Observation {
                    r_start_us: k * step + 300,
                    r_end_us: k * step + 500,
                    seq: Some(seq.min(k as u64)),
                    outcome: Outcome::Ok,
                    reason: None,
                    follow_up: false,
                    probe: Default::default(),
                }
            })
            .collect();
        series::lag_series(&beats, &CONT, &observations, 0)
    }

    fn report(series: &LagSeries) -> ReplicaReport {
        replica_report("c", "r", series, &[], &settings())
    }

    fn settings() -> Settings {
        Settings {
            max_lag_us: S,
            recover_lag_us: S / 2,
            window_us: S,
            gap_us: S,
        }
    }

    #[test]
    fn eta_at_half_catch_up_predicts_the_rest() {
        // Caught up at t = 15 s (lag 5 s shrinking 1 s per second from t = 10 s).
        let r = report(&recording(12.5));
        assert!(r.vector.lagging_now);
        let eta = r.vector.eta_s.expect("catching up");
        assert!((eta - 2.5).abs() < 0.1, "eta {eta}");
        assert!((r.vector.min.unwrap() + 1.0).abs() < 0.02);

        let r = report(&recording(20.0));
        assert!(!r.vector.lagging_now);
        assert_eq!(r.vector.eta_s, None);
        assert_eq!(r.episodes.len(), 1);
        let peak = r.episodes[0].peak_lag_us;
        assert!((peak - 5 * S).abs() < 30_000, "peak {peak}");
        let lag = r.lag.unwrap();
        assert_eq!(lag.lag.unwrap().count, r.coverage.rounds);
        // About 8 s above 1 s: 4 s falling behind, 4 s catching up.
        assert!(
            (lag.above_max_us - 8 * S).abs() < 100_000,
            "{}",
            lag.above_max_us
        );
        assert!(r.coverage.gaps.is_empty());
    }

    #[test]
    fn gaps_name_failures_and_missing_data() {
        let ok = |t: i64| Observation {
            r_start_us: t,
            r_end_us: t + 100,
            seq: Some(1),
            outcome: Outcome::Ok,
            reason: None,
            follow_up: false,
            probe: Default::default(),
        };
        let failed = |t: i64| Observation {
            seq: None,
            outcome: Outcome::Refused,
            ..ok(t)
        };
        let beats = [BeatTimes::new(1, 0, Some(10), 0)];
        let observations = [ok(100), failed(200), failed(300), ok(400), ok(5 * S)];
        let r = report(&series::lag_series(&beats, &CONT, &observations, 0));
        assert_eq!(
            r.coverage.gaps,
            vec![
                Gap {
                    start_us: 200,
                    end_us: 400,
                    outcome: Some(Outcome::Refused)
                },
                Gap {
                    start_us: 400,
                    end_us: 5 * S,
                    outcome: None
                },
            ]
        );
        assert_eq!((r.coverage.reads, r.coverage.failed_reads), (5, 2));
        // A probe retrying every 1.5 s while the replica is down: one gap, the failure
        // run's, not also one per retry.
        let observations = [
            ok(100),
            failed(200),
            failed(2 * S),
            failed(7 * S / 2),
            ok(5 * S),
        ];
        let r = report(&series::lag_series(&beats, &CONT, &observations, 0));
        assert_eq!(
            r.coverage.gaps,
            vec![Gap {
                start_us: 200,
                end_us: 5 * S,
                outcome: Some(Outcome::Refused)
            }]
        );
    }
}
