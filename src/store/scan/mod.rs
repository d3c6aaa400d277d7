//! Reading a recording back: every series of one or several stores, found and merged
//! by name, for the offline commands. Observations, beats and status samples stay in
//! the store (one read snapshot per store) and are decoded chunk by chunk as they are
//! walked ([`walk`]), so a load holds no more than the chunks' keys.

pub mod ahead;
mod walk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{ReadableDatabase, ReadableTable};

pub use walk::{BeatReader, Beats, Observations, StatusIter, StatusSamples};
use walk::{ChunkRef, ChunkStream, Window};

use super::codec;
use super::{BEAT_LOOKBACK_US, MAX_CHUNK_SPAN_US};
use super::{
    CHUNKS, KIND_BEATS, KIND_OBSERVATIONS, KIND_STATUS, NAME_IDS, SESSIONS, SessionInfo,
    StoreError, corrupt_at, db_err, open_read,
};

/// What a series of a kind holds, for messages.
fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_BEATS => "beats",
        KIND_OBSERVATIONS => "reads",
        KIND_STATUS => "status samples",
        _ => "samples",
    }
}

/// Which part of a recording to load. Times are UTC µs; `None` is unbounded.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub clusters: Vec<String>,
    pub replicas: Vec<String>,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    /// Check every chunk's checksum at load and leave out, with a warning naming the
    /// hole, those that fail, instead of stopping at the first when a walk reaches it.
    pub skip_corrupt: bool,
}

impl Filter {
    fn wants_cluster(&self, cluster: &str) -> bool {
        self.clusters.is_empty() || self.clusters.iter().any(|c| c == cluster)
    }

    fn wants_replica(&self, cluster: &str, replica: &str) -> bool {
        self.wants_cluster(cluster)
            && (self.replicas.is_empty() || self.replicas.iter().any(|r| r == replica))
    }
}

/// Everything recorded about one replica.
#[derive(Debug, Clone, Default)]
pub struct ReplicaSeries {
    pub cluster: String,
    pub replica: String,
    /// Still encoded: walked (and decoded chunk by chunk) with [`Observations::for_each`].
    pub observations: Observations,
    /// Still encoded: walked (and decoded chunk by chunk) with
    /// [`StatusSamples::iter`].
    pub status: StatusSamples,
}

/// A loaded recording.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// Beats per cluster, still encoded: read with [`Beats::reader`] or
    /// [`Beats::collect`].
    pub beats: BTreeMap<String, Beats>,
    /// Replicas, ordered by (cluster, replica).
    pub replicas: Vec<ReplicaSeries>,
    /// Every recorder session of the stores, store by store in the order given; beats
    /// and observations name theirs by index into this.
    pub sessions: Vec<SessionInfo>,
    /// The clusters' events (topology changes, trigger runs) in the window, in time
    /// order.
    pub events: Vec<super::events::RecordedEvent>,
    /// Observation chunks decoded so far, of `chunks` selected.
    decoded: Arc<AtomicU64>,
    chunks: u64,
}

/// The beats of a cluster the recording does not hold.
static NO_BEATS: Beats = Beats::EMPTY;

impl Recording {
    /// The beats of `cluster` (none when the recording holds none).
    pub fn beats_of(&self, cluster: &str) -> &Beats {
        self.beats.get(cluster).unwrap_or(&NO_BEATS)
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

/// [`load`]. Nothing is decoded yet: `progress` is called once, with the number of
/// observation chunks to walk.
pub fn load_with_progress(
    paths: &[PathBuf],
    filter: &Filter,
    progress: &mut dyn FnMut(Progress),
) -> Result<Recording, StoreError> {
    let mut rec = Recording::default();
    let mut replicas: BTreeMap<(String, String), ReplicaSeries> = BTreeMap::new();
    for path in paths {
        read_chunks(path, filter, &mut rec, &mut replicas)?;
    }
    // Stable: events of one time keep their store's order.
    rec.events.sort_by_key(|e| e.t_us);
    rec.chunks = replicas.values().map(|r| r.observations.chunks()).sum();
    tracing::debug!(chunks = rec.chunks, "chunks found");
    progress(Progress {
        done: 0,
        total: rec.chunks,
    });
    let window = Window {
        from_us: filter.from_us,
        to_us: filter.to_us,
    };
    for beats in rec.beats.values_mut() {
        beats.window = Window {
            from_us: filter.from_us.map(|f| f.saturating_sub(BEAT_LOOKBACK_US)),
            ..window
        };
    }
    // A split part's replicas are polled as their cluster's (one poller per replica):
    // their status samples are the same replica's, stored under the cluster.
    let parts: Vec<(String, String)> = replicas
        .iter()
        .filter(|((c, _), s)| c.contains('~') && s.status.streams.is_empty())
        .map(|(k, _)| k.clone())
        .collect();
    for (part, replica) in parts {
        let cluster = part.split('~').next().unwrap_or_default().to_string();
        let status = replicas
            .get(&(cluster, replica.clone()))
            .map(|s| s.status.clone());
        if let (Some(status), Some(s)) = (status, replicas.get_mut(&(part, replica))) {
            s.status = status;
        }
    }
    for series in replicas.values_mut() {
        series.observations.window = window;
        series.observations.decoded = Arc::clone(&rec.decoded);
        series.status.window = window;
    }
    rec.replicas = replicas.into_values().collect();
    Ok(rec)
}

/// The seq of a beat chunk's first beat, from its header, which a beat reader seeks
/// by (postcard: count, t0_us, step_ns, offset_us, dur_us, seq0, as
/// [`codec::SpanChunk`] lays them out).
fn first_seq(bytes: &[u8]) -> Result<u64, postcard::Error> {
    let ((_, _, _, _, _, seq0), _): ((u32, i64, i64, i64, i64, u64), _) =
        postcard::take_from_bytes(bytes)?;
    Ok(seq0)
}

/// Finds the chunks the filter selects in one store (and reads its sessions), as
/// streams to walk later.
fn read_chunks(
    path: &Path,
    filter: &Filter,
    rec: &mut Recording,
    replicas: &mut BTreeMap<(String, String), ReplicaSeries>,
) -> Result<(), StoreError> {
    let (db, version) = open_read(path)?;
    let tx = db.begin_read().map_err(|e| db_err(path, e))?;

    // The store's session ids to indices into `rec.sessions`.
    let mut session_index = std::collections::HashMap::new();
    let sessions = tx.open_table(SESSIONS).map_err(|e| db_err(path, e))?;
    for entry in sessions.iter().map_err(|e| db_err(path, e))? {
        let (id, bytes) = entry.map_err(|e| db_err(path, e))?;
        let info = SessionInfo::from_bytes(bytes.value())
            .map_err(|e| corrupt_at(path, format!("session {}: {e}", id.value())))?;
        session_index.insert(id.value(), rec.sessions.len() as u32);
        rec.sessions.push(info);
    }

    rec.events.extend(super::events::read_in(
        path,
        &tx,
        filter.from_us,
        filter.to_us,
        &|c| filter.wants_cluster(c),
    )?);
    let checksums_from = super::checksums_from(path, &tx, version)?;
    let names = tx.open_table(NAME_IDS).map_err(|e| db_err(path, e))?;
    let chunks = Arc::new(tx.open_table(CHUNKS).map_err(|e| db_err(path, e))?);
    let db = Arc::new(db);
    // The series the filter selects, in the names' order.
    let mut series: Vec<SeriesToList> = Vec::new();
    for entry in names.iter().map_err(|e| db_err(path, e))? {
        let (id, key) = entry.map_err(|e| db_err(path, e))?;
        let (id, key) = (id.value(), key.value().to_string());
        let named =
            parse_name(&key).ok_or_else(|| corrupt_at(path, format!("bad name {key:?}")))?;
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
            series.push(SeriesToList {
                kind,
                id,
                key: key.clone(),
                cluster: cluster.clone(),
                replica: replica.clone(),
            });
        }
    }
    let lister = ChunkLister {
        path,
        chunks: &chunks,
        filter,
        session_index: &session_index,
        checksums_from,
    };
    let listed = lister.list_all(&series);
    for (s, listed) in series.into_iter().zip(listed) {
        let (mut refs, skipped) = listed?;
        let SeriesToList {
            kind,
            id,
            key,
            cluster,
            replica,
        } = s;
        for (first_us, store_session, why) in skipped {
            let until = refs
                .iter()
                .find(|c| c.first_us > first_us)
                .map_or("the end of the series".to_string(), |c| {
                    crate::clock::format_utc_us(c.first_us)
                });
            tracing::warn!(
                store = %path.display(),
                "skipped corrupt chunk {kind}/{key}@{first_us} (session {store_session}): {why}; no {} from {} until {until}",
                kind_name(kind),
                crate::clock::format_utc_us(first_us),
            );
        }
        if refs.is_empty() {
            continue;
        }
        // Beats are read in seq order. Within a session that is time order; across
        // sessions a clock stepped back puts a later session's chunks (numbered above
        // the row, so higher) before an earlier one's.
        if kind == KIND_BEATS {
            refs.sort_by_key(|c| (c.seq0, c.first_us));
        }
        let stream = ChunkStream {
            table: Arc::clone(&chunks),
            _db: Arc::clone(&db),
            path: path.to_path_buf(),
            version,
            checksums_from,
            kind,
            id,
            key,
            chunks: refs.into(),
        };
        match (kind, &replica) {
            (KIND_OBSERVATIONS, Some(r)) => replica_series(replicas, &cluster, Some(r))
                .observations
                .streams
                .push(stream),
            (KIND_STATUS, Some(r)) => replica_series(replicas, &cluster, Some(r))
                .status
                .streams
                .push(stream),
            _ => rec.beats.entry(cluster).or_default().streams.push(stream),
        }
    }
    Ok(())
}

/// One series of one store that a load lists the chunks of.
struct SeriesToList {
    kind: u8,
    id: u32,
    /// The series' name.
    key: String,
    cluster: String,
    replica: Option<String>,
}

/// A series' chunks as a load lists them, and those it left out (--skip-corrupt) as
/// (first time, store session, why).
type Listed = (Vec<ChunkRef>, Vec<(i64, u32, String)>);

/// Lists the chunks of a store's series. Listing reads every chunk, since redb keeps
/// the values in the leaves with the keys: a week at 100 Hz is 300 MB read, so the
/// series are listed on two threads.
struct ChunkLister<'a> {
    path: &'a Path,
    chunks: &'a walk::ChunkTable,
    filter: &'a Filter,
    /// The store's session ids to indices into the recording's sessions.
    session_index: &'a std::collections::HashMap<u32, u32>,
    checksums_from: Option<u32>,
}

impl ChunkLister<'_> {
    /// Threads a load lists series on.
    const THREADS: usize = 2;

    /// Every series' chunks, in the order given.
    fn list_all(&self, series: &[SeriesToList]) -> Vec<Result<Listed, StoreError>> {
        if series.len() < 2 {
            return series.iter().map(|s| self.list(s)).collect();
        }
        // Each thread takes the next series not yet taken: a replica's reads and its
        // cluster's beats, the two large ones, go to different threads.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut listed: Vec<(usize, Result<Listed, StoreError>)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..Self::THREADS.min(series.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(s) = series.get(i) else {
                                return done;
                            };
                            done.push((i, self.list(s)));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        listed.sort_by_key(|(i, _)| *i);
        listed.into_iter().map(|(_, l)| l).collect()
    }

    /// One series' chunks the filter's time window needs.
    fn list(&self, s: &SeriesToList) -> Result<Listed, StoreError> {
        let (path, filter, kind, key) = (self.path, self.filter, s.kind, &s.key);
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
        let range = self
            .chunks
            .range((kind, s.id, lo, 0u32)..=(kind, s.id, hi, u32::MAX))
            .map_err(|e| db_err(path, e))?;
        let mut refs = Vec::new();
        let mut skipped: Vec<(i64, u32, String)> = Vec::new();
        for item in range {
            let (k, v) = item.map_err(|e| db_err(path, e))?;
            let (_, _, first_us, store_session) = k.value();
            let session = *self.session_index.get(&store_session).ok_or_else(|| {
                corrupt_at(path, format!(
                    "chunk {kind}/{key}@{first_us} names session {store_session}, which the store does not hold"
                ))
            })?;
            let mut c = ChunkRef {
                first_us,
                store_session,
                session,
                seq0: 0,
            };
            let checksummed = self
                .checksums_from
                .is_some_and(|from| store_session >= from);
            if filter.skip_corrupt
                && checksummed
                && let Err(e) = codec::checked(v.value())
            {
                skipped.push((first_us, store_session, e.to_string()));
                continue;
            }
            if kind == KIND_BEATS {
                match first_seq(v.value()) {
                    Ok(seq0) => c.seq0 = seq0,
                    Err(e) if filter.skip_corrupt && checksummed => {
                        skipped.push((first_us, store_session, e.to_string()));
                        continue;
                    }
                    Err(e) => {
                        return Err(corrupt_at(
                            path,
                            format!("chunk {kind}/{key}@{first_us} (session {store_session}): {e}"),
                        ));
                    }
                }
            }
            refs.push(c);
        }
        Ok((refs, skipped))
    }
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
pub(crate) mod tests {
    use super::*;
    use crate::samples::{Beat, Observation, Outcome, Sample, StatusSample};
    use crate::store::codec;
    use crate::store::writer::Appender;
    use crate::store::{Store, cluster_key, replica_key};

    /// A path for a new store file in a directory of its own, emptied.
    pub(crate) fn fresh_path(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lagtrace-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("s.redb")
    }

    /// A recorder session of 10 ms beats starting at `t0_us`.
    pub(crate) fn begin_session(store: &Store, t0_us: i64) -> u32 {
        store
            .begin_session(&SessionInfo {
                started_us: t0_us,
                interval_us: 10_000,
                version: "t".into(),
                host: "h".into(),
                read_every: 1,
            })
            .unwrap()
    }

    /// A store with `n` beats and `n` reads of replica "r", about 10 ms apart from `t0_us`,
    /// committed every 100 (as the recorder does every second at 10 ms) after a status
    /// sample whose SQL_Delay counts the commits.
    pub(crate) fn store(name: &str, t0_us: i64, n: i64) -> PathBuf {
        let path = fresh_path(&format!("scan-{name}"));
        let store = Store::open_or_create(&path).unwrap();
        let ids = store
            .intern(&[cluster_key("c"), replica_key("c", "r")])
            .unwrap();
        let session = begin_session(&store, t0_us);
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
                    probe: Default::default(),
                },
            });
            // The recorder commits every second, after a status poll.
            if k % 100 == 99 {
                appender.add(Sample::Status {
                    replica: ids[1],
                    status: crate::samples::StatusSample {
                        postgres: None,
                        t_us: t + 700,
                        duration_us: 300,
                        outcome: Outcome::Ok,
                        reason: None,
                        channels: vec![crate::samples::ChannelStatus {
                            sql_delay_s: (k / 100) as u32,
                            ..crate::samples::ChannelStatus::running()
                        }],
                    },
                });
                appender.flush().unwrap();
            }
        }
        appender.finish().unwrap();
        path
    }

    fn starts(obs: &Observations) -> Vec<i64> {
        let mut out = Vec::new();
        obs.for_each(|o, _| {
            out.push(o.r_start_us);
            Ok::<(), StoreError>(())
        })
        .unwrap();
        out
    }

    #[test]
    fn a_walk_reads_every_chunk_once_and_a_beat_reader_can_go_back() {
        let path = store("walk", 1_000_000, 20_000);
        let rec = load(std::slice::from_ref(&path), &Filter::default()).unwrap();
        let obs = &rec.replicas[0].observations;
        let whole = starts(obs);
        assert_eq!(whole.len(), 20_000);
        assert!(whole.is_sorted());
        let progress = rec.progress().get();
        assert_eq!(progress.done, progress.total, "every chunk decoded once");

        let (beats, failed) = rec.beats_of("c").collect().unwrap();
        assert_eq!(beats.len(), 20_000);
        assert!(failed.is_empty());
        assert!(beats.is_sorted_by(|a, b| a.seq < b.seq));
        // Gone back to a beat in the middle: it and every later beat come again.
        let mut reader = rec.beats_of("c").reader();
        let (mut again, mut f) = (Vec::new(), Vec::new());
        reader.fill(&mut again, &mut f).unwrap();
        let middle = beats[12_345].seq;
        reader.seek(middle);
        again.clear();
        while reader.fill(&mut again, &mut f).unwrap() {}
        assert!(again[0].seq <= middle);
        let at = beats.iter().position(|b| b.seq == again[0].seq).unwrap();
        assert_eq!(again, beats[at..]);
        assert_eq!(rec.beats_of("nope").collect().unwrap().0.len(), 0);
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
        assert_eq!(
            rec.beats_of("c").collect().unwrap().0.len(),
            10_000,
            "the same beats in both, kept once"
        );

        let filter = Filter {
            from_us: Some(21_000_000),
            to_us: Some(31_000_000),
            ..Default::default()
        };
        let rec = load(&[a.clone(), b.clone()], &filter).unwrap();
        let cut = starts(&rec.replicas[0].observations);
        assert!(cut.iter().all(|t| (21_000_000..=31_000_000).contains(t)));
        assert_eq!(cut.len(), 2_000);
        let status = rec.replicas[0].status.collect().unwrap();
        assert_eq!(status.len(), 20, "ten seconds of both stores' samples");
        assert!(
            status
                .iter()
                .all(|s| (21_000_000..=31_000_000).contains(&s.t_us))
        );
        assert!(status.is_sorted_by_key(|s| s.t_us));

        // Status samples of both stores, merged by time.
        let rec = load(&[a, b], &Filter::default()).unwrap();
        let status = rec.replicas[0].status.collect().unwrap();
        assert_eq!(status.len(), 200);
        assert!(status.is_sorted_by_key(|s| s.t_us));
        let delays: Vec<u32> = status[..4]
            .iter()
            .map(|s| s.channels[0].sql_delay_s)
            .collect();
        assert_eq!(delays, [0, 0, 1, 1], "one sample of each store per second");
    }

    fn ahead(status: &StatusSamples) -> Result<Vec<StatusSample>, StoreError> {
        let mut seen = Vec::new();
        status.for_each_ahead(|s| seen.push(s.clone()))?;
        Ok(seen)
    }

    #[test]
    fn status_walked_ahead_is_status_walked_and_stops_at_a_corrupt_chunk() {
        let a = store("ahead-a", 1_000_000, 20_000);
        let b = store("ahead-b", 1_005_000, 20_000);
        let window = Filter {
            from_us: Some(21_000_000),
            to_us: Some(151_000_000),
            ..Default::default()
        };
        for (paths, filter) in [
            (vec![a.clone()], Filter::default()),
            (vec![a.clone()], window.clone()),
            (vec![a.clone(), b.clone()], Filter::default()),
            (vec![a.clone(), b], window),
        ] {
            let rec = load(&paths, &filter).unwrap();
            let status = &rec.replicas[0].status;
            let walked = status.collect().unwrap();
            assert!(walked.len() >= 130, "{}", walked.len());
            assert_eq!(ahead(status).unwrap(), walked);
        }

        // One bit flipped in the second status chunk: the samples before it, then the
        // error naming it.
        let whole = load(std::slice::from_ref(&a), &Filter::default())
            .unwrap()
            .replicas[0]
            .status
            .collect()
            .unwrap();
        flip_a_bit(&a, KIND_STATUS, 1);
        let rec = load(std::slice::from_ref(&a), &Filter::default()).unwrap();
        let mut seen = 0;
        let e = rec.replicas[0]
            .status
            .for_each_ahead(|s| {
                assert_eq!(*s, whole[seen]);
                seen += 1;
            })
            .unwrap_err();
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
        assert!(seen > 0 && seen < whole.len(), "{seen} of {}", whole.len());
    }

    /// Flips one bit in the middle of the `nth` chunk (from 0, in key order) of `kind`
    /// in the store at `path`.
    fn flip_a_bit(path: &Path, kind: u8, nth: usize) {
        let db = redb::Database::open(path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(CHUNKS).unwrap();
            let key = table
                .iter()
                .unwrap()
                .map(|e| e.unwrap().0.value())
                .filter(|k| k.0 == kind)
                .nth(nth)
                .unwrap_or_else(|| panic!("no chunk {nth} of kind {kind}"));
            let mut value = table.get(key).unwrap().unwrap().value().to_vec();
            let middle = value.len() / 2;
            value[middle] ^= 0x10;
            table.insert(key, value.as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }

    /// Rewrites every chunk value of the store at `path` with `f`.
    fn rewrite_chunks(path: &Path, f: impl Fn(&[u8]) -> Vec<u8>) {
        let db = redb::Database::open(path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(CHUNKS).unwrap();
            let keys: Vec<_> = table
                .iter()
                .unwrap()
                .map(|e| e.unwrap().0.value())
                .collect();
            for k in keys {
                let v = f(table.get(k).unwrap().unwrap().value());
                table.insert(k, v.as_slice()).unwrap();
            }
        }
        tx.commit().unwrap();
    }

    fn count_reads(path: &Path) -> Result<usize, StoreError> {
        let rec = load(&[path.to_path_buf()], &Filter::default())?;
        let mut n = 0;
        rec.replicas[0].observations.for_each(|_, _| {
            n += 1;
            Ok::<(), StoreError>(())
        })?;
        Ok(n)
    }

    #[test]
    fn a_chunk_whose_bytes_changed_is_reported_never_decoded() {
        let path = store("flipped", 1_000_000, 2_000);
        assert_eq!(count_reads(&path).unwrap(), 2_000);
        flip_a_bit(&path, KIND_OBSERVATIONS, 0);
        let e = count_reads(&path).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("chunk 2/r/c/r@"), "{text}");
        assert!(text.contains("checksum mismatch"), "{text}");
    }

    #[test]
    fn a_format_2_store_is_read_and_upgraded_in_place_when_appended_to() {
        let path = store("upgrade", 1_000_000, 1_000);
        // Make it what version 2 wrote: chunks without checksums, format_version 2.
        rewrite_chunks(&path, |v| codec::checked(v).unwrap().to_vec());
        {
            let db = redb::Database::open(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(crate::store::META)
                .unwrap()
                .insert("format_version", 2u32.to_le_bytes().as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        assert_eq!(
            count_reads(&path).unwrap(),
            1_000,
            "version 2 reads as before"
        );

        // A recorder appends: the store becomes version 3 from its session on.
        let store = Store::open_or_create(&path).unwrap();
        let ids = store
            .intern(&[cluster_key("c"), replica_key("c", "r")])
            .unwrap();
        let session = begin_session(&store, 100_000_000);
        assert_eq!(session, 2);
        let mut appender = Appender::new(store, session);
        for k in 0..500i64 {
            let t = 100_000_000 + k * 10_000;
            appender.add(Sample::Observation {
                replica: ids[1],
                observation: Observation {
                    r_start_us: t,
                    r_end_us: t + 300,
                    seq: Some(k as u64),
                    outcome: Outcome::Ok,
                    reason: None,
                    follow_up: false,
                    probe: Default::default(),
                },
            });
        }
        appender.finish().unwrap();
        assert_eq!(count_reads(&path).unwrap(), 1_500);
        let (db, version) = crate::store::open_read(&path).unwrap();
        assert_eq!(version, 3);
        let tx = db.begin_read().unwrap();
        assert_eq!(
            crate::store::checksums_from(&path, &tx, version).unwrap(),
            Some(2)
        );
    }
}
