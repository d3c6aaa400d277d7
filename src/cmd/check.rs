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

use tokio::task::JoinSet;

use super::CmdError;
use crate::analysis::lag::sighting_lag;
use crate::clock::Clock;
use crate::config::ReplicaConfig;
use crate::output::nagios::{self, Line, State};
use crate::probe::check::check_cluster;

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
    let runtime = super::runtime()?;
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
        .map(|(name, found)| {
            let lag = found.sighting.as_ref().map(sighting_lag);
            nagios::classify(
                name,
                found.error.map(|e| e.to_string()).as_deref(),
                &found.channels,
                lag,
                opts.warn,
                opts.crit,
            )
        })
        .collect();
    let (text, worst) = nagios::report(lines);
    super::print_stdout(&text)?;
    Ok(worst)
}
