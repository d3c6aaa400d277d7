//! `lagtrace record`: open the store and the outputs, run the recorder (`recorder`: its
//! pure core and the async shell that runs its probes) until SIGINT, SIGTERM or
//! `--duration`, then flush and report.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::CmdError;
use crate::clock::Clock;
use crate::cluster::doc::ClusterState;
use crate::cluster::split::part_keys;
use crate::config::{Config, ProbeMode, parse_duration, parse_probe};
use crate::output::console;
use crate::output::http::{self, Server};
use crate::output::live::{Live, Shared};
use crate::output::statsd::Statsd;
use crate::output::triggers::Triggers;
use crate::recorder::shell::{self, Outputs, Spawner};
use crate::recorder::{ClusterId, Ids, Recorder, ReplicaId};
use crate::store::writer::{self, WriterStats};
use crate::store::{SessionInfo, Store, cluster_key, replica_key};

/// `lagtrace record`'s command line; `None` keeps the config's value.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(after_help = "Examples:\n  \
    lagtrace record -c lagtrace.toml                       # until Ctrl-C or SIGTERM\n  \
    lagtrace record -c lagtrace.toml --interval 10ms --duration 30s --store run.redb\n  \
    lagtrace record -c lagtrace.toml --retain 30d          # for weeks: disk use stays flat\n\n\
    On a terminal it shows a table refreshed each second; otherwise a log line per replica\n\
    every 10 s. SIGINT/SIGTERM stop the probes, flush the store and exit 0.\n\
    With [http] in the config it answers load balancers and Prometheus while it records:\n  \
    curl -i http://127.0.0.1:9104/check/replica1     # 200 in pool, 503 out, 404 maintenance\n  \
    curl http://127.0.0.1:9104/status                # every replica as JSON\n  \
    curl http://127.0.0.1:9104/metrics               # Prometheus text\n\
    Exit status: 0 stopped cleanly, 1 store or runtime failure, 2 bad config or arguments.")]
pub struct Args {
    /// The config file
    #[arg(short, long, value_name = "FILE", default_value = "lagtrace.toml")]
    pub config: PathBuf,
    /// Store file (overrides record.store)
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// Beat interval (overrides record.interval), 1ms to 60s
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// How often the store commits (overrides record.flush), 10ms to 60s
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub flush: Option<Duration>,
    /// Mean time between replication status polls (overrides record.status_every), 100ms to 1h
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub status_every: Option<Duration>,
    /// Drop what is older than this while recording (overrides record.retain), 10s to 10y;
    /// e.g. 30d
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub retain: Option<Duration>,
    /// How replicas are probed (overrides record.probe and every cluster's probe):
    /// poll, auto (the binary log stream where the replica allows it) or binlog
    #[arg(long, value_name = "MODE", value_parser = parse_probe)]
    pub probe: Option<ProbeMode>,
    /// Stop after this long
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// No console output
    #[arg(short, long)]
    pub quiet: bool,
}

/// How long a stopping recorder waits for the triggers it queued.
const TRIGGERS_AT_EXIT: Duration = Duration::from_secs(5);

pub fn run(opts: &Args) -> Result<(), CmdError> {
    let overrides = crate::config::Overrides {
        store: opts.store.clone(),
        interval: opts.interval,
        flush: opts.flush,
        status_every: opts.status_every,
        retain: opts.retain,
        probe: opts.probe,
    };
    let (mut config, password) = super::load_config(&opts.config, &overrides)?;
    probe_every_node(&mut config);
    if config.record.id.is_none() {
        let store = std::path::absolute(&config.record.store)
            .unwrap_or_else(|_| config.record.store.clone());
        config.record.id = Some(crate::config::default_recorder_id(&hostname(), &store));
    }
    if let (true, Some(id)) = (config.record.binlog_server_id_default, &config.record.id) {
        config.record.binlog_server_id = crate::config::binlog_server_id_for(id);
    }
    tracing::info!(
        id = config.record.id.as_deref().unwrap_or(""),
        "recorder id: beats go to the heartbeat rows <cluster>#<id>"
    );
    let statsd = config.statsd.as_ref().map(Statsd::new).transpose()?;

    // Bound first: a port in use fails the start before a store session is opened.
    let listeners = config
        .http
        .as_ref()
        .map(|h| http::bind(h, config.agent.as_ref()))
        .transpose()?;

    let clock = Clock::start();
    // The live picture judges replicas even without [http] (then by its defaults):
    // the replica triggers and the stored pool changes need it.
    let live: Shared = Arc::new(Mutex::new(Live::new(&config, &config.pool, clock.now_us())));
    let store = Store::open_or_create(&config.record.store)?;
    let ids = intern(&store, &config)?;
    let previous = previous_states(&store, &config);
    let session = store.begin_session(&SessionInfo {
        started_us: clock.anchor_utc_us(),
        interval_us: config.record.interval.as_micros() as u64,
        version: env!("CARGO_PKG_VERSION").to_string(),
        host: hostname(),
        read_every: config.record.read_every,
    })?;
    let store_path = config.record.store.clone();
    let (sender, writer) = writer::spawn(
        store,
        session,
        config.record.flush,
        config.record.retain,
        clock,
        writer::CHANNEL_CAPACITY,
    );

    // One thread runs every probe and the recorder (the store has its own thread).
    let runtime = super::runtime()?;
    if let (Some(h), false) = (&config.http, opts.quiet) {
        let agent = config
            .agent
            .as_ref()
            .map(|a| format!(", HAProxy agent-check on {}", a.listen))
            .unwrap_or_default();
        println!(
            "lagtrace: checks on http://{}/check/<replica> (/ignore-lag, /status, /metrics){agent}",
            h.listen
        );
    }
    let server = match listeners {
        Some(l) => Some(Server::start(l, live.clone(), clock)?),
        None => None,
    };
    let (triggers, trigger_thread, trigger_runs) = Triggers::start(
        config.triggers.clone(),
        config.triggers.timeout,
        clock,
        &config
            .clusters
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>(),
    );
    let (recorder, start) = Recorder::new(&config, ids, previous, live.clone(), clock.now_us());
    let spawner = Spawner::new(&config, &password, clock);
    let printer = (!opts.quiet).then(console::Printer::start);
    let outputs = Outputs {
        store: sender,
        triggers: &triggers,
        trigger_runs: &trigger_runs,
        statsd: statsd.as_ref(),
        printer: printer.as_ref(),
        terminal: std::io::stdout().is_terminal(),
    };
    let duration = opts.duration;
    let loop_result = runtime.block_on(async {
        let stop = stop_signal(duration)?;
        Ok::<_, CmdError>(shell::record(recorder, start, spawner, outputs, stop).await)
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    if let Some(server) = server {
        server.stop();
    }
    drop(triggers);
    trigger_thread.finish(TRIGGERS_AT_EXIT);

    let stats: WriterStats = match writer.finish() {
        Some(Ok(stats)) => stats,
        Some(Err(e)) => return Err(CmdError::Store(e)),
        None => return Err(CmdError::Runtime("the store writer thread crashed".into())),
    };
    let (totals, last_lines) = loop_result?;
    if let Some(printer) = printer {
        printer.finish(last_lines);
    }
    if !opts.quiet {
        println!("{}", summary(&totals, &stats, &store_path, session));
    }
    Ok(())
}

/// The store ids of every cluster, replica and possible split part of `config`.
fn intern(store: &Store, config: &Config) -> Result<Ids, CmdError> {
    let mut keys: Vec<String> = config
        .clusters
        .iter()
        .map(|c| cluster_key(&c.name))
        .collect();
    for c in &config.clusters {
        keys.extend(c.replicas.iter().map(|r| replica_key(&c.name, &r.name)));
    }
    let part_keys: Vec<String> = config
        .clusters
        .iter()
        .flat_map(|c| {
            let names: Vec<String> = c.replicas.iter().map(|r| r.name.clone()).collect();
            part_keys(&c.name, &names)
        })
        .collect();
    let base = keys.len();
    keys.extend(part_keys.iter().cloned());
    let interned = store.intern(&keys)?;
    let n = config.clusters.len();
    Ok(Ids {
        clusters: interned[..n].iter().map(|&i| ClusterId(i)).collect(),
        replicas: interned[n..base].iter().map(|&i| ReplicaId(i)).collect(),
        parts: part_keys
            .into_iter()
            .zip(interned[base..].iter().copied())
            .collect(),
    })
}

/// The last line `record` prints: what it recorded, and what it lost.
fn summary(
    totals: &console::Totals,
    stats: &WriterStats,
    store_path: &std::path::Path,
    session: u32,
) -> String {
    format!(
        "lagtrace: recorded {} beats ({} failed) and {} samples in all to {} (session {session}, {} flushes){}{}{}",
        totals.beats_ok + totals.beats_failed,
        totals.beats_failed,
        stats.samples,
        store_path.display(),
        stats.flushes,
        if stats.chunks_pruned > 0 {
            format!(
                "; {} chunks older than the retention dropped",
                stats.chunks_pruned
            )
        } else {
            String::new()
        },
        if totals.dropped > 0 {
            format!(
                "; {} samples dropped because the store fell behind",
                totals.dropped
            )
        } else {
            String::new()
        },
        if stats.unstored > 0 {
            format!(
                "; {} samples not stored because the store could not be written (disk full?)",
                stats.unstored
            )
        } else {
            String::new()
        }
    )
}

/// In a cluster given as `nodes`, the primary found at the start is read and polled
/// like the replicas (its live check says `primary` while beats go to it), so that
/// after a failover the demoted primary is measured as the replica it has become.
fn probe_every_node(config: &mut Config) {
    for c in &mut config.clusters {
        let primary = c.nodes.iter().find(|n| n.address == c.primary).cloned();
        if let Some(p) = primary
            && !c.replicas.iter().any(|r| r.address == p.address)
        {
            c.replicas.push(p);
            c.replicas.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }
}

/// What the previous recorder stored of each cluster (config order); a state that
/// cannot be read is logged and ignored (this recorder starts without it).
fn previous_states(store: &Store, config: &Config) -> Vec<Option<ClusterState>> {
    // A damaged page of the state table is an unreadable state, not a panic.
    let path = [store.path().to_path_buf()];
    config
        .clusters
        .iter()
        .map(|c| match crate::store::guard::guarded(&path, || store.state(&c.name)) {
            Ok(Some(doc)) => match serde_json::from_str::<ClusterState>(&doc) {
                Ok(state) => Some(state),
                Err(e) => {
                    tracing::warn!(cluster = %c.name, error = %e, "the stored cluster state is unreadable; starting without it");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(cluster = %c.name, error = %e, "the stored cluster state could not be read; starting without it");
                None
            }
        })
        .collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Resolves at SIGINT, SIGTERM or after `duration`: when the recorder should stop.
fn stop_signal(
    duration: Option<Duration>,
) -> Result<impl std::future::Future<Output = ()>, CmdError> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| CmdError::Runtime(format!("cannot listen for {name}: {e}")))
    };
    let mut sigint = listen(SignalKind::interrupt(), "SIGINT")?;
    let mut sigterm = listen(SignalKind::terminate(), "SIGTERM")?;
    let stop_at = duration.map(|d| tokio::time::Instant::now() + d);
    Ok(async move {
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
            _ = sleep_until(stop_at) => {}
        }
    })
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
