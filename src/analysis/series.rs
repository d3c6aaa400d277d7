//! Analysis step 1: a replica's observations become lag points, one per probe round.
//!
//! The reader re-reads at once when a read raced the newest beat (up to three times) and
//! marks those re-reads as follow-ups ([`Observation::follow_up`]). A round is a first
//! read and its follow-ups; it keeps the tightest [`Lag`] of its reads, so percentiles
//! count each round once and use its best measurement. Rounds whose reads say nothing
//! (before the session's first beat, a foreign beat) are counted, never plotted.

use super::lag::{BeatCursor, Continuity, Lag, Unknown};
use super::outages::PrimaryOutage;
use super::window::BeatWindow;
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
    /// Empty when the rounds were walked ([`walk_rounds`]) rather than collected.
    pub points: Vec<LagPoint>,
    /// In time order. Empty when walked, as `points`.
    pub failures: Vec<FailedRead>,
    /// Reads, failed or not.
    pub reads: usize,
    /// Reads that failed.
    pub failed_reads: usize,
    /// Reads that came from the binary log stream rather than a query.
    pub binlog_reads: usize,
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

/// Whether a read joins the round in progress, taken by `round_session` (`None`: no
/// round open, or its read failed): a successful follow-up re-read by the same
/// session. The rule for every consumer of rounds (the analysis here, export's rows).
pub fn joins_round(round_session: Option<u32>, obs: &Observation, session: u32) -> bool {
    obs.follow_up && obs.outcome == Outcome::Ok && round_session == Some(session)
}

/// Whether the lag of a read that joined a round replaces the one the round kept: the
/// tighter wins ([`Lag::tighter`]), a tie keeps the first.
pub fn replaces(kept: Lag, new: Lag) -> bool {
    new.tighter(kept) != kept
}

/// Finished rounds and failed reads, in time order, as a walk hands them on.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub rounds: Vec<LagPoint>,
    pub failures: Vec<FailedRead>,
}

/// Builds a [`LagSeries`] from reads fed one by one in time order, each with the lag
/// it shows, handing each round on once it is finished (when the next read of its
/// session is not its follow-up): a recording never has to hold its reads or rounds
/// all at once.
///
/// Two recorders' stores read together interleave their reads: each session has its
/// own round in progress, and finished rounds are handed on in time order once no
/// round still open can come before them. A round whose session has read nothing
/// for [`ROUND_HOLD_US`] is finished (its recorder stopped).
#[derive(Debug, Default)]
pub struct SeriesBuilder {
    out: LagSeries,
    /// The rounds in progress, one per session at most, while a follow-up may still
    /// join them; unknown ones included.
    open: Vec<(LagPoint, u32)>,
    /// Finished rounds not handed on yet, with their sessions, in time order (equal
    /// times in the order they finished): only while another session's round still
    /// open began before them. One session's rounds go on at once, as they came.
    finished: std::collections::VecDeque<(LagPoint, u32)>,
    /// The failure run in progress.
    failing: Option<(i64, Outcome)>,
}

/// How long a round stays open without a read of its session, µs.
pub const ROUND_HOLD_US: i64 = 1_000_000;

impl SeriesBuilder {
    /// Adds the next read (in time order), taken by recorder session `session`, with
    /// its lag (`None` for a failed read); finished rounds and failures go to `out`.
    pub fn push(&mut self, obs: &Observation, session: u32, lag: Option<Lag>, out: &mut Batch) {
        let series = &mut self.out;
        series.reads += 1;
        series.binlog_reads += usize::from(obs.probe.is_binlog());
        let t = obs.r_start_us;
        if let Some(prev) = series.last_read_us.filter(|&p| t - p > MIN_SILENCE_US) {
            series.silences.push((prev, t));
        }
        series.first_read_us.get_or_insert(t);
        series.last_read_us = Some(t);
        // Another session's round may be stale; one session's is closed by its own reads.
        if self.open.iter().any(|(_, s)| *s != session) {
            self.close_stale(t, out);
        }
        if obs.outcome != Outcome::Ok {
            self.out.failed_reads += 1;
            out.failures.push(FailedRead {
                t_us: t,
                outcome: obs.outcome,
            });
            self.failing.get_or_insert((t, obs.outcome));
            self.close(session, out);
            self.hand_on(out);
            return;
        }
        if let Some((start_us, outcome)) = self.failing.take() {
            self.out.outages.push(Outage {
                start_us,
                end_us: t,
                outcome,
            });
        }
        let Some(lag) = lag else {
            return;
        };
        let point = LagPoint {
            t_us: t + (obs.r_end_us - t) / 2,
            lag,
        };
        match self.open.iter_mut().position(|(_, s)| *s == session) {
            Some(i) if joins_round(Some(session), obs, session) => {
                let last = &mut self.open[i].0;
                if replaces(last.lag, lag) {
                    *last = point;
                }
            }
            // The round this session had in progress is finished, and this read's
            // takes its place (one session: the only round, handed on at once).
            Some(i) => {
                let (done, _) = std::mem::replace(&mut self.open[i], (point, session));
                self.finish_round(done, session, out);
            }
            None => self.open.push((point, session)),
        }
        self.hand_on(out);
    }

    /// Finishes the rounds of sessions that have read nothing for [`ROUND_HOLD_US`].
    fn close_stale(&mut self, now_us: i64, out: &mut Batch) {
        while let Some(i) = self
            .open
            .iter()
            .position(|(p, _)| now_us - p.t_us > ROUND_HOLD_US)
        {
            let (p, s) = self.open.remove(i);
            self.finish_round(p, s, out);
        }
    }

    /// Finishes session `session`'s round in progress, if any.
    fn close(&mut self, session: u32, out: &mut Batch) {
        if let Some(i) = self.open.iter().position(|(_, s)| *s == session) {
            let (p, _) = self.open.remove(i);
            self.finish_round(p, session, out);
        }
    }

    /// A finished round: counted when its lag is unknown, else handed on, or held
    /// while a round still open may come before it (one session: never).
    fn finish_round(&mut self, p: LagPoint, session: u32, out: &mut Batch) {
        let series = &mut self.out;
        match p.lag {
            Lag::Unknown(Unknown::BeforeFirstBeat) => series.before_first_beat += 1,
            Lag::Unknown(Unknown::ForeignBeat { seq }) => {
                series.foreign += 1;
                if series.foreign_seqs.len() < FOREIGN_EXAMPLES
                    && !series.foreign_seqs.contains(&seq)
                {
                    series.foreign_seqs.push(seq);
                }
            }
            _ if self.finished.is_empty() && !self.before_it(&p, session) => {
                out.rounds.push(p);
            }
            _ => {
                let at = self.finished.partition_point(|(q, _)| q.t_us <= p.t_us);
                self.finished.insert(at, (p, session));
            }
        }
    }

    /// Whether a round of another session, still open, began before `p`.
    fn before_it(&self, p: &LagPoint, session: u32) -> bool {
        self.open
            .iter()
            .any(|(q, s)| *s != session && q.t_us <= p.t_us)
    }

    /// Hands on, in time order, the finished rounds no other session's open round can
    /// come before (an open round's time only moves on, and later reads come later).
    fn hand_on(&mut self, out: &mut Batch) {
        while let Some((p, session)) = self.finished.front() {
            if self.before_it(p, *session) {
                break;
            }
            out.rounds.extend(self.finished.pop_front().map(|(p, _)| p));
        }
    }

    /// Hands on the last round and returns the series' facts (`points` and
    /// `failures` empty: they went to the batches).
    pub fn finish(mut self, out: &mut Batch) -> LagSeries {
        let mut open = std::mem::take(&mut self.open);
        open.sort_by_key(|(p, _)| p.t_us);
        for (p, session) in open {
            self.finish_round(p, session, out);
        }
        self.hand_on(out);
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
/// observations (in time order), all taken by recorder session `session`.
pub fn lag_series(
    beats: &[BeatTimes],
    continuity: &[Continuity],
    observations: &[Observation],
    session: u32,
) -> LagSeries {
    let mut cursor = BeatCursor::new(beats, continuity);
    let mut b = SeriesBuilder::default();
    let mut batch = Batch::default();
    for obs in observations {
        let lag = cursor.lag(session, obs);
        b.push(obs, session, lag, &mut batch);
    }
    let mut series = b.finish(&mut batch);
    (series.points, series.failures) = (batch.rounds, batch.failures);
    series
}

/// Rounds handed on at a time by [`walk_rounds`].
const BATCH_ROUNDS: usize = 8_192;

/// Walks one replica of a loaded recording: one thread decodes its cluster's beats
/// chunk by chunk ([`crate::store::scan::ahead::BeatsAhead`]), another decodes its reads and matches
/// them to those beats into rounds, while `sink`, on the calling thread, gets the
/// finished rounds and failed reads in batches, in time order. Returns the series'
/// facts (`points` and `failures` empty) and, when asked `with_outages`, the
/// cluster's primary outages from the same reading of the beats.
/// Memory does not grow with the recording's length.
pub fn walk_rounds(
    rec: &crate::store::scan::Recording,
    rs: &crate::store::scan::ReplicaSeries,
    with_outages: bool,
    mut sink: impl FnMut(&Batch),
) -> Result<(LagSeries, Option<Vec<PrimaryOutage>>), crate::store::StoreError> {
    let continuity = super::lag::continuity_of(&rec.sessions);
    let beats = rec.beats_of(&rs.cluster);
    let (series, outages) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(4);
        // Batches handed back once sunk, so that their buffers are allocated once.
        let (back_tx, back_rx) = std::sync::mpsc::channel::<Batch>();
        let ahead = crate::store::scan::ahead::BeatsAhead::start(scope, beats);
        let producer = scope.spawn(move || {
            let mut window = BeatWindow::new(beats, &continuity).reading_ahead(ahead);
            if with_outages {
                window = window.with_outages();
            }
            let mut builder = SeriesBuilder::default();
            let mut batch = Batch::default();
            rs.observations.for_each(|o, session| {
                let lag = window.lag(session, o)?;
                builder.push(o, session, lag, &mut batch);
                if batch.rounds.len() + batch.failures.len() >= BATCH_ROUNDS {
                    let next = back_rx.try_recv().unwrap_or_else(|_| Batch {
                        rounds: Vec::with_capacity(BATCH_ROUNDS),
                        failures: Vec::new(),
                    });
                    // The receiver only stops early when it panicked.
                    let _ = tx.send(std::mem::replace(&mut batch, next));
                }
                Ok::<(), crate::store::StoreError>(())
            })?;
            let series = builder.finish(&mut batch);
            let _ = tx.send(batch);
            Ok((series, window.outages()?))
        });
        for mut batch in rx {
            sink(&batch);
            batch.rounds.clear();
            batch.failures.clear();
            // The producer may be done and gone: then the batch is dropped.
            let _ = back_tx.send(batch);
        }
        producer
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })?;
    tracing::debug!(
        replica = %rs.replica,
        reads = series.reads,
        "lag series walked"
    );
    Ok((series, outages))
}

/// The lag series of one replica of a loaded recording, every round held (for the
/// commands that draw or list them all: plot, export, replay).
pub fn replica_series(
    rec: &crate::store::scan::Recording,
    rs: &crate::store::scan::ReplicaSeries,
) -> Result<LagSeries, crate::store::StoreError> {
    let (mut points, mut failures) = (Vec::new(), Vec::new());
    let (mut series, _) = walk_rounds(rec, rs, false, |b| {
        points.extend_from_slice(&b.rounds);
        failures.extend_from_slice(&b.failures);
    })?;
    (series.points, series.failures) = (points, failures);
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
            probe: Default::default(),
        }
    }

    fn follow(seq: u64, start: i64, end: i64) -> Observation {
        Observation {
            follow_up: true,
            probe: Default::default(),
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

    /// Two recorders' stores read together (finding 7): their reads interleave, and a
    /// follow-up of one comes after the other's read. Each still joins its own round:
    /// as many rounds as the two sessions alone, handed on in time order.
    #[test]
    fn interleaved_sessions_keep_their_own_rounds() {
        let mut beats: Vec<BeatTimes> = (1..=400).map(|k| beat(k, k as i64 * 10_000)).collect();
        beats.extend((1..=400_i64).map(|k| {
            BeatTimes::new(
                1_000 + k as u64,
                k * 10_000 + 3_000,
                Some(k * 10_000 + 3_300),
                2,
            )
        }));
        beats.sort_by_key(|b| b.seq);
        let mut builder = SeriesBuilder::default();
        let mut batch = Batch::default();
        let continuity = [CONT[0]; 3];
        let mut cursor = BeatCursor::new(&beats, &continuity);
        for k in 10..390_i64 {
            let t = k * 10_000;
            // Session 1 reads, races beat k, session 2 reads, session 1's follow-up.
            let reads = [
                (1, read(Some(k as u64 - 1), t + 400, t + 500)),
                (2, read(Some(1_000 + k as u64), t + 3_400, t + 3_500)),
                (1, follow(k as u64, t + 3_600, t + 3_700)),
            ];
            for (session, obs) in reads {
                let lag = cursor.lag(session, &obs);
                builder.push(&obs, session, lag, &mut batch);
            }
        }
        let s = builder.finish(&mut batch);
        assert_eq!(
            batch.rounds.len(),
            2 * 380,
            "rounds: one per read of each session"
        );
        let bad: Vec<_> = batch
            .rounds
            .windows(2)
            .filter(|w| w[0].t_us > w[1].t_us)
            .take(2)
            .collect();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!((s.foreign, s.before_first_beat), (0, 0));
        // Session 1's rounds kept their follow-up (beat k, hi 3.7 ms), not the first
        // read (beat k - 1, hi 10.5 ms).
        assert!(batch.rounds.iter().all(|p| p.lag.hi_us().unwrap() < 4_000));
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
}
