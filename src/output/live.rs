//! Live outputs of `record`, the shared part: the recorder's in-memory picture of each
//! replica (pool state, lag bounds, vector, thread states) and of the probes' counters.
//! The sample loop feeds it; the HTTP and agent listeners read it. A check is answered
//! from this picture alone and never waits on a database.
//!
//! The pool state is [`Health`], the machine `replay` and `analyze` use, so a live
//! answer and a replayed one are the same computation. Times are UTC µs of the
//! recorder's clock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use crate::analysis::health::{Health, Pool, Reason, Thresholds};
use crate::analysis::lag::{Lag, LagMs, Unknown};
use crate::analysis::series::LagPoint;
use crate::analysis::vector;
use crate::clock::format_utc_us;
use crate::clock::ms;
use crate::config::{Config, HttpConfig, ProbeMode};
use crate::samples::{Beat, IoState, Observation, Outcome, StatusSample};

/// The live picture shared between the sample loop and the listeners.
pub type Shared = Arc<Mutex<Live>>;

/// Locks the shared picture. A listener that panicked while holding the lock leaves
/// plain numbers behind, still worth answering with, so a poisoned lock is taken over.
pub fn lock(shared: &Shared) -> MutexGuard<'_, Live> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Which question a check asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// In the read pool: reachable, replicating, lag under the thresholds, fresh.
    Pool,
    /// Reachable and replicating, whatever the lag (for backup pools).
    IgnoreLag,
}

/// A check's answer.
pub use crate::cluster::doc::State;

/// Everything known about one replica, as `/check`, `/status` and `/metrics` show it.
/// Absent facts are `None` (JSON null), never a sentinel number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaDoc {
    pub replica: String,
    pub cluster: String,
    /// Its `host:port` as the config gives it (what tools outside match it by).
    pub address: String,
    /// While the cluster is split and the replica is on a second primary's side: the
    /// part it is measured in (`<cluster>~<second primary>`); its lag is against that
    /// part's beats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    pub state: State,
    /// Short code of the reason (`healthy`, `lagging`, `source_down`, `unreachable`, `io_stopped`,
    /// `sql_stopped`, PostgreSQL's `replay_paused` and `wal_receiver_stopped`, `stale`,
    /// `maintenance`, `starting`, `primary`: a node of a `nodes`
    /// cluster that beats go to now, `split`: on the other side of a split, see `part`).
    pub reason: String,
    /// The reason in words.
    pub detail: String,
    /// When the replica entered its pool state (RFC 3339 UTC); null before any fact.
    pub since: Option<String>,
    /// Lag of the last round that measured one (`bounded` or `at_least`; every field
    /// null before any lag). The upper bound is null when unknown (the primary
    /// acknowledged no beat after the one seen).
    #[serde(flatten)]
    pub lag: LagMs,
    /// The replication vector over the last second (0 keeps up, -1 applies nothing).
    pub vector: Option<f64>,
    /// Time since the newest beat the replica showed was sent, ms (pt-heartbeat's lag).
    pub heartbeat_age_ms: Option<f64>,
    /// Thread states of the main channel; null before the first status poll.
    pub io_running: Option<bool>,
    pub sql_running: Option<bool>,
    /// Seconds_Behind_Master as the server reports it; null when the server says NULL.
    pub seconds_behind_master: Option<u32>,
    pub sql_delay_s: Option<u32>,
    /// Whether SQL_Delay is subtracted from the lag before the thresholds.
    pub ignore_intended_delay: bool,
    pub reads_ok: u64,
    pub reads_failed: u64,
    /// Time of the last read, successful or not (RFC 3339 UTC).
    pub last_read: Option<String>,
    /// How the replica is probed: `poll` or `binlog`; with `probe = "auto"` or
    /// `"binlog"`, null until the replica was first reached.
    pub probe: Option<&'static str>,
    /// Why it is polled where the config asked for the binary log (`probe = "auto"`
    /// found the stream not possible); null otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_note: Option<String>,
    /// What the last connection to it ended as (TLS or not, verified how far); null
    /// before one was made.
    pub tls: Option<crate::samples::security::TlsDoc>,
}

/// The version of [`Snapshot`]'s shape, in `/status` and the status file: raised when a
/// field changes meaning or goes, not when one is added.
pub const STATUS_SCHEMA: u32 = 1;

/// The whole picture at one moment, for `/status` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// The version of this document's shape ([`STATUS_SCHEMA`]).
    pub schema: u32,
    /// The lagtrace that wrote it.
    pub version: &'static str,
    pub started: String,
    pub now: String,
    pub max_lag_ms: f64,
    pub recover_lag_ms: f64,
    pub clusters: Vec<ClusterDoc>,
    /// Failed probe steps by probe (`beat`, `read`, `status`) and outcome name.
    pub probe_errors: BTreeMap<String, BTreeMap<String, u64>>,
    /// Samples the store could not keep up with.
    pub dropped_samples: u64,
    /// Samples dropped because the store could not be written for too long (a full
    /// disk; see `store_writable`).
    pub unstored_samples: u64,
    /// Whether the store takes writes now; while it does not, samples wait in memory.
    pub store_writable: bool,
    /// The recorder's id (`[record] id`): its beats go to `<cluster>#<id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorder: Option<String>,
    /// Whether each cluster may take more batch writes, for the default threshold and
    /// each app of `[throttle]` (`/throttle`).
    pub throttle: Vec<super::throttle::ThrottleDoc>,
}

/// Writes `snapshot` (the `/status` document) to `path` atomically: into a temporary
/// file beside it, then renamed over it, so a reader never sees half a document.
pub fn write_status_file(path: &std::path::Path, snapshot: &Snapshot) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut text = serde_json::to_vec_pretty(snapshot).map_err(std::io::Error::other)?;
    text.push(b'\n');
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterDoc {
    pub cluster: String,
    /// The server beats go to now (it moves with a failover).
    pub primary: PrimaryDoc,
    pub beats_ok: u64,
    pub beats_failed: u64,
    /// Reads that showed a seq this recorder never wrote (a `check`, a second
    /// recorder on the same heartbeat row), and the last such seq.
    pub foreign_beats: u64,
    pub last_foreign_seq: Option<u64>,
    /// Another writer moves this cluster's heartbeat row: foreign beats were read, or a
    /// beat found a newer seq already in the row.
    pub second_writer: bool,
    /// Its beats fail now: an outage of the primary is under way.
    pub beats_failing: bool,
    pub replicas: Vec<ReplicaDoc>,
}

/// A cluster's primary in `/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrimaryDoc {
    pub name: String,
    pub address: String,
    /// What the last connection to it ended as; null before one was made.
    pub tls: Option<crate::samples::security::TlsDoc>,
}

/// The live picture.
#[derive(Debug)]
pub struct Live {
    started_us: i64,
    thresholds: Thresholds,
    maintenance_dir: Option<PathBuf>,
    clusters: Vec<ClusterLive>,
    replicas: Vec<ReplicaLive>,
    probe_errors: BTreeMap<(&'static str, &'static str), u64>,
    dropped_samples: u64,
    unstored_samples: u64,
    store_writable: bool,
    /// The recorder's id, for `/status`.
    recorder: Option<String>,
    /// When batch writers may write (`/throttle`).
    throttle: crate::config::ThrottleConfig,
}

#[derive(Debug)]
struct ClusterLive {
    name: String,
    /// The server beats go to: its name and address.
    primary: (String, String),
    beats_ok: u64,
    beats_failed: u64,
    foreign_beats: u64,
    last_foreign_seq: Option<u64>,
    stale_beats: u64,
    /// Its beats fail now (an outage is under way): its replicas' source may be down.
    failing: bool,
}

#[derive(Debug)]
struct ReplicaLive {
    cluster: usize,
    name: String,
    /// `host:port`, to tell it from its cluster's primary.
    address: String,
    health: Health,
    /// Lag of the last round that measured one (never [`Lag::Unknown`]).
    lag: Option<Lag>,
    /// Send time of the newest beat shown.
    seen_send_us: Option<i64>,
    /// Lag points of the last [`vector::WINDOW_US`], for the vector.
    window: std::collections::VecDeque<LagPoint>,
    vector: Option<f64>,
    io_running: Option<bool>,
    sql_running: Option<bool>,
    seconds_behind_master: Option<u32>,
    sql_delay_s: Option<u32>,
    reads_ok: u64,
    reads_failed: u64,
    last_read_us: Option<i64>,
    /// How it is probed (the binary log stream: true), and why not as configured.
    probe: Option<(bool, Option<String>)>,
    /// While on a split part's side: the part's name and why it is out of the pool.
    split: Option<(String, String)>,
}

impl Live {
    /// One entry per cluster and replica of `config`, in config order (the order the
    /// recorder's slots use), judged with the thresholds of `http`.
    pub fn new(config: &Config, http: &HttpConfig, started_us: i64) -> Live {
        let us = crate::clock::duration_us;
        let base = Thresholds {
            max_lag_us: us(http.max_lag),
            recover_lag_us: us(http.recover_lag),
            min_duration_us: us(http.min_duration),
            stale_us: us(http.stale),
            ignore_intended_delay: false,
            out_when_source_down: http.out_when_source_down,
        };
        let mut clusters = Vec::new();
        let mut replicas = Vec::new();
        for (ci, c) in config.clusters.iter().enumerate() {
            clusters.push(ClusterLive {
                name: c.name.clone(),
                primary: (c.primary_name().to_string(), c.primary.to_string()),
                beats_ok: 0,
                beats_failed: 0,
                foreign_beats: 0,
                last_foreign_seq: None,
                stale_beats: 0,
                failing: false,
            });
            for r in &c.replicas {
                let th = Thresholds {
                    ignore_intended_delay: http.ignore_intended_delay.contains(&r.name),
                    ..base
                };
                replicas.push(ReplicaLive {
                    cluster: ci,
                    name: r.name.clone(),
                    address: r.address.to_string(),
                    health: Health::new(th),
                    lag: None,
                    seen_send_us: None,
                    window: std::collections::VecDeque::new(),
                    vector: None,
                    io_running: None,
                    sql_running: None,
                    seconds_behind_master: None,
                    sql_delay_s: None,
                    reads_ok: 0,
                    reads_failed: 0,
                    last_read_us: None,
                    // A polled replica is polled from the start; a stream (or `auto`
                    // falling back) says so when its probe has started.
                    probe: (c.probe == ProbeMode::Poll).then_some((false, None)),
                    split: None,
                });
            }
        }
        Live {
            started_us,
            thresholds: base,
            maintenance_dir: http.maintenance_dir.clone(),
            clusters,
            replicas,
            probe_errors: BTreeMap::new(),
            dropped_samples: 0,
            unstored_samples: 0,
            store_writable: true,
            recorder: config.record.id.clone(),
            throttle: config.throttle.clone(),
        }
    }

    /// A beat written (or not) on cluster number `cluster`. The first failed beat of an
    /// outage, and the first good one after it, tell its replicas whether their source
    /// may be down (a beat refused as stale reached the primary: it is not an outage).
    pub fn on_beat(&mut self, cluster: usize, beat: &Beat) {
        if let Some(c) = self.clusters.get_mut(cluster) {
            let failing = !matches!(beat.outcome, Outcome::Ok | Outcome::Stale);
            if failing != std::mem::replace(&mut c.failing, failing) {
                let t_us = if failing {
                    beat.t_send_us
                } else {
                    beat.t_done_us
                };
                for r in self.replicas.iter_mut().filter(|r| r.cluster == cluster) {
                    r.health.on_source(t_us, failing);
                }
            }
            if beat.outcome == Outcome::Ok {
                c.beats_ok += 1;
            } else {
                c.beats_failed += 1;
                if beat.outcome == Outcome::Stale {
                    c.stale_beats += 1;
                }
                *self
                    .probe_errors
                    .entry(("beat", beat.outcome.name()))
                    .or_default() += 1;
            }
        }
    }

    /// Replica number `replica` is probed by `probe` from now on (`reason`: why not
    /// as configured).
    pub fn on_probe(&mut self, replica: usize, binlog: bool, reason: Option<String>) {
        if let Some(r) = self.replicas.get_mut(replica) {
            r.probe = Some((binlog, reason));
        }
    }

    /// A read of replica number `replica`, with the lag the recent beats give it
    /// (`None` for a failed read).
    pub fn on_read(&mut self, replica: usize, obs: &Observation, lag: Option<Lag>) {
        let Some(r) = self.replicas.get_mut(replica) else {
            return;
        };
        r.last_read_us = Some(obs.r_start_us);
        if obs.outcome != Outcome::Ok {
            r.reads_failed += 1;
            r.health.on_failure(obs.r_start_us, obs.outcome);
            *self
                .probe_errors
                .entry(("read", obs.outcome.name()))
                .or_default() += 1;
            return;
        }
        r.reads_ok += 1;
        let t_us = obs.r_start_us + (obs.r_end_us - obs.r_start_us) / 2;
        // A read with no lag (its beat's sample is still on its way) still proves the
        // replica answers: it keeps the replica fresh, and leaves the lag as it was.
        let lag = lag.unwrap_or(Lag::Unknown(Unknown::BeforeFirstBeat));
        r.health.on_read(t_us, lag);
        match lag {
            Lag::Bounded { hi_us, .. } => {
                r.lag = Some(lag);
                r.seen_send_us = Some(obs.r_end_us - hi_us);
                r.push_point(LagPoint { t_us, lag });
            }
            Lag::AtLeast { .. } => {
                r.lag = Some(lag);
                r.push_point(LagPoint { t_us, lag });
            }
            Lag::Unknown(Unknown::ForeignBeat { seq }) => {
                let c = &mut self.clusters[r.cluster];
                c.foreign_beats += 1;
                c.last_foreign_seq = Some(seq);
            }
            // The read proves the replica answers, nothing more.
            Lag::Unknown(Unknown::BeforeFirstBeat) => {}
        }
    }

    /// The server beats of cluster number `cluster` go to now (name, address).
    pub fn set_primary(&mut self, cluster: usize, name: &str, address: &str) {
        if let Some(c) = self.clusters.get_mut(cluster)
            && (c.primary.0 != name || c.primary.1 != address)
        {
            c.primary = (name.to_string(), address.to_string());
        }
    }

    /// Replica number `replica` is on the side of a split's part (`Some((part, why))`),
    /// or back on its cluster's (`None`): out of its cluster's pool meanwhile.
    pub fn set_split(&mut self, replica: usize, split: Option<(String, String)>) {
        if let Some(r) = self.replicas.get_mut(replica) {
            r.split = split;
        }
    }

    /// Whether cluster number `cluster` has another writer on its heartbeat row.
    pub fn second_writer(&self, cluster: usize) -> bool {
        self.clusters
            .get(cluster)
            .is_some_and(|c| c.foreign_beats > 0 || c.stale_beats > 0)
    }

    /// A replication status poll of replica number `replica`.
    pub fn on_status(&mut self, replica: usize, status: &StatusSample) {
        let Some(r) = self.replicas.get_mut(replica) else {
            return;
        };
        if status.outcome != Outcome::Ok {
            *self
                .probe_errors
                .entry(("status", status.outcome.name()))
                .or_default() += 1;
        } else {
            match status.main_channel() {
                Some(c) => {
                    r.io_running = Some(c.io == IoState::Yes);
                    r.sql_running = Some(c.sql_running);
                    r.seconds_behind_master = c.seconds_behind_master;
                    r.sql_delay_s = Some(c.sql_delay_s);
                }
                None => {
                    r.io_running = Some(false);
                    r.sql_running = Some(false);
                    r.seconds_behind_master = None;
                    r.sql_delay_s = None;
                }
            }
        }
        r.health.on_status(status);
    }

    /// The store writer's state: samples dropped so far because it fell behind, and
    /// because it could not write for too long; whether it writes now.
    pub fn set_store(&mut self, dropped: u64, unstored: u64, writable: bool) {
        self.dropped_samples = dropped;
        self.unstored_samples = unstored;
        self.store_writable = writable;
    }

    /// The answer to `check` for the replica named `name` at `now_us`; `None` when no
    /// replica has that name.
    pub fn check(&mut self, name: &str, check: Check, now_us: i64) -> Option<ReplicaDoc> {
        let i = self.replicas.iter().position(|r| r.name == name)?;
        Some(self.doc(i, check, now_us))
    }

    /// Cluster number `ci` at `now_us`, its replicas with pool checks.
    fn cluster_doc(&mut self, ci: usize, now_us: i64) -> ClusterDoc {
        let c = &self.clusters[ci];
        let mut doc = ClusterDoc {
            cluster: c.name.clone(),
            primary: PrimaryDoc {
                name: c.primary.0.clone(),
                address: c.primary.1.clone(),
                tls: crate::samples::security::seen(&c.primary.1).map(|s| s.doc()),
            },
            beats_ok: c.beats_ok,
            beats_failed: c.beats_failed,
            foreign_beats: c.foreign_beats,
            last_foreign_seq: c.last_foreign_seq,
            second_writer: c.foreign_beats > 0 || c.stale_beats > 0,
            beats_failing: c.failing,
            replicas: Vec::new(),
        };
        for i in 0..self.replicas.len() {
            if self.replicas[i].cluster == ci {
                doc.replicas.push(self.doc(i, Check::Pool, now_us));
            }
        }
        doc
    }

    /// Whether cluster `cluster` may take more batch writes for `app` (`None`: the
    /// default threshold), at `max_lag` when the asker gives its own; an unknown cluster
    /// or app is an error naming those that exist.
    pub fn throttle(
        &mut self,
        cluster: &str,
        app: Option<&str>,
        max_lag: Option<std::time::Duration>,
        now_us: i64,
    ) -> Result<super::throttle::ThrottleDoc, String> {
        let Some(ci) = self.clusters.iter().position(|c| c.name == cluster) else {
            let known: Vec<&str> = self.clusters.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "no cluster named {cluster:?}: the clusters are {}",
                known.join(", ")
            ));
        };
        let threshold = super::throttle::threshold(&self.throttle, app)?;
        let doc = self.cluster_doc(ci, now_us);
        Ok(self.judge_throttle(&doc, app, max_lag.unwrap_or(threshold)))
    }

    fn judge_throttle(
        &self,
        doc: &ClusterDoc,
        app: Option<&str>,
        max_lag: std::time::Duration,
    ) -> super::throttle::ThrottleDoc {
        let forced = super::throttle::forced(self.throttle.force_dir.as_deref(), &doc.cluster, app);
        super::throttle::judge(doc, &self.throttle, (app, max_lag), forced)
    }

    /// Every cluster and replica at `now_us`, with pool checks.
    pub fn snapshot(&mut self, now_us: i64) -> Snapshot {
        let clusters: Vec<ClusterDoc> = (0..self.clusters.len())
            .map(|ci| self.cluster_doc(ci, now_us))
            .collect();
        // The throttle verdict of every cluster, for the default threshold and each app.
        let apps: Vec<(Option<String>, std::time::Duration)> =
            std::iter::once((None, self.throttle.max_lag))
                .chain(
                    self.throttle
                        .apps
                        .iter()
                        .map(|(a, d)| (Some(a.clone()), *d)),
                )
                .collect();
        let throttle = clusters
            .iter()
            .flat_map(|c| {
                apps.iter()
                    .map(move |(app, max_lag)| (c, app.as_deref(), *max_lag))
            })
            .map(|(c, app, max_lag)| self.judge_throttle(c, app, max_lag))
            .collect();
        let mut probe_errors: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for ((probe, kind), n) in &self.probe_errors {
            probe_errors
                .entry(probe.to_string())
                .or_default()
                .insert(kind.to_string(), *n);
        }
        Snapshot {
            schema: STATUS_SCHEMA,
            version: env!("CARGO_PKG_VERSION"),
            started: format_utc_us(self.started_us),
            now: format_utc_us(now_us),
            max_lag_ms: ms(self.thresholds.max_lag_us),
            recover_lag_ms: ms(self.thresholds.recover_lag_us),
            clusters,
            probe_errors,
            dropped_samples: self.dropped_samples,
            unstored_samples: self.unstored_samples,
            store_writable: self.store_writable,
            recorder: self.recorder.clone(),
            throttle,
        }
    }

    fn in_maintenance(&self, name: &str) -> bool {
        // Names are plain ([A-Za-z0-9_-], checked by the config): safe as a file name.
        self.maintenance_dir
            .as_ref()
            .is_some_and(|dir| dir.join(name).exists())
    }

    fn doc(&mut self, i: usize, check: Check, now_us: i64) -> ReplicaDoc {
        let maintenance = self.in_maintenance(&self.replicas[i].name);
        let c = &self.clusters[self.replicas[i].cluster];
        let cluster = c.name.clone();
        // A node of a `nodes` cluster is probed whatever its role: the primary's own
        // reads say nothing of replication.
        let is_primary = c.primary.1 == self.replicas[i].address;
        let r = &mut self.replicas[i];
        if r.health.state().is_some() {
            r.health.on_time(now_us);
        }
        let (state, reason, detail, since) = if maintenance {
            (
                State::Maintenance,
                "maintenance".to_string(),
                "maintenance file present".to_string(),
                None,
            )
        } else if is_primary {
            (
                State::Out,
                "primary".to_string(),
                "the primary: beats go to it".to_string(),
                None,
            )
        } else if let Some((_, why)) = &r.split {
            (State::Out, "split".to_string(), why.clone(), None)
        } else {
            let (pool, why, since) = match (check, r.health.state()) {
                (Check::Pool, Some((pool, since_us, why))) => {
                    (pool, why.clone(), Some(format_utc_us(since_us)))
                }
                (Check::IgnoreLag, Some(_)) => match r.health.verdict(now_us) {
                    (_, why @ (Reason::Healthy { .. } | Reason::Lagging { .. })) => {
                        (Pool::In, why, None)
                    }
                    (pool, why) => (pool, why, None),
                },
                (_, None) => (Pool::In, Reason::Healthy { lag_us: 0 }, None),
            };
            // In needs facts, not their absence: a lag the state machine judged (not
            // "at least" a little, which a replica far behind also shows to a recorder
            // that just started), or, ignoring lag, a successful read; and the threads'
            // state from a status poll.
            let measured = match check {
                Check::Pool => r.lag.is_some() && r.health.state().is_some(),
                Check::IgnoreLag => r.reads_ok > 0,
            };
            if pool == Pool::In && !(measured && r.io_running.is_some()) {
                (
                    State::Out,
                    "starting".to_string(),
                    "no lag measured or no status polled yet".to_string(),
                    None,
                )
            } else {
                let state = if pool == Pool::In {
                    State::In
                } else {
                    State::Out
                };
                (state, why.code().to_string(), why.to_string(), since)
            }
        };
        ReplicaDoc {
            replica: r.name.clone(),
            cluster,
            address: r.address.clone(),
            part: r.split.as_ref().map(|(p, _)| p.clone()),
            state,
            reason,
            detail,
            since,
            lag: LagMs::of(r.lag),
            vector: r.vector,
            heartbeat_age_ms: r.seen_send_us.map(|t| ms(now_us - t)),
            io_running: r.io_running,
            sql_running: r.sql_running,
            seconds_behind_master: r.seconds_behind_master,
            sql_delay_s: r.sql_delay_s,
            ignore_intended_delay: r.health.thresholds().ignore_intended_delay,
            reads_ok: r.reads_ok,
            reads_failed: r.reads_failed,
            last_read: r.last_read_us.map(format_utc_us),
            probe: r
                .probe
                .as_ref()
                .map(|(binlog, _)| if *binlog { "binlog" } else { "poll" }),
            probe_note: r.probe.as_ref().and_then(|(_, why)| why.clone()),
            tls: crate::samples::security::seen(&r.address).map(|s| s.doc()),
        }
    }
}

impl ReplicaDoc {
    /// The replica's check as the cluster's events take it.
    pub fn judged(&self) -> crate::cluster::events::Judged<'_> {
        crate::cluster::events::Judged {
            replica: &self.replica,
            state: self.state,
            reason: &self.reason,
            detail: &self.detail,
            lag_lo_ms: self.lag.lag_lo_ms,
            lag_hi_ms: self.lag.lag_hi_ms,
            vector: self.vector,
            sql_delay_s: self.sql_delay_s,
        }
    }
}

impl ReplicaLive {
    /// Keeps the points of the last vector window and refits the vector.
    fn push_point(&mut self, p: LagPoint) {
        let from_us = p.t_us - vector::WINDOW_US;
        // Oldest first: drop from the front without moving the rest.
        while self.window.front().is_some_and(|q| q.t_us <= from_us) {
            self.window.pop_front();
        }
        self.window.push_back(p);
        let covered = p.t_us - self.window.front().map_or(p.t_us, |q| q.t_us);
        self.vector = (covered * 2 >= vector::WINDOW_US)
            .then(|| vector::fit_iter(&self.window))
            .flatten()
            .map(|f| f.vector());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::ChannelStatus;

    const S: i64 = 1_000_000;

    fn live(maintenance_dir: Option<PathBuf>) -> Live {
        let config = crate::config::parse(
            "t.toml",
            "[[cluster]]\nname = \"c\"\nprimary = \"h1\"\n\
             replicas = { r1 = \"h2\", r2 = \"h3\" }\n[http]\n",
        )
        .unwrap();
        let mut http = config.http.clone().unwrap();
        http.maintenance_dir = maintenance_dir;
        Live::new(&config, &http, 0)
    }

    fn read(t_us: i64) -> Observation {
        Observation {
            r_start_us: t_us,
            r_end_us: t_us + 1000,
            seq: Some(1),
            outcome: Outcome::Ok,
            reason: None,
            follow_up: false,
            probe: Default::default(),
        }
    }

    fn running(t_us: i64, sql_running: bool) -> StatusSample {
        StatusSample {
            postgres: None,
            t_us,
            duration_us: 100,
            outcome: Outcome::Ok,
            reason: None,
            channels: vec![ChannelStatus {
                sql_running,
                seconds_behind_master: sql_running.then_some(0),
                ..ChannelStatus::running()
            }],
        }
    }

    fn bounds(lo_us: i64, hi_us: i64) -> Option<Lag> {
        Some(Lag::Bounded { lo_us, hi_us })
    }

    #[test]
    fn unknown_replica_and_nothing_known_yet() {
        let mut l = live(None);
        assert_eq!(l.check("r9", Check::Pool, 0), None);
        let d = l.check("r1", Check::Pool, 0).unwrap();
        assert_eq!((d.state, d.reason.as_str()), (State::Out, "starting"));
        assert_eq!((d.lag.lag_ms, d.io_running, d.since), (None, None, None));
    }

    #[test]
    fn lag_takes_a_replica_out_and_ignore_lag_keeps_it() {
        let mut l = live(None);
        l.on_status(0, &running(0, true));
        for k in 0..20 {
            l.on_read(0, &read(k * S / 10), bounds(1000, 3000));
        }
        let d = l.check("r1", Check::Pool, 2 * S).unwrap();
        assert_eq!((d.state, d.reason.as_str()), (State::In, "healthy"));
        assert_eq!(
            (d.lag.lag_ms, d.lag.lag_lo_ms, d.lag.lag_hi_ms),
            (Some(2.0), Some(1.0), Some(3.0))
        );
        assert!(d.vector.unwrap().abs() < 1e-9, "{:?}", d.vector);
        assert_eq!(d.seconds_behind_master, Some(0));
        // Falling behind one second per second from 2 s on.
        for k in 20..40 {
            let lag = (k - 20) * S / 10;
            l.on_read(0, &read(k * S / 10), bounds(lag, lag + 2000));
        }
        let d = l.check("r1", Check::Pool, 4 * S).unwrap();
        assert_eq!((d.state, d.reason.as_str()), (State::Out, "lagging"));
        assert!((d.vector.unwrap() + 1.0).abs() < 1e-6, "{:?}", d.vector);
        let d = l.check("r1", Check::IgnoreLag, 4 * S).unwrap();
        assert_eq!(d.state, State::In);
        // A stopped SQL thread is out for both checks.
        l.on_status(1, &running(4 * S, false));
        l.on_status(0, &running(4 * S, false));
        let d = l.check("r1", Check::IgnoreLag, 4 * S).unwrap();
        assert_eq!((d.state, d.reason.as_str()), (State::Out, "sql_stopped"));
        assert_eq!(d.seconds_behind_master, None);
    }

    #[test]
    fn a_failed_read_is_unreachable_and_silence_goes_stale() {
        let mut l = live(None);
        l.on_status(0, &running(0, true));
        l.on_read(0, &read(0), bounds(0, 1000));
        let mut failed = read(S);
        failed.outcome = Outcome::Refused;
        failed.seq = None;
        l.on_read(0, &failed, None);
        let d = l.check("r1", Check::Pool, S).unwrap();
        assert_eq!((d.state, d.reason.as_str()), (State::Out, "unreachable"));
        assert_eq!(d.reads_failed, 1);
        l.on_read(0, &read(2 * S), bounds(0, 1000));
        assert_eq!(l.check("r1", Check::Pool, 2 * S).unwrap().state, State::In);
        let d = l.check("r1", Check::Pool, 6 * S).unwrap();
        assert_eq!((d.state, d.reason.as_str()), (State::Out, "stale"));
        let snap = l.snapshot(6 * S);
        assert_eq!(snap.probe_errors["read"]["refused"], 1);
        assert_eq!(snap.clusters[0].replicas.len(), 2);
    }

    #[test]
    fn a_polled_replica_says_so_from_the_start_and_a_fallback_says_why() {
        let mut l = live(None);
        let d = l.check("r1", Check::Pool, 0).unwrap();
        assert_eq!((d.probe, d.probe_note), (Some("poll"), None));
        l.on_probe(1, true, None);
        assert_eq!(l.check("r2", Check::Pool, 0).unwrap().probe, Some("binlog"));
        l.on_probe(1, false, Some("its binary log is off (log_bin)".into()));
        let d = l.check("r2", Check::Pool, 0).unwrap();
        assert_eq!(d.probe, Some("poll"));
        assert_eq!(
            d.probe_note.as_deref(),
            Some("its binary log is off (log_bin)")
        );
    }

    #[test]
    fn at_least_above_max_lag_is_lagging_with_no_upper_bound() {
        let mut l = live(None);
        l.on_status(0, &running(0, true));
        l.on_read(0, &read(0), Some(Lag::AtLeast { lo_us: 5 * S }));
        let d = l.check("r1", Check::Pool, S / 10).unwrap();
        assert_eq!((d.state, d.reason.as_str()), (State::Out, "lagging"));
        assert_eq!(
            (
                d.lag.lag_ms,
                d.lag.lag_kind,
                d.lag.lag_lo_ms,
                d.lag.lag_hi_ms
            ),
            (Some(5000.0), Some("at_least"), Some(5000.0), None)
        );
    }

    #[test]
    fn a_frozen_primary_keeps_replicas_in_and_foreign_beats_are_counted() {
        let mut l = live(None);
        l.on_status(0, &running(0, true));
        l.on_read(0, &read(0), bounds(0, 1000));
        for k in 1..=80 {
            l.on_read(0, &read(k * S / 10), Some(Lag::AtLeast { lo_us: 0 }));
        }
        let d = l.check("r1", Check::Pool, 8 * S).unwrap();
        assert_eq!(
            (d.state, d.lag.lag_ms, d.lag.lag_hi_ms),
            (State::In, Some(0.0), None)
        );
        assert!(!l.second_writer(0));
        l.on_read(
            0,
            &read(9 * S),
            Some(Lag::Unknown(Unknown::ForeignBeat { seq: 77 })),
        );
        assert!(l.second_writer(0));
        let snap = l.snapshot(9 * S);
        assert_eq!(
            (
                snap.clusters[0].foreign_beats,
                snap.clusters[0].last_foreign_seq
            ),
            (1, Some(77))
        );
    }

    /// After a failover to r1 it is the primary: out of the replicas' pool, whatever its
    /// reads say, and in /status as the cluster's primary.
    #[test]
    fn the_server_beats_go_to_is_out_as_the_primary() {
        let mut l = live(None);
        l.on_status(0, &running(0, true));
        l.on_read(0, &read(0), bounds(0, 1000));
        assert_eq!(l.check("r1", Check::Pool, S).unwrap().state, State::In);
        l.set_primary(0, "r1", "h2:3306");
        let d = l.check("r1", Check::Pool, S).unwrap();
        assert_eq!((d.state, d.reason.as_str()), (State::Out, "primary"));
        let snap = l.snapshot(S);
        assert_eq!(snap.clusters[0].primary.name, "r1");
        l.set_primary(0, "primary", "h1:3306");
        assert_eq!(l.check("r1", Check::Pool, S).unwrap().state, State::In);
    }

    #[test]
    fn a_maintenance_file_wins_over_everything() {
        let dir = std::env::temp_dir().join(format!("lagtrace-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut l = live(Some(dir.clone()));
        l.on_status(0, &running(0, true));
        l.on_read(0, &read(0), bounds(0, 1000));
        assert_eq!(l.check("r1", Check::Pool, S / 10).unwrap().state, State::In);
        std::fs::write(dir.join("r1"), "").unwrap();
        let d = l.check("r1", Check::Pool, S / 10).unwrap();
        assert_eq!(
            (d.state, d.reason.as_str()),
            (State::Maintenance, "maintenance")
        );
        assert_eq!(
            l.check("r1", Check::IgnoreLag, S / 10).unwrap().state,
            State::Maintenance
        );
        assert_eq!(
            l.check("r2", Check::Pool, S / 10).unwrap().reason,
            "starting"
        );
        std::fs::remove_file(dir.join("r1")).unwrap();
        assert_eq!(l.check("r1", Check::Pool, S / 10).unwrap().state, State::In);
        std::fs::remove_dir(&dir).unwrap();
    }
}
