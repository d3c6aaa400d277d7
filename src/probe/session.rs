//! One probe's open connection, MySQL's or PostgreSQL's, with the one statement it
//! runs prepared: the beat writer's guarded UPDATE or the reader's read of the
//! heartbeat row (a MySQL/MariaDB reader's connection of its own sends the read as
//! text instead, [`Session::MysqlOwn`]). The probes' loops hold a `Session` and never
//! ask which kind it is.

use std::io::Write;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Statement};

use super::conn::{self, DbError, timed};
use super::stamped::{OpenError, Stamped};
use super::{pg, schema};
use crate::config::{Address, ConnectionConfig, Kind, Secret};

/// An open connection with its statement prepared.
pub enum Session {
    Mysql(Conn, Statement),
    /// A reader's (the poll reader's, the cross-check's) MySQL/MariaDB connection of
    /// its own ([`Stamped`]): a text query per read, its answer parsed for the one number it holds, with none of
    /// the client library's per-statement work (column descriptions built, buffers
    /// moved through its codec). Reads only.
    MysqlOwn(Box<OwnReader>),
    Postgres(tokio_postgres::Client, tokio_postgres::Statement),
}

/// A [`Session::MysqlOwn`]: the connection, the database read, and the buffer each
/// read's command is built in.
pub struct OwnReader {
    conn: Stamped,
    database: String,
    body: Vec<u8>,
}

impl Session {
    /// A connection to `target` for beat writes, the row `row` created first when
    /// `ensure_row` (a row `init` never made).
    pub async fn writer(
        kind: Kind,
        target: &Address,
        settings: &ConnectionConfig,
        password: &Secret,
        row: &str,
        ensure_row: bool,
    ) -> Result<Session, DbError> {
        let (db, timeout) = (&settings.database, settings.query_timeout);
        match kind {
            Kind::Mysql => {
                let mut c = conn::connect(target, settings, password).await?;
                if ensure_row {
                    schema::ensure_row(&mut c, db, row, timeout).await?;
                }
                let stmt =
                    timed("heartbeat write prepare", timeout, c.prep(update_sql(db))).await?;
                Ok(Session::Mysql(c, stmt))
            }
            Kind::Postgres => {
                let c = pg::connect(target, settings, password).await?;
                if ensure_row {
                    timed(
                        "query",
                        timeout,
                        c.execute(&pg::ensure_row_sql(db), &[&row]),
                    )
                    .await?;
                }
                let stmt = timed(
                    "heartbeat write prepare",
                    timeout,
                    c.prepare(&pg::update_sql(db)),
                )
                .await?;
                Ok(Session::Postgres(c, stmt))
            }
        }
    }

    /// A connection to `address` for reads of the heartbeat row, each in a snapshot of
    /// its own (MySQL: autocommit READ COMMITTED; PostgreSQL's statements are so).
    pub async fn reader(
        kind: Kind,
        address: &Address,
        settings: &ConnectionConfig,
        password: &Secret,
    ) -> Result<Session, DbError> {
        let (db, timeout) = (&settings.database, settings.query_timeout);
        match kind {
            Kind::Mysql => {
                let mut c = conn::connect(address, settings, password).await?;
                for setup in READER_SETUP {
                    timed("session setup", timeout, c.query_drop(setup)).await?;
                }
                let sql = format!("SELECT seq FROM `{db}`.heartbeat WHERE cluster = ?");
                let stmt = timed("heartbeat read prepare", timeout, c.prep(sql)).await?;
                Ok(Session::Mysql(c, stmt))
            }
            Kind::Postgres => {
                let c = pg::connect(address, settings, password).await?;
                let stmt = timed(
                    "heartbeat read prepare",
                    timeout,
                    c.prepare(&pg::read_sql(db)),
                )
                .await?;
                Ok(Session::Postgres(c, stmt))
            }
        }
    }

    /// Writes beat `seq` (sent at `t_send_us`) into row `row` with the prepared guarded
    /// UPDATE; when no row changed, reads the row to tell a missing row from a newer seq.
    pub async fn write(
        &mut self,
        database: &str,
        row: &str,
        seq: u64,
        t_send_us: i64,
        timeout: Duration,
    ) -> Result<RowWrite, DbError> {
        let changed = match self {
            Session::MysqlOwn(_) => return Err(OwnReader::only_reads()),
            Session::Mysql(c, stmt) => {
                timed(
                    "heartbeat write",
                    timeout,
                    c.exec_drop(&*stmt, (seq, t_send_us, row, seq)),
                )
                .await?;
                c.affected_rows()
            }
            Session::Postgres(c, stmt) => {
                let seq_i = i64::try_from(seq).map_err(|_| DbError::Driver {
                    message: format!("beat number {seq} does not fit PostgreSQL's BIGINT"),
                })?;
                timed(
                    "heartbeat write",
                    timeout,
                    c.execute(&*stmt, &[&seq_i, &t_send_us, &row]),
                )
                .await?
            }
        };
        if changed > 0 {
            return Ok(RowWrite::Written);
        }
        Ok(match self.visible_seq(database, row, timeout).await? {
            Some(row_seq) => RowWrite::Stale { row_seq },
            None => RowWrite::NoRow,
        })
    }

    /// The row's beat number as this server shows it, through the prepared read (a
    /// reader's session) or a plain one (a writer's): `None` while the row is missing.
    pub async fn visible_seq(
        &mut self,
        database: &str,
        row: &str,
        timeout: Duration,
    ) -> Result<Option<u64>, DbError> {
        match self {
            Session::MysqlOwn(_) => match self.read(row, timeout).await {
                Err(DbError::MissingTable { .. }) => Ok(None),
                other => other,
            },
            Session::Mysql(c, _) => schema::visible_seq(c, database, row, timeout).await,
            Session::Postgres(c, _) => pg::visible_seq(c, database, row, timeout).await,
        }
    }

    /// A reader's connection for reads only (the poll reader's, the cross-check's):
    /// MySQL/MariaDB's of its own ([`Session::MysqlOwn`])
    /// where it can be had (a `mysql_native_password` user, a row name of the
    /// characters a configured one has), else [`Session::reader`]'s.
    pub async fn own_reader(
        kind: Kind,
        address: &Address,
        settings: &ConnectionConfig,
        password: &Secret,
        clock: crate::clock::Clock,
    ) -> Result<Session, DbError> {
        if kind != Kind::Mysql {
            return Session::reader(kind, address, settings, password).await;
        }
        let timeout = settings.query_timeout;
        let mut conn = match Stamped::connect(address, settings, password, clock).await {
            Ok(c) => c,
            Err(OpenError::Unsupported(_)) => {
                return Session::reader(kind, address, settings, password).await;
            }
            Err(OpenError::Failed(e)) => return Err(e),
        };
        for setup in READER_SETUP {
            timed("session setup", timeout, conn.query(setup)).await?;
        }
        Ok(Session::MysqlOwn(Box::new(OwnReader {
            conn,
            database: settings.database.clone(),
            body: Vec::new(),
        })))
    }

    /// One read of row `row` with the prepared read statement.
    pub async fn read(&mut self, row: &str, timeout: Duration) -> Result<Option<u64>, DbError> {
        match self {
            Session::MysqlOwn(own) => {
                if !plain_name(row) {
                    return Err(DbError::Driver {
                        message: format!("row name {row:?} cannot be read as text"),
                    });
                }
                let OwnReader {
                    conn,
                    database,
                    body,
                } = &mut **own;
                body.clear();
                body.push(0x03);
                write!(
                    body,
                    "SELECT seq FROM `{database}`.heartbeat WHERE cluster = '{row}'"
                )
                .expect("writing to a Vec");
                timed("heartbeat read", timeout, conn.query_u64(body)).await
            }
            Session::Mysql(c, stmt) => {
                timed(
                    "heartbeat read",
                    timeout,
                    c.exec_first::<u64, _, _>(&*stmt, (row,)),
                )
                .await
            }
            Session::Postgres(c, stmt) => {
                let r = timed("heartbeat read", timeout, c.query_opt(&*stmt, &[&row])).await?;
                Ok(r.map(|r| r.get::<_, i64>(0).max(0) as u64))
            }
        }
    }

    /// The server's replication channels, as a status poll reads them (a
    /// PostgreSQL standby's WAL receiver is its one channel; see `pg::status`).
    pub async fn channels(
        &mut self,
        timeout: Duration,
    ) -> Result<Vec<crate::samples::ChannelStatus>, DbError> {
        match self {
            Session::MysqlOwn(_) => Err(OwnReader::only_reads()),
            Session::Mysql(c, _) => {
                let sql = super::status::status_sql(c, timeout).await?;
                super::status::channels(c, sql, timeout).await
            }
            Session::Postgres(c, _) => Ok(pg::status(c, timeout).await?.channels),
        }
    }

    /// Closes the connection politely, waiting at most 200 ms.
    pub async fn close(self) {
        if let Session::Mysql(c, _) = self {
            let _ = tokio::time::timeout(Duration::from_millis(200), c.disconnect()).await;
        }
    }
}

impl OwnReader {
    /// What asking a poll reader's own connection for anything but a read gives (no
    /// caller does: writers, status polls and `check` open the library's).
    fn only_reads() -> DbError {
        DbError::Driver {
            message: "a poll reader's connection only reads the heartbeat row".into(),
        }
    }
}

/// What a reader's connection runs once: every read sees the newest commit.
const READER_SETUP: [&str; 2] = [
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SESSION autocommit = 1",
];

/// Whether `name` can go into a query as a quoted literal as it is: the characters of
/// a configured name and of the rows made from one (`#`, `~`), nothing that quotes or
/// escapes.
fn plain_name(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '#' | '~'))
}

/// The guarded heartbeat UPDATE: parameters `(seq, t_send_us, row, seq)`.
pub fn update_sql(database: &str) -> String {
    format!(
        "UPDATE `{database}`.heartbeat SET seq = ?, t_send_us = ?, server_id = @@server_id \
         WHERE cluster = ? AND seq < ?"
    )
}

/// What one guarded heartbeat UPDATE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowWrite {
    /// The row now holds the beat.
    Written,
    /// The row already held this seq or a newer one: nothing changed.
    Stale { row_seq: u64 },
    /// The row does not exist.
    NoRow,
}
