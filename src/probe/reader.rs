//! The replica reader: one task per replica, reading the cluster's heartbeat row right
//! after each acknowledged beat (or every `read_every` beats), in autocommit READ
//! COMMITTED so it never reads a stale snapshot. When no beat arrives (the primary is
//! down) it still reads once per period, so the lag bounds keep widening honestly.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::beat::{BeatNotice, MAX_BACKOFF};
use super::conn::{Backoff, DbError, FailureRun};
use super::session::Session;
use crate::clock::Clock;
use crate::config::{Address, ConnectionConfig, Secret};
use crate::samples::{Observation, Outcome, Sample};

/// Immediate re-reads after a read that raced the newest beat.
pub const MAX_FOLLOW_UPS: u32 = 3;

/// Everything a replica reader needs.
#[derive(Debug, Clone)]
pub struct Reader {
    pub replica_id: u32,
    /// The cluster's name, for logs and reasons.
    pub cluster: String,
    /// What the cluster's servers are.
    pub kind: crate::config::Kind,
    /// The heartbeat row to read: the cluster's name, or its split part's row
    /// ([`super::schema::split_row`]).
    pub row: String,
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
    out: mpsc::Sender<Sample>,
    mut notices: watch::Receiver<BeatNotice>,
    mut shutdown: watch::Receiver<bool>,
) {
    let period = r.interval * r.read_every;
    let interval_us = crate::clock::duration_us(r.interval);
    // Without beats, read once per period (plus a margin so a beat normally wins).
    let fallback = period + period / 2;
    let mut conn: Option<Session> = None;
    let mut backoff = Backoff::new(r.interval.max(Duration::from_millis(50)), MAX_BACKOFF);
    let mut retry_at = Instant::now();
    let mut last_read_seq = 0u64;
    let mut failures = FailureRun::new("read", &r.cluster, &r.replica);

    let fallback_sleep = tokio::time::sleep(fallback);
    tokio::pin!(fallback_sleep);
    // A read that shows the beat just before the newest acknowledged one usually raced
    // the replica applying it: a few immediate follow-up reads then show it, which turns
    // bounds about one interval wide into bounds a few round trips wide.
    let mut follow_up = false;
    let mut follow_ups_left = 0;
    loop {
        if !follow_up {
            follow_ups_left = MAX_FOLLOW_UPS;
            fallback_sleep.as_mut().reset(Instant::now() + fallback);
            tokio::select! {
                changed = notices.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let seq = notices.borrow_and_update().seq;
                    if r.read_every > 1 && seq < last_read_seq + r.read_every as u64 {
                        continue;
                    }
                    last_read_seq = seq;
                }
                _ = &mut fallback_sleep => {}
                _ = shutdown.changed() => break,
            }
        }
        if *shutdown.borrow() {
            break;
        }
        if Instant::now() < retry_at {
            continue;
        }
        let r_start_us = r.clock.now_us();
        let result = read_seq(&r, &mut conn).await;
        let r_end_us = r.clock.now_us();
        // This read is a follow-up when the previous one asked for it; it is marked so,
        // and the analysis takes rounds from the marks.
        let this_is_follow_up = std::mem::take(&mut follow_up);
        let observation = match result {
            Ok(Some(seq)) => {
                backoff.reset();
                failures.succeeded();
                // A read slower than the interval is not followed up: the next beat's
                // read starts at once anyway, and each such read is its own round.
                let fast = r_end_us - r_start_us < interval_us;
                if follow_ups_left > 0 && fast && seq + 1 == notices.borrow().seq {
                    follow_up = true;
                    follow_ups_left -= 1;
                }
                Observation {
                    r_start_us,
                    r_end_us,
                    seq: Some(seq),
                    outcome: Outcome::Ok,
                    reason: None,
                    follow_up: this_is_follow_up,
                }
            }
            Ok(None) => Observation {
                r_start_us,
                r_end_us,
                seq: None,
                outcome: Outcome::MissingRow,
                reason: Some(format!(
                    "no heartbeat row {:?} (cluster {}); run lagtrace init",
                    r.row, r.cluster
                )),
                follow_up: this_is_follow_up,
            },
            Err(e) => {
                conn = None;
                retry_at = Instant::now() + backoff.next_delay();
                failures.failed(&e);
                Observation {
                    r_start_us,
                    r_end_us,
                    seq: None,
                    outcome: e.outcome(),
                    reason: Some(e.to_string()),
                    follow_up: this_is_follow_up,
                }
            }
        };
        let sample = Sample::Observation {
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

/// Reads the visible beat number, connecting (and preparing the read once per
/// connection, so each read is one execute of a parsed statement) when needed.
async fn read_seq(r: &Reader, conn: &mut Option<Session>) -> Result<Option<u64>, DbError> {
    if conn.is_none() {
        *conn = Some(Session::reader(r.kind, &r.address, &r.settings, &r.password).await?);
    }
    let c = conn.as_mut().expect("connected above");
    c.read(&r.row, r.settings.query_timeout).await
}
