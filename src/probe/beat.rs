//! The beat writer: one task per cluster, writing the heartbeat row on the primary on
//! absolute deadlines and publishing each acknowledged beat to the cluster's readers.
//!
//! Beat numbers need no state from the server: beat `n` of a session is
//! `session_start_us + n`, where `n` counts intervals since the session started. They
//! increase across sessions (a session starts more microseconds after the previous one
//! than that one had beats), skipped deadlines leave gaps, and a failed write still
//! consumes its number, because the commit may have happened even if the
//! acknowledgement was lost.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Statement};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::conn::{self, Backoff, DbError, timed};
use crate::clock::Clock;
use crate::config::{Address, ConnectionConfig, Secret};
use crate::samples::{Beat, Outcome, Sample};

/// The latest acknowledged beat of a cluster, as readers see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BeatNotice {
    pub seq: u64,
    pub t_ack_us: i64,
}

/// Everything a beat writer needs.
#[derive(Debug, Clone)]
pub struct BeatWriter {
    pub cluster_id: u32,
    pub cluster: String,
    pub primary: Address,
    pub settings: ConnectionConfig,
    pub password: Secret,
    pub interval: Duration,
    pub clock: Clock,
}

/// Longest wait between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Writes beats until `shutdown` turns true. Samples go to `out`; acknowledged beats are
/// published on `notices`.
pub async fn run(
    w: BeatWriter,
    out: mpsc::Sender<Sample>,
    notices: watch::Sender<BeatNotice>,
    mut shutdown: watch::Receiver<bool>,
) {
    let start = Instant::now();
    let base_seq = w.clock.at_us(start.into_std()) as u64;
    let interval_us = w.interval.as_micros().max(1) as u64;
    let mut ticker = tokio::time::interval_at(start, w.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut conn: Option<(Conn, Statement)> = None;
    let mut backoff = Backoff::new(w.interval.max(Duration::from_millis(50)), MAX_BACKOFF);
    let mut retry_at = start;
    let sql = format!(
        "UPDATE `{}`.heartbeat SET seq = ?, t_send_us = ?, server_id = @@server_id WHERE cluster = ?",
        w.settings.database
    );

    loop {
        let deadline = tokio::select! {
            t = ticker.tick() => t,
            _ = shutdown.changed() => break,
        };
        if *shutdown.borrow() {
            break;
        }
        if deadline < retry_at {
            continue;
        }
        let n = (deadline - start).as_micros() as u64 / interval_us;
        let seq = base_seq + n;
        let t_send_us = w.clock.now_us();
        let result = write_beat(&w, &mut conn, &sql, seq, t_send_us).await;
        let t_done_us = w.clock.now_us();
        let (outcome, reason) = match result {
            Ok(()) => {
                backoff.reset();
                notices.send_replace(BeatNotice {
                    seq,
                    t_ack_us: t_done_us,
                });
                (Outcome::Ok, None)
            }
            Err(e) => {
                // Drop the connection on any failure: a timed-out statement may still be
                // running on it, and the next beat must not queue behind it.
                conn = None;
                retry_at = Instant::now() + backoff.next_delay();
                tracing::debug!(cluster = %w.cluster, error = %e, "beat failed");
                let outcome = match &e {
                    BeatError::Db(e) => e.outcome(),
                    BeatError::NoRow => Outcome::MissingRow,
                };
                (outcome, Some(e.to_string()))
            }
        };
        let beat = Beat {
            seq,
            t_send_us,
            t_done_us,
            outcome,
            reason,
        };
        let sample = Sample::Beat {
            cluster: w.cluster_id,
            beat,
        };
        if out.send(sample).await.is_err() {
            break;
        }
    }
    if let Some((c, _)) = conn {
        let _ = tokio::time::timeout(Duration::from_millis(200), c.disconnect()).await;
    }
}

#[derive(Debug)]
enum BeatError {
    Db(DbError),
    NoRow,
}

impl std::fmt::Display for BeatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BeatError::Db(e) => e.fmt(f),
            BeatError::NoRow => f.write_str("the heartbeat row is missing; run lagtrace init"),
        }
    }
}

/// Writes one beat, connecting (and preparing the update once per connection) when
/// needed.
async fn write_beat(
    w: &BeatWriter,
    conn: &mut Option<(Conn, Statement)>,
    sql: &str,
    seq: u64,
    t_send_us: i64,
) -> Result<(), BeatError> {
    if conn.is_none() {
        let mut c = conn::connect(&w.primary, &w.settings, &w.password)
            .await
            .map_err(BeatError::Db)?;
        let stmt = timed(
            "heartbeat write prepare",
            w.settings.query_timeout,
            c.prep(sql),
        )
        .await
        .map_err(BeatError::Db)?;
        *conn = Some((c, stmt));
    }
    let (c, stmt) = conn.as_mut().expect("connected above");
    timed(
        "heartbeat write",
        w.settings.query_timeout,
        c.exec_drop(&*stmt, (seq, t_send_us, w.cluster.as_str())),
    )
    .await
    .map_err(BeatError::Db)?;
    if c.affected_rows() == 0 {
        return Err(BeatError::NoRow);
    }
    Ok(())
}
