//! The status poller: one task per replica, sampling the replication status about once
//! a second (ten times a second during a backlog) on its own connection (so a slow status query never delays a heartbeat read).
//! `SHOW ALL SLAVES STATUS` on MariaDB keeps multi-source channels apart;
//! `SHOW REPLICA STATUS` on MySQL 8.

use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::conn::{self, Backoff, DbError, FailureRun, MAX_BACKOFF, column_string, timed};
use crate::clock::Clock;
use crate::config::{Address, ConnectionConfig, Kind, Secret};
use crate::samples::{ChannelStatus, IoState, Outcome, PgFigures, Probed, StatusSample};

/// The status period while a replica works off a backlog.
pub const BACKLOG_EVERY: Duration = Duration::from_millis(100);

/// Everything a status poller needs.
#[derive(Debug, Clone)]
pub struct Poller {
    pub replica_id: u32,
    /// What the server is.
    pub kind: Kind,
    pub cluster: String,
    pub replica: String,
    pub address: Address,
    pub settings: ConnectionConfig,
    pub password: Secret,
    pub every: Duration,
    pub clock: Clock,
}

/// Polls until `shutdown` turns true. Polls are `every` apart on average but jittered
/// uniformly over [0.5, 1.5) x `every`: the busy fraction is estimated from what the
/// polls see, and a poll on a fixed period aliases with periodic work on the primary
/// (batches every second, a load paced in 100 ms ticks) and sees one phase of it only.
/// While the last poll showed a backlog (at least
/// [`crate::samples::ProgressUnit::backlog_min`]), polls come every [`BACKLOG_EVERY`] at
/// most: the apply rate while a backlog drains is what capacity is measured from, and a
/// drain often lasts only seconds.
pub async fn run(p: Poller, out: mpsc::Sender<Probed>, mut shutdown: watch::Receiver<bool>) {
    let mut jitter = Jitter::new(p.clock.now_us() as u64 ^ u64::from(p.replica_id) << 32);
    let mut conn: Option<StatusConn> = None;
    let mut backoff = Backoff::new(Duration::from_millis(100), MAX_BACKOFF.max(p.every));
    let mut retry_at = Instant::now();
    let mut every = p.every;
    let mut failures = FailureRun::new("status", &p.cluster, &p.replica);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(jitter.around(every)) => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
        if Instant::now() < retry_at {
            continue;
        }
        let t_us = p.clock.now_us();
        // Boxed: a poll (a connection's setup, PostgreSQL's sender lookup) is large,
        // and a task that held it inline would keep it between polls.
        let result = Box::pin(poll(&p, &mut conn)).await;
        let mut role = None;
        // A poll's time is its own server's: a PostgreSQL standby's sender, asked after,
        // does not stretch it.
        let read_us = result.as_ref().map_or(p.clock.now_us(), |r| r.read_us);
        let duration_us = (read_us - t_us).clamp(0, u32::MAX as i64) as u32;
        let status = match result {
            Ok(Polled {
                channels,
                writable,
                postgres,
                ..
            }) => {
                backoff.reset();
                failures.succeeded();
                role = writable.map(|writable| Probed::Role {
                    replica: p.replica_id,
                    t_us,
                    writable,
                    source: channels
                        .iter()
                        .find(|c| c.channel.is_empty())
                        .or_else(|| channels.first())
                        .map(|c| c.source.clone()),
                });
                StatusSample {
                    t_us,
                    duration_us,
                    outcome: Outcome::Ok,
                    reason: None,
                    channels,
                    postgres,
                }
            }
            Err(e) => {
                conn = None;
                retry_at = Instant::now() + backoff.next_delay();
                failures.failed(&e);
                StatusSample {
                    t_us,
                    duration_us,
                    outcome: e.outcome(),
                    reason: Some(e.to_string()),
                    channels: Vec::new(),
                    postgres: None,
                }
            }
        };
        every = if status.main_channel().is_some_and(|c| c.in_backlog()) {
            p.every.min(BACKLOG_EVERY)
        } else {
            p.every
        };
        let sample = Probed::Status {
            replica: p.replica_id,
            status,
        };
        if out.send(sample).await.is_err() {
            break;
        }
        if let Some(role) = role
            && out.send(role).await.is_err()
        {
            break;
        }
    }
}

/// A status poller's connection: MySQL's with the statement that shows its channels,
/// or PostgreSQL's with one to the standby's sender (see [`SenderConn`]).
enum StatusConn {
    Mysql(Conn, &'static str),
    /// Boxed: two PostgreSQL clients are ten times the size of a MySQL connection.
    Postgres(Box<(tokio_postgres::Client, SenderConn)>),
}

/// What one poll read.
struct Polled {
    /// When the server's own answers were in, µs on the recorder's clock.
    read_us: i64,
    channels: Vec<ChannelStatus>,
    /// Whether the server takes writes (`None` when `@@read_only` could not be read:
    /// the poll still counts).
    writable: Option<bool>,
    /// A PostgreSQL standby's own figures.
    postgres: Option<PgFigures>,
}

/// A PostgreSQL standby poller's connection to the server the standby streams from,
/// whose `pg_stat_replication` holds the standby's lags as PostgreSQL reports them.
/// It follows the sender the standby names; a sender that cannot be reached or does
/// not answer within the status period (a primary that is down or frozen) is tried
/// again after [`SENDER_RETRY`], and meanwhile the polls go on without its lags.
#[derive(Default)]
struct SenderConn {
    conn: Option<(String, tokio_postgres::Client)>,
    retry_at: Option<Instant>,
}

/// How long a status poller waits before it tries an unreachable sender again.
const SENDER_RETRY: Duration = Duration::from_secs(30);

impl SenderConn {
    /// The standby's write, flush and replay lag from `source` (`host:port`), as
    /// `name`'s row there says; `None` when the sender cannot be asked.
    async fn lags(&mut self, p: &Poller, source: &str, name: &str) -> Option<[Option<i64>; 3]> {
        if self.conn.as_ref().is_some_and(|(s, _)| s != source) {
            self.conn = None;
        }
        if self.conn.is_none() {
            if self.retry_at.is_some_and(|t| Instant::now() < t) {
                return None;
            }
            // A sender named by a socket directory runs on the standby's own host,
            // which a connection from here cannot reach.
            let (host, port) = crate::samples::source_host_port(source)
                .filter(|(host, _)| !host.starts_with('/'))?;
            let address = Address {
                host: host.to_string(),
                port,
            };
            match super::pg::connect(&address, &p.settings, &p.password).await {
                Ok(c) => self.conn = Some((source.to_string(), c)),
                Err(e) => {
                    tracing::info!(replica = %p.replica, sender = source, error = %e,
                        "sender unreachable: PostgreSQL's own lags are not recorded until it answers");
                    self.retry_at = Some(Instant::now() + SENDER_RETRY);
                    return None;
                }
            }
        }
        let (_, c) = self.conn.as_ref().expect("connected above");
        let timeout = p.settings.query_timeout.min(p.every);
        match super::pg::sender_lags(c, name, timeout).await {
            Ok(lags) => lags,
            Err(e) => {
                tracing::debug!(replica = %p.replica, error = %e, "pg_stat_replication unread");
                self.conn = None;
                self.retry_at = Some(Instant::now() + SENDER_RETRY);
                None
            }
        }
    }
}

/// One status poll over `conn`, connecting first when it is `None`.
async fn poll(p: &Poller, conn: &mut Option<StatusConn>) -> Result<Polled, DbError> {
    let timeout = p.settings.query_timeout;
    if conn.is_none() {
        *conn = Some(match p.kind {
            Kind::Mysql => {
                let mut c = conn::connect(&p.address, &p.settings, &p.password).await?;
                let sql = status_sql(&mut c, timeout).await?;
                StatusConn::Mysql(c, sql)
            }
            Kind::Postgres => StatusConn::Postgres(Box::new((
                super::pg::connect(&p.address, &p.settings, &p.password).await?,
                SenderConn::default(),
            ))),
        });
    }
    let (c, sql) = match conn.as_mut().expect("connected above") {
        StatusConn::Mysql(c, sql) => (c, *sql),
        StatusConn::Postgres(pg) => {
            let (c, sender) = &mut **pg;
            let s = super::pg::status(c, timeout).await?;
            let read_us = p.clock.now_us();
            let source = s.channels.first().map(|c| c.source.as_str());
            let postgres = match (source, &s.application_name) {
                (Some(source), Some(name)) if !source.is_empty() => {
                    let lags = sender.lags(p, source, name).await;
                    let [write_lag_us, flush_lag_us, replay_lag_us] = lags.unwrap_or_default();
                    Some(PgFigures {
                        replay_commit_us: s.replay_commit_us,
                        write_lag_us,
                        flush_lag_us,
                        replay_lag_us,
                        min_apply_delay_ms: Some(s.min_apply_delay_ms),
                    })
                }
                _ if !s.writable => Some(PgFigures {
                    replay_commit_us: s.replay_commit_us,
                    min_apply_delay_ms: Some(s.min_apply_delay_ms),
                    ..PgFigures::default()
                }),
                _ => None,
            };
            return Ok(Polled {
                read_us,
                channels: s.channels,
                writable: Some(s.writable),
                postgres,
            });
        }
    };
    let channels = channels(c, sql, p.settings.query_timeout).await?;
    let read_only = timed(
        "query",
        p.settings.query_timeout,
        c.query_first::<u8, _>("SELECT @@read_only"),
    )
    .await;
    let writable = match read_only {
        Ok(r) => r.map(|r| r == 0),
        Err(e) => {
            // The channels stand; the connection may be mid-query: start a new one.
            tracing::debug!(replica = %p.replica, error = %e, "@@read_only unread");
            *conn = None;
            None
        }
    };
    Ok(Polled {
        read_us: p.clock.now_us(),
        channels,
        writable,
        postgres: None,
    })
}

/// The statement that shows this server's replication channels (it depends on the
/// server: MariaDB or MySQL).
pub async fn status_sql(c: &mut Conn, timeout: Duration) -> Result<&'static str, DbError> {
    let version: Option<String> =
        timed("query", timeout, c.query_first("SELECT @@version")).await?;
    Ok(conn::replication_status_sql(&version.unwrap_or_default()))
}

/// The replication channels as `sql` (from [`status_sql`]) shows them.
pub async fn channels(
    c: &mut Conn,
    sql: &str,
    timeout: Duration,
) -> Result<Vec<ChannelStatus>, DbError> {
    let rows: Vec<mysql_async::Row> = timed("status poll", timeout, c.query(sql)).await?;
    Ok(rows.iter().map(parse_channel).collect())
}

/// One row of `SHOW ALL SLAVES STATUS` (MariaDB) or `SHOW REPLICA STATUS` (MySQL 8).
pub fn parse_channel(row: &mysql_async::Row) -> ChannelStatus {
    let text = |names: &[&str]| column_string(row, names);
    let number = |names: &[&str]| text(names).and_then(|v| v.trim().parse::<u64>().ok());
    let host = text(&["Master_Host", "Source_Host"]).unwrap_or_default();
    let port = text(&["Master_Port", "Source_Port"]).unwrap_or_default();
    let sql_running = text(&["Slave_SQL_Running", "Replica_SQL_Running"]).as_deref() == Some("Yes");
    let sql_state = text(&["Slave_SQL_Running_State", "Replica_SQL_Running_State"]);
    ChannelStatus {
        channel: text(&["Connection_name", "Channel_Name"]).unwrap_or_default(),
        source: format!("{host}:{port}"),
        io: io_state(text(&["Slave_IO_Running", "Replica_IO_Running"]).as_deref()),
        sql_running,
        seconds_behind_master: number(&["Seconds_Behind_Master", "Seconds_Behind_Source"])
            .map(|v| v.min(u32::MAX as u64) as u32),
        sql_delay_s: number(&["SQL_Delay"]).unwrap_or(0).min(u32::MAX as u64) as u32,
        last_io_errno: number(&["Last_IO_Errno"]).unwrap_or(0) as u32,
        last_io_error: text(&["Last_IO_Error"]).unwrap_or_default(),
        last_sql_errno: number(&["Last_SQL_Errno"]).unwrap_or(0) as u32,
        last_sql_error: text(&["Last_SQL_Error"]).unwrap_or_default(),
        gtid_io_pos: text(&["Gtid_IO_Pos", "Retrieved_Gtid_Set"]).unwrap_or_default(),
        gtid_applied_pos: text(&["Gtid_Slave_Pos", "Executed_Gtid_Set"]).unwrap_or_default(),
        relay_log_space: number(&["Relay_Log_Space"]).unwrap_or(0),
        sql_applying: sql_applying(sql_running, sql_state.as_deref()),
    }
}

fn io_state(v: Option<&str>) -> IoState {
    match v {
        Some("Yes") => IoState::Yes,
        Some("Connecting") | Some("Preparing") => IoState::Connecting,
        _ => IoState::No,
    }
}

/// Poll jitter: the only requirement is that poll phases do not lock onto a period.
#[derive(Debug, Clone)]
pub struct Jitter(crate::xorshift::XorShift);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Jitter(crate::xorshift::XorShift::new(seed))
    }

    /// A duration uniform in [0.5, 1.5) x `mean`.
    pub fn around(&mut self, mean: Duration) -> Duration {
        mean.mul_f64(0.5 + self.0.unit())
    }
}

/// Whether the SQL thread is busy applying events, from its state text. Waiting for
/// the relay log, or for an intended delay to pass, is not applying.
pub fn sql_applying(sql_running: bool, state: Option<&str>) -> Option<bool> {
    if !sql_running {
        return None;
    }
    let state = state?.to_ascii_lowercase();
    if state.is_empty() {
        return None;
    }
    let idle = state.contains("has read all relay log")
        || state.contains("waiting until master_delay")
        || state.contains("waiting until source_delay")
        || state.contains("waiting for the next event in relay log");
    Some(!idle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applying_from_state_text() {
        assert_eq!(
            sql_applying(
                true,
                Some("Slave has read all relay log; waiting for more updates")
            ),
            Some(false)
        );
        assert_eq!(
            sql_applying(
                true,
                Some("Waiting until MASTER_DELAY seconds after master executed event")
            ),
            Some(false)
        );
        assert_eq!(
            sql_applying(true, Some("Update_rows_log_event::find_row(-1)")),
            Some(true)
        );
        assert_eq!(sql_applying(true, Some("")), None);
        assert_eq!(sql_applying(false, Some("anything")), None);
    }

    #[test]
    fn io_states() {
        assert_eq!(io_state(Some("Yes")), IoState::Yes);
        assert_eq!(io_state(Some("Connecting")), IoState::Connecting);
        assert_eq!(io_state(Some("No")), IoState::No);
        assert_eq!(io_state(None), IoState::No);
    }

    #[test]
    fn jitter_is_uniform_around_the_mean() {
        let mut j = Jitter::new(42);
        let mean = Duration::from_millis(100);
        let draws: Vec<f64> = (0..10_000).map(|_| j.around(mean).as_secs_f64()).collect();
        assert!(draws.iter().all(|&d| (0.05..0.15).contains(&d)));
        let avg = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((avg - 0.1).abs() < 0.002, "{avg}");
        // Both halves of the range are used about equally.
        let low = draws.iter().filter(|&&d| d < 0.1).count();
        assert!((4_700..5_300).contains(&low), "{low}");
    }
}
