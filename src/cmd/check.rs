//! `lagtrace check`: one probe round without a store, for Nagios-style monitoring.
//! Writes one beat per cluster, reads each replica until it shows that beat or the
//! timeout passes, adds the replication status, and prints one line per replica
//! (output::nagios). The exit code is the worst state: 0 OK, 1 WARNING, 2 CRITICAL,
//! 3 UNKNOWN (unreachable, not replicating, bad config or arguments).
//!
//! The beat goes to the cluster's own `check` row (`<cluster>#check`, created by
//! `init`), never to the row a recorder writes, so a check and a recorder never race.
//! It is numbered with the current UTC microsecond. Each replica is read until it shows
//! the beat or until a read that starts `max(--timeout, --crit)` after the
//! acknowledgement has missed it: a replica that never shows the beat is then known to
//! lag by more than `--crit`, whatever the timing of the polls. States are "above the
//! threshold" (a lag equal to `--crit` is WARNING).

use std::path::PathBuf;
use std::time::Duration;

use mysql_async::Conn;
use tokio::task::JoinSet;

use super::CmdError;
use crate::analysis::lag::{Lag, bounds};
use crate::clock::Clock;
use crate::config::{ClusterConfig, ConnectionConfig, ReplicaConfig, Secret};
use crate::output::nagios::{self, Line, State};
use crate::probe::conn::{self, DbError};
use crate::probe::{beat, schema, status};
use crate::samples::{ChannelStatus, IoState, StatusSample};

/// `lagtrace check`'s command line.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    lagtrace check -c lagtrace.toml                          # every replica\n  \
    lagtrace check -c lagtrace.toml --replica db2 --warn 500ms --crit 2s\n\n\
    Writes one beat per cluster, reads each replica until it shows the beat or --timeout\n\
    passes, adds its replication status, and prints one line per replica, worst first:\n  \
    OK - main/db2: lag 0.003 s (between 0.000 and 0.006 s) | lag=0.003s;1;5;0\n\
    Exit status (the worst replica): 0 OK, 1 WARNING (lag above --warn), 2 CRITICAL\n\
    (lag above --crit), 3 UNKNOWN (unreachable, not replicating, bad config or arguments).")]
pub struct Args {
    /// The config file
    #[arg(short, long, value_name = "FILE", default_value = "lagtrace.toml")]
    pub config: PathBuf,
    /// Check only this replica (repeatable)
    #[arg(long = "replica", value_name = "NAME")]
    pub replicas: Vec<String>,
    /// WARNING above this lag
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::config::parse_duration)]
    pub warn: Duration,
    /// CRITICAL above this lag
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::config::parse_duration)]
    pub crit: Duration,
    /// How long to wait for each replica to show the beat (at least --crit)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::config::parse_duration)]
    pub timeout: Duration,
}

/// Pause between reads of a replica that does not show the beat yet.
const READ_EVERY: Duration = Duration::from_millis(10);

/// The check's outcome; the exit code is `state.exit_code()`.
pub fn run(opts: &Args) -> Result<State, CmdError> {
    if opts.warn > opts.crit {
        return Err(CmdError::BadInput(format!(
            "--warn ({}) must not be above --crit ({})",
            humantime::format_duration(opts.warn),
            humantime::format_duration(opts.crit)
        )));
    }
    if opts.timeout.is_zero() {
        return Err(CmdError::BadInput("--timeout must be above 0".into()));
    }
    if opts.timeout < opts.crit {
        return Err(CmdError::BadInput(format!(
            "--timeout ({}) must not be shorter than --crit ({}): a replica that does not show the beat in time could not be told CRITICAL",
            humantime::format_duration(opts.timeout),
            humantime::format_duration(opts.crit)
        )));
    }
    let (config, password) = super::load_config(&opts.config, &Default::default())?;
    for name in &opts.replicas {
        if !config
            .clusters
            .iter()
            .any(|c| c.replicas.iter().any(|r| &r.name == name))
        {
            return Err(CmdError::BadInput(format!(
                "no replica named {name:?} in {}",
                opts.config.display()
            )));
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CmdError::Runtime(format!("cannot start the async runtime: {e}")))?;
    let clock = Clock::start();
    let mut lines = Vec::new();
    runtime.block_on(async {
        let mut tasks = JoinSet::new();
        for cluster in &config.clusters {
            let wanted: Vec<ReplicaConfig> = cluster
                .replicas
                .iter()
                .filter(|r| opts.replicas.is_empty() || opts.replicas.contains(&r.name))
                .cloned()
                .collect();
            if wanted.is_empty() {
                continue;
            }
            tasks.spawn(check_cluster(
                cluster.clone(),
                wanted,
                config.connection.clone(),
                password.clone(),
                clock,
                opts.timeout.max(opts.crit),
            ));
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(found) => lines.extend(found),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
    });
    // Config order, whatever order the clusters finished in.
    let order = |name: &str| {
        config
            .clusters
            .iter()
            .flat_map(|c| {
                c.replicas
                    .iter()
                    .map(move |r| format!("{}/{}", c.name, r.name))
            })
            .position(|n| n == name)
    };
    lines.sort_by_key(|(name, _)| order(name));
    let lines: Vec<Line> = lines
        .into_iter()
        .map(|(name, found)| classify(name, &found, opts.warn, opts.crit))
        .collect();
    let (text, worst) = nagios::report(lines);
    super::print_stdout(&text)?;
    Ok(worst)
}

/// What one round found about one replica.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Why the round could not measure: the primary or the replica failed.
    pub error: Option<String>,
    /// The replica's replication channels (empty: it does not replicate).
    pub channels: Vec<ChannelStatus>,
    /// Bounded when the replica showed the beat, "at least" when it did not by the
    /// deadline; `None` when no beat was written or the replica could not be read.
    pub lag: Option<Lag>,
}

/// The state and line of one replica. A state holds when the lag is above its
/// threshold; "at least" lag is judged by its lower bound.
pub fn classify(name: String, found: &Found, warn: Duration, crit: Duration) -> Line {
    let (warn_us, crit_us) = (warn.as_micros() as i64, crit.as_micros() as i64);
    let threads = threads_note(&found.channels);
    let (state, text, lag_s) = match (&found.error, found.lag) {
        (Some(e), _) => (State::Unknown, e.clone(), None),
        (None, _) if found.channels.is_empty() => (
            State::Unknown,
            "not replicating: no replication channel is configured".to_string(),
            None,
        ),
        (None, Some(Lag::Bounded { lo_us, hi_us })) => {
            let lag = lo_us + (hi_us - lo_us) / 2;
            let state = if lag > crit_us {
                State::Critical
            } else if lag > warn_us {
                State::Warning
            } else {
                State::Ok
            };
            let text = format!(
                "lag {} s (between {} and {} s){threads}",
                s3(lag),
                s3(lo_us),
                s3(hi_us)
            );
            (state, text, Some(lag as f64 / 1e6))
        }
        (None, Some(Lag::AtLeast { lo_us })) => {
            let (state, what) = if lo_us > crit_us {
                (State::Critical, "lag")
            } else if lo_us > warn_us {
                (State::Warning, "lag")
            } else if threads.is_empty() {
                (State::Unknown, "beat not shown yet, lag")
            } else {
                (State::Unknown, "not replicating, lag")
            };
            let text = format!("{what} above {} s{threads}", s3(lo_us));
            (state, text, Some(lo_us as f64 / 1e6))
        }
        (None, _) => (State::Unknown, format!("lag unknown{threads}"), None),
    };
    Line {
        state,
        name,
        text,
        lag_s,
        warn_s: warn.as_secs_f64(),
        crit_s: crit.as_secs_f64(),
    }
}

/// Microseconds as seconds with three decimals.
fn s3(us: i64) -> String {
    format!("{:.3}", us as f64 / 1e6)
}

/// "; IO thread Connecting, SQL thread stopped (error 1062)" or "" when both run.
fn threads_note(channels: &[ChannelStatus]) -> String {
    let main = StatusSample {
        t_us: 0,
        duration_us: 0,
        outcome: crate::samples::Outcome::Ok,
        reason: None,
        channels: channels.to_vec(),
    };
    let Some(c) = main.main_channel() else {
        return String::new();
    };
    let mut notes = Vec::new();
    match c.io {
        IoState::Yes => {}
        IoState::No => notes.push(errno("IO thread stopped", c.last_io_errno)),
        IoState::Connecting => notes.push(errno("IO thread connecting", c.last_io_errno)),
    }
    if !c.sql_running {
        notes.push(errno("SQL thread stopped", c.last_sql_errno));
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!("; {}", notes.join(", "))
    }
}

fn errno(what: &str, errno: u32) -> String {
    if errno == 0 {
        what.to_string()
    } else {
        format!("{what} (error {errno})")
    }
}

/// The beat written on a primary: the send time and the acknowledgement, µs.
struct Written {
    seq: u64,
    t_send_us: i64,
    t_ack_us: i64,
}

/// One round on one cluster: `(cluster/replica, found)` per wanted replica.
async fn check_cluster(
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
        conns.push(conn::connect(&r.address, &settings, &password).await);
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
                Err(e) => Found {
                    error: Some(format!("replica {address} unreachable: {e}")),
                    channels: Vec::new(),
                    lag: None,
                },
                Ok(mut c) => {
                    let found =
                        check_replica(&mut c, &settings, &cluster_name, written, clock, wait).await;
                    let _ = tokio::time::timeout(Duration::from_millis(200), c.disconnect()).await;
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
) -> Result<Written, String> {
    let primary = &cluster.primary;
    let fail = |e: &dyn std::fmt::Display| format!("no beat written on primary {primary}: {e}");
    let mut c = conn::connect(primary, settings, password)
        .await
        .map_err(|e| fail(&e))?;
    let row = schema::check_row(&cluster.name);
    let t_send_us = clock.now_us();
    let seq = t_send_us as u64;
    let result = beat::write_row(
        &mut c,
        beat::update_sql(&settings.database),
        &settings.database,
        &row,
        seq,
        t_send_us,
        settings.query_timeout,
    )
    .await;
    let t_ack_us = clock.now_us();
    let _ = tokio::time::timeout(Duration::from_millis(200), c.disconnect()).await;
    match result.map_err(|e| fail(&e))? {
        beat::RowWrite::Written => Ok(Written {
            seq,
            t_send_us,
            t_ack_us,
        }),
        beat::RowWrite::NoRow => Err(fail(&format!(
            "no heartbeat row {row:?} for the check (run lagtrace init)"
        ))),
        beat::RowWrite::Stale { row_seq } => Err(fail(&format!(
            "row {row:?} holds seq {row_seq}, newer than this check's clock ({seq}): is another check running with a clock ahead of this host's?"
        ))),
    }
}

/// Reads the replica until it shows beat `seq` or `timeout` after the acknowledgement,
/// then its replication status.
async fn check_replica(
    c: &mut Conn,
    settings: &ConnectionConfig,
    cluster: &str,
    written: Result<(u64, i64, i64), String>,
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
    let channels = replication_status(c, settings).await;
    match (seen, channels) {
        (Err(e), channels) => Found {
            error: Some(e),
            channels: channels.unwrap_or_default(),
            lag: None,
        },
        (Ok(lag), Ok(channels)) => Found {
            error: None,
            channels,
            lag: Some(lag),
        },
        (Ok(_), Err(e)) => Found {
            error: Some(format!("replication status unreadable: {e}")),
            channels: Vec::new(),
            lag: None,
        },
    }
}

#[allow(clippy::too_many_arguments)]
async fn wait_for(
    c: &mut Conn,
    settings: &ConnectionConfig,
    cluster: &str,
    seq: u64,
    t_send_us: i64,
    t_ack_us: i64,
    clock: Clock,
    wait: Duration,
) -> Result<Lag, String> {
    // Read until a read that starts after this has missed the beat.
    let deadline_us = t_ack_us + wait.as_micros() as i64;
    // Start of the last read that did not show the beat although it was acknowledged.
    let mut missed_after_ack: Option<i64> = None;
    loop {
        let r_start_us = clock.now_us();
        let visible =
            schema::visible_seq(c, &settings.database, cluster, settings.query_timeout).await;
        let r_end_us = clock.now_us();
        match visible {
            Err(e) => return Err(format!("heartbeat unreadable: {e}")),
            Ok(Some(v)) if v >= seq => {
                // Shown: at most since the send; at least as late as the last miss.
                let (lo_us, hi_us) = bounds(
                    missed_after_ack.unwrap_or(r_start_us),
                    r_end_us,
                    t_send_us,
                    missed_after_ack.map(|_| t_ack_us),
                );
                return Ok(Lag::Bounded { lo_us, hi_us });
            }
            Ok(_) => {
                if r_start_us >= t_ack_us {
                    missed_after_ack = Some(r_start_us);
                }
                if r_start_us > deadline_us {
                    return Ok(Lag::AtLeast {
                        lo_us: missed_after_ack.map_or(0, |m| m - t_ack_us),
                    });
                }
            }
        }
        tokio::time::sleep(READ_EVERY).await;
    }
}

async fn replication_status(
    c: &mut Conn,
    settings: &ConnectionConfig,
) -> Result<Vec<ChannelStatus>, DbError> {
    let sql = status::status_sql(c, settings.query_timeout).await?;
    status::channels(c, sql, settings.query_timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn found(lag: Lag, channel: Option<ChannelStatus>) -> Found {
        Found {
            error: None,
            channels: channel.into_iter().collect(),
            lag: Some(lag),
        }
    }

    fn state(f: &Found) -> (State, String) {
        let l = classify(
            "lab/r1".into(),
            f,
            Duration::from_secs(1),
            Duration::from_secs(5),
        );
        (l.state, nagios::format_line(&l))
    }

    #[test]
    fn states_follow_the_lag_and_the_threads() {
        let running = Some(ChannelStatus::running());
        let seen = |lo_us, hi_us| Lag::Bounded { lo_us, hi_us };
        let (s, line) = state(&found(seen(0, 6_000), running.clone()));
        assert_eq!(s, State::Ok);
        assert_eq!(
            line,
            "OK - lab/r1: lag 0.003 s (between 0.000 and 0.006 s) | lag=0.003s;1;5;0"
        );
        assert_eq!(
            state(&found(seen(2 * S, 2 * S + 10), running.clone())).0,
            State::Warning
        );
        assert_eq!(
            state(&found(seen(6 * S, 6 * S), running.clone())).0,
            State::Critical
        );

        let stopped = Some(ChannelStatus {
            sql_running: false,
            last_sql_errno: 1062,
            ..ChannelStatus::running()
        });
        let (s, line) = state(&found(Lag::AtLeast { lo_us: 5 * S + 3 }, stopped.clone()));
        assert_eq!(s, State::Critical, "{line}");
        assert!(
            line.contains("lag above 5.000 s; SQL thread stopped (error 1062)"),
            "{line}"
        );
        let (s, line) = state(&found(Lag::AtLeast { lo_us: S / 2 }, stopped));
        assert_eq!(s, State::Unknown, "{line}");
        assert!(line.contains("not replicating"), "{line}");
        assert_eq!(
            state(&found(Lag::AtLeast { lo_us: 2 * S }, running.clone())).0,
            State::Warning
        );
        // Above the threshold, not at it: exactly --crit is WARNING.
        assert_eq!(
            state(&found(Lag::AtLeast { lo_us: 5 * S }, running)).0,
            State::Warning
        );

        let (s, line) = state(&found(seen(0, 10), None));
        assert_eq!(s, State::Unknown);
        assert!(line.contains("no replication channel"), "{line}");
        let unreachable = Found {
            error: Some("replica 127.0.0.1:13307 unreachable: connection refused".into()),
            channels: vec![],
            lag: None,
        };
        let (s, line) = state(&unreachable);
        assert_eq!(s, State::Unknown);
        assert!(line.ends_with("| lag=U;1;5;0"), "{line}");
    }
}
