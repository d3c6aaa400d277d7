//! The recorder: every live decision of `lagtrace record`, as a pure core.
//!
//! [`Recorder`] takes the probes' samples ([`Recorder::on_sample`]) and the passing of
//! time ([`Recorder::on_tick`], once a second) and returns [`Effect`]s: store this
//! sample, fire that event, start or stop this probe task, write the status file. It
//! does no I/O and reads no clock, so a test can drive it with scripted samples and
//! simulated time, and check what it decides (`tests` below). It owns, per cluster, a
//! [`ClusterRuntime`]: the cluster's state machine (`cluster::events`), its recent
//! beats for live lag, and which of its replicas are read against which beats
//! ([`probes`]); and the live picture the checks answer from (`output::live`, shared
//! with the HTTP listener).
//!
//! [`shell`] is the async part: it runs the probe tasks, moves samples in and carries
//! the effects out.

pub mod probes;
pub mod recent;
pub mod shell;

#[cfg(test)]
mod matrix;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Duration;

use crate::analysis::lag::{Lag, Unknown};
use crate::cluster::doc::{ClusterState, Event, ProbeEvent};
use crate::cluster::events::{ClusterEvents, Judged};
use crate::config::{Address, Config, Kind, ProbeMode};
use crate::output::console::{ReplicaView, Totals};
use crate::output::live::{self, Shared, Snapshot};
use crate::samples::{Outcome, Probed, Sample};
use probes::ClusterProbes;
use recent::RecentBeats;

/// A cluster's (or a split part's) id: its key interned in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId(pub u32);

/// A replica's id as read against one cluster's (or part's) beats: its key interned in
/// the store. A replica of a split cluster has another while it is on a part's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaId(pub u32);

/// A replica's place among the recorder's replicas: its console view and its entry in
/// the live picture (config order, a `nodes` cluster's primary included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(pub usize);

/// How long live lag looks back over each cluster's beats: a replica further behind
/// than this gets a floor live (the offline analysis still bounds it).
const RECENT_BEATS_WINDOW: Duration = Duration::from_secs(20 * 60);
/// Bounds on the beats that window holds (24 bytes each, allocated at start): 20
/// minutes at 100 ms is 12 000 beats, at 10 ms 120 000 (2.9 MB), at 1 ms the cap.
const RECENT_BEATS_MIN: usize = 1 << 10;
const RECENT_BEATS_MAX: usize = 1 << 17;

/// A beat writer to start: on `primary`, writing row `row` for the cluster (or part)
/// `name`, looking among `others` for the primary when it stops taking writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterTask {
    pub id: ClusterId,
    pub name: String,
    pub kind: Kind,
    pub row: String,
    pub primary: Address,
    pub others: Vec<Address>,
}

/// A reader to start for the replica in `slot`: as `id` of the cluster (or part)
/// `cluster`, reading row `row` after each beat of `beats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderTask {
    pub slot: Slot,
    pub id: ReplicaId,
    pub kind: Kind,
    pub probe: ProbeMode,
    pub cluster: String,
    pub row: String,
    pub replica: String,
    pub address: Address,
    pub beats: ClusterId,
}

/// A status poller to start: it polls `address` as `id` until the recorder stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollerTask {
    pub id: ReplicaId,
    pub kind: Kind,
    pub cluster: String,
    pub replica: String,
    pub address: Address,
}

/// What the recorder decided; the shell carries it out, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Append this to the store.
    Store(Sample),
    /// A change in a cluster: store it (a `heartbeat` is only a hook, never stored)
    /// and run its trigger.
    Fire(Box<Event>),
    StartWriter(WriterTask),
    /// Stop the writer of this split part.
    StopWriter(ClusterId),
    StartReader(ReaderTask),
    /// Stop the reader of the replica in this slot (another starts after it, or none).
    StopReader(Slot),
    StartPoller(PollerTask),
    /// Send the lag the slot's replica just got to statsd (`view(slot).lag`).
    LagMetric(Slot),
    /// Send the slot's replica's main channel from its last status poll to statsd.
    StatusMetric(Slot),
    /// Write the status file from this snapshot.
    StatusFile(Snapshot),
    /// Send each cluster's throttle verdicts (every tick) to statsd.
    ThrottleMetrics(Vec<crate::output::throttle::ThrottleDoc>),
}

/// How the store writer is doing, as the shell sees it at a tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreHealth {
    /// Samples dropped because the store fell behind.
    pub dropped: u64,
    /// Samples not stored because the store could not be written.
    pub unstored: u64,
    /// The last write failed.
    pub failing: bool,
}

/// The ids the store interned for the recorder: each cluster's (config order), each
/// replica's (config order, after `probe_every_node`), and every split part's key.
#[derive(Debug, Clone, Default)]
pub struct Ids {
    pub clusters: Vec<ClusterId>,
    pub replicas: Vec<ReplicaId>,
    /// By key ([`crate::cluster::split::part_keys`]).
    pub parts: HashMap<String, u32>,
}

/// One cluster as the recorder runs it.
pub struct ClusterRuntime {
    pub id: ClusterId,
    /// Its index in config order (and in the live picture).
    index: usize,
    pub events: ClusterEvents,
    probes: ClusterProbes,
    /// A second writer was reported (once).
    second_writer: bool,
    /// The state last stored.
    stored: Option<ClusterState>,
}

/// Where a replica's reads go: its slot and the beats they are matched against.
#[derive(Debug, Clone, Copy)]
struct Route {
    slot: Slot,
    beats: ClusterId,
}

/// The recorder's state; see the module's doc.
pub struct Recorder {
    clusters: Vec<ClusterRuntime>,
    /// Per cluster or running part: its recent beats.
    recent: HashMap<ClusterId, RecentBeats>,
    /// Per replica id that is read now: where its reads go.
    routes: HashMap<ReplicaId, Route>,
    /// By slot.
    views: Vec<ReplicaView>,
    live: Shared,
    /// Capacity and interval of each recent-beats window.
    recent_beats: (usize, i64),
    status_file: bool,
    part_ids: HashMap<String, u32>,
    totals: Totals,
}

impl Recorder {
    /// The recorder of `config`'s clusters (replicas as `probe_every_node` left them)
    /// from `now_us`, with the states the last recorder stored (`previous`, config
    /// order), and the effects that start its probes.
    pub fn new(
        config: &Config,
        ids: Ids,
        previous: Vec<Option<ClusterState>>,
        live: Shared,
        now_us: i64,
    ) -> (Recorder, Vec<Effect>) {
        let interval_us = crate::clock::duration_us(config.record.interval);
        let capacity = (RECENT_BEATS_WINDOW.as_micros() as i64 / interval_us.max(1))
            .clamp(RECENT_BEATS_MIN as i64, RECENT_BEATS_MAX as i64)
            as usize;
        let mut r = Recorder {
            clusters: Vec::new(),
            recent: HashMap::new(),
            routes: HashMap::new(),
            views: Vec::new(),
            live,
            recent_beats: (capacity, interval_us),
            status_file: config.record.status_file.is_some(),
            part_ids: ids.parts,
            totals: Totals::default(),
        };
        let mut effects = Vec::new();
        let mut replica_ids = ids.replicas.iter();
        let mut previous = previous.into_iter();
        for (index, cluster) in config.clusters.iter().enumerate() {
            let id = ids.clusters[index];
            r.recent.insert(id, r.new_recent());
            let previous = previous.next().flatten();
            // Beats start on the primary the last recorder wrote to (it may have moved).
            let start = previous
                .as_ref()
                .and_then(|p| ClusterEvents::stored_primary(p, cluster))
                .unwrap_or_else(|| cluster.primary.clone());
            let events = ClusterEvents::new(
                cluster,
                config.triggers.heartbeat_every,
                start.clone(),
                previous,
                true,
                now_us,
            );
            let mut others: Vec<_> = std::iter::once(&cluster.primary)
                .chain(cluster.replicas.iter().map(|r| &r.address))
                .filter(|a| **a != start)
                .cloned()
                .collect();
            // A `nodes` cluster's primary is among its probed replicas too.
            others.sort_by_key(|a| a.to_string());
            others.dedup();
            effects.push(Effect::StartWriter(WriterTask {
                id,
                name: cluster.name.clone(),
                kind: cluster.kind,
                row: crate::probe::schema::recorder_row(&cluster.name, config.record.id.as_deref()),
                primary: start,
                others,
            }));
            let mut replicas = Vec::new();
            for replica in &cluster.replicas {
                let replica_id = *replica_ids.next().expect("one id per replica");
                let slot = Slot(r.views.len());
                r.routes.insert(replica_id, Route { slot, beats: id });
                r.views.push(ReplicaView {
                    cluster: cluster.name.clone(),
                    replica: replica.name.clone(),
                    address: replica.address.to_string(),
                    ..Default::default()
                });
                effects.push(Effect::StartPoller(PollerTask {
                    id: replica_id,
                    kind: cluster.kind,
                    cluster: cluster.name.clone(),
                    replica: replica.name.clone(),
                    address: replica.address.clone(),
                }));
                replicas.push(probes::ReplicaProbe::new(
                    &replica.name,
                    &replica.address,
                    replica_id,
                    slot,
                ));
            }
            let probes = ClusterProbes::new(cluster, id, replicas, config.record.id.as_deref());
            effects.extend(probes.start_readers());
            r.clusters.push(ClusterRuntime {
                id,
                index,
                events,
                probes,
                second_writer: false,
                stored: None,
            });
        }
        (r, effects)
    }

    fn new_recent(&self) -> RecentBeats {
        RecentBeats::new(self.recent_beats.0, self.recent_beats.1)
    }

    /// What the recorder last saw of each replica, by slot.
    pub fn views(&self) -> &[ReplicaView] {
        &self.views
    }

    pub fn view(&self, slot: Slot) -> &ReplicaView {
        &self.views[slot.0]
    }

    /// Beats, failures and the store's losses so far.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// The clusters, config order.
    pub fn clusters(&self) -> &[ClusterRuntime] {
        &self.clusters
    }

    fn cluster_of(&mut self, id: ClusterId) -> Option<&mut ClusterRuntime> {
        self.clusters.iter_mut().find(|c| c.id == id)
    }

    /// Takes in what a probe said; the effects go to `out` (the fact itself last, as
    /// [`Effect::Store`], unless it is live only).
    pub fn on_sample(&mut self, sample: Probed, out: &mut Vec<Effect>) {
        match &sample {
            Probed::Beat { cluster, beat } => {
                if beat.outcome == Outcome::Ok {
                    self.totals.beats_ok += 1;
                } else {
                    self.totals.beats_failed += 1;
                }
                let id = ClusterId(*cluster);
                if let Some(r) = self.recent.get_mut(&id) {
                    r.push(beat);
                }
                let live = self.live.clone();
                if let Some(c) = self.cluster_of(id) {
                    live::lock(&live).on_beat(c.index, beat);
                    out.extend(c.events.on_beat(beat).map(fire));
                    if beat.outcome == Outcome::Stale
                        && !std::mem::replace(&mut c.second_writer, true)
                    {
                        tracing::warn!(
                            cluster = %c.events.cluster(),
                            reason = beat.reason.as_deref().unwrap_or(""),
                            "another writer moves this cluster's heartbeat row (a newer seq was already there); its reads are not matched to this recorder's beats"
                        );
                    }
                }
            }
            Probed::Observation {
                replica,
                observation,
            } => {
                if let Some(route) = self.routes.get(&ReplicaId(*replica)).copied() {
                    let lag = self
                        .recent
                        .get(&route.beats)
                        .and_then(|r| r.lag(observation));
                    live::lock(&self.live).on_read(route.slot.0, observation, lag);
                    if let Some(Lag::Unknown(Unknown::ForeignBeat { seq })) = lag {
                        self.foreign_beat(route, seq);
                    }
                    let view = &mut self.views[route.slot.0];
                    if observation.outcome == Outcome::Ok {
                        view.reads_ok += 1;
                    } else {
                        view.reads_failed += 1;
                    }
                    if lag.is_some() {
                        out.push(Effect::LagMetric(route.slot));
                    }
                    view.lag = lag;
                    view.last = Some(observation.clone());
                }
            }
            Probed::Role {
                replica,
                t_us,
                writable,
                source,
            } => {
                if let Some(route) = self.routes.get(&ReplicaId(*replica)).copied() {
                    let name = self.views[route.slot.0].replica.clone();
                    if let Some(ci) = self.index_of_route(route) {
                        let c = &mut self.clusters[ci];
                        let events = c.events.on_role(&name, *t_us, *writable, source.as_deref());
                        out.extend(events.into_iter().map(fire));
                        // A source change may move the replica to or from a split part.
                        self.reconcile(ci, out);
                    }
                }
            }
            Probed::Writer {
                cluster, address, ..
            } => {
                if let Some(c) = self.cluster_of(ClusterId(*cluster)) {
                    c.events.writer_moved(address.clone());
                }
            }
            Probed::ProbeChoice {
                replica,
                t_us,
                binlog,
                reason,
            } => {
                if let Some(route) = self.routes.get(&ReplicaId(*replica)).copied() {
                    let view = &self.views[route.slot.0];
                    if let Some(why) = reason {
                        tracing::warn!(
                            cluster = %view.cluster,
                            replica = %view.replica,
                            "reads by polling: {why}"
                        );
                    }
                    live::lock(&self.live).on_probe(route.slot.0, *binlog, reason.clone());
                    let event = ProbeEvent::new(
                        (&view.cluster, &view.replica),
                        *t_us,
                        *binlog,
                        reason.clone(),
                    );
                    out.push(Effect::Store(Sample::Event {
                        t_us: *t_us,
                        doc: to_json(&event),
                    }));
                }
            }
            Probed::Status { replica, status } => {
                if let Some(route) = self.routes.get(&ReplicaId(*replica)).copied() {
                    live::lock(&self.live).on_status(route.slot.0, status);
                    self.views[route.slot.0].status = Some(status.clone());
                    if status.main_channel().is_some() {
                        out.push(Effect::StatusMetric(route.slot));
                    }
                }
            }
        }
        if let Some(fact) = sample.into_stored() {
            out.push(Effect::Store(fact));
        }
    }

    /// A read showed a beat this recorder never wrote: warned of once per cluster.
    fn foreign_beat(&mut self, route: Route, seq: u64) {
        let Some(ci) = self.index_of_route(route) else {
            return;
        };
        if !std::mem::replace(&mut self.clusters[ci].second_writer, true) {
            let view = &self.views[route.slot.0];
            tracing::warn!(
                cluster = %view.cluster,
                replica = %view.replica,
                seq,
                "read a beat this recorder never wrote: another writer (a second recorder?) moves this cluster's heartbeat row; such reads are counted, never matched"
            );
        }
    }

    /// The cluster (index) a route's reads belong to, only when they are matched
    /// against its own beats (a part's foreign beats are not the cluster's).
    fn index_of_route(&self, route: Route) -> Option<usize> {
        self.clusters.iter().position(|c| c.id == route.beats)
    }

    /// Starts and stops the split parts and readers of cluster `ci` to match its
    /// events' sides, and follows where each replica's reads now go.
    fn reconcile(&mut self, ci: usize, out: &mut Vec<Effect>) {
        let c = &mut self.clusters[ci];
        for change in c.probes.reconcile(&c.events, &self.part_ids, out) {
            match change {
                probes::Change::PartUp(id) => {
                    let recent = RecentBeats::new(self.recent_beats.0, self.recent_beats.1);
                    self.recent.insert(id, recent);
                }
                probes::Change::PartDown(id) => {
                    self.recent.remove(&id);
                }
                probes::Change::Side { slot, split } => {
                    live::lock(&self.live).set_split(slot.0, split);
                }
                probes::Change::Reads {
                    slot,
                    id,
                    beats,
                    cluster,
                } => {
                    self.routes.insert(id, Route { slot, beats });
                    self.views[slot.0].cluster = cluster;
                }
            }
        }
    }

    /// The passing of time (once a second, at `now_us`): the clusters' timed events
    /// (primary down, split, failover, heartbeat), the replicas' pool changes from the
    /// live picture, `recorder_up`, and the cluster states to store when they changed.
    pub fn on_tick(&mut self, now_us: i64, store: StoreHealth, out: &mut Vec<Effect>) {
        for ci in 0..self.clusters.len() {
            let events = self.clusters[ci].events.on_tick(now_us);
            out.extend(events.into_iter().map(fire));
            // A split that fired (or ended) now starts (or stops) its part.
            self.reconcile(ci, out);
        }
        // The snapshot judges the server beats go to as the primary: tell the live
        // picture where they go first, a failover included.
        let snapshot = {
            let mut live = live::lock(&self.live);
            for c in &self.clusters {
                let p = c.events.primary();
                live.set_primary(c.index, &p.name, &p.address);
            }
            live.snapshot(now_us)
        };
        for c in &mut self.clusters {
            if let Some(doc) = snapshot.clusters.get(c.index) {
                let judged: Vec<Judged> = doc.replicas.iter().map(|r| r.judged()).collect();
                let events = c.events.on_replicas(&judged, now_us);
                out.extend(events.into_iter().map(fire));
            }
        }
        out.push(Effect::ThrottleMetrics(snapshot.throttle.clone()));
        if self.status_file {
            out.push(Effect::StatusFile(snapshot));
        }
        for c in &mut self.clusters {
            if let Some(up) = c.events.recorder_up(now_us) {
                out.push(fire(up));
            }
            let state = c.events.state();
            if c.stored.as_ref() != Some(&state) {
                out.push(Effect::Store(Sample::State {
                    cluster: c.events.cluster().to_string(),
                    doc: to_json(&state),
                }));
                c.stored = Some(state);
            }
        }
        self.totals.dropped = store.dropped;
        self.totals.unstored = store.unstored;
        live::lock(&self.live).set_store(store.dropped, store.unstored, !store.failing);
    }
}

fn fire(event: Event) -> Effect {
    Effect::Fire(Box::new(event))
}

/// A document the recorder made, as JSON (its types always serialize).
fn to_json(doc: &impl serde::Serialize) -> String {
    serde_json::to_string(doc).expect("the recorder's documents are plain data")
}
