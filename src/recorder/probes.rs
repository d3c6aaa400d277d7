//! Which probe tasks a cluster needs while it may be split: a reader per replica against
//! the beats of the side it is on, and a beat writer per split part (see
//! `cluster::split`). Pure: [`ClusterProbes::reconcile`] compares what runs with what
//! the cluster's events say, and says what to start and stop as [`Effect`]s, and what
//! the recorder must learn as [`Change`]s. Nothing here measures anything.

use std::collections::{BTreeMap, HashMap};

use super::{ClusterId, Effect, ReaderTask, ReplicaId, Slot, WriterTask};
use crate::cluster::events::ClusterEvents;
use crate::cluster::split::{Side, part_name};
use crate::config::{Address, ClusterConfig, Kind, ProbeMode};
use crate::probe::schema;
use crate::store::{cluster_key, replica_key};

/// What the recorder must learn when replicas change sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A part's beats start: its beats are matched from now, under this id.
    PartUp(ClusterId),
    /// A part's writer stopped.
    PartDown(ClusterId),
    /// The replica in `slot` is on the side of the part named here, and why it is out
    /// of its cluster's pool; `None`: back on its cluster's side.
    Side {
        slot: Slot,
        split: Option<(String, String)>,
    },
    /// The replica in `slot` is read as `id` against the beats of `beats`, the cluster
    /// (or part) named `cluster`.
    Reads {
        slot: Slot,
        id: ReplicaId,
        beats: ClusterId,
        cluster: String,
    },
}

/// One replica and the side it is read on.
#[derive(Debug, Clone)]
pub struct ReplicaProbe {
    name: String,
    address: Address,
    /// Its id as the cluster's replica.
    id: ReplicaId,
    slot: Slot,
    side: Side,
}

impl ReplicaProbe {
    pub fn new(name: &str, address: &Address, id: ReplicaId, slot: Slot) -> ReplicaProbe {
        ReplicaProbe {
            name: name.to_string(),
            address: address.clone(),
            id,
            slot,
            side: Side::Cluster,
        }
    }
}

/// A cluster's readers, and its split parts (its own beat writer runs all along).
#[derive(Debug, Clone)]
pub struct ClusterProbes {
    name: String,
    /// The heartbeat rows this recorder's beats go to: the cluster's, and its split
    /// parts' ([`schema::recorder_row`], [`schema::split_row`]).
    row: String,
    split_row: String,
    kind: Kind,
    probe: ProbeMode,
    id: ClusterId,
    replicas: Vec<ReplicaProbe>,
    /// The running parts: per second primary, by name, the part's id.
    parts: BTreeMap<String, ClusterId>,
}

impl ClusterProbes {
    /// The probes of `cluster` (stored as `id`) over `replicas`, for the recorder named
    /// `recorder` (`None`: the cluster's own rows).
    pub fn new(
        cluster: &ClusterConfig,
        id: ClusterId,
        replicas: Vec<ReplicaProbe>,
        recorder: Option<&str>,
    ) -> ClusterProbes {
        ClusterProbes {
            name: cluster.name.clone(),
            row: schema::recorder_row(&cluster.name, recorder),
            split_row: schema::split_row(&cluster.name, recorder),
            kind: cluster.kind,
            probe: cluster.probe,
            id,
            replicas,
            parts: BTreeMap::new(),
        }
    }

    /// A reader on each replica, against the cluster's beats.
    pub fn start_readers(&self) -> Vec<Effect> {
        self.replicas
            .iter()
            .map(|r| Effect::StartReader(self.reader(r, r.id, &self.name, self.id, &self.row)))
            .collect()
    }

    fn reader(
        &self,
        r: &ReplicaProbe,
        id: ReplicaId,
        cluster: &str,
        beats: ClusterId,
        row: &str,
    ) -> ReaderTask {
        ReaderTask {
            slot: r.slot,
            id,
            kind: self.kind,
            probe: self.probe,
            cluster: cluster.to_string(),
            row: row.to_string(),
            replica: r.name.clone(),
            address: r.address.clone(),
            beats,
        }
    }

    /// Starts and stops parts and readers to match what `events` says of the split
    /// (`ids`: the interned ids of `cluster::split::part_keys`): the tasks go to `out`,
    /// what the recorder must learn is returned.
    pub fn reconcile(
        &mut self,
        events: &ClusterEvents,
        ids: &HashMap<String, u32>,
        out: &mut Vec<Effect>,
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
            if let Some(id) = self.parts.remove(&name) {
                out.push(Effect::StopWriter(id));
                changes.push(Change::PartDown(id));
            }
        }
        for node in wanted {
            if self.parts.contains_key(&node) {
                continue;
            }
            let part = part_name(&self.name, &node);
            let (Some(&id), Some(r)) = (
                ids.get(&cluster_key(&part)),
                self.replicas.iter().find(|r| r.name == node),
            ) else {
                continue;
            };
            let id = ClusterId(id);
            // The part's writer stays on its primary: when that stops taking writes,
            // the split ends and the part with it.
            out.push(Effect::StartWriter(WriterTask {
                id,
                name: part.clone(),
                kind: self.kind,
                row: self.split_row.clone(),
                primary: r.address.clone(),
                others: Vec::new(),
            }));
            tracing::warn!(cluster = %self.name, part = %part, "the split's second primary gets beats of its own; the replicas that follow it are measured against them");
            self.parts.insert(node, id);
            changes.push(Change::PartUp(id));
        }
        for i in 0..self.replicas.len() {
            let side = events.side(&self.replicas[i].name);
            if side == self.replicas[i].side {
                continue;
            }
            let r = &self.replicas[i];
            // The old reader stops before the new one starts.
            out.push(Effect::StopReader(r.slot));
            let target = match &side {
                Side::Cluster => Some(self.reader(r, r.id, &self.name, self.id, &self.row)),
                Side::Part(node) => self.parts.get(node).and_then(|&beats| {
                    let part = part_name(&self.name, node);
                    let id = ReplicaId(*ids.get(&replica_key(&part, &r.name))?);
                    Some(self.reader(r, id, &part, beats, &self.split_row))
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
                slot: r.slot,
                split,
            });
            if let Some(task) = target {
                changes.push(Change::Reads {
                    slot: task.slot,
                    id: task.id,
                    beats: task.beats,
                    cluster: task.cluster.clone(),
                });
                out.push(Effect::StartReader(task));
            }
            self.replicas[i].side = side;
        }
        changes
    }
}
