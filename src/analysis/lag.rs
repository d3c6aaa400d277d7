//! Lag with error bounds, from beats and one observation (DESIGN.md section 2).
//!
//! If a replica shows beat `k` during a read in `[r_start, r_end]`, it has the primary's
//! state as of `t_send(k)` (the commit happened after the send), so
//! `lag_hi = r_end - t_send(k)`. If a later beat `j > k` is known to have committed by
//! `t_ack(j)` and the replica does not show it, it lacks the state as of `t_ack(j)`, so
//! `lag_lo = r_start - t_ack(j)` (taking the earliest such `j`, and 0 when there is none
//! yet). The true lag lies in `[lag_lo, lag_hi]`; the point estimate is the middle.

use crate::samples::{Beat, BeatTimes, Observation};

/// Lag at the moment of one read, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagBounds {
    pub lo_us: i64,
    pub hi_us: i64,
}

impl LagBounds {
    /// The point estimate: the middle of the bounds.
    pub fn point_us(&self) -> i64 {
        self.lo_us + (self.hi_us - self.lo_us) / 2
    }

    /// Width of the bounds.
    pub fn width_us(&self) -> i64 {
        self.hi_us - self.lo_us
    }
}

/// The bounds for a read in `[r_start_us, r_end_us]` that showed a beat sent at
/// `t_send_k_us`, given the acknowledgement of the first later beat known to have
/// committed (`None` when no later beat has committed).
pub fn bounds(
    r_start_us: i64,
    r_end_us: i64,
    t_send_k_us: i64,
    next_ack_us: Option<i64>,
) -> LagBounds {
    let hi_us = (r_end_us - t_send_k_us).max(0);
    let lo_us = next_ack_us
        .map_or(0, |ack| (r_start_us - ack).max(0))
        .min(hi_us);
    LagBounds { lo_us, hi_us }
}

/// The bounds of an observation that showed `seen`, given the beats after it in `seq`
/// order: the first one known to have committed before the read gives the lower bound.
fn observation_bounds<'a>(
    obs: &Observation,
    seen: &BeatTimes,
    later: impl Iterator<Item = &'a BeatTimes>,
) -> LagBounds {
    let next_ack = later
        .filter_map(BeatTimes::t_ack_us)
        .next()
        .filter(|&ack| ack <= obs.r_start_us);
    bounds(obs.r_start_us, obs.r_end_us, seen.t_send_us, next_ack)
}

/// Beats of one cluster ordered by `seq`, for looking up what an observation saw.
#[derive(Debug, Clone, Copy)]
pub struct BeatIndex<'a> {
    beats: &'a [BeatTimes],
}

impl<'a> BeatIndex<'a> {
    /// `beats` must be ordered by `seq` (as the store's scan returns them).
    pub fn new(beats: &'a [BeatTimes]) -> Self {
        debug_assert!(beats.windows(2).all(|w| w[0].seq < w[1].seq));
        BeatIndex { beats }
    }

    /// Lag bounds of an observation; `None` when it saw nothing (failed read), saw no
    /// beat yet (`seq` 0 after `init`), or saw a beat this recording does not hold.
    pub fn lag(&self, obs: &Observation) -> Option<LagBounds> {
        let i = self.beats.binary_search_by_key(&obs.seq?, |b| b.seq).ok()?;
        Some(observation_bounds(
            obs,
            &self.beats[i],
            self.beats[i + 1..].iter(),
        ))
    }
}

/// [`BeatIndex::lag`] for observations taken in time order: it remembers where the
/// previous lookup landed, so a whole replica costs one pass over the beats instead of
/// a binary search per observation. Gives the same answers as [`BeatIndex::lag`].
#[derive(Debug, Clone)]
pub struct BeatCursor<'a> {
    beats: &'a [BeatTimes],
    /// Index of the beat the previous observation saw.
    at: usize,
    /// Index of the first acknowledged beat after `at` (`beats.len()` when none).
    next_ok: usize,
}

impl<'a> BeatCursor<'a> {
    /// `beats` must be ordered by `seq` (as the store's scan returns them).
    pub fn new(beats: &'a [BeatTimes]) -> Self {
        debug_assert!(beats.windows(2).all(|w| w[0].seq < w[1].seq));
        let mut c = BeatCursor {
            beats,
            at: 0,
            next_ok: 0,
        };
        c.next_ok = c.first_ok_after(0);
        c
    }

    fn first_ok_after(&self, i: usize) -> usize {
        let mut j = i + 1;
        while j < self.beats.len() && self.beats[j].t_ack_us().is_none() {
            j += 1;
        }
        j.min(self.beats.len())
    }

    /// Lag bounds of an observation, as [`BeatIndex::lag`].
    pub fn lag(&mut self, obs: &Observation) -> Option<LagBounds> {
        let seq = obs.seq?;
        let beats = self.beats;
        if beats.get(self.at).is_none_or(|b| b.seq != seq) {
            // Usually a few beats ahead: step, then fall back to a search.
            let mut i = self.at;
            let mut steps = 0;
            while i < beats.len() && beats[i].seq < seq && steps < 16 {
                i += 1;
                steps += 1;
            }
            if beats.get(i).is_none_or(|b| b.seq != seq) {
                i = beats.binary_search_by_key(&seq, |b| b.seq).ok()?;
            }
            if i < self.at || self.next_ok <= i {
                self.next_ok = self.first_ok_after(i);
            }
            self.at = i;
        }
        let next_ack = beats
            .get(self.next_ok)
            .and_then(BeatTimes::t_ack_us)
            .filter(|&ack| ack <= obs.r_start_us);
        Some(bounds(
            obs.r_start_us,
            obs.r_end_us,
            beats[self.at].t_send_us,
            next_ack,
        ))
    }
}

/// The last beats of a cluster, for computing lag live as observations arrive. Holds at
/// most `capacity` beats; an observation of an older beat has no live lag (the offline
/// analysis, which has every beat, still computes it).
#[derive(Debug, Clone)]
pub struct RecentBeats {
    beats: std::collections::VecDeque<BeatTimes>,
    capacity: usize,
}

impl RecentBeats {
    pub fn new(capacity: usize) -> Self {
        RecentBeats {
            beats: std::collections::VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
        }
    }

    /// Adds a beat; beats arrive in `seq` order from one writer.
    pub fn push(&mut self, beat: Beat) {
        if self.beats.back().is_some_and(|b| b.seq >= beat.seq) {
            return;
        }
        if self.beats.len() == self.capacity {
            self.beats.pop_front();
        }
        self.beats.push_back(BeatTimes::from(&beat));
    }

    /// Same as [`BeatIndex::lag`], over the beats held.
    pub fn lag(&self, obs: &Observation) -> Option<LagBounds> {
        let i = self.beats.binary_search_by_key(&obs.seq?, |b| b.seq).ok()?;
        Some(observation_bounds(
            obs,
            &self.beats[i],
            self.beats.range(i + 1..),
        ))
    }

    /// The lower bound of lag (µs) for a read that shows a beat older than every beat
    /// held (written before the recorder started, or long ago): the replica lacks the
    /// first held beat that had committed when the read started. `None` when the read
    /// shows a held or newer beat, or no held beat had committed by then.
    pub fn floor_us(&self, obs: &Observation) -> Option<i64> {
        let first = self.beats.front()?;
        if obs.seq? >= first.seq {
            return None;
        }
        let ack = self
            .beats
            .iter()
            .filter_map(BeatTimes::t_ack_us)
            .next()
            .filter(|&ack| ack <= obs.r_start_us)?;
        Some((obs.r_start_us - ack).max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::Outcome;

    fn full_beat(seq: u64, send: i64, ack: Option<i64>) -> Beat {
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

    fn beat(seq: u64, send: i64, ack: Option<i64>) -> BeatTimes {
        BeatTimes::from(&full_beat(seq, send, ack))
    }

    fn obs(seq: Option<u64>, start: i64, end: i64) -> Observation {
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
        }
    }

    #[test]
    fn caught_up_replica_reads_under_a_millisecond() {
        // Beat 2 sent at 1000, acked at 1300; the replica read at 1310..1450 and saw 2.
        let beats = [beat(1, 0, Some(300)), beat(2, 1000, Some(1300))];
        let b = BeatIndex::new(&beats)
            .lag(&obs(Some(2), 1310, 1450))
            .unwrap();
        assert_eq!(
            b,
            LagBounds {
                lo_us: 0,
                hi_us: 450
            }
        );
        assert_eq!(b.point_us(), 225);
    }

    #[test]
    fn lagging_replica_has_both_bounds() {
        // Every 100 ms a beat; the replica shows beat 3 at t = 1.0 s.
        let beats: Vec<BeatTimes> = (1..=10)
            .map(|k| beat(k, k as i64 * 100_000, Some(k as i64 * 100_000 + 500)))
            .collect();
        let b = BeatIndex::new(&beats)
            .lag(&obs(Some(3), 1_000_600, 1_000_900))
            .unwrap();
        assert_eq!(b.hi_us, 1_000_900 - 300_000);
        assert_eq!(b.lo_us, 1_000_600 - 400_500);
        assert!(b.lo_us <= b.point_us() && b.point_us() <= b.hi_us);
    }

    #[test]
    fn failed_beats_do_not_tighten_the_lower_bound() {
        // The primary is unreachable after beat 2: later beats time out.
        let beats = [
            beat(1, 0, Some(300)),
            beat(2, 100_000, Some(100_300)),
            beat(3, 200_000, None),
            beat(4, 300_000, None),
        ];
        let b = BeatIndex::new(&beats)
            .lag(&obs(Some(2), 5_000_000, 5_000_200))
            .unwrap();
        assert_eq!(b.lo_us, 0);
        assert_eq!(b.hi_us, 4_900_200);
    }

    #[test]
    fn unknown_beats_and_failed_reads_have_no_lag() {
        let beats = [beat(5, 0, Some(10))];
        let idx = BeatIndex::new(&beats);
        assert_eq!(idx.lag(&obs(None, 1, 2)), None);
        assert_eq!(idx.lag(&obs(Some(0), 1, 2)), None);
        assert_eq!(idx.lag(&obs(Some(4), 1, 2)), None);
    }

    #[test]
    fn recent_beats_agree_with_the_index_and_forget_old_beats() {
        let beats: Vec<BeatTimes> = (1..=10)
            .map(|k| beat(k, k as i64 * 100, Some(k as i64 * 100 + 5)))
            .collect();
        let mut recent = RecentBeats::new(4);
        for k in 1..=10 {
            recent.push(full_beat(k, k as i64 * 100, Some(k as i64 * 100 + 5)));
        }
        let o = obs(Some(8), 1000, 1010);
        assert_eq!(recent.lag(&o), BeatIndex::new(&beats).lag(&o));
        assert_eq!(recent.lag(&obs(Some(3), 1000, 1010)), None);
    }

    #[test]
    fn a_read_older_than_every_held_beat_has_a_floor() {
        let mut recent = RecentBeats::new(4);
        assert_eq!(recent.floor_us(&obs(Some(1), 1000, 1010)), None, "no beats");
        recent.push(full_beat(10, 100, None));
        recent.push(full_beat(11, 200, Some(250)));
        recent.push(full_beat(12, 300, Some(310)));
        // Lacks beat 11, acknowledged at 250 (beat 10 failed).
        assert_eq!(recent.floor_us(&obs(Some(3), 1000, 1010)), Some(750));
        // Before the first acknowledgement nothing is known.
        assert_eq!(recent.floor_us(&obs(Some(3), 240, 245)), None);
        // A held beat has bounds instead.
        assert_eq!(recent.floor_us(&obs(Some(11), 1000, 1010)), None);
        assert_eq!(recent.floor_us(&obs(None, 1000, 1010)), None);
    }

    #[test]
    fn a_later_ack_after_the_read_is_ignored() {
        let beats = [beat(1, 0, Some(100)), beat(2, 1000, Some(5000))];
        let b = BeatIndex::new(&beats)
            .lag(&obs(Some(1), 1200, 1300))
            .unwrap();
        assert_eq!(
            b,
            LagBounds {
                lo_us: 0,
                hi_us: 1300
            }
        );
    }

    #[test]
    fn the_cursor_agrees_with_the_index_in_any_order() {
        // Beats 1..=40 every 100 µs; every third one failed.
        let beats: Vec<BeatTimes> = (1..=40)
            .map(|k| {
                let ack = (k % 3 != 0).then_some(k as i64 * 100 + 7);
                beat(k, k as i64 * 100, ack)
            })
            .collect();
        let index = BeatIndex::new(&beats);
        let mut cursor = BeatCursor::new(&beats);
        let seen = [1, 1, 2, 5, 5, 9, 30, 31, 3, 40, 41, 0, 39, 39, 12];
        for (n, &seq) in seen.iter().enumerate() {
            let o = obs(Some(seq), 3000 + n as i64 * 50, 3010 + n as i64 * 50);
            assert_eq!(cursor.lag(&o), index.lag(&o), "seq {seq}");
        }
        assert_eq!(cursor.lag(&obs(None, 1, 2)), None);
    }
}
