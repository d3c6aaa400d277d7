//! Reading a recording back: every series of one or several stores, decoded and merged
//! by name, for the offline commands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable};

use super::codec::{self, SpanChunk, StatusChunk};
use super::writer::MAX_CHUNK_SPAN_US;
use super::{
    CHUNKS, KIND_BEATS, KIND_OBSERVATIONS, KIND_STATUS, NAME_IDS, SESSIONS, SessionInfo,
    StoreError, db_err, open_read,
};
use crate::samples::{Beat, Observation, StatusSample};

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
    /// In time order.
    pub observations: Vec<Observation>,
    /// In time order.
    pub status: Vec<StatusSample>,
}

/// A loaded recording.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// Beats per cluster, ordered by `seq` (one per seq).
    pub beats: BTreeMap<String, Vec<Beat>>,
    /// Replicas, ordered by (cluster, replica).
    pub replicas: Vec<ReplicaSeries>,
    pub sessions: Vec<SessionInfo>,
}

impl Recording {
    /// The beats of `cluster`, ordered by seq (empty when the recording holds none).
    pub fn beats_of(&self, cluster: &str) -> &[Beat] {
        self.beats.get(cluster).map_or(&[], Vec::as_slice)
    }
}

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

/// One series of one store: its raw chunks, read in the first (serial) phase and
/// decoded in the second (parallel) one.
struct Task {
    path: PathBuf,
    kind: u8,
    key: String,
    cluster: String,
    replica: Option<String>,
    /// `(first_us, session, postcard bytes)` in key order.
    chunks: Vec<(i64, u32, Vec<u8>)>,
}

/// A decoded series.
enum Decoded {
    Beats(Vec<Beat>),
    Observations(Vec<Observation>),
    Status(Vec<StatusSample>),
}

/// [`load`], calling `progress` (on the calling thread) as chunks are decoded. Chunks
/// are read from the files first, then every series is decoded on its own, on as many
/// threads as there are cores.
pub fn load_with_progress(
    paths: &[PathBuf],
    filter: &Filter,
    progress: &mut dyn FnMut(Progress),
) -> Result<Recording, StoreError> {
    let mut rec = Recording::default();
    let mut tasks = Vec::new();
    for path in paths {
        read_chunks(path, filter, &mut rec, &mut tasks)?;
    }
    let total: u64 = tasks.iter().map(|t| t.chunks.len() as u64).sum();
    tracing::debug!(chunks = total, "chunks read");
    progress(Progress { done: 0, total });
    let decoded = decode_all(&tasks, filter, total, progress)?;
    tracing::debug!("chunks decoded");

    let mut replicas: BTreeMap<(String, String), ReplicaSeries> = BTreeMap::new();
    for (task, d) in tasks.iter().zip(decoded) {
        match d {
            Decoded::Beats(b) => {
                let all = rec.beats.entry(task.cluster.clone()).or_default();
                if all.is_empty() {
                    *all = b;
                } else {
                    all.extend(b);
                }
            }
            Decoded::Observations(o) => {
                let series = replica_series(&mut replicas, &task.cluster, task.replica.as_deref());
                if series.observations.is_empty() {
                    series.observations = o;
                } else {
                    series.observations.extend(o);
                }
            }
            Decoded::Status(st) => {
                replica_series(&mut replicas, &task.cluster, task.replica.as_deref())
                    .status
                    .extend(st);
            }
        }
    }
    // One store's series come out ordered; merged stores (or overlapping sessions) need
    // a sort, which is cheap on data that is already nearly in order.
    for beats in rec.beats.values_mut() {
        if !beats.is_sorted_by_key(|b| b.seq) {
            beats.sort_by_key(|b| b.seq);
        }
        beats.dedup_by_key(|b| b.seq);
    }
    for series in replicas.values_mut() {
        if !series.observations.is_sorted_by_key(|o| o.r_start_us) {
            series.observations.sort_by_key(|o| o.r_start_us);
        }
        if !series.status.is_sorted_by_key(|s| s.t_us) {
            series.status.sort_by_key(|s| s.t_us);
        }
    }
    rec.replicas = replicas.into_values().collect();
    rec.sessions.sort_by_key(|s| s.started_us);
    Ok(rec)
}

/// Decodes every task, largest first, on up to `available_parallelism` threads (the
/// calling thread among them, reporting progress). Results come back in task order.
fn decode_all(
    tasks: &[Task],
    filter: &Filter,
    total: u64,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<Decoded>, StoreError> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    let mut order: Vec<usize> = (0..tasks.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tasks[i].chunks.len()));
    let next = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let results: Mutex<Vec<Option<Result<Decoded, StoreError>>>> =
        Mutex::new((0..tasks.len()).map(|_| None).collect());
    let work = |report: &mut dyn FnMut(u64)| {
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&i) = order.get(k) else { break };
            let r = decode_task(&tasks[i], filter, &mut |n| {
                report(done.fetch_add(n, Ordering::Relaxed) + n)
            });
            results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(tasks.len())
        .max(1);
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|| work(&mut |_| {}));
        }
        work(&mut |d| progress(Progress { done: d, total }));
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every task decoded"))
        .collect()
}

fn decode_task(
    task: &Task,
    filter: &Filter,
    report: &mut dyn FnMut(u64),
) -> Result<Decoded, StoreError> {
    let corrupt = |first_us: i64, session: u32, e: &dyn std::fmt::Display| StoreError::Corrupt {
        path: task.path.clone(),
        detail: format!(
            "chunk {}/{}@{first_us} (session {session}): {e}",
            task.kind, task.key
        ),
    };
    let count = |bytes: &[u8]| -> u64 {
        postcard::take_from_bytes::<u32>(bytes).map_or(0, |(n, _)| u64::from(n))
    };
    let mut since_report = 0;
    let mut tick = |report: &mut dyn FnMut(u64)| {
        since_report += 1;
        if since_report == 64 {
            report(since_report);
            since_report = 0;
        }
    };
    let decoded = match task.kind {
        KIND_STATUS => {
            let mut out = Vec::new();
            for (first_us, session, bytes) in &task.chunks {
                let chunk: StatusChunk =
                    postcard::from_bytes(bytes).map_err(|e| corrupt(*first_us, *session, &e))?;
                let samples =
                    codec::decode_status(&chunk).map_err(|e| corrupt(*first_us, *session, &e))?;
                out.extend(samples.into_iter().filter(|s| filter.in_window(s.t_us)));
                tick(report);
            }
            Decoded::Status(out)
        }
        kind => {
            // Chunks start with their span count: reserve once, decode in place.
            let n: u64 = task.chunks.iter().map(|c| count(&c.2)).sum();
            let beats = kind == KIND_BEATS;
            let from = if beats {
                filter.from_us.map(|f| f.saturating_sub(BEAT_LOOKBACK_US))
            } else {
                filter.from_us
            };
            let wanted =
                |t: i64| from.is_none_or(|f| t >= f) && filter.to_us.is_none_or(|e| t <= e);
            let (mut bs, mut os): (Vec<Beat>, Vec<Observation>) = if beats {
                (Vec::with_capacity(n as usize), Vec::new())
            } else {
                (Vec::new(), Vec::with_capacity(n as usize))
            };
            for (first_us, session, bytes) in &task.chunks {
                let chunk: SpanChunk =
                    postcard::from_bytes(bytes).map_err(|e| corrupt(*first_us, *session, &e))?;
                let result = if beats {
                    codec::decode_spans_into(&chunk, &mut bs, Beat::from)
                } else {
                    codec::decode_spans_into(&chunk, &mut os, Observation::from)
                };
                result.map_err(|e| corrupt(*first_us, *session, &e))?;
                tick(report);
            }
            // Only chunks at the window's edges hold spans outside it.
            if beats {
                if from.is_some() || filter.to_us.is_some() {
                    bs.retain(|b| wanted(b.t_send_us));
                }
                Decoded::Beats(bs)
            } else {
                if from.is_some() || filter.to_us.is_some() {
                    os.retain(|o| wanted(o.r_start_us));
                }
                Decoded::Observations(os)
            }
        }
    };
    report(since_report);
    Ok(decoded)
}

/// Reads the chunks the filter selects from one store (and its sessions) into tasks.
fn read_chunks(
    path: &Path,
    filter: &Filter,
    rec: &mut Recording,
    tasks: &mut Vec<Task>,
) -> Result<(), StoreError> {
    let db = open_read(path)?;
    let tx = db.begin_read().map_err(|e| db_err(path, e))?;
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };

    let sessions = tx.open_table(SESSIONS).map_err(|e| db_err(path, e))?;
    for entry in sessions.iter().map_err(|e| db_err(path, e))? {
        let (id, bytes) = entry.map_err(|e| db_err(path, e))?;
        let info: SessionInfo = postcard::from_bytes(bytes.value())
            .map_err(|e| corrupt(format!("session {}: {e}", id.value())))?;
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
            let mut task = Task {
                path: path.to_path_buf(),
                kind,
                key: key.clone(),
                cluster: cluster.clone(),
                replica: replica.clone(),
                chunks: Vec::new(),
            };
            for item in range {
                let (k, v) = item.map_err(|e| db_err(path, e))?;
                let (_, _, first_us, session) = k.value();
                task.chunks.push((first_us, session, v.value().to_vec()));
            }
            if !task.chunks.is_empty() {
                tasks.push(task);
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
