//! Matching a replica's reads to its cluster's beats as both are walked from the store
//! in time order, holding only the beats the reads need ([`BeatWindow`]). The lag each
//! match gives is the lag model's (`super::lag`).

use super::lag::{
    Continuity, Lag, Unknown, across_sessions, find_seq, lag_at_held, session_continuity,
};
use crate::samples::{BeatTimes, Observation};
use crate::store::StoreError;
use crate::store::scan::ahead::BeatsAhead;
use crate::store::scan::{BeatReader, Beats};

/// [`lag_of`] for reads walked in time order over a cluster's beats read from the store
/// as the walk goes ([`BeatReader`]): it holds the beats from a little before the one
/// the last read showed to as far after it as that read's lag needs (usually the next
/// beat), so its memory follows neither the recording's length nor the replica's lag
/// (a replica stopped for a day shows one beat all day). A read of an older beat than
/// those held sends the reader back. Gives the same answers as [`lag_of`] over every
/// beat, given what the writer and the clock guarantee: within a session, beats are
/// sent in seq order, and no read shows a beat of its session sent after the read
/// ended.
pub struct BeatWindow<'a> {
    reader: BeatReader<'a>,
    /// The beats from the start, decoded on another thread, until the window goes back.
    ahead: Option<BeatsAhead>,
    continuity: &'a [Continuity],
    /// A run of consecutive beats of the cluster, ordered by seq.
    beats: Vec<BeatTimes>,
    /// Failed beats the reader gives out, not used here.
    failed: Vec<crate::samples::Beat>,
    /// The reader has given its last beat.
    exhausted: bool,
    /// Beats before `beats[0]` exist: dropped, or skipped by going back.
    trimmed: bool,
    /// Index of the beat the last matched read showed.
    at: usize,
    /// What each session's first beats say, by session index.
    sessions: Vec<SessionStart>,
    /// Each session's lowest seq from the chunks' headers, for a session none of whose
    /// beats has been read yet.
    first_seqs: std::collections::BTreeMap<u32, u64>,
    /// The same first seqs, sorted: where sessions begin in seq order ([`Self::load`]).
    session_starts: Vec<u64>,
    /// The lowest seq in the store: an older one is nowhere to go back to.
    lowest_seq: Option<u64>,
    /// The last seq gone back for and not found: not gone back for again.
    missing: Option<u64>,
    /// Finds the cluster's outages in the beats as they are first read, when asked to.
    outages: Option<super::outages::OutageFinder>,
    /// The highest seq handed to `outages`.
    fed_seq: Option<u64>,
    /// Times the reader was sent back.
    went_back: u32,
    /// The seq of the last beat matched, and the first seq after it not known to be
    /// never acknowledged ([`Held::unacked_to`]).
    unacked: Option<(u64, u64)>,
}

/// The beats of a session that [`unmatched`] looks at, noted as they pass.
#[derive(Debug, Clone, Default)]
struct SessionStart {
    first_seq: Option<u64>,
    /// Acknowledgements lower than those of every earlier beat of the session, in seq
    /// order: the first of these at or before a read is the first beat acknowledged
    /// before it.
    record_acks: Vec<i64>,
    /// The last seq noted (beats read again after going back are noted once).
    noted: Option<u64>,
}

impl<'a> BeatWindow<'a> {
    /// Beats before the one the last read showed that stay held (a replica's seq can
    /// step back a little, e.g. between two recorders' reads).
    const KEEP: usize = 4_096;
    /// After a read that matched no beat, beats sent this long before it are dropped
    /// (the next read of an older beat goes back for it), µs.
    const HORIZON_US: i64 = 3_600_000_000;

    /// `beats` are the cluster's; `continuity` is indexed by session.
    pub fn new(beats: &'a Beats, continuity: &'a [Continuity]) -> Self {
        let first_seqs = beats.first_seqs();
        let mut session_starts: Vec<u64> = first_seqs.values().copied().collect();
        session_starts.sort_unstable();
        BeatWindow {
            reader: beats.reader(),
            ahead: None,
            continuity,
            beats: Vec::new(),
            failed: Vec::new(),
            exhausted: false,
            trimmed: false,
            at: 0,
            lowest_seq: session_starts.first().copied(),
            session_starts,
            sessions: vec![SessionStart::default(); continuity.len()],
            first_seqs,
            missing: None,
            outages: None,
            fed_seq: None,
            went_back: 0,
            unacked: None,
        }
    }

    /// Takes its beats from `ahead` (which reads the same beats from the start on
    /// another thread) until it has to go back.
    pub fn reading_ahead(mut self, ahead: BeatsAhead) -> Self {
        self.ahead = Some(ahead);
        self
    }

    /// Also finds the cluster's primary outages from the beats read (see
    /// [`BeatWindow::outages`]): the beats are then read once for both.
    pub fn with_outages(mut self) -> Self {
        self.outages = Some(Default::default());
        self
    }

    /// The cluster's primary outages, after reading the beats no read needed; `None`
    /// unless made [`BeatWindow::with_outages`].
    pub fn outages(mut self) -> Result<Option<Vec<super::outages::PrimaryOutage>>, StoreError> {
        tracing::debug!(went_back = self.went_back, "beat window done");
        if self.outages.is_none() {
            return Ok(None);
        }
        while !self.exhausted {
            self.beats.clear();
            self.at = 0;
            self.read_more()?;
        }
        Ok(self.outages.map(super::outages::OutageFinder::finish))
    }

    /// The lag of a read by `session`, as [`lag_of`] with that session's continuity
    /// (`Continuity::for_interval(0)` for a session the recording does not describe);
    /// `None` for a failed read.
    pub fn lag(&mut self, session: u32, obs: &Observation) -> Result<Option<Lag>, StoreError> {
        let continuity = session_continuity(self.continuity, session);
        let Some(seq) = obs.seq else {
            return Ok(None);
        };
        // Every beat sent before the read's end plus the continuity limit can matter;
        // the beats up to the one it showed are read first, the rest only as needed.
        let until_us = obs.r_end_us.max(obs.r_start_us) + continuity.limit_us;
        self.load(until_us, seq, true)?;
        let older = self.beats.first().is_none_or(|b| seq < b.seq);
        if older
            && self.trimmed
            && self.missing != Some(seq)
            && self.lowest_seq.is_some_and(|l| seq >= l)
        {
            self.go_back(seq, until_us)?;
        }
        let Some(i) = find_seq(&self.beats, self.at, seq) else {
            if self.trimmed && self.beats.first().is_some_and(|b| seq < b.seq) {
                self.missing = Some(seq);
            }
            self.unmatched_read(until_us, seq, obs.r_start_us)?;
            return Ok(Some(self.unmatched(session, seq, obs)));
        };
        self.at = i;
        self.trim();
        if self.beats[self.at].session != session {
            // A beat of an earlier session of the store: its later beats may bound the
            // lag (`lag::across_sessions`). Every beat up to the read is loaded first.
            let earlier = self.first_seq(session).is_some_and(|first| seq < first);
            let held = if earlier {
                self.load(until_us, seq, false)?;
                Some(lag_at_held(&self.beats, self.at, self.at + 1, continuity, obs).lag)
            } else {
                None
            };
            self.unmatched_read(until_us, seq, obs.r_start_us)?;
            let floor = self.unmatched(session, seq, obs);
            return Ok(Some(held.map_or(floor, |l| across_sessions(l, floor))));
        }
        loop {
            let from = match self.unacked {
                Some((shown, next)) if shown == seq => self
                    .beats
                    .partition_point(|b| b.seq < next)
                    .max(self.at + 1),
                _ => self.at + 1,
            };
            let held = lag_at_held(&self.beats, self.at, from, continuity, obs);
            let next = self.beats.get(held.unacked_to).map(|b| b.seq);
            let after_last = self.beats.last().map_or(seq, |b| b.seq).saturating_add(1);
            self.unacked = Some((seq, next.unwrap_or(after_last)));
            if held.settled || self.loaded(until_us) {
                return Ok(Some(held.lag));
            }
            self.read_more_for(seq)?;
        }
    }

    /// Whether every beat sent by `until_us` is held (or the reader has no more).
    fn loaded(&self, until_us: i64) -> bool {
        self.exhausted || self.beats.last().is_some_and(|b| b.t_send_us > until_us)
    }

    /// Reads beats until one sent after `until_us` is held, or, when `to_seq`, until
    /// beat `seq` or a later one is (or there are no more), for a read that showed
    /// `seq`.
    ///
    /// Beats come in seq order, which is time order within a session: once one sent
    /// after `until_us` is held, `seq` is held too if it is a beat, unless a later
    /// session begins at or below it (a clock stepped back between sessions numbers
    /// the later one higher but sends it earlier): then that session is reached first.
    fn load(&mut self, until_us: i64, seq: u64, to_seq: bool) -> Result<(), StoreError> {
        let seq_held = |w: &Self| to_seq && w.beats.last().is_some_and(|b| b.seq >= seq);
        // A session beginning after the last beat held and at or before `seq`.
        let later_session = |w: &Self| {
            to_seq
                && !w.exhausted
                && w.beats.last().is_some_and(|last| {
                    let next = w.session_starts.partition_point(|&f| f <= last.seq);
                    w.session_starts
                        .get(next)
                        .is_some_and(|&first| first <= seq)
                })
        };
        while !(self.loaded(until_us) && !later_session(self) || seq_held(self)) {
            self.read_more_for(seq)?;
        }
        Ok(())
    }

    /// [`BeatWindow::read_more`] for a read that showed `seq`, dropping the beats more
    /// than [`Self::KEEP`] before it as they come, as [`Self::trim`] would drop them: a
    /// window's first read loads the hours of lookback before it
    /// ([`crate::store::BEAT_LOOKBACK_US`]), which would otherwise all be held.
    fn read_more_for(&mut self, seq: u64) -> Result<(), StoreError> {
        self.read_more()?;
        let before = self.beats.partition_point(|b| b.seq < seq);
        self.cut(before.saturating_sub(Self::KEEP));
        Ok(())
    }

    /// Reads the reader's next beats, noting what [`BeatWindow::unmatched`] and the
    /// outages need of them.
    fn read_more(&mut self) -> Result<(), StoreError> {
        let from = self.beats.len();
        self.exhausted = match &mut self.ahead {
            Some(ahead) => !ahead.fill(&mut self.beats, &mut self.failed)?,
            None => !self.reader.fill(&mut self.beats, &mut self.failed)?,
        };
        if let Some(finder) = &mut self.outages {
            // Beats read again after going back were fed the first time.
            let fed = self.fed_seq;
            let new = &self.beats[from..];
            let skip = new.partition_point(|b| fed.is_some_and(|f| b.seq <= f));
            self.failed.retain(|b| fed.is_none_or(|f| b.seq > f));
            finder.push(&new[skip..], &self.failed);
            self.fed_seq = new.last().map(|b| b.seq).max(fed);
        }
        self.failed.clear();
        for b in &self.beats[from..] {
            let Some(s) = self.sessions.get_mut(b.session as usize) else {
                continue;
            };
            if s.noted.is_some_and(|n| b.seq <= n) {
                continue;
            }
            s.noted = Some(b.seq);
            s.first_seq.get_or_insert(b.seq);
            if let Some(ack) = b.t_ack_us()
                && s.record_acks.last().is_none_or(|&low| ack < low)
            {
                s.record_acks.push(ack);
            }
        }
        Ok(())
    }

    /// Goes back to the chunk holding `seq` and reads on to `until_us`.
    fn go_back(&mut self, seq: u64, until_us: i64) -> Result<(), StoreError> {
        // The thread reading ahead stops once it finds nobody takes its beats.
        self.ahead = None;
        self.reader.seek(seq);
        self.went_back += 1;
        self.beats.clear();
        (self.at, self.exhausted) = (0, false);
        self.load(until_us, seq, true)?;
        // Whether beats older than the first held exist is not known: assume so.
        self.trimmed = true;
        Ok(())
    }

    /// After a read that showed `seq`, no beat of its session: reads the beats up to
    /// `until_us` (what they say of the session decides [`BeatWindow::unmatched`]),
    /// then stops keeping those sent long before the read.
    fn unmatched_read(
        &mut self,
        until_us: i64,
        seq: u64,
        r_start_us: i64,
    ) -> Result<(), StoreError> {
        self.load(until_us, seq, false)?;
        let old = self
            .beats
            .partition_point(|b| b.t_send_us < r_start_us - Self::HORIZON_US);
        self.at = self.at.max(old);
        self.trim();
        Ok(())
    }

    /// Drops the beats more than [`Self::KEEP`] before `at`, once they are half of
    /// those held (so the copy costs little per read).
    fn trim(&mut self) {
        self.cut(self.at.saturating_sub(Self::KEEP));
    }

    /// Drops the first `n` beats held, once they are more than [`Self::KEEP`] and half
    /// of those held.
    fn cut(&mut self, n: usize) {
        if n > Self::KEEP && n * 2 > self.beats.len() {
            self.beats.drain(..n);
            self.at = self.at.saturating_sub(n);
            self.trimmed = true;
        }
    }

    /// [`unmatched`] from what the session's first beats said as they passed.
    /// The seq of session `session`'s first beat, once known.
    fn first_seq(&self, session: u32) -> Option<u64> {
        self.sessions
            .get(session as usize)
            .and_then(|s| s.first_seq)
            .or_else(|| self.first_seqs.get(&session).copied())
    }

    fn unmatched(&self, session: u32, seq: u64, obs: &Observation) -> Lag {
        let start = self.sessions.get(session as usize);
        let first = self.first_seq(session);
        let Some(first) = first else {
            return Lag::Unknown(Unknown::BeforeFirstBeat);
        };
        if seq > first {
            return Lag::Unknown(Unknown::ForeignBeat { seq });
        }
        let first_ack = start.and_then(|s| s.record_acks.iter().find(|&&a| a <= obs.r_start_us));
        match first_ack {
            Some(&ack) => Lag::AtLeast {
                lo_us: (obs.r_start_us - ack).max(0),
            },
            None => Lag::Unknown(Unknown::BeforeFirstBeat),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::lag::tests::*;
    use crate::analysis::lag::{continuity_of, lag_of};

    /// Beats of two recorder sessions in a real store: 6_000 of the first (every 7th
    /// failed) every 10 ms, then, after a 5 s gap, 6_000 of the second.
    fn two_session_store(name: &str) -> std::path::PathBuf {
        store_of_sessions(name, &[1_000_000, 66_000_000], 6_000, |session, k| {
            session == 0 && k % 7 == 3
        })
    }

    /// Sessions starting at `t0s_us`, `n` beats each at 100 Hz, in chunks of 100; beat
    /// `k` of session `s` fails when `fails(s, k)`.
    fn store_of_sessions(
        name: &str,
        t0s_us: &[i64],
        n: i64,
        fails: fn(usize, i64) -> bool,
    ) -> std::path::PathBuf {
        store_numbered(name, t0s_us, n, fails, |_, t| t as u64 / 10_000)
    }

    /// [`store_of_sessions`] with beat `k` at time `t` of session `s` numbered
    /// `seq(s, t)`.
    fn store_numbered(
        name: &str,
        t0s_us: &[i64],
        n: i64,
        fails: fn(usize, i64) -> bool,
        seq: fn(usize, i64) -> u64,
    ) -> std::path::PathBuf {
        use crate::samples::{Outcome, Sample};
        use crate::store::scan::tests::{begin_session, fresh_path};
        use crate::store::writer::Appender;
        use crate::store::{Store, cluster_key};
        let path = fresh_path(&format!("window-{name}"));
        for (session, &t0_us) in t0s_us.iter().enumerate() {
            let store = Store::open_or_create(&path).unwrap();
            let ids = store.intern(&[cluster_key("c")]).unwrap();
            let id = begin_session(&store, t0_us);
            let mut appender = Appender::new(store, id);
            for k in 0..n {
                let t = t0_us + k * 10_000;
                let failed = fails(session, k);
                appender.add(Sample::Beat {
                    cluster: ids[0],
                    beat: crate::samples::Beat {
                        seq: seq(session, t),
                        t_send_us: t,
                        t_done_us: t + 300 + k % 5 * 100,
                        outcome: if failed {
                            Outcome::Timeout
                        } else {
                            Outcome::Ok
                        },
                        reason: failed.then(|| "timed out".to_string()),
                    },
                });
                if k % 100 == 99 {
                    appender.flush().unwrap();
                }
            }
            appender.finish().unwrap();
        }
        path
    }

    /// The whole recording of the store at `path`.
    fn load(path: &std::path::Path) -> crate::store::scan::Recording {
        let filter = crate::store::scan::Filter::default();
        crate::store::scan::load(&[path.to_path_buf()], &filter).unwrap()
    }

    #[test]
    fn the_window_over_the_store_agrees_with_the_lookup_over_every_beat() {
        let path = two_session_store("agree");
        let rec = load(&path);
        let beats = rec.beats_of("c");
        let (all, failed) = beats.collect().unwrap();
        assert_eq!((all.len(), failed.len()), (12_000, 857));
        let continuity = continuity_of(&rec.sessions);
        // Read here, and read ahead on another thread (dropped at the first go-back).
        check_window(
            &all,
            &failed,
            &continuity,
            BeatWindow::new(beats, &continuity),
        );
        std::thread::scope(|scope| {
            let ahead = BeatsAhead::start(scope, beats);
            let window = BeatWindow::new(beats, &continuity).reading_ahead(ahead);
            check_window(&all, &failed, &continuity, window);
        });
    }

    /// Finding 8: the host clock stepped 60 s back between two sessions. The second
    /// session numbers its beats above the row (as the beat writer does), so its
    /// chunks come first in time and hold the higher seqs; read in time order keeping
    /// only higher seqs, the first session's beats were dropped and half the reads
    /// were "foreign beats". Beats are read in seq order now.
    #[test]
    fn a_clock_stepped_back_between_sessions_loses_no_beat() {
        let path = store_numbered(
            "stepped",
            &[61_000_000, 1_000_000],
            600,
            |_, _| false,
            |session, t| match session {
                0 => t as u64 / 10_000,
                _ => 100_000 + t as u64 / 10_000,
            },
        );
        let rec = load(&path);
        let beats = rec.beats_of("c");
        let (all, _) = beats.collect().unwrap();
        assert_eq!(all.len(), 1_200);
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
        // A read of each session finds its beat through the window.
        let continuity = continuity_of(&rec.sessions);
        let mut window = BeatWindow::new(beats, &continuity);
        // Reads come in time order: the later session's (60 s behind) first.
        for (session, seq, t) in [(1, 100_150, 1_500_000), (0, 6_150, 61_500_000)] {
            let read = Observation {
                r_start_us: t + 5_000,
                r_end_us: t + 5_500,
                seq: Some(seq),
                ..obs(Some(seq), 0, 0)
            };
            let lag = window.lag(session, &read).unwrap().unwrap();
            assert!(lag.is_bounded(), "session {session}: {lag:?}");
        }
    }

    #[test]
    fn a_first_read_after_hours_of_lookback_holds_only_what_the_window_keeps() {
        // The first read comes after 59 000 beats (as `analyze --from` loads hours of
        // beats before its window) and shows a beat just behind: those more than KEEP
        // before it are dropped as they are read.
        let late = (591_000_000, 592_000_000, 5_000);
        reads_hold_little(
            "late",
            |_, k| k % 7 == 3,
            late,
            |all, t| all[all.partition_point(|b| b.t_send_us < t) - 3].seq,
        );
    }

    #[test]
    fn a_replica_stopped_for_long_holds_only_what_the_window_keeps() {
        // Its SQL thread stops at 20 s: every read shows the beat of 20 s for 8 minutes,
        // then it catches up. The minutes between the beat shown and the read are
        // never held.
        let reads = (2_000_000, 600_000_000, 7_000);
        reads_hold_little(
            "stopped",
            |_, k| k % 7 == 3,
            reads,
            |all, t| shown_when_stopped(all, t, 20_000_000, 500_000_000),
        );
    }

    #[test]
    fn reads_through_a_long_primary_outage_get_what_the_lookup_gives() {
        // Every beat from 20 s to 100 s fails (a primary down, beats still tried), and
        // the replica shows the last one before, then catches up: each read skips the
        // failed beats an earlier read of the same beat searched.
        let reads = (2_000_000, 200_000_000, 7_000);
        let outage = |_, k| (1_900..9_900).contains(&k);
        reads_hold_little("outage", outage, reads, |all, t| {
            shown_when_stopped(all, t, 20_000_000, 100_000_000)
        });
    }

    /// The beat a replica shows at `t` when its applier stops at `stop_us` and resumes
    /// at `resume_us`, catching up at twice real time.
    fn shown_when_stopped(all: &[BeatTimes], t: i64, stop_us: i64, resume_us: i64) -> u64 {
        let h = if t < stop_us {
            t
        } else {
            stop_us + (t - resume_us).max(0) * 2
        };
        all[all.partition_point(|b| b.t_send_us <= h.min(t - 1_000)) - 1].seq
    }

    /// Reads of session 0 from `from_us` to `to_us`, one every `step_us`, each showing
    /// beat `shown(all, t)`, through a window over one session of 60 000 beats (beat
    /// `k` failing when `fails(0, k)`), with the reader here and reading ahead alike:
    /// each gets the lag the lookup over every beat gives, and the buffer never has
    /// room for much more than KEEP and a batch.
    fn reads_hold_little(
        name: &str,
        fails: fn(usize, i64) -> bool,
        (from_us, to_us, step_us): (i64, i64, i64),
        shown: impl Fn(&[BeatTimes], i64) -> u64,
    ) {
        let path = store_of_sessions(name, &[1_000_000], 60_000, fails);
        let rec = load(&path);
        let beats = rec.beats_of("c");
        let (all, _) = beats.collect().unwrap();
        let continuity = continuity_of(&rec.sessions);
        let check = |mut window: BeatWindow| {
            let mut t = from_us;
            while t < to_us {
                let o = obs(Some(shown(&all, t)), t, t + 300);
                assert_eq!(
                    window.lag(0, &o).unwrap(),
                    lag_of(&all, 0, continuity[0], &o),
                    "at {t}"
                );
                t += step_us;
            }
            let most = 2 * (2 * BeatWindow::KEEP + BeatsAhead::BATCH_BEATS);
            assert!(
                window.beats.capacity() <= most,
                "room for {} beats",
                window.beats.capacity()
            );
        };
        check(BeatWindow::new(beats, &continuity));
        std::thread::scope(|scope| {
            let ahead = BeatsAhead::start(scope, beats);
            check(BeatWindow::new(beats, &continuity).reading_ahead(ahead));
        });
    }

    fn check_window(
        all: &[BeatTimes],
        failed: &[crate::samples::Beat],
        continuity: &[Continuity],
        window: BeatWindow,
    ) {
        let mut window = window.with_outages();
        let mut x = crate::xorshift::XorShift::new(0x5eed);
        let mut t = 500_000i64;
        let mut checked = 0;
        while t < 130_000_000 {
            t += 1_000 + x.below(20_000) as i64;
            let session = u32::from(t > 66_000_000);
            let newest = all.partition_point(|b| b.t_send_us < t).saturating_sub(1);
            // Mostly a beat a little behind; sometimes far behind (the window goes
            // back), the other session's, none of ours, or nothing yet.
            let seq = match x.below(50) {
                0 => all[x.below(newest as u64 + 1) as usize].seq,
                1 => 0,
                2 => all.last().unwrap().seq + 1_000,
                3 => all[newest].seq + 1,
                _ => all[newest.saturating_sub(x.below(300) as usize)].seq,
            };
            let o = obs(Some(seq), t, t + 100 + x.below(400) as i64);
            let c = continuity[session as usize];
            assert_eq!(
                window.lag(session, &o).unwrap(),
                lag_of(all, session, c, &o),
                "seq {seq} at {t} (session {session})"
            );
            checked += 1;
        }
        assert!(checked > 10_000);
        assert!(
            window.went_back > 10,
            "went back {} times",
            window.went_back
        );
        assert!(
            window.beats.len() < 8 * BeatWindow::KEEP,
            "{} held",
            window.beats.len()
        );
        let outages = window.outages().unwrap().unwrap();
        assert_eq!(
            outages,
            crate::analysis::outages::primary_outages(all, failed)
        );
        assert_eq!(outages.len(), 857);
    }
}
