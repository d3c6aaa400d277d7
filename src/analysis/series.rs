//! Analysis step 1: a replica's observations become lag points, one per probe round.
//!
//! The reader re-reads at once when a read raced the newest beat (up to three times), so
//! a round can hold a burst of reads a few hundred microseconds apart. They measure the
//! same moment; the round keeps the read with the tightest bounds, so percentiles count
//! each round once and use its best measurement.

use super::lag::BeatCursor;
use crate::samples::{BeatTimes, Observation, Outcome};

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

/// A run of failed reads: from the first failure to the next successful read (or the
/// last read of the recording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    pub start_us: i64,
    pub end_us: i64,
    /// The outcome of the first failed read.
    pub outcome: Outcome,
}

/// Silences between reads shorter than this are not kept (the report's gaps start at 1 s).
pub const MIN_SILENCE_US: i64 = 1_000_000;

/// A replica's recording, reduced to what the analysis uses.
#[derive(Debug, Clone, Default, PartialEq)]
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
    /// Start of the first and of the last read.
    pub first_read_us: Option<i64>,
    pub last_read_us: Option<i64>,
    /// Pairs of consecutive reads (start to start) more than [`MIN_SILENCE_US`] apart.
    pub silences: Vec<(i64, i64)>,
    /// Runs of failed reads, in time order.
    pub outages: Vec<Outage>,
}

/// Builds a [`LagSeries`] from observations fed one by one in time order, so a recording
/// never has to hold its observations all at once.
#[derive(Debug)]
pub struct SeriesBuilder<'a> {
    cursor: BeatCursor<'a>,
    out: LagSeries,
    /// End of the previous read, when it produced the last point.
    prev_end: Option<i64>,
    /// The failure run in progress.
    failing: Option<(i64, Outcome)>,
    /// The first read gave the first point (a round that may have begun before).
    first_pointed: bool,
}

impl<'a> SeriesBuilder<'a> {
    /// `beats` are the cluster's, ordered by seq; `capacity` is a hint of how many reads
    /// will come.
    pub fn new(beats: &'a [BeatTimes], capacity: usize) -> Self {
        SeriesBuilder {
            cursor: BeatCursor::new(beats),
            out: LagSeries {
                points: Vec::with_capacity(capacity),
                ..Default::default()
            },
            prev_end: None,
            failing: None,
            first_pointed: false,
        }
    }

    /// Adds the next read (in time order).
    pub fn push(&mut self, obs: &Observation) {
        let out = &mut self.out;
        out.reads += 1;
        let t = obs.r_start_us;
        if let Some(prev) = out.last_read_us.filter(|&p| t - p > MIN_SILENCE_US) {
            out.silences.push((prev, t));
        }
        out.first_read_us.get_or_insert(t);
        out.last_read_us = Some(t);
        if obs.outcome != Outcome::Ok {
            out.failures.push(FailedRead {
                t_us: t,
                outcome: obs.outcome,
            });
            self.failing.get_or_insert((t, obs.outcome));
            self.prev_end = None;
            return;
        }
        if let Some((start_us, outcome)) = self.failing.take() {
            out.outages.push(Outage {
                start_us,
                end_us: t,
                outcome,
            });
        }
        let Some(b) = self.cursor.lag(obs) else {
            out.unbounded += 1;
            self.prev_end = None;
            return;
        };
        let point = LagPoint {
            t_us: t + (obs.r_end_us - t) / 2,
            lo_us: b.lo_us,
            hi_us: b.hi_us,
        };
        self.first_pointed |= out.reads == 1;
        let same_round = self.prev_end.is_some_and(|end| t - end < BURST_GAP_US);
        self.prev_end = Some(obs.r_end_us);
        match out.points.last_mut() {
            Some(last) if same_round => {
                if point.width_us() < last.width_us() {
                    *last = point;
                }
            }
            _ => out.points.push(point),
        }
    }

    /// This builder followed by `later`, which was fed the reads right after this one's
    /// (on another thread): the same as if one builder had been fed them all.
    pub fn append(mut self, later: SeriesBuilder<'a>) -> SeriesBuilder<'a> {
        let (Some(last_us), Some(next_us)) = (self.out.last_read_us, later.out.first_read_us)
        else {
            return if later.out.reads == 0 { self } else { later };
        };
        let mut b = later.out;
        let out = &mut self.out;
        if next_us - last_us > MIN_SILENCE_US {
            out.silences.push((last_us, next_us));
        }
        out.silences.append(&mut b.silences);

        // A failure run in progress goes on into `later` or ends at its first read.
        let mut failing = later.failing;
        if let Some((start_us, outcome)) = self.failing {
            let later_began_failing = b.failures.first().is_some_and(|f| f.t_us == next_us);
            if !later_began_failing {
                out.outages.push(Outage {
                    start_us,
                    end_us: next_us,
                    outcome,
                });
            } else if let Some(first) = b.outages.first_mut() {
                (first.start_us, first.outcome) = (start_us, outcome);
            } else if let Some(run) = failing.as_mut() {
                *run = (start_us, outcome);
            }
        }
        out.outages.append(&mut b.outages);

        // The first read of `later` may belong to the round of this one's last point.
        let mut points = b.points.into_iter();
        let joins = later.first_pointed
            && self
                .prev_end
                .is_some_and(|end| next_us - end < BURST_GAP_US);
        // Taken from `points` either way: it is the same round as `last`.
        if joins
            && let (Some(last), Some(first)) = (out.points.last_mut(), points.next())
            && first.width_us() < last.width_us()
        {
            *last = first;
        }
        out.points.extend(points);
        out.failures.append(&mut b.failures);
        out.reads += b.reads;
        out.unbounded += b.unbounded;
        out.last_read_us = b.last_read_us;
        self.prev_end = later.prev_end;
        self.failing = failing;
        self
    }

    pub fn finish(mut self) -> LagSeries {
        if let (Some((start_us, outcome)), Some(end_us)) = (self.failing, self.out.last_read_us) {
            self.out.outages.push(Outage {
                start_us,
                end_us,
                outcome,
            });
        }
        self.out
    }
}

/// Lag points of one replica from its cluster's beats (ordered by seq) and its
/// observations (in time order).
pub fn lag_series(beats: &[BeatTimes], observations: &[Observation]) -> LagSeries {
    let mut b = SeriesBuilder::new(beats, observations.len());
    for obs in observations {
        b.push(obs);
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(seq: u64, send: i64) -> BeatTimes {
        BeatTimes::new(seq, send, Some(send + 300))
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
        let beats: Vec<BeatTimes> = (1..=3).map(|k| beat(k, k as i64 * 10_000)).collect();
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
        let beats: Vec<BeatTimes> = (1..=2).map(|k| beat(k, k as i64 * 10_000)).collect();
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

    /// Reads with every case at a split point: bursts, failures (runs of them at the
    /// ends too), unknown beats and silences.
    fn mixed_reads(seed: u64, n: usize) -> Vec<Observation> {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut t = 10_000;
        (0..n)
            .map(|_| {
                let r = next();
                t += match r % 10 {
                    0 => 200,       // a follow-up read
                    1 => 3_000_000, // a silence
                    _ => 10_000,
                };
                let duration = 100 + (r >> 8) as i64 % 400;
                match (r >> 16) % 8 {
                    0 => read(None, t, t + duration),
                    1 => Observation {
                        outcome: Outcome::Refused,
                        ..read(None, t, t + duration)
                    },
                    2 => read(Some(500), t, t + duration),
                    _ => read(
                        Some((t / 10_000 - 1 - (r >> 24) as i64 % 3).max(1) as u64),
                        t,
                        t + duration,
                    ),
                }
            })
            .collect()
    }

    #[test]
    fn builders_appended_agree_with_one_builder_at_every_split() {
        let beats: Vec<BeatTimes> = (1..=400).map(|k| beat(k, k as i64 * 10_000)).collect();
        for seed in [1, 7, 42, 1234] {
            let obs = mixed_reads(seed, 120);
            let whole = lag_series(&beats, &obs);
            assert!(!whole.outages.is_empty() && !whole.silences.is_empty());
            for at in 0..=obs.len() {
                let mut a = SeriesBuilder::new(&beats, 0);
                let mut b = SeriesBuilder::new(&beats, 0);
                obs[..at].iter().for_each(|o| a.push(o));
                obs[at..].iter().for_each(|o| b.push(o));
                assert_eq!(a.append(b).finish(), whole, "seed {seed}, split at {at}");
            }
        }
    }
}
