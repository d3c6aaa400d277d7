//! Saturation and capacity (docs/design.md). Capacity `C` is how many times faster
//! than the primary's usual write rate a replica can apply. Three estimators, from
//! independent inputs:
//!
//! - replay rate (lag series): while a replica has a backlog it applies `r = 1 + vector`
//!   seconds of primary writes per second; the highest average rate through a catch-up
//!   is `C`;
//! - throughput (status samples' positions: GTIDs, or LSNs on PostgreSQL): `C = μ/λ`,
//!   the transactions (WAL bytes) applied per second while the replica works off a
//!   backlog (μ) over the transactions (WAL bytes) arriving per second outside episodes
//!   (λ);
//! - busy fraction (the SQL thread's state string): the share of samples in which it
//!   was applying, outside episodes; at a steady load `1/busy` estimates `C`. It is only
//!   indicative: a state sampled once per poll misses short transactions, and on real
//!   OLTP load it was 79 % off.

use super::episodes::{Cause, Episode};
use super::series::LagPoint;
use crate::samples::{ProgressUnit, StatusSample};

/// Which estimator a [`Planning`] figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimator {
    Throughput,
    CatchUp,
}

impl Estimator {
    pub fn name(self) -> &'static str {
        match self {
            Estimator::Throughput => "throughput",
            Estimator::CatchUp => "catch_up",
        }
    }
}

/// What a capacity `C` means for planning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Planning {
    pub capacity: f64,
    pub source: Estimator,
    /// `1 / C`: the share of the applier's time the usual load takes, 0..
    pub saturation: f64,
    /// `24 h / C`: how long a day of primary writes takes to replay, µs.
    pub day_replay_us: i64,
    /// `C - 1`: how much more load the replica could take, as a share of today's.
    pub headroom: f64,
}

/// The figure to plan with: the throughput estimate when there is one (it counts what
/// the applier did), else the catch-up's. The busy fraction never is.
pub fn planning(throughput: Option<&Throughput>, replay: Option<&ReplayRate>) -> Option<Planning> {
    let (capacity, source) = match (throughput, replay) {
        (Some(t), _) => (t.capacity, Estimator::Throughput),
        (None, Some(r)) => (r.capacity, Estimator::CatchUp),
        (None, None) => return None,
    };
    Some(Planning {
        capacity,
        source,
        saturation: 1.0 / capacity,
        day_replay_us: (86_400e6 / capacity) as i64,
        headroom: capacity - 1.0,
    })
}

/// Fewest status samples a busy fraction needs.
pub const MIN_BUSY_SAMPLES: usize = 30;

/// Shortest catch-up, µs, that counts as sustained.
pub const MIN_CATCH_UP_US: i64 = 1_000_000;

/// Status samples this long after an episode ends still belong to it (the applier
/// drains what is left), µs.
pub const SETTLE_US: i64 = 2_000_000;

/// Capacity from catch-ups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayRate {
    /// Seconds of primary writes applied per second over the qualifying catch-ups
    /// together: `1 + (their total fall of lag) / (their total length)`.
    pub capacity: f64,
    /// Catch-ups that qualified (confident fit, at least [`MIN_CATCH_UP_US`]).
    pub catch_ups: usize,
    /// Lag points in their fits.
    pub points: usize,
}

/// How often the SQL thread was seen applying. Shown as a fraction, never as a
/// capacity: one state string per poll misses short transactions, so `1 / fraction`
/// was 79 % off on an OLTP load (C = 8.33 against a truth of 2.14); the two estimators
/// above are the ones to plan with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BusyFraction {
    /// Share of samples applying, 0..=1.
    pub fraction: f64,
    pub samples: usize,
}

/// Capacity from applied throughput, `C = μ/λ`. Rates and amounts count in `unit`:
/// transactions (MySQL/MariaDB) or WAL bytes (PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// `apply_per_s / arrival_per_s`.
    pub capacity: f64,
    pub unit: ProgressUnit,
    /// μ: units applied per second while working off a backlog.
    pub apply_per_s: f64,
    /// λ: units arriving per second outside episodes.
    pub arrival_per_s: f64,
    /// Backlog drains that qualified, the units applied in them and their total
    /// length, µs.
    pub drains: usize,
    pub drained: u64,
    pub drain_us: i64,
    /// Units that arrived outside episodes, over this long, µs.
    pub arrived: u64,
    pub arrival_us: i64,
}

/// Fewest status intervals a drain must span.
pub const MIN_DRAIN_STEPS: usize = 3;

/// Shortest time outside episodes that gives an arrival rate, µs.
pub const MIN_ARRIVAL_US: i64 = 5_000_000;

/// Two status samples further apart than this, µs, are not one step (the recorder was
/// down, or polls failed in between).
pub const MAX_STEP_US: i64 = 5_000_000;

/// One status sample's positions as counts (transactions or WAL bytes), at the middle
/// of its poll.
#[derive(Debug, Clone, Copy)]
struct Counts {
    t_us: i64,
    unit: ProgressUnit,
    applied: u64,
    /// Received by the IO thread; `applied` when the server does not say.
    received: u64,
    sql_running: bool,
    io_running: bool,
    /// An intended delay is configured (MASTER_DELAY, recovery_min_apply_delay): the
    /// applier waits on purpose, so its backlog says nothing of its speed.
    delayed: bool,
}

impl Counts {
    fn of(s: &StatusSample) -> Option<Counts> {
        let c = s.main_channel()?;
        let applied = c.applied()?;
        Some(Counts {
            t_us: s.t_us + i64::from(s.duration_us) / 2,
            unit: c.unit(),
            applied,
            received: c.received().map_or(applied, |r| r.max(applied)),
            sql_running: c.sql_running,
            io_running: c.io == crate::samples::IoState::Yes,
            delayed: c.sql_delay_s > 0,
        })
    }

    fn backlog(&self) -> u64 {
        self.received - self.applied
    }
}

/// Of the units applied in a drain, at least this share must have come off the backlog
/// (the rest arrived meanwhile): `1 − 1/C`, so replicas with C ≥ 1.05 can be measured
/// this way, and a backlog that only wanders is not taken for one being worked off.
pub const MIN_DRAIN_SHARE: f64 = 0.05;

/// Whether the backlog from `peak` to `last` was worked off rather than kept: it fell by
/// at least half, and by at least [`MIN_DRAIN_SHARE`] of what was applied meanwhile.
fn drained_enough(peak: &Counts, last: &Counts) -> bool {
    let Some(applied) = last.applied.checked_sub(peak.applied).filter(|&a| a > 0) else {
        return false;
    };
    let shrunk = peak.backlog().saturating_sub(last.backlog());
    shrunk * 2 >= peak.backlog() && shrunk as f64 >= MIN_DRAIN_SHARE * applied as f64
}

/// Throughput capacity from status samples (in time order) and the episodes found in the
/// same replica's lag series; `None` without a qualifying drain or without
/// [`MIN_ARRIVAL_US`] outside episodes.
///
/// A drain runs from the peak of a backlog (received but not applied) to the last sample
/// that still had [`ProgressUnit::backlog_min`] or more, with the SQL thread running
/// throughout: the applier cannot have idled in it, so its rate is μ. (A smaller
/// backlog does not count: under a busy load a few transactions are always in flight,
/// and the samples after a catch-up would stretch the drain with idle time.)
///
/// A backlog is a drain only when it shrinks ([`drained_enough`]): one that stays (a
/// busy primary's work in flight) is worked off at the rate it arrives, λ, and would
/// read as saturation. Samples under an intended delay are never in a drain: that
/// backlog is kept on purpose.
pub fn throughput(status: &[StatusSample], episodes: &[Episode]) -> Option<Throughput> {
    let mut finder = ThroughputFinder::new(episodes);
    status.iter().for_each(|s| finder.push(s));
    finder.finish()
}

/// [`throughput`] over status samples fed one by one in time order, in constant memory.
#[derive(Debug, Clone)]
pub struct ThroughputFinder<'e> {
    episodes: EpisodeWalk<'e>,
    /// The drain run in progress: its first sample of highest backlog, how many
    /// samples it has and where that peak is among them, its last sample.
    run: Option<(Counts, usize, usize, Counts)>,
    prev: Option<Counts>,
    drains: usize,
    drained: u64,
    drain_us: i64,
    arrived: u64,
    arrival_us: i64,
    /// The unit of the first sample with positions; samples in another are skipped.
    unit: Option<ProgressUnit>,
}

impl<'e> ThroughputFinder<'e> {
    /// `episodes` are the replica's, in time order.
    pub fn new(episodes: &'e [Episode]) -> Self {
        ThroughputFinder {
            episodes: episodes.iter().peekable(),
            run: None,
            prev: None,
            drains: 0,
            drained: 0,
            drain_us: 0,
            arrived: 0,
            arrival_us: 0,
            unit: None,
        }
    }

    /// Feeds the next status sample (in time order).
    pub fn push(&mut self, s: &StatusSample) {
        let Some(c) = Counts::of(s) else {
            return;
        };
        if *self.unit.get_or_insert(c.unit) != c.unit {
            return;
        }
        let in_run =
            |c: &Counts| c.sql_running && !c.delayed && c.backlog() >= c.unit.backlog_min();
        match &mut self.run {
            Some((peak, len, at, last)) if in_run(&c) && c.t_us - last.t_us <= MAX_STEP_US => {
                if c.backlog() > peak.backlog() {
                    (*peak, *at) = (c, *len);
                }
                *len += 1;
                *last = c;
            }
            _ => {
                self.end_run();
                if in_run(&c) {
                    self.run = Some((c, 1, 0, c));
                }
            }
        }
        if let Some(a) = self.prev {
            self.arrival(&a, &c);
        }
        self.prev = Some(c);
    }

    /// Counts the run in progress when it is a drain: from its peak, at least
    /// [`MIN_DRAIN_STEPS`] steps and [`MIN_CATCH_UP_US`], and a backlog that
    /// [`drained_enough`].
    fn end_run(&mut self) {
        let Some((first, len, at, last)) = self.run.take() else {
            return;
        };
        let span = last.t_us - first.t_us;
        if len - 1 - at >= MIN_DRAIN_STEPS
            && span >= MIN_CATCH_UP_US
            && drained_enough(&first, &last)
        {
            self.drains += 1;
            self.drained += last.applied - first.applied;
            self.drain_us += span;
        }
    }

    /// Counts the step from `a` to `b` as arrival when it is outside the episodes (and
    /// [`SETTLE_US`] after them) with the IO thread running throughout.
    fn arrival(&mut self, a: &Counts, b: &Counts) {
        skip_ended(&mut self.episodes, a.t_us);
        let inside = self.episodes.peek().is_some_and(|e| e.start_us <= b.t_us);
        let step = b.t_us - a.t_us;
        if inside || !(a.io_running && b.io_running) || step <= 0 || step > MAX_STEP_US {
            return;
        }
        // A position that went backwards (a replica reset) is not an arrival.
        let Some(arrived) = b.received.checked_sub(a.received) else {
            return;
        };
        self.arrived += arrived;
        self.arrival_us += step;
    }

    /// The capacity; `None` without a qualifying drain or without [`MIN_ARRIVAL_US`]
    /// outside episodes.
    pub fn finish(mut self) -> Option<Throughput> {
        self.end_run();
        if self.drains == 0 || self.arrival_us < MIN_ARRIVAL_US || self.arrived == 0 {
            return None;
        }
        let apply_per_s = self.drained as f64 * 1e6 / self.drain_us as f64;
        let arrival_per_s = self.arrived as f64 * 1e6 / self.arrival_us as f64;
        Some(Throughput {
            capacity: apply_per_s / arrival_per_s,
            unit: self.unit?,
            apply_per_s,
            arrival_per_s,
            drains: self.drains,
            drained: self.drained,
            drain_us: self.drain_us,
            arrived: self.arrived,
            arrival_us: self.arrival_us,
        })
    }
}

/// The sustained replay rate over the episodes' catch-ups (`points` is the lag series
/// the episodes index); `None` without one.
///
/// A catch-up's rate is its chord, `1 + (lag at the peak - lag at the end) / its
/// length`, to where the lag is back under [`CAUGHT_UP_US`]: the average rate through
/// the whole catch-up, which is what capacity means.
/// The catch-up fit only decides which catch-ups count (a confident fit of a falling lag
/// over [`MIN_CATCH_UP_US`] or more): on real load the lag falls faster at first (the
/// applier starts on a relay log already in memory) and a straight line fitted to the
/// curve underestimates the average by 10-20 %.
///
/// Catch-ups are pooled (total fall over total length), so each weighs by its length:
/// under a load near capacity an applier falls a second or two behind now and then and
/// "catches up" from such a hiccup at three times the real rate (the seconds of lag held
/// few transactions: the primary was slowed too); the fastest catch-up would be such a
/// hiccup, and a capacity planned on it is wrong where it matters.
pub fn replay_rate(episodes: &[Episode], points: &[LagPoint]) -> Option<ReplayRate> {
    let mut finder = ReplayFinder::default();
    let mut eps = episodes.iter().filter(|e| e.end_us.is_some()).peekable();
    for (i, p) in points.iter().enumerate() {
        finder.push(p);
        while let Some(e) = eps.next_if(|e| e.end_index == i) {
            finder.episode_ended(e, p);
        }
    }
    finder.finish(episodes)
}

/// [`replay_rate`] over points fed one by one: each ended episode is told with its end
/// point, and the points after it say where its catch-up really ended.
#[derive(Debug, Clone, Default)]
pub struct ReplayFinder {
    /// The catch-up being followed past its episode's end.
    following: Option<CatchUp>,
    /// The catch-ups found, one per episode at most.
    counted: Vec<Counted>,
}

/// One catch-up that qualified: its episode (by start), how far the lag fell and over
/// how long, µs, and the points of its fit.
#[derive(Debug, Clone, Copy)]
struct Counted {
    episode_start_us: i64,
    fallen_us: i64,
    span_us: i64,
    fit_points: usize,
}

/// A catch-up whose end is still being looked for.
#[derive(Debug, Clone, Copy)]
struct CatchUp {
    episode_start_us: i64,
    peak_lag_us: i64,
    peak_at_us: i64,
    fit_points: usize,
    /// The episode's end point and its lag.
    end: LagPoint,
    end_lag_us: i64,
}

impl ReplayFinder {
    /// An episode ended at `end` (the point just fed); counts when its catch-up was a
    /// confident fit of a falling lag.
    pub fn episode_ended(&mut self, e: &Episode, end: &LagPoint) {
        self.settle(None);
        let Some(fit) = e.catch_up.filter(|f| f.confident() && f.vector() > 0.0) else {
            return;
        };
        let Some(end_lag_us) = end.lag.judged_us() else {
            return;
        };
        self.following = Some(CatchUp {
            episode_start_us: e.start_us,
            peak_lag_us: e.peak_lag_us,
            peak_at_us: e.peak_at_us,
            fit_points: fit.points,
            end: *end,
            end_lag_us,
        });
        // The end point itself may already be caught up.
        self.look_at(end);
    }

    /// Feeds the next point (in time order).
    pub fn push(&mut self, p: &LagPoint) {
        if self.following.is_some() {
            self.look_at(p);
        }
    }

    /// Where a catch-up really ends: an episode ends when the lag falls under
    /// `recover_lag` (500 ms by default), but the applier works on until the lag is
    /// down to its usual level, and on real load that last stretch is the slowest. The
    /// first point from the episode's end at or under [`CAUGHT_UP_US`], within
    /// [`CAUGHT_UP_SEARCH_US`] and before the lag rises over its value at the end; else
    /// the end point.
    fn look_at(&mut self, p: &LagPoint) {
        let Some(c) = self.following else {
            return;
        };
        if p.t_us - c.end.t_us > CAUGHT_UP_SEARCH_US {
            return self.settle(None);
        }
        let Some(lag) = p.lag.judged_us() else {
            return;
        };
        if lag > c.end_lag_us {
            self.settle(None);
        } else if lag <= CAUGHT_UP_US {
            self.settle(Some(*p));
        }
    }

    /// Ends the catch-up followed (if any) at `found`, or else at its episode's end.
    fn settle(&mut self, found: Option<LagPoint>) {
        let Some(c) = self.following.take() else {
            return;
        };
        let end = found.unwrap_or(c.end);
        let Some(end_lag_us) = end.lag.judged_us() else {
            return;
        };
        let (fall, span) = (c.peak_lag_us - end_lag_us, end.t_us - c.peak_at_us);
        if span >= MIN_CATCH_UP_US && fall > 0 {
            self.counted.push(Counted {
                episode_start_us: c.episode_start_us,
                fallen_us: fall,
                span_us: span,
                fit_points: c.fit_points,
            });
        }
    }

    /// The pooled replay rate; `None` without a catch-up that counts. `episodes` are the
    /// ones fed, with their causes: a catch-up from lag an intended delay held is the
    /// delay being lifted, and one from a split the replica being pointed back at the
    /// primary, not the applier's speed; neither counts.
    pub fn finish(mut self, episodes: &[Episode]) -> Option<ReplayRate> {
        self.settle(None);
        let delayed = |start_us: i64| {
            episodes.iter().any(|e| {
                e.start_us == start_us
                    && e.causes
                        .iter()
                        .any(|c| matches!(c, Cause::IntendedDelay { .. } | Cause::Split { .. }))
            })
        };
        let counted: Vec<&Counted> = self
            .counted
            .iter()
            .filter(|c| !delayed(c.episode_start_us))
            .collect();
        let (fallen_us, span_us) = counted
            .iter()
            .fold((0, 0), |(f, s), c| (f + c.fallen_us, s + c.span_us));
        (!counted.is_empty()).then(|| ReplayRate {
            capacity: 1.0 + fallen_us as f64 / span_us as f64,
            catch_ups: counted.len(),
            points: counted.iter().map(|c| c.fit_points).sum(),
        })
    }
}

/// Lag at or under this counts as caught up, µs.
pub const CAUGHT_UP_US: i64 = 50_000;

/// How far past an episode's end the catch-up may go on, µs.
pub const CAUGHT_UP_SEARCH_US: i64 = 10_000_000;

/// Episodes in time order, as the status finders walk them.
type EpisodeWalk<'e> = std::iter::Peekable<std::slice::Iter<'e, Episode>>;

/// Moves past the episodes that ended (and settled, [`SETTLE_US`]) before `t_us`: the
/// next one is the first that may hold a sample at `t_us` or later.
fn skip_ended(episodes: &mut EpisodeWalk, t_us: i64) {
    while episodes
        .peek()
        .is_some_and(|e| e.end_us.is_some_and(|end| end + SETTLE_US < t_us))
    {
        episodes.next();
    }
}

/// The busy fraction over status samples outside episodes (and [`SETTLE_US`] after
/// them); `None` with fewer than [`MIN_BUSY_SAMPLES`] samples that know the state.
pub fn busy_fraction(status: &[StatusSample], episodes: &[Episode]) -> Option<BusyFraction> {
    let mut finder = BusyFinder::new(episodes);
    status.iter().for_each(|s| finder.push(s));
    finder.finish()
}

/// [`busy_fraction`] over status samples fed one by one in time order.
#[derive(Debug, Clone)]
pub struct BusyFinder<'e> {
    episodes: EpisodeWalk<'e>,
    busy: usize,
    samples: usize,
}

impl<'e> BusyFinder<'e> {
    /// `episodes` are the replica's, in time order.
    pub fn new(episodes: &'e [Episode]) -> Self {
        BusyFinder {
            episodes: episodes.iter().peekable(),
            busy: 0,
            samples: 0,
        }
    }

    /// Feeds the next status sample (in time order).
    pub fn push(&mut self, s: &StatusSample) {
        skip_ended(&mut self.episodes, s.t_us);
        if self.episodes.peek().is_some_and(|e| e.start_us <= s.t_us) {
            return;
        }
        let Some(applying) = s.main_channel().and_then(|c| c.sql_applying) else {
            return;
        };
        self.samples += 1;
        self.busy += usize::from(applying);
    }

    pub fn finish(self) -> Option<BusyFraction> {
        (self.samples >= MIN_BUSY_SAMPLES).then(|| BusyFraction {
            fraction: self.busy as f64 / self.samples as f64,
            samples: self.samples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::episodes::episodes;
    use crate::samples::ChannelStatus;

    const S: i64 = 1_000_000;

    fn status(t_us: i64, applying: Option<bool>) -> StatusSample {
        with_positions(t_us, applying, 0, 0)
    }

    /// A sample whose IO thread has received `received` and SQL thread applied `applied`
    /// transactions from MariaDB domain 0.
    fn with_positions(
        t_us: i64,
        applying: Option<bool>,
        received: u64,
        applied: u64,
    ) -> StatusSample {
        StatusSample::polled(
            t_us,
            vec![ChannelStatus {
                sql_running: applying.is_some(),
                sql_applying: applying,
                gtid_io_pos: format!("0-1-{received}"),
                gtid_applied_pos: format!("0-1-{applied}"),
                ..ChannelStatus::running()
            }],
        )
    }

    /// A replica busy 25 % of the time at steady load (100 tx/s), stalled 10 s at t = 60 s,
    /// then catching up at capacity 4 (vector +3, 400 tx/s): all three estimators say 4.
    #[test]
    fn catch_up_and_busy_fraction_agree_on_a_saturated_replica() {
        let step = 10_000;
        let points: Vec<LagPoint> = (0..100 * S / step)
            .map(|i| {
                let t = (i * step) as f64 / 1e6;
                let lag = if (60.0..70.0).contains(&t) {
                    t - 60.0
                } else if (70.0..70.0 + 10.0 / 3.0).contains(&t) {
                    10.0 - 3.0 * (t - 70.0)
                } else {
                    0.001
                };
                let lag_us = (lag * 1e6) as i64;
                LagPoint::bounded(i * step, lag_us, lag_us + 1000)
            })
            .collect();
        // Status every 100 ms: applying one sample in four, stopped during the stall,
        // applying throughout the catch-up. 100 transactions arrive per second; the
        // applier works the backlog off at 400 per second.
        let status: Vec<StatusSample> = (0..1000)
            .map(|i| {
                let t_us = i * S / 10;
                let t = t_us as f64 / 1e6;
                let applying = if (60.0..70.0).contains(&t) {
                    None
                } else if (70.0..74.0).contains(&t) {
                    Some(true)
                } else {
                    Some(i % 4 == 0)
                };
                let received = (100.0 * t) as u64;
                let applied = if (60.0..70.0).contains(&t) {
                    6000
                } else if t >= 70.0 {
                    received.min((6000.0 + 400.0 * (t - 70.0)) as u64)
                } else {
                    received
                };
                with_positions(t_us, applying, received, applied)
            })
            .collect();
        let eps = episodes(&points, &status, S, S / 2);
        assert_eq!(eps.len(), 1);
        let replay = replay_rate(&eps, &points).unwrap();
        assert!((replay.capacity - 4.0).abs() < 0.01, "{replay:?}");
        assert_eq!(replay.catch_ups, 1);
        let busy = busy_fraction(&status, &eps).unwrap();
        assert!((busy.fraction - 0.25).abs() < 0.01, "{busy:?}");
        let tp = throughput(&status, &eps).unwrap();
        assert!((tp.capacity - 4.0).abs() < 0.1, "{tp:?}");
        assert!((tp.apply_per_s - 400.0).abs() < 5.0, "{tp:?}");
        assert!((tp.arrival_per_s - 100.0).abs() < 1.0, "{tp:?}");
        assert_eq!(tp.drains, 1);
        // Planning takes the throughput figure: saturation 1/C, a day replays in 6 h,
        // headroom 3; the catch-up's when there is no throughput figure.
        let plan = planning(Some(&tp), Some(&replay)).unwrap();
        assert_eq!(plan.source, Estimator::Throughput);
        assert!((plan.saturation - 0.25).abs() < 0.01, "{plan:?}");
        assert!(
            (plan.day_replay_us as f64 / 3.6e9 - 6.0).abs() < 0.2,
            "{plan:?}"
        );
        assert!((plan.headroom - 3.0).abs() < 0.1, "{plan:?}");
        let plan = planning(None, Some(&replay)).unwrap();
        assert_eq!(
            (plan.source, plan.capacity),
            (Estimator::CatchUp, replay.capacity)
        );
        assert_eq!(planning(None, None), None);
    }

    /// A replica blocked with a backlog (the SQL thread running, nothing applied) and
    /// one whose backlog never drains give no throughput; neither does a replica that is
    /// never behind.
    #[test]
    fn throughput_needs_a_drain_and_an_arrival_rate() {
        let steady: Vec<StatusSample> = (0..200)
            .map(|i| with_positions(i * S / 10, Some(false), 10 * i as u64, 10 * i as u64))
            .collect();
        assert_eq!(throughput(&steady, &[]), None);
        let growing: Vec<StatusSample> = (0..200)
            .map(|i| with_positions(i * S / 10, Some(true), 10 * i as u64, 5 * i as u64))
            .collect();
        assert_eq!(throughput(&growing, &[]), None);
        let unknown: Vec<StatusSample> = (0..200).map(|i| status(i * S / 10, Some(true))).collect();
        assert_eq!(throughput(&unknown, &[]), None);
    }

    /// An intended delay (MASTER_DELAY = 5 s) keeps a backlog of 5 s of transactions on
    /// purpose while the applier idles most of the time: the applier applies what
    /// arrived, so a "drain" there measures λ, not μ, and C ≈ 1 would say "saturated"
    /// of a replica with headroom. On the lab this read C = 0.93 (issue 30, finding 2).
    #[test]
    fn an_intended_delay_is_not_a_drain() {
        let delayed: Vec<StatusSample> = (0..300)
            .map(|i| {
                let t = i as f64 / 10.0;
                let received = (100.0 * t) as u64;
                let applied = (100.0 * (t - 5.0)).max(0.0) as u64;
                let mut s = with_positions(i * S / 10, Some(i % 5 < 2), received, applied);
                s.channels[0].sql_delay_s = 5;
                s
            })
            .collect();
        assert_eq!(throughput(&delayed, &[]), None);
    }

    /// The lag an intended delay holds (5 s, flat for 11 s) falls when the delay is
    /// lifted: the fall from the plateau's first point is no catch-up rate (it read 1.47
    /// on the lab, truth 2.5), so such an episode does not count.
    #[test]
    fn an_episode_held_by_an_intended_delay_is_no_catch_up() {
        let step = 10_000;
        let lag_at = |t: f64| match t {
            t if (10.0..15.0).contains(&t) => t - 10.0,
            t if (15.0..26.0).contains(&t) => 5.0,
            t if (26.0..26.0 + 5.0 / 1.5).contains(&t) => 5.0 - 1.5 * (t - 26.0),
            _ => 0.001,
        };
        let points: Vec<LagPoint> = (0..40 * S / step)
            .map(|i| {
                let lag_us = (lag_at((i * step) as f64 / 1e6) * 1e6) as i64;
                LagPoint::bounded(i * step, lag_us, lag_us + 1000)
            })
            .collect();
        let status: Vec<StatusSample> = (0..400)
            .map(|i| {
                let mut s = with_positions(i * S / 10, Some(true), 100 * i as u64, 100 * i as u64);
                s.channels[0].sql_delay_s = if (100..260).contains(&i) { 5 } else { 0 };
                s
            })
            .collect();
        let eps = episodes(&points, &status, S, S / 2);
        assert_eq!(eps.len(), 1, "{eps:?}");
        assert_eq!(replay_rate(&eps, &points), None);
    }

    /// A busy primary keeps some transactions in flight: 1000 tx/s with a backlog that
    /// wanders between 20 and 80 is no drain, however its peaks fall.
    #[test]
    fn normal_in_flight_work_is_not_a_drain() {
        let busy: Vec<StatusSample> = (0..300)
            .map(|i| {
                let received = 100 * i as u64 + 1000;
                let in_flight = 20 + (i as u64 * 37) % 61;
                with_positions(i * S / 10, Some(true), received, received - in_flight)
            })
            .collect();
        assert_eq!(throughput(&busy, &[]), None);
    }

    /// On real load the lag falls fastest right after a stall: here 10 s of lag goes at
    /// +4 for 2 s, then at +1 for 2 s. The capacity is the average, 1 + 10 s / 4 s = 3.5,
    /// not the slope of a line fitted to the curve (3.8), nor the chord to the episode's
    /// end at 500 ms (3.7).
    #[test]
    fn catch_up_capacity_is_the_average_rate_until_caught_up() {
        let step = 10_000;
        let points: Vec<LagPoint> = (0..40 * S / step)
            .map(|i| {
                let t = (i * step) as f64 / 1e6;
                let lag = match t {
                    t if (10.0..20.0).contains(&t) => t - 10.0,
                    t if (20.0..22.0).contains(&t) => 10.0 - 4.0 * (t - 20.0),
                    t if (22.0..24.0).contains(&t) => 2.0 - (t - 22.0),
                    _ => 0.001,
                };
                let lag_us = (lag * 1e6) as i64;
                LagPoint::bounded(i * step, lag_us, lag_us + 1000)
            })
            .collect();
        let eps = episodes(&points, &[], S, S / 2);
        assert_eq!(eps.len(), 1);
        let replay = replay_rate(&eps, &points).unwrap();
        assert!((replay.capacity - 3.5).abs() < 0.05, "{replay:?}");
        let fit = 1.0 + eps[0].catch_up.unwrap().vector();
        assert!((fit - 3.5).abs() > 0.2, "the fitted slope: {fit}");
    }

    /// A 10 s stall caught up at +1 (capacity 2 over 10 s), then a hiccup: 4 s of lag
    /// gone in 2 s. Pooled, 1 + 14 s / 12 s = 2.17; the fastest alone would say 3.
    #[test]
    fn catch_ups_are_pooled_so_a_hiccup_does_not_set_the_capacity() {
        let step = 10_000;
        let points: Vec<LagPoint> = (0..60 * S / step)
            .map(|i| {
                let t = (i * step) as f64 / 1e6;
                let lag = match t {
                    t if (5.0..15.0).contains(&t) => t - 5.0,
                    t if (15.0..25.0).contains(&t) => 10.0 - (t - 15.0),
                    t if (40.0..44.0).contains(&t) => t - 40.0,
                    t if (44.0..46.0).contains(&t) => 4.0 - 2.0 * (t - 44.0),
                    _ => 0.001,
                };
                let lag_us = (lag * 1e6) as i64;
                LagPoint::bounded(i * step, lag_us, lag_us + 1000)
            })
            .collect();
        let eps = episodes(&points, &[], S, S / 2);
        assert_eq!(eps.len(), 2);
        let replay = replay_rate(&eps, &points).unwrap();
        assert_eq!(replay.catch_ups, 2, "{replay:?}");
        assert!(
            (replay.capacity - 14.0 / 12.0 - 1.0).abs() < 0.05,
            "{replay:?}"
        );
    }

    #[test]
    fn not_enough_data_is_none() {
        let few: Vec<StatusSample> = (0..10).map(|i| status(i * S, Some(true))).collect();
        assert_eq!(busy_fraction(&few, &[]), None);
        let stopped: Vec<StatusSample> = (0..100).map(|i| status(i * S, None)).collect();
        assert_eq!(busy_fraction(&stopped, &[]), None);
        assert_eq!(replay_rate(&[], &[]), None);
        let idle: Vec<StatusSample> = (0..100).map(|i| status(i * S, Some(false))).collect();
        let b = busy_fraction(&idle, &[]).unwrap();
        assert_eq!(b.fraction, 0.0);
    }
}
