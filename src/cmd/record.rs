//! `lagtrace record`: start the probes, pass their samples to the store writer and the
//! live outputs, and stop cleanly on SIGINT, SIGTERM or `--duration`.
//!
//! Probe tasks are started through `parts::Spawner`, which also starts and stops the
//! writers and readers of a split cluster's parts while recording.
//!
//! Shutdown is a visible protocol: a `watch` tells every probe task to stop and the
//! spawner lets go of its sample sender (nothing starts after that); each task drops
//! its sample sender when it ends; when the last one is gone the sample loop has
//! drained everything, drops the store sender, and the writer thread makes its final
//! flush and returns.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::CmdError;
use super::parts::{self, Change, ClusterProbes, ReplicaProbe, Spawner};
use crate::analysis::lag::{Lag, RecentBeats, Unknown};
use crate::clock::Clock;
use crate::config::{Config, ProbeMode, Secret, parse_duration, parse_probe};
use crate::output::console::{self, ReplicaView, Totals};
use crate::output::http::{self, Server};
use crate::output::live::{self, Live, Shared};
use crate::output::statsd::Statsd;
use crate::output::triggers::{
    ClusterEvents, ClusterState, Event, ProbeEvent, TriggerRun, Triggers,
};
use crate::probe::beat;
use crate::samples::{Outcome, Sample};
use crate::store::writer::{self, SampleSender, WriterStats};
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

/// Samples queued between the probes and the sample loop.
const SAMPLE_QUEUE: usize = 10_000;
/// How far back live lag keeps each cluster's beats: a replica further behind than
/// this gets a floor live (the offline analysis still bounds it).
const RECENT_BEATS_WINDOW: Duration = Duration::from_secs(20 * 60);
/// Bounds on the beats that window holds (24 bytes each, allocated at start): 20
/// minutes at 100 ms is 12 000 beats, at 10 ms 120 000 (2.9 MB), at 1 ms the cap.
const RECENT_BEATS_MIN: usize = 1 << 10;
const RECENT_BEATS_MAX: usize = 1 << 17;
/// How long a stopping recorder waits for the triggers it queued.
const TRIGGERS_AT_EXIT: Duration = Duration::from_secs(5);
/// Seconds between log lines when stdout is not a terminal.
const LOG_EVERY_S: u64 = 10;

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
    let statsd = config
        .statsd
        .as_ref()
        .map(Statsd::new)
        .transpose()
        .map_err(CmdError::Runtime)?;

    // Bound first: a port in use fails the start before a store session is opened.
    let listeners = config
        .http
        .as_ref()
        .map(|h| http::bind(h, config.agent.as_ref()))
        .transpose()
        .map_err(CmdError::Runtime)?;

    let clock = Clock::start();
    // The live picture judges replicas even without [http] (then by its defaults):
    // the replica triggers and the stored pool changes need it.
    let live: Shared = Arc::new(Mutex::new(Live::new(&config, &config.pool, clock.now_us())));
    let store = Store::open_or_create(&config.record.store)?;
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
            parts::part_keys(&c.name, &names)
        })
        .collect();
    let base = keys.len();
    keys.extend(part_keys.iter().cloned());
    let ids = store.intern(&keys)?;
    let part_ids: HashMap<String, u32> = part_keys
        .into_iter()
        .zip(ids[base..].iter().copied())
        .collect();
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

    // One thread runs every probe and the sample loop: the work is waiting on sockets,
    // and one thread avoids cross-thread wake-ups (the store has its own thread).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CmdError::Runtime(format!("cannot start the async runtime: {e}")))?;
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
        Some(l) => Some(Server::start(l, live.clone(), clock).map_err(CmdError::Runtime)?),
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
    let ctx = Context {
        triggers: &triggers,
        trigger_runs: &trigger_runs,
        previous,
        config: &config,
        password: &password,
        ids: &ids[..base],
        part_ids: &part_ids,
        clock,
        statsd: statsd.as_ref(),
        live: &live,
    };
    let printer = (!opts.quiet).then(console::Printer::start);
    let duration = opts.duration;
    let loop_result = runtime.block_on(async {
        let stop = stop_signal(duration)?;
        record_loop(ctx, sender, printer.as_ref(), stop).await
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
        println!(
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
        );
    }
    Ok(())
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
    config
        .clusters
        .iter()
        .map(|c| match store.state(&c.name) {
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

struct Context<'a> {
    config: &'a Config,
    /// Per cluster (config order): the state the previous recorder stored.
    previous: Vec<Option<ClusterState>>,
    /// Trigger runs that ended, to store as events.
    trigger_runs: &'a std::sync::mpsc::Receiver<TriggerRun>,
    password: &'a Secret,
    /// Interned ids: clusters first, then replicas in config order.
    ids: &'a [u32],
    /// Interned ids of the keys split parts may need ([`parts::part_keys`]), by key.
    part_ids: &'a HashMap<String, u32>,
    clock: Clock,
    statsd: Option<&'a Statsd>,
    /// The live picture: what the HTTP and agent listeners answer from (with
    /// `[http]`), the replicas' pool states for triggers, the status file.
    live: &'a Shared,
    triggers: &'a Triggers,
}

/// Per replica id: the cluster id and the index of its view (which is also its index
/// in the live picture).
struct Route {
    cluster_id: u32,
    view: usize,
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

/// Runs the probes and routes their samples to the store, the live picture, statsd and
/// the console (through `printer`, never waiting on it) until `stop` resolves or the
/// store fails. Returns the totals and, off a terminal, the last log lines to print.
async fn record_loop(
    ctx: Context<'_>,
    store: SampleSender,
    printer: Option<&console::Printer>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(Totals, Option<String>), CmdError> {
    let config = ctx.config;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (sample_tx, mut samples) = mpsc::channel::<Sample>(SAMPLE_QUEUE);

    let mut spawner = Spawner::new(
        sample_tx,
        shutdown_rx.clone(),
        config,
        ctx.password,
        ctx.clock,
    );
    let mut recent: HashMap<u32, RecentBeats> = HashMap::new();
    // Cluster id -> index in config order (the live picture's cluster index).
    let mut cluster_index: HashMap<u32, usize> = HashMap::new();
    // Per cluster (config order): a second writer was reported (once).
    let mut second_writer = vec![false; config.clusters.len()];
    let mut routes: HashMap<u32, Route> = HashMap::new();
    let mut views: Vec<ReplicaView> = Vec::new();
    // Per cluster id: the events its triggers fire on.
    let mut events: HashMap<u32, ClusterEvents> = HashMap::new();
    // Per cluster id: its readers and its split parts.
    let mut probes: HashMap<u32, ClusterProbes> = HashMap::new();
    // The clusters' own beat writers: they run until the recorder stops.
    let mut writers = Vec::new();
    let mut next_replica_id = ctx.ids[config.clusters.len()..].iter();

    for (ci, cluster) in config.clusters.iter().enumerate() {
        let cluster_id = ctx.ids[ci];
        recent.insert(cluster_id, recent_beats(config));
        cluster_index.insert(cluster_id, ci);
        let (notice_tx, notice_rx) = watch::channel(beat::BeatNotice::default());
        // Beats start on the primary the last recorder wrote to (it may have moved).
        let previous = ctx.previous[ci].clone();
        let start = previous
            .as_ref()
            .and_then(|p| ClusterEvents::stored_primary(p, cluster))
            .unwrap_or_else(|| cluster.primary.clone());
        let (primary_tx, primary_rx) = watch::channel(start.clone());
        events.insert(
            cluster_id,
            ClusterEvents::new(
                cluster,
                config.triggers.heartbeat_every,
                primary_rx,
                previous,
                true,
                ctx.clock.now_us(),
            ),
        );
        let mut others: Vec<_> = std::iter::once(&cluster.primary)
            .chain(cluster.replicas.iter().map(|r| &r.address))
            .filter(|a| **a != start)
            .cloned()
            .collect();
        // A `nodes` cluster's primary is among its probed replicas too.
        others.sort_by_key(|a| a.to_string());
        others.dedup();
        let w = spawner.beat_writer(
            (cluster_id, cluster.kind),
            &cluster.name,
            cluster.name.clone(),
            start,
            others,
        );
        writers.push(spawner.writer(w, notice_tx, primary_tx));
        let mut replicas = Vec::new();
        for replica in &cluster.replicas {
            let replica_id = *next_replica_id.next().expect("one id per replica");
            routes.insert(
                replica_id,
                Route {
                    cluster_id,
                    view: views.len(),
                },
            );
            replicas.push(ReplicaProbe::new(
                &replica.name,
                &replica.address,
                replica_id,
                views.len(),
            ));
            views.push(ReplicaView {
                cluster: cluster.name.clone(),
                replica: replica.name.clone(),
                ..Default::default()
            });
            spawner.poller(
                (replica_id, cluster.kind),
                &cluster.name,
                &replica.name,
                &replica.address,
            );
        }
        probes.insert(
            cluster_id,
            ClusterProbes::start(
                (&cluster.name, cluster.kind, cluster.probe),
                cluster_id,
                notice_rx,
                replicas,
                &spawner,
            ),
        );
    }
    // Whether the last write of the status file worked.
    let mut status_file_ok = true;
    // Per cluster id: the state last stored.
    let mut stored_states: HashMap<u32, ClusterState> = HashMap::new();

    let terminal = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut ticks: u64 = 0;
    let mut stopping = false;
    tokio::pin!(stop);
    let mut totals = Totals::default();
    let mut store_gone = false;

    loop {
        tokio::select! {
            sample = samples.recv() => {
                let Some(sample) = sample else { break };
                match &sample {
                    Sample::Beat { cluster, beat } => {
                        if beat.outcome == Outcome::Ok {
                            totals.beats_ok += 1;
                        } else {
                            totals.beats_failed += 1;
                        }
                        if let Some(&ci) = cluster_index.get(cluster) {
                            live::lock(ctx.live).on_beat(ci, beat);
                        }
                        if let Some(r) = recent.get_mut(cluster) {
                            r.push(beat);
                        }
                        if let Some(event) = events.get_mut(cluster).and_then(|e| e.on_beat(beat)) {
                            dispatch(event, &store, ctx.triggers);
                        }
                        if beat.outcome == Outcome::Stale
                            && let Some(&ci) = cluster_index.get(cluster)
                            && !std::mem::replace(&mut second_writer[ci], true)
                        {
                            tracing::warn!(
                                cluster = %config.clusters[ci].name,
                                reason = beat.reason.as_deref().unwrap_or(""),
                                "another writer moves this cluster's heartbeat row (a newer seq was already there); its reads are not matched to this recorder's beats"
                            );
                        }
                    }
                    Sample::Observation { replica, observation } => {
                        if let Some(route) = routes.get(replica) {
                            let view = &mut views[route.view];
                            let lag = recent
                                .get(&route.cluster_id)
                                .and_then(|r| r.lag(observation));
                            live::lock(ctx.live).on_read(route.view, observation, lag);
                            if let (Some(Lag::Unknown(Unknown::ForeignBeat { seq })), Some(&ci)) =
                                (lag, cluster_index.get(&route.cluster_id))
                                && !std::mem::replace(&mut second_writer[ci], true)
                            {
                                tracing::warn!(
                                    cluster = %view.cluster,
                                    replica = %view.replica,
                                    seq,
                                    "read a beat this recorder never wrote: another writer (a second recorder?) moves this cluster's heartbeat row; such reads are counted, never matched"
                                );
                            }
                            if observation.outcome == Outcome::Ok {
                                view.reads_ok += 1;
                            } else {
                                view.reads_failed += 1;
                            }
                            if let (Some(statsd), Some(lag)) = (ctx.statsd, lag.as_ref()) {
                                statsd.lag(&view.cluster, &view.replica, lag);
                            }
                            view.lag = lag;
                            view.last = Some(observation.clone());
                        }
                    }
                    Sample::Role { replica, t_us, writable, source } => {
                        if let Some(route) = routes.get(replica)
                            && let Some(e) = events.get_mut(&route.cluster_id)
                        {
                            let cluster_id = route.cluster_id;
                            for event in e.on_role(&views[route.view].replica, *t_us, *writable, source.as_deref()) {
                                dispatch(event, &store, ctx.triggers);
                            }
                            // A source change may move the replica to or from a split part.
                            if let Some(p) = probes.get_mut(&cluster_id) {
                                let changes = p.reconcile(e, &spawner, ctx.part_ids);
                                apply(changes, config, ctx.live, &mut routes, &mut views, &mut recent);
                            }
                        }
                    }
                    Sample::Event { .. } | Sample::State { .. } => {}
                    Sample::ProbeChoice { replica, t_us, binlog, reason } => {
                        if let Some(route) = routes.get(replica) {
                            let view = &views[route.view];
                            if let Some(why) = reason {
                                tracing::warn!(
                                    cluster = %view.cluster,
                                    replica = %view.replica,
                                    "reads by polling: {why}"
                                );
                            }
                            live::lock(ctx.live).on_probe(route.view, *binlog, reason.clone());
                            let event = ProbeEvent::new(
                                (&view.cluster, &view.replica),
                                *t_us,
                                *binlog,
                                reason.clone(),
                            );
                            store_event(&store, *t_us, &event);
                        }
                    }
                    Sample::Status { replica, status } => {
                        if let Some(route) = routes.get(replica) {
                            let view = &mut views[route.view];
                            if let (Some(statsd), Some(ch)) = (ctx.statsd, status.main_channel()) {
                                statsd.status(&view.cluster, &view.replica, ch);
                            }
                            live::lock(ctx.live).on_status(route.view, status);
                            view.status = Some(status.clone());
                        }
                    }
                }
                let live_only = matches!(sample, Sample::Role { .. } | Sample::ProbeChoice { .. });
                if !store_gone && !live_only && store.send(sample).is_err() {
                    // The writer ended with a store error; it is reported after shutdown.
                    store_gone = true;
                    if !stopping {
                        stopping = true;
                        let _ = shutdown_tx.send(true);
                        spawner.stop();
                    }
                }
            }
            _ = tick.tick() => {
                ticks += 1;
                let now_us = ctx.clock.now_us();
                for (id, e) in &mut events {
                    for event in e.on_tick(now_us) {
                        dispatch(event, &store, ctx.triggers);
                    }
                    // A split that fired (or ended) now starts (or stops) its part.
                    if let Some(p) = probes.get_mut(id) {
                        let changes = p.reconcile(e, &spawner, ctx.part_ids);
                        apply(changes, config, ctx.live, &mut routes, &mut views, &mut recent);
                    }
                }
                // The snapshot judges the server beats go to as the primary: tell the
                // live picture where they go first, a failover included.
                let snapshot = {
                    let mut live = live::lock(ctx.live);
                    for (id, e) in &events {
                        if let Some(&ci) = cluster_index.get(id) {
                            let p = e.primary();
                            live.set_primary(ci, &p.name, &p.address);
                        }
                    }
                    live.snapshot(now_us)
                };
                if let Some(path) = &config.record.status_file {
                    let written = live::write_status_file(path, &snapshot);
                    status_file_ok = report_status_file(path, written, status_file_ok);
                }
                for (c, id) in snapshot.clusters.iter().zip(ctx.ids) {
                    if let Some(e) = events.get_mut(id) {
                        for event in e.on_replicas(&c.replicas, now_us) {
                            dispatch(event, &store, ctx.triggers);
                        }
                    }
                }
                for (id, e) in &mut events {
                    if let Some(up) = e.recorder_up(now_us) {
                        dispatch(up, &store, ctx.triggers);
                    }
                    let state = e.state();
                    if stored_states.get(id) != Some(&state) {
                        let doc = serde_json::to_string(&state).expect("a state serializes");
                        let _ = store.send(Sample::State { cluster: e.cluster().to_string(), doc });
                        stored_states.insert(*id, state);
                    }
                }
                store_trigger_runs(ctx.trigger_runs, &store);
                totals.dropped = store.dropped();
                totals.unstored = store.unstored();
                live::lock(ctx.live).set_store(totals.dropped, totals.unstored, !store.store_failing());
                if let Some(statsd) = ctx.statsd {
                    statsd.flush();
                    totals.statsd_errors = statsd.errors();
                }
                if let Some(printer) = printer {
                    let now = ctx.clock.now_us();
                    if terminal {
                        printer.offer(format!("\x1b[H\x1b[2J{}", console::table(&views, &totals, now)));
                    } else if ticks.is_multiple_of(LOG_EVERY_S) {
                        printer.offer(console::log_lines(&views, now));
                    }
                }
            }
            _ = &mut stop, if !stopping => {
                stopping = true;
                let _ = shutdown_tx.send(true);
                spawner.stop();
            }
        }
    }
    store_trigger_runs(ctx.trigger_runs, &store);
    totals.dropped = store.dropped();
    drop(store);
    let last_lines =
        (printer.is_some() && !terminal).then(|| console::log_lines(&views, ctx.clock.now_us()));
    Ok((totals, last_lines))
}

/// The recent beats of one cluster (or split part), kept for live lag.
fn recent_beats(config: &Config) -> RecentBeats {
    RecentBeats::new(
        (RECENT_BEATS_WINDOW.as_micros() / config.record.interval.as_micros().max(1))
            .clamp(RECENT_BEATS_MIN as u128, RECENT_BEATS_MAX as u128) as usize,
        crate::clock::duration_us(config.record.interval),
    )
}

/// Takes in what changed in a cluster's split parts: a part's recent beats are kept
/// while it runs, a replica's reads go where it is read now, and the live picture
/// keeps a replica on a part's side out of its cluster's pool.
fn apply(
    changes: Vec<Change>,
    config: &Config,
    live: &Shared,
    routes: &mut HashMap<u32, Route>,
    views: &mut [ReplicaView],
    recent: &mut HashMap<u32, RecentBeats>,
) {
    for change in changes {
        match change {
            Change::PartUp { cluster_id } => {
                recent.insert(cluster_id, recent_beats(config));
            }
            Change::PartDown { cluster_id } => {
                recent.remove(&cluster_id);
            }
            Change::Side { view, split } => live::lock(live).set_split(view, split),
            Change::Reads {
                view,
                replica_id,
                cluster_id,
                cluster,
            } => {
                routes.insert(replica_id, Route { cluster_id, view });
                views[view].cluster = cluster;
            }
        }
    }
}

/// Logs the status file's first failed write of a run at warn and the next success;
/// returns whether this write worked.
fn report_status_file(path: &std::path::Path, written: std::io::Result<()>, was_ok: bool) -> bool {
    match (written, was_ok) {
        (Ok(()), false) => {
            tracing::warn!(path = %path.display(), "status file written again");
            true
        }
        (Ok(()), true) => true,
        (Err(e), true) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the status file (repeats at debug level until it works)");
            false
        }
        (Err(e), false) => {
            tracing::debug!(path = %path.display(), error = %e, "cannot write the status file");
            false
        }
    }
}

/// Stores `event` (a `heartbeat` is only a hook, not a change: it is not stored) and
/// queues its trigger.
fn dispatch(event: Event, store: &SampleSender, triggers: &Triggers) {
    if event.event != "heartbeat" {
        store_event(store, event.t_us, &event);
    }
    triggers.fire(event);
}

/// Stores the trigger runs that ended since the last call.
fn store_trigger_runs(runs: &std::sync::mpsc::Receiver<TriggerRun>, store: &SampleSender) {
    for run in runs.try_iter() {
        store_event(store, run.t_us, &run);
    }
}

/// Sends one event document (at `t_us`) to the store. A store that is gone is
/// noticed, and reported, by the sample loop.
fn store_event(store: &SampleSender, t_us: i64, doc: &impl serde::Serialize) {
    let doc = serde_json::to_string(doc).expect("an event document serializes");
    let _ = store.send(Sample::Event { t_us, doc });
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
