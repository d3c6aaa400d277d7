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

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

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
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        if source.is_some_and(|s| s.contains("server does not support TLS")) {
            return DbError::TlsNotOffered;
        }
        if let Some(message) = super::tls::reason(&e) {
            return DbError::Tls { message };
        }
        let io = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>());
        match io {
            Some(io) => super::conn::io_failure(io),
            None if e.is_closed() => DbError::Io {
                message: e.to_string(),
            },
            None => DbError::Driver {
                message: e.to_string(),
            },
        }
    }
}

/// Opens one TCP connection to `addr`'s database `connection.postgres_database`, with
/// TLS as `settings.tls` says (noted: `probe::tls::seen`); the connection's I/O runs
/// on a task of its own until the client is dropped.
pub async fn connect(
    addr: &Address,
    settings: &ConnectionConfig,
    password: &Secret,
) -> Result<Client, DbError> {
    use super::tls::{PgTls, Security, note};
    use crate::config::TlsMode;
    let mode = settings.tls.mode;
    let ssl_mode = match mode {
        TlsMode::Disabled => tokio_postgres::config::SslMode::Disable,
        TlsMode::Preferred => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    };
    let tls = PgTls::new(&settings.tls).map_err(|message| DbError::Tls { message })?;
    let used = tls.used.clone();
    let mut config = tokio_postgres::Config::new();
    config.ssl_mode(ssl_mode);
    config
        .host(&addr.host)
        .port(addr.port)
        .user(&settings.user)
        .password(password.expose())
        .dbname(&settings.postgres_database)
        .application_name("lagtrace")
        .connect_timeout(settings.connect_timeout);
    let (client, connection) =
        timed("connect", settings.connect_timeout, config.connect(tls)).await?;
    let security = match (mode, used.load(std::sync::atomic::Ordering::Relaxed)) {
        (TlsMode::Disabled, _) => Security::PlainAsConfigured,
        (_, true) => Security::Encrypted { mode },
        (_, false) => Security::PlainFallback,
    };
    note(addr, security);
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

/// One status poll of a PostgreSQL server.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// A standby's WAL receiver as its one channel; none on a primary.
    pub channels: Vec<crate::samples::ChannelStatus>,
    /// Whether the server takes writes (not in recovery).
    pub writable: bool,
    /// `pg_last_xact_replay_timestamp()`, UTC µs by the primary's clock.
    pub replay_commit_us: Option<i64>,
    /// `recovery_min_apply_delay`, ms (0 on a primary).
    pub min_apply_delay_ms: u32,
    /// The application_name a standby's WAL receiver gives its sender, which names the
    /// standby's row in the sender's `pg_stat_replication`.
    pub application_name: Option<String>,
}

/// A standby's replication as one status poll sees it: its WAL receiver as the
/// channel (`source` its sender, `io` whether it streams), replay paused as the SQL
/// thread stopped, `recovery_min_apply_delay` as the intended delay (rounded up to
/// whole seconds in the channel, exact in [`Status::min_apply_delay_ms`]), the received and replayed LSNs as the positions (text, `16/B374D848`:
/// capacity counts them in WAL bytes), and the startup process's wait event as whether
/// replay is applying. PostgreSQL has no Seconds_Behind_Master: it stays unknown.
pub async fn status(c: &Client, timeout: Duration) -> Result<Status, DbError> {
    use crate::samples::{ChannelStatus, IoState};
    const SQL: &str = "SELECT pg_is_in_recovery(), \
        CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END, \
        (SELECT setting::bigint FROM pg_settings WHERE name = 'recovery_min_apply_delay'), \
        r.status, r.sender_host, r.sender_port, \
        pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, \
        (SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'startup' LIMIT 1), \
        (EXTRACT(EPOCH FROM pg_last_xact_replay_timestamp()) * 1000000)::bigint, \
        r.conninfo, current_setting('cluster_name') \
        FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true";
    let row = timed("status poll", timeout, c.query_one(SQL, &[])).await?;
    let in_recovery: bool = row.get(0);
    if !in_recovery {
        return Ok(Status {
            channels: Vec::new(),
            writable: true,
            replay_commit_us: None,
            min_apply_delay_ms: 0,
            application_name: None,
        });
    }
    let paused: bool = row.get(1);
    let delay_ms: i64 = row.get::<_, Option<i64>>(2).unwrap_or(0).max(0);
    let receiver: Option<String> = row.get(3);
    let host: Option<String> = row.get(4);
    let port: Option<i32> = row.get(5);
    let received: Option<String> = row.get(6);
    let replayed: Option<String> = row.get(7);
    let wait_event: Option<String> = row.get(8);
    let conninfo: Option<String> = row.get(10);
    let cluster_name: String = row.get(11);
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
    Ok(Status {
        channels: vec![channel],
        writable: false,
        replay_commit_us: row.get(9),
        min_apply_delay_ms: delay_ms.min(u32::MAX as i64) as u32,
        application_name: conninfo.map(|c| receiver_name(&c, &cluster_name)),
    })
}

/// The application_name a WAL receiver connects with: its conninfo's, else the
/// standby's `cluster_name`, else `walreceiver` (PostgreSQL's own fallbacks).
fn receiver_name(conninfo: &str, cluster_name: &str) -> String {
    conninfo_value(conninfo, "application_name")
        .or_else(|| (!cluster_name.is_empty()).then(|| cluster_name.to_string()))
        .unwrap_or_else(|| "walreceiver".to_string())
}

/// The value of `key` in a libpq conninfo string (`key=value key='quoted \' value'`).
fn conninfo_value(conninfo: &str, key: &str) -> Option<String> {
    let mut chars = conninfo.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        chars.peek()?;
        let name: String =
            std::iter::from_fn(|| chars.next_if(|&c| c != '=' && !c.is_whitespace())).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        chars.next_if_eq(&'=')?;
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if name == key {
            return Some(value);
        }
    }
}

/// A standby's write, flush and replay lag as its sender's `pg_stat_replication`
/// reports them, µs (`None` where NULL); `None` unless exactly one row carries the
/// standby's application_name (two standbys sharing a name cannot be told apart).
pub async fn sender_lags(
    c: &Client,
    application_name: &str,
    timeout: Duration,
) -> Result<Option<[Option<i64>; 3]>, DbError> {
    const SQL: &str = "SELECT (EXTRACT(EPOCH FROM write_lag) * 1000000)::bigint, \
        (EXTRACT(EPOCH FROM flush_lag) * 1000000)::bigint, \
        (EXTRACT(EPOCH FROM replay_lag) * 1000000)::bigint \
        FROM pg_stat_replication WHERE application_name = $1";
    let rows = timed("query", timeout, c.query(SQL, &[&application_name])).await?;
    Ok(match rows.as_slice() {
        [row] => Some([row.get(0), row.get(1), row.get(2)]),
        _ => None,
    })
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
    fn the_receivers_name_comes_from_conninfo_then_cluster_name() {
        let info = "host=127.0.0.1 port=15432 user=repl application_name=standby1";
        assert_eq!(receiver_name(info, "lab-s1"), "standby1");
        assert_eq!(receiver_name("host=h user=repl", "lab-s1"), "lab-s1");
        assert_eq!(receiver_name("host=h", ""), "walreceiver");
        let quoted = "user = 'a b' application_name='it\\'s x' password=********";
        assert_eq!(
            conninfo_value(quoted, "application_name").unwrap(),
            "it's x"
        );
        assert_eq!(conninfo_value(quoted, "user").unwrap(), "a b");
        assert_eq!(conninfo_value(quoted, "dbname"), None);
        assert_eq!(conninfo_value("broken", "broken"), None);
        assert_eq!(
            conninfo_value("a='unterminated", "a").unwrap(),
            "unterminated"
        );
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
