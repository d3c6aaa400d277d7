//! `record`'s probe tasks per cluster, and the parts of a split cluster.
//!
//! A cluster with two primaries (a split, see `ClusterEvents`) is measured as two: the
//! cluster keeps its beats and the replicas that follow its primary (or neither), and
//! each second primary gets a part of its own: a beat writer on it, under the cluster
//! name `<cluster>~<node>` ([`part_name`]) and on the heartbeat row `<cluster>#split`,
//! and readers on the replicas that follow it, matched against that part's beats. Read
//! against the cluster's beats, they would show a lag growing without end while they
//! are in step with the primary they follow. When the split ends the part's writer
//! stops and its replicas are read against the cluster's beats again.
//!
//! Which side each replica is on is `ClusterEvents::side`'s answer; [`ClusterProbes`]
//! starts and stops tasks to match it and tells the record loop where each replica's
//! reads now go ([`Change`]). Nothing here measures anything: it only wires probes.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::config::{Address, ConnectionConfig, Kind, ProbeMode, Secret};
use crate::output::triggers::{ClusterEvents, Side};
use crate::probe::beat::{self, BeatNotice, BeatWriter};
use crate::probe::{binlog, reader, schema, status};
use crate::samples::Sample;
use crate::store::{cluster_key, replica_key};

/// The cluster name a split part's samples are stored under: `<cluster>~<node>`, with
/// `node` the second primary (`~` never appears in a configured name).
pub fn part_name(cluster: &str, node: &str) -> String {
    format!("{cluster}~{node}")
}

/// The store keys every possible part of a cluster needs (one per replica that could
/// become a second primary, and its every other replica), interned at the start so
/// that a split never waits on the store. A key with no samples is not shown anywhere.
pub fn part_keys(cluster: &str, replicas: &[String]) -> Vec<String> {
    let mut keys = Vec::new();
    for node in replicas {
        let part = part_name(cluster, node);
        keys.push(cluster_key(&part));
        keys.extend(
            replicas
                .iter()
                .filter(|r| *r != node)
                .map(|r| replica_key(&part, r)),
        );
    }
    keys
}

/// A task that runs until this is dropped (or the recorder stops).
pub struct Stop {
    _tx: oneshot::Sender<()>,
}

/// Starts probe tasks, all sending to the record loop's sample channel, until the
/// recorder stops: then it holds no sender any more, so that the channel closes once
/// the last task has ended.
pub struct Spawner {
    samples: Option<mpsc::Sender<Sample>>,
    shutdown: watch::Receiver<bool>,
    settings: ConnectionConfig,
    password: Secret,
    /// Beat interval.
    interval: Duration,
    /// Read after every n-th beat.
    read_every: u32,
    /// Mean time between status polls.
    status_every: Duration,
    /// Binary log streams register as this plus their replica's id.
    binlog_server_id: u32,
    clock: Clock,
}

impl Spawner {
    pub fn new(
        samples: mpsc::Sender<Sample>,
        shutdown: watch::Receiver<bool>,
        config: &crate::config::Config,
        password: &Secret,
        clock: Clock,
    ) -> Spawner {
        Spawner {
            samples: Some(samples),
            shutdown,
            settings: config.connection.clone(),
            password: password.clone(),
            interval: config.record.interval,
            read_every: config.record.read_every,
            status_every: config.record.status_every,
            binlog_server_id: config.record.binlog_server_id,
            clock,
        }
    }

    /// The recorder stops: no task starts from here on.
    pub fn stop(&mut self) {
        self.samples = None;
    }

    /// Runs `task` until the recorder stops or the returned [`Stop`] is dropped;
    /// `None` (nothing started) once the recorder stops.
    fn spawn<F>(
        &self,
        task: impl FnOnce(mpsc::Sender<Sample>, watch::Receiver<bool>) -> F,
    ) -> Option<Stop>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let samples = self.samples.clone()?;
        let (tx, rx) = oneshot::channel::<()>();
        let run = task(samples, self.shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = run => {}
                // Sent never: dropping the sender ends the task.
                _ = rx => {}
            }
        });
        Some(Stop { _tx: tx })
    }

    /// A beat writer of cluster (or part) `cluster` on the row `row` (created when it
    /// is not the cluster's own), starting on `primary`, looking among `others` for a
    /// new primary when it fails.
    pub fn beat_writer(
        &self,
        (cluster_id, kind): (u32, Kind),
        cluster: &str,
        row: String,
        primary: Address,
        others: Vec<Address>,
    ) -> BeatWriter {
        BeatWriter {
            cluster_id,
            cluster: cluster.to_string(),
            kind,
            ensure_row: row != cluster,
            row,
            primary,
            others,
            settings: self.settings.clone(),
            password: self.password.clone(),
            interval: self.interval,
            clock: self.clock,
        }
    }

    /// Runs `w`, publishing its acknowledged beats on `notices` and where they go on
    /// `primary_now`.
    pub fn writer(
        &self,
        w: BeatWriter,
        notices: watch::Sender<BeatNotice>,
        primary_now: watch::Sender<Address>,
    ) -> Option<Stop> {
        self.spawn(|out, shutdown| beat::run(w, out, notices, primary_now, shutdown))
    }

    /// The status poller of `replica` (as `replica_id`, of `cluster`): it runs until
    /// the recorder stops, whichever side the replica is on.
    pub fn poller(
        &self,
        (replica_id, kind): (u32, Kind),
        cluster: &str,
        replica: &str,
        address: &Address,
    ) {
        let p = status::Poller {
            replica_id,
            kind,
            cluster: cluster.to_string(),
            replica: replica.to_string(),
            address: address.clone(),
            settings: self.settings.clone(),
            password: self.password.clone(),
            every: self.status_every,
            clock: self.clock,
        };
        if let Some(out) = self.samples.clone() {
            tokio::spawn(status::run(p, out, self.shutdown.clone()));
        }
    }

    /// A reader of `replica` (as `replica_id`, of `cluster`) reading row `row` after
    /// each beat `notices` announces, or with `probe` other than poll, following its
    /// binary log (`probe::binlog`).
    pub fn reader(
        &self,
        (replica_id, kind, probe): (u32, Kind, ProbeMode),
        cluster: &str,
        row: String,
        replica: &ReplicaProbe,
        notices: watch::Receiver<BeatNotice>,
    ) -> Option<Stop> {
        let r = reader::Reader {
            replica_id,
            cluster: cluster.to_string(),
            kind,
            row,
            replica: replica.name.clone(),
            address: replica.address.clone(),
            settings: self.settings.clone(),
            password: self.password.clone(),
            interval: self.interval,
            read_every: self.read_every,
            clock: self.clock,
        };
        if probe == ProbeMode::Poll {
            return self.spawn(|out, shutdown| reader::run(r, out, notices, shutdown));
        }
        let b = binlog::Binlog {
            reader: r,
            mode: probe,
            server_id: self.binlog_server_id.saturating_add(replica_id),
        };
        self.spawn(|out, shutdown| binlog::run(b, out, notices, shutdown))
    }
}

/// What the record loop must learn when replicas change sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A part's beats start: its beats are matched from now, under `cluster_id`.
    PartUp { cluster_id: u32 },
    /// A part's writer stopped.
    PartDown { cluster_id: u32 },
    /// The replica of view `view` is on the side of the part named here, and why it
    /// is out of its cluster's pool; `None`: back on its cluster's side.
    Side {
        view: usize,
        split: Option<(String, String)>,
    },
    /// The replica of view `view` is read as `replica_id` against the beats of
    /// `cluster_id`, the cluster (or part) named `cluster`.
    Reads {
        view: usize,
        replica_id: u32,
        cluster_id: u32,
        cluster: String,
    },
}

/// One replica's reader and the side it reads.
pub struct ReplicaProbe {
    pub name: String,
    pub address: Address,
    /// Its id as the cluster's replica.
    pub id: u32,
    /// Its index among the record loop's views (and the live picture's replicas).
    pub view: usize,
    side: Side,
    reader: Option<Stop>,
}

impl ReplicaProbe {
    pub fn new(name: &str, address: &Address, id: u32, view: usize) -> ReplicaProbe {
        ReplicaProbe {
            name: name.to_string(),
            address: address.clone(),
            id,
            view,
            side: Side::Cluster,
            reader: None,
        }
    }
}

/// A running part of a split cluster.
struct Part {
    cluster_id: u32,
    notices: watch::Receiver<BeatNotice>,
    _writer: Option<Stop>,
}

/// A cluster's readers, and the writers of its parts while it is split (its own beat
/// writer is started by the record loop).
pub struct ClusterProbes {
    name: String,
    kind: Kind,
    probe: ProbeMode,
    cluster_id: u32,
    /// The cluster's own beats.
    notices: watch::Receiver<BeatNotice>,
    replicas: Vec<ReplicaProbe>,
    /// Per second primary, by name.
    parts: BTreeMap<String, Part>,
}

impl ClusterProbes {
    /// Starts a reader on each of `replicas`, against the cluster's beats.
    pub fn start(
        (name, kind, probe): (&str, Kind, ProbeMode),
        cluster_id: u32,
        notices: watch::Receiver<BeatNotice>,
        mut replicas: Vec<ReplicaProbe>,
        spawner: &Spawner,
    ) -> ClusterProbes {
        for r in &mut replicas {
            let id = (r.id, kind, probe);
            r.reader = spawner.reader(id, name, name.to_string(), r, notices.clone());
        }
        ClusterProbes {
            name: name.to_string(),
            kind,
            probe,
            cluster_id,
            notices,
            replicas,
            parts: BTreeMap::new(),
        }
    }

    /// Starts and stops parts and readers to match what `events` says of the split
    /// (`ids`: the interned ids of [`part_keys`]).
    pub fn reconcile(
        &mut self,
        events: &ClusterEvents,
        spawner: &Spawner,
        ids: &HashMap<String, u32>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let wanted = events.parts();
        let gone: Vec<String> = self
            .parts
            .keys()
            .filter(|p| !wanted.contains(p))
            .cloned()
            .collect();
        for name in gone {
            if let Some(part) = self.parts.remove(&name) {
                changes.push(Change::PartDown {
                    cluster_id: part.cluster_id,
                });
            }
        }
        for node in wanted {
            if self.parts.contains_key(&node) {
                continue;
            }
            let part = part_name(&self.name, &node);
            let (Some(&cluster_id), Some(r)) = (
                ids.get(&cluster_key(&part)),
                self.replicas.iter().find(|r| r.name == node),
            ) else {
                continue;
            };
            let (notice_tx, notices) = watch::channel(BeatNotice::default());
            // The part's writer stays on its primary: when that stops taking writes,
            // the split ends and the part with it.
            let w = spawner.beat_writer(
                (cluster_id, self.kind),
                &part,
                schema::split_row(&self.name),
                r.address.clone(),
                Vec::new(),
            );
            let writer = spawner.writer(w, notice_tx, watch::channel(r.address.clone()).0);
            tracing::warn!(cluster = %self.name, part = %part, "the split's second primary gets beats of its own; the replicas that follow it are measured against them");
            self.parts.insert(
                node,
                Part {
                    cluster_id,
                    notices,
                    _writer: writer,
                },
            );
            changes.push(Change::PartUp { cluster_id });
        }
        for r in &mut self.replicas {
            let side = events.side(&r.name);
            if side == r.side {
                continue;
            }
            // The old reader stops before the new one starts.
            r.reader = None;
            let target = match &side {
                Side::Cluster => Some((
                    r.id,
                    self.cluster_id,
                    self.name.clone(),
                    self.name.clone(),
                    self.notices.clone(),
                )),
                Side::Part(node) => self.parts.get(node).and_then(|p| {
                    let part = part_name(&self.name, node);
                    let id = *ids.get(&replica_key(&part, &r.name))?;
                    Some((
                        id,
                        p.cluster_id,
                        part,
                        schema::split_row(&self.name),
                        p.notices.clone(),
                    ))
                }),
                Side::PartPrimary(_) => None,
            };
            tracing::info!(cluster = %self.name, replica = %r.name, side = ?side, "the replica changes sides");
            let split = match &side {
                Side::Cluster => None,
                Side::Part(node) => {
                    let part = part_name(&self.name, node);
                    let why = format!(
                        "follows {node}, which takes writes beside the primary (a split); measured in {part}"
                    );
                    Some((part, why))
                }
                Side::PartPrimary(node) => {
                    let part = part_name(&self.name, node);
                    let why =
                        format!("takes writes beside the primary (a split); the primary of {part}");
                    Some((part, why))
                }
            };
            changes.push(Change::Side {
                view: r.view,
                split,
            });
            r.side = side;
            if let Some((replica_id, cluster_id, cluster, row, notices)) = target {
                let id = (replica_id, self.kind, self.probe);
                r.reader = spawner.reader(id, &cluster, row, r, notices);
                changes.push(Change::Reads {
                    view: r.view,
                    replica_id,
                    cluster_id,
                    cluster,
                });
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_keys_name_every_part_and_its_other_replicas() {
        let keys = part_keys("lab", &["r1".into(), "r2".into()]);
        assert_eq!(keys, ["c/lab~r1", "r/lab~r1/r2", "c/lab~r2", "r/lab~r2/r1"]);
    }
}
