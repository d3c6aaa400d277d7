//! Reading a recording back: every series of one or several stores, decoded and merged
//! by name, for the offline commands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

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

/// How far a load has come: chunks decoded so far, of `total` in the stores (a
/// filtered load reads fewer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// [`load`], calling `progress` as chunks are decoded.
pub fn load_with_progress(
    paths: &[PathBuf],
    filter: &Filter,
    progress: &mut dyn FnMut(Progress),
) -> Result<Recording, StoreError> {
    let mut rec = Recording::default();
    let mut replicas: BTreeMap<(String, String), ReplicaSeries> = BTreeMap::new();
    let mut count = Progress { done: 0, total: 0 };
    for path in paths {
        load_one(path, filter, &mut rec, &mut replicas, &mut count, progress)?;
    }
    for beats in rec.beats.values_mut() {
        beats.sort_by_key(|b| b.seq);
        beats.dedup_by_key(|b| b.seq);
    }
    for series in replicas.values_mut() {
        series.observations.sort_by_key(|o| o.r_start_us);
        series.status.sort_by_key(|s| s.t_us);
    }
    rec.replicas = replicas.into_values().collect();
    rec.sessions.sort_by_key(|s| s.started_us);
    Ok(rec)
}

fn load_one(
    path: &Path,
    filter: &Filter,
    rec: &mut Recording,
    replicas: &mut BTreeMap<(String, String), ReplicaSeries>,
    count: &mut Progress,
    progress: &mut dyn FnMut(Progress),
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
    count.total += chunks.len().map_err(|e| db_err(path, e))?;
    progress(*count);
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
            for item in range {
                let (k, v) = item.map_err(|e| db_err(path, e))?;
                let (_, _, first_us, session) = k.value();
                let what = || format!("chunk {kind}/{key}@{first_us} (session {session})");
                count.done += 1;
                if count.done.is_multiple_of(64) {
                    progress(*count);
                }
                match kind {
                    KIND_STATUS => {
                        let chunk: StatusChunk = postcard::from_bytes(v.value())
                            .map_err(|e| corrupt(format!("{}: {e}", what())))?;
                        let samples = codec::decode_status(&chunk)
                            .map_err(|e| corrupt(format!("{}: {e}", what())))?;
                        let series = replica_series(replicas, &cluster, replica.as_deref());
                        series
                            .status
                            .extend(samples.into_iter().filter(|s| filter.in_window(s.t_us)));
                    }
                    _ => {
                        let chunk: SpanChunk = postcard::from_bytes(v.value())
                            .map_err(|e| corrupt(format!("{}: {e}", what())))?;
                        let spans = codec::decode_spans(&chunk)
                            .map_err(|e| corrupt(format!("{}: {e}", what())))?;
                        if kind == KIND_BEATS {
                            let from = filter.from_us.map(|f| f.saturating_sub(BEAT_LOOKBACK_US));
                            rec.beats.entry(cluster.clone()).or_default().extend(
                                spans
                                    .into_iter()
                                    .filter(|s| from.is_none_or(|f| s.start_us >= f))
                                    .filter(|s| filter.to_us.is_none_or(|t| s.start_us <= t))
                                    .map(Beat::from),
                            );
                        } else {
                            let series = replica_series(replicas, &cluster, replica.as_deref());
                            series.observations.extend(
                                spans
                                    .into_iter()
                                    .filter(|s| filter.in_window(s.start_us))
                                    .map(Observation::from),
                            );
                        }
                    }
                }
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
