//! The store's two small tables beside the sample chunks: `events` (what happened to a
//! cluster and what the triggers did, in time order) and `state` (what the recorder
//! last knew of each cluster, for the next `record`). Both hold JSON text: events are
//! rare (a handful an hour), and the documents are the ones triggers read, so an
//! operator sees the same fields in `export --events` as their scripts did.
//!
//! Stores written before these tables existed simply have no events and no state.

use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Deserialize;

use super::Cutoff;
use super::{Store, StoreError, corrupt_at, db_err};
use crate::samples::event::{EventDoc, EventKind};

/// `events`: (time UTC µs, session id, number within the session) to a JSON document.
pub const EVENTS: TableDefinition<(i64, u32, u32), &str> = TableDefinition::new("events");
/// `state`: cluster name to the JSON of what the recorder last knew of it.
pub const STATE: TableDefinition<&str, &str> = TableDefinition::new("state");

/// One stored event, as the offline commands read it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// When it happened, UTC µs.
    pub t_us: i64,
    /// The document, typed (its cluster, its kind, what it says).
    pub doc: EventDoc,
    /// The whole document as stored, fields this version does not know included: what
    /// `export --events` and analyze's JSON give.
    pub json: serde_json::Value,
}

impl RecordedEvent {
    pub fn kind(&self) -> EventKind {
        self.doc.kind()
    }

    /// The cluster it is about.
    pub fn cluster(&self) -> &str {
        &self.doc.cluster
    }
}

/// Writes `events` (each `(t_us, doc)`, numbered from `first_n` in this session) and
/// `states` (cluster, doc) in the write transaction `tx`.
pub(super) fn put(
    path: &Path,
    tx: &redb::WriteTransaction,
    session: u32,
    first_n: u32,
    events: &[(i64, String)],
    states: &std::collections::BTreeMap<String, String>,
) -> Result<(), StoreError> {
    if !events.is_empty() {
        let mut table = tx.open_table(EVENTS).map_err(|e| db_err(path, e))?;
        for (n, (t_us, doc)) in (first_n..).zip(events) {
            table
                .insert((*t_us, session, n), doc.as_str())
                .map_err(|e| db_err(path, e))?;
        }
    }
    if !states.is_empty() {
        let mut table = tx.open_table(STATE).map_err(|e| db_err(path, e))?;
        for (cluster, doc) in states {
            table
                .insert(cluster.as_str(), doc.as_str())
                .map_err(|e| db_err(path, e))?;
        }
    }
    Ok(())
}

/// Drops the events before the cutoff for samples (the state stays: it is the newest
/// by definition). Returns how many were, or would be with `dry_run`.
pub(super) fn prune(
    path: &Path,
    tx: &redb::WriteTransaction,
    cutoff: Cutoff,
    dry_run: bool,
) -> Result<u64, StoreError> {
    let mut table = tx.open_table(EVENTS).map_err(|e| db_err(path, e))?;
    let old: Vec<(i64, u32, u32)> = table
        .range((i64::MIN, 0, 0)..(cutoff.samples_us, 0, 0))
        .map_err(|e| db_err(path, e))?
        .map(|r| r.map(|(k, _)| k.value()).map_err(|e| db_err(path, e)))
        .collect::<Result<_, _>>()?;
    if !dry_run {
        for key in &old {
            table.remove(key).map_err(|e| db_err(path, e))?;
        }
    }
    Ok(old.len() as u64)
}

/// The events of the store at `path`, read through `tx`, from `from_us` to `to_us`
/// (UTC µs, inclusive; `None` unbounded) about the clusters `wanted` accepts, in time
/// order.
pub(super) fn read_in(
    path: &Path,
    tx: &redb::ReadTransaction,
    from_us: Option<i64>,
    to_us: Option<i64>,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let table = match tx.open_table(EVENTS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(db_err(path, e)),
    };
    let lo = (from_us.unwrap_or(i64::MIN), 0, 0);
    let hi = (to_us.unwrap_or(i64::MAX), u32::MAX, u32::MAX);
    let mut out = Vec::new();
    for entry in table.range(lo..=hi).map_err(|e| db_err(path, e))? {
        let (key, doc) = entry.map_err(|e| db_err(path, e))?;
        let (t_us, _, _) = key.value();
        let bad = |e: serde_json::Error| corrupt_at(path, format!("event at {t_us} µs: {e}"));
        let json: serde_json::Value = serde_json::from_str(doc.value()).map_err(bad)?;
        let doc = EventDoc::deserialize(&json).map_err(bad)?;
        if wanted(&doc.cluster) {
            out.push(RecordedEvent { t_us, doc, json });
        }
    }
    Ok(out)
}

impl Store {
    /// What the last recorder knew of `cluster` (the JSON it stored), if any.
    pub fn state(&self, cluster: &str) -> Result<Option<String>, StoreError> {
        let p = self.path();
        let tx = self.db.begin_read().map_err(|e| db_err(p, e))?;
        let table = match tx.open_table(STATE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_err(p, e)),
        };
        let doc = table.get(cluster).map_err(|e| db_err(p, e))?;
        Ok(doc.map(|d| d.value().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scan::tests::fresh_path;

    /// [`read_in`] through a read transaction of its own.
    fn read(
        path: &Path,
        from_us: Option<i64>,
        to_us: Option<i64>,
        wanted: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let (db, _) = crate::store::open_read(path)?;
        let tx = db.begin_read().map_err(|e| db_err(path, e))?;
        read_in(path, &tx, from_us, to_us, wanted)
    }

    fn write(
        store: &Store,
        session: u32,
        first_n: u32,
        events: &[(i64, &str)],
        state: &[(&str, &str)],
    ) {
        let tx = store.db.begin_write().unwrap();
        let events: Vec<(i64, String)> = events.iter().map(|(t, d)| (*t, d.to_string())).collect();
        let states = state
            .iter()
            .map(|(c, d)| (c.to_string(), d.to_string()))
            .collect();
        put(store.path(), &tx, session, first_n, &events, &states).unwrap();
        tx.commit().unwrap();
    }

    /// Events come back in time order, filtered by cluster and window; the state is the
    /// newest written; a prune drops events before the cutoff and keeps the state.
    #[test]
    fn events_are_kept_in_time_order_and_the_newest_state_wins() {
        let path = fresh_path("events");
        let store = Store::open_or_create(&path).unwrap();
        assert_eq!(store.state("c").unwrap(), None);
        assert!(read(&path, None, None, &|_| true).unwrap().is_empty());
        let doc = |c: &str, e: &str| format!("{{\"cluster\":\"{c}\",\"event\":\"{e}\"}}");
        let (a, b, c) = (
            doc("c", "primary_down"),
            doc("d", "replica_down"),
            doc("c", "primary_up"),
        );
        write(&store, 1, 0, &[(300, &c), (100, &a)], &[("c", "{\"v\":1}")]);
        write(
            &store,
            1,
            2,
            &[(200, &b)],
            &[("c", "{\"v\":2}"), ("d", "{}")],
        );
        assert_eq!(store.state("c").unwrap().as_deref(), Some("{\"v\":2}"));
        let all = read(&path, None, None, &|_| true).unwrap();
        let names: Vec<(i64, &str, &str)> = all
            .iter()
            .map(|e| (e.t_us, e.cluster(), e.doc.event.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (100, "c", "primary_down"),
                (200, "d", "replica_down"),
                (300, "c", "primary_up")
            ]
        );
        let only_c = read(&path, Some(150), None, &|c| c == "c").unwrap();
        assert_eq!(only_c.len(), 1);
        assert_eq!(only_c[0].json["event"], "primary_up");

        let cutoff = Cutoff {
            samples_us: 250,
            beats_us: 0,
        };
        let tx = store.db.begin_write().unwrap();
        assert_eq!(prune(&path, &tx, cutoff, false).unwrap(), 2);
        tx.commit().unwrap();
        assert_eq!(read(&path, None, None, &|_| true).unwrap().len(), 1);
        assert_eq!(store.state("c").unwrap().as_deref(), Some("{\"v\":2}"));
    }
}
