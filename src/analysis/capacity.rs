//! Saturation and capacity (DESIGN.md section 2), from two independent estimators:
//!
//! - replay rate: while a replica has a backlog it applies `r = 1 + vector` seconds of
//!   primary writes per second; the highest rate sustained through a catch-up is the
//!   capacity `C`;
//! - busy fraction: the share of status samples in which the SQL thread was applying
//!   rather than waiting for the relay log, outside episodes. At a steady load the
//!   applier is busy about `1/C` of the time, so `1/busy` estimates `C` too.

use super::episodes::Episode;
use crate::samples::StatusSample;

/// Fewest status samples a busy fraction needs.
pub const MIN_BUSY_SAMPLES: usize = 30;

/// Shortest catch-up, µs, that counts as sustained.
pub const MIN_CATCH_UP_US: i64 = 1_000_000;

/// Status samples this long after an episode ends still belong to it (the applier
/// drains what is left), µs.
pub const SETTLE_US: i64 = 2_000_000;

/// Capacity from catch-ups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayRate {
    /// Seconds of primary writes applied per second at the best sustained catch-up.
    pub capacity: f64,
    /// Catch-ups that qualified (confident fit, at least [`MIN_CATCH_UP_US`]).
    pub catch_ups: usize,
    /// Lag points behind the best one.
    pub points: usize,
}

/// Capacity from the SQL thread's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BusyFraction {
    /// Share of samples applying, 0..=1.
    pub fraction: f64,
    pub samples: usize,
}

impl BusyFraction {
    /// `1 / fraction`; `None` when the applier was never seen busy.
    pub fn capacity(&self) -> Option<f64> {
        (self.fraction > 0.0).then(|| 1.0 / self.fraction)
    }
}

/// The best sustained replay rate over the episodes' catch-ups; `None` without one.
pub fn replay_rate(episodes: &[Episode]) -> Option<ReplayRate> {
    let fits: Vec<_> = episodes
        .iter()
        .filter_map(|e| e.catch_up)
        .filter(|f| f.confident() && f.span_us >= MIN_CATCH_UP_US && f.vector() > 0.0)
        .collect();
    let best = fits
        .iter()
        .max_by(|a, b| a.vector().total_cmp(&b.vector()))?;
    Some(ReplayRate {
        capacity: 1.0 + best.vector(),
        catch_ups: fits.len(),
        points: best.points,
    })
}

/// The busy fraction over status samples outside episodes (and [`SETTLE_US`] after
/// them); `None` with fewer than [`MIN_BUSY_SAMPLES`] samples that know the state.
pub fn busy_fraction(status: &[StatusSample], episodes: &[Episode]) -> Option<BusyFraction> {
    let mut ep = episodes.iter().peekable();
    let (mut busy, mut samples) = (0usize, 0usize);
    for s in status {
        while ep
            .peek()
            .is_some_and(|e| e.end_us.is_some_and(|end| end + SETTLE_US < s.t_us))
        {
            ep.next();
        }
        if ep.peek().is_some_and(|e| e.start_us <= s.t_us) {
            continue;
        }
        let Some(applying) = s.main_channel().and_then(|c| c.sql_applying) else {
            continue;
        };
        samples += 1;
        busy += usize::from(applying);
    }
    (samples >= MIN_BUSY_SAMPLES).then(|| BusyFraction {
        fraction: busy as f64 / samples as f64,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::episodes::episodes;
    use crate::analysis::series::LagPoint;
    use crate::samples::{ChannelStatus, Outcome};

    const S: i64 = 1_000_000;

    fn status(t_us: i64, applying: Option<bool>) -> StatusSample {
        StatusSample {
            t_us,
            duration_us: 1,
            outcome: Outcome::Ok,
            reason: None,
            channels: vec![ChannelStatus {
                sql_running: applying.is_some(),
                sql_applying: applying,
                ..ChannelStatus::running()
            }],
        }
    }

    /// A replica busy 25 % of the time at steady load, stalled 10 s at t = 60 s, then
    /// catching up at capacity 4 (vector +3): both estimators say 4.
    #[test]
    fn catch_up_and_busy_fraction_agree_on_a_saturated_replica() {
        let step = 10_000;
        let points: Vec<LagPoint> = (0..100 * S / step)
            .map(|i| {
                let t = (i * step) as f64 / 1e6;
                let lag = if (60.0..70.0).contains(&t) {
                    t - 60.0
                } else if (70.0..70.0 + 10.0 / 3.0).contains(&t) {
                    10.0 - 3.0 * (t - 70.0)
                } else {
                    0.001
                };
                let lag_us = (lag * 1e6) as i64;
                LagPoint::bounded(i * step, lag_us, lag_us + 1000)
            })
            .collect();
        // Status every 100 ms: applying one sample in four, stopped during the stall,
        // applying throughout the catch-up.
        let status: Vec<StatusSample> = (0..1000)
            .map(|i| {
                let t_us = i * S / 10;
                let t = t_us as f64 / 1e6;
                let applying = if (60.0..70.0).contains(&t) {
                    None
                } else if (70.0..74.0).contains(&t) {
                    Some(true)
                } else {
                    Some(i % 4 == 0)
                };
                status(t_us, applying)
            })
            .collect();
        let eps = episodes(&points, &status, S, S / 2);
        assert_eq!(eps.len(), 1);
        let replay = replay_rate(&eps).unwrap();
        assert!((replay.capacity - 4.0).abs() < 0.01, "{replay:?}");
        assert_eq!(replay.catch_ups, 1);
        let busy = busy_fraction(&status, &eps).unwrap();
        assert!((busy.fraction - 0.25).abs() < 0.01, "{busy:?}");
        assert!((busy.capacity().unwrap() - 4.0).abs() < 0.2);
        // Derived figures: saturation 1/C, a day replays in 6 h, headroom 3.
        assert!((1.0 / replay.capacity - 0.25).abs() < 0.001);
        assert!((24.0 / replay.capacity - 6.0).abs() < 0.02);
    }

    #[test]
    fn not_enough_data_is_none() {
        let few: Vec<StatusSample> = (0..10).map(|i| status(i * S, Some(true))).collect();
        assert_eq!(busy_fraction(&few, &[]), None);
        let stopped: Vec<StatusSample> = (0..100).map(|i| status(i * S, None)).collect();
        assert_eq!(busy_fraction(&stopped, &[]), None);
        assert_eq!(replay_rate(&[]), None);
        let idle: Vec<StatusSample> = (0..100).map(|i| status(i * S, Some(false))).collect();
        let b = busy_fraction(&idle, &[]).unwrap();
        assert_eq!((b.fraction, b.capacity()), (0.0, None));
    }
}
