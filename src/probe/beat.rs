//! The beat writer: one task per cluster, writing the heartbeat row on the primary on
//! absolute deadlines and publishing each acknowledged beat to the cluster's readers.
//!
//! Beat numbers: beat `n` of a session is `base + n`, where `n` counts intervals since
//! the session started and `base` is the session's start in UTC µs, or one more than
//! the seq already in the row when that is higher (a clock stepped back since the last
//! session). They increase across sessions, skipped deadlines leave gaps, and a failed
//! write still consumes its number, because the commit may have happened even if the
//! acknowledgement was lost.
//!
//! The UPDATE never moves `seq` backwards (`... AND seq < ?`): a timed-out beat whose
//! statement still commits after a later one changes nothing, and a beat that finds a
//! newer seq in the row (another writer's) is recorded as [`Outcome::Stale`], not
//! written.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::conn::{self, Backoff, DbError, FailureRun, MAX_BACKOFF};
use super::follow::{Decision, PrimarySearch, TargetAnswer};
use super::session::{RowWrite, Session};
use crate::clock::Clock;
use crate::config::{Address, ConnectionConfig, Kind, Secret};
use crate::samples::{Beat, Outcome, Probed};

/// The latest acknowledged beat of a cluster, as readers see it, and how many
/// deadlines have passed whose beat was not acknowledged by the next one. A reader
/// wakes when either changes: after each beat, or once per interval while beats fail
/// (the primary down, a write hanging), so that no reader needs a timer of its own to
/// go on probing without beats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BeatNotice {
    pub seq: u64,
    pub t_ack_us: i64,
    /// Deadlines missed so far (only grows).
    pub missed: u64,
}

/// Everything a beat writer needs.
#[derive(Debug, Clone)]
pub struct BeatWriter {
    pub cluster_id: u32,
    /// The cluster's name, for logs.
    pub cluster: String,
    /// What the cluster's servers are.
    pub kind: Kind,
    /// The heartbeat row beats go to: the cluster's name, or for the part of a split
    /// cluster that follows a second primary, [`super::schema::split_row`].
    pub row: String,
    /// Create the row when it is missing (a split part's row, which `init` never made).
    pub ensure_row: bool,
    /// The configured primary: where beats go first.
    pub primary: Address,
    /// The cluster's other servers (its replicas): where the writer looks for the
    /// primary when the one it writes to stops taking writes or answering.
    pub others: Vec<Address>,
    pub settings: ConnectionConfig,
    pub password: Secret,
    pub interval: Duration,
    pub clock: Clock,
}

/// Writes beats until `shutdown` turns true. Samples go to `out` (a [`Probed::Writer`]
/// when the writer follows a failover to another server); acknowledged beats are
/// published on `notices`.
pub async fn run(
    w: BeatWriter,
    out: mpsc::Sender<Probed>,
    notices: watch::Sender<BeatNotice>,
    mut shutdown: watch::Receiver<bool>,
) {
    let start = Instant::now();
    let mut base_seq = w.clock.at_us(start.into_std()) as u64;
    // Whether the first connection has checked the row's seq yet.
    let mut rebased = false;
    let interval_us = w.interval.as_micros().max(1) as u64;
    let mut ticker = tokio::time::interval_at(start, w.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let misses = tokio::spawn(mark_misses(
        (start, w.interval),
        w.clock,
        notices.clone(),
        shutdown.clone(),
    ));
    let mut conn: Option<Session> = None;
    let mut backoff = Backoff::new(w.interval.max(Duration::from_millis(50)), MAX_BACKOFF);
    let mut retry_at = start;
    let mut failures = FailureRun::new("beat", &w.cluster, "primary");
    // The server beats go to: the configured primary until a failover moves it.
    let mut target = w.primary.clone();
    // What the looks for the primary during this outage of the target found.
    let mut search = PrimarySearch::default();
    // Whether the last beat's failure may mean the primary moved.
    let mut look_for_primary = false;

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
        if !rebased && conn.is_none() {
            // The first connection of the session: start above whatever is in the row.
            if let Some(row_seq) = row_seq_on_new_conn(&w, &target, &mut conn).await {
                base_seq = base_above(&w, base_seq, base_seq + n, row_seq);
                rebased = true;
            }
        }
        let seq = base_seq + n;
        let (t_send_us, result) = write_beat(&w, &target, &mut conn, seq).await;
        let t_done_us = w.clock.now_us();
        let (outcome, reason) = match result {
            Ok(()) => {
                backoff.reset();
                failures.succeeded();
                search.succeeded();
                notices.send_modify(|n| {
                    n.seq = seq;
                    n.t_ack_us = t_done_us;
                });
                (Outcome::Ok, None)
            }
            Err(BeatError::Stale { row_seq }) => {
                // Nothing wrong with the connection: another writer is ahead.
                tracing::debug!(cluster = %w.cluster, row_seq, "stale beat");
                (
                    Outcome::Stale,
                    Some(format!(
                        "the row already holds seq {row_seq}, newer than {seq}: another writer"
                    )),
                )
            }
            Err(e) => {
                // Drop the connection on any failure: a timed-out statement may still be
                // running on it, and the next beat must not queue behind it.
                conn = None;
                retry_at = Instant::now() + backoff.next_delay();
                failures.failed(&e);
                look_for_primary = e.may_mean_failover();
                let outcome = match &e {
                    BeatError::Db(e) => e.outcome(),
                    BeatError::NoRow => Outcome::MissingRow,
                    BeatError::Stale { .. } => Outcome::Stale,
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
        let sample = Probed::Beat {
            cluster: w.cluster_id,
            beat,
        };
        if out.send(sample).await.is_err() {
            break;
        }
        // After the failed beat is on its way (the live picture and the triggers learn of
        // it at once, not after the servers have been asked).
        if std::mem::take(&mut look_for_primary) {
            let before = target.clone();
            let now_us = start.elapsed().as_micros() as i64;
            follow_primary(&w, &mut target, &mut search, now_us).await;
            if target != before {
                let moved = Probed::Writer {
                    cluster: w.cluster_id,
                    t_us: w.clock.now_us(),
                    address: target.clone(),
                };
                if out.send(moved).await.is_err() {
                    break;
                }
            }
        }
    }
    misses.abort();
    if let Some(c) = conn {
        c.close().await;
    }
}

/// At each of the writer's deadlines (every `interval` from `start`): when no beat has
/// been acknowledged for 1.5 intervals (the beat failed, or its write still hangs),
/// counts a miss on `notices`, so that readers probe without beats, as they did by a
/// timer of their own 1.5 intervals after the last beat. One timer per cluster, due
/// when the writer's is (the runtime wakes once for both), instead of one per replica
/// re-armed at every beat (which woke the runtime at every beat for each replica). A
/// task of its own: the writer may be waiting on a server for longer than an interval.
async fn mark_misses(
    (start, interval): (Instant, Duration),
    clock: Clock,
    notices: watch::Sender<BeatNotice>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval_at(start + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let late_us = crate::clock::duration_us(interval + interval / 2);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        if clock.now_us() - notices.borrow().t_ack_us >= late_us {
            notices.send_modify(|n| n.missed += 1);
        }
    }
}

#[derive(Debug)]
enum BeatError {
    Db(DbError),
    NoRow,
    /// The row holds a newer seq (another writer's): nothing was written.
    Stale {
        row_seq: u64,
    },
}

impl BeatError {
    /// Whether the server may no longer be the primary: it refuses writes as read-only
    /// (MySQL error 1290, PostgreSQL's 25006 on a standby) or does not answer.
    fn may_mean_failover(&self) -> bool {
        match self {
            BeatError::Db(DbError::Sql { state, .. }) => state == "25006",
            BeatError::Db(e) => matches!(
                e,
                DbError::Server { code: 1290, .. }
                    | DbError::Refused
                    | DbError::Timeout { .. }
                    | DbError::Io { .. }
            ),
            _ => false,
        }
    }
}

/// After a failed beat that may mean a failover: asks every other server of the cluster
/// whether it takes writes (not read-only, not replicating), and when exactly one does,
/// asks `target` too (a frozen target holds this up for a connect timeout, so only
/// then); [`PrimarySearch`] decides whether beats move.
async fn follow_primary(
    w: &BeatWriter,
    target: &mut Address,
    search: &mut PrimarySearch,
    now_us: i64,
) {
    let mut writable = Vec::new();
    for address in std::iter::once(&w.primary).chain(&w.others) {
        if address == target || writable.contains(address) {
            continue;
        }
        if answer(w, address).await == TargetAnswer::TakesWrites {
            writable.push(address.clone());
        }
    }
    let asked = match writable.as_slice() {
        [_] => Some(answer(w, target).await),
        _ => None,
    };
    match search.decide(now_us, &writable, asked) {
        Decision::Move(to) => {
            tracing::warn!(
                cluster = %w.cluster,
                from = %target,
                to = %to,
                "the primary moved: beats follow it"
            );
            *target = to;
        }
        Decision::Split {
            writers,
            changed: true,
        } => tracing::error!(
            cluster = %w.cluster,
            writable = %writers.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "),
            "more than one server takes writes (a split); beats stay on {target} and are not moved to either"
        ),
        Decision::Split { .. } => {}
        Decision::Stay if asked.is_some() => tracing::debug!(
            cluster = %w.cluster,
            target = %target,
            other = %writable[0],
            answered = ?asked,
            "another server takes writes, but it did before the primary failed: beats stay"
        ),
        Decision::Stay => {}
    }
}

/// Whether the server at `address` answers and takes writes: MySQL's not read-only and
/// replicating from nothing, PostgreSQL's not in recovery.
async fn answer(w: &BeatWriter, address: &Address) -> TargetAnswer {
    let timeout = w.settings.query_timeout;
    let takes = match w.kind {
        Kind::Mysql => {
            let Ok(mut c) = conn::connect(address, &w.settings, &w.password).await else {
                return TargetAnswer::Unreachable;
            };
            let facts = conn::server_facts(&mut c, timeout).await;
            let _ = tokio::time::timeout(Duration::from_millis(200), c.disconnect()).await;
            match facts {
                Ok(f) => super::schema::write_refusal(&f).is_none(),
                Err(_) => return TargetAnswer::Unreachable,
            }
        }
        Kind::Postgres => match super::pg::connect(address, &w.settings, &w.password).await {
            Ok(c) => match super::pg::in_recovery(&c, timeout).await {
                Ok(in_recovery) => !in_recovery,
                Err(_) => return TargetAnswer::Unreachable,
            },
            Err(_) => return TargetAnswer::Unreachable,
        },
    };
    if takes {
        TargetAnswer::TakesWrites
    } else {
        TargetAnswer::RefusesWrites
    }
}

impl std::fmt::Display for BeatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BeatError::Db(e) => e.fmt(f),
            BeatError::NoRow => f.write_str("the heartbeat row is missing; run lagtrace init"),
            BeatError::Stale { row_seq } => {
                write!(f, "the row already holds a newer seq ({row_seq})")
            }
        }
    }
}

/// Connects (filling `conn`) and reads the row's seq; `None` when either failed or the
/// row holds none (the next beat on a new connection asks again).
async fn row_seq_on_new_conn(
    w: &BeatWriter,
    target: &Address,
    conn: &mut Option<Session>,
) -> Option<u64> {
    let mut c = open(w, target).await.ok()?;
    let seq = c
        .visible_seq(&w.settings.database, &w.row, w.settings.query_timeout)
        .await
        .ok()?;
    *conn = Some(c);
    seq
}

/// The session's beat numbering base: `base` unless the row already holds `next` (the
/// beat about to be written) or more, when beats are numbered above it (the clock
/// stepped back since the last session).
fn base_above(w: &BeatWriter, base: u64, next: u64, row_seq: u64) -> u64 {
    if row_seq < next {
        return base;
    }
    tracing::info!(
        cluster = %w.cluster,
        row_seq,
        "the heartbeat row holds a higher seq than this session's clock gives (clock stepped back?); numbering beats above it"
    );
    row_seq + 1
}

/// A new connection to `target` with the beat update prepared, and the row created
/// first when the writer must ensure it.
async fn open(w: &BeatWriter, target: &Address) -> Result<Session, DbError> {
    Session::writer(
        w.kind,
        target,
        &w.settings,
        &w.password,
        &w.row,
        w.ensure_row,
    )
    .await
}

/// Writes one beat, connecting (and preparing the update once per connection) when
/// needed; returns the beat's `t_send_us` with the result.
///
/// `t_send_us` is taken once the connection is ready: the commit lies in `[t_send,
/// t_ack]` either way, but a reconnection's handshake and authentication inside that
/// window would widen the bounds of every read of the first beat after an outage. A
/// connection that fails gives the attempt's start.
async fn write_beat(
    w: &BeatWriter,
    target: &Address,
    conn: &mut Option<Session>,
    seq: u64,
) -> (i64, Result<(), BeatError>) {
    if conn.is_none() {
        let attempt_us = w.clock.now_us();
        match open(w, target).await {
            Ok(c) => *conn = Some(c),
            Err(e) => return (attempt_us, Err(BeatError::Db(e))),
        }
    }
    let c = conn.as_mut().expect("connected above");
    let t_send_us = w.clock.now_us();
    let written = c
        .write(
            &w.settings.database,
            &w.row,
            seq,
            t_send_us,
            w.settings.query_timeout,
        )
        .await;
    let result = match written {
        Ok(RowWrite::Written) => Ok(()),
        Ok(RowWrite::Stale { row_seq }) => Err(BeatError::Stale { row_seq }),
        Ok(RowWrite::NoRow) => Err(BeatError::NoRow),
        Err(e) => Err(BeatError::Db(e)),
    };
    (t_send_us, result)
}
