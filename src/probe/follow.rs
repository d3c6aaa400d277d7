//! Whether the beat writer moves to another server after its beats fail: the probe
//! step's one decision about where the primary is, kept pure (the writer asks the
//! servers and says what they answered; this says what to do) so every case is a unit
//! test.
//!
//! Beats move only when the server they go to is shown not to be the primary any more:
//! it answers and refuses writes (read-only, replicating: a planned switchover), or it
//! has stopped answering and exactly one other server has *become* writable since the
//! outage began (a crash and a promotion). A server that was already writable when the
//! outage began is a split's second primary, or an old primary back with writes on:
//! beats do not move to it because the primary stopped answering for a moment. Only an
//! outage of [`SPLIT_MOVE_AFTER_US`] or more moves beats to it, as the primary may be
//! gone for good.

use crate::config::Address;

/// What the server beats go to answered when asked whether it takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetAnswer {
    /// It answers and takes writes: the failure was passing.
    TakesWrites,
    /// It answers and refuses writes (read-only, replicating, in recovery).
    RefusesWrites,
    /// It does not answer (refused, timed out).
    Unreachable,
}

/// What the writer does after looking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Beats go on to the same server.
    Stay,
    /// Beats move to this server.
    Move(Address),
    /// More than one other server takes writes: a split; beats stay. Logged when the
    /// set of writers changed since the last look.
    Split {
        writers: Vec<Address>,
        changed: bool,
    },
}

/// How long the server beats go to must have been failing before they move to a server
/// that was already writable when the failures began, µs.
pub const SPLIT_MOVE_AFTER_US: i64 = 30_000_000;

/// The writer's memory across the looks of one outage of its target.
#[derive(Debug, Clone, Default)]
pub struct PrimarySearch {
    /// When the outage began (the first look since beats last succeeded), µs of the
    /// writer's clock, and which other servers took writes then.
    outage: Option<(i64, Vec<Address>)>,
    /// The other writable servers at the last look, so a split is logged once.
    last_found: Vec<Address>,
}

impl PrimarySearch {
    /// A beat succeeded: the next failure starts a new outage.
    pub fn succeeded(&mut self) {
        self.outage = None;
    }

    /// Decides after a look at `now_us`: `writers` are the servers other than the target
    /// that take writes; `target` is what the target answered (asked only when
    /// exactly one other server takes writes, else `None`).
    pub fn decide(
        &mut self,
        now_us: i64,
        writers: &[Address],
        target: Option<TargetAnswer>,
    ) -> Decision {
        let (since_us, at_start) = self
            .outage
            .get_or_insert_with(|| (now_us, writers.to_vec()))
            .clone();
        let changed = writers != self.last_found.as_slice();
        self.last_found = writers.to_vec();
        match (writers, target) {
            ([_, _, ..], _) => Decision::Split {
                writers: writers.to_vec(),
                changed,
            },
            ([only], Some(TargetAnswer::RefusesWrites)) => self.moved(only),
            ([only], Some(TargetAnswer::Unreachable))
                if !at_start.contains(only) || now_us - since_us >= SPLIT_MOVE_AFTER_US =>
            {
                self.moved(only)
            }
            _ => Decision::Stay,
        }
    }

    fn moved(&mut self, to: &Address) -> Decision {
        self.outage = None;
        Decision::Move(to.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> Address {
        Address {
            host: "127.0.0.1".into(),
            port,
        }
    }

    const S: i64 = 1_000_000;

    #[test]
    fn a_planned_switchover_moves_at_the_first_look() {
        let mut s = PrimarySearch::default();
        let d = s.decide(0, &[a(2)], Some(TargetAnswer::RefusesWrites));
        assert_eq!(d, Decision::Move(a(2)));
    }

    #[test]
    fn a_crash_then_a_promotion_moves_once_the_new_primary_takes_writes() {
        let mut s = PrimarySearch::default();
        assert_eq!(s.decide(0, &[], None), Decision::Stay);
        assert_eq!(s.decide(S, &[], None), Decision::Stay);
        let d = s.decide(3 * S, &[a(2)], Some(TargetAnswer::Unreachable));
        assert_eq!(d, Decision::Move(a(2)));
    }

    /// The lab's finding: during a split the real primary froze 1.5 s and beats moved to
    /// the second primary, firing a false failover.
    #[test]
    fn a_primary_that_stops_answering_during_a_split_keeps_its_beats() {
        let mut s = PrimarySearch::default();
        for t in [0, S / 2, S, 3 * S / 2] {
            let d = s.decide(t, &[a(3)], Some(TargetAnswer::Unreachable));
            assert_eq!(d, Decision::Stay, "at {t} µs");
        }
        // Back: a new outage later starts its own count.
        s.succeeded();
        let d = s.decide(100 * S, &[a(3)], Some(TargetAnswer::Unreachable));
        assert_eq!(d, Decision::Stay);
    }

    #[test]
    fn a_primary_gone_for_good_hands_beats_to_the_only_writer_after_a_while() {
        let mut s = PrimarySearch::default();
        assert_eq!(
            s.decide(0, &[a(3)], Some(TargetAnswer::Unreachable)),
            Decision::Stay
        );
        let d = s.decide(
            SPLIT_MOVE_AFTER_US,
            &[a(3)],
            Some(TargetAnswer::Unreachable),
        );
        assert_eq!(d, Decision::Move(a(3)));
    }

    #[test]
    fn a_target_that_still_takes_writes_keeps_its_beats() {
        let mut s = PrimarySearch::default();
        let d = s.decide(0, &[a(1)], Some(TargetAnswer::TakesWrites));
        assert_eq!(d, Decision::Stay);
        let d = s.decide(
            SPLIT_MOVE_AFTER_US * 2,
            &[a(1)],
            Some(TargetAnswer::TakesWrites),
        );
        assert_eq!(
            d,
            Decision::Stay,
            "an old primary back writable is no reason"
        );
    }

    #[test]
    fn two_other_writers_are_a_split_logged_when_they_change() {
        let mut s = PrimarySearch::default();
        let d = s.decide(0, &[a(2), a(3)], None);
        assert_eq!(
            d,
            Decision::Split {
                writers: vec![a(2), a(3)],
                changed: true
            }
        );
        let d = s.decide(S, &[a(2), a(3)], None);
        assert!(matches!(d, Decision::Split { changed: false, .. }));
    }
}
