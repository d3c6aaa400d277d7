//! One cluster's state machine: from its beats, the server its beat writer writes to,
//! its replicas' roles (read-only, source) and their live checks, it decides what
//! happened to the cluster (the primary went down or came back, moved, a second
//! primary split it, a replica left or rejoined the pool) and says so as [`Event`]s.
//! Pure: it is given the time and every fact, and does no I/O.

use std::time::Duration;

use super::doc::{
    ChangeDoc, CheckDoc, ClusterState, Event, EventKind, LagDoc, Node, SCHEMA, SplitDoc, State,
};
use super::split::Side;
use crate::clock::format_utc_us;
use crate::config::{Address, ClusterConfig};
use crate::samples::{Beat, Outcome};

/// How long beats must keep failing before `primary_down` fires (a single failed beat
/// is a blip, not an outage), µs.
pub const PRIMARY_DOWN_AFTER_US: i64 = 1_000_000;

/// A replica's live check as the cluster's events take it: its pool state, why (a
/// reason code: `healthy`, `lagging`, `unreachable`, ..., `starting` before the first
/// verdict, `primary` for a `nodes` cluster's primary probed like its replicas) and
/// what it measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged<'a> {
    pub replica: &'a str,
    pub state: State,
    pub reason: &'a str,
    /// The reason in words.
    pub detail: &'a str,
    /// Its lag bounds, ms (`hi` unknown when only a floor is known).
    pub lag_lo_ms: Option<f64>,
    pub lag_hi_ms: Option<f64>,
    /// Its replication vector (0 keeps up, -1 applies nothing).
    pub vector: Option<f64>,
    /// Its intended delay (MASTER_DELAY), s.
    pub sql_delay_s: Option<u32>,
}

/// One cluster's events for triggers, from its beats and from the server its beat
/// writer writes to: `primary_down` once beats have failed for
/// [`PRIMARY_DOWN_AFTER_US`], `primary_up` at the first beat after that, `failover`
/// when the writer moved to another server.
pub struct ClusterEvents {
    cluster: String,
    /// Every server of the cluster: the configured (or discovered) primary, named
    /// `primary` or by its node name, then the replicas.
    nodes: Vec<(String, Address)>,
    primary: Address,
    /// Where the beat writer writes now, when it moved since the last tick: the
    /// `failover` fires at the next tick.
    writer_now: Option<Address>,
    /// The first failed beat of the current run of failures, and why it failed.
    failing_since_us: Option<(i64, String)>,
    down_fired: bool,
    /// Per replica name: whether it was in the pool at the last look (absent while it
    /// has not been judged yet, or is in maintenance).
    in_pool: std::collections::HashMap<String, bool>,
    /// `heartbeat` period and when the next one is due, µs (kept on a schedule:
    /// ticks come a little late by varying amounts, and timing each from the last
    /// would make a 2 s period 3 s half the time).
    heartbeat_every_us: i64,
    next_heartbeat_us: Option<i64>,
    /// The previous recorder stored a state and `recorder_up` has not fired yet:
    /// changes from that state are `while_stopped`.
    resumed: bool,
    /// No beat has succeeded in this session yet.
    no_beat_yet: bool,
    /// The primary was already down when this recorder started (so how long it was
    /// down is not known).
    down_before_start: bool,
    /// Replicas this recorder has judged (in, out or in maintenance).
    judged: std::collections::HashSet<String>,
    /// Whether replicas are judged at all (the live picture exists), so that
    /// `recorder_up` waits for their first judgement.
    judges_replicas: bool,
    /// Per replica name: since when it takes writes and replicates from nothing (a
    /// second primary), µs, and whether `split` fired for it.
    second_primaries: std::collections::BTreeMap<String, (i64, bool)>,
    /// The second primaries the previous recorder had fired `split` for (its stored
    /// state): not fired again when found again.
    split_before: std::collections::BTreeSet<String>,
    /// Per replica name: the source its main channel replicates from (`host:port`).
    sources: std::collections::HashMap<String, String>,
    /// Per replica name: the cluster's server that source is, by name.
    follows: std::collections::HashMap<String, String>,
    /// Per replica name: what the last live snapshot said of it.
    seen: std::collections::HashMap<String, Seen>,
    /// Per replica name: whether its last status poll found it writable.
    writable: std::collections::HashMap<String, bool>,
    /// Replicas that replicate from a server outside the cluster now.
    left: std::collections::BTreeSet<String>,
    /// Listed nodes left out of the cluster by discovery.
    clusterless: Vec<String>,
    /// When this recorder started, and whether `recorder_up` has fired, µs.
    started_us: i64,
    up_fired: bool,
}

/// How early a `heartbeat` may fire before it is due, µs: half the recorder's tick.
const HEARTBEAT_EARLY_US: i64 = 500_000;

/// What the last live snapshot said of a replica, for the nodes of events.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    lag: Option<LagDoc>,
    vector: Option<f64>,
    sql_delay_s: Option<u32>,
    /// It does not answer.
    lost: bool,
}

/// How long a second server must take writes before `split` fires, µs: a failover
/// makes the new primary writable a moment before the old one refuses writes.
pub const SPLIT_AFTER_US: i64 = 3_000_000;

/// How long `recorder_up` waits for the first picture of the cluster (a beat's
/// outcome, every replica judged) before it fires anyway, µs.
pub const RECORDER_UP_WITHIN_US: i64 = 10_000_000;

impl ClusterEvents {
    /// Events of `cluster` as seen from `started_us`, beats going first to `primary`
    /// (the stored primary, when the caller found one valid);
    /// `previous` is the state the last recorder stored;
    /// `judges_replicas` says whether [`ClusterEvents::on_replicas`] will be called.
    pub fn new(
        cluster: &ClusterConfig,
        heartbeat_every: Duration,
        primary: Address,
        previous: Option<ClusterState>,
        judges_replicas: bool,
        started_us: i64,
    ) -> ClusterEvents {
        let nodes = std::iter::once((cluster.primary_name().to_string(), cluster.primary.clone()))
            .chain(
                cluster
                    .replicas
                    .iter()
                    // A `nodes` cluster's primary is probed as a replica too: once here.
                    .filter(|r| r.address != cluster.primary)
                    .map(|r| (r.name.clone(), r.address.clone())),
            )
            .collect();
        let resumed = previous.is_some();
        let down_before_start = previous.as_ref().is_some_and(|p| p.primary_down);
        let split_before = previous
            .as_ref()
            .map(|p| p.split.iter().cloned().collect())
            .unwrap_or_default();
        // Replicas no longer configured are forgotten.
        let in_pool = previous
            .map(|p| {
                p.in_pool
                    .into_iter()
                    .filter(|(n, _)| cluster.replicas.iter().any(|r| r.name == *n))
                    .collect()
            })
            .unwrap_or_default();
        ClusterEvents {
            cluster: cluster.name.clone(),
            nodes,
            primary,
            writer_now: None,
            failing_since_us: None,
            down_fired: down_before_start,
            in_pool,
            heartbeat_every_us: crate::clock::duration_us(heartbeat_every),
            next_heartbeat_us: None,
            resumed,
            no_beat_yet: true,
            down_before_start,
            judged: std::collections::HashSet::new(),
            judges_replicas,
            second_primaries: Default::default(),
            split_before,
            sources: Default::default(),
            follows: Default::default(),
            seen: Default::default(),
            writable: Default::default(),
            left: Default::default(),
            clusterless: cluster
                .nodes
                .iter()
                .filter(|n| {
                    n.address != cluster.primary
                        && !cluster.replicas.iter().any(|r| r.name == n.name)
                })
                .map(|n| n.name.clone())
                .collect(),
            started_us,
            up_fired: false,
        }
    }

    /// The server beats go to now, among the cluster's, as the previous recorder
    /// stored it: where this recorder's writer should start. `None` when unknown.
    pub fn stored_primary(state: &ClusterState, cluster: &ClusterConfig) -> Option<Address> {
        let a = Address::parse(&state.primary).ok()?;
        (a == cluster.primary || cluster.replicas.iter().any(|r| r.address == a)).then_some(a)
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The server beats go to now, as triggers name it.
    pub fn primary(&self) -> Node {
        self.node(&self.primary)
    }

    /// What to store so that the next recorder can tell what changed while it was
    /// stopped.
    pub fn state(&self) -> ClusterState {
        ClusterState {
            schema: SCHEMA,
            primary: self.primary.to_string(),
            primary_down: self.down_fired,
            in_pool: self.in_pool.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            split: self.parts(),
        }
    }

    /// Whether a change of the primary seen now is one from the previous recorder's
    /// state, that happened while no recorder ran.
    fn primary_while_stopped(&self) -> bool {
        self.resumed && self.no_beat_yet
    }

    fn node(&self, address: &Address) -> Node {
        let name = self
            .nodes
            .iter()
            .find(|(_, a)| a == address)
            .map_or_else(|| address.to_string(), |(n, _)| n.clone());
        let primary = *address == self.primary;
        let seen = self.seen.get(&name).filter(|_| !primary);
        Node {
            address: address.to_string(),
            role: if primary { "primary" } else { "replica" },
            source: self.sources.get(&name).filter(|_| !primary).cloned(),
            lag: seen.and_then(|s| s.lag),
            vector: seen.and_then(|s| s.vector),
            sql_delay_s: seen.and_then(|s| s.sql_delay_s),
            name,
        }
    }

    /// An event about `node` now.
    pub fn event(&self, event: EventKind, node: &Address, now_us: i64) -> Event {
        Event {
            schema: SCHEMA,
            event,
            time_utc: format_utc_us(now_us),
            t_us: now_us,
            cluster: self.cluster.clone(),
            node: self.node(node),
            primary: self.node(&self.primary),
            replicas: self
                .nodes
                .iter()
                .filter(|(_, a)| *a != self.primary)
                .map(|(_, a)| self.node(a))
                .collect(),
            lost: self
                .nodes
                .iter()
                .filter(|(n, a)| *a != self.primary && self.seen.get(n).is_some_and(|s| s.lost))
                .map(|(_, a)| self.node(a))
                .collect(),
            clusterless: {
                let mut all = self.clusterless.clone();
                all.extend(self.left.iter().cloned());
                all
            },
            previous_primary: None,
            reason: None,
            down_s: None,
            check: None,
            split: None,
            change: None,
            while_stopped: false,
        }
    }

    /// Follows a replica's role from its status poll: `source_change` when it
    /// replicates from another server (a source outside the cluster makes it
    /// clusterless until it comes back), `role_change` when `read_only` flips, both
    /// stored only (no trigger); writable with no source, it is a second primary
    /// (unless beats go to it: then it is the primary).
    pub fn on_role(
        &mut self,
        replica: &str,
        t_us: i64,
        writable: bool,
        source: Option<&str>,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        let Some(address) = self.address_of(replica) else {
            return out;
        };
        let first = self.writable.insert(replica.to_string(), writable);
        let before = match source {
            Some(s) => self.sources.insert(replica.to_string(), s.to_string()),
            None => self.sources.remove(replica),
        };
        if first.is_none() || before.as_deref() != source {
            // Resolving names: only when the source changed.
            let node = source.and_then(|s| self.source_node(s)).cloned();
            if source.is_some() && node.is_none() {
                self.left.insert(replica.to_string());
            } else {
                self.left.remove(replica);
            }
            match node.and_then(|a| self.name_of(&a)) {
                Some(n) => self.follows.insert(replica.to_string(), n),
                None => self.follows.remove(replica),
            };
        }
        if first.is_some() && before.as_deref() != source {
            let mut e = self.event(EventKind::SourceChange, &address, t_us);
            e.change = Some(ChangeDoc {
                from: before,
                to: source.map(str::to_string),
            });
            out.push(e);
        }
        if let Some(was) = first
            && was != writable
        {
            let word = |w: bool| Some(if w { "writable" } else { "read_only" }.to_string());
            let mut e = self.event(EventKind::RoleChange, &address, t_us);
            e.change = Some(ChangeDoc {
                from: word(was),
                to: word(writable),
            });
            out.push(e);
        }
        let is_primary = self
            .nodes
            .iter()
            .any(|(n, a)| n == replica && *a == self.primary);
        if writable && source.is_none() && !is_primary {
            self.second_primaries
                .entry(replica.to_string())
                .or_insert((t_us, false));
        } else {
            out.extend(self.end_split(replica, t_us));
            // A split the previous recorder announced ended while none ran.
            if self.split_before.remove(replica) {
                let mut e = self.event(EventKind::SplitEnd, &address, t_us);
                e.while_stopped = true;
                out.push(e);
            }
        }
        out
    }

    /// Forgets `name` as a second primary: `split_end` (stored only) when `split` had
    /// fired for it.
    fn end_split(&mut self, name: &str, t_us: i64) -> Option<Event> {
        let (_, fired) = self.second_primaries.remove(name)?;
        if !fired {
            return None;
        }
        tracing::warn!(cluster = %self.cluster, node = name, "the split ended: it no longer takes writes beside the primary; the replicas that followed it are measured against the cluster's beats again");
        let address = self.address_of(name)?;
        Some(self.event(EventKind::SplitEnd, &address, t_us))
    }

    /// The second primaries `split` fired for, by name: each has a part of its own
    /// (its own beats, its followers read against them) until its `split_end`.
    pub fn parts(&self) -> Vec<String> {
        self.second_primaries
            .iter()
            .filter(|(_, (_, fired))| *fired)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Which beats replica `name` is measured against now: a replica whose source is
    /// (directly, or through other replicas) a second primary of [`Self::parts`] is on
    /// that part's side; every other, the cluster's (plusmoin's rule: a replica
    /// pointing at neither primary stays in the original cluster).
    pub fn side(&self, name: &str) -> Side {
        let in_part = |n: &str| self.second_primaries.get(n).is_some_and(|(_, f)| *f);
        if in_part(name) {
            return Side::PartPrimary(name.to_string());
        }
        let mut at = name;
        // A chain of replicas is no longer than the cluster has servers (a cycle stops).
        for _ in 0..self.nodes.len() {
            match self.follows.get(at) {
                Some(next) if in_part(next) => return Side::Part(next.clone()),
                Some(next) => at = next,
                None => break,
            }
        }
        Side::Cluster
    }

    /// The name of the cluster's server at `address`.
    fn name_of(&self, address: &Address) -> Option<String> {
        self.nodes
            .iter()
            .find(|(_, a)| a == address)
            .map(|(n, _)| n.clone())
    }

    /// The address of the server named `name`.
    fn address_of(&self, name: &str) -> Option<Address> {
        self.nodes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.clone())
    }

    /// The cluster's server a channel's source `host:port` names, if any (names and
    /// IPs compared by [`Address::is`]).
    fn source_node(&self, source: &str) -> Option<&Address> {
        let (host, port) = crate::samples::source_host_port(source)?;
        self.nodes.iter().map(|(_, a)| a).find(|a| a.is(host, port))
    }

    /// The `split` event for the second primary `name`.
    fn split(&self, name: &str, now_us: i64) -> Event {
        let other = self
            .address_of(name)
            .expect("second primaries are the cluster's replicas");
        let primaries = [self.primary.clone(), other.clone()];
        let mut following: std::collections::BTreeMap<String, Vec<String>> = primaries
            .iter()
            .map(|p| (self.node(p).name, Vec::new()))
            .collect();
        let mut neither = Vec::new();
        for (n, a) in &self.nodes {
            if primaries.contains(a) {
                continue;
            }
            // The source as resolved when it last changed (`follows`), not again here.
            match self.follows.get(n).and_then(|s| following.get_mut(s)) {
                Some(followers) => followers.push(n.clone()),
                None => neither.push(n.clone()),
            }
        }
        let mut e = self.event(EventKind::Split, &other, now_us);
        e.split = Some(SplitDoc {
            primaries: primaries.iter().map(|p| self.node(p)).collect(),
            following,
            neither,
        });
        e
    }

    /// `recorder_up` once the cluster's first picture is known (a beat succeeded or
    /// `primary_down` fired; every replica judged, when replicas are), so that what
    /// changed while the recorder was stopped fires first; at the latest
    /// [`RECORDER_UP_WITHIN_US`] after the start.
    pub fn recorder_up(&mut self, now_us: i64) -> Option<Event> {
        if self.up_fired {
            return None;
        }
        let beats_known = self.down_fired || !self.no_beat_yet;
        let replicas_known =
            !self.judges_replicas || self.nodes[1..].iter().all(|(n, _)| self.judged.contains(n));
        if !(beats_known && replicas_known) && now_us - self.started_us < RECORDER_UP_WITHIN_US {
            return None;
        }
        self.up_fired = true;
        // From here on, changes are this recorder's own.
        self.resumed = false;
        Some(self.event(EventKind::RecorderUp, &self.primary, now_us))
    }

    /// The beat writer now writes to `address` (it followed a failover): `failover`
    /// fires at the next tick, when that is not where beats went before.
    pub fn writer_moved(&mut self, address: Address) {
        self.writer_now = Some(address);
    }

    /// Follows a beat of this cluster; `primary_up` when it ends an outage that fired
    /// `primary_down`.
    pub fn on_beat(&mut self, beat: &Beat) -> Option<Event> {
        if beat.outcome != Outcome::Ok {
            self.failing_since_us
                .get_or_insert_with(|| (beat.t_send_us, beat.reason.clone().unwrap_or_default()));
            return None;
        }
        let while_stopped = self.primary_while_stopped();
        self.no_beat_yet = false;
        let since = self.failing_since_us.take();
        if !std::mem::replace(&mut self.down_fired, false) {
            return None;
        }
        let mut e = self.event(EventKind::PrimaryUp, &self.primary, beat.t_done_us);
        // Down since the last recorder's time, or since before this one started: how
        // long is not known.
        e.down_s = since
            .filter(|_| !std::mem::replace(&mut self.down_before_start, false))
            .map(|(since_us, _)| (beat.t_done_us - since_us) as f64 / 1e6);
        e.while_stopped = while_stopped;
        Some(e)
    }

    /// Follows the live checks of the cluster's replicas (`/check`'s pool state):
    /// `replica_down` when one leaves the pool, `replica_up` when it comes back. A
    /// replica still starting, or in maintenance, fires nothing.
    pub fn on_replicas(&mut self, replicas: &[Judged], now_us: i64) -> Vec<Event> {
        let mut out = Vec::new();
        for r in replicas {
            self.seen.insert(
                r.replica.to_string(),
                Seen {
                    lag: r.lag_lo_ms.map(|lo_ms| LagDoc {
                        lo_ms,
                        hi_ms: r.lag_hi_ms,
                    }),
                    vector: r.vector,
                    sql_delay_s: r.sql_delay_s,
                    lost: r.reason == "unreachable",
                },
            );
            let now_in = match (r.state, r.reason) {
                (_, "starting") => continue,
                // A `nodes` cluster's primary, probed like its replicas: its pool state
                // is forgotten, to be judged afresh if it becomes a replica.
                (_, "primary") => {
                    self.judged.insert(r.replica.to_string());
                    self.in_pool.remove(r.replica);
                    continue;
                }
                (State::Maintenance, _) => {
                    self.judged.insert(r.replica.to_string());
                    continue;
                }
                (State::In, _) => true,
                (State::Out, _) => false,
            };
            let first_look = self.judged.insert(r.replica.to_string());
            let Some(address) = self.address_of(r.replica) else {
                continue;
            };
            let before = self.in_pool.insert(r.replica.to_string(), now_in);
            let event = match (before, now_in) {
                (Some(true) | None, false) => EventKind::ReplicaDown,
                (Some(false), true) => EventKind::ReplicaUp,
                _ => continue,
            };
            let mut e = self.event(event, &address, now_us);
            e.while_stopped = self.resumed && first_look;
            e.check = Some(CheckDoc {
                reason: r.reason.to_string(),
                detail: r.detail.to_string(),
                lag_lo_ms: r.lag_lo_ms,
                lag_hi_ms: r.lag_hi_ms,
                sql_delay_s: r.sql_delay_s,
            });
            out.push(e);
        }
        out
    }

    /// Checks the time and the writer's server: `heartbeat` every period (the first at
    /// the first tick after `recorder_up`), `primary_down` once the failures have lasted long enough, `failover` when
    /// the writer moved.
    pub fn on_tick(&mut self, now_us: i64) -> Vec<Event> {
        let mut out = Vec::new();
        if let Some(now) = self.writer_now.take()
            && now != self.primary
        {
            let before = std::mem::replace(&mut self.primary, now.clone());
            let mut e = self.event(EventKind::Failover, &now, now_us);
            e.previous_primary = Some(self.node(&before));
            e.while_stopped = self.primary_while_stopped();
            out.push(e);
        }
        // Ticks come every second: a heartbeat due within half of one fires now.
        if self.up_fired
            && self
                .next_heartbeat_us
                .is_none_or(|t| now_us >= t - HEARTBEAT_EARLY_US)
        {
            let every = self.heartbeat_every_us;
            let next = self.next_heartbeat_us.map_or(now_us, |t| t) + every;
            self.next_heartbeat_us = Some(if next <= now_us { now_us + every } else { next });
            out.push(self.event(EventKind::Heartbeat, &self.primary, now_us));
        }
        // The primary beats go to now is not a second one (after a failover).
        if let Some(name) = self.name_of(&self.primary) {
            out.extend(self.end_split(&name, now_us));
        }
        // A split the previous recorder announced is taken up again at once, and not
        // announced again.
        let due: Vec<String> = self
            .second_primaries
            .iter()
            .filter(|(n, (since_us, fired))| {
                !fired && (now_us - since_us >= SPLIT_AFTER_US || self.split_before.contains(*n))
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            if !self.split_before.remove(&name) {
                out.push(self.split(&name, now_us));
            }
            if let Some((_, fired)) = self.second_primaries.get_mut(&name) {
                *fired = true;
            }
        }
        if let Some((since_us, reason)) = &self.failing_since_us
            && !self.down_fired
            && now_us - since_us >= PRIMARY_DOWN_AFTER_US
        {
            let mut e = self.event(EventKind::PrimaryDown, &self.primary, now_us);
            e.reason = Some(reason.clone());
            e.while_stopped = self.primary_while_stopped();
            self.down_fired = true;
            out.push(e);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testing::{cluster, events_of};

    fn beat(t_us: i64, ok: bool) -> Beat {
        Beat {
            seq: t_us as u64,
            t_send_us: t_us,
            t_done_us: t_us + 500,
            outcome: if ok { Outcome::Ok } else { Outcome::Timeout },
            reason: (!ok).then(|| "heartbeat write timed out after 1s".to_string()),
        }
    }

    #[test]
    fn beats_failing_for_a_second_are_primary_down_and_the_next_good_one_primary_up() {
        let config = cluster(2);
        let cluster = &config;
        let mut e = events_of(cluster, None, false);
        const S: i64 = 1_000_000;
        // A blip: one failed beat, then good ones: nothing fires. recorder_up waits for
        // a beat's outcome, the heartbeats for recorder_up.
        assert!(e.on_beat(&beat(0, false)).is_none());
        assert!(e.on_tick(S / 4).is_empty());
        assert!(e.recorder_up(S / 4).is_none());
        assert!(e.on_beat(&beat(S / 4, true)).is_none());
        let up = e.recorder_up(S / 2).unwrap();
        assert_eq!((up.event.name(), up.while_stopped), ("recorder_up", false));
        assert!(e.recorder_up(S / 2).is_none(), "once");
        // The first tick after it is the first heartbeat; the next comes a period later.
        let first = e.on_tick(S / 2);
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].event.name(), first[0].node.name.as_str()),
            ("heartbeat", "primary")
        );
        // Failing from 2 s: down once a second has passed, once; up at the next good beat.
        assert!(e.on_beat(&beat(2 * S, false)).is_none());
        assert!(e.on_tick(2 * S + S / 2).is_empty());
        let down = e.on_tick(3 * S);
        assert_eq!(down.len(), 1);
        assert_eq!(down[0].event.name(), "primary_down");
        assert_eq!(down[0].node.name, "primary");
        assert_eq!(
            down[0].reason.as_deref(),
            Some("heartbeat write timed out after 1s")
        );
        assert!(e.on_tick(4 * S).is_empty(), "fired once");
        let up = e.on_beat(&beat(5 * S, true)).unwrap();
        assert_eq!((up.event.name(), up.down_s), ("primary_up", Some(3.0005)));
        // The writer moves to r2: a failover, with the old primary among the replicas.
        e.writer_moved(cluster.replicas[1].address.clone());
        let moved = e.on_tick(6 * S);
        assert_eq!(moved.len(), 1);
        let f = &moved[0];
        assert_eq!(
            (
                f.event.name(),
                f.node.name.as_str(),
                f.primary.name.as_str()
            ),
            ("failover", "r2", "r2")
        );
        assert_eq!(f.previous_primary.as_ref().unwrap().name, "primary");
        let names: Vec<&str> = f.replicas.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["primary", "r1"]);
        let json = serde_json::to_value(f).unwrap();
        assert_eq!(json["primary"]["address"], "h3:3306");
        assert_eq!(json["schema"], 1);
        assert!(json.get("down_s").is_none());
        let beat_at_10s: Vec<&str> = e
            .on_tick(S / 2 + 10 * S)
            .iter()
            .map(|e| e.event.name())
            .collect();
        assert_eq!(beat_at_10s, ["heartbeat"]);
    }

    fn doc<'a>(replica: &'a str, state: State, reason: &'a str) -> Judged<'a> {
        Judged {
            replica,
            state,
            reason,
            detail: reason,
            lag_lo_ms: Some(1500.0),
            lag_hi_ms: None,
            vector: None,
            sql_delay_s: None,
        }
    }

    #[test]
    fn a_replica_leaving_and_rejoining_the_pool_is_replica_down_then_up() {
        let config = cluster(1);
        let mut e = events_of(&config, None, true);
        let names = |events: Vec<Event>| -> Vec<&'static str> {
            events.iter().map(|e| e.event.name()).collect()
        };
        assert!(
            e.on_replicas(&[doc("r1", State::Out, "starting")], 0)
                .is_empty()
        );
        assert!(
            e.on_replicas(&[doc("r1", State::In, "healthy")], 1)
                .is_empty()
        );
        let down = e.on_replicas(&[doc("r1", State::Out, "lagging")], 2);
        assert_eq!(down[0].node.address, "h2:3306");
        // The node carries what the last look said of it.
        assert_eq!(
            down[0].node.lag,
            Some(LagDoc {
                lo_ms: 1500.0,
                hi_ms: None
            })
        );
        assert_eq!(down[0].primary.lag, None);
        assert!(down[0].lost.is_empty() && down[0].clusterless.is_empty());
        assert_eq!(down[0].check.as_ref().unwrap().reason, "lagging");
        assert_eq!(names(down), ["replica_down"]);
        assert!(
            e.on_replicas(&[doc("r1", State::Out, "lagging")], 3)
                .is_empty()
        );
        assert!(
            e.on_replicas(&[doc("r1", State::Maintenance, "maintenance")], 4)
                .is_empty()
        );
        assert_eq!(
            names(e.on_replicas(&[doc("r1", State::In, "healthy")], 5)),
            ["replica_up"]
        );
        let gone = e.on_replicas(&[doc("r1", State::Out, "unreachable")], 6);
        let lost: Vec<&str> = gone[0].lost.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(lost, ["r1"]);
    }

    /// The previous recorder knew r1 in the pool, r2 out and h1 as the primary. Now
    /// r1 is out, r2 in, and the writer found h3 writable: each change fires
    /// `while_stopped`, then `recorder_up`; the new state is what the next one reads.
    #[test]
    fn what_changed_while_stopped_fires_before_recorder_up() {
        let config = cluster(2);
        let cluster = &config;
        let previous = ClusterState {
            schema: SCHEMA,
            primary: "h1:3306".into(),
            primary_down: false,
            in_pool: [("r1".to_string(), true), ("r2".to_string(), false)].into(),
            split: Vec::new(),
        };
        let json = serde_json::to_string(&previous).unwrap();
        assert_eq!(
            serde_json::from_str::<ClusterState>(&json).unwrap(),
            previous
        );
        assert_eq!(
            ClusterEvents::stored_primary(&previous, cluster),
            Some(cluster.primary.clone())
        );
        let mut e = events_of(cluster, Some(previous), true);
        const S: i64 = 1_000_000;
        assert!(
            e.on_tick(S / 10).is_empty(),
            "the writer starts where it was"
        );
        // The primary refuses writes; the writer finds r2 writable.
        assert!(e.on_beat(&beat(S / 10, false)).is_none());
        e.writer_moved(cluster.replicas[1].address.clone());
        let moved = e.on_tick(S / 5);
        assert_eq!(
            (moved[0].event.name(), moved[0].while_stopped),
            ("failover", true)
        );
        assert!(e.on_beat(&beat(S / 5, true)).is_none());
        assert!(e.recorder_up(S / 4).is_none(), "replicas not judged yet");
        let changes = e.on_replicas(
            &[
                doc("r1", State::Out, "sql_stopped"),
                doc("r2", State::Out, "starting"),
            ],
            S / 3,
        );
        let got: Vec<(&str, &str, bool)> = changes
            .iter()
            .map(|e| (e.event.name(), e.node.name.as_str(), e.while_stopped))
            .collect();
        assert_eq!(got, [("replica_down", "r1", true)]);
        assert!(e.recorder_up(S / 3).is_none(), "r2 still starting");
        let changes = e.on_replicas(
            &[
                doc("r1", State::Out, "sql_stopped"),
                doc("r2", State::In, "healthy"),
            ],
            S / 2,
        );
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (changes[0].event.name(), changes[0].while_stopped),
            ("replica_up", true)
        );
        assert_eq!(e.recorder_up(S / 2).unwrap().event, "recorder_up");
        // From here on, changes are this recorder's own.
        let back = e.on_replicas(
            &[
                doc("r1", State::In, "healthy"),
                doc("r2", State::In, "healthy"),
            ],
            S,
        );
        assert_eq!(
            (back[0].event.name(), back[0].while_stopped),
            ("replica_up", false)
        );
        let state = e.state();
        assert_eq!(state.primary, "h3:3306");
        assert_eq!(
            state.in_pool,
            [("r1".to_string(), true), ("r2".to_string(), true)].into()
        );
    }

    /// A primary the previous recorder saw down and that answers now: `primary_up`,
    /// while stopped, with no duration (when it came back is not known). Without a
    /// stored state nothing is compared, and `recorder_up` fires at the latest after
    /// RECORDER_UP_WITHIN_US.
    #[test]
    fn a_primary_down_at_the_last_stop_and_up_now_is_primary_up_while_stopped() {
        let config = cluster(1);
        let cluster = &config;
        let previous = ClusterState {
            schema: SCHEMA,
            primary: "h1:3306".into(),
            primary_down: true,
            in_pool: Default::default(),
            split: Vec::new(),
        };
        let mut e = events_of(cluster, Some(previous), false);
        let up = e.on_beat(&beat(1_000, true)).unwrap();
        assert_eq!(
            (up.event.name(), up.while_stopped, up.down_s),
            ("primary_up", true, None)
        );
        assert!(!e.state().primary_down);

        let mut fresh = events_of(cluster, None, true);
        assert!(fresh.recorder_up(RECORDER_UP_WITHIN_US - 1).is_none());
        assert!(fresh.recorder_up(RECORDER_UP_WITHIN_US).is_some());
    }

    /// r2 takes writes with no source: `split` after SPLIT_AFTER_US, once, with r1 on
    /// the primary's side; a failover's moment of two writable servers fires nothing.
    #[test]
    fn a_second_writable_server_for_long_enough_is_a_split() {
        let config = cluster(2);
        let mut e = events_of(&config, None, false);
        const S: i64 = 1_000_000;
        // The source as the server spells it: the same server as the configured h1.
        e.on_role("r1", 0, false, Some("H1:3306"));
        e.on_role("r2", 0, true, None);
        assert!(e.on_tick(S).iter().all(|e| e.event != "split"));
        let fired = e.on_tick(SPLIT_AFTER_US);
        let split: Vec<&Event> = fired.iter().filter(|e| e.event == "split").collect();
        assert_eq!(split.len(), 1);
        let doc = serde_json::to_value(split[0]).unwrap();
        assert_eq!(doc["node"]["name"], "r2");
        assert_eq!(
            doc["split"]["following"]["primary"],
            serde_json::json!(["r1"])
        );
        assert_eq!(doc["split"]["neither"], serde_json::json!([]));
        assert!(
            e.on_tick(2 * SPLIT_AFTER_US)
                .iter()
                .all(|e| e.event != "split"),
            "once"
        );
        // A failover: r1 becomes writable; beats move to it within a second.
        e.on_role("r2", 3 * SPLIT_AFTER_US, false, Some("h1:3306"));
        e.on_role("r1", 3 * SPLIT_AFTER_US, true, None);
        e.writer_moved(config.replicas[0].address.clone());
        let t = 3 * SPLIT_AFTER_US + S;
        assert!(e.on_tick(t).iter().any(|e| e.event == "failover"));
        assert!(
            e.on_tick(t + SPLIT_AFTER_US)
                .iter()
                .all(|e| e.event != "split")
        );
    }

    /// A recorder restarted during a split (its state lists r2 as a second primary):
    /// still split, the part is taken up at once without `split` again; a split that
    /// ended while no recorder ran is stored as `split_end`, while stopped.
    #[test]
    fn a_restart_takes_a_split_up_again_or_stores_its_end() {
        let config = cluster(2);
        let previous = ClusterState {
            schema: SCHEMA,
            primary: "h1:3306".into(),
            primary_down: false,
            in_pool: Default::default(),
            split: vec!["r2".into()],
        };
        let mut e = events_of(&config, Some(previous.clone()), false);
        e.on_role("r2", 0, true, None);
        assert!(e.on_tick(1).iter().all(|e| e.event != "split"));
        assert_eq!(e.parts(), ["r2"]);
        assert_eq!(e.state().split, ["r2"]);

        let mut e = events_of(&config, Some(previous), false);
        let ended = e.on_role("r2", 0, false, Some("h1:3306"));
        let ends: Vec<(&str, bool)> = ended
            .iter()
            .filter(|e| e.event == "split_end")
            .map(|e| (e.node.name.as_str(), e.while_stopped))
            .collect();
        assert_eq!(ends, [("r2", true)]);
        assert!(e.state().split.is_empty());
    }

    /// While r2 is a second primary, r1 re-pointed to it is on r2's part's side (and
    /// back when re-pointed to the primary); the split's end puts everyone back and is
    /// stored as `split_end`, once.
    #[test]
    fn replicas_following_a_second_primary_are_on_its_side_until_the_split_ends() {
        let config = cluster(2);
        let mut e = events_of(&config, None, false);
        e.on_role("r1", 0, false, Some("h1:3306"));
        e.on_role("r2", 0, true, None);
        // Before `split` fires, nothing is partitioned.
        e.on_tick(1);
        assert!(e.parts().is_empty());
        assert_eq!(e.side("r2"), Side::Cluster);
        e.on_tick(SPLIT_AFTER_US);
        assert_eq!(e.parts(), ["r2"]);
        assert_eq!(e.side("r2"), Side::PartPrimary("r2".into()));
        assert_eq!(e.side("r1"), Side::Cluster);
        let t = SPLIT_AFTER_US + 1;
        e.on_role("r1", t, false, Some("h3:3306"));
        assert_eq!(e.side("r1"), Side::Part("r2".into()));
        e.on_role("r1", t, false, Some("h1:3306"));
        assert_eq!(e.side("r1"), Side::Cluster);
        e.on_role("r1", t, false, Some("h3:3306"));
        // r2 turns read-only: the split ends.
        let ended = e.on_role("r2", t + 1, false, None);
        let names: Vec<&str> = ended.iter().map(|e| e.event.name()).collect();
        assert_eq!(names, ["role_change", "split_end"]);
        assert_eq!(ended[1].node.name, "r2");
        assert!(e.parts().is_empty());
        assert_eq!(e.side("r1"), Side::Cluster);
        assert!(e.on_role("r2", t + 2, false, None).is_empty(), "once");
    }

    /// A chain (r1 follows r2, which follows the primary) is on the cluster's side;
    /// when r2 splits off, r1 goes with it; a cycle of sources ends on the cluster's.
    #[test]
    fn a_chain_goes_with_its_head_and_a_cycle_stays() {
        let config = cluster(2);
        let mut e = events_of(&config, None, false);
        e.on_role("r1", 0, false, Some("h3:3306"));
        e.on_role("r2", 0, false, Some("h1:3306"));
        assert_eq!(e.side("r1"), Side::Cluster);
        e.on_role("r2", 1, false, Some("h2:3306"));
        assert_eq!(e.side("r1"), Side::Cluster, "a cycle");
        e.on_role("r2", 2, true, None);
        e.on_tick(2 + SPLIT_AFTER_US);
        assert_eq!(e.side("r1"), Side::Part("r2".into()));
    }

    /// A replica re-pointed to another server of the cluster, then to one outside it
    /// (clusterless until it comes back), and made writable: each change once.
    #[test]
    fn source_and_read_only_changes_are_events() {
        let config = cluster(2);
        let mut e = events_of(&config, None, false);
        let names = |v: Vec<Event>| -> Vec<(&'static str, Option<String>, Option<String>)> {
            v.into_iter()
                .map(|e| {
                    let c = e.change.unwrap();
                    (e.event.name(), c.from, c.to)
                })
                .collect()
        };
        assert!(
            e.on_role("r1", 0, false, Some("h1:3306")).is_empty(),
            "first look"
        );
        assert!(
            e.on_role("r1", 1, false, Some("h1:3306")).is_empty(),
            "no change"
        );
        assert_eq!(
            names(e.on_role("r1", 2, false, Some("h3:3306"))),
            [(
                "source_change",
                Some("h1:3306".into()),
                Some("h3:3306".into())
            )]
        );
        assert!(
            e.event(EventKind::Heartbeat, &config.primary, 2)
                .clusterless
                .is_empty()
        );
        e.on_role("r1", 3, false, Some("elsewhere:3306"));
        assert_eq!(
            e.event(EventKind::Heartbeat, &config.primary, 3)
                .clusterless,
            ["r1"]
        );
        e.on_role("r1", 4, false, Some("h1:3306"));
        assert!(
            e.event(EventKind::Heartbeat, &config.primary, 4)
                .clusterless
                .is_empty()
        );
        assert_eq!(
            names(e.on_role("r1", 5, true, None)),
            [
                ("source_change", Some("h1:3306".into()), None),
                (
                    "role_change",
                    Some("read_only".into()),
                    Some("writable".into())
                )
            ]
        );
    }
}
