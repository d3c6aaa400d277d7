//! Reading a recording back: every series of one or several stores, decoded and merged
//! by name, for the offline commands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{ReadableDatabase, ReadableTable};

use super::codec::{self, SpanChunk, StatusChunk};
use super::writer::MAX_CHUNK_SPAN_US;
use super::{
    CHUNKS, KIND_BEATS, KIND_OBSERVATIONS, KIND_STATUS, NAME_IDS, SESSIONS, SessionInfo,
    StoreError, db_err, open_read,
};
use crate::samples::{Beat, BeatTimes, Observation, Outcome, StatusSample};

/// Which part of a recording to load. Times are UTC µs; `None` is unbounded.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub clusters: Vec<String>,
    pub replicas: Vec<String>,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
}

/// How far before `from` beats are loaded, so that a replica lagging by up to this much
/// at the start of the window still has its beat to bound the lag.
pub const BEAT_LOOKBACK_US: i64 = 6 * 3_600_000_000;

impl Filter {
    fn wants_cluster(&self, cluster: &str) -> bool {
        self.clusters.is_empty() || self.clusters.iter().any(|c| c == cluster)
    }

    fn wants_replica(&self, cluster: &str, replica: &str) -> bool {
        self.wants_cluster(cluster)
            && (self.replicas.is_empty() || self.replicas.iter().any(|r| r == replica))
    }

    fn in_window(&self, t_us: i64) -> bool {
        self.from_us.is_none_or(|f| t_us >= f) && self.to_us.is_none_or(|t| t_us <= t)
    }
}

/// Everything recorded about one replica.
#[derive(Debug, Clone, Default)]
pub struct ReplicaSeries {
    pub cluster: String,
    pub replica: String,
    /// Still encoded: walked (and decoded chunk by chunk) with [`Observations::for_each`].
    pub observations: Observations,
    /// In time order.
    pub status: Vec<StatusSample>,
}

/// A loaded recording.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// Beats per cluster, ordered by `seq` (one per seq), reduced to their times.
    pub beats: BTreeMap<String, Vec<BeatTimes>>,
    /// The beats that failed (with their outcome and reason), per cluster, ordered by
    /// `seq`: few, and what primary outages are told from.
    pub failed_beats: BTreeMap<String, Vec<Beat>>,
    /// Replicas, ordered by (cluster, replica).
    pub replicas: Vec<ReplicaSeries>,
    /// Every recorder session of the stores, store by store in the order given; beats
    /// and observations name theirs by index into this.
    pub sessions: Vec<SessionInfo>,
    /// Chunks decoded so far, of `chunks` selected.
    decoded: Arc<AtomicU64>,
    chunks: u64,
}

impl Recording {
    /// The beats of `cluster`, ordered by seq (empty when the recording holds none).
    pub fn beats_of(&self, cluster: &str) -> &[BeatTimes] {
        self.beats.get(cluster).map_or(&[], Vec::as_slice)
    }

    /// A handle that tells how many of the selected chunks have been decoded so far:
    /// observations are decoded as they are walked, after loading.
    pub fn progress(&self) -> ProgressHandle {
        ProgressHandle {
            decoded: Arc::clone(&self.decoded),
            total: self.chunks,
        }
    }
}

/// See [`Recording::progress`]; can be read from another thread.
#[derive(Debug, Clone)]
pub struct ProgressHandle {
    decoded: Arc<AtomicU64>,
    total: u64,
}

impl ProgressHandle {
    pub fn get(&self) -> Progress {
        Progress {
            done: self.decoded.load(Ordering::Relaxed),
            total: self.total,
        }
    }
}

/// One stored chunk, still encoded.
#[derive(Debug, Clone)]
struct RawChunk {
    first_us: i64,
    /// The session as the store numbers it (for messages).
    store_session: u32,
    /// The session as an index into [`Recording::sessions`].
    session: u32,
    bytes: Vec<u8>,
}

impl RawChunk {
    /// The error for this chunk, of series `kind`/`key` in the store at `path`, when it
    /// does not decode.
    fn corrupt(&self, path: &Path, kind: u8, key: &str, e: &dyn std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "chunk {kind}/{key}@{} (session {}): {e}",
                self.first_us, self.store_session
            ),
        }
    }
}

/// The observation chunks of one replica from one store, in time order: those of
/// `chunks[range]` (a walk may be split into parts, each walked on its own thread).
#[derive(Debug, Clone)]
struct ChunkStream {
    path: PathBuf,
    /// The store's format version: format 1 chunks carry no follow-up marks.
    version: u32,
    key: String,
    chunks: Arc<[RawChunk]>,
    range: std::ops::Range<usize>,
}

/// A replica's observations, kept encoded (a day at 100 Hz is 8.6 M observations, over
/// half a gigabyte decoded) and decoded chunk by chunk while they are walked in time
/// order. Several stores are merged by time as they are walked.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    streams: Vec<ChunkStream>,
    from_us: Option<i64>,
    to_us: Option<i64>,
    /// Spans in the chunks (a few at the window's edges may fall outside it).
    spans: u64,
    decoded: Arc<AtomicU64>,
}

/// Where one store's walk has come.
struct Cursor<'a> {
    stream: &'a ChunkStream,
    next_chunk: usize,
    buf: Vec<(Observation, u32)>,
    pos: usize,
}

impl Observations {
    /// About how many observations there are (exact unless `--from`/`--to` cut chunks).
    pub fn len_hint(&self) -> usize {
        self.spans as usize
    }

    /// Calls `f` with every observation in time order and the session that took it (an
    /// index into [`Recording::sessions`]); stops at the first corrupt chunk.
    pub fn for_each(&self, mut f: impl FnMut(&Observation, u32)) -> Result<(), StoreError> {
        if let [stream] = self.streams.as_slice() {
            // One store: straight from the decoder, no buffer.
            for raw in &stream.chunks[stream.range.clone()] {
                self.decode(stream, raw, |o| f(o, raw.session))?;
            }
            return Ok(());
        }
        let mut cursors = Vec::with_capacity(self.streams.len());
        for stream in &self.streams {
            let mut c = Cursor {
                stream,
                next_chunk: stream.range.start,
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
            f(o, *session);
            c.pos += 1;
            if c.pos == c.buf.len() && !self.refill(c)? {
                cursors.swap_remove(i);
            }
        }
        Ok(())
    }

    /// The observations cut into up to `n` consecutive parts of about equal size, to be
    /// walked on separate threads; one part when they come from several stores (those
    /// are merged as they are walked).
    pub fn parts(&self, n: usize) -> Vec<Observations> {
        let [stream] = self.streams.as_slice() else {
            return vec![self.clone()];
        };
        let counts: Vec<u64> = stream.chunks[stream.range.clone()]
            .iter()
            .map(|c| span_count(&c.bytes))
            .collect();
        let total: u64 = counts.iter().sum();
        let n = n.clamp(1, counts.len().max(1)) as u64;
        let mut parts = Vec::new();
        let (mut start, mut sum) = (stream.range.start, 0u64);
        for (i, &count) in counts.iter().enumerate() {
            sum += count;
            let end = stream.range.start + i + 1;
            let boundary = sum * n >= total * (parts.len() as u64 + 1);
            if boundary || end == stream.range.end {
                parts.push(Observations {
                    streams: vec![ChunkStream {
                        range: start..end,
                        ..stream.clone()
                    }],
                    spans: counts[start - stream.range.start..i + 1].iter().sum(),
                    ..self.clone()
                });
                start = end;
            }
        }
        if parts.is_empty() {
            parts.push(self.clone());
        }
        parts
    }

    /// Decodes the cursor's next non-empty chunk into its buffer; false at the end.
    fn refill(&self, c: &mut Cursor) -> Result<bool, StoreError> {
        while c.next_chunk < c.stream.range.end {
            let raw = &c.stream.chunks[c.next_chunk];
            c.next_chunk += 1;
            c.buf.clear();
            c.pos = 0;
            self.decode(c.stream, raw, |o| c.buf.push((o.clone(), raw.session)))?;
            if !c.buf.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Decodes one chunk, calling `each` with its observations inside the window.
    fn decode(
        &self,
        stream: &ChunkStream,
        raw: &RawChunk,
        mut each: impl FnMut(&Observation),
    ) -> Result<(), StoreError> {
        let corrupt = |e: &dyn std::fmt::Display| {
            raw.corrupt(&stream.path, KIND_OBSERVATIONS, &stream.key, e)
        };
        let chunk = SpanChunk::from_bytes(&raw.bytes).map_err(|e| corrupt(&e))?;
        let (from, to) = (self.from_us, self.to_us);
        // Format 1 did not record follow-ups: they are inferred as that version's
        // analysis did, from a read starting within 1 ms of the previous one's end.
        let infer = stream.version < 2;
        let mut prev_end: Option<i64> = None;
        codec::decode_spans_each(&chunk, |s| {
            let mut o = Observation::from(s);
            if infer {
                o.follow_up = o.outcome == Outcome::Ok
                    && prev_end.is_some_and(|end| o.r_start_us - end < V1_FOLLOW_UP_GAP_US);
                prev_end = (o.outcome == Outcome::Ok).then_some(o.r_end_us);
            }
            if from.is_none_or(|f| o.r_start_us >= f) && to.is_none_or(|t| o.r_start_us <= t) {
                each(&o);
            }
        })
        .map_err(|e| corrupt(&e))?;
        self.decoded.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Format 1 stores: a read starting less than this after the previous one ended was
/// taken as its follow-up.
pub const V1_FOLLOW_UP_GAP_US: i64 = 1_000;

/// What an interned name is.
enum Named {
    Cluster(String),
    Replica(String, String),
}

fn parse_name(key: &str) -> Option<Named> {
    if let Some(c) = key.strip_prefix("c/") {
        return Some(Named::Cluster(c.to_string()));
    }
    let rest = key.strip_prefix("r/")?;
    let (c, r) = rest.split_once('/')?;
    Some(Named::Replica(c.to_string(), r.to_string()))
}

/// Loads and merges the recordings of several stores.
pub fn load(paths: &[PathBuf], filter: &Filter) -> Result<Recording, StoreError> {
    load_with_progress(paths, filter, &mut |_| {})
}

/// How far a load has come: chunks decoded so far, of `total` selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// One series of one store to decode while loading (beats or status): its raw chunks,
/// read in the first (serial) phase and decoded in the second (parallel) one.
struct Task {
    path: PathBuf,
    kind: u8,
    key: String,
    cluster: String,
    replica: Option<String>,
    /// In key order.
    chunks: Vec<RawChunk>,
}

/// What [`read_chunks`] found in one store.
#[derive(Default)]
struct Found {
    tasks: Vec<Task>,
    /// (cluster, replica, the replica's observations in this store).
    streams: Vec<(String, String, ChunkStream)>,
}

/// A decoded series.
enum Decoded {
    /// Every beat's times, and the failed beats whole.
    Beats(Vec<BeatTimes>, Vec<Beat>),
    Status(Vec<StatusSample>),
}

/// [`load`], calling `progress` (on the calling thread) as chunks are decoded. Chunks
/// are read from the files first, then beats and status are decoded, series by series,
/// on as many threads as there are cores. Observations stay encoded until walked.
pub fn load_with_progress(
    paths: &[PathBuf],
    filter: &Filter,
    progress: &mut dyn FnMut(Progress),
) -> Result<Recording, StoreError> {
    let mut rec = Recording::default();
    let mut found = Found::default();
    for path in paths {
        read_chunks(path, filter, &mut rec, &mut found)?;
    }
    let tasks = found.tasks;
    let task_chunks: u64 = tasks.iter().map(|t| t.chunks.len() as u64).sum();
    let stream_chunks: u64 = found
        .streams
        .iter()
        .map(|(_, _, s)| s.chunks.len() as u64)
        .sum();
    rec.chunks = task_chunks + stream_chunks;
    tracing::debug!(chunks = rec.chunks, "chunks read");
    progress(Progress {
        done: 0,
        total: rec.chunks,
    });
    let total = rec.chunks;
    let decoded = decode_all(&tasks, filter, total, progress)?;
    rec.decoded.store(task_chunks, Ordering::Relaxed);
    tracing::debug!("beats and status decoded");

    let mut replicas: BTreeMap<(String, String), ReplicaSeries> = BTreeMap::new();
    for (task, d) in tasks.iter().zip(decoded) {
        match d {
            Decoded::Beats(b, failed) => {
                let all = rec.beats.entry(task.cluster.clone()).or_default();
                if all.is_empty() {
                    *all = b;
                } else {
                    all.extend(b);
                }
                rec.failed_beats
                    .entry(task.cluster.clone())
                    .or_default()
                    .extend(failed);
            }
            Decoded::Status(st) => {
                replica_series(&mut replicas, &task.cluster, task.replica.as_deref())
                    .status
                    .extend(st);
            }
        }
    }
    for (cluster, replica, stream) in found.streams {
        let series = replica_series(&mut replicas, &cluster, Some(&replica));
        let obs = &mut series.observations;
        obs.spans += stream
            .chunks
            .iter()
            .map(|c| span_count(&c.bytes))
            .sum::<u64>();
        obs.streams.push(stream);
    }
    // One store's series come out ordered; merged stores (or overlapping sessions) need
    // a sort, which is cheap on data that is already nearly in order.
    for beats in rec.beats.values_mut() {
        // One pass when, as usual, there is nothing to do.
        if !beats.is_sorted_by(|a, b| a.seq < b.seq) {
            beats.sort_by_key(|b| b.seq);
            beats.dedup_by_key(|b| b.seq);
        }
    }
    for failed in rec.failed_beats.values_mut() {
        if !failed.is_sorted_by(|a, b| a.seq < b.seq) {
            failed.sort_by_key(|b| b.seq);
            failed.dedup_by_key(|b| b.seq);
        }
    }
    for series in replicas.values_mut() {
        if !series.status.is_sorted_by_key(|s| s.t_us) {
            series.status.sort_by_key(|s| s.t_us);
        }
        let obs = &mut series.observations;
        obs.from_us = filter.from_us;
        obs.to_us = filter.to_us;
        obs.decoded = Arc::clone(&rec.decoded);
    }
    rec.replicas = replicas.into_values().collect();
    Ok(rec)
}

/// The span count a span chunk starts with (0 when unreadable: decoding will say why).
fn span_count(bytes: &[u8]) -> u64 {
    postcard::take_from_bytes::<u32>(bytes).map_or(0, |(n, _)| u64::from(n))
}

/// Decodes every task: the beats of each cluster on all threads at once (a cluster's
/// beats are as many as a replica's observations) while one more thread decodes the
/// status series. The calling thread reports progress. Results come back in task order.
fn decode_all(
    tasks: &[Task],
    filter: &Filter,
    total: u64,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<Decoded>, StoreError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let done = AtomicU64::new(0);
    let (beats, status): (Vec<_>, Vec<_>) = tasks
        .iter()
        .enumerate()
        .partition(|(_, t)| t.kind == KIND_BEATS);
    let mut results: Vec<Option<Result<Decoded, StoreError>>> =
        (0..tasks.len()).map(|_| None).collect();
    let decoded_status = std::thread::scope(|scope| {
        let statuses = scope.spawn(|| {
            status
                .iter()
                .map(|&(i, task)| {
                    let r = decode_status(task, filter, &mut |n| {
                        done.fetch_add(n, Ordering::Relaxed);
                    });
                    (i, r.map(Decoded::Status))
                })
                .collect::<Vec<_>>()
        });
        for &(i, task) in &beats {
            let r = decode_beats(task, filter, threads, &done, &mut |d| {
                progress(Progress { done: d, total })
            });
            results[i] = Some(r.map(|(beats, failed)| Decoded::Beats(beats, failed)));
        }
        statuses
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    });
    for (i, r) in decoded_status {
        results[i] = Some(r);
    }
    progress(Progress {
        done: done.load(Ordering::Relaxed),
        total,
    });
    results
        .into_iter()
        .map(|r| r.expect("every task decoded"))
        .collect()
}

/// The error for a chunk of `task` that does not decode.
fn corrupt_chunk(task: &Task, c: &RawChunk, e: &dyn std::fmt::Display) -> StoreError {
    c.corrupt(&task.path, task.kind, &task.key, e)
}

/// Calls `report` every 64 calls of `tick` with the count since the last report.
struct Ticker<'a> {
    since: u64,
    report: &'a mut dyn FnMut(u64),
}

impl Ticker<'_> {
    fn tick(&mut self) {
        self.since += 1;
        if self.since == 64 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        (self.report)(self.since);
        self.since = 0;
    }
}

fn decode_status(
    task: &Task,
    filter: &Filter,
    report: &mut dyn FnMut(u64),
) -> Result<Vec<StatusSample>, StoreError> {
    let mut ticker = Ticker { since: 0, report };
    let mut out = Vec::new();
    for c in task.chunks.iter() {
        let chunk: StatusChunk =
            postcard::from_bytes(&c.bytes).map_err(|e| corrupt_chunk(task, c, &e))?;
        let samples = codec::decode_status(&chunk).map_err(|e| corrupt_chunk(task, c, &e))?;
        out.extend(samples.into_iter().filter(|s| filter.in_window(s.t_us)));
        ticker.tick();
    }
    ticker.flush();
    Ok(out)
}

/// Decodes a cluster's beats on `threads` threads, each filling its own consecutive
/// slice of one vector sized from the chunks' span counts (no copy, no merge), and
/// keeping the failed beats whole. `done` counts decoded chunks; `report` is called on
/// this thread with its value.
fn decode_beats(
    task: &Task,
    filter: &Filter,
    threads: usize,
    done: &AtomicU64,
    report: &mut dyn FnMut(u64),
) -> Result<(Vec<BeatTimes>, Vec<Beat>), StoreError> {
    let counts: Vec<usize> = task
        .chunks
        .iter()
        .map(|c| span_count(&c.bytes) as usize)
        .collect();
    let n: usize = counts.iter().sum();
    // Placeholders, each overwritten by the thread that decodes its chunk (checked
    // below: a part that does not fill its slice exactly is a corrupt store).
    let mut beats: Vec<BeatTimes> = vec![BeatTimes::new(0, 0, None, 0); n];
    // Consecutive groups of chunks holding about n / threads spans each, and the slice
    // of the vector each one fills.
    let mut parts: Vec<(&[RawChunk], &mut [BeatTimes])> = Vec::new();
    let mut slots = &mut beats[..];
    let (mut start, mut filled, mut len) = (0, 0, 0);
    for (i, &count) in counts.iter().enumerate() {
        len += count;
        if (filled + len) * threads >= n * (parts.len() + 1) || i + 1 == counts.len() {
            let (part, rest) = std::mem::take(&mut slots).split_at_mut(len);
            parts.push((&task.chunks[start..=i], part));
            slots = rest;
            (start, filled, len) = (i + 1, filled + len, 0);
        }
    }
    let fill = |chunks: &[RawChunk], slots: &mut [BeatTimes], report: &mut dyn FnMut(u64)| {
        let mut i = 0;
        let mut failed = Vec::new();
        let mut ticker = Ticker {
            since: 0,
            report: &mut |k| report(done.fetch_add(k, Ordering::Relaxed) + k),
        };
        for c in chunks {
            let chunk = SpanChunk::from_bytes(&c.bytes).map_err(|e| corrupt_chunk(task, c, &e))?;
            if chunk.count as usize > slots.len() - i {
                return Err(corrupt_chunk(
                    task,
                    c,
                    &"span count does not match its header",
                ));
            }
            codec::decode_spans_each(&chunk, |s| {
                slots[i] = BeatTimes::new(
                    s.seq,
                    s.start_us,
                    (s.outcome == Outcome::Ok).then_some(s.end_us),
                    c.session,
                );
                i += 1;
                if s.outcome != Outcome::Ok {
                    failed.push(Beat::from(s));
                }
            })
            .map_err(|e| corrupt_chunk(task, c, &e))?;
            ticker.tick();
        }
        ticker.flush();
        if i != slots.len() {
            return Err(corrupt_chunk(
                task,
                &chunks[0],
                &"span counts do not match the headers",
            ));
        }
        Ok(failed)
    };
    let result: Result<Vec<Beat>, StoreError> = std::thread::scope(|scope| {
        let mut parts = parts.into_iter();
        let first = parts.next();
        let others: Vec<_> = parts
            .map(|(chunks, slots)| scope.spawn(move || fill(chunks, slots, &mut |_| {})))
            .collect();
        let mine = first.map_or(Ok(Vec::new()), |(chunks, slots)| {
            fill(chunks, slots, report)
        });
        others
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .try_fold(mine?, |mut all, part| {
                all.extend(part?);
                Ok(all)
            })
    });
    let mut failed = result?;
    // Only chunks at the window's edges hold beats outside it.
    let from = filter.from_us.map(|f| f.saturating_sub(BEAT_LOOKBACK_US));
    if from.is_some() || filter.to_us.is_some() {
        let keep = |t_send_us: i64| {
            from.is_none_or(|f| t_send_us >= f) && filter.to_us.is_none_or(|e| t_send_us <= e)
        };
        beats.retain(|b| keep(b.t_send_us));
        failed.retain(|b| keep(b.t_send_us));
    }
    Ok((beats, failed))
}

/// Reads the chunks the filter selects from one store (and its sessions).
fn read_chunks(
    path: &Path,
    filter: &Filter,
    rec: &mut Recording,
    found: &mut Found,
) -> Result<(), StoreError> {
    let (db, version) = open_read(path)?;
    let tx = db.begin_read().map_err(|e| db_err(path, e))?;
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };

    // The store's session ids to indices into `rec.sessions`.
    let mut session_index = std::collections::HashMap::new();
    let sessions = tx.open_table(SESSIONS).map_err(|e| db_err(path, e))?;
    for entry in sessions.iter().map_err(|e| db_err(path, e))? {
        let (id, bytes) = entry.map_err(|e| db_err(path, e))?;
        let info = SessionInfo::from_bytes(bytes.value())
            .map_err(|e| corrupt(format!("session {}: {e}", id.value())))?;
        session_index.insert(id.value(), rec.sessions.len() as u32);
        rec.sessions.push(info);
    }

    let names = tx.open_table(NAME_IDS).map_err(|e| db_err(path, e))?;
    let chunks = tx.open_table(CHUNKS).map_err(|e| db_err(path, e))?;
    for entry in names.iter().map_err(|e| db_err(path, e))? {
        let (id, key) = entry.map_err(|e| db_err(path, e))?;
        let (id, key) = (id.value(), key.value().to_string());
        let named = parse_name(&key).ok_or_else(|| corrupt(format!("bad name {key:?}")))?;
        let (kinds, cluster, replica): (&[u8], _, _) = match &named {
            Named::Cluster(c) if filter.wants_cluster(c) => (&[KIND_BEATS], c.clone(), None),
            Named::Replica(c, r) if filter.wants_replica(c, r) => (
                &[KIND_OBSERVATIONS, KIND_STATUS],
                c.clone(),
                Some(r.clone()),
            ),
            _ => continue,
        };
        for &kind in kinds {
            // Chunks are keyed by their first time and cover at most MAX_CHUNK_SPAN_US.
            let lookback = if kind == KIND_BEATS {
                BEAT_LOOKBACK_US
            } else {
                0
            };
            let lo = filter
                .from_us
                .map_or(i64::MIN, |f| f.saturating_sub(MAX_CHUNK_SPAN_US + lookback));
            let hi = filter.to_us.unwrap_or(i64::MAX);
            let range = chunks
                .range((kind, id, lo, 0u32)..=(kind, id, hi, u32::MAX))
                .map_err(|e| db_err(path, e))?;
            let mut raw = Vec::new();
            for item in range {
                let (k, v) = item.map_err(|e| db_err(path, e))?;
                let (_, _, first_us, store_session) = k.value();
                let session = *session_index.get(&store_session).ok_or_else(|| {
                    corrupt(format!(
                        "chunk {kind}/{key}@{first_us} names session {store_session}, which the store does not hold"
                    ))
                })?;
                raw.push(RawChunk {
                    first_us,
                    store_session,
                    session,
                    bytes: v.value().to_vec(),
                });
            }
            if raw.is_empty() {
                continue;
            }
            match (kind, &replica) {
                (KIND_OBSERVATIONS, Some(r)) => found.streams.push((
                    cluster.clone(),
                    r.clone(),
                    ChunkStream {
                        path: path.to_path_buf(),
                        version,
                        key: key.clone(),
                        range: 0..raw.len(),
                        chunks: raw.into(),
                    },
                )),
                _ => found.tasks.push(Task {
                    path: path.to_path_buf(),
                    kind,
                    key: key.clone(),
                    cluster: cluster.clone(),
                    replica: replica.clone(),
                    chunks: raw,
                }),
            }
        }
    }
    Ok(())
}

fn replica_series<'a>(
    replicas: &'a mut BTreeMap<(String, String), ReplicaSeries>,
    cluster: &str,
    replica: Option<&str>,
) -> &'a mut ReplicaSeries {
    let replica = replica.unwrap_or_default().to_string();
    replicas
        .entry((cluster.to_string(), replica.clone()))
        .or_insert_with(|| ReplicaSeries {
            cluster: cluster.to_string(),
            replica,
            ..Default::default()
        })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::samples::{Beat, Sample};
    use crate::store::writer::Appender;
    use crate::store::{Store, cluster_key, replica_key};

    /// A store with `n` beats and `n` reads of replica "r", about 10 ms apart from `t0_us`,
    /// committed every 100 (as the recorder does every second at 10 ms).
    pub(in crate::store) fn store(name: &str, t0_us: i64, n: i64) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lagtrace-scan-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.redb");
        let store = Store::open_or_create(&path).unwrap();
        let ids = store
            .intern(&[cluster_key("c"), replica_key("c", "r")])
            .unwrap();
        let session = store
            .begin_session(&SessionInfo {
                started_us: t0_us,
                interval_us: 10_000,
                version: "t".into(),
                host: "h".into(),
                read_every: 1,
            })
            .unwrap();
        let mut appender = Appender::new(store, session);
        for k in 0..n {
            // Jitter, as real reads have, so that chunks fill up.
            let t = t0_us + k * 10_000 + (k * 7_919) % 1_000;
            appender.add(Sample::Beat {
                cluster: ids[0],
                beat: Beat {
                    seq: (t / 10_000) as u64 + 1,
                    t_send_us: t,
                    t_done_us: t + 300,
                    outcome: Outcome::Ok,
                    reason: None,
                },
            });
            appender.add(Sample::Observation {
                replica: ids[1],
                observation: Observation {
                    r_start_us: t + 400,
                    r_end_us: t + 600,
                    seq: Some((t / 10_000) as u64 + 1),
                    outcome: Outcome::Ok,
                    reason: None,
                    follow_up: false,
                },
            });
            // The recorder commits every second.
            if k % 100 == 99 {
                appender.flush().unwrap();
            }
        }
        appender.finish().unwrap();
        path
    }

    fn starts(obs: &Observations) -> Vec<i64> {
        let mut out = Vec::new();
        obs.for_each(|o, _| out.push(o.r_start_us)).unwrap();
        out
    }

    #[test]
    fn parts_walked_one_after_the_other_are_the_whole() {
        let path = store("parts", 1_000_000, 20_000);
        let rec = load(std::slice::from_ref(&path), &Filter::default()).unwrap();
        let obs = &rec.replicas[0].observations;
        let whole = starts(obs);
        assert_eq!(whole.len(), 20_000);
        assert_eq!(obs.len_hint(), 20_000);
        let parts = obs.parts(3);
        assert_eq!(parts.len(), 3, "a store of many chunks splits");
        let joined: Vec<i64> = parts.iter().flat_map(starts).collect();
        assert_eq!(joined, whole);
        assert_eq!(
            parts.iter().map(Observations::len_hint).sum::<usize>(),
            20_000
        );
        assert!(rec.progress().get().done >= rec.progress().get().total);
    }

    #[test]
    fn overlapping_stores_are_merged_in_time_order_and_cut_to_the_window() {
        // Two recorders of the same replica, 5 ms out of step.
        let a = store("merge-a", 1_000_000, 10_000);
        let b = store("merge-b", 1_005_000, 10_000);
        let rec = load(&[a.clone(), b.clone()], &Filter::default()).unwrap();
        let obs = &rec.replicas[0].observations;
        let all = starts(obs);
        assert_eq!(all.len(), 20_000);
        assert!(all.is_sorted(), "merged by time");
        assert_eq!(obs.parts(2).len(), 1, "several stores are walked as one");
        assert_eq!(
            rec.beats_of("c").len(),
            10_000,
            "the same beats in both, kept once"
        );

        let filter = Filter {
            from_us: Some(21_000_000),
            to_us: Some(31_000_000),
            ..Default::default()
        };
        let rec = load(&[a, b], &filter).unwrap();
        let cut = starts(&rec.replicas[0].observations);
        assert!(cut.iter().all(|t| (21_000_000..=31_000_000).contains(t)));
        assert_eq!(cut.len(), 2_000);
    }
}
