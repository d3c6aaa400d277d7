//! The heartbeat schema on the servers: embedded migrations, applying them on a primary,
//! and checking that a replica shows the result.
//!
//! Migrations are the files in `migrations/mysql/`, compiled into the binary, applied in
//! order and recorded in `<database>.schema_version`. Applying is idempotent: statements
//! use `IF NOT EXISTS` and a version is applied only once.

use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::conn::{DbError, ServerFacts, timed};

/// One schema change, identified by its version.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    /// Statements separated by `;` at the end of a line; `--` comment lines allowed.
    pub sql: &'static str,
}

/// Every migration, in version order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "001_heartbeat",
    sql: include_str!("../../migrations/mysql/001_heartbeat.sql"),
}];

/// The schema version this binary writes and reads.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Splits a migration file into statements, dropping comment-only lines.
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("--") {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            let stmt = current.trim().trim_end_matches(';').trim().to_string();
            out.push(stmt);
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// Statements that create the schema and its version table; `database` is validated
/// by the config as a plain identifier, so quoting it with backticks is safe.
pub fn bootstrap_statements(database: &str) -> Vec<String> {
    vec![
        format!("CREATE DATABASE IF NOT EXISTS `{database}`"),
        format!(
            "CREATE TABLE IF NOT EXISTS `{database}`.schema_version (\n  \
             version INT UNSIGNED NOT NULL PRIMARY KEY,\n  \
             name VARCHAR(128) NOT NULL,\n  \
             applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\n) ENGINE=InnoDB"
        ),
    ]
}

/// The statement that ensures the cluster's heartbeat row exists without touching a
/// row a recorder already writes. `seq = 0` means "no beat yet".
pub const ENSURE_ROW_SQL: &str = "INSERT IGNORE INTO heartbeat (cluster, seq, t_send_us, server_id) \
                                  VALUES (?, 0, 0, @@server_id)";

/// Everything `init` would run on a primary whose schema is at `current` (0 = none),
/// in order, for `--dry-run` and for applying.
pub fn plan(database: &str, current: u32) -> Vec<String> {
    let mut out = bootstrap_statements(database);
    out.push(format!("USE `{database}`"));
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        out.extend(statements(m.sql));
        out.push(format!(
            "INSERT IGNORE INTO schema_version (version, name) VALUES ({}, '{}')",
            m.version, m.name
        ));
    }
    out
}

/// Why lagtrace must not write heartbeats to this server, if it must not.
pub fn write_refusal(facts: &ServerFacts) -> Option<String> {
    if !facts.sources.is_empty() {
        return Some(format!(
            "it is a replica of {} (server_id {}); lagtrace writes heartbeats only to a primary",
            facts.sources.join(", "),
            facts.server_id
        ));
    }
    if facts.read_only {
        return Some(format!(
            "it has read_only=ON (server_id {}); lagtrace writes heartbeats only to a writable primary",
            facts.server_id
        ));
    }
    None
}

/// What applying the schema did on a primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Version found before (0 = no schema).
    pub from: u32,
    /// Version after.
    pub to: u32,
}

/// The schema version recorded on a server, 0 when the schema or table is missing.
pub async fn current_version(
    conn: &mut Conn,
    database: &str,
    timeout: Duration,
) -> Result<u32, DbError> {
    let sql = format!("SELECT COALESCE(MAX(version), 0) FROM `{database}`.schema_version");
    match timed("query", timeout, conn.query_first::<u32, _>(sql)).await {
        Ok(v) => Ok(v.unwrap_or(0)),
        Err(DbError::MissingTable { .. }) => Ok(0),
        Err(e) => Err(e),
    }
}

/// The heartbeat row `lagtrace check` writes for `cluster`: its own, so that it never
/// races a recorder on the cluster's row. `#` cannot appear in a configured name.
pub fn check_row(cluster: &str) -> String {
    format!("{cluster}#check")
}

/// The heartbeat row a recorder's beat writer moves for `cluster`: the cluster's own
/// (the one `init` creates) without a recorder id, else `<cluster>#<id>`, which the
/// writer creates, so that two recorders never race on one row. `#` cannot appear in a
/// configured name; ids are never `check` or `split`.
pub fn recorder_row(cluster: &str, recorder: Option<&str>) -> String {
    match recorder {
        Some(id) => format!("{cluster}#{id}"),
        None => cluster.to_string(),
    }
}

/// The heartbeat row of the part of a split cluster that follows a second primary (see
/// `recorder::probes`), for the recorder with id `recorder`. One name serves every
/// part: each part's primary and its followers see only that part's writes. `#` and `~`
/// cannot appear in a configured name.
pub fn split_row(cluster: &str, recorder: Option<&str>) -> String {
    match recorder {
        Some(id) => format!("{cluster}~{id}"),
        None => format!("{cluster}#split"),
    }
}

/// Ensures heartbeat row `row` exists, naming the database (the connection need not
/// have selected it): what a split part's writer runs first on the second primary,
/// which `init` never gave that row.
pub async fn ensure_row(
    conn: &mut Conn,
    database: &str,
    row: &str,
    timeout: Duration,
) -> Result<(), DbError> {
    let sql = ENSURE_ROW_SQL.replacen("INTO heartbeat", &format!("INTO `{database}`.heartbeat"), 1);
    timed("query", timeout, conn.exec_drop(sql, (row,))).await
}

/// Applies missing migrations and ensures the cluster's heartbeat row and its `check`
/// row ([`check_row`]), on a primary.
pub async fn apply(
    conn: &mut Conn,
    database: &str,
    cluster: &str,
    timeout: Duration,
) -> Result<Applied, DbError> {
    let from = current_version(conn, database, timeout).await?;
    if from > latest_version() {
        return Err(DbError::Driver {
            message: format!(
                "schema version {from} is newer than this lagtrace knows ({}); upgrade lagtrace",
                latest_version()
            ),
        });
    }
    for stmt in plan(database, from) {
        timed("query", timeout, conn.query_drop(stmt)).await?;
    }
    for row in [cluster.to_string(), check_row(cluster)] {
        timed("query", timeout, conn.exec_drop(ENSURE_ROW_SQL, (row,))).await?;
    }
    Ok(Applied {
        from,
        to: latest_version(),
    })
}

/// The cluster's heartbeat `seq` as this server shows it: `None` while the table or the
/// row has not arrived yet (replication may still be carrying it).
pub async fn visible_seq(
    conn: &mut Conn,
    database: &str,
    cluster: &str,
    timeout: Duration,
) -> Result<Option<u64>, DbError> {
    let sql = format!("SELECT seq FROM `{database}`.heartbeat WHERE cluster = ?");
    match timed(
        "query",
        timeout,
        conn.exec_first::<u64, _, _>(sql, (cluster,)),
    )
    .await
    {
        Ok(v) => Ok(v),
        Err(DbError::MissingTable { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_files_split_into_statements() {
        let s = statements(MIGRATIONS[0].sql);
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(s[0].starts_with("CREATE TABLE IF NOT EXISTS heartbeat"));
        assert!(!s[0].ends_with(';'));
        let s = statements("-- c\nSELECT 1;\n\nSELECT\n 2;\nSELECT 3");
        assert_eq!(s, ["SELECT 1", "SELECT\n 2", "SELECT 3"]);
    }

    #[test]
    fn versions_are_increasing() {
        for w in MIGRATIONS.windows(2) {
            assert!(w[0].version < w[1].version);
        }
        assert_eq!(latest_version(), 1);
    }

    #[test]
    fn plan_skips_applied_migrations() {
        let full = plan("lagtrace", 0);
        assert!(
            full.iter()
                .any(|s| s.contains("CREATE TABLE IF NOT EXISTS heartbeat"))
        );
        assert!(
            full.iter()
                .any(|s| s.contains("schema_version (version, name) VALUES (1,"))
        );
        let none = plan("lagtrace", 1);
        assert!(!none.iter().any(|s| s.contains("heartbeat")));
        assert_eq!(none.len(), 3);
    }

    fn facts(read_only: bool, sources: &[&str]) -> ServerFacts {
        ServerFacts {
            server_id: 7,
            read_only,
            version: "10.11.6-MariaDB".into(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn refuses_replicas_and_read_only_servers() {
        assert_eq!(write_refusal(&facts(false, &[])), None);
        let r = write_refusal(&facts(true, &[])).unwrap();
        assert!(r.contains("read_only=ON"), "{r}");
        let r = write_refusal(&facts(true, &["127.0.0.1:13306"])).unwrap();
        assert!(r.contains("replica of 127.0.0.1:13306"), "{r}");
        // A writable replica (read_only=OFF) is still a replica.
        assert!(write_refusal(&facts(false, &["db1:3306"])).is_some());
    }
}
