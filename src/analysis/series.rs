//! Analysis step 1: a replica's observations become lag points, one per probe round.
//!
//! The reader re-reads at once when a read raced the newest beat (up to three times), so
//! a round can hold a burst of reads a few hundred microseconds apart. They measure the
//! same moment; the round keeps the read with the tightest bounds, so percentiles count
//! each round once and use its best measurement.

use super::lag::BeatCursor;
use crate::samples::{Beat, Observation, Outcome};

/// Reads that start less than this after the previous read ended belong to its round.
pub const BURST_GAP_US: i64 = 1_000;

/// The lag of one probe round, in µs, at `t_us` (the middle of the kept read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagPoint {
    pub t_us: i64,
    pub lo_us: i64,
    pub hi_us: i64,
}

impl LagPoint {
    /// The point estimate: the middle of the bounds.
    pub fn lag_us(&self) -> i64 {
        self.lo_us + (self.hi_us - self.lo_us) / 2
    }

    pub fn width_us(&self) -> i64 {
        self.hi_us - self.lo_us
    }
}

/// A read that failed, at the start of the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedRead {
    pub t_us: i64,
    pub outcome: Outcome,
}

/// A replica's recording, reduced to what the analysis uses.
#[derive(Debug, Clone, Default)]
pub struct LagSeries {
    /// In time order.
    pub points: Vec<LagPoint>,
    /// In time order.
    pub failures: Vec<FailedRead>,
    /// Reads, failed or not.
    pub reads: usize,
    /// Successful reads whose beat the recording does not hold (or seq 0 before the first
    /// beat): they show the replica was reachable but bound nothing.
    pub unbounded: u64,
}

/// Lag points of one replica from its cluster's beats (ordered by seq) and its
/// observations (in time order).
pub fn lag_series(beats: &[Beat], observations: &[Observation]) -> LagSeries {
    let mut cursor = BeatCursor::new(beats);
    let mut out = LagSeries {
        points: Vec::with_capacity(observations.len()),
        reads: observations.len(),
        ..Default::default()
    };
    // End of the previous read, when it produced the last point.
    let mut prev_end: Option<i64> = None;
    for obs in observations {
        if obs.outcome != Outcome::Ok {
            out.failures.push(FailedRead {
                t_us: obs.r_start_us,
                outcome: obs.outcome,
            });
            prev_end = None;
            continue;
        }
        let Some(b) = cursor.lag(obs) else {
            out.unbounded += 1;
            prev_end = None;
            continue;
        };
        let point = LagPoint {
            t_us: obs.r_start_us + (obs.r_end_us - obs.r_start_us) / 2,
            lo_us: b.lo_us,
            hi_us: b.hi_us,
        };
        let same_round = prev_end.is_some_and(|end| obs.r_start_us - end < BURST_GAP_US);
        prev_end = Some(obs.r_end_us);
        match out.points.last_mut() {
            Some(last) if same_round => {
                if point.width_us() < last.width_us() {
                    *last = point;
                }
            }
            _ => out.points.push(point),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(seq: u64, send: i64) -> Beat {
        Beat {
            seq,
            t_send_us: send,
            t_done_us: send + 300,
            outcome: Outcome::Ok,
            reason: None,
        }
    }

    fn read(seq: Option<u64>, start: i64, end: i64) -> Observation {
        Observation {
            r_start_us: start,
            r_end_us: end,
            seq,
            outcome: if seq.is_some() {
                Outcome::Ok
            } else {
                Outcome::Timeout
            },
            reason: None,
        }
    }

    #[test]
    fn a_burst_of_follow_up_reads_keeps_the_tightest_bounds() {
        let beats: Vec<Beat> = (1..=3).map(|k| beat(k, k as i64 * 10_000)).collect();
        // Beat 2 acked at 20_300; the first read raced it and saw 1, the follow-up saw 2.
        let obs = [
            read(Some(2), 20_310, 20_500),
            read(Some(2), 30_310, 30_500),
            read(Some(2), 30_520, 30_700),
            read(None, 40_000, 41_000),
            read(Some(7), 50_000, 50_100),
        ];
        let s = lag_series(&beats, &obs);
        assert_eq!(s.reads, 5);
        assert_eq!(s.failures.len(), 1);
        assert_eq!(s.unbounded, 1);
        assert_eq!(s.points.len(), 2);
        // The second round's reads both saw 2 while 3 (acked 30_300) existed; the
        // follow-up's bounds are 10 µs narrower (its read took less time), so it wins.
        assert_eq!(
            s.points[1],
            LagPoint {
                t_us: 30_610,
                lo_us: 30_520 - 30_300,
                hi_us: 30_700 - 20_000
            }
        );
    }

    #[test]
    fn follow_ups_replace_a_wide_read() {
        let beats: Vec<Beat> = (1..=2).map(|k| beat(k, k as i64 * 10_000)).collect();
        // Beat 2 acked at 20_300. A read at 20_310 saw 1 (wide: 1 interval), the
        // follow-up at 20_420 saw 2 (narrow).
        let obs = [read(Some(1), 20_310, 20_400), read(Some(2), 20_420, 20_500)];
        let s = lag_series(&beats, &obs);
        assert_eq!(s.points.len(), 1);
        assert_eq!(
            s.points[0],
            LagPoint {
                t_us: 20_460,
                lo_us: 0,
                hi_us: 500
            }
        );
    }
}
