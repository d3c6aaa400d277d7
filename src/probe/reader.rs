//! The replica reader: one task per replica, reading the cluster's heartbeat row soon
//! after each acknowledged beat (or every `read_every` beats), in autocommit READ
//! COMMITTED so it never reads a stale snapshot. When no beat arrives (the primary is
//! down) it still reads once per period, so the lag bounds keep widening honestly.
//!
//! A healthy replica shows a beat a fraction of a millisecond after the primary
//! acknowledged it (it receives and applies it first): a read right at the
//! acknowledgement usually shows the previous beat and needs a follow-up. The
//! [`Pacer`] learns that delay from recent rounds and waits about that long before the
//! first read, so that most rounds take one read. The bounds do not change: a read
//! says what it saw, whenever it ran.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::beat::BeatNotice;
use super::conn::MAX_BACKOFF;
use super::conn::{Backoff, DbError, FailureRun};
use super::fine_sleep::FineTimer;
use super::session::Session;
use crate::clock::Clock;
use crate::config::{Address, ConnectionConfig, Secret};
use crate::samples::{Observation, Outcome, Probe, Probed};

/// Re-reads after a read that raced the newest beat.
pub const MAX_FOLLOW_UPS: u32 = 3;

/// Everything a replica reader needs.
#[derive(Debug, Clone)]
pub struct Reader {
    pub replica_id: u32,
    /// The cluster's name, for logs and reasons.
    pub cluster: String,
    /// What the cluster's servers are.
    pub kind: crate::config::Kind,
    /// The heartbeat row to read: the cluster's name, the recorder's own row
    /// ([`super::schema::recorder_row`]) or its split part's
    /// ([`super::schema::split_row`]).
    pub row: String,
    /// The row is one a beat writer creates (not `init`): until a replica has applied
    /// that INSERT, it has no row, which is lag, not a fault.
    pub row_made_by_writer: bool,
    pub replica: String,
    pub address: Address,
    pub settings: ConnectionConfig,
    pub password: Secret,
    /// Beat interval.
    pub interval: Duration,
    /// Read after every n-th beat.
    pub read_every: u32,
    pub clock: Clock,
}

/// Reads until `shutdown` turns true or the beat writer goes away.
pub async fn run(
    r: Reader,
    out: mpsc::Sender<Probed>,
    mut notices: watch::Receiver<BeatNotice>,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval_us = crate::clock::duration_us(r.interval);
    let mut conn: Option<Session> = None;
    let mut backoff = Backoff::new(r.interval.max(Duration::from_millis(50)), MAX_BACKOFF);
    let mut retry_at = Instant::now();
    let mut last_read_seq = 0u64;
    let mut failures = FailureRun::new("read", &r.cluster, &r.replica);
    let mut arrival = RowArrival::new(&r);

    // The newest acknowledged beat announced, and the deadlines missed since (each
    // `read_every` of them is a read, as a beat would be).
    let mut announced = notices.borrow().seq;
    let mut misses = 0;
    let mut pacer = Pacer::new(interval_us);
    let mut timer = FineTimer::new();
    // The beat this round reads for, and the start of its last read that missed it.
    let mut round = BeatNotice::default();
    let mut missed_at: Option<i64> = None;
    // The wait before this round's first read, µs.
    let mut waited_us = 0;
    // A read that shows the beat just before the newest acknowledged one usually raced
    // the replica applying it: a few follow-up reads (half the pacer's wait apart) then
    // show it, which turns bounds about one interval wide into bounds a few round trips
    // wide.
    let mut follow_up = false;
    let mut follow_ups_left = 0;
    loop {
        if !follow_up {
            follow_ups_left = MAX_FOLLOW_UPS;
            tokio::select! {
                changed = notices.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let notice = *notices.borrow_and_update();
                    if notice.seq == announced {
                        // No beat by this deadline: read without one, once per period.
                        misses += 1;
                        if misses < r.read_every {
                            continue;
                        }
                        misses = 0;
                    } else {
                        announced = notice.seq;
                        misses = 0;
                        if r.read_every > 1 && notice.seq < last_read_seq + r.read_every as u64 {
                            continue;
                        }
                        last_read_seq = notice.seq;
                        (round, missed_at) = (notice, None);
                        waited_us = pacer.first_delay_us();
                        if pause(&mut timer, waited_us, &mut shutdown).await {
                            break;
                        }
                    }
                }
                _ = shutdown.changed() => break,
            }
        } else if pause(&mut timer, pacer.follow_up_delay_us(), &mut shutdown).await {
            break;
        }
        if *shutdown.borrow() {
            break;
        }
        if Instant::now() < retry_at {
            continue;
        }
        let (r_start_us, r_end_us, result) = timed_read(&r, &mut conn).await;
        let result = result.map(|seq| arrival.read(seq));
        // This read is a follow-up when the previous one asked for it; it is marked so,
        // and the analysis takes rounds from the marks.
        let this_is_follow_up = std::mem::take(&mut follow_up);
        let observation = match result {
            Ok(Some(seq)) => {
                backoff.reset();
                failures.succeeded();
                if round.seq > 0 && seq >= round.seq {
                    pacer.saw(round.t_ack_us, missed_at.take(), waited_us, r_end_us);
                    round.seq = 0;
                } else if seq + 1 == round.seq {
                    missed_at = Some(r_start_us);
                }
                // A read slower than the interval is not followed up: the next beat's
                // read starts at once anyway, and each such read is its own round.
                let fast = r_end_us - r_start_us < interval_us;
                if follow_ups_left > 0 && fast && seq + 1 == notices.borrow().seq {
                    follow_up = true;
                    follow_ups_left -= 1;
                }
                Ok(seq)
            }
            Ok(None) => Err((Outcome::MissingRow, missing_row(&r))),
            Err(e) => {
                conn = None;
                retry_at = Instant::now() + backoff.next_delay();
                failures.failed(&e);
                Err((e.outcome(), e.to_string()))
            }
        };
        let observation = polled((r_start_us, r_end_us), this_is_follow_up, observation);
        let sample = Probed::Observation {
            replica: r.replica_id,
            observation,
        };
        if out.send(sample).await.is_err() {
            break;
        }
    }
    if let Some(c) = conn {
        c.close().await;
    }
}

/// A poll read in `[r_start_us, r_end_us]`: the seq it showed, or how it failed and
/// why.
fn polled(
    (r_start_us, r_end_us): (i64, i64),
    follow_up: bool,
    result: Result<u64, (Outcome, String)>,
) -> Observation {
    let (seq, outcome, reason) = match result {
        Ok(seq) => (Some(seq), Outcome::Ok, None),
        Err((outcome, why)) => (None, outcome, Some(why)),
    };
    Observation {
        r_start_us,
        r_end_us,
        seq,
        outcome,
        reason,
        follow_up,
        probe: Probe::Poll,
    }
}

/// Sleeps `us` microseconds (not at all for 0) on `timer`; true when shutdown came
/// first. tokio's own timer would round the wait up to its next millisecond tick: the
/// median lag of the lab's steady recording was 0.8-0.9 ms with it, 0.4-0.6 ms with a
/// [`FineTimer`] (0.42-0.54 ms before the reads were paced).
async fn pause(timer: &mut FineTimer, us: i64, shutdown: &mut watch::Receiver<bool>) -> bool {
    if us <= 0 {
        return *shutdown.borrow();
    }
    tokio::select! {
        _ = timer.sleep(Duration::from_micros(us as u64)) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

/// How many recent rounds the [`Pacer`] learns from.
const PACER_ROUNDS: usize = 15;

/// When to read after an acknowledgement: the median of the replica's recent
/// visibility delays (acknowledgement to the beat showing on the replica, µs), capped
/// at a quarter of the beat interval, before the first read; half that between
/// follow-ups. A round whose read missed the beat and whose next read showed it puts
/// the delay between the miss's start and the hit's end (it counts the middle); a round
/// whose first read showed it only says the delay was shorter, so it counts 7/8 of the
/// wait it asked for: the pacer keeps probing earlier and follows a replica that became
/// faster. (Counting the read's actual start instead would settle at 7 times the
/// wake-up latency, whatever the replica does.)
#[derive(Debug, Clone)]
pub struct Pacer {
    recent: [i64; PACER_ROUNDS],
    len: usize,
    next: usize,
    cap_us: i64,
}

impl Pacer {
    pub fn new(interval_us: i64) -> Pacer {
        Pacer {
            recent: [0; PACER_ROUNDS],
            len: 0,
            next: 0,
            cap_us: interval_us / 4,
        }
    }

    /// The wait before a beat's first read, µs (0 until a round has been seen).
    pub fn first_delay_us(&self) -> i64 {
        if self.len == 0 {
            return 0;
        }
        let mut sorted = self.recent;
        let sorted = &mut sorted[..self.len];
        sorted.sort_unstable();
        sorted[self.len / 2].clamp(0, self.cap_us)
    }

    /// The wait before a follow-up read, µs.
    pub fn follow_up_delay_us(&self) -> i64 {
        self.first_delay_us() / 2
    }

    /// A round for the beat acknowledged at `t_ack_us` showed it in a read that ended
    /// at `hit_end_us`; `missed_at_us` is the start of the round's last read that did
    /// not show it, `None` when the first read (after a wait of `waited_us`) showed it.
    pub fn saw(
        &mut self,
        t_ack_us: i64,
        missed_at_us: Option<i64>,
        waited_us: i64,
        hit_end_us: i64,
    ) {
        let delay_us = match missed_at_us {
            Some(miss) => (miss + hit_end_us) / 2 - t_ack_us,
            None => waited_us * 7 / 8,
        };
        self.recent[self.next] = delay_us.max(0);
        self.next = (self.next + 1) % PACER_ROUNDS;
        self.len = (self.len + 1).min(PACER_ROUNDS);
    }
}

/// How long a row a beat writer creates may take to reach a replica before its absence
/// is a fault (a replication filter, a replica of something else).
pub const ROW_ARRIVAL_GRACE: Duration = Duration::from_secs(30);

/// Whether a replica without the reader's row is only behind: the row is one a writer
/// creates, this reader has not seen it yet, and it started less than
/// [`ROW_ARRIVAL_GRACE`] ago. Such a read shows seq 0 (no beat), which the analysis
/// takes for lacking every beat acknowledged before it.
#[derive(Debug, Clone, Copy)]
pub struct RowArrival {
    waiting_since: Option<Instant>,
}

impl RowArrival {
    pub fn new(r: &Reader) -> RowArrival {
        RowArrival {
            waiting_since: r.row_made_by_writer.then(Instant::now),
        }
    }

    /// What a read of the row showed (`None`: no row), as the recorder takes it: a
    /// row found makes its absence a fault from then on; no row while it may still
    /// arrive is seq 0.
    pub fn read(&mut self, seq: Option<u64>) -> Option<u64> {
        match seq {
            Some(seq) => {
                self.waiting_since = None;
                Some(seq)
            }
            None => self
                .waiting_since
                .is_some_and(|t| t.elapsed() < ROW_ARRIVAL_GRACE)
                .then_some(0),
        }
    }
}

/// Why a read found no heartbeat row.
pub fn missing_row(r: &Reader) -> String {
    format!(
        "no heartbeat row {:?} (cluster {}); run lagtrace init",
        r.row, r.cluster
    )
}

/// Reads the visible beat number, connecting (and preparing the read once per
/// connection, so each read is one execute of a parsed statement) when needed; returns
/// the read's start and end (µs) with what it saw.
///
/// The read is timed once the connection is ready: a (re)connection's handshake,
/// authentication and session setup (six round trips to MariaDB, and PostgreSQL's SCRAM
/// key derivation) are not the replica's lag, and timing them would widen the bounds of
/// the first round after every reconnection, during incidents most of all. A connection
/// that fails spans the attempt.
async fn timed_read(
    r: &Reader,
    conn: &mut Option<Session>,
) -> (i64, i64, Result<Option<u64>, DbError>) {
    if conn.is_none() {
        let attempt_us = r.clock.now_us();
        // Boxed so that the connection's setup does not size the task (see conn::connect).
        let session = Session::own_reader(r.kind, &r.address, &r.settings, &r.password, r.clock);
        match Box::pin(session).await {
            Ok(c) => *conn = Some(c),
            Err(e) => return (attempt_us, r.clock.now_us(), Err(e)),
        }
    }
    let c = conn.as_mut().expect("connected above");
    let r_start_us = r.clock.now_us();
    let result = c.read(&r.row, r.settings.query_timeout).await;
    (r_start_us, r.clock.now_us(), result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_waits_the_median_visibility_delay_capped() {
        let mut p = Pacer::new(10_000);
        assert_eq!(p.first_delay_us(), 0);
        // Misses then hits: the delay lies between a miss's start and the hit's end.
        for k in 0..5 {
            p.saw(1_000, Some(1_100), 1_400, 1_500 + k);
        }
        assert_eq!(p.first_delay_us(), 301);
        assert_eq!(p.follow_up_delay_us(), 150);
        // A slow outlier does not move the median; a lagging replica is capped.
        p.saw(0, Some(50_000), 60_000, 60_100);
        assert_eq!(p.first_delay_us(), 301);
        let mut slow = Pacer::new(10_000);
        slow.saw(0, Some(50_000), 60_000, 60_100);
        assert_eq!(slow.first_delay_us(), 2_500);
    }

    #[test]
    fn first_read_hits_make_the_pacer_probe_earlier() {
        let mut p = Pacer::new(10_000);
        for _ in 0..PACER_ROUNDS {
            p.saw(0, Some(300), 500, 700);
        }
        assert_eq!(p.first_delay_us(), 500);
        // Every first read now shows the beat: the wait shrinks (it halves within 60
        // rounds, 0.6 s at 10 ms) until reads start to miss again.
        let mut wait = p.first_delay_us();
        for _ in 0..60 {
            p.saw(0, None, wait, wait + 200);
            let next = p.first_delay_us();
            assert!(next <= wait);
            wait = next;
        }
        assert!(wait <= 250, "{wait}");
    }
}
