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

use crate::samples::{Beat, BeatTimes, Observation, Probe};
use crate::store::StoreError;
use crate::store::scan::{BeatReader, Beats};

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
    let found = beats
        .binary_search_by_key(&seq, |b| b.seq)
        .ok()
        .filter(|&i| beats[i].session == session);
    Some(match found {
        Some(i) => lag_at(beats, i, continuity, obs),
        None => unmatched(beats, session, seq, obs),
    })
}

/// The lag of a read that showed `beats[i]`, a beat of its own session.
pub fn lag_at(beats: &[BeatTimes], i: usize, continuity: Continuity, obs: &Observation) -> Lag {
    lag_at_held(beats, i, i + 1, continuity, obs).lag
}

/// What [`lag_at_held`] found.
struct Held {
    lag: Lag,
    /// The beats given settle the lag: false when a search ran past the last of them
    /// without an answer, so that beats after it could change it.
    settled: bool,
    /// The beats from the search's start up to this index are never acknowledged (or
    /// another session's): no read of the same beat needs to look at them again.
    unacked_to: usize,
}

/// [`lag_at`] over beats that may stop short of the cluster's last beat, looking for
/// the next acknowledgement from `from` (> `i`) on: the beats between are known never
/// to be acknowledged ([`Held::unacked_to`] of an earlier read of the same beat). A
/// primary down for hours leaves hours of failed beats after the one its replicas
/// show, which every read would otherwise search again.
fn lag_at_held(
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
fn unmatched(beats: &[BeatTimes], session: u32, seq: u64, obs: &Observation) -> Lag {
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
fn session_continuity(continuity: &[Continuity], session: u32) -> Continuity {
    continuity
        .get(session as usize)
        .copied()
        .unwrap_or(Continuity::for_interval(0))
}

/// Index of beat `seq` in `beats` (ordered by seq), looked for from `at` on, where
/// reads in time order usually find it a few beats on; else by a search.
fn find_seq(beats: &[BeatTimes], at: usize, seq: u64) -> Option<usize> {
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
        BeatWindow {
            reader: beats.reader(),
            ahead: None,
            continuity,
            beats: Vec::new(),
            failed: Vec::new(),
            exhausted: false,
            trimmed: false,
            at: 0,
            lowest_seq: first_seqs.values().min().copied(),
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
            self.unmatched_read(until_us, seq, obs.r_start_us)?;
            return Ok(Some(self.unmatched(session, seq, obs)));
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
    fn load(&mut self, until_us: i64, seq: u64, to_seq: bool) -> Result<(), StoreError> {
        let seq_held = |w: &Self| to_seq && w.beats.last().is_some_and(|b| b.seq >= seq);
        while !(self.loaded(until_us) || seq_held(self)) {
            self.read_more_for(seq)?;
        }
        Ok(())
    }

    /// [`BeatWindow::read_more`] for a read that showed `seq`, dropping the beats more
    /// than [`Self::KEEP`] before it as they come, as [`Self::trim`] would drop them: a
    /// window's first read loads the hours of lookback before it
    /// ([`crate::store::scan::BEAT_LOOKBACK_US`]), which would otherwise all be held.
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
    fn unmatched(&self, session: u32, seq: u64, obs: &Observation) -> Lag {
        let start = self.sessions.get(session as usize);
        let first = start
            .and_then(|s| s.first_seq)
            .or_else(|| self.first_seqs.get(&session).copied());
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

/// A chunk's worth of beats, and the failed ones among them whole ([`BeatReader::fill`]).
type BeatChunk = (Vec<BeatTimes>, Vec<Beat>);

/// A cluster's beats read from the first on by a thread of their own, a chunk's worth
/// at a time, so that decoding them overlaps matching reads to them
/// ([`BeatWindow::reading_ahead`]).
pub struct BeatsAhead {
    chunks: std::sync::mpsc::Receiver<Result<BeatChunk, StoreError>>,
    /// Emptied buffers, handed back for reuse.
    spent: std::sync::mpsc::Sender<Vec<BeatTimes>>,
}

impl BeatsAhead {
    /// Beats handed over at a time, at least (a few chunks' worth).
    const BATCH_BEATS: usize = 16_384;

    /// Starts reading `beats` on a thread of `scope`; it ends at the last beat, at the
    /// first error (handed on), or when the `BeatsAhead` is dropped.
    pub fn start<'scope, 'env: 'scope>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        beats: &'env Beats,
    ) -> BeatsAhead {
        let (tx, chunks) = std::sync::mpsc::sync_channel(4);
        let (spent, spent_rx) = std::sync::mpsc::channel::<Vec<BeatTimes>>();
        scope.spawn(move || {
            let mut reader = beats.reader();
            loop {
                let mut times = spent_rx.try_recv().unwrap_or_default();
                let mut failed = Vec::new();
                // Several chunks at a time: one chunk a send made the two threads wake
                // each other some 9 000 times a day at 100 Hz.
                let mut more = true;
                while more && times.len() < Self::BATCH_BEATS {
                    more = match reader.fill(&mut times, &mut failed) {
                        Ok(more) => more,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                }
                if (!times.is_empty() && tx.send(Ok((times, failed))).is_err()) || !more {
                    return;
                }
            }
        });
        BeatsAhead { chunks, spent }
    }

    /// As [`BeatReader::fill`].
    fn fill(
        &mut self,
        out: &mut Vec<BeatTimes>,
        failed: &mut Vec<Beat>,
    ) -> Result<bool, StoreError> {
        match self.chunks.recv() {
            Ok(chunk) => {
                let (mut times, f) = chunk?;
                out.extend_from_slice(&times);
                failed.extend(f);
                times.clear();
                let _ = self.spent.send(times);
                Ok(true)
            }
            // The reader gave its last beat.
            Err(_) => Ok(false),
        }
    }
}

/// The last beats of the recorder's own session, for computing lag live as reads
/// arrive. Holds the most recent `capacity` to `capacity + capacity / 8` beats in one
/// buffer allocated and touched when created, so the recorder's memory is flat from
/// its start rather than growing until the buffer first fills (24 bytes a beat). A read
/// of an older beat than those has only a floor (the offline analysis, which has every
/// beat, still bounds it).
#[derive(Debug, Clone)]
pub struct RecentBeats {
    beats: Vec<BeatTimes>,
    capacity: usize,
    continuity: Continuity,
}

/// The session number live beats carry (one recorder, one session).
const LIVE_SESSION: u32 = 0;

impl RecentBeats {
    pub fn new(capacity: usize, interval_us: i64) -> Self {
        let capacity = capacity.max(8);
        let mut beats = Vec::with_capacity(capacity + capacity / 8);
        // Write every slot once so that its pages are resident now, not one by one.
        beats.resize(beats.capacity(), BeatTimes::new(0, 0, None, LIVE_SESSION));
        beats.clear();
        RecentBeats {
            beats,
            capacity,
            continuity: Continuity::for_interval(interval_us),
        }
    }

    /// Adds a beat (any outcome); beats arrive in `seq` order from one writer.
    pub fn push(&mut self, beat: &crate::samples::Beat) {
        if self.beats.last().is_some_and(|b| b.seq >= beat.seq) {
            return;
        }
        if self.beats.len() >= self.capacity + self.capacity / 8 {
            self.beats.drain(..self.capacity / 8);
        }
        self.beats.push(BeatTimes::new(
            beat.seq,
            beat.t_send_us,
            beat.t_ack_us(),
            LIVE_SESSION,
        ));
    }

    /// The lag a read shows. A read of a seq older than every beat held is "at least"
    /// the time since the first held beat it lacks (it stalled before the recorder
    /// started, or long ago), or unknown before any acknowledgement. `None` for a failed
    /// read, and for a seq just past the newest beat held (within
    /// [`RecentBeats::AHEAD`]: that beat's sample is still on its way), which is ours,
    /// not foreign.
    pub fn lag(&self, obs: &Observation) -> Option<Lag> {
        let seq = obs.seq?;
        let (Some(first), Some(last)) = (self.beats.first(), self.beats.last()) else {
            return Some(unmatched(&self.beats, LIVE_SESSION, seq, obs));
        };
        if seq < first.seq {
            return Some(unmatched(&self.beats, LIVE_SESSION, seq, obs));
        }
        if seq > last.seq && seq - last.seq <= Self::AHEAD {
            return None;
        }
        lag_of(&self.beats, LIVE_SESSION, self.continuity, obs)
    }

    /// How far past the newest beat held a seq may be and still be this writer's
    /// next beat (beat numbers count intervals, skipped ones included).
    pub const AHEAD: u64 = 1_000;
}

#[cfg(test)]
mod tests {
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

    const INTERVAL: i64 = 10_000;

    fn cont() -> Continuity {
        Continuity::for_interval(INTERVAL)
    }

    fn beat(seq: u64, send: i64, ack: Option<i64>) -> BeatTimes {
        BeatTimes::new(seq, send, ack, 1)
    }

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
            follow_up: false,
            probe: Default::default(),
        }
    }

    fn lag(beats: &[BeatTimes], o: &Observation) -> Option<Lag> {
        lag_of(beats, 1, cont(), o)
    }

    /// Beats every 10 ms from `from` to `to` (seq = k), acknowledged 300 µs later.
    fn steady(from: u64, to: u64) -> Vec<BeatTimes> {
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
    fn recent_beats_agree_with_the_offline_lookup() {
        let beats = steady(1, 50);
        let mut recent = RecentBeats::new(8, INTERVAL);
        for b in &beats {
            recent.push(&full_beat(b.seq, b.t_send_us, b.t_ack_us()));
        }
        let held = obs(Some(48), 485_000, 485_200);
        assert_eq!(recent.lag(&held), lag(&beats, &held));
        // Older than every beat held: at least the time since the first held ack.
        let old = obs(Some(3), 505_000, 505_100);
        let first_held = recent.beats[0];
        assert_eq!(
            recent.lag(&old),
            Some(Lag::AtLeast {
                lo_us: 505_000 - first_held.t_ack_us().unwrap()
            })
        );
        // No beats yet.
        let empty = RecentBeats::new(8, INTERVAL);
        assert_eq!(
            empty.lag(&old),
            Some(Lag::Unknown(Unknown::BeforeFirstBeat))
        );
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
                        seq: t as u64 / 10_000,
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

    #[test]
    fn the_window_over_the_store_agrees_with_the_lookup_over_every_beat() {
        let path = two_session_store("agree");
        let rec = crate::store::scan::load(
            std::slice::from_ref(&path),
            &crate::store::scan::Filter::default(),
        )
        .unwrap();
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
        let rec = crate::store::scan::load(
            std::slice::from_ref(&path),
            &crate::store::scan::Filter::default(),
        )
        .unwrap();
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
