//! The recorder's own pauses: spans in which the whole process did not run (a virtual
//! machine's stolen time, SIGSTOP, a cgroup's CPU quota, swapping). The binary log
//! probe takes a quiet stretch of its stream as proof that the server had sent
//! everything; a stretch the recorder slept through proves nothing, because the server
//! may have sent a message at its start that waited, unread, until the recorder ran
//! again. So a stream read through the client library asks here before it trusts one
//! (a stream on its own connection has the kernel's receive times instead, and never
//! starts this watcher: `probe::stamped`).
//!
//! One thread per process (started by the first [`watch`]) sleeps [`PERIOD`] at a
//! time and notes every wake-up more than [`LATE`] after it was due: the span from
//! when it went to sleep to when it woke is a pause. This is the method of jHiccup
//! (Azul's platform hiccup meter). Pauses shorter than `PERIOD + LATE` go unseen.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::clock::Clock;

/// How long the watcher sleeps at a time. Each wake-up costs: a loop like it alone
/// takes 1.9 % of a core at 2 ms on this project's 2-core VM (3.6 % at 1 ms), and adds
/// 1.1-1.7 % to the recorder. Pauses up to `PERIOD + LATE` go unseen.
pub const PERIOD: Duration = Duration::from_millis(2);
/// A wake-up this much past due is a pause.
pub const LATE: Duration = Duration::from_millis(1);
/// A pause counts until as long after it as it lasted (the process catching up), and
/// at least this long.
pub const AFTERMATH_MIN: Duration = Duration::from_millis(5);
/// Pauses whose aftermath ended longer ago than this are forgotten (the binary log
/// probe only asks about the gap before the message it just read).
const KEPT: Duration = Duration::from_secs(60);
/// At most this many pauses are kept (a machine that pauses more often than every
/// 15 ms would otherwise grow the list).
const KEPT_MAX: usize = 4096;

/// The pauses seen so far, and the watcher's last wake-up.
pub struct Pauses {
    state: Mutex<State>,
}

struct State {
    /// When the watcher last woke (the process ran then).
    last_wake: Instant,
    /// `(went to sleep, aftermath over)` of each pause, oldest first; pauses whose
    /// spans overlap are merged, so both ends only grow.
    log: VecDeque<(Instant, Instant)>,
}

/// The process's pause watcher, started on the first call.
pub fn watch() -> &'static Pauses {
    static PAUSES: OnceLock<Pauses> = OnceLock::new();
    PAUSES.get_or_init(|| {
        // Without the thread every gap reads as a pause (`paused_in` sees a watcher
        // that never woke): looser bounds, never false ones.
        let _ = std::thread::Builder::new()
            .name("lagtrace-pauses".into())
            .spawn(|| {
                let pauses = watch();
                loop {
                    let slept = Instant::now();
                    std::thread::sleep(PERIOD);
                    pauses.woke(slept, Instant::now());
                }
            });
        Pauses {
            state: Mutex::new(State {
                last_wake: Instant::now(),
                log: VecDeque::new(),
            }),
        }
    })
}

impl Pauses {
    /// Notes the watcher's wake-up at `woke` from a sleep begun at `slept`.
    fn woke(&self, slept: Instant, woke: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.last_wake = woke;
        let paused = woke.duration_since(slept);
        if paused > PERIOD + LATE {
            // The process catches up on what queued meanwhile, and its wake-ups stay
            // late for a while.
            let over = woke + paused.max(AFTERMATH_MIN);
            match s.log.back_mut() {
                Some(last) if last.1 >= slept => last.1 = last.1.max(over),
                _ => {
                    if s.log.len() == KEPT_MAX {
                        s.log.pop_front();
                    }
                    s.log.push_back((slept, over));
                }
            }
        }
        while s
            .log
            .front()
            .is_some_and(|&(_, over)| woke.saturating_duration_since(over) > KEPT)
        {
            s.log.pop_front();
        }
    }

    /// If the process may have been paused, or catching up after a pause, at some
    /// time in `(from_us, to_us)` (UTC µs of `clock`): the last time before that pause
    /// it is known to have run, no earlier than `from_us`; None when it ran
    /// throughout. A pause counts until its aftermath is over (as long again as it
    /// lasted, at least [`AFTERMATH_MIN`]); one the watcher has not noted yet (it has
    /// not run since) counts from its last wake-up.
    pub fn paused_in(&self, clock: &Clock, from_us: i64, to_us: i64) -> Option<i64> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut ran_until: Option<i64> = None;
        for &(slept, over) in s.log.iter().rev() {
            if clock.at_us(over) <= from_us {
                break;
            }
            let slept_us = clock.at_us(slept);
            if slept_us < to_us {
                ran_until = Some(slept_us);
            }
        }
        let last_wake_us = clock.at_us(s.last_wake);
        let unnoted_us = crate::clock::duration_us(PERIOD + LATE);
        if ran_until.is_none() && to_us - last_wake_us > unnoted_us {
            ran_until = Some(last_wake_us);
        }
        ran_until.map(|us| us.max(from_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pauses(last_wake: Instant) -> Pauses {
        Pauses {
            state: Mutex::new(State {
                last_wake,
                log: VecDeque::new(),
            }),
        }
    }

    #[test]
    fn a_gap_is_paused_from_the_first_pause_that_overlaps_it_or_its_aftermath() {
        let clock = Clock::start();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let us = |ms: u64| clock.at_us(at(ms));
        let p = pauses(t0);
        p.woke(at(0), at(1));
        // 20 ms: its aftermath lasts to 50 ms. 4 ms: to 109 ms (the least aftermath).
        p.woke(at(10), at(30));
        p.woke(at(100), at(104));
        p.woke(at(199), at(200));
        // Ran throughout: between the pauses, and after both.
        assert_eq!(p.paused_in(&clock, us(60), us(90)), None);
        assert_eq!(p.paused_in(&clock, us(150), us(200)), None);
        // A gap that saw both: from the first one's start.
        assert_eq!(p.paused_in(&clock, us(5), us(160)), Some(us(10)));
        // Gaps in an aftermath, or that began inside a pause: from their own start.
        assert_eq!(p.paused_in(&clock, us(40), us(45)), Some(us(40)));
        assert_eq!(p.paused_in(&clock, us(104), us(120)), Some(us(104)));
        assert_eq!(p.paused_in(&clock, us(20), us(60)), Some(us(20)));
        // A gap that ended inside a pause.
        assert_eq!(p.paused_in(&clock, us(60), us(101)), Some(us(100)));
        // A pause in the aftermath of another is merged with it.
        p.woke(at(300), at(320));
        p.woke(at(330), at(335));
        assert_eq!(p.state.lock().unwrap().log.len(), 3);
        assert_eq!(p.paused_in(&clock, us(338), us(339)), Some(us(338)));
        p.woke(at(340), at(341));
        assert_eq!(p.paused_in(&clock, us(341), us(342)), None);
    }

    #[test]
    fn a_pause_the_watcher_has_not_noted_yet_counts_from_its_last_wake_up() {
        let clock = Clock::start();
        let t0 = Instant::now();
        let at = |ms: u64| clock.at_us(t0 + Duration::from_millis(ms));
        let p = pauses(t0 + Duration::from_millis(100));
        assert_eq!(p.paused_in(&clock, at(90), at(101)), None);
        assert_eq!(p.paused_in(&clock, at(90), at(140)), Some(at(100)));
        assert_eq!(p.paused_in(&clock, at(120), at(140)), Some(at(120)));
    }

    #[test]
    fn the_watcher_notes_a_real_pause_of_this_process() {
        let clock = Clock::start();
        let p = watch();
        std::thread::sleep(Duration::from_millis(20));
        let from_us = clock.now_us();
        // Stop this whole process, watcher included, for 50 ms.
        let pid = std::process::id();
        let status = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("kill -STOP {pid}; sleep 0.05; kill -CONT {pid}"),
            ])
            .status()
            .expect("run sh");
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(20));
        let to_us = clock.now_us();
        let ran_until = p.paused_in(&clock, from_us, to_us);
        assert!(ran_until.is_some(), "no pause seen in a 50 ms SIGSTOP");
    }
}
