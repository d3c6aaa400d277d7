//! Retention: dropping whole chunks whose samples are all older than a cutoff. Used by
//! the writer thread while recording (`record --retain`) and by `lagtrace prune`.
//!
//! A chunk's key holds only its first time, so a chunk is known to end before the
//! cutoff when the next chunk of the same series also begins at or before it (a
//! series' chunks follow one another: one writer at a time, each chunk sealed before
//! the next begins). The newest chunk at or before the cutoff is therefore kept, and
//! retention keeps at most one chunk more than asked per series.

use redb::ReadableTable;

use super::{
    CHUNKS, Cutoff, KIND_BEATS, KIND_OBSERVATIONS, KIND_STATUS, NAME_IDS, Store, StoreError, db_err,
};

/// What a prune dropped (or would drop, on a dry run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub chunks: u64,
    /// Their encoded size, bytes (the file shrinks by about this much once compacted;
    /// until then redb reuses the pages for new chunks).
    pub bytes: u64,
    /// Events older than the cutoff (`export --events`).
    pub events: u64,
}

impl Store {
    /// Drops every chunk that [`Cutoff`] makes old, in one write transaction; with
    /// `dry_run`, counts them and changes nothing.
    pub fn prune(&self, cutoff: Cutoff, dry_run: bool) -> Result<Pruned, StoreError> {
        let p = self.path();
        let tx = self.db.begin_write().map_err(|e| db_err(p, e))?;
        let mut pruned = Pruned::default();
        {
            let ids: Vec<u32> = tx
                .open_table(NAME_IDS)
                .map_err(|e| db_err(p, e))?
                .iter()
                .map_err(|e| db_err(p, e))?
                .map(|r| r.map(|(k, _)| k.value()).map_err(|e| db_err(p, e)))
                .collect::<Result<_, _>>()?;
            let mut table = tx.open_table(CHUNKS).map_err(|e| db_err(p, e))?;
            for id in ids {
                for kind in [KIND_BEATS, KIND_OBSERVATIONS, KIND_STATUS] {
                    let cut = if kind == KIND_BEATS {
                        cutoff.beats_us
                    } else {
                        cutoff.samples_us
                    };
                    let mut old: Vec<((u8, u32, i64, u32), u64)> = table
                        .range((kind, id, i64::MIN, 0)..=(kind, id, cut, u32::MAX))
                        .map_err(|e| db_err(p, e))?
                        .map(|r| {
                            r.map(|(k, v)| (k.value(), v.value().len() as u64))
                                .map_err(|e| db_err(p, e))
                        })
                        .collect::<Result<_, _>>()?;
                    // The newest one may hold samples after the cutoff.
                    old.pop();
                    for (key, len) in old {
                        if !dry_run {
                            table.remove(key).map_err(|e| db_err(p, e))?;
                        }
                        pruned.chunks += 1;
                        pruned.bytes += len;
                    }
                }
            }
        }
        pruned.events = super::events::prune(p, &tx, cutoff, dry_run)?;
        if dry_run || pruned.chunks + pruned.events == 0 {
            tx.abort().map_err(|e| db_err(p, e))?;
        } else {
            tx.commit().map_err(|e| db_err(p, e))?;
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scan::{Filter, load, tests::store};

    const S: i64 = 1_000_000;

    /// Ten minutes at 10 ms, retention 200 s at the end: reads before 400 s and beats
    /// before 200 s go; one chunk at most (seconds here) is kept past each cutoff.
    #[test]
    fn prune_drops_only_chunks_that_end_before_the_cutoff() {
        let path = store("prune", 0, 60_000);
        let cutoff = Cutoff::keeping(600 * S, 200 * S);
        assert_eq!((cutoff.samples_us, cutoff.beats_us), (400 * S, 200 * S));
        let store = Store::open_or_create(&path).unwrap();
        let dry = store.prune(cutoff, true).unwrap();
        assert!(dry.chunks > 10 && dry.bytes > 0, "{dry:?}");
        let done = store.prune(cutoff, false).unwrap();
        assert_eq!(dry, done, "a dry run counts what a prune drops");
        assert_eq!(store.prune(cutoff, false).unwrap(), Pruned::default());
        drop(store);

        let rec = load(std::slice::from_ref(&path), &Filter::default()).unwrap();
        let (beats, _) = rec.beats_of("c").collect().unwrap();
        let first_beat = beats.first().unwrap().t_send_us;
        let mut reads = Vec::new();
        rec.replicas[0]
            .observations
            .for_each(|o, _| {
                reads.push(o.r_start_us);
                Ok::<(), crate::store::StoreError>(())
            })
            .unwrap();
        assert!(
            (170 * S..=200 * S).contains(&first_beat),
            "first beat at {first_beat} µs"
        );
        assert!(
            (370 * S..=400 * S).contains(&reads[0]),
            "first read at {} µs",
            reads[0]
        );
        // Nothing after the cutoffs is lost.
        assert_eq!(reads.len() as i64, 60_000 - reads[0] / 10_000);
        assert_eq!(beats.len() as i64, 60_000 - first_beat / 10_000);
    }
}
