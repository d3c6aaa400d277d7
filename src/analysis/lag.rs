//! The Lag model (docs/design.md, "Measurement model"): what one read, or one probe round, says about a
//! replica's lag. Every consumer (analyze, plot, replay, export, the live checks, statsd,
//! `check`) takes its lag from here and judges it with [`Lag::judged_us`].
//!
//! If a replica shows beat `k` during a read in `[r_start, r_end]`, it has the primary's
//! state as of `t_send(k)` (the commit happened after the send), so
//! `lag_hi = r_end - t_send(k)`. If a later beat `j > k` is known to have committed by
//! `t_ack(j)` and the replica does not show it, it lacks the state as of `t_ack(j)`, so
//! `lag_lo = r_start - t_ack(j)` (the earliest such `j`, and 0 when there is none).
//!
//! The upper bound means something only while the writer kept beating after `k`: when
//! no beat after `k` was acknowledged within [`Continuity::limit_us`] of `t_send(k)` (the
//! primary was down, frozen or refusing writes), `lag_hi` is just the time since the last
//! good beat and says nothing about the replica. Such a read is [`Lag::AtLeast`] its
//! lower bound, never a midpoint. A read is matched only to beats of its own recorder
//! session: a seq written by anything else (`check`, a second recorder) is a foreign beat.

use crate::samples::{BeatTimes, Observation, Probe};

/// A read's or a probe round's lag, µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    /// The true lag lies in `[lo_us, hi_us]`; the point estimate is the middle.
    Bounded { lo_us: i64, hi_us: i64 },
    /// The lag is at least `lo_us`; the upper bound is unknown because the writer
    /// acknowledged no beat soon after the one the replica showed.
    AtLeast { lo_us: i64 },
    /// The read says nothing about the lag.
    Unknown(Unknown),
}

/// A lag as every output writes it, ms: what is known ([`Lag::kind`]), the judged value
/// ([`Lag::judged_us`]: the point estimate of bounded lag, the lower bound of "at
/// least" lag) and the bounds; every field null when there is no lag at all, and the
/// upper bound null when it is not known. Output structs flatten it (JSON) or copy its
/// fields (CSV).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LagMs {
    pub lag_kind: Option<&'static str>,
    pub lag_ms: Option<f64>,
    pub lag_lo_ms: Option<f64>,
    pub lag_hi_ms: Option<f64>,
}

impl LagMs {
    pub fn of(lag: Option<Lag>) -> LagMs {
        let ms = |us: i64| crate::clock::ms(us);
        LagMs {
            lag_kind: lag.map(|l| l.kind()),
            lag_ms: lag.and_then(|l| l.judged_us()).map(ms),
            lag_lo_ms: lag.and_then(|l| l.lo_us()).map(ms),
            lag_hi_ms: lag.and_then(|l| l.hi_us()).map(ms),
        }
    }
}

/// Why a successful read has no lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// It showed a seq older than this session's first beat (another session's, or 0
    /// after `init`) before any beat of this session was acknowledged.
    BeforeFirstBeat,
    /// It showed a seq this session never wrote: another writer's (a `check`, a second
    /// recorder) or a number from the future.
    ForeignBeat { seq: u64 },
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unknown::BeforeFirstBeat => f.write_str(
                "lag unknown: it shows a beat from before this session's first acknowledged one",
            ),
            Unknown::ForeignBeat { seq } => write!(
                f,
                "lag unknown: it shows seq {seq}, which this recorder never wrote (another writer)"
            ),
        }
    }
}

impl Lag {
    /// The lower bound, when anything is known.
    pub fn lo_us(&self) -> Option<i64> {
        match *self {
            Lag::Bounded { lo_us, .. } | Lag::AtLeast { lo_us } => Some(lo_us),
            Lag::Unknown(_) => None,
        }
    }

    /// The upper bound, when known.
    pub fn hi_us(&self) -> Option<i64> {
        match *self {
            Lag::Bounded { hi_us, .. } => Some(hi_us),
            _ => None,
        }
    }

    /// The point estimate: the middle of bounded lag only.
    pub fn point_us(&self) -> Option<i64> {
        match *self {
            Lag::Bounded { lo_us, hi_us } => Some(lo_us + (hi_us - lo_us) / 2),
            _ => None,
        }
    }

    /// The value every judgement uses (thresholds, episodes, pool state, alerts): the
    /// point estimate of bounded lag, the lower bound of "at least" lag.
    pub fn judged_us(&self) -> Option<i64> {
        match *self {
            Lag::Bounded { .. } => self.point_us(),
            Lag::AtLeast { lo_us } => Some(lo_us),
            Lag::Unknown(_) => None,
        }
    }

    /// Width of bounded lag.
    pub fn width_us(&self) -> Option<i64> {
        match *self {
            Lag::Bounded { lo_us, hi_us } => Some(hi_us - lo_us),
            _ => None,
        }
    }

    pub fn is_bounded(&self) -> bool {
        matches!(self, Lag::Bounded { .. })
    }

    /// What is known, in the one word every output uses: `bounded`, `at_least` or
    /// `unknown`.
    pub fn kind(&self) -> &'static str {
        match self {
            Lag::Bounded { .. } => "bounded",
            Lag::AtLeast { .. } => "at_least",
            Lag::Unknown(_) => "unknown",
        }
    }

    /// The better of two measurements of the same moment (a read and its follow-up):
    /// bounded beats "at least" beats unknown; narrower bounds, or a higher floor, win.
    /// Ties keep `self`.
    pub fn tighter(self, other: Lag) -> Lag {
        match (self, other) {
            (Lag::Bounded { .. }, Lag::Bounded { .. }) => {
                if other.width_us() < self.width_us() {
                    other
                } else {
                    self
                }
            }
            (Lag::Bounded { .. }, _) => self,
            (_, Lag::Bounded { .. }) => other,
            (Lag::AtLeast { lo_us: a }, Lag::AtLeast { lo_us: b }) => {
                if b > a {
                    other
                } else {
                    self
                }
            }
            (Lag::AtLeast { .. }, _) => self,
            (_, Lag::AtLeast { .. }) => other,
            (Lag::Unknown(_), Lag::Unknown(_)) => self,
        }
    }
}

/// The bounds for a read in `[r_start_us, r_end_us]` that showed a beat sent at
/// `t_send_k_us`, given the acknowledgement of the first later beat known to have
/// committed before the read (`None` when there is none).
pub fn bounds(
    r_start_us: i64,
    r_end_us: i64,
    t_send_k_us: i64,
    next_ack_us: Option<i64>,
) -> (i64, i64) {
    let hi_us = (r_end_us - t_send_k_us).max(0);
    let lo_us = next_ack_us
        .map_or(0, |ack| (r_start_us - ack).max(0))
        .min(hi_us);
    (lo_us, hi_us)
}

/// The lag `check` measured: bounded when a read showed its beat (at most since the
/// send; at least as late as the last read that missed it after the acknowledgement),
/// else at least the time from the acknowledgement to the last miss.
pub fn sighting_lag(s: &crate::samples::CheckSighting) -> Lag {
    match s.shown {
        Some((r_start_us, r_end_us)) => {
            let (lo_us, hi_us) = bounds(
                s.missed_after_ack_us.unwrap_or(r_start_us),
                r_end_us,
                s.t_send_us,
                s.missed_after_ack_us.map(|_| s.t_ack_us),
            );
            Lag::Bounded { lo_us, hi_us }
        }
        None => Lag::AtLeast {
            lo_us: s.missed_after_ack_us.map_or(0, |m| m - s.t_ack_us),
        },
    }
}

/// How long the writer may go from sending a beat to acknowledging a later one before
/// the upper bound of a read of that beat stops meaning anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Continuity {
    pub limit_us: i64,
}

impl Continuity {
    /// Slack over two intervals: a commit slower than this is the primary struggling.
    pub const SLACK_US: i64 = 10_000;

    /// Two beat intervals plus [`Continuity::SLACK_US`]: one beat may fail or come
    /// late without losing the upper bound.
    pub fn for_interval(interval_us: i64) -> Continuity {
        Continuity {
            limit_us: 2 * interval_us.max(1) + Self::SLACK_US,
        }
    }
}

/// The continuity limit of each session of a recording, by session index.
pub fn continuity_of(sessions: &[crate::store::SessionInfo]) -> Vec<Continuity> {
    sessions
        .iter()
        .map(|s| Continuity::for_interval(s.interval_us as i64))
        .collect()
}

/// The lag a read shows, given the beats of its cluster ordered by seq. Only beats of
/// `session` are matched; `continuity` is that session's. Failed reads are not asked
/// here (they have an outcome, not a lag); a successful read always gets a [`Lag`].
pub fn lag_of(
    beats: &[BeatTimes],
    session: u32,
    continuity: Continuity,
    obs: &Observation,
) -> Option<Lag> {
    let seq = obs.seq?;
    let found = beats.binary_search_by_key(&seq, |b| b.seq).ok();
    Some(match found {
        Some(i) if beats[i].session == session => lag_at(beats, i, continuity, obs),
        Some(i) if beats.iter().any(|b| b.session == session && b.seq > seq) => {
            let earlier = lag_at_held(beats, i, i + 1, continuity, obs).lag;
            across_sessions(earlier, unmatched(beats, session, seq, obs))
        }
        _ => unmatched(beats, session, seq, obs),
    })
}

/// The lag of a read that showed a beat of an earlier session of the same store (a
/// recorder restarted while the replica lagged): `earlier`, what that session's beats
/// say of it ([`lag_at_held`]: bounded when the replica lacks a later beat of that
/// session, acknowledged before the read), and `floor`, what this session's say
/// ([`unmatched`]: it lacks every beat acknowledged before the read). A replica
/// stalled 11 s with the recorder restarted 5 s in read "at least" 0 from the restart
/// on; the earlier session's beats give the true 11 s.
pub(crate) fn across_sessions(earlier: Lag, floor: Lag) -> Lag {
    match (earlier, floor) {
        (Lag::Bounded { .. }, _) => earlier,
        (Lag::AtLeast { lo_us }, Lag::AtLeast { lo_us: floor_us }) => Lag::AtLeast {
            lo_us: lo_us.max(floor_us),
        },
        // It lacks a beat of the earlier session acknowledged before the read.
        (Lag::AtLeast { lo_us }, _) if lo_us > 0 => earlier,
        _ => floor,
    }
}

/// The lag of a read that showed `beats[i]`, a beat of its own session.
pub fn lag_at(beats: &[BeatTimes], i: usize, continuity: Continuity, obs: &Observation) -> Lag {
    lag_at_held(beats, i, i + 1, continuity, obs).lag
}

/// What [`lag_at_held`] found.
pub(crate) struct Held {
    pub(crate) lag: Lag,
    /// The beats given settle the lag: false when a search ran past the last of them
    /// without an answer, so that beats after it could change it.
    pub(crate) settled: bool,
    /// The beats from the search's start up to this index are never acknowledged (or
    /// another session's): no read of the same beat needs to look at them again.
    pub(crate) unacked_to: usize,
}

/// [`lag_at`] over beats that may stop short of the cluster's last beat, looking for
/// the next acknowledgement from `from` (> `i`) on: the beats between are known never
/// to be acknowledged ([`Held::unacked_to`] of an earlier read of the same beat). A
/// primary down for hours leaves hours of failed beats after the one its replicas
/// show, which every read would otherwise search again.
pub(crate) fn lag_at_held(
    beats: &[BeatTimes],
    i: usize,
    from: usize,
    continuity: Continuity,
    obs: &Observation,
) -> Held {
    let k = &beats[i];
    // The first later beat acknowledged before the read began: beats sent after the
    // read began cannot have been, which ends the search.
    let (mut next_ack, mut settled, mut unacked_to) = (None, false, beats.len());
    for (j, b) in beats.iter().enumerate().skip(from) {
        if b.session != k.session {
            continue;
        }
        if b.t_send_us > obs.r_start_us {
            (settled, unacked_to) = (true, unacked_to.min(j));
            break;
        }
        if let Some(ack) = b.t_ack_us() {
            unacked_to = unacked_to.min(j);
            if ack <= obs.r_start_us {
                (next_ack, settled) = (Some(ack), true);
                break;
            }
        }
    }
    let (mut lo_us, hi_us) = bounds(obs.r_start_us, obs.r_end_us, k.t_send_us, next_ack);
    // The beat's own row event from the binary log stream: the replica wrote it within
    // the span, when it was the newest change the replica had, so it then lagged at
    // least from the beat's acknowledgement (docs/binlog-probe.md).
    if obs.probe == Probe::BinlogEvent
        && let Some(ack) = k.t_ack_us()
    {
        lo_us = lo_us.max(obs.r_start_us - ack).min(hi_us);
    }
    // Continuous when the read began by the deadline, or a later beat sent by then was
    // acknowledged by then (a later one sent after it ends the search).
    let deadline = k.t_send_us + continuity.limit_us;
    let continuous = obs.r_start_us <= deadline || {
        let found = beats[i + 1..].iter().find(|b| {
            b.session == k.session
                && (b.t_send_us > deadline || b.t_ack_us().is_some_and(|ack| ack <= deadline))
        });
        settled &= found.is_some();
        found.is_some_and(|b| b.t_send_us <= deadline)
    };
    let lag = if continuous {
        Lag::Bounded { lo_us, hi_us }
    } else {
        Lag::AtLeast { lo_us }
    };
    Held {
        lag,
        settled,
        unacked_to,
    }
}

/// The lag of a read whose seq is not a beat of its session: older than the session's
/// first beat (a restart's first read racing its first beat), or foreign.
pub(crate) fn unmatched(beats: &[BeatTimes], session: u32, seq: u64, obs: &Observation) -> Lag {
    let mut mine = beats.iter().filter(|b| b.session == session);
    let Some(first) = mine.next() else {
        return Lag::Unknown(Unknown::BeforeFirstBeat);
    };
    if seq > first.seq {
        return Lag::Unknown(Unknown::ForeignBeat { seq });
    }
    // It lacks every beat of this session acknowledged before the read.
    let first_ack = std::iter::once(first)
        .chain(mine)
        .take_while(|b| b.t_send_us <= obs.r_start_us)
        .filter_map(BeatTimes::t_ack_us)
        .find(|&ack| ack <= obs.r_start_us);
    match first_ack {
        Some(ack) => Lag::AtLeast {
            lo_us: (obs.r_start_us - ack).max(0),
        },
        None => Lag::Unknown(Unknown::BeforeFirstBeat),
    }
}

/// [`lag_of`] for observations taken in time order: it remembers where the previous
/// lookup landed, so a whole replica costs about one pass over the beats instead of a
/// binary search per observation. Gives the same answers as [`lag_of`].
#[derive(Debug, Clone)]
pub struct BeatCursor<'a> {
    beats: &'a [BeatTimes],
    /// Each session's continuity limit, by session index.
    continuity: &'a [Continuity],
    /// Index of the beat the previous observation saw.
    at: usize,
}

impl<'a> BeatCursor<'a> {
    /// `beats` must be ordered by `seq` (as the store's scan returns them);
    /// `continuity` is indexed by session (see [`continuity_of`]).
    pub fn new(beats: &'a [BeatTimes], continuity: &'a [Continuity]) -> Self {
        debug_assert!(beats.windows(2).all(|w| w[0].seq < w[1].seq));
        BeatCursor {
            beats,
            continuity,
            at: 0,
        }
    }

    /// The lag of a read of `session`, as [`lag_of`] with that session's continuity
    /// (`Continuity::for_interval(0)` for a session the recording does not describe).
    pub fn lag(&mut self, session: u32, obs: &Observation) -> Option<Lag> {
        let continuity = session_continuity(self.continuity, session);
        let seq = obs.seq?;
        let beats = self.beats;
        let Some(i) = find_seq(beats, self.at, seq) else {
            return lag_of(beats, session, continuity, obs);
        };
        self.at = i;
        if beats[i].session != session {
            return lag_of(beats, session, continuity, obs);
        }
        Some(lag_at(beats, i, continuity, obs))
    }
}

/// Session `session`'s continuity limit (`Continuity::for_interval(0)` for a session
/// the recording does not describe).
pub(crate) fn session_continuity(continuity: &[Continuity], session: u32) -> Continuity {
    continuity
        .get(session as usize)
        .copied()
        .unwrap_or(Continuity::for_interval(0))
}

/// Index of beat `seq` in `beats` (ordered by seq), looked for from `at` on, where
/// reads in time order usually find it a few beats on; else by a search.
pub(crate) fn find_seq(beats: &[BeatTimes], at: usize, seq: u64) -> Option<usize> {
    let mut i = at.min(beats.len());
    let mut steps = 0;
    while i < beats.len() && beats[i].seq < seq && steps < 16 {
        i += 1;
        steps += 1;
    }
    if beats.get(i).is_some_and(|b| b.seq == seq) {
        return Some(i);
    }
    beats.binary_search_by_key(&seq, |b| b.seq).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// check's beat sent at 0, acknowledged at 2 ms: shown at once (lag at most the
    /// read's end), shown after a miss at 5 ms (at least 3 ms), never shown (at least
    /// the time from the ack to the last miss).
    #[test]
    fn a_check_sighting_bounds_its_lag() {
        use crate::samples::CheckSighting;
        let s = |missed, shown| CheckSighting {
            t_send_us: 0,
            t_ack_us: 2_000,
            missed_after_ack_us: missed,
            shown,
        };
        assert_eq!(
            sighting_lag(&s(None, Some((2_100, 2_400)))),
            Lag::Bounded {
                lo_us: 0,
                hi_us: 2_400
            }
        );
        assert_eq!(
            sighting_lag(&s(Some(5_000), Some((15_000, 15_300)))),
            Lag::Bounded {
                lo_us: 3_000,
                hi_us: 15_300
            }
        );
        assert_eq!(
            sighting_lag(&s(Some(6_002_000), None)),
            Lag::AtLeast { lo_us: 6_000_000 }
        );
        assert_eq!(sighting_lag(&s(None, None)), Lag::AtLeast { lo_us: 0 });
    }
    use crate::samples::{Beat, Outcome};

    pub(crate) const INTERVAL: i64 = 10_000;

    pub(crate) fn cont() -> Continuity {
        Continuity::for_interval(INTERVAL)
    }

    pub(crate) fn beat(seq: u64, send: i64, ack: Option<i64>) -> BeatTimes {
        BeatTimes::new(seq, send, ack, 1)
    }

    pub(crate) fn full_beat(seq: u64, send: i64, ack: Option<i64>) -> Beat {
        Beat {
            seq,
            t_send_us: send,
            t_done_us: ack.unwrap_or(send + 2_000_000),
            outcome: if ack.is_some() {
                Outcome::Ok
            } else {
                Outcome::Timeout
            },
            reason: None,
        }
    }

    pub(crate) fn obs(seq: Option<u64>, start: i64, end: i64) -> Observation {
        Observation {
            r_start_us: start,
            r_end_us: end,
            seq,
            outcome: if seq.is_some() {
                Outcome::Ok
            } else {
                Outcome::Refused
            },
            reason: None,
            follow_up: false,
            probe: Default::default(),
        }
    }

    pub(crate) fn lag(beats: &[BeatTimes], o: &Observation) -> Option<Lag> {
        lag_of(beats, 1, cont(), o)
    }

    /// Beats every 10 ms from `from` to `to` (seq = k), acknowledged 300 µs later.
    pub(crate) fn steady(from: u64, to: u64) -> Vec<BeatTimes> {
        (from..=to)
            .map(|k| beat(k, k as i64 * INTERVAL, Some(k as i64 * INTERVAL + 300)))
            .collect()
    }

    #[test]
    fn caught_up_replica_reads_under_a_millisecond() {
        // Beat 2 sent at 20_000, acked at 20_300; the replica read at 20_310..20_450.
        let beats = steady(1, 2);
        let l = lag(&beats, &obs(Some(2), 20_310, 20_450)).unwrap();
        assert_eq!(
            l,
            Lag::Bounded {
                lo_us: 0,
                hi_us: 450
            }
        );
        assert_eq!(l.point_us(), Some(225));
        assert_eq!(l.judged_us(), Some(225));
    }

    #[test]
    fn lagging_replica_has_both_bounds() {
        let beats = steady(1, 100);
        // Shows beat 3 at t = 1.0 s.
        let l = lag(&beats, &obs(Some(3), 1_000_600, 1_000_900)).unwrap();
        assert_eq!(
            l,
            Lag::Bounded {
                lo_us: 1_000_600 - 40_300,
                hi_us: 1_000_900 - 30_000
            }
        );
    }

    #[test]
    fn a_beats_own_binlog_event_bounds_from_its_acknowledgement() {
        let beats = steady(1, 100);
        // Beat 3's row event arrives at t = 1.0 s; the stream delivers within 300 µs.
        let mut o = obs(Some(3), 1_000_600, 1_000_900);
        o.probe = Probe::BinlogEvent;
        // The replica wrote beat 3 within the span, beat 3 then its newest change:
        // at least since beat 3's acknowledgement, not only since beat 4's.
        assert_eq!(
            lag(&beats, &o).unwrap(),
            Lag::Bounded {
                lo_us: 1_000_600 - 30_300,
                hi_us: 1_000_900 - 30_000
            }
        );
        // Any other message of the stream is a read: the rule of the next beat.
        o.probe = Probe::BinlogIdle;
        assert_eq!(
            lag(&beats, &o),
            lag(&beats, &obs(Some(3), 1_000_600, 1_000_900))
        );
        // A caught-up replica: the event came before the next beat was sent.
        let mut o = obs(Some(2), 20_310, 20_450);
        o.probe = Probe::BinlogEvent;
        assert_eq!(
            lag(&beats, &o).unwrap(),
            Lag::Bounded {
                lo_us: 10,
                hi_us: 450
            }
        );
    }

    #[test]
    fn a_frozen_primary_gives_no_upper_bound_and_no_invented_lag() {
        // Beats until 100 (t = 1 s), then the primary freezes: beats time out.
        let mut beats = steady(1, 100);
        beats.extend((101..=105).map(|k| beat(k, 1_000_000 + (k as i64 - 100) * 200_000, None)));
        // 5 s later the replica still shows 100: nothing is known but lag >= 0.
        let l = lag(&beats, &obs(Some(100), 6_000_000, 6_000_200)).unwrap();
        assert_eq!(l, Lag::AtLeast { lo_us: 0 });
        assert_eq!(l.point_us(), None);
        assert_eq!(l.judged_us(), Some(0));
        // The primary is back at 8 s; the replica has not applied beat 200 yet.
        beats.push(beat(200, 8_000_000, Some(8_000_300)));
        beats.push(beat(201, 8_010_000, Some(8_010_300)));
        let l = lag(&beats, &obs(Some(100), 8_000_400, 8_000_600)).unwrap();
        assert_eq!(l, Lag::AtLeast { lo_us: 100 }, "lo only: 100 µs, not 3.5 s");
        // Once it shows a beat after the outage, the bounds are back.
        let l = lag(&beats, &obs(Some(200), 8_000_400, 8_000_600)).unwrap();
        assert_eq!(
            l,
            Lag::Bounded {
                lo_us: 0,
                hi_us: 600
            }
        );
    }

    #[test]
    fn a_replica_still_behind_after_an_outage_shows_its_real_lag() {
        // The replica stalled at beat 50 (0.5 s); the primary was down from 1 s to 3 s.
        let mut beats = steady(1, 100);
        beats.extend(
            (300..=400).map(|k| beat(k, k as i64 * INTERVAL, Some(k as i64 * INTERVAL + 300))),
        );
        // At 3.5 s it still shows 50: it lacks beat 51, acked at 0.51 s.
        let l = lag(&beats, &obs(Some(50), 3_500_000, 3_500_200)).unwrap();
        assert_eq!(
            l,
            Lag::Bounded {
                lo_us: 3_500_000 - 510_300,
                hi_us: 3_500_200 - 500_000
            },
            "the writer went on after beat 50, so both bounds hold"
        );
    }

    #[test]
    fn one_failed_beat_keeps_the_upper_bound() {
        let mut beats = steady(1, 10);
        beats[5] = beat(6, 60_000, None);
        let l = lag(&beats, &obs(Some(5), 75_000, 75_200)).unwrap();
        assert_eq!(
            l,
            Lag::Bounded {
                lo_us: 75_000 - 70_300,
                hi_us: 75_200 - 50_000
            }
        );
    }

    #[test]
    fn reads_of_other_sessions_and_foreign_seqs_are_never_matched() {
        // Session 1 wrote 1..=10; session 2 writes 1000.. after a 30 s downtime.
        let mut beats = steady(1, 10);
        beats.extend((1000..=1005).map(|k| {
            BeatTimes::new(
                k,
                30_000_000 + k as i64 * INTERVAL,
                Some(30_000_300 + k as i64 * INTERVAL),
                2,
            )
        }));
        let first_ack = 30_000_300 + 1000 * INTERVAL;
        // Session 2's first read races its first beat and shows session 1's last seq.
        let before = obs(Some(10), first_ack - 100, first_ack);
        assert_eq!(
            lag_of(&beats, 2, cont(), &before),
            Some(Lag::Unknown(Unknown::BeforeFirstBeat))
        );
        let after = obs(Some(10), first_ack + 100, first_ack + 300);
        assert_eq!(
            lag_of(&beats, 2, cont(), &after),
            Some(Lag::AtLeast { lo_us: 100 }),
            "bounded by this session's beats, never by the downtime"
        );
        // A check's seq (UTC µs) and a seq between beats are foreign.
        let foreign = obs(
            Some(1_790_000_000_000_000),
            first_ack + 100,
            first_ack + 300,
        );
        assert_eq!(
            lag_of(&beats, 2, cont(), &foreign),
            Some(Lag::Unknown(Unknown::ForeignBeat {
                seq: 1_790_000_000_000_000
            }))
        );
        assert_eq!(
            lag_of(&beats, 1, cont(), &obs(Some(500), 1, 2)),
            Some(Lag::Unknown(Unknown::ForeignBeat { seq: 500 }))
        );
        // Seq 0 (a fresh row) before any beat.
        assert_eq!(
            lag_of(&beats, 1, cont(), &obs(Some(0), 5, 6)),
            Some(Lag::Unknown(Unknown::BeforeFirstBeat))
        );
        assert_eq!(lag_of(&beats, 1, cont(), &obs(None, 5, 6)), None);
    }

    /// Finding 6: replica stalled on beat 3 of session 1 when the recorder restarted;
    /// session 2's reads still show beat 3. The earlier session's beat 4, acknowledged
    /// long before, bounds the lag: the true lag, not "at least" since the restart.
    #[test]
    fn a_read_of_an_earlier_sessions_beat_is_bounded_by_that_session() {
        let mut beats = steady(1, 10);
        beats.extend((1000..=1005).map(|k| {
            BeatTimes::new(
                k,
                30_000_000 + k as i64 * INTERVAL,
                Some(30_000_300 + k as i64 * INTERVAL),
                2,
            )
        }));
        let t = 30_000_300 + 1003 * INTERVAL;
        let read = obs(Some(3), t, t + 200);
        let ack4 = beats[3].t_ack_us().unwrap();
        assert_eq!(
            lag_of(&beats, 2, cont(), &read),
            Some(Lag::Bounded {
                lo_us: t - ack4,
                hi_us: t + 200 - beats[2].t_send_us
            })
        );
        assert!(t - ack4 > 30_000_000, "the stall, not the restart");
    }

    #[test]
    fn a_later_ack_after_the_read_is_ignored() {
        let beats = [beat(1, 0, Some(100)), beat(2, 10_000, Some(15_000))];
        let l = lag(&beats, &obs(Some(1), 12_000, 12_300)).unwrap();
        assert_eq!(
            l,
            Lag::Bounded {
                lo_us: 0,
                hi_us: 12_300
            }
        );
    }

    #[test]
    fn tighter_prefers_bounded_then_narrow_then_high_floor() {
        let b = |lo, hi| Lag::Bounded {
            lo_us: lo,
            hi_us: hi,
        };
        let a = |lo| Lag::AtLeast { lo_us: lo };
        let u = Lag::Unknown(Unknown::BeforeFirstBeat);
        assert_eq!(b(0, 10_000).tighter(b(0, 300)), b(0, 300));
        assert_eq!(b(0, 300).tighter(b(0, 10_000)), b(0, 300));
        assert_eq!(a(5).tighter(b(0, 9)), b(0, 9));
        assert_eq!(a(5).tighter(a(7)), a(7));
        assert_eq!(u.tighter(a(1)), a(1));
        assert_eq!(a(1).tighter(u), a(1));
    }

    #[test]
    fn the_cursor_agrees_with_the_lookup_in_any_order() {
        // Beats 1..=40 every 100 µs; every third one failed; two sessions.
        let beats: Vec<BeatTimes> = (1..=40)
            .map(|k| {
                let ack = (k % 3 != 0).then_some(k as i64 * 100 + 7);
                BeatTimes::new(k, k as i64 * 100, ack, if k <= 20 { 1 } else { 2 })
            })
            .collect();
        let c = Continuity::for_interval(100);
        let cs = [c, c, c];
        let mut cursor = BeatCursor::new(&beats, &cs);
        let seen = [1, 1, 2, 5, 5, 9, 30, 31, 3, 40, 41, 0, 39, 39, 12, 22];
        for session in [1, 2] {
            for (n, &seq) in seen.iter().enumerate() {
                let o = obs(Some(seq), 3000 + n as i64 * 50, 3010 + n as i64 * 50);
                assert_eq!(
                    cursor.lag(session, &o),
                    lag_of(&beats, session, c, &o),
                    "seq {seq} session {session}"
                );
            }
        }
        assert_eq!(cursor.lag(1, &obs(None, 1, 2)), None);
    }
}
