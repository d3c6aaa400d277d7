//! A cluster's beats read ahead on a thread of their own, so that decoding them overlaps
//! the matching of reads to them (which is the analysis's). Raw beats only: nothing
//! here knows what a lag is.

use super::Beats;
use crate::samples::{Beat, BeatTimes};
use crate::store::StoreError;

/// A chunk's worth of beats, and the failed ones among them whole ([`BeatReader::fill`]).
type BeatChunk = (Vec<BeatTimes>, Vec<Beat>);

/// A cluster's beats read from the first on by a thread of their own, a chunk's worth
/// at a time, so that decoding them overlaps matching reads to them
/// (`analysis::window::BeatWindow::reading_ahead`).
pub struct BeatsAhead {
    chunks: std::sync::mpsc::Receiver<Result<BeatChunk, StoreError>>,
    /// Emptied buffers, handed back for reuse.
    spent: std::sync::mpsc::Sender<Vec<BeatTimes>>,
}

impl BeatsAhead {
    /// Beats handed over at a time, at least (a few chunks' worth).
    pub const BATCH_BEATS: usize = 16_384;

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
    pub fn fill(
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
