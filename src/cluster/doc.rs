//! The documents the cluster's events are made of: what a trigger reads on stdin, what
//! the store keeps as an event, and the state the next recorder starts from. Plain data,
//! serialized as JSON; times are RFC 3339 UTC, with the same time as UTC µs beside it
//! for the store's key.

use serde::Serialize;

use crate::clock::format_utc_us;
pub use crate::samples::event::{ChangeDoc, CheckDoc, EventDoc, EventKind, NodeName};

/// A replica's pool state, as a check answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    In,
    Out,
    Maintenance,
}

/// The document a trigger reads on stdin. Times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Version of this document's shape.
    pub schema: u32,
    /// `recorder_up`, `heartbeat`, `primary_down`, `primary_up`, `failover`, `split`,
    /// `replica_down`, `replica_up`; stored only: `source_change`, `role_change`,
    /// `split_end`.
    pub event: EventKind,
    pub time_utc: String,
    /// The same time, UTC µs (for the store's key).
    #[serde(skip)]
    pub t_us: i64,
    pub cluster: String,
    /// The server the event is about.
    pub node: Node,
    /// The primary beats go to after the event.
    pub primary: Node,
    pub replicas: Vec<Node>,
    /// Replicas that do not answer now.
    pub lost: Vec<Node>,
    /// Servers listed in `nodes` that are not part of the cluster (they replicate from
    /// elsewhere, or took writes at the start), by name.
    pub clusterless: Vec<String>,
    /// For `failover`: where beats went before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_primary: Option<Node>,
    /// For `primary_down`: why the beats fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `primary_up`: how long the primary was down, s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_s: Option<f64>,
    /// For `replica_down` and `replica_up`: the live check's answer for the replica
    /// (its reason code, its lag in ms when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckDoc>,
    /// For `split`: the servers that take writes, and which replicas follow which.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitDoc>,
    /// For `source_change` (the source's `host:port`, null for none) and
    /// `role_change` (`read_only` or `writable`): before and after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeDoc>,
    /// The change happened while no recorder ran: the state the last recorder stored
    /// differs from what this one found at its start.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub while_stopped: bool,
}

/// What the recorder knows of a cluster, stored on every change (the `state` table)
/// so that the next `record` fires what changed while it was stopped. JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ClusterState {
    /// The version of this document's shape ([`SCHEMA`]).
    pub schema: u32,
    /// The server beats went to.
    pub primary: String,
    /// Whether `primary_down` had fired without its `primary_up`.
    pub primary_down: bool,
    /// Per replica name: whether it was in the read pool at the last look.
    pub in_pool: std::collections::BTreeMap<String, bool>,
    /// The second primaries `split` had fired for, by name: a recorder restarted
    /// during the split takes it up again without firing `split` a second time.
    /// Absent in states stored before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split: Vec<String>,
}

/// How a replica is probed, stored as an event (`probe`) when its probe starts and
/// whenever that changes (`probe = "auto"` falling back to polling says why). Never
/// runs a trigger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeEvent {
    pub schema: u32,
    /// Always `probe`.
    pub event: EventKind,
    pub time_utc: String,
    /// The same time, UTC µs (for the store's key).
    #[serde(skip)]
    pub t_us: i64,
    pub cluster: String,
    /// The replica, by name.
    pub node: NodeName,
    /// `poll` or `binlog`.
    pub probe: &'static str,
    /// Why it is not probed as configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ProbeEvent {
    pub fn new(
        (cluster, replica): (&str, &str),
        t_us: i64,
        binlog: bool,
        reason: Option<String>,
    ) -> ProbeEvent {
        ProbeEvent {
            schema: SCHEMA,
            event: EventKind::Probe,
            time_utc: format_utc_us(t_us),
            t_us,
            cluster: cluster.to_string(),
            node: NodeName {
                name: replica.to_string(),
            },
            probe: if binlog { "binlog" } else { "poll" },
            reason,
        }
    }
}

/// A cluster with two writable servers, as `split` carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitDoc {
    /// Every server that takes writes and replicates from nothing: beats stay on the
    /// first (the primary before the split).
    pub primaries: Vec<Node>,
    /// Per primary (by name): the replicas whose source it is.
    pub following: std::collections::BTreeMap<String, Vec<String>>,
    /// Replicas whose source is neither (or unknown): they stay in the cluster as it was.
    pub neither: Vec<String>,
}

/// A server as triggers see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub name: String,
    pub address: String,
    /// `primary` or `replica` (as configured, or as found after a failover).
    pub role: &'static str,
    /// The `host:port` its main channel replicates from, as its last status poll said
    /// (null for the primary, or before the first poll).
    pub source: Option<String>,
    /// Its lag at the last look, ms (null for the primary and before any lag; `hi_ms`
    /// null when only a floor is known).
    pub lag: Option<LagDoc>,
    /// Its replication vector at the last look (0 keeps up, -1 applies nothing).
    pub vector: Option<f64>,
    /// Its intended delay (MASTER_DELAY), s.
    pub sql_delay_s: Option<u32>,
}

/// A replica's lag bounds, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LagDoc {
    pub lo_ms: f64,
    pub hi_ms: Option<f64>,
}

/// The version of [`Event`]'s shape.
pub const SCHEMA: u32 = 1;
