//! `check`'s probe round: one beat into a cluster's own `check` row (`<cluster>#check`,
//! created by `init`, never the row a recorder writes, so a check and a recorder never
//! race), numbered with the current UTC microsecond; then each replica read until it
//! shows the beat or until a read that starts after the deadline has missed it; then
//! its replication status. The beat statements are the beat writer's, through a
//! [`Session`] of the cluster's kind.

use std::time::Duration;

use tokio::task::JoinSet;

use super::conn::DbError;
use super::schema;
use super::session::{self, Session};
use crate::clock::Clock;
use crate::config::{ClusterConfig, ConnectionConfig, ReplicaConfig, Secret};
use crate::samples::{ChannelStatus, CheckSighting};

/// Pause between reads of a replica that does not show the beat yet.
const READ_EVERY: Duration = Duration::from_millis(10);

/// Why a round could not measure a replica.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("no beat written on primary {primary}: {why}")]
    NoBeat { primary: String, why: BeatFault },
    #[error("replica {address} unreachable: {why}")]
    Unreachable { address: String, why: DbError },
    #[error("heartbeat unreadable: {0}")]
    Unreadable(DbError),
    #[error("replication status unreadable: {0}")]
    StatusUnreadable(DbError),
}

/// Why the check's beat was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeatFault {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("no heartbeat row {0:?} for the check (run lagtrace init)")]
    NoRow(String),
    #[error(
        "row {row:?} holds seq {row_seq}, newer than this check's clock ({seq}): is another check running with a clock ahead of this host's?"
    )]
    Stale { row: String, row_seq: u64, seq: u64 },
}

/// What one round found about one replica.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Why the round could not measure: the primary or the replica failed.
    pub error: Option<CheckError>,
    /// The replica's replication channels (empty: it does not replicate).
    pub channels: Vec<ChannelStatus>,
    /// What the reads saw of the beat; `None` when no beat was written or the replica
    /// could not be read.
    pub sighting: Option<CheckSighting>,
}

/// The beat written on a primary: the send time and the acknowledgement, µs.
struct Written {
    seq: u64,
    t_send_us: i64,
    t_ack_us: i64,
}

/// One round on one cluster: `(cluster/replica, found)` per wanted replica. Replicas
/// are read until they show the beat or until a read that starts `wait` after the
/// acknowledgement has missed it.
pub async fn check_cluster(
    cluster: ClusterConfig,
    replicas: Vec<ReplicaConfig>,
    settings: ConnectionConfig,
    password: Secret,
    clock: Clock,
    wait: Duration,
) -> Vec<(String, Found)> {
    // Replicas connected first, so their reads start right after the write.
    let mut conns = Vec::new();
    for r in &replicas {
        conns.push(Session::reader(cluster.kind, &r.address, &settings, &password).await);
    }
    let written = write_beat(&cluster, &settings, &password, &clock).await;
    let mut tasks = JoinSet::new();
    for (r, c) in replicas.iter().zip(conns) {
        let name = format!("{}/{}", cluster.name, r.name);
        let (settings, cluster_name) = (settings.clone(), cluster.name.clone());
        let written = match &written {
            Ok(w) => Ok((w.seq, w.t_send_us, w.t_ack_us)),
            Err(e) => Err(e.clone()),
        };
        let address = r.address.to_string();
        tasks.spawn(async move {
            let found = match c {
                Err(why) => Found {
                    error: Some(CheckError::Unreachable { address, why }),
                    channels: Vec::new(),
                    sighting: None,
                },
                Ok(mut c) => {
                    let found =
                        check_replica(&mut c, &settings, &cluster_name, written, clock, wait).await;
                    c.close().await;
                    found
                }
            };
            (name, found)
        });
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(found) => out.push(found),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

/// Writes one beat into the cluster's `check` row on its primary.
async fn write_beat(
    cluster: &ClusterConfig,
    settings: &ConnectionConfig,
    password: &Secret,
    clock: &Clock,
) -> Result<Written, CheckError> {
    let primary = &cluster.primary;
    let fail = |why: BeatFault| CheckError::NoBeat {
        primary: primary.to_string(),
        why,
    };
    let row = schema::check_row(&cluster.name);
    let mut c = Session::writer(cluster.kind, primary, settings, password, &row, false)
        .await
        .map_err(|e| fail(e.into()))?;
    // Numbered by the wall clock; when the row already holds more (a clock stepped back
    // since the last check), once more just above it.
    // (A row still ahead after that is another check running now.)
    let mut seq = clock.now_us() as u64;
    let (mut t_send_us, mut result);
    let mut tries = 0;
    loop {
        t_send_us = clock.now_us();
        result = c
            .write(
                &settings.database,
                &row,
                seq,
                t_send_us,
                settings.query_timeout,
            )
            .await;
        tries += 1;
        match &result {
            Ok(session::RowWrite::Stale { row_seq }) if tries < 2 => seq = row_seq + 1,
            _ => break,
        }
    }
    let t_ack_us = clock.now_us();
    c.close().await;
    match result.map_err(|e| fail(e.into()))? {
        session::RowWrite::Written => Ok(Written {
            seq,
            t_send_us,
            t_ack_us,
        }),
        session::RowWrite::NoRow => Err(fail(BeatFault::NoRow(row))),
        session::RowWrite::Stale { row_seq } => Err(fail(BeatFault::Stale { row, row_seq, seq })),
    }
}

/// Reads the replica until it shows beat `seq` or `timeout` after the acknowledgement,
/// then its replication status.
async fn check_replica(
    c: &mut Session,
    settings: &ConnectionConfig,
    cluster: &str,
    written: Result<(u64, i64, i64), CheckError>,
    clock: Clock,
    timeout: Duration,
) -> Found {
    let seen = match written {
        Err(e) => Err(e),
        Ok((seq, t_send_us, t_ack_us)) => {
            let row = schema::check_row(cluster);
            wait_for(c, settings, &row, seq, t_send_us, t_ack_us, clock, timeout).await
        }
    };
    let channels = c.channels(settings.query_timeout).await;
    match (seen, channels) {
        (Err(e), channels) => Found {
            error: Some(e),
            channels: channels.unwrap_or_default(),
            sighting: None,
        },
        (Ok(sighting), Ok(channels)) => Found {
            error: None,
            channels,
            sighting: Some(sighting),
        },
        (Ok(_), Err(e)) => Found {
            error: Some(CheckError::StatusUnreadable(e)),
            channels: Vec::new(),
            sighting: None,
        },
    }
}

#[allow(clippy::too_many_arguments)]
async fn wait_for(
    c: &mut Session,
    settings: &ConnectionConfig,
    cluster: &str,
    seq: u64,
    t_send_us: i64,
    t_ack_us: i64,
    clock: Clock,
    wait: Duration,
) -> Result<CheckSighting, CheckError> {
    // Read until a read that starts after this has missed the beat.
    let deadline_us = t_ack_us + crate::clock::duration_us(wait);
    let mut sighting = CheckSighting {
        t_send_us,
        t_ack_us,
        missed_after_ack_us: None,
        shown: None,
    };
    loop {
        let r_start_us = clock.now_us();
        let visible = c
            .visible_seq(&settings.database, cluster, settings.query_timeout)
            .await;
        let r_end_us = clock.now_us();
        match visible {
            Err(e) => return Err(CheckError::Unreadable(e)),
            Ok(Some(v)) if v >= seq => {
                sighting.shown = Some((r_start_us, r_end_us));
                return Ok(sighting);
            }
            Ok(_) => {
                if r_start_us >= t_ack_us {
                    sighting.missed_after_ack_us = Some(r_start_us);
                }
                if r_start_us > deadline_us {
                    return Ok(sighting);
                }
            }
        }
        tokio::time::sleep(READ_EVERY).await;
    }
}
