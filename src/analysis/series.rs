//! Analysis step 1: a replica's observations become lag points, one per probe round.
//!
//! The reader re-reads at once when a read raced the newest beat (up to three times) and
//! marks those re-reads as follow-ups ([`Observation::follow_up`]). A round is a first
//! read and its follow-ups; it keeps the tightest [`Lag`] of its reads, so percentiles
//! count each round once and use its best measurement. Rounds whose reads say nothing
//! (before the session's first beat, a foreign beat) are counted, never plotted.

use super::lag::{BeatCursor, Continuity, Lag, Unknown};
use crate::samples::{BeatTimes, Observation, Outcome};

/// The lag of one probe round at `t_us` (the middle of the read it keeps). Never
/// [`Lag::Unknown`] in a finished [`LagSeries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagPoint {
    pub t_us: i64,
    pub lag: Lag,
}

impl LagPoint {
    /// A round with bounded lag.
    pub fn bounded(t_us: i64, lo_us: i64, hi_us: i64) -> LagPoint {
        LagPoint {
            t_us,
            lag: Lag::Bounded { lo_us, hi_us },
        }
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

/// How many distinct foreign seqs a series keeps as examples.
pub const FOREIGN_EXAMPLES: usize = 5;

/// A replica's recording, reduced to what the analysis uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LagSeries {
    /// One per probe round with a known lag (bounded or "at least"), in time order.
    pub points: Vec<LagPoint>,
    /// In time order.
    pub failures: Vec<FailedRead>,
    /// Reads, failed or not.
    pub reads: usize,
    /// Rounds whose reads showed a seq older than their session's first beat before
    /// that beat was acknowledged (a restart's first read, seq 0 after `init`).
    pub before_first_beat: u64,
    /// Rounds whose reads showed a seq their session never wrote (a `check`, another
    /// recorder): counted, never matched.
    pub foreign: u64,
    /// Up to [`FOREIGN_EXAMPLES`] of the foreign seqs seen.
    pub foreign_seqs: Vec<u64>,
    /// Start of the first and of the last read.
    pub first_read_us: Option<i64>,
    pub last_read_us: Option<i64>,
    /// Pairs of consecutive reads (start to start) more than [`MIN_SILENCE_US`] apart.
    pub silences: Vec<(i64, i64)>,
    /// Runs of failed reads, in time order.
    pub outages: Vec<Outage>,
}

impl LagSeries {
    /// Rounds with bounded lag.
    pub fn bounded(&self) -> impl Iterator<Item = &LagPoint> {
        self.points.iter().filter(|p| p.lag.is_bounded())
    }
}

/// Builds a [`LagSeries`] from observations fed one by one in time order, so a recording
/// never has to hold its observations all at once.
#[derive(Debug)]
pub struct SeriesBuilder<'a> {
    cursor: BeatCursor<'a>,
    out: LagSeries,
    /// Rounds in progress or done, unknown ones included until [`SeriesBuilder::finish`].
    rounds: Vec<LagPoint>,
    /// The session of the last round, while a follow-up may still join it.
    open_round: Option<u32>,
    /// The first read was a follow-up (its round began before this builder's reads).
    first_follows: bool,
    /// The failure run in progress.
    failing: Option<(i64, Outcome)>,
}

impl<'a> SeriesBuilder<'a> {
    /// `beats` are the cluster's, ordered by seq; `continuity` is indexed by session;
    /// `capacity` is a hint of how many reads will come.
    pub fn new(beats: &'a [BeatTimes], continuity: &'a [Continuity], capacity: usize) -> Self {
        SeriesBuilder {
            cursor: BeatCursor::new(beats, continuity),
            out: LagSeries::default(),
            rounds: Vec::with_capacity(capacity),
            open_round: None,
            first_follows: false,
            failing: None,
        }
    }

    /// Adds the next read (in time order), taken by recorder session `session`.
    pub fn push(&mut self, obs: &Observation, session: u32) {
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
            self.open_round = None;
            return;
        }
        if let Some((start_us, outcome)) = self.failing.take() {
            out.outages.push(Outage {
                start_us,
                end_us: t,
                outcome,
            });
        }
        let Some(lag) = self.cursor.lag(session, obs) else {
            return;
        };
        let point = LagPoint {
            t_us: t + (obs.r_end_us - t) / 2,
            lag,
        };
        if out.reads == 1 {
            self.first_follows = obs.follow_up;
        }
        match self.rounds.last_mut() {
            Some(last) if obs.follow_up && self.open_round == Some(session) => {
                if lag.tighter(last.lag) != last.lag {
                    *last = point;
                }
            }
            _ => self.rounds.push(point),
        }
        self.open_round = Some(session);
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

        // The first read of `later` may be a follow-up of this one's last round.
        let mut rounds = later.rounds.into_iter();
        let joins = later.first_follows && self.open_round.is_some();
        if joins
            && let (Some(last), Some(first)) = (self.rounds.last_mut(), rounds.next())
            && first.lag.tighter(last.lag) != last.lag
        {
            *last = first;
        }
        self.rounds.extend(rounds);
        out.failures.append(&mut b.failures);
        out.reads += b.reads;
        out.last_read_us = b.last_read_us;
        self.open_round = later.open_round;
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
        let mut out = self.out;
        for p in &self.rounds {
            match p.lag {
                Lag::Unknown(Unknown::BeforeFirstBeat) => out.before_first_beat += 1,
                Lag::Unknown(Unknown::ForeignBeat { seq }) => {
                    out.foreign += 1;
                    if out.foreign_seqs.len() < FOREIGN_EXAMPLES && !out.foreign_seqs.contains(&seq)
                    {
                        out.foreign_seqs.push(seq);
                    }
                }
                _ => {}
            }
        }
        self.rounds.retain(|p| !matches!(p.lag, Lag::Unknown(_)));
        out.points = self.rounds;
        out
    }
}

/// Lag points of one replica from its cluster's beats (ordered by seq) and its
/// observations (in time order), all taken by recorder session `session`.
pub fn lag_series(
    beats: &[BeatTimes],
    continuity: &[Continuity],
    observations: &[Observation],
    session: u32,
) -> LagSeries {
    let mut b = SeriesBuilder::new(beats, continuity, observations.len());
    for obs in observations {
        b.push(obs, session);
    }
    b.finish()
}

/// The lag series of one replica of a loaded recording. Its observations are decoded
/// as they are walked, never all held at once, in consecutive parts on all cores.
pub fn replica_series(
    rec: &crate::store::scan::Recording,
    rs: &crate::store::scan::ReplicaSeries,
) -> Result<LagSeries, crate::store::StoreError> {
    let beats = rec.beats_of(&rs.cluster);
    let continuity = super::lag::continuity_of(&rec.sessions);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let walk = |part: &crate::store::scan::Observations| {
        let mut builder = SeriesBuilder::new(beats, &continuity, part.len_hint());
        part.for_each(|o, session| builder.push(o, session))
            .map(|()| builder)
    };
    let parts = rs.observations.parts(threads);
    let builders = std::thread::scope(|scope| {
        let others: Vec<_> = parts[1..]
            .iter()
            .map(|part| scope.spawn(move || walk(part)))
            .collect();
        let first = walk(&parts[0]);
        std::iter::once(first)
            .chain(
                others
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
            )
            .collect::<Result<Vec<_>, _>>()
    })?;
    let whole = builders
        .into_iter()
        .reduce(SeriesBuilder::append)
        .expect("at least one part");
    let series = whole.finish();
    tracing::debug!(
        replica = %rs.replica,
        reads = series.reads,
        rounds = series.points.len(),
        "lag series built"
    );
    Ok(series)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONT: [Continuity; 2] = [
        Continuity { limit_us: 30_000 },
        Continuity { limit_us: 30_000 },
    ];

    fn beat(seq: u64, send: i64) -> BeatTimes {
        BeatTimes::new(seq, send, Some(send + 300), 1)
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
            follow_up: false,
        }
    }

    fn follow(seq: u64, start: i64, end: i64) -> Observation {
        Observation {
            follow_up: true,
            ..read(Some(seq), start, end)
        }
    }

    fn series(beats: &[BeatTimes], obs: &[Observation]) -> LagSeries {
        lag_series(beats, &CONT, obs, 1)
    }

    #[test]
    fn a_round_of_follow_up_reads_keeps_the_tightest_bounds() {
        let beats: Vec<BeatTimes> = (1..=5).map(|k| beat(k, k as i64 * 10_000)).collect();
        let obs = [
            read(Some(2), 20_310, 20_500),
            read(Some(2), 30_310, 30_500),
            follow(2, 30_520, 30_700),
            read(None, 40_000, 41_000),
            read(Some(7), 50_000, 50_100),
        ];
        let s = series(&beats, &obs);
        assert_eq!(s.reads, 5);
        assert_eq!(s.failures.len(), 1);
        assert_eq!(s.foreign, 1);
        assert_eq!(s.foreign_seqs, [7]);
        assert_eq!(s.points.len(), 2);
        // The second round's reads both saw 2 while 3 (acked 30_300) existed; the
        // follow-up's bounds are 10 µs narrower (its read took less time), so it wins.
        assert_eq!(
            s.points[1],
            LagPoint {
                t_us: 30_610,
                lag: Lag::Bounded {
                    lo_us: 30_520 - 30_300,
                    hi_us: 30_700 - 20_000
                }
            }
        );
    }

    #[test]
    fn rounds_come_from_the_marks_never_from_timing() {
        let beats: Vec<BeatTimes> = (1..=400).map(|k| beat(k, k as i64 * 10_000)).collect();
        // Reads of 30 ms through a slow link, each starting as the previous one ends:
        // every one is a first read, so every one is a round.
        let obs: Vec<Observation> = (0..100)
            .map(|i| {
                let start = 1_000_000 + i * 30_000;
                read(Some((start / 10_000) as u64), start, start + 30_000)
            })
            .collect();
        let s = series(&beats, &obs);
        assert_eq!(s.points.len(), 100);
        // A follow-up replaces a wide read of its round.
        let obs = [read(Some(1), 20_310, 20_400), follow(2, 20_420, 20_500)];
        let s = series(&beats, &obs);
        assert_eq!(
            s.points,
            [LagPoint {
                t_us: 20_460,
                lag: Lag::Bounded {
                    lo_us: 0,
                    hi_us: 500
                }
            }]
        );
    }

    #[test]
    fn unknown_rounds_are_counted_and_a_follow_up_can_resolve_them() {
        let beats: Vec<BeatTimes> = (10..=12).map(|k| beat(k, k as i64 * 10_000)).collect();
        // Seq 0 before the first ack; then a read of seq 0 resolved by its follow-up.
        let obs = [
            read(Some(0), 50_000, 50_100),
            read(Some(0), 100_100, 100_200),
            follow(10, 100_250, 100_400),
        ];
        let s = series(&beats, &obs);
        assert_eq!(s.before_first_beat, 1);
        assert_eq!(s.points.len(), 1);
        assert!(s.points[0].lag.is_bounded());
    }

    /// Reads with every case at a split point: rounds, failures (runs of them at the
    /// ends too), foreign beats and silences.
    fn mixed_reads(seed: u64, n: usize) -> Vec<Observation> {
        let mut x = crate::xorshift::XorShift::new(seed);
        let mut next = move || x.next_u64();
        let mut t = 10_000;
        let mut prev_ok = false;
        (0..n)
            .map(|_| {
                let r = next();
                let follow_up = r % 10 == 0 && prev_ok;
                t += match r % 10 {
                    0 => 200,       // a follow-up read
                    1 => 3_000_000, // a silence
                    _ => 10_000,
                };
                let duration = 100 + (r >> 8) as i64 % 400;
                let o = match (r >> 16) % 8 {
                    0 => read(None, t, t + duration),
                    1 => Observation {
                        outcome: Outcome::Refused,
                        ..read(None, t, t + duration)
                    },
                    2 => read(Some(5_000), t, t + duration),
                    _ => read(
                        Some((t / 10_000 - 1 - (r >> 24) as i64 % 3).max(1) as u64),
                        t,
                        t + duration,
                    ),
                };
                prev_ok = o.outcome == Outcome::Ok;
                Observation { follow_up, ..o }
            })
            .collect()
    }

    #[test]
    fn builders_appended_agree_with_one_builder_at_every_split() {
        let beats: Vec<BeatTimes> = (1..=4000).map(|k| beat(k, k as i64 * 10_000)).collect();
        for seed in [1, 7, 42, 1234] {
            let obs = mixed_reads(seed, 120);
            let whole = series(&beats, &obs);
            assert!(!whole.outages.is_empty() && !whole.silences.is_empty());
            for at in 0..=obs.len() {
                let mut a = SeriesBuilder::new(&beats, &CONT, 0);
                let mut b = SeriesBuilder::new(&beats, &CONT, 0);
                obs[..at].iter().for_each(|o| a.push(o, 1));
                obs[at..].iter().for_each(|o| b.push(o, 1));
                assert_eq!(a.append(b).finish(), whole, "seed {seed}, split at {at}");
            }
        }
    }
}
