//! Sub-millisecond waits for the replica readers. tokio's timer ticks in whole
//! milliseconds, but a healthy replica shows a beat about 0.3 ms after the primary
//! acknowledged it: a first read timed by a millisecond tick lands up to a millisecond
//! late, and every round's upper bound (and so its point estimate) grows by that much.
//! A [`FineTimer`] is a Linux timerfd in the reader's own runtime: the runtime's poll
//! wakes when it fires, with no thread in between (a timer thread cost as much CPU in
//! wake-ups as the reads the waits saved).

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};
use tokio::io::unix::AsyncFd;

/// Waits at least this long go to tokio's timer: its millisecond tick is then a small
/// share of the wait.
pub const TOKIO_FROM: Duration = Duration::from_millis(2);

/// One task's timer for short waits.
pub struct FineTimer {
    /// `None` when no timerfd could be made: waits then go to tokio's timer.
    fd: Option<AsyncFd<OwnedFd>>,
}

impl Default for FineTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl FineTimer {
    /// Must be called inside a tokio runtime with I/O enabled.
    pub fn new() -> FineTimer {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )
        .map_err(io::Error::from)
        .and_then(|fd| {
            // SAFETY: the AsyncFd owns the descriptor (an OwnedFd moved into it), so it
            // stays open for as long as it is registered and is closed only after.
            unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)
        });
        if let Err(e) = &fd {
            tracing::debug!(error = %e, "no timerfd: short waits round up to a millisecond");
        }
        FineTimer { fd: fd.ok() }
    }

    /// Sleeps for `d` (returns at once for zero).
    pub async fn sleep(&mut self, d: Duration) {
        if d.is_zero() {
            return;
        }
        if d < TOKIO_FROM
            && let Some(fd) = &self.fd
            && fine(fd, d).await.is_ok()
        {
            return;
        }
        tokio::time::sleep(d).await;
    }
}

/// Arms the timerfd for `d` and waits for it to fire.
async fn fine(fd: &AsyncFd<OwnedFd>, d: Duration) -> io::Result<()> {
    // An expiry left from a wait that was given up (its read cancelled) is drained
    // first, or this wait would end at once.
    let mut count = [0u8; 8];
    let _ = rustix::io::read(fd.get_ref(), &mut count);
    let value = Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    };
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    timerfd_settime(
        fd.get_ref(),
        TimerfdTimerFlags::empty(),
        &Itimerspec {
            it_interval: zero,
            it_value: value,
        },
    )?;
    loop {
        let mut ready = fd.readable().await?;
        match rustix::io::read(fd.get_ref(), &mut count) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn short_waits_never_end_early_and_a_cancelled_one_does_not_cut_the_next() {
        let mut t = FineTimer::new();
        assert!(t.fd.is_some(), "Linux has timerfd");
        let start = Instant::now();
        t.sleep(Duration::from_micros(300)).await;
        assert!(start.elapsed() >= Duration::from_micros(300));
        // A wait given up before it fires; its expiry must not end the next one.
        let _ = tokio::time::timeout(
            Duration::from_micros(10),
            t.sleep(Duration::from_micros(200)),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        let next = Instant::now();
        t.sleep(Duration::from_micros(700)).await;
        assert!(next.elapsed() >= Duration::from_micros(700));
        // Longer waits go to tokio's timer.
        let long = Instant::now();
        t.sleep(Duration::from_millis(3)).await;
        assert!(long.elapsed() >= Duration::from_millis(3));
    }
}
