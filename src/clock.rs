//! The recorder's single clock. Every time lagtrace stores comes from here: a monotonic
//! `Instant`, turned into UTC microseconds through one anchor taken when the session
//! starts. No stored time ever comes from a database server's clock, so skew between
//! hosts cannot enter a lag value; and a wall-clock step (NTP) during a session cannot
//! either, because only the anchor reads the wall clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A duration in whole microseconds, saturating at `i64::MAX`.
pub fn duration_us(d: Duration) -> i64 {
    d.as_micros().min(i64::MAX as u128) as i64
}

/// Microseconds as fractional milliseconds, as reports and exports show lags.
pub fn ms(us: i64) -> f64 {
    us as f64 / 1e3
}

/// Monotonic time mapped to UTC microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: Instant,
    anchor_utc_us: i64,
}

impl Clock {
    /// Takes the anchor: the wall clock and the monotonic clock read back to back.
    pub fn start() -> Clock {
        let anchor = Instant::now();
        let wall = SystemTime::now();
        let anchor_utc_us = match wall.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_micros() as i64,
            Err(e) => -(e.duration().as_micros() as i64),
        };
        Clock {
            anchor,
            anchor_utc_us,
        }
    }

    /// Now, in UTC microseconds.
    pub fn now_us(&self) -> i64 {
        self.at_us(Instant::now())
    }

    /// An instant of this process, in UTC microseconds.
    pub fn at_us(&self, t: Instant) -> i64 {
        if t >= self.anchor {
            self.anchor_utc_us + t.duration_since(self.anchor).as_micros() as i64
        } else {
            self.anchor_utc_us - self.anchor.duration_since(t).as_micros() as i64
        }
    }

    /// The anchor in UTC microseconds (when the session started).
    pub fn anchor_utc_us(&self) -> i64 {
        self.anchor_utc_us
    }
}

/// Formats UTC microseconds as RFC 3339 with microseconds (`2026-11-22T02:06:07.123456Z`).
pub fn format_utc_us(t_us: i64) -> String {
    let t = if t_us >= 0 {
        UNIX_EPOCH + std::time::Duration::from_micros(t_us as u64)
    } else {
        UNIX_EPOCH - std::time::Duration::from_micros(t_us.unsigned_abs())
    };
    humantime::format_rfc3339_micros(t).to_string()
}

/// A `--from` or `--to` that is not a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad time {text:?}: {why} (examples: -2h, 2026-11-22T02:00:00Z)")]
pub struct BadTime {
    text: String,
    why: String,
}

/// Parses a time for `--from` / `--to`: RFC 3339 (`2026-11-22T02:00:00Z`, or without
/// zone as UTC) or relative to `now_us` (`-2h`, `-30m`). Returns UTC microseconds.
pub fn parse_time(text: &str, now_us: i64) -> Result<i64, BadTime> {
    let text = text.trim();
    let bad = |why: &dyn std::fmt::Display| BadTime {
        text: text.to_string(),
        why: why.to_string(),
    };
    if let Some(rel) = text.strip_prefix('-') {
        let d = humantime::parse_duration(rel).map_err(|e| bad(&e))?;
        return Ok(now_us - d.as_micros() as i64);
    }
    let t = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).map_err(|e| bad(&e))?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clock_is_monotonic_and_anchored() {
        let c = Clock::start();
        let a = c.now_us();
        std::thread::sleep(Duration::from_millis(2));
        let b = c.now_us();
        assert!(b - a >= 2000, "{a} {b}");
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64;
        assert!((wall - b).abs() < 1_000_000);
        let earlier = c.at_us(Instant::now() - Duration::from_millis(5));
        assert!(earlier < c.now_us());
    }

    #[test]
    fn formats_and_parses_times() {
        assert_eq!(
            format_utc_us(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", 0).unwrap(),
            1_700_000_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20", 0).unwrap(),
            1_700_000_000_000_000
        );
        assert_eq!(parse_time("-2s", 5_000_000).unwrap(), 3_000_000);
        assert!(
            parse_time("yesterday", 0)
                .unwrap_err()
                .to_string()
                .contains("bad time")
        );
    }
}
