//! The recorder's recent beats of each cluster, for the lag of each read as it arrives
//! (the offline analysis matches reads to every stored beat instead).

use crate::analysis::lag::{Continuity, Lag, lag_of, unmatched};
use crate::samples::{BeatTimes, Observation};

/// The last beats of the recorder's own session, for computing lag live as reads
/// arrive. Holds the most recent `capacity` to `capacity + capacity / 8` beats in one
/// buffer allocated and touched when created, so the recorder's memory is flat from
/// its start rather than growing until the buffer first fills (24 bytes a beat). A read
/// of an older beat than those has only a floor (the offline analysis, which has every
/// beat, still bounds it).
#[derive(Debug, Clone)]
pub struct RecentBeats {
    beats: Vec<BeatTimes>,
    capacity: usize,
    continuity: Continuity,
}

/// The session number live beats carry (one recorder, one session).
const LIVE_SESSION: u32 = 0;

impl RecentBeats {
    pub fn new(capacity: usize, interval_us: i64) -> Self {
        let capacity = capacity.max(8);
        let mut beats = Vec::with_capacity(capacity + capacity / 8);
        // Write every slot once so that its pages are resident now, not one by one.
        beats.resize(beats.capacity(), BeatTimes::new(0, 0, None, LIVE_SESSION));
        beats.clear();
        RecentBeats {
            beats,
            capacity,
            continuity: Continuity::for_interval(interval_us),
        }
    }

    /// Adds a beat (any outcome); beats arrive in `seq` order from one writer.
    pub fn push(&mut self, beat: &crate::samples::Beat) {
        if self.beats.last().is_some_and(|b| b.seq >= beat.seq) {
            return;
        }
        if self.beats.len() >= self.capacity + self.capacity / 8 {
            self.beats.drain(..self.capacity / 8);
        }
        self.beats.push(BeatTimes::new(
            beat.seq,
            beat.t_send_us,
            beat.t_ack_us(),
            LIVE_SESSION,
        ));
    }

    /// The lag a read shows. A read of a seq older than every beat held is "at least"
    /// the time since the first held beat it lacks (it stalled before the recorder
    /// started, or long ago), or unknown before any acknowledgement. `None` for a failed
    /// read, and for a seq just past the newest beat held (within
    /// [`RecentBeats::AHEAD`]: that beat's sample is still on its way), which is ours,
    /// not foreign.
    pub fn lag(&self, obs: &Observation) -> Option<Lag> {
        let seq = obs.seq?;
        let (Some(first), Some(last)) = (self.beats.first(), self.beats.last()) else {
            return Some(unmatched(&self.beats, LIVE_SESSION, seq, obs));
        };
        if seq < first.seq {
            return Some(unmatched(&self.beats, LIVE_SESSION, seq, obs));
        }
        if seq > last.seq && seq - last.seq <= Self::AHEAD {
            return None;
        }
        lag_of(&self.beats, LIVE_SESSION, self.continuity, obs)
    }

    /// How far past the newest beat held a seq may be and still be this writer's
    /// next beat (beat numbers count intervals, skipped ones included).
    pub const AHEAD: u64 = 1_000;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::lag::Unknown;
    use crate::analysis::lag::tests::{INTERVAL, full_beat, lag, obs, steady};

    #[test]
    fn recent_beats_agree_with_the_offline_lookup() {
        let beats = steady(1, 50);
        let mut recent = RecentBeats::new(8, INTERVAL);
        for b in &beats {
            recent.push(&full_beat(b.seq, b.t_send_us, b.t_ack_us()));
        }
        let held = obs(Some(48), 485_000, 485_200);
        assert_eq!(recent.lag(&held), lag(&beats, &held));
        // Older than every beat held: at least the time since the first held ack.
        let old = obs(Some(3), 505_000, 505_100);
        let first_held = recent.beats[0];
        assert_eq!(
            recent.lag(&old),
            Some(Lag::AtLeast {
                lo_us: 505_000 - first_held.t_ack_us().unwrap()
            })
        );
        // No beats yet.
        let empty = RecentBeats::new(8, INTERVAL);
        assert_eq!(
            empty.lag(&old),
            Some(Lag::Unknown(Unknown::BeforeFirstBeat))
        );
    }
}
