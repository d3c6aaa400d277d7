//! The store's one writer: a blocking thread fed by a channel bounded by count.
//!
//! Probe tasks never touch the disk: they send samples without waiting (see
//! [`SampleSender`]); when [`CHANNEL_CAPACITY`] samples are queued the sample is dropped
//! and counted, never waited for. The thread takes the queued samples into one open
//! chunk per series every [`DRAIN_EVERY`] and, every `flush` period, rewrites each
//! changed open chunk in one write transaction (redb's default `Durability::Immediate`:
//! durable when commit returns). A crash therefore loses at most one flush period, and
//! redb's copy-on-write commit never leaves a half-written file. A chunk is sealed once
//! it holds [`MAX_SPANS`] spans (or [`MAX_STATUS`] status samples) or covers
//! [`MAX_CHUNK_SPAN_US`].
//! With a retention, the thread also drops chunks older than it (see [`super::prune`])
//! every [`prune_every`]: a transaction of its own, between flushes, while the probes
//! go on filling the channel.
//!
//! A flush that fails on I/O (a full disk, a file size limit, a failing device) loses
//! nothing and stops nothing: the samples stay in memory, the database is opened again
//! (redb refuses every operation after an I/O error until then) and every later flush
//! retries, so storing resumes by itself when space returns. Memory is bounded: past
//! [`MAX_UNFLUSHED`] samples waiting, new ones are counted as unstored and dropped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::codec::{self, PackedSpans, PackedStatus, Span};
use super::{CHUNKS, KIND_BEATS, KIND_OBSERVATIONS, KIND_STATUS, Store, StoreError, db_err};
use super::{Cutoff, MAX_CHUNK_SPAN_US};
use crate::clock::Clock;
use crate::samples::Sample;

/// A chunk is sealed before its encoding would pass this size at the next flush, so
/// that it fills most of a 4 KiB redb page with its key (redb allocates pages in
/// powers of two, so 4.1 KiB would take 8 KiB); small chunks also keep the per-flush
/// re-encoding of open chunks cheap.
pub const SEAL_BYTES: usize = 4_096 - 128;
/// Spans per chunk before it is sealed whatever its size. (Sealing at 1024 spans to
/// bound an open chunk's memory, then 56 bytes a span, made chunks of about 2.5 KB that
/// take a 4 KB page each: the store bench's file grew by half for 0.5 % fewer chunk
/// bytes. Open chunks are packed instead, about 5 bytes a span: see [`PackedSpans`].)
pub const MAX_SPANS: usize = 16_384;
/// Status samples per chunk before it is sealed: two minutes at the default poll. They
/// wait in memory too (as structs and strings, several hundred bytes each, 900 were
/// about 0.4 MB per replica; now packed, see [`PackedStatus`]).
pub const MAX_STATUS: usize = 120;
/// How often the writer compacts the file (redb keeps freed pages otherwise: a day at
/// 10 Hz grew to 1.4 times its chunks without compaction, 1.1 times with it).
pub const COMPACT_EVERY: Duration = Duration::from_secs(3600);
/// Capacity of the sample channel: about 3 minutes of two replicas at 10 ms, for a
/// writer held up by a slow disk or a compaction (a full disk does not hold it up: the
/// writer keeps taking samples into memory). The channel takes memory as samples wait
/// (about a flush period's worth), not its capacity's: a ring of this many samples
/// (7.2 MB) was resident once the queue had gone round it, a quarter of the recorder's
/// memory with 2 replicas.
pub const CHANNEL_CAPACITY: usize = 50_000;
/// How often the writer takes the queued samples into its open chunks between
/// flushes: a sample waiting in the channel takes about 150 bytes, packed in its chunk
/// about 5. With 100 replicas at 10 ms, a second's queue was 1.5 MB of the recorder's
/// heap.
pub const DRAIN_EVERY: Duration = Duration::from_millis(100);
/// Samples kept in memory while the store cannot be written (a full disk): about 55
/// minutes of two replicas at 10 ms, about 6 MB packed (a failed probe's reason takes
/// its length more). Samples past it are unstored.
pub const MAX_UNFLUSHED: u64 = 1_000_000;

/// The probes' side of the channel: never blocks, counts what it had to drop.
#[derive(Clone)]
pub struct SampleSender {
    tx: Sender<Sample>,
    health: Arc<Health>,
    /// Samples that may wait in the channel.
    capacity: usize,
}

/// What the writer reports while it runs, for the live outputs.
#[derive(Debug, Default)]
struct Health {
    /// Samples in the channel.
    queued: AtomicUsize,
    /// Samples dropped because the channel was full.
    dropped: AtomicU64,
    /// Samples dropped because the store could not be written for too long.
    unstored: AtomicU64,
    /// Whether the last flush failed.
    failing: AtomicBool,
}

/// The writer went away (a store error ended it).
#[derive(Debug)]
pub struct WriterGone;

impl SampleSender {
    /// Queues a sample; a full queue drops it (counted in [`SampleSender::dropped`]).
    pub fn send(&self, sample: Sample) -> Result<(), WriterGone> {
        let queued = &self.health.queued;
        if queued.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            queued.fetch_sub(1, Ordering::Relaxed);
            self.health.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.tx.send(sample).map_err(|_| {
            queued.fetch_sub(1, Ordering::Relaxed);
            WriterGone
        })
    }

    /// Samples dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.health.dropped.load(Ordering::Relaxed)
    }

    /// Samples dropped because the store could not be written for too long.
    pub fn unstored(&self) -> u64 {
        self.health.unstored.load(Ordering::Relaxed)
    }

    /// Whether the store cannot be written now (the last flush failed).
    pub fn store_failing(&self) -> bool {
        self.health.failing.load(Ordering::Relaxed)
    }
}

/// What the writer did, returned when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub samples: u64,
    pub flushes: u64,
    pub chunks_written: u64,
    /// Chunks dropped by the retention.
    pub chunks_pruned: u64,
    /// Samples dropped because the store could not be written for too long.
    pub unstored: u64,
}

/// How often the writer applies a retention: a tenth of it, at most a minute (so that
/// a month's retention keeps about a minute more than asked, and a 10 s one a second).
pub fn prune_every(retain: Duration) -> Duration {
    (retain / 10).min(Duration::from_secs(60))
}

/// One series' open chunk: its samples since the chunk began.
enum Pending {
    Spans(PackedSpans),
    Status(PackedStatus),
}

impl Pending {
    fn len(&self) -> usize {
        match self {
            Pending::Spans(v) => v.len(),
            Pending::Status(v) => v.len(),
        }
    }

    fn first_last_us(&self) -> (i64, i64) {
        match self {
            Pending::Spans(v) => v.first_last_start_us(),
            Pending::Status(v) => v.first_last_t_us(),
        }
    }

    fn full(&self) -> bool {
        let (first, last) = self.first_last_us();
        let max = match self {
            Pending::Spans(_) => MAX_SPANS,
            Pending::Status(_) => MAX_STATUS,
        };
        self.len() >= max || last - first >= MAX_CHUNK_SPAN_US
    }

    /// The chunk as stored: encoded, then its checksum.
    fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        let bytes = match self {
            Pending::Spans(v) => codec::encode_spans(&v.unpack()).to_bytes(),
            Pending::Status(v) => codec::status_to_bytes(&v.unpack()?),
        }?;
        Ok(codec::with_checksum(bytes))
    }
}

struct OpenChunk {
    pending: Pending,
    dirty: bool,
    /// Encoded size at the last flush, bytes.
    last_len: usize,
}

/// Open chunks by series, and chunks that filled up since the last flush.
#[derive(Default)]
struct Chunks {
    open: HashMap<(u8, u32), OpenChunk>,
    /// Full chunks waiting for the next flush, by series.
    sealed: Vec<((u8, u32), Pending)>,
    /// Events (time UTC µs, JSON) waiting for the next flush.
    events: Vec<(i64, String)>,
    /// Events of this session stored so far: the next one's number.
    events_stored: u32,
    /// The newest state of each cluster, waiting for the next flush.
    states: std::collections::BTreeMap<String, String>,
}

/// The running writer thread.
pub struct Writer(JoinHandle<Result<WriterStats, StoreError>>);

impl Writer {
    /// Waits for the writer to store what is queued and end; call it once every
    /// [`SampleSender`] is dropped. The thread sleeps between flushes by parking, and
    /// is woken here, so a stop never waits for the rest of a flush period. `None` if
    /// the thread panicked.
    pub fn finish(self) -> Option<Result<WriterStats, StoreError>> {
        self.0.thread().unpark();
        self.0.join().ok()
    }
}

/// Starts the writer thread for `session`, dropping chunks older than `retain` (by the
/// session's `clock`) if given. Returns the probes' sender and the writer.
pub fn spawn(
    store: Store,
    session: u32,
    flush_every: Duration,
    retain: Option<Duration>,
    clock: Clock,
    capacity: usize,
) -> (SampleSender, Writer) {
    let (tx, rx) = std::sync::mpsc::channel();
    let health = Arc::new(Health::default());
    let sender = SampleSender {
        tx,
        health: Arc::clone(&health),
        capacity,
    };
    let handle = std::thread::Builder::new()
        .name("lagtrace-store".into())
        .spawn(move || run(store, session, flush_every, (retain, clock), rx, &health))
        .expect("spawning the store thread");
    (sender, Writer(handle))
}

fn run(
    store: Store,
    session: u32,
    flush_every: Duration,
    (retain, clock): (Option<Duration>, Clock),
    rx: Receiver<Sample>,
    health: &Health,
) -> Result<WriterStats, StoreError> {
    let mut appender = Appender::new(store, session);
    let mut next_flush = Instant::now() + flush_every;
    let mut next_compact = Instant::now() + COMPACT_EVERY;
    // The first prune comes at once: a store may hold much that is already old.
    let mut next_prune = Instant::now();
    // When the store stopped taking writes, while it does not.
    let mut failing_since: Option<Instant> = None;
    loop {
        // Sleep, then take everything queued: one wake-up per [`DRAIN_EVERY`] instead of
        // one per sample, and a flush when it is due. [`Writer::finish`] wakes the
        // thread early (as may a spurious wake-up: then this drain just comes early).
        let next_drain = Instant::now() + DRAIN_EVERY;
        std::thread::park_timeout(
            next_flush
                .min(next_drain)
                .saturating_duration_since(Instant::now()),
        );
        loop {
            match rx.try_recv() {
                Ok(sample) => {
                    health.queued.fetch_sub(1, Ordering::Relaxed);
                    appender.add(sample);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return appender.finish(),
            }
        }
        if Instant::now() < next_flush {
            continue;
        }
        match appender.flush() {
            Ok(()) => {
                if let Some(since) = failing_since.take() {
                    tracing::warn!(
                        store = %appender.path.display(),
                        down_s = since.elapsed().as_secs_f64(),
                        unstored = appender.stats.unstored,
                        "store writes resumed; every sample kept in memory meanwhile is stored"
                    );
                }
            }
            Err(e) if e.is_transient() => {
                if failing_since.is_none() {
                    failing_since = Some(Instant::now());
                    tracing::error!(
                        error = %e,
                        "store write failed; probing goes on, samples wait in memory (up to {MAX_UNFLUSHED}) and every flush retries"
                    );
                } else {
                    tracing::debug!(error = %e, "store write failed again");
                }
            }
            Err(e) => return Err(e),
        }
        health
            .failing
            .store(failing_since.is_some(), Ordering::Relaxed);
        health
            .unstored
            .store(appender.stats.unstored, Ordering::Relaxed);
        next_flush += flush_every;
        if next_flush < Instant::now() {
            next_flush = Instant::now() + flush_every;
        }
        if failing_since.is_some() {
            continue;
        }
        if let Some(retain) = retain.filter(|_| Instant::now() >= next_prune) {
            appender.prune(retain, clock.now_us());
            next_prune = Instant::now() + prune_every(retain);
        }
        if Instant::now() >= next_compact {
            appender.compact();
            next_compact = Instant::now() + COMPACT_EVERY;
        }
    }
}

/// Appends samples of one session to a store: the writer thread's state, usable
/// directly where timing is not wanted (benchmarks, tests).
pub struct Appender {
    /// `None` after a failed write until the database is opened again.
    store: Option<Store>,
    path: PathBuf,
    session: u32,
    chunks: Chunks,
    /// Samples added since the last successful flush.
    unflushed: u64,
    stats: WriterStats,
}

impl Appender {
    pub fn new(store: Store, session: u32) -> Appender {
        Appender {
            path: store.path().to_path_buf(),
            store: Some(store),
            session,
            chunks: Chunks::default(),
            unflushed: 0,
            stats: WriterStats::default(),
        }
    }

    /// Adds a sample to its series' open chunk (in memory until the next flush). Past
    /// [`MAX_UNFLUSHED`] samples waiting for a store that cannot be written, the sample
    /// is counted as unstored instead.
    pub fn add(&mut self, sample: Sample) {
        self.stats.samples += 1;
        if self.unflushed >= MAX_UNFLUSHED {
            self.stats.unstored += 1;
            return;
        }
        self.unflushed += 1;
        if let Err(e) = add(&mut self.chunks, sample) {
            tracing::warn!(error = %e, "a status sample could not be encoded; not stored");
            self.stats.unstored += 1;
        }
    }

    /// Commits everything added since the last successful flush in one write
    /// transaction. After a failure nothing is lost: the next flush reopens the
    /// database and writes it all again.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        let store = match &mut self.store {
            Some(store) => store,
            none => none.insert(Store::reopen(&self.path)?),
        };
        let result = flush(store, self.session, &mut self.chunks, &mut self.stats);
        match result {
            Ok(()) => self.unflushed = 0,
            // redb refuses every operation after an I/O error until it is reopened.
            Err(_) => self.store = None,
        }
        result
    }

    /// Drops the chunks older than `retain` before `now_us` (UTC µs). Like compaction,
    /// only housekeeping: a failure is logged and the recording goes on (the next prune
    /// tries again), since losing new samples would be worse than keeping old ones.
    pub fn prune(&mut self, retain: Duration, now_us: i64) {
        let Some(store) = &self.store else { return };
        let cutoff = Cutoff::keeping(now_us, crate::clock::duration_us(retain));
        match store.prune(cutoff, false) {
            Ok(pruned) if pruned.chunks > 0 => {
                tracing::debug!(
                    chunks = pruned.chunks,
                    bytes = pruned.bytes,
                    "dropped chunks older than the retention"
                );
                self.stats.chunks_pruned += pruned.chunks;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "dropping old chunks failed; continuing"),
        }
    }

    /// Gives freed pages back to the file system. Only an optimisation: a failure is
    /// logged and the recording goes on.
    pub fn compact(&mut self) {
        let Some(store) = &mut self.store else { return };
        if let Err(e) = store.compact() {
            tracing::warn!(error = %e, "store compaction failed; continuing");
            // A compaction that failed on I/O leaves redb refusing writes until reopened.
            self.store = None;
        }
    }

    /// Flushes, compacts and returns what was done. A final flush that fails says how
    /// many samples it could not store.
    pub fn finish(mut self) -> Result<WriterStats, StoreError> {
        if let Err(e) = self.flush() {
            let lost = self.unflushed + self.stats.unstored;
            return Err(match e {
                StoreError::Db { path, detail } => StoreError::Db {
                    path,
                    detail: format!("{detail}; the last {lost} samples could not be stored"),
                },
                other => other,
            });
        }
        self.compact();
        Ok(self.stats)
    }
}

/// Puts a sample in its place; a status sample that cannot be encoded is refused.
fn add(open: &mut Chunks, sample: Sample) -> Result<(), postcard::Error> {
    match sample {
        Sample::Beat { cluster, beat } => {
            spans(open, (KIND_BEATS, cluster)).push(&Span::from(&beat));
        }
        Sample::Observation {
            replica,
            observation,
        } => {
            let spans = spans(open, (KIND_OBSERVATIONS, replica));
            let prev_seq = spans.last_seq().unwrap_or(0);
            spans.push(&Span::from_observation(&observation, prev_seq));
        }
        Sample::Status { replica, status } => {
            let chunk = open_chunk(open, (KIND_STATUS, replica));
            if let Pending::Status(v) = &mut chunk.pending {
                v.push(&status)?;
            }
        }
        Sample::Event { t_us, doc } => open.events.push((t_us, doc)),
        Sample::State { cluster, doc } => {
            open.states.insert(cluster, doc);
        }
    }
    Ok(())
}

/// The open chunk of a series, marked dirty; a full one is sealed and a new one begun.
fn open_chunk(chunks: &mut Chunks, key: (u8, u32)) -> &mut OpenChunk {
    if chunks.open.get(&key).is_some_and(|c| c.pending.full()) {
        let full = chunks.open.remove(&key).expect("checked above");
        chunks.sealed.push((key, full.pending));
    }
    let chunk = chunks.open.entry(key).or_insert_with(|| OpenChunk {
        pending: if key.0 == KIND_STATUS {
            Pending::Status(PackedStatus::default())
        } else {
            Pending::Spans(PackedSpans::default())
        },
        dirty: false,
        last_len: 0,
    });
    chunk.dirty = true;
    chunk
}

fn spans(open: &mut Chunks, key: (u8, u32)) -> &mut PackedSpans {
    match &mut open_chunk(open, key).pending {
        Pending::Spans(v) => v,
        Pending::Status(_) => unreachable!("span kinds always hold spans"),
    }
}

/// Writes sealed chunks and every changed open chunk in one transaction.
fn flush(
    store: &Store,
    session: u32,
    chunks: &mut Chunks,
    stats: &mut WriterStats,
) -> Result<(), StoreError> {
    if chunks.sealed.is_empty()
        && !chunks.open.values().any(|c| c.dirty)
        && chunks.events.is_empty()
        && chunks.states.is_empty()
    {
        return Ok(());
    }
    let p = store.path();
    let encode = |pending: &Pending| {
        pending.encode().map_err(|e| StoreError::Db {
            path: p.to_path_buf(),
            detail: format!("encoding a chunk: {e}"),
        })
    };
    let mut big = Vec::new();
    // (series, encoded size) of each open chunk written, marked clean after the commit:
    // a failed commit leaves them dirty for the next flush.
    let mut written = Vec::new();
    let mut chunks_written = 0;
    let tx = store.db.begin_write().map_err(|e| db_err(p, e))?;
    {
        let mut table = tx.open_table(CHUNKS).map_err(|e| db_err(p, e))?;
        let mut put = |(kind, id): (u8, u32), pending: &Pending, bytes: &[u8]| {
            let (first_us, _) = pending.first_last_us();
            chunks_written += 1;
            table
                .insert((kind, id, first_us, session), bytes)
                .map(|_| ())
                .map_err(|e| db_err(p, e))
        };
        for (key, pending) in &chunks.sealed {
            put(*key, pending, &encode(pending)?)?;
        }
        for (key, chunk) in chunks.open.iter().filter(|(_, c)| c.dirty) {
            let bytes = encode(&chunk.pending)?;
            put(*key, &chunk.pending, &bytes)?;
            // Seal when the next flush would likely push it past the limit.
            let growth = bytes.len().saturating_sub(chunk.last_len);
            if bytes.len() + growth >= SEAL_BYTES {
                big.push(*key);
            }
            written.push((*key, bytes.len()));
        }
    }
    super::events::put(
        p,
        &tx,
        session,
        chunks.events_stored,
        &chunks.events,
        &chunks.states,
    )?;
    tx.commit().map_err(|e| db_err(p, e))?;
    stats.flushes += 1;
    stats.chunks_written += chunks_written;
    chunks.sealed.clear();
    chunks.events_stored += chunks.events.len() as u32;
    chunks.events.clear();
    chunks.states.clear();
    for (key, len) in written {
        if let Some(chunk) = chunks.open.get_mut(&key) {
            chunk.last_len = len;
            chunk.dirty = false;
        }
    }
    // Open chunks that reached the seal size are complete: new samples start new ones.
    for key in big {
        chunks.open.remove(&key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::{Beat, Outcome};
    use crate::store::scan::tests::{begin_session, fresh_path};
    use crate::store::scan::{Filter, load};
    use crate::store::{Store, cluster_key};

    /// Beat `k + 1` of cluster id `cluster`, a millisecond apart, acknowledged.
    fn beat_sample(cluster: u32, k: u64) -> Sample {
        Sample::Beat {
            cluster,
            beat: Beat {
                seq: k + 1,
                t_send_us: k as i64 * 1_000,
                t_done_us: k as i64 * 1_000 + 300,
                outcome: Outcome::Ok,
                reason: None,
            },
        }
    }

    /// A new store named after `tag` with cluster `c` and a session begun: its path,
    /// the store, the cluster's id and the session.
    fn one_cluster(tag: &str) -> (std::path::PathBuf, Store, u32, u32) {
        let path = fresh_path(tag);
        let store = Store::open_or_create(&path).unwrap();
        let ids = store.intern(&[cluster_key("c")]).unwrap();
        let session = begin_session(&store, 0);
        (path, store, ids[0], session)
    }

    /// Samples past MAX_UNFLUSHED waiting for a flush are counted as unstored, never
    /// held; a successful flush stores the rest and takes samples again.
    #[test]
    fn memory_waiting_for_a_flush_is_bounded_and_the_excess_counted() {
        let (path, store, cluster, session) = one_cluster("writer-cap");
        let mut appender = Appender::new(store, session);
        let beat = |k: u64| beat_sample(cluster, k);
        for k in 0..MAX_UNFLUSHED + 5 {
            appender.add(beat(k));
        }
        assert_eq!(appender.stats.unstored, 5);
        appender.flush().unwrap();
        appender.add(beat(MAX_UNFLUSHED + 5));
        assert_eq!(appender.stats.unstored, 5, "a flush makes room again");
        let stats = appender.finish().unwrap();
        assert_eq!(stats.samples, MAX_UNFLUSHED + 6);
        let rec = load(&[path], &Filter::default()).unwrap();
        let (beats, _) = rec.beats_of("c").collect().unwrap();
        assert_eq!(beats.len() as u64, MAX_UNFLUSHED + 1);
    }

    /// The channel holds at most its capacity: more samples sent before the writer
    /// takes any are dropped and counted, and what it took is stored.
    #[test]
    fn a_full_channel_drops_and_counts_and_makes_room_as_the_writer_takes() {
        let (path, store, cluster, session) = one_cluster("writer-channel");
        let beat = |k: u64| beat_sample(cluster, k);
        // A long flush period: the writer sleeps while the samples come.
        let clock = crate::clock::Clock::start();
        let (tx, writer) = spawn(store, session, Duration::from_secs(60), None, clock, 3);
        for k in 0..10 {
            tx.send(beat(k)).unwrap();
        }
        assert_eq!(tx.dropped(), 7);
        drop(tx);
        let stats = writer.finish().unwrap().unwrap();
        assert_eq!(stats.samples, 3);
        let rec = load(&[path], &Filter::default()).unwrap();
        let (beats, _) = rec.beats_of("c").collect().unwrap();
        assert_eq!(beats.len(), 3);
    }
}
