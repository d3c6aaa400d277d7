//! PostgreSQL's own figures for a standby (`pg_stat_replication`'s lags, the replay
//! timestamp), summarized over a recording so that analyze shows them beside
//! lagtrace's lag. They are never used as lag: see [`crate::samples::PgFigures`].

use super::stats::{Distribution, Percentiles};
use crate::samples::StatusSample;

/// PostgreSQL's figures over a standby's status samples; percentiles are `None` when no
/// sample had the figure (PostgreSQL reports the lags as NULL on an idle primary).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PgSummary {
    /// Status samples that carried PostgreSQL's figures.
    pub samples: usize,
    /// `pg_stat_replication.write_lag`, `flush_lag` and `replay_lag`, µs.
    pub write_lag: Option<Percentiles>,
    pub flush_lag: Option<Percentiles>,
    pub replay_lag: Option<Percentiles>,
    /// The poll's time minus `pg_last_xact_replay_timestamp()`, µs: the "seconds
    /// behind" many PostgreSQL dashboards show. It mixes two clocks (the recorder's and
    /// the primary's) and grows while the primary commits nothing.
    pub replay_age: Option<Percentiles>,
}

/// [`PgSummary`] over status samples fed one by one, in constant memory.
#[derive(Debug, Default)]
pub struct PgFinder {
    samples: usize,
    write_lag: Distribution,
    flush_lag: Distribution,
    replay_lag: Distribution,
    replay_age: Distribution,
}

impl PgFinder {
    pub fn push(&mut self, s: &StatusSample) {
        let Some(p) = s.postgres else {
            return;
        };
        self.samples += 1;
        let figures = [
            (&mut self.write_lag, p.write_lag_us),
            (&mut self.flush_lag, p.flush_lag_us),
            (&mut self.replay_lag, p.replay_lag_us),
            (&mut self.replay_age, p.replay_commit_us.map(|r| s.t_us - r)),
        ];
        for (dist, value) in figures {
            if let Some(v) = value {
                dist.record(v);
            }
        }
    }

    /// `None` when no sample carried PostgreSQL's figures (a MySQL replica).
    pub fn finish(self) -> Option<PgSummary> {
        (self.samples > 0).then(|| PgSummary {
            samples: self.samples,
            write_lag: self.write_lag.percentiles(),
            flush_lag: self.flush_lag.percentiles(),
            replay_lag: self.replay_lag.percentiles(),
            replay_age: self.replay_age.percentiles(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::{Outcome, PgFigures};

    fn sample(t_us: i64, postgres: Option<PgFigures>) -> StatusSample {
        StatusSample {
            t_us,
            duration_us: 300,
            outcome: Outcome::Ok,
            reason: None,
            channels: Vec::new(),
            postgres,
        }
    }

    #[test]
    fn summarizes_what_postgres_said_and_nothing_for_mysql() {
        let mut mysql = PgFinder::default();
        mysql.push(&sample(0, None));
        assert_eq!(mysql.finish(), None);

        let mut f = PgFinder::default();
        for k in 0..100i64 {
            f.push(&sample(
                k * 1_000_000,
                Some(PgFigures {
                    replay_commit_us: Some(k * 1_000_000 - 2_000 - k),
                    write_lag_us: None,
                    flush_lag_us: (k % 2 == 0).then_some(500),
                    replay_lag_us: Some(1_000 + k),
                    min_apply_delay_ms: None,
                }),
            ));
        }
        let s = f.finish().unwrap();
        assert_eq!(s.samples, 100);
        assert_eq!(s.write_lag, None);
        assert_eq!(s.flush_lag.unwrap().count, 50);
        let replay = s.replay_lag.unwrap();
        assert_eq!((replay.count, replay.p50, replay.max), (100, 1_049, 1_099));
        let age = s.replay_age.unwrap();
        assert_eq!((age.p50, age.max), (2_049, 2_099));
    }
}
