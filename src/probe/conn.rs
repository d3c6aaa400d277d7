//! Connections to MySQL/MariaDB servers, and what went wrong when they fail (for
//! either kind: PostgreSQL's errors, the `pg` module, map to the same [`DbError`]).
//!
//! Every network step here runs under a timeout. Failures become a [`DbError`]: a small,
//! explicit classification (refused, timed out, access denied, ...) that callers print or,
//! later, store as a probe outcome. Messages never contain the password.

use std::fmt;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use crate::config::{Address, ConnectionConfig, Secret, TlsMode};
use crate::samples::Outcome;

/// Longest wait between reconnection attempts of any probe task.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Why talking to a server failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// The step did not finish within the timeout.
    #[error("{what} timed out after {}", humantime::format_duration(*.after))]
    Timeout { what: &'static str, after: Duration },
    /// Nothing listens on the port (TCP RST).
    #[error("connection refused")]
    Refused,
    /// The host name did not resolve.
    #[error("unknown host")]
    UnknownHost,
    /// The server rejected the user or password (1045), or the user lacks a privilege.
    #[error("access denied: {message}")]
    AccessDenied { message: String },
    /// The table (or schema) does not exist (1146, 1049).
    #[error("missing: {message}")]
    MissingTable { message: String },
    /// Any other error the server returned.
    #[error("server error {code}: {message}")]
    Server { code: u16, message: String },
    /// Any other error a PostgreSQL server returned, with its SQLSTATE.
    #[error("server error {state}: {message}")]
    Sql { state: String, message: String },
    /// The connection broke or another I/O error happened.
    #[error("i/o error: {message}")]
    Io { message: String },
    /// The driver failed (protocol, unexpected answer).
    #[error("driver error: {message}")]
    Driver { message: String },
    /// TLS was asked for (`tls` beyond `preferred`) and the server offers none.
    #[error(
        "tls: the server does not offer TLS (turn it on in the server, or set tls = \"preferred\" to allow plain text)"
    )]
    TlsNotOffered,
    /// The TLS handshake failed: why, in an operator's words (`probe::tls::reason`).
    #[error("tls: {message}")]
    Tls { message: String },
}

impl DbError {
    /// The stored outcome for this failure; the reason is its `Display`.
    pub fn outcome(&self) -> Outcome {
        match self {
            DbError::Timeout { .. } => Outcome::Timeout,
            DbError::Refused => Outcome::Refused,
            DbError::UnknownHost => Outcome::UnknownHost,
            DbError::AccessDenied { .. } => Outcome::AccessDenied,
            DbError::MissingTable { .. } => Outcome::MissingTable,
            DbError::Server { .. } | DbError::Sql { .. } => Outcome::ServerError,
            DbError::Io { .. } => Outcome::Io,
            DbError::Driver { .. } | DbError::TlsNotOffered | DbError::Tls { .. } => {
                Outcome::Driver
            }
        }
    }
}

/// Reconnection delays: start at `min`, double per failure, capped at `max`, each drawn
/// in [d/2, d) ("equal jitter"), so that the probes that lost a server (or the proxy in
/// front of many) at the same moment do not all retry in step against it.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    jitter: crate::xorshift::XorShift,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        // Each backoff its own sequence: the time and a count of those made before.
        static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Backoff {
            min,
            max,
            next: min,
            jitter: crate::xorshift::XorShift::new(now ^ made.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        }
    }

    /// The delay before the next attempt; doubles the one after.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d.mul_f64(0.5 + 0.5 * self.jitter.unit())
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// One probe's run of failures, logged as an operator reads them: the first failure of
/// a run at warn (so a default `record` says when a server stops answering), the rest at
/// debug, and the first success after it at warn too (so the pair shows at the default
/// level), with how many failed over how long.
#[derive(Debug)]
pub struct FailureRun {
    /// `beat`, `read` or `status`.
    probe: &'static str,
    cluster: String,
    /// `primary` for beats, the replica's name otherwise.
    node: String,
    failures: u64,
    since: Option<std::time::Instant>,
}

impl FailureRun {
    pub fn new(probe: &'static str, cluster: &str, node: &str) -> FailureRun {
        FailureRun {
            probe,
            cluster: cluster.to_string(),
            node: node.to_string(),
            failures: 0,
            since: None,
        }
    }

    /// Counts and logs one failure.
    pub fn failed(&mut self, error: &dyn fmt::Display) {
        let (probe, cluster, node) = (self.probe, &self.cluster, &self.node);
        if self.failures == 0 {
            self.since = Some(std::time::Instant::now());
            tracing::warn!(probe = %probe, cluster = %cluster, node = %node, error = %error, "{probe} failed (repeats at debug level until it recovers)");
        } else {
            tracing::debug!(probe = %probe, cluster = %cluster, node = %node, error = %error, "{probe} failed");
        }
        self.failures += 1;
    }

    /// Ends a run of failures, if there was one.
    pub fn succeeded(&mut self) {
        if self.failures == 0 {
            return;
        }
        let (probe, cluster, node) = (self.probe, &self.cluster, &self.node);
        let down_s = self.since.map_or(0.0, |t| t.elapsed().as_secs_f64());
        tracing::warn!(probe = %probe, cluster = %cluster, node = %node, failures = self.failures, down_s, "{probe} recovered");
        self.failures = 0;
        self.since = None;
    }
}

/// Server error codes that mean "not allowed": bad credentials or a missing privilege.
const ACCESS_DENIED_CODES: [u16; 6] = [1044, 1045, 1142, 1143, 1227, 1698];
/// Server error codes that mean "no such schema or table".
const MISSING_CODES: [u16; 2] = [1049, 1146];

impl From<mysql_async::Error> for DbError {
    fn from(e: mysql_async::Error) -> Self {
        match e {
            mysql_async::Error::Server(s) => server_error(s.code, s.message),
            mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => {
                DbError::TlsNotOffered
            }
            mysql_async::Error::Io(mysql_async::IoError::Tls(t)) => DbError::Tls {
                message: super::tls::reason(&t).unwrap_or_else(|| t.to_string()),
            },
            mysql_async::Error::Io(mysql_async::IoError::Io(io)) => match super::tls::reason(&io) {
                Some(message) => DbError::Tls { message },
                None => io_failure(&io),
            },
            other => DbError::Driver {
                message: other.to_string(),
            },
        }
    }
}

/// An error a MySQL/MariaDB server returned (`code`, `message`), classified.
pub fn server_error(code: u16, message: String) -> DbError {
    if ACCESS_DENIED_CODES.contains(&code) {
        DbError::AccessDenied { message }
    } else if MISSING_CODES.contains(&code) {
        DbError::MissingTable { message }
    } else {
        DbError::Server { code, message }
    }
}

/// A socket's failure, either kind of server: nothing listening, a name that did not
/// resolve, or another I/O error.
pub fn io_failure(io: &std::io::Error) -> DbError {
    match io.kind() {
        std::io::ErrorKind::ConnectionRefused => DbError::Refused,
        _ if io.to_string().contains("failed to lookup address") => DbError::UnknownHost,
        _ => DbError::Io {
            message: io.to_string(),
        },
    }
}

/// Runs one step under a timeout, mapping both failure kinds to [`DbError`].
pub async fn timed<T, E: Into<DbError>>(
    what: &'static str,
    after: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, DbError> {
    match tokio::time::timeout(after, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(DbError::Timeout { what, after }),
    }
}

/// Opens one TCP connection (never the Unix socket, even on loopback: grants are
/// per host, and the recorder must measure what a remote client sees), with TLS as
/// `settings.tls` says: `preferred` connects again in plain text when the server
/// offers no TLS. What it ended as is noted (`probe::tls::seen`).
pub async fn connect(
    addr: &Address,
    settings: &ConnectionConfig,
    password: &Secret,
) -> Result<Conn, DbError> {
    use super::tls::{Security, note};
    let ssl = super::tls::mysql_ssl_opts(&settings.tls);
    let security = match ssl {
        Some(_) => Security::Encrypted {
            mode: settings.tls.mode,
        },
        None => Security::PlainAsConfigured,
    };
    match connect_with(addr, settings, password, ssl).await {
        Err(DbError::TlsNotOffered) if settings.tls.mode == TlsMode::Preferred => {
            let conn = connect_with(addr, settings, password, None).await?;
            note(addr, Security::PlainFallback);
            Ok(conn)
        }
        Ok(conn) => {
            note(addr, security);
            Ok(conn)
        }
        Err(e) => Err(e),
    }
}

/// [`connect`] with TLS options `ssl` (none: plain text).
async fn connect_with(
    addr: &Address,
    settings: &ConnectionConfig,
    password: &Secret,
    ssl: Option<mysql_async::SslOpts>,
) -> Result<Conn, DbError> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(addr.host.clone())
        .tcp_port(addr.port)
        .user(Some(settings.user.clone()))
        .pass(Some(password.expose().to_string()))
        .prefer_socket(false)
        .tcp_nodelay(true)
        .ssl_opts(ssl);
    // Boxed: the handshake's state is several KB, and a task that awaited it inline
    // would keep that much for its whole life (a task per replica and per poller).
    timed(
        "connect",
        settings.connect_timeout,
        Box::pin(Conn::new(opts)),
    )
    .await
}

/// What a server says about itself: enough to decide whether lagtrace may write to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    pub server_id: u32,
    pub read_only: bool,
    pub version: String,
    /// Primaries this server replicates from (`Master_Host:Master_Port`), one per channel.
    pub sources: Vec<String>,
}

impl ServerFacts {
    pub fn is_mariadb(&self) -> bool {
        self.version.contains("MariaDB")
    }
}

/// `SHOW ALL SLAVES STATUS` on MariaDB (every channel), `SHOW REPLICA STATUS` on MySQL 8.
pub fn replication_status_sql(version: &str) -> &'static str {
    if version.contains("MariaDB") {
        "SHOW ALL SLAVES STATUS"
    } else {
        "SHOW REPLICA STATUS"
    }
}

/// Reads server_id, read_only, version and the replication sources of a server.
pub async fn server_facts(conn: &mut Conn, timeout: Duration) -> Result<ServerFacts, DbError> {
    let row: Option<(u32, u8, String)> = timed(
        "query",
        timeout,
        conn.query_first("SELECT @@server_id, @@read_only, @@version"),
    )
    .await?;
    let Some((server_id, read_only, version)) = row else {
        return Err(DbError::Driver {
            message: "SELECT @@server_id returned no row".into(),
        });
    };
    let rows: Vec<mysql_async::Row> = timed(
        "query",
        timeout,
        conn.query(replication_status_sql(&version)),
    )
    .await?;
    let sources = rows
        .iter()
        .map(|r| {
            let host = column_string(r, &["Master_Host", "Source_Host"]).unwrap_or_default();
            let port = column_string(r, &["Master_Port", "Source_Port"]).unwrap_or_default();
            format!("{host}:{port}")
        })
        .collect();
    Ok(ServerFacts {
        server_id,
        read_only: read_only != 0,
        version,
        sources,
    })
}

/// The first of `names` present in a row, as text (NULL and absent are `None`).
pub fn column_string(row: &mysql_async::Row, names: &[&str]) -> Option<String> {
    let columns = row.columns_ref();
    for name in names {
        if let Some(i) = columns.iter().position(|c| c.name_str() == *name) {
            return match row.as_ref(i)? {
                mysql_async::Value::NULL => None,
                mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                v => Some(v.as_sql(true)),
            };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let got: Vec<_> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        for (d, cap) in got.iter().zip([100, 200, 400, 500, 500]) {
            assert!((cap / 2..cap).contains(d), "{got:?}");
        }
        b.reset();
        assert!((50..100).contains(&b.next_delay().as_millis()));
        // Two backoffs made at once do not retry in step.
        let mut a = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let (a, b): (Vec<_>, Vec<_>) = (0..8).map(|_| (a.next_delay(), b.next_delay())).unzip();
        assert_ne!(a, b);
    }

    #[test]
    fn status_statement_by_flavour() {
        assert_eq!(
            replication_status_sql("10.11.19-MariaDB-0+deb12u1"),
            "SHOW ALL SLAVES STATUS"
        );
        assert_eq!(replication_status_sql("8.0.36"), "SHOW REPLICA STATUS");
    }

    #[test]
    fn server_errors_are_classified() {
        let server = |code: u16| {
            DbError::from(mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: "m".into(),
                state: "HY000".into(),
            }))
        };
        assert!(matches!(server(1045), DbError::AccessDenied { .. }));
        assert!(matches!(server(1142), DbError::AccessDenied { .. }));
        assert!(matches!(server(1146), DbError::MissingTable { .. }));
        assert!(matches!(server(1205), DbError::Server { code: 1205, .. }));
        let refused = DbError::from(mysql_async::Error::Io(mysql_async::IoError::Io(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        )));
        assert_eq!(refused, DbError::Refused);
        assert_eq!(refused.to_string(), "connection refused");
    }

    #[tokio::test]
    async fn timeout_is_reported_with_its_duration() {
        let r: Result<(), DbError> = timed("query", Duration::from_millis(5), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<(), DbError>(())
        })
        .await;
        assert_eq!(r.unwrap_err().to_string(), "query timed out after 5ms");
    }
}
