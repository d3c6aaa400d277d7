//! Primary outages: stretches where a cluster's beat writer got no acknowledgement.
//! They are a fact about the cluster ("no beat acknowledged from .. to .."), never
//! replica lag: the Lag model turns reads during them into "at least" lag, and this
//! module tells the operator why. Times are UTC µs of the recorder's clock.

use crate::samples::{Beat, BeatTimes, Outcome};

/// A run of failed beats of one recorder session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryOutage {
    /// The send of the first failed beat.
    pub start_us: i64,
    /// The acknowledgement of the next beat that went through; `None` when none did
    /// before the recording (or the session) ends.
    pub end_us: Option<i64>,
    /// The send of the last failed beat (where the outage is last known to go on).
    pub last_failed_us: i64,
    pub failed_beats: usize,
    /// How the first failed beat failed, and its error text.
    pub outcome: Outcome,
    pub reason: Option<String>,
}

impl PrimaryOutage {
    /// From the first failed beat to the next good one, or to the last failed one.
    pub fn duration_us(&self) -> i64 {
        self.end_us.unwrap_or(self.last_failed_us) - self.start_us
    }
}

/// Finds a cluster's outages in its beats fed in seq order, a batch at a time.
#[derive(Debug, Default)]
pub struct OutageFinder {
    out: Vec<PrimaryOutage>,
    open: Option<PrimaryOutage>,
    session: Option<u32>,
}

impl OutageFinder {
    /// Feeds the next beats (ordered by seq) and the failed ones among them, whole
    /// (ordered by seq), for their outcomes and reasons.
    pub fn push(&mut self, beats: &[BeatTimes], failed: &[Beat]) {
        for b in beats {
            if self.session != Some(b.session)
                && let Some(o) = self.open.take()
            {
                // A session that ended failing: its outage ends unknown.
                self.out.push(o);
            }
            self.session = Some(b.session);
            match (b.t_ack_us(), &mut self.open) {
                (Some(ack), Some(_)) => {
                    let mut o = self.open.take().expect("open");
                    o.end_us = Some(ack);
                    self.out.push(o);
                }
                (Some(_), None) => {}
                (None, Some(o)) => {
                    o.failed_beats += 1;
                    o.last_failed_us = b.t_send_us;
                }
                (None, None) => {
                    let first = failed
                        .binary_search_by_key(&b.seq, |f| f.seq)
                        .ok()
                        .map(|i| &failed[i]);
                    self.open = Some(PrimaryOutage {
                        start_us: b.t_send_us,
                        end_us: None,
                        last_failed_us: b.t_send_us,
                        failed_beats: 1,
                        outcome: first.map_or(Outcome::Timeout, |f| f.outcome),
                        reason: first.and_then(|f| f.reason.clone()),
                    });
                }
            }
        }
    }

    /// The outages, in time order.
    pub fn finish(mut self) -> Vec<PrimaryOutage> {
        self.out.extend(self.open);
        self.out
    }
}

/// The outages of a cluster from its beats (ordered by seq) and its failed beats
/// (ordered by seq, with their outcomes and reasons).
pub fn primary_outages(beats: &[BeatTimes], failed: &[Beat]) -> Vec<PrimaryOutage> {
    let mut finder = OutageFinder::default();
    finder.push(beats, failed);
    finder.finish()
}

/// The outages of a cluster whose beats are read from the store a chunk at a time.
pub fn cluster_outages(
    beats: &crate::store::scan::Beats,
) -> Result<Vec<PrimaryOutage>, crate::store::StoreError> {
    let mut finder = OutageFinder::default();
    let mut reader = beats.reader();
    let (mut batch, mut failed) = (Vec::new(), Vec::new());
    while reader.fill(&mut batch, &mut failed)? {
        finder.push(&batch, &failed);
        batch.clear();
        failed.clear();
    }
    Ok(finder.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(seq: u64, send: i64, ok: bool, session: u32) -> BeatTimes {
        BeatTimes::new(seq, send, ok.then_some(send + 300), session)
    }

    fn failed(seq: u64, send: i64) -> Beat {
        Beat {
            seq,
            t_send_us: send,
            t_done_us: send + 2_000_000,
            outcome: Outcome::Timeout,
            reason: Some("heartbeat write timed out after 2s".into()),
        }
    }

    #[test]
    fn runs_of_failed_beats_are_outages_ended_by_the_next_ack() {
        let mut beats: Vec<BeatTimes> = (1..=10)
            .map(|k| beat(k, k as i64 * 10_000, true, 0))
            .collect();
        // The primary froze after beat 10: beats 11..13 timed out (with backoff).
        let fails = [
            failed(11, 110_000),
            failed(40, 2_400_000),
            failed(90, 4_000_000),
        ];
        beats.extend(fails.iter().map(|f| beat(f.seq, f.t_send_us, false, 0)));
        beats.push(beat(900, 9_000_000, true, 0));
        // A second session that ends failing.
        beats.push(beat(5_000_000, 20_000_000, true, 1));
        beats.push(beat(5_000_001, 20_010_000, false, 1));
        let out = primary_outages(&beats, &fails);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0],
            PrimaryOutage {
                start_us: 110_000,
                end_us: Some(9_000_300),
                last_failed_us: 4_000_000,
                failed_beats: 3,
                outcome: Outcome::Timeout,
                reason: Some("heartbeat write timed out after 2s".into()),
            }
        );
        assert_eq!(out[0].duration_us(), 8_890_300);
        assert_eq!((out[1].end_us, out[1].failed_beats), (None, 1));
    }
}
