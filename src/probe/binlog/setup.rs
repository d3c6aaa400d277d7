//! Whether a replica's binary log can be followed, and from where: its settings
//! (MariaDB, `log_bin`, `log_slave_updates`, row format, full row images), the user's
//! privilege, and its current positions. Used by the stream's setup and by `init`.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::probe::conn::{DbError, timed};

/// The server's current binary log file and position (`SHOW MASTER STATUS`), or `None`
/// when the user lacks `BINLOG MONITOR` (the stream then starts by GTID).
pub async fn binlog_file_position(
    conn: &mut mysql_async::Conn,
    timeout: Duration,
) -> Result<Option<(String, u64)>, DbError> {
    let row: Result<Option<mysql_async::Row>, _> = timed(
        "binlog setup",
        timeout,
        conn.query_first("SHOW MASTER STATUS"),
    )
    .await;
    match row {
        Ok(Some(row)) => Ok(row.get::<String, _>(0).zip(row.get::<u64, _>(1))),
        Ok(None) => Ok(None),
        Err(DbError::AccessDenied { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why `conn`'s server cannot be followed through its binary log by this user, if it
/// cannot (what `init` reports for `probe = "auto"` / `"binlog"`): the server's
/// settings, then the user's `REPLICATION SLAVE` privilege.
pub async fn readiness(
    conn: &mut mysql_async::Conn,
    timeout: Duration,
) -> Result<Option<String>, DbError> {
    if let Streamable::No { why } = stream_settings(conn, timeout).await? {
        return Ok(Some(why));
    }
    // The privileges of the current user (information_schema shows no one else's).
    let granted: Option<String> = timed(
        "query",
        timeout,
        conn.query_first(
            "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES \
             WHERE PRIVILEGE_TYPE = 'REPLICATION SLAVE' LIMIT 1",
        ),
    )
    .await?;
    Ok(granted
        .is_none()
        .then(|| "the user may not stream the binary log (grant REPLICATION SLAVE)".to_string()))
}

/// Whether a server's settings allow following its binary log.
pub(super) enum Streamable {
    /// They do; the stream starts from the server's current GTID position.
    Yes { gtid_position: String },
    /// They do not, and why (in words an operator can act on).
    No { why: String },
}

/// The server's current GTID position, or why its settings rule a stream out (for
/// both the stream's setup and `init`'s [`readiness`]).
pub(super) async fn stream_settings(
    conn: &mut mysql_async::Conn,
    timeout: Duration,
) -> Result<Streamable, DbError> {
    type Settings = (String, u8, u8, String, String, String);
    let settings: Option<Settings> = match timed(
        "binlog setup",
        timeout,
        conn.query_first(
            "SELECT @@version, @@log_bin, @@log_slave_updates, @@binlog_format, \
             @@binlog_row_image, @@gtid_binlog_pos",
        ),
    )
    .await
    {
        Ok(settings) => settings,
        // MySQL has no @@gtid_binlog_pos.
        Err(DbError::Server { code: 1193, .. }) => {
            return Ok(Streamable::No {
                why: NOT_MARIADB.into(),
            });
        }
        Err(e) => return Err(e),
    };
    let Some((version, log_bin, log_slave_updates, format, image, position)) = settings else {
        return Err(DbError::Driver {
            message: "SELECT @@log_bin returned no row".into(),
        });
    };
    Ok(
        match unsupported(&version, log_bin, log_slave_updates, &format, &image) {
            Some(why) => Streamable::No { why },
            None => Streamable::Yes {
                gtid_position: position,
            },
        },
    )
}

const NOT_MARIADB: &str = "not MariaDB: the binary log probe is built for MariaDB so far";

/// Why a replica with these settings cannot be followed through its binary log, if
/// it cannot.
pub(super) fn unsupported(
    version: &str,
    log_bin: u8,
    log_slave_updates: u8,
    format: &str,
    image: &str,
) -> Option<String> {
    if !version.contains("MariaDB") {
        Some(NOT_MARIADB.into())
    } else if log_bin == 0 {
        Some("its binary log is off (log_bin)".into())
    } else if log_slave_updates == 0 {
        Some("log_slave_updates is off: replicated changes are not in its binary log".into())
    } else if !format.eq_ignore_ascii_case("ROW") {
        Some(format!(
            "binlog_format is {format}: the probe reads row events (ROW)"
        ))
    } else if image.eq_ignore_ascii_case("MINIMAL") {
        Some("binlog_row_image is MINIMAL: the row events lack the heartbeat's cluster".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_row_based_mariadb_binary_log_with_replicated_changes_is_followed() {
        let ok = "10.11.6-MariaDB-0+deb12u1-log";
        assert_eq!(unsupported(ok, 1, 1, "ROW", "FULL"), None);
        assert_eq!(unsupported(ok, 1, 1, "row", "NOBLOB"), None);
        for (why, got) in [
            ("not MariaDB", unsupported("8.0.36", 1, 1, "ROW", "FULL")),
            ("log_bin", unsupported(ok, 0, 1, "ROW", "FULL")),
            ("log_slave_updates", unsupported(ok, 1, 0, "ROW", "FULL")),
            ("MIXED", unsupported(ok, 1, 1, "MIXED", "FULL")),
            ("MINIMAL", unsupported(ok, 1, 1, "ROW", "MINIMAL")),
        ] {
            assert!(
                got.as_deref().is_some_and(|g| g.contains(why)),
                "{why}: {got:?}"
            );
        }
    }
}
