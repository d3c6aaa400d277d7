//! Lag episodes (docs/design.md): a stretch that starts when lag exceeds `max_lag`
//! and ends when it falls under `recover_lag`, found with the same [`LagGate`] the pool
//! state machine uses. Each has its peak, how fast the replica fell behind and caught
//! up (vector fits), and hints at the cause from the replication status.

use std::fmt;

use super::health::LagGate;
use super::series::LagPoint;
use super::vector::{Fit, FitSums};
use crate::samples::{IoState, StatusSample};

/// Status samples this long before an episode's start count for its causes, µs.
pub const CAUSE_LOOKBACK_US: i64 = 2_000_000;

/// One lag episode. Times and lags in µs.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub start_us: i64,
    /// `None` while the replica still lags at the end of the recording.
    pub end_us: Option<i64>,
    pub peak_lag_us: i64,
    pub peak_at_us: i64,
    /// Indices into the points: first over `max_lag`, the peak, and the first under
    /// `recover_lag` (or the last point).
    pub start_index: usize,
    pub peak_index: usize,
    pub end_index: usize,
    /// Fit from the start to the peak; its vector is the fall rate (-1 = stopped).
    pub fall: Option<Fit>,
    /// Fit from the peak to the end; its vector is the catch-up rate.
    pub catch_up: Option<Fit>,
    pub causes: Vec<Cause>,
    /// The lag was already over `max_lag` at the first lag of the data (the store's
    /// start, or `--from`): the episode began before it, so its start, duration and
    /// time to peak are only what the data shows, and its peak may be higher.
    pub before_data: bool,
    /// The lag was over `max_lag` at the first round after a gap in the data (failed
    /// reads, the recorder down) of this long, µs: as with `before_data`, its start is
    /// only where the data resumed.
    pub after_gap_us: Option<i64>,
    /// The data stopped for this long, µs, while the episode was under way: it ends
    /// at its last round before the gap, `end_us` is that round and not a recovery,
    /// and what the lag did in the gap is unknown (no catch-up is fitted).
    pub cut_by_gap_us: Option<i64>,
}

impl Episode {
    /// Time from start to peak, µs.
    pub fn time_to_peak_us(&self) -> i64 {
        self.peak_at_us - self.start_us
    }
}

/// What the replication status said during an episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    SqlStopped,
    IoStopped,
    /// PostgreSQL: WAL replay paused (`pg_wal_replay_pause()`), its SQL thread stopped.
    ReplayPaused,
    /// PostgreSQL: the WAL receiver is not streaming, its IO thread stopped.
    WalReceiverStopped,
    SqlError {
        errno: u32,
        message: String,
    },
    IoError {
        errno: u32,
        message: String,
    },
    /// MASTER_DELAY in seconds: lag the operator asked for.
    IntendedDelay {
        seconds: u32,
    },
    /// Both threads ran throughout: the applier was slower than the primary, or blocked.
    ThreadsRunning,
    /// It followed `primary`, a second server taking writes beside the cluster's
    /// primary (a split), or was that server: it lacked the primary's writes because
    /// it replicated from elsewhere, not because its applier was slow.
    Split {
        primary: String,
    },
}

impl Cause {
    /// A stable short code for JSON.
    pub fn code(&self) -> &'static str {
        match self {
            Cause::SqlStopped => "sql_thread_stopped",
            Cause::IoStopped => "io_thread_stopped",
            Cause::ReplayPaused => "replay_paused",
            Cause::WalReceiverStopped => "wal_receiver_stopped",
            Cause::SqlError { .. } => "sql_error",
            Cause::IoError { .. } => "io_error",
            Cause::IntendedDelay { .. } => "intended_delay",
            Cause::ThreadsRunning => "threads_running",
            Cause::Split { .. } => "split",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::SqlStopped => f.write_str("SQL thread stopped"),
            Cause::IoStopped => f.write_str("IO thread stopped"),
            Cause::ReplayPaused => f.write_str("replay paused"),
            Cause::WalReceiverStopped => f.write_str("WAL receiver not streaming"),
            Cause::SqlError { errno, message } => write!(f, "SQL error {errno}: {message}"),
            Cause::IoError { errno, message } => write!(f, "IO error {errno}: {message}"),
            Cause::IntendedDelay { seconds } => write!(f, "intended delay {seconds} s"),
            Cause::ThreadsRunning => f.write_str("threads running (applier slow or blocked)"),
            Cause::Split { primary } => {
                write!(f, "split: on the side of {primary}, a second primary")
            }
        }
    }
}

/// The episodes of a series of lag points (in time order), with causes from `status`
/// (in time order).
pub fn episodes(
    points: &[LagPoint],
    status: &[StatusSample],
    max_lag_us: i64,
    recover_lag_us: i64,
) -> Vec<Episode> {
    let mut finder = EpisodeFinder::new(max_lag_us, recover_lag_us, DEFAULT_GAP_US);
    for p in points {
        finder.push(p);
    }
    let last_us = points.last().map_or(0, |p| p.t_us);
    let mut episodes = finder.finish();
    let mut causes = CauseFinder::new(&episodes, last_us);
    status.iter().for_each(|s| causes.push(s));
    causes.finish(&mut episodes);
    episodes
}

/// Rounds further apart than this, µs, leave a gap in [`episodes`] (the report uses
/// its recording's own rule, `analysis::report::gap_us`).
pub const DEFAULT_GAP_US: i64 = 1_000_000;

/// Finds episodes in lag points fed one by one in time order, in constant memory: the
/// fits are running sums ([`FitSums`]). Their causes come after, from the status
/// samples ([`CauseFinder`]). Rounds further apart than `gap_us` are a gap: an
/// episode under way is cut there ([`Episode::cut_by_gap_us`]), and one may start
/// again after it ([`Episode::after_gap_us`]); nothing is assumed of the lag inside.
#[derive(Debug, Clone)]
pub struct EpisodeFinder {
    gate: LagGate,
    /// Rounds further apart than this leave a gap, µs.
    gap_us: i64,
    /// The gap just before the next point with a lag, µs, while no episode opened.
    after_gap_us: Option<i64>,
    /// Index of the next point.
    next: usize,
    open: Option<Open>,
    /// The last point fed and its index.
    last: Option<(usize, LagPoint)>,
    /// A point with a lag has been fed.
    lag_seen: bool,
    done: Vec<Episode>,
}

/// The episode in progress.
#[derive(Debug, Clone)]
struct Open {
    start: (usize, LagPoint),
    peak: (usize, LagPoint),
    peak_lag_us: i64,
    /// Points from the start, and their sums as they were at the peak.
    since_start: FitSums,
    at_peak: FitSums,
    /// Points from the peak on.
    since_peak: FitSums,
    /// It opened at the first point with a lag.
    before_data: bool,
    after_gap_us: Option<i64>,
}

impl EpisodeFinder {
    /// Episodes over `max_lag_us` until under `recover_lag_us`; rounds further apart
    /// than `gap_us` are a gap.
    pub fn new(max_lag_us: i64, recover_lag_us: i64, gap_us: i64) -> Self {
        EpisodeFinder {
            gate: LagGate::new(max_lag_us, recover_lag_us),
            gap_us,
            after_gap_us: None,
            next: 0,
            open: None,
            last: None,
            lag_seen: false,
            done: Vec::new(),
        }
    }

    /// Feeds the next point; returns the episode it ended, if any (also kept for
    /// [`EpisodeFinder::finish`]).
    pub fn push(&mut self, p: &LagPoint) -> Option<&Episode> {
        let i = self.next;
        self.next += 1;
        let gap_us = self
            .last
            .map(|(_, q)| p.t_us - q.t_us)
            .filter(|&d| d > self.gap_us);
        let previous = self.last.replace((i, *p));
        if let Some(gap_us) = gap_us {
            // Nothing is known of the lag in the gap: the gate starts again, and an
            // episode under way ends at its last round, cut.
            self.gate = LagGate::new(self.gate.high_us, self.gate.low_us);
            self.after_gap_us = Some(gap_us);
            if let (Some(o), Some(before)) = (self.open.take(), previous) {
                let mut e = o.episode(before, true);
                (e.catch_up, e.cut_by_gap_us) = (None, Some(gap_us));
                self.done.push(e);
                // Judged on its own after the gap, the point may open an episode.
                self.judge(i, p);
                return self.done.iter().rev().find(|e| e.cut_by_gap_us.is_some());
            }
        }
        self.judge(i, p)
    }

    /// Feeds point `i` to the gate and the open episode.
    fn judge(&mut self, i: usize, p: &LagPoint) -> Option<&Episode> {
        let lag = p.lag.judged_us()?;
        let after_gap_us = self.after_gap_us.take();
        let first_lag = !std::mem::replace(&mut self.lag_seen, true);
        let over = self.gate.update(lag);
        match (&mut self.open, over) {
            (None, true) => {
                let mut sums = FitSums::default();
                sums.add(p);
                self.open = Some(Open {
                    start: (i, *p),
                    peak: (i, *p),
                    peak_lag_us: lag,
                    since_start: sums,
                    at_peak: sums,
                    since_peak: sums,
                    before_data: first_lag,
                    after_gap_us,
                });
                None
            }
            (Some(o), true) => {
                o.since_start.add(p);
                if lag > o.peak_lag_us {
                    (o.peak, o.peak_lag_us, o.at_peak) = ((i, *p), lag, o.since_start);
                    o.since_peak = FitSums::default();
                }
                o.since_peak.add(p);
                None
            }
            (Some(_), false) => {
                let mut o = self.open.take().expect("matched");
                o.since_peak.add(p);
                self.done.push(o.episode((i, *p), true));
                self.done.last()
            }
            (None, false) => None,
        }
    }

    /// The index and point of the open episode's peak, while one is open.
    pub fn open_peak(&self) -> Option<(usize, LagPoint)> {
        self.open.as_ref().map(|o| o.peak)
    }

    /// Every episode, the one still open at the last point included, without causes.
    pub fn finish(mut self) -> Vec<Episode> {
        if let (Some(o), Some(last)) = (self.open.take(), self.last) {
            self.done.push(o.episode(last, false));
        }
        self.done
    }
}

impl Open {
    fn episode(&self, end: (usize, LagPoint), ended: bool) -> Episode {
        let (start_us, end_us) = (self.start.1.t_us, end.1.t_us);
        Episode {
            start_us,
            end_us: ended.then_some(end_us),
            peak_lag_us: self.peak_lag_us,
            peak_at_us: self.peak.1.t_us,
            start_index: self.start.0,
            peak_index: self.peak.0,
            end_index: end.0,
            fall: self.at_peak.fit(),
            catch_up: if ended { self.since_peak.fit() } else { None },
            causes: Vec::new(),
            before_data: self.before_data,
            after_gap_us: self.after_gap_us,
            cut_by_gap_us: None,
        }
    }
}

/// Finds the causes of episodes in status samples fed one by one in time order: the
/// hints of the samples from [`CAUSE_LOOKBACK_US`] before each episode's start to its
/// end (or the last point, for one still open), each at most once.
#[derive(Debug, Clone)]
pub struct CauseFinder {
    /// Per episode, in order: its window, the causes seen and the samples seen.
    windows: Vec<(i64, i64, Vec<Cause>, usize)>,
    /// The first episode whose window has not passed.
    next: usize,
}

impl CauseFinder {
    /// `episodes` in time order; `last_us` is the time of the series' last point.
    pub fn new(episodes: &[Episode], last_us: i64) -> Self {
        CauseFinder {
            windows: episodes
                .iter()
                .map(|e| {
                    let end = e.end_us.unwrap_or(last_us);
                    (e.start_us - CAUSE_LOOKBACK_US, end, Vec::new(), 0)
                })
                .collect(),
            next: 0,
        }
    }

    /// Feeds the next status sample (in time order).
    pub fn push(&mut self, s: &StatusSample) {
        while self.windows.get(self.next).is_some_and(|w| w.1 < s.t_us) {
            self.next += 1;
        }
        let Some(c) = s.main_channel() else { return };
        for (from, to, causes, seen) in &mut self.windows[self.next..] {
            if *from > s.t_us {
                break;
            }
            if s.t_us <= *to {
                *seen += 1;
                hints(c, causes);
            }
        }
    }

    /// Writes the causes into `episodes` (the ones given to [`CauseFinder::new`]).
    pub fn finish(self, episodes: &mut [Episode]) {
        for (e, (_, _, mut causes, seen)) in episodes.iter_mut().zip(self.windows) {
            if seen > 0 && causes.is_empty() {
                causes.push(Cause::ThreadsRunning);
            }
            e.causes = causes;
        }
    }
}

/// A stretch in which a replica was on a second primary's side of a split (it
/// followed that server, directly or through others, or was it), from the cluster's
/// stored `split` and `split_end` events, µs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitSide {
    /// When the second server began to take writes: `split` fires
    /// [`SPLIT_AFTER_US`] after that.
    pub start_us: i64,
    /// The `split_end`; `None` when the data ends first.
    pub end_us: Option<i64>,
    pub primary: String,
}

/// How long after a split ends an episode that begins is still the split's: the
/// replica, pointed back at the primary, fetches what it missed, µs.
pub const REJOIN_US: i64 = 5_000_000;

pub use crate::cluster::events::SPLIT_AFTER_US;

/// The stretches in which `replica` was on a second primary's side, from one
/// cluster's events in time order.
pub fn split_sides<'a>(
    events: impl IntoIterator<Item = &'a crate::store::events::RecordedEvent>,
    replica: &str,
) -> Vec<SplitSide> {
    use crate::samples::event::EventKind;
    let mut sides: Vec<SplitSide> = Vec::new();
    for e in events {
        let Some(node) = e.doc.node_name() else {
            continue;
        };
        match e.kind() {
            EventKind::Split => {
                let follows = e.json["split"]["following"][node]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|r| r.as_str() == Some(replica)));
                if node == replica || follows {
                    sides.push(SplitSide {
                        start_us: e.t_us - SPLIT_AFTER_US,
                        end_us: None,
                        primary: node.to_string(),
                    });
                }
            }
            EventKind::SplitEnd => {
                for side in sides.iter_mut().filter(|s| s.primary == node) {
                    side.end_us.get_or_insert(e.t_us);
                }
            }
            _ => {}
        }
    }
    sides
}

/// Makes the split the cause of every episode that overlaps a stretch on a second
/// primary's side (or begins within [`REJOIN_US`] of its end): in place of "threads
/// running", which says only that nothing else was seen.
pub fn mark_splits(episodes: &mut [Episode], sides: &[SplitSide]) {
    for e in episodes {
        let end_us = e.end_us.unwrap_or(i64::MAX);
        for side in sides {
            let side_end = side
                .end_us
                .map_or(i64::MAX, |t| t.saturating_add(REJOIN_US));
            if e.start_us <= side_end && end_us >= side.start_us {
                e.causes.retain(|c| *c != Cause::ThreadsRunning);
                let cause = Cause::Split {
                    primary: side.primary.clone(),
                };
                if !e.causes.contains(&cause) {
                    e.causes.insert(0, cause);
                }
            }
        }
    }
}

/// Adds what one channel's status says to `out`, each cause at most once.
fn hints(c: &crate::samples::ChannelStatus, out: &mut Vec<Cause>) {
    let mut add = |cause: Cause| {
        if !out.contains(&cause) {
            out.push(cause);
        }
    };
    let wal = c.is_wal_stream();
    if !c.sql_running {
        add(if wal {
            Cause::ReplayPaused
        } else {
            Cause::SqlStopped
        });
        if c.last_sql_errno != 0 {
            add(Cause::SqlError {
                errno: c.last_sql_errno,
                message: c.last_sql_error.clone(),
            });
        }
    }
    if c.io != IoState::Yes {
        add(if wal {
            Cause::WalReceiverStopped
        } else {
            Cause::IoStopped
        });
        if c.last_io_errno != 0 {
            add(Cause::IoError {
                errno: c.last_io_errno,
                message: c.last_io_error.clone(),
            });
        }
    }
    if c.sql_delay_s > 0 {
        add(Cause::IntendedDelay {
            seconds: c.sql_delay_s,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::{ChannelStatus, Outcome};

    const S: i64 = 1_000_000;

    pub(crate) fn status_at(t_us: i64, sql_running: bool) -> StatusSample {
        StatusSample {
            postgres: None,
            t_us,
            duration_us: 500,
            outcome: Outcome::Ok,
            reason: None,
            channels: vec![ChannelStatus {
                sql_running,
                sql_applying: sql_running.then_some(false),
                ..ChannelStatus::running()
            }],
        }
    }

    /// Every 10 ms for 30 s: caught up, a stall of 5 s from t=5 s, catch-up at vector +1
    /// (5 s of lag gone in 5 s), caught up; then a blip to 1.2 s and back at t=25 s.
    pub(crate) fn stall_series() -> Vec<LagPoint> {
        (0..3000)
            .map(|i| {
                let t = i as f64 / 100.0;
                let lag = if (5.0..10.0).contains(&t) {
                    t - 5.0
                } else if (10.0..15.0).contains(&t) {
                    5.0 - (t - 10.0)
                } else if (25.0..25.5).contains(&t) {
                    1.2
                } else {
                    0.0005
                };
                let lag_us = (lag * 1e6) as i64;
                LagPoint::bounded(i * 10_000, (lag_us - 300).max(0), lag_us + 300)
            })
            .collect()
    }

    #[test]
    fn a_stall_is_one_episode_with_known_rates() {
        let points = stall_series();
        let status: Vec<StatusSample> = (0..30)
            .map(|s| status_at(s * S, !(5..10).contains(&s)))
            .collect();
        let eps = episodes(&points, &status, S, S / 2);
        assert_eq!(eps.len(), 2, "{eps:#?}");
        let e = &eps[0];
        // Over 1 s at t = 6.01 s, peak 5 s at t = 10 s, under 0.5 s at 14.5 s.
        assert_eq!(e.start_us, 6_010_000);
        assert_eq!(e.peak_at_us, 10_000_000);
        assert_eq!(e.peak_lag_us, 5_000_000);
        let end = e.end_us.unwrap();
        assert!((14_500_000..=14_510_000).contains(&end), "{end}");
        assert_eq!(e.time_to_peak_us(), 3_990_000);
        assert!((e.fall.unwrap().vector() + 1.0).abs() < 1e-3);
        assert!((e.catch_up.unwrap().vector() - 1.0).abs() < 1e-2);
        assert_eq!(e.causes, vec![Cause::SqlStopped]);
        // The blip: over 1 s for 0.5 s, threads running throughout.
        assert_eq!(eps[1].causes, vec![Cause::ThreadsRunning]);

        // The same stall on a PostgreSQL standby (LSN positions) is paused replay.
        let pg: Vec<StatusSample> = status
            .into_iter()
            .map(|mut s| {
                s.channels[0].gtid_applied_pos = "0/3000148".into();
                s
            })
            .collect();
        let eps = episodes(&points, &pg, S, S / 2);
        assert_eq!(eps[0].causes, vec![Cause::ReplayPaused]);
        assert_eq!(eps[0].causes[0].code(), "replay_paused");
    }

    /// The lab's finding 5: replica1 killed 1 s into a catch-up and back 14 s later was
    /// one 42 s episode, the gap inside it unmentioned. Now the episode is cut at its
    /// last round before the gap (no catch-up fitted across it) and the lag seen after
    /// the gap opens one of its own, marked as under way when the data resumed.
    #[test]
    fn a_gap_cuts_the_episode_under_way_and_the_next_says_it_began_unseen() {
        let stall = stall_series();
        // Rounds stop at t = 11 s (1 s into the catch-up) and resume at t = 25 s with
        // 12 s of lag that falls at +1.
        let mut points: Vec<LagPoint> = stall.iter().take(1100).copied().collect();
        points.extend((0..1500).map(|i| {
            let lag_us = (12_000_000 - i * 10_000).max(500);
            LagPoint::bounded(25_000_000 + i * 10_000, lag_us - 300, lag_us + 300)
        }));
        let eps = episodes(&points, &[], S, S / 2);
        assert_eq!(eps.len(), 2, "{eps:#?}");
        let (cut, after) = (&eps[0], &eps[1]);
        assert_eq!(cut.end_us, Some(10_990_000));
        assert_eq!(cut.cut_by_gap_us, Some(14_010_000));
        assert_eq!(cut.catch_up, None, "no catch-up is fitted across a gap");
        assert_eq!(cut.after_gap_us, None);
        assert_eq!(after.start_us, 25_000_000);
        assert_eq!(after.after_gap_us, Some(14_010_000));
        assert_eq!(after.cut_by_gap_us, None);
        assert!(after.end_us.is_some());
        // The cut episode gives no catch-up rate; the one after the gap does.
        let replay = crate::analysis::capacity::replay_rate(&eps, &points).unwrap();
        assert_eq!(replay.catch_ups, 1);
    }

    /// A gap while caught up opens nothing, and a lag under `max_lag` after a gap is no
    /// episode even though the gate was over before it.
    fn recorded(t_us: i64, json: serde_json::Value) -> crate::store::events::RecordedEvent {
        crate::store::events::RecordedEvent {
            t_us,
            doc: serde_json::from_value(json.clone()).unwrap(),
            json,
        }
    }

    /// Finding 9: r1 followed r2, which took writes beside the primary; r3 stayed with
    /// the primary. r1's episodes from the split's start (3 s before `split` fired) to
    /// just after its end are the split's, not a slow applier's; r3's are its own.
    #[test]
    fn an_episode_on_a_second_primarys_side_is_the_splits() {
        let split = serde_json::json!({"event": "split", "cluster": "c", "node": {"name": "r2"},
            "split": {"following": {"p": ["r3"], "r2": ["r1"]}}});
        let end = serde_json::json!({"event": "split_end", "cluster": "c", "node": {"name": "r2"}});
        let events = [recorded(10 * S, split), recorded(20 * S, end)];
        let sides = split_sides(&events, "r1");
        assert_eq!(
            sides,
            [SplitSide {
                start_us: 7 * S,
                end_us: Some(20 * S),
                primary: "r2".into()
            }]
        );
        assert_eq!(split_sides(&events, "r2").len(), 1);
        assert!(split_sides(&events, "r3").is_empty());
        let points = stall_series();
        let status: Vec<StatusSample> = (0..30).map(|i| status_at(i * S, true)).collect();
        let mut eps = episodes(&points, &status, S, S / 2);
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].causes, [Cause::ThreadsRunning]);
        // The stall from 5 s overlaps the side from 7 s; the blip at 25 s begins
        // within REJOIN_US of its end at 20 s.
        mark_splits(&mut eps, &sides);
        let split = Cause::Split {
            primary: "r2".into(),
        };
        assert_eq!(eps[0].causes, eps[1].causes);
        assert_eq!(eps[1].causes, [split]);
        assert_eq!(eps[0].causes[0].code(), "split");
        // Far from the split, nothing changes.
        let mut eps = episodes(&points, &status, S, S / 2);
        let far = [SplitSide {
            start_us: 100 * S,
            end_us: None,
            primary: "r2".into(),
        }];
        mark_splits(&mut eps, &far);
        assert_eq!(eps[1].causes, [Cause::ThreadsRunning]);
    }

    #[test]
    fn a_gap_resets_the_gate() {
        let lags_at = [(0, 2.0), (10_000, 2.0), (5_000_000, 0.8), (5_010_000, 0.0)];
        let points: Vec<LagPoint> = lags_at
            .iter()
            .map(|&(t, l)| {
                let us = (l * 1e6) as i64;
                LagPoint::bounded(t, us, us + 100)
            })
            .collect();
        let eps = episodes(&points, &[], S, S / 2);
        assert_eq!(eps.len(), 1, "{eps:#?}");
        assert_eq!(eps[0].cut_by_gap_us, Some(4_990_000));
    }

    #[test]
    fn hysteresis_keeps_one_episode_through_a_dip() {
        // 2 s, dip to 0.8 s (above recover 0.5 s), 2 s, then 0.
        let lags = [0.0, 2.0, 0.8, 2.0, 0.0];
        let points: Vec<LagPoint> = lags
            .iter()
            .enumerate()
            .map(|(i, &l)| LagPoint::bounded(i as i64 * S, (l * 1e6) as i64, (l * 1e6) as i64))
            .collect();
        let eps = episodes(&points, &[], S, S / 2);
        assert_eq!(eps.len(), 1);
        assert_eq!((eps[0].start_us, eps[0].end_us), (S, Some(4 * S)));
        assert!(eps[0].causes.is_empty(), "no status, no hints");
        // Still lagging at the end: open episode.
        let eps = episodes(&points[..4], &[], S, S / 2);
        assert_eq!(eps[0].end_us, None);
        assert_eq!(eps[0].end_index, 3);
    }

    /// Data that begins in the middle of a stall (a store's start, or `--from`): the
    /// episode is marked as begun before it; one that begins after the first lag is not.
    #[test]
    fn an_episode_under_way_when_the_data_begins_is_marked() {
        let points = stall_series();
        // From t = 8 s, 3 s into the stall: lag 3 s at the first point.
        let eps = episodes(&points[800..], &[], S, S / 2);
        assert!(eps[0].before_data, "{:?}", eps[0]);
        assert_eq!(eps[0].start_us, 8_000_000);
        assert!(!eps[1].before_data);
        // The whole series: its first lag is caught up.
        let eps = episodes(&points, &[], S, S / 2);
        assert!(eps.iter().all(|e| !e.before_data));
    }
}
