//! PostgreSQL servers (`kind = "postgres"`): connecting, the heartbeat schema and the
//! statements the probes run there. What the probes do is the same for both kinds;
//! this module holds how it is said to PostgreSQL. Failures map to the same
//! [`DbError`] classification as MySQL's. Messages never contain the password.
//!
//! The heartbeat table is `<database>.heartbeat` in the database
//! `connection.postgres_database`; `writer` records the primary that wrote a beat as
//! it sees itself (`inet_server_addr():inet_server_port()`; PostgreSQL has no
//! server_id). Each statement runs in its own transaction (autocommit), so a read on a
//! hot standby takes a fresh snapshot.

use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::conn::{DbError, timed};
use super::schema::{Migration, statements};
use crate::config::{Address, ConnectionConfig, Secret};

/// The PostgreSQL migrations, in order (the same versions as MySQL's).
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "001_heartbeat",
    sql: include_str!("../../migrations/postgres/001_heartbeat.sql"),
}];

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            let message = db.message().to_string();
            let code = db.code();
            return if [
                SqlState::INVALID_PASSWORD,
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                SqlState::INSUFFICIENT_PRIVILEGE,
            ]
            .contains(code)
            {
                DbError::AccessDenied { message }
            } else if [SqlState::UNDEFINED_TABLE, SqlState::INVALID_SCHEMA_NAME].contains(code) {
                DbError::MissingTable { message }
            } else {
                DbError::Sql {
                    state: code.code().to_string(),
                    message,
                }
            };
        }
        let io = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>());
        match io {
            Some(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => DbError::Refused,
            Some(io) if io.to_string().contains("failed to lookup address") => DbError::UnknownHost,
            Some(io) => DbError::Io {
                message: io.to_string(),
            },
            None if e.is_closed() => DbError::Io {
                message: e.to_string(),
            },
            None => DbError::Driver {
                message: e.to_string(),
            },
        }
    }
}

/// Opens one TCP connection to `addr`'s database `connection.postgres_database`; the
/// connection's I/O runs on a task of its own until the client is dropped.
pub async fn connect(
    addr: &Address,
    settings: &ConnectionConfig,
    password: &Secret,
) -> Result<Client, DbError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&addr.host)
        .port(addr.port)
        .user(&settings.user)
        .password(password.expose())
        .dbname(&settings.postgres_database)
        .application_name("lagtrace")
        .connect_timeout(settings.connect_timeout);
    let (client, connection) =
        timed("connect", settings.connect_timeout, config.connect(NoTls)).await?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server goes away; the client's next
        // statement reports the latter.
        let _ = connection.await;
    });
    Ok(client)
}

/// `"name"`: an identifier the config checked is plain (letters, digits, `_`, `$`).
fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// Everything `init` runs on a primary whose schema is at `current` (0 = none), in
/// order.
pub fn plan(schema: &str, current: u32) -> Vec<String> {
    let s = quoted(schema);
    let mut out = vec![
        format!("CREATE SCHEMA IF NOT EXISTS {s}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.schema_version (version INT NOT NULL PRIMARY KEY, \
             name VARCHAR(128) NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        ),
        format!("SET search_path TO {s}"),
    ];
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        out.extend(statements(m.sql));
        out.push(format!(
            "INSERT INTO schema_version (version, name) VALUES ({}, '{}') ON CONFLICT DO NOTHING",
            m.version, m.name
        ));
    }
    out
}

/// The statement that ensures a heartbeat row exists without touching one a recorder
/// writes (`$1`: the row). `seq = 0` means "no beat yet".
pub fn ensure_row_sql(schema: &str) -> String {
    format!(
        "INSERT INTO {}.heartbeat (cluster, seq, t_send_us, writer) VALUES ($1, 0, 0, '') \
         ON CONFLICT (cluster) DO NOTHING",
        quoted(schema)
    )
}

/// The guarded beat UPDATE: `$1` seq, `$2` t_send_us, `$3` the row. It never moves
/// `seq` backwards.
pub fn update_sql(schema: &str) -> String {
    format!(
        "UPDATE {}.heartbeat SET seq = $1, t_send_us = $2, \
         writer = host(inet_server_addr()) || ':' || inet_server_port() \
         WHERE cluster = $3 AND seq < $1",
        quoted(schema)
    )
}

/// The read of a row's beat number (`$1`: the row).
pub fn read_sql(schema: &str) -> String {
    format!(
        "SELECT seq FROM {}.heartbeat WHERE cluster = $1",
        quoted(schema)
    )
}

/// The schema version recorded on a server, 0 when the schema or table is missing.
pub async fn current_version(c: &Client, schema: &str, timeout: Duration) -> Result<u32, DbError> {
    let sql = format!(
        "SELECT COALESCE(MAX(version), 0) FROM {}.schema_version",
        quoted(schema)
    );
    match timed("query", timeout, c.query_one(&sql, &[])).await {
        Ok(row) => Ok(row.get::<_, i32>(0).max(0) as u32),
        Err(DbError::MissingTable { .. }) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Whether the server is a standby (in recovery): lagtrace writes only to a primary.
pub async fn in_recovery(c: &Client, timeout: Duration) -> Result<bool, DbError> {
    let row = timed(
        "query",
        timeout,
        c.query_one("SELECT pg_is_in_recovery()", &[]),
    )
    .await?;
    Ok(row.get(0))
}

/// The row's beat number as this server shows it: `None` while the schema, the table
/// or the row has not arrived.
pub async fn visible_seq(
    c: &Client,
    schema: &str,
    row: &str,
    timeout: Duration,
) -> Result<Option<u64>, DbError> {
    match timed("query", timeout, c.query_opt(&read_sql(schema), &[&row])).await {
        Ok(r) => Ok(r.map(|r| r.get::<_, i64>(0).max(0) as u64)),
        Err(DbError::MissingTable { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What applying the schema did: the versions before and after.
pub async fn apply(
    c: &Client,
    schema: &str,
    rows: &[String],
    timeout: Duration,
) -> Result<(u32, u32), DbError> {
    let from = current_version(c, schema, timeout).await?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.version);
    if from > latest {
        return Err(DbError::Driver {
            message: format!(
                "schema version {from} is newer than this lagtrace knows ({latest}); upgrade lagtrace"
            ),
        });
    }
    for stmt in plan(schema, from) {
        timed("query", timeout, c.batch_execute(&stmt)).await?;
    }
    let ensure = ensure_row_sql(schema);
    for row in rows {
        timed("query", timeout, c.execute(&ensure, &[row])).await?;
    }
    Ok((from, latest))
}

/// A standby's replication as one status poll sees it: its WAL receiver as the
/// channel (`source` its sender, `io` whether it streams), replay paused as the SQL
/// thread stopped, `recovery_min_apply_delay` as the intended delay (rounded up to
/// whole seconds), the received and replayed LSNs as the positions (text, `16/B374D848`:
/// capacity counts them in WAL bytes), and the startup process's wait event as whether
/// replay is applying; and whether the server takes writes (not in recovery). A primary
/// has no channel. PostgreSQL has no Seconds_Behind_Master: it stays unknown.
pub async fn status(
    c: &Client,
    timeout: Duration,
) -> Result<(Vec<crate::samples::ChannelStatus>, bool), DbError> {
    use crate::samples::{ChannelStatus, IoState};
    const SQL: &str = "SELECT pg_is_in_recovery(), \
        CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END, \
        (SELECT setting::bigint FROM pg_settings WHERE name = 'recovery_min_apply_delay'), \
        r.status, r.sender_host, r.sender_port, \
        pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, \
        (SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'startup' LIMIT 1) \
        FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true";
    let row = timed("status poll", timeout, c.query_one(SQL, &[])).await?;
    let in_recovery: bool = row.get(0);
    if !in_recovery {
        return Ok((Vec::new(), true));
    }
    let paused: bool = row.get(1);
    let delay_ms: i64 = row.get::<_, Option<i64>>(2).unwrap_or(0).max(0);
    let receiver: Option<String> = row.get(3);
    let host: Option<String> = row.get(4);
    let port: Option<i32> = row.get(5);
    let received: Option<String> = row.get(6);
    let replayed: Option<String> = row.get(7);
    let wait_event: Option<String> = row.get(8);
    let channel = ChannelStatus {
        channel: String::new(),
        source: match (host, port) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            _ => String::new(),
        },
        io: match receiver.as_deref() {
            Some("streaming") => IoState::Yes,
            Some("starting") | Some("catchup") => IoState::Connecting,
            _ => IoState::No,
        },
        sql_running: !paused,
        seconds_behind_master: None,
        sql_delay_s: ((delay_ms + 999) / 1000).min(u32::MAX as i64) as u32,
        last_io_errno: 0,
        last_io_error: String::new(),
        last_sql_errno: 0,
        last_sql_error: String::new(),
        gtid_io_pos: received.unwrap_or_default(),
        gtid_applied_pos: replayed.unwrap_or_default(),
        relay_log_space: 0,
        sql_applying: replay_applying(paused, wait_event.as_deref()),
    };
    Ok((vec![channel], false))
}

/// Whether WAL replay is applying, from the startup process's wait event: waiting for
/// WAL to arrive, for an intended delay or while paused is not applying; no wait event
/// or an I/O wait is. `None` while paused.
fn replay_applying(paused: bool, wait_event: Option<&str>) -> Option<bool> {
    if paused {
        return None;
    }
    let idle = matches!(
        wait_event,
        Some(
            "RecoveryWalStream"
                | "RecoveryApplyDelay"
                | "RecoveryPause"
                | "RecoveryRetrieveRetryInterval"
        )
    );
    Some(!idle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_creates_schema_table_and_version_in_order() {
        let p = plan("lagtrace", 0);
        assert_eq!(p[0], "CREATE SCHEMA IF NOT EXISTS \"lagtrace\"");
        assert!(
            p[3].starts_with("CREATE TABLE IF NOT EXISTS heartbeat"),
            "{p:?}"
        );
        assert!(p.last().unwrap().contains("ON CONFLICT DO NOTHING"));
        // Up to date: only the schema's own bookkeeping.
        assert_eq!(plan("lagtrace", 1).len(), 3);
    }

    #[test]
    fn replay_applies_unless_it_waits_for_wal_a_delay_or_a_pause() {
        assert_eq!(replay_applying(false, None), Some(true));
        assert_eq!(replay_applying(false, Some("WALRead")), Some(true));
        assert_eq!(
            replay_applying(false, Some("RecoveryWalStream")),
            Some(false)
        );
        assert_eq!(
            replay_applying(false, Some("RecoveryApplyDelay")),
            Some(false)
        );
        assert_eq!(replay_applying(true, None), None);
    }
}
