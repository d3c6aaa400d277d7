//! Walking a loaded recording's encoded series: chunks stay in the store (one read
//! snapshot, taken at load) and are read and decoded one at a time as a walk reaches
//! them, so a walk holds a few chunks whatever the recording's length. A replica's
//! observations are walked in time order, a cluster's beats in seq order; several stores
//! are merged as they are walked.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::ReadOnlyTable;

use super::super::codec::{self, SpanChunk};
use super::super::{StoreError, corrupt_at, db_err};
use super::V1_FOLLOW_UP_GAP_US;
use crate::samples::{Beat, BeatTimes, Observation, Outcome, StatusSample};

/// A chunk's key: (series kind, name id, first time in UTC µs, session id).
type ChunkKey = (u8, u32, i64, u32);

/// The store's chunk table, open in the read snapshot the recording was loaded from.
pub(super) type ChunkTable = ReadOnlyTable<ChunkKey, &'static [u8]>;

/// A chunk's encoded bytes, as the table hands them out.
type ChunkBytes = redb::AccessGuard<'static, &'static [u8]>;

/// Where a chunk is in its store, and what its header says.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChunkRef {
    pub first_us: i64,
    /// The session as the store numbers it (the chunk's key, and messages).
    pub store_session: u32,
    /// The session as an index into the recording's sessions.
    pub session: u32,
    /// The beat number of a beat chunk's first beat (0 in other chunks).
    pub seq0: u64,
}

/// One series of one store: its chunks, in key (time) order; beats' in seq order (the
/// same but across a clock stepped back between sessions).
#[derive(Clone)]
pub(super) struct ChunkStream {
    pub table: Arc<ChunkTable>,
    /// Kept open as long as the table is read.
    pub _db: Arc<redb::ReadOnlyDatabase>,
    pub path: PathBuf,
    /// The store's format version: format 1 chunks carry no follow-up marks.
    pub version: u32,
    /// The first session whose chunks carry a checksum ([`codec::with_checksum`]); `None`: no
    /// chunk does (formats 1 and 2).
    pub checksums_from: Option<u32>,
    pub kind: u8,
    pub id: u32,
    /// The series' name, for messages.
    pub key: String,
    pub chunks: Arc<[ChunkRef]>,
}

impl fmt::Debug for ChunkStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkStream")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("key", &self.key)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

/// The part of a series a walk gives out, by time (UTC µs); `None` ends are open.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Window {
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
}

impl Window {
    /// The whole series.
    pub const ALL: Window = Window {
        from_us: None,
        to_us: None,
    };

    pub fn contains(&self, t_us: i64) -> bool {
        self.from_us.is_none_or(|f| t_us >= f) && self.to_us.is_none_or(|t| t_us <= t)
    }
}

/// A chunk's value as read from the store.
struct ReadChunk {
    stored: ChunkBytes,
    /// The encoded chunk's length: the value without its checksum.
    len: usize,
}

impl ReadChunk {
    /// The encoded chunk.
    fn value(&self) -> &[u8] {
        &self.stored.value()[..self.len]
    }
}

/// Reads a stream's chunks in order, from a given one on.
struct ChunkReader<'s> {
    stream: &'s ChunkStream,
    range: Option<redb::Range<'static, ChunkKey, &'static [u8]>>,
    /// Index of the chunk the next read returns.
    next: usize,
    /// The key (time, session) of the chunk the range gave last: a chunk listed after
    /// it with an earlier key (beats across a clock stepped back) opens a new range.
    at: Option<(i64, u32)>,
}

impl<'s> ChunkReader<'s> {
    fn new(stream: &'s ChunkStream, from: usize) -> ChunkReader<'s> {
        ChunkReader {
            stream,
            range: None,
            next: from,
            at: None,
        }
    }

    /// The next chunk and its bytes (checked against their checksum when the chunk
    /// carries one); `None` after the last.
    fn next_chunk(&mut self) -> Result<Option<(ChunkRef, ReadChunk)>, StoreError> {
        let s = self.stream;
        let Some(&c) = s.chunks.get(self.next) else {
            return Ok(None);
        };
        let err = |e: redb::StorageError| db_err(&s.path, e);
        if self.at.is_some_and(|at| at > (c.first_us, c.store_session)) {
            self.range = None;
        }
        if self.range.is_none() {
            let lo = (s.kind, s.id, c.first_us, c.store_session);
            let hi = (s.kind, s.id, i64::MAX, u32::MAX);
            self.range = Some(s.table.range(lo..=hi).map_err(err)?);
        }
        let range = self.range.as_mut().expect("opened above");
        // Chunks the load left out (--skip-corrupt) are passed over.
        let value = loop {
            let (key, value) = match range.next() {
                Some(item) => item.map_err(err)?,
                None => return Err(self.missing(c)),
            };
            let (_, _, first_us, store_session) = key.value();
            match (first_us, store_session).cmp(&(c.first_us, c.store_session)) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => break value,
                std::cmp::Ordering::Greater => return Err(self.missing(c)),
            }
        };
        self.next += 1;
        self.at = Some((c.first_us, c.store_session));
        let len = if s.checksums_from.is_some_and(|from| c.store_session >= from) {
            codec::checked(value.value())
                .map_err(|e| self.corrupt(&c, &format!("{e} (--skip-corrupt reads around it)")))?
                .len()
        } else {
            value.value().len()
        };
        Ok(Some((c, ReadChunk { stored: value, len })))
    }

    /// The snapshot is the one the chunk list came from: a chunk not found is a bug or
    /// a store changed under a read transaction, never silently skipped.
    fn missing(&self, c: ChunkRef) -> StoreError {
        self.corrupt(&c, &"vanished while being read")
    }

    /// The error for chunk `c` of this stream when it cannot be read or decoded.
    fn corrupt(&self, c: &ChunkRef, e: &dyn fmt::Display) -> StoreError {
        let s = self.stream;
        corrupt_at(
            &s.path,
            format!(
                "chunk {}/{}@{} (session {}): {e}",
                s.kind, s.key, c.first_us, c.store_session
            ),
        )
    }
}

/// A replica's observations, still in the store, decoded chunk by chunk while they are
/// walked in time order (a day at 100 Hz is 8.6 M observations, over half a gigabyte
/// decoded). Several stores are merged by time as they are walked.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    pub(super) streams: Vec<ChunkStream>,
    /// Reads starting outside it are left out.
    pub(super) window: Window,
    /// Chunks decoded so far by every walk of the recording.
    pub(super) decoded: Arc<AtomicU64>,
}

/// Where one store's walk has come.
struct Cursor<'s> {
    reader: ChunkReader<'s>,
    buf: Vec<(Observation, u32)>,
    pos: usize,
}

impl Observations {
    /// Calls `f` with every observation in time order and the session that took it (an
    /// index into the recording's sessions); stops at the first corrupt chunk or the
    /// first error `f` returns.
    pub fn for_each<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(&Observation, u32) -> Result<(), E>,
    ) -> Result<(), E> {
        if let [stream] = self.streams.as_slice() {
            // One store: straight from the decoder, no buffer.
            let mut reader = ChunkReader::new(stream, 0);
            while let Some((c, bytes)) = reader.next_chunk()? {
                // Only an error is stored: writing `Ok` over a large `Result` for every
                // observation costs more than the decoding does.
                let mut result = Ok(());
                self.decode(&reader, &c, bytes.value(), |o| {
                    if result.is_ok()
                        && let Err(e) = f(o, c.session)
                    {
                        result = Err(e);
                    }
                })?;
                self.count_decoded();
                result?;
            }
            return Ok(());
        }
        let mut cursors = Vec::with_capacity(self.streams.len());
        for stream in &self.streams {
            let mut c = Cursor {
                reader: ChunkReader::new(stream, 0),
                buf: Vec::new(),
                pos: 0,
            };
            if self.refill(&mut c)? {
                cursors.push(c);
            }
        }
        // Several stores: always take the earliest pending observation.
        while !cursors.is_empty() {
            let (i, _) = cursors
                .iter()
                .enumerate()
                .min_by_key(|(_, c)| c.buf[c.pos].0.r_start_us)
                .expect("not empty");
            let c = &mut cursors[i];
            let (o, session) = &c.buf[c.pos];
            f(o, *session)?;
            c.pos += 1;
            if c.pos == c.buf.len() && !self.refill(c)? {
                cursors.swap_remove(i);
            }
        }
        Ok(())
    }

    /// Decodes the cursor's next non-empty chunk into its buffer; false at the end.
    fn refill(&self, c: &mut Cursor) -> Result<bool, StoreError> {
        c.buf.clear();
        c.pos = 0;
        while let Some((chunk, bytes)) = c.reader.next_chunk()? {
            let buf = &mut c.buf;
            self.decode(&c.reader, &chunk, bytes.value(), |o| {
                buf.push((o.clone(), chunk.session))
            })?;
            self.count_decoded();
            if !c.buf.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Decodes one chunk, calling `each` with its observations inside the window.
    fn decode(
        &self,
        reader: &ChunkReader,
        c: &ChunkRef,
        bytes: &[u8],
        mut each: impl FnMut(&Observation),
    ) -> Result<(), StoreError> {
        let chunk = SpanChunk::from_bytes(bytes).map_err(|e| reader.corrupt(c, &e))?;
        // Format 1 did not record follow-ups: they are inferred as that version's
        // analysis did, from a read starting within 1 ms of the previous one's end.
        let infer = reader.stream.version < 2;
        let mut prev_end: Option<i64> = None;
        codec::decode_spans_each(
            &chunk,
            // Called for each span, this closure took the span's fields from memory just
            // written in narrower pieces: the loads waited for the stores (no store
            // forwarding), a tenth of the walk. Inlined, the fields stay in registers.
            #[inline(always)]
            |s| {
                let mut o = Observation::from(s);
                if infer {
                    o.follow_up = o.outcome == Outcome::Ok
                        && prev_end.is_some_and(|end| o.r_start_us - end < V1_FOLLOW_UP_GAP_US);
                    prev_end = (o.outcome == Outcome::Ok).then_some(o.r_end_us);
                }
                if self.window.contains(o.r_start_us) {
                    each(&o);
                }
            },
        )
        .map_err(|e| reader.corrupt(c, &e))
    }

    /// Counts a chunk decoded by a walk (for progress).
    fn count_decoded(&self) {
        self.decoded.fetch_add(1, Ordering::Relaxed);
    }

    /// The start of the first observation and the end of the last, µs (inside the
    /// window); `None` when there is none. Decodes only the chunks at the two ends.
    pub fn span_us(&self) -> Result<Option<(i64, i64)>, StoreError> {
        let (mut first, mut last): (Option<i64>, Option<i64>) = (None, None);
        for stream in &self.streams {
            // From the front until an observation inside the window shows up...
            let mut reader = ChunkReader::new(stream, 0);
            let mut found = None;
            while found.is_none()
                && let Some((c, bytes)) = reader.next_chunk()?
            {
                self.decode(&reader, &c, bytes.value(), |o| {
                    found.get_or_insert(o.r_start_us);
                })?;
            }
            // ... and from the back.
            let mut end = None;
            for i in (0..stream.chunks.len()).rev() {
                let mut reader = ChunkReader::new(stream, i);
                if let Some((c, bytes)) = reader.next_chunk()? {
                    self.decode(&reader, &c, bytes.value(), |o| {
                        end = Some(end.map_or(o.r_end_us, |e: i64| e.max(o.r_end_us)));
                    })?;
                }
                if end.is_some() {
                    break;
                }
            }
            first = match (first, found) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            last = last.max(end);
        }
        Ok(first.zip(last))
    }

    /// Chunks in the walk (for progress).
    pub fn chunks(&self) -> u64 {
        self.streams.iter().map(|s| s.chunks.len() as u64).sum()
    }
}

/// A replica's status samples, still in the store, decoded chunk by chunk in time order
/// ([`StatusSamples::iter`]); several stores are merged by time.
#[derive(Debug, Clone, Default)]
pub struct StatusSamples {
    pub(super) streams: Vec<ChunkStream>,
    /// Samples taken outside it are left out.
    pub(super) window: Window,
}

impl StatusSamples {
    /// The samples in time order, decoded as the iterator reaches them.
    pub fn iter(&self) -> StatusIter<'_> {
        StatusIter {
            samples: self,
            cursors: self
                .streams
                .iter()
                .map(|s| (ChunkReader::new(s, 0), std::collections::VecDeque::new()))
                .collect(),
            failed: false,
        }
    }

    /// Calls `f` with every sample in time order, as [`StatusSamples::iter`] gives
    /// them, decoded on a second thread a chunk ahead: decoding is most of a status walk
    /// (a week at 1 Hz is 600 k samples), and it then runs beside `f`. The samples are
    /// dropped on that thread too, where they were allocated: dropped on the caller's,
    /// the walk took half as long again.
    pub fn for_each_ahead(&self, mut f: impl FnMut(&StatusSample)) -> Result<(), StoreError> {
        type Batch = Result<Vec<StatusSample>, StoreError>;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(4);
            // Batches handed back once seen.
            let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<StatusSample>>();
            scope.spawn(move || {
                self.batches(|batch| {
                    back_rx.try_iter().for_each(drop);
                    // Stops when the caller no longer listens.
                    tx.send(batch).is_ok()
                })
            });
            for batch in rx {
                let batch = batch?;
                batch.iter().for_each(&mut f);
                let _ = back_tx.send(batch);
            }
            Ok(())
        })
    }

    /// Hands the samples in time order to `send` a batch at a time (a chunk's, from a
    /// single store), then the first error; stops when `send` returns false.
    fn batches(&self, mut send: impl FnMut(Result<Vec<StatusSample>, StoreError>) -> bool) {
        if let [stream] = self.streams.as_slice() {
            let mut reader = ChunkReader::new(stream, 0);
            while let Some(batch) = self.next_chunk(&mut reader).transpose() {
                let failed = batch.is_err();
                if !send(batch) || failed {
                    return;
                }
            }
            return;
        }
        /// Samples handed over at a time from several stores.
        const BATCH: usize = 1024;
        let mut batch = Vec::with_capacity(BATCH);
        for s in self.iter() {
            match s {
                Ok(s) => batch.push(s),
                Err(e) => {
                    send(Err(e));
                    return;
                }
            }
            if batch.len() == BATCH && !send(Ok(std::mem::take(&mut batch))) {
                return;
            }
        }
        send(Ok(batch));
    }

    /// The samples of the reader's next chunk inside the window; `None` after the last.
    fn next_chunk(
        &self,
        reader: &mut ChunkReader,
    ) -> Result<Option<Vec<StatusSample>>, StoreError> {
        let Some((c, bytes)) = reader.next_chunk()? else {
            return Ok(None);
        };
        let mut samples =
            codec::status_from_bytes(bytes.value()).map_err(|e| reader.corrupt(&c, &e))?;
        samples.retain(|s| self.window.contains(s.t_us));
        Ok(Some(samples))
    }

    /// Every sample at once (for the commands that hold a whole series: replay).
    pub fn collect(&self) -> Result<Vec<StatusSample>, StoreError> {
        self.iter().collect()
    }
}

/// See [`StatusSamples::iter`]; stops after the first error.
pub struct StatusIter<'s> {
    samples: &'s StatusSamples,
    /// Per store: its reader and the decoded samples of its current chunk not yet
    /// given out.
    cursors: Vec<(ChunkReader<'s>, std::collections::VecDeque<StatusSample>)>,
    failed: bool,
}

impl StatusIter<'_> {
    /// Decodes the next chunks of store `i` until it has a sample (or none are left).
    fn refill(&mut self, i: usize) -> Result<(), StoreError> {
        let (reader, buf) = &mut self.cursors[i];
        while buf.is_empty()
            && let Some(samples) = self.samples.next_chunk(reader)?
        {
            buf.extend(samples);
        }
        Ok(())
    }
}

impl Iterator for StatusIter<'_> {
    type Item = Result<StatusSample, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        for i in 0..self.cursors.len() {
            if let Err(e) = self.refill(i) {
                self.failed = true;
                return Some(Err(e));
            }
        }
        // The earliest sample of any store.
        let (_, buf) = self
            .cursors
            .iter_mut()
            .filter(|(_, buf)| !buf.is_empty())
            .min_by_key(|(_, buf)| buf[0].t_us)?;
        buf.pop_front().map(Ok)
    }
}

/// A cluster's beats, still in the store, decoded chunk by chunk in seq order by a
/// [`BeatReader`]. Several stores are merged by seq (a beat in two stores is kept once).
#[derive(Debug, Clone, Default)]
pub struct Beats {
    pub(super) streams: Vec<ChunkStream>,
    /// Beats sent outside it are left out.
    pub(super) window: Window,
}

impl Beats {
    /// No beats.
    pub const EMPTY: Beats = Beats {
        streams: Vec::new(),
        window: Window::ALL,
    };

    /// A reader from the first beat on.
    pub fn reader(&self) -> BeatReader<'_> {
        BeatReader {
            beats: self,
            cursors: self.streams.iter().map(|s| BeatCursor::new(s, 0)).collect(),
            last_seq: None,
        }
    }

    /// The lowest seq each recorder session wrote, by session index, from the chunks'
    /// headers (the beats themselves are not read).
    pub fn first_seqs(&self) -> std::collections::BTreeMap<u32, u64> {
        let mut out = std::collections::BTreeMap::new();
        for c in self.streams.iter().flat_map(|s| s.chunks.iter()) {
            out.entry(c.session)
                .and_modify(|s: &mut u64| *s = (*s).min(c.seq0))
                .or_insert(c.seq0);
        }
        out
    }

    /// Every beat at once, with the failed ones whole (for the commands that hold a
    /// whole series: plot, export, replay).
    pub fn collect(&self) -> Result<(Vec<BeatTimes>, Vec<Beat>), StoreError> {
        let (mut beats, mut failed) = (Vec::new(), Vec::new());
        let mut reader = self.reader();
        while reader.fill(&mut beats, &mut failed)? {}
        Ok((beats, failed))
    }
}

/// One store's part of a [`BeatReader`]: the beats of its last decoded chunk.
struct BeatCursor<'s> {
    reader: ChunkReader<'s>,
    buf: Vec<BeatTimes>,
    /// The failed beats of `buf`, whole, by position in it.
    failed: Vec<(usize, Beat)>,
    pos: usize,
    failed_pos: usize,
}

impl<'s> BeatCursor<'s> {
    fn new(stream: &'s ChunkStream, from: usize) -> BeatCursor<'s> {
        BeatCursor {
            reader: ChunkReader::new(stream, from),
            buf: Vec::new(),
            failed: Vec::new(),
            pos: 0,
            failed_pos: 0,
        }
    }

    /// Decodes the next chunk that holds beats to keep into the buffer; false at the
    /// end.
    fn refill(&mut self, beats: &Beats) -> Result<bool, StoreError> {
        (self.pos, self.failed_pos) = (0, 0);
        self.buf.clear();
        self.failed.clear();
        let (buf, failed) = (&mut self.buf, &mut self.failed);
        Self::next_beats(&mut self.reader, beats, |b, f| {
            buf.push(b);
            if let Some(f) = f {
                failed.push((buf.len() - 1, f));
            }
        })
    }

    /// Decodes the next chunk that holds beats to keep, calling `keep` with each and,
    /// for a failed one, the beat whole; false at the end.
    fn next_beats(
        reader: &mut ChunkReader,
        beats: &Beats,
        mut keep: impl FnMut(BeatTimes, Option<Beat>),
    ) -> Result<bool, StoreError> {
        while let Some((c, bytes)) = reader.next_chunk()? {
            let chunk = SpanChunk::from_bytes(bytes.value()).map_err(|e| reader.corrupt(&c, &e))?;
            let mut kept = false;
            codec::decode_spans_each(
                &chunk,
                // Inlined, as in `Observations::decode`, and `keep` too (`fill`).
                #[inline(always)]
                |s| {
                    if !beats.window.contains(s.start_us) {
                        return;
                    }
                    kept = true;
                    let ok = s.outcome == Outcome::Ok;
                    let times =
                        BeatTimes::new(s.seq, s.start_us, ok.then_some(s.end_us), c.session);
                    keep(times, (!ok).then(|| Beat::from(s)));
                },
            )
            .map_err(|e| reader.corrupt(&c, &e))?;
            if kept {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn peek(&self) -> Option<&BeatTimes> {
        self.buf.get(self.pos)
    }
}

/// Reads a cluster's beats in seq order, a chunk's worth at a time, and can go back to
/// an earlier seq ([`BeatReader::seek`]).
pub struct BeatReader<'b> {
    beats: &'b Beats,
    cursors: Vec<BeatCursor<'b>>,
    /// The seq of the last beat given out (a beat in two stores is given once).
    last_seq: Option<u64>,
}

impl BeatReader<'_> {
    /// Appends the next beats in seq order (a chunk's worth, or a few when several
    /// stores are merged) to `out`, and the failed ones among them, whole, to `failed`;
    /// false when there are no more.
    pub fn fill(
        &mut self,
        out: &mut Vec<BeatTimes>,
        failed: &mut Vec<Beat>,
    ) -> Result<bool, StoreError> {
        if let [c] = self.cursors.as_mut_slice()
            && c.peek().is_none()
        {
            // One store, its chunk given out: the next chunk goes straight to `out`.
            let (last_seq, mut decoded_last) = (self.last_seq, None);
            let more = BeatCursor::next_beats(
                &mut c.reader,
                self.beats,
                #[inline(always)]
                |b, f| {
                    decoded_last = Some(b.seq);
                    if last_seq.is_none_or(|l| b.seq > l) {
                        out.push(b);
                        failed.extend(f);
                    }
                },
            )?;
            self.last_seq = decoded_last.max(self.last_seq);
            if !more {
                self.cursors.clear();
            }
            return Ok(more);
        }
        for c in &mut self.cursors {
            if c.peek().is_none() {
                c.refill(self.beats)?;
            }
        }
        self.cursors.retain(|c| c.peek().is_some());
        if self.cursors.is_empty() {
            return Ok(false);
        }
        if let [c] = self.cursors.as_mut_slice() {
            // One store: the rest of its chunk as it is.
            let from = c.pos;
            for b in &c.buf[from..] {
                if self.last_seq.is_none_or(|l| b.seq > l) {
                    out.push(*b);
                }
            }
            failed.extend(
                c.failed[c.failed_pos..]
                    .iter()
                    .filter(|(i, b)| *i >= from && self.last_seq.is_none_or(|l| b.seq > l))
                    .map(|(_, b)| b.clone()),
            );
            self.last_seq = c.buf.last().map(|b| b.seq).max(self.last_seq);
            c.pos = c.buf.len();
            c.failed_pos = c.failed.len();
            return Ok(true);
        }
        // Several stores: the lowest seqs until one cursor's chunk runs out.
        loop {
            let Some((i, _)) = self
                .cursors
                .iter()
                .enumerate()
                .filter_map(|(i, c)| Some((i, c.peek()?.seq)))
                .min_by_key(|&(_, seq)| seq)
            else {
                return Ok(true);
            };
            let c = &mut self.cursors[i];
            let b = c.buf[c.pos];
            while c
                .failed
                .get(c.failed_pos)
                .is_some_and(|(at, _)| *at < c.pos)
            {
                c.failed_pos += 1;
            }
            if self.last_seq.is_none_or(|l| b.seq > l) {
                out.push(b);
                if let Some((at, f)) = c.failed.get(c.failed_pos)
                    && *at == c.pos
                {
                    failed.push(f.clone());
                }
                self.last_seq = Some(b.seq);
            }
            c.pos += 1;
            if c.peek().is_none() {
                return Ok(true);
            }
        }
    }

    /// Goes back (or forward) so that the next [`BeatReader::fill`] starts at or
    /// before the beat numbered `seq`: at the last chunk of each store whose first
    /// beat is not after it.
    pub fn seek(&mut self, seq: u64) {
        self.cursors = self
            .beats
            .streams
            .iter()
            .map(|s| {
                let at = s.chunks.partition_point(|c| c.seq0 <= seq);
                BeatCursor::new(s, at.saturating_sub(1))
            })
            .collect();
        self.last_seq = None;
    }
}
