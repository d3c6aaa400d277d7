//! `lagtrace init`: create the heartbeat schema on every primary, then check that each
//! replica shows it and that the configured user can read it. One line per host. A
//! PostgreSQL cluster (`kind = "postgres"`) gets the same, through `probe::pg`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::CmdError;
use crate::config::{Address, Config, ConnectionConfig, Kind, ProbeMode, Secret};
use crate::probe::conn::{self, DbError};
use crate::probe::{binlog, pg, schema};

/// `lagtrace init`'s command line.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    lagtrace init -c lagtrace.toml            # create or upgrade, then check replicas\n  \
    lagtrace init -c lagtrace.toml --dry-run  # print the SQL, touch nothing\n\n\
    Exit status: 0 all hosts OK, 1 a host failed, 2 bad config or arguments.")]
pub struct Args {
    /// The config file
    #[arg(short, long, value_name = "FILE", default_value = "lagtrace.toml")]
    pub config: PathBuf,
    /// Print the SQL that would run on each primary instead of running it
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for the heartbeat row to reach each replica
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::config::parse_duration)]
    pub wait: Duration,
}

/// Poll period while waiting for a replica to show the heartbeat row.
const VISIBILITY_POLL: Duration = Duration::from_millis(100);

pub fn run(opts: &Args) -> Result<(), CmdError> {
    if opts.dry_run {
        let config = crate::config::load(&opts.config)?;
        print_dry_run(&config);
        return Ok(());
    }
    let (config, password) = super::load_config(&opts.config, &Default::default())?;
    let runtime = super::runtime()?;
    let failures = runtime.block_on(init_all(&config, &password, opts.wait));
    let hosts: usize = config.clusters.iter().map(|c| 1 + c.replicas.len()).sum();
    if failures > 0 {
        return Err(CmdError::Runtime(format!(
            "init failed on {failures} of {hosts} hosts (see the lines above)"
        )));
    }
    Ok(())
}

fn print_dry_run(config: &Config) {
    let database = &config.connection.database;
    for cluster in &config.clusters {
        println!(
            "-- on primary {} ({}), as {}; statements run only if the schema is older:",
            cluster.name, cluster.primary, config.connection.user
        );
        let (plan, ensure) = match cluster.kind {
            Kind::Mysql => (
                schema::plan(database, 0),
                schema::ENSURE_ROW_SQL.to_string(),
            ),
            Kind::Postgres => (
                pg::plan(database, 0),
                pg::ensure_row_sql(database).replacen("$1", "?", 1),
            ),
        };
        for stmt in plan {
            println!("{stmt};");
        }
        for row in [cluster.name.clone(), schema::check_row(&cluster.name)] {
            println!("{};", ensure.replacen('?', &format!("'{row}'"), 1));
        }
        println!();
    }
}

/// Initializes every cluster, printing one line per host; returns the number of failures.
async fn init_all(config: &Config, password: &Secret, wait: Duration) -> usize {
    let mut failures = 0;
    for cluster in &config.clusters {
        let primary = match cluster.kind {
            Kind::Mysql => {
                init_primary(
                    &cluster.primary,
                    &cluster.name,
                    &config.connection,
                    password,
                )
                .await
            }
            Kind::Postgres => {
                init_pg_primary(
                    &cluster.primary,
                    &cluster.name,
                    &config.connection,
                    password,
                )
                .await
            }
        };
        let primary_ok = primary.is_ok();
        report("primary", &cluster.name, &cluster.primary, &primary);
        failures += usize::from(!primary_ok);

        // Replicas are checked side by side so one slow host does not delay the others.
        // Without a fresh schema on the primary there is nothing to wait for.
        let wait = if primary_ok { wait } else { Duration::ZERO };
        let mut checks = JoinSet::new();
        for (i, replica) in cluster.replicas.iter().enumerate() {
            let (addr, conn_cfg, pw, name, kind, probe) = (
                replica.address.clone(),
                config.connection.clone(),
                password.clone(),
                cluster.name.clone(),
                cluster.kind,
                cluster.probe,
            );
            checks.spawn(async move {
                let result = match kind {
                    Kind::Mysql => check_replica(&addr, (&name, probe), &conn_cfg, &pw, wait).await,
                    Kind::Postgres => check_pg_standby(&addr, &name, &conn_cfg, &pw, wait).await,
                };
                (i, result)
            });
        }
        let mut results: Vec<_> = checks.join_all().await;
        results.sort_by_key(|(i, _)| *i);
        for (i, result) in results {
            let replica = &cluster.replicas[i];
            let label = format!("{}/{}", cluster.name, replica.name);
            report("replica", &label, &replica.address, &result);
            failures += usize::from(result.is_err());
        }
    }
    failures
}

/// One host's line; a host that was reached says what its connection was (TLS or
/// plain text), so that `preferred` falling back to plain text shows.
fn report(role: &str, label: &str, addr: &Address, result: &Result<String, HostError>) {
    let over = crate::samples::security::seen(&addr.to_string())
        .map(|s| format!("; connection: {s}"))
        .unwrap_or_default();
    match result {
        Ok(msg) => println!("{role} {label} ({addr}): OK, {msg}{over}"),
        Err(msg) => println!("{role} {label} ({addr}): FAILED, {msg}{over}"),
    }
}

/// What applying the schema did, from version `from` to `to`, in words.
fn schema_change(from: u32, to: u32) -> String {
    if from == to {
        format!("schema already at version {to}")
    } else if from == 0 {
        format!("schema created at version {to}")
    } else {
        format!("schema upgraded from version {from} to {to}")
    }
}

/// Why `init` failed on one host, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
enum HostError {
    #[error("access denied for user {user}: {message}")]
    AccessDenied { user: String, message: String },
    #[error("cannot connect: {0}")]
    Connect(DbError),
    #[error(transparent)]
    Db(DbError),
    /// A failure, and what the user needs to get past it.
    #[error("{why}; {need}")]
    Needs { why: Box<HostError>, need: String },
    #[error("refusing to write: {0}")]
    Refused(String),
    #[error("not a replica: {sql} shows no replication channel (server_id {server_id})")]
    NotAReplica { sql: String, server_id: u32 },
    #[error("not a standby: pg_is_in_recovery() is false")]
    NotAStandby,
    #[error("probe = \"binlog\" but {0}")]
    NoStream(String),
    #[error(
        "the heartbeat row for cluster {cluster} is not visible after {}; {hint}",
        humantime::format_duration(*.wait)
    )]
    NotVisible {
        cluster: String,
        wait: Duration,
        hint: String,
    },
}

impl HostError {
    /// A server's error as `user` met it.
    fn db(e: DbError, user: &str) -> HostError {
        match e {
            DbError::AccessDenied { message } => HostError::AccessDenied {
                user: user.to_string(),
                message,
            },
            DbError::Timeout { .. } | DbError::Refused | DbError::UnknownHost => {
                HostError::Connect(e)
            }
            other => HostError::Db(other),
        }
    }

    /// A server's error, and when it is access denied, what `user` needs.
    fn db_needing(e: DbError, user: &str, need: impl FnOnce() -> String) -> HostError {
        let denied = matches!(e, DbError::AccessDenied { .. });
        let why = HostError::db(e, user);
        if denied {
            HostError::Needs {
                why: Box::new(why),
                need: need(),
            }
        } else {
            why
        }
    }
}

async fn init_primary(
    addr: &Address,
    cluster: &str,
    settings: &ConnectionConfig,
    password: &Secret,
) -> Result<String, HostError> {
    let user = &settings.user;
    let timeout = settings.query_timeout;
    let db = |e| HostError::db(e, user);
    let mut c = conn::connect(addr, settings, password).await.map_err(db)?;
    let facts = conn::server_facts(&mut c, timeout).await.map_err(|e| {
        HostError::db_needing(e, user, || {
            format!("user {user} needs SLAVE MONITOR (MariaDB) or REPLICATION CLIENT (MySQL) to read replication status")
        })
    })?;
    if let Some(reason) = schema::write_refusal(&facts) {
        return Err(HostError::Refused(reason.to_string()));
    }
    let applied = schema::apply(&mut c, &settings.database, cluster, timeout)
        .await
        .map_err(db)?;
    let _ = c.disconnect().await;
    let what = schema_change(applied.from, applied.to);
    Ok(format!(
        "{what}, heartbeat rows for cluster {cluster} and its check ready (server_id {})",
        facts.server_id
    ))
}

async fn check_replica(
    addr: &Address,
    (cluster, probe): (&str, ProbeMode),
    settings: &ConnectionConfig,
    password: &Secret,
    wait: Duration,
) -> Result<String, HostError> {
    let user = &settings.user;
    let timeout = settings.query_timeout;
    let db = |e| HostError::db(e, user);
    let mut c = conn::connect(addr, settings, password).await.map_err(db)?;
    let facts = conn::server_facts(&mut c, timeout).await.map_err(|e| {
        HostError::db_needing(e, user, || {
            format!("user {user} needs SLAVE MONITOR (MariaDB) or REPLICATION CLIENT (MySQL)")
        })
    })?;
    if facts.sources.is_empty() {
        return Err(HostError::NotAReplica {
            sql: conn::replication_status_sql(&facts.version).to_string(),
            server_id: facts.server_id,
        });
    }
    let deadline = Instant::now() + wait;
    loop {
        match schema::visible_seq(&mut c, &settings.database, cluster, timeout).await {
            Ok(Some(seq)) => {
                let stream = match probe {
                    ProbeMode::Poll => String::new(),
                    _ => match binlog::readiness(&mut c, timeout).await {
                        Ok(None) => match binlog::binlog_file_position(&mut c, timeout).await {
                            Ok(Some(_)) => ", binary log stream ready".to_string(),
                            Ok(None) => ", binary log stream ready, from a GTID (without BINLOG MONITOR the replica scans its current binary log file at each start)".to_string(),
                            Err(e) => return Err(db(e)),
                        },
                        Ok(Some(why)) if probe == ProbeMode::Auto => {
                            format!(", polled (no binary log stream: {why})")
                        }
                        Ok(Some(why)) => return Err(HostError::NoStream(why)),
                        Err(e) => return Err(db(e)),
                    },
                };
                let _ = c.disconnect().await;
                return Ok(format!(
                    "{user} reads {}.heartbeat (cluster {cluster}, seq {seq}), replicating from {}{stream}",
                    settings.database,
                    facts.sources.join(", ")
                ));
            }
            Ok(None) if Instant::now() < deadline => tokio::time::sleep(VISIBILITY_POLL).await,
            Ok(None) => {
                return Err(HostError::NotVisible {
                    cluster: cluster.to_string(),
                    wait,
                    hint: format!(
                        "is replication from {} running and not delayed?",
                        facts.sources.join(", ")
                    ),
                });
            }
            Err(e) => {
                return Err(HostError::db_needing(e, user, || {
                    format!("grant SELECT ON {}.* to {user}", settings.database)
                }));
            }
        }
    }
}

/// [`init_primary`] for PostgreSQL: refuses a server in recovery (a standby).
async fn init_pg_primary(
    addr: &Address,
    cluster: &str,
    settings: &ConnectionConfig,
    password: &Secret,
) -> Result<String, HostError> {
    let user = &settings.user;
    let timeout = settings.query_timeout;
    let db = |e| HostError::db(e, user);
    let c = pg::connect(addr, settings, password).await.map_err(db)?;
    if pg::in_recovery(&c, timeout).await.map_err(db)? {
        return Err(HostError::Refused(
            "it is in recovery (a standby); lagtrace writes heartbeats only to a primary".into(),
        ));
    }
    let rows = [cluster.to_string(), schema::check_row(cluster)];
    let (from, to) = pg::apply(&c, &settings.database, &rows, timeout)
        .await
        .map_err(|e| {
            HostError::db_needing(e, user, || {
                format!(
                    "user {user} needs CREATE on database {} (or the schema {} made for it)",
                    settings.postgres_database, settings.database
                )
            })
        })?;
    Ok(format!(
        "{}, heartbeat rows for cluster {cluster} and its check ready (database {})",
        schema_change(from, to),
        settings.postgres_database
    ))
}

/// [`check_replica`] for PostgreSQL: the server is a standby, and the row reaches it.
async fn check_pg_standby(
    addr: &Address,
    cluster: &str,
    settings: &ConnectionConfig,
    password: &Secret,
    wait: Duration,
) -> Result<String, HostError> {
    let user = &settings.user;
    let timeout = settings.query_timeout;
    let db = |e| HostError::db(e, user);
    let c = pg::connect(addr, settings, password).await.map_err(db)?;
    if !pg::in_recovery(&c, timeout).await.map_err(db)? {
        return Err(HostError::NotAStandby);
    }
    let deadline = Instant::now() + wait;
    loop {
        match pg::visible_seq(&c, &settings.database, cluster, timeout).await {
            Ok(Some(seq)) => {
                return Ok(format!(
                    "{user} reads {}.heartbeat (cluster {cluster}, seq {seq}) on a standby",
                    settings.database
                ));
            }
            Ok(None) if Instant::now() < deadline => tokio::time::sleep(VISIBILITY_POLL).await,
            Ok(None) => {
                return Err(HostError::NotVisible {
                    cluster: cluster.to_string(),
                    wait,
                    hint: "is the standby streaming and replaying (not paused, not delayed)?"
                        .into(),
                });
            }
            Err(e) => {
                let schema = &settings.database;
                return Err(HostError::db_needing(e, user, || {
                    format!(
                        "grant USAGE ON SCHEMA {schema} and SELECT ON {schema}.heartbeat to {user}"
                    )
                }));
            }
        }
    }
}
