//! The kinds of event the recorder stores and the documents it stores them as, read
//! back typed ([`EventDoc`]). The recorder writes them (`cluster::doc` has the written
//! shapes); the offline commands read them back through the store.

use serde::{Deserialize, Serialize};

/// What an event says happened; stored and shown as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The recorder started and has its first picture of the cluster.
    RecorderUp,
    /// A periodic hook while the recorder runs (never stored).
    Heartbeat,
    PrimaryDown,
    PrimaryUp,
    /// The beat writer moved to another server.
    Failover,
    /// A second server takes writes beside the primary.
    Split,
    SplitEnd,
    ReplicaDown,
    ReplicaUp,
    /// Stored only: a replica replicates from another server.
    SourceChange,
    /// Stored only: a server's `read_only` flipped.
    RoleChange,
    /// Stored only: how a replica is probed.
    Probe,
    /// Stored only: a trigger's run.
    TriggerRun,
    /// Read back only: a kind this version does not know (a newer recorder's); the
    /// document keeps its name.
    Unknown,
}

impl EventKind {
    const NAMES: [(EventKind, &'static str); 13] = [
        (EventKind::RecorderUp, "recorder_up"),
        (EventKind::Heartbeat, "heartbeat"),
        (EventKind::PrimaryDown, "primary_down"),
        (EventKind::PrimaryUp, "primary_up"),
        (EventKind::Failover, "failover"),
        (EventKind::Split, "split"),
        (EventKind::SplitEnd, "split_end"),
        (EventKind::ReplicaDown, "replica_down"),
        (EventKind::ReplicaUp, "replica_up"),
        (EventKind::SourceChange, "source_change"),
        (EventKind::RoleChange, "role_change"),
        (EventKind::Probe, "probe"),
        (EventKind::TriggerRun, "trigger_run"),
    ];

    /// Its name as stored and as triggers read it; `unknown` for [`EventKind::Unknown`].
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("unknown", |(_, n)| n)
    }

    /// The kind named `name`; [`EventKind::Unknown`] for a name this version does not know.
    pub fn of(name: &str) -> EventKind {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map_or(EventKind::Unknown, |(k, _)| *k)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl PartialEq<&str> for EventKind {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(EventKind::of(&name))
    }
}

/// A stored event document read back, typed: the fields of every kind (`cluster::doc::Event`,
/// `ProbeEvent`, a trigger's run), those a kind does not carry absent. Documents
/// written by earlier versions read the same way; a field this version does not know is
/// ignored here (the raw document keeps it).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EventDoc {
    /// The kind's name as stored (kept when this version does not know it).
    pub event: String,
    pub cluster: String,
    /// The server it is about.
    pub node: Option<NodeName>,
    /// For `failover`: where beats went before.
    pub previous_primary: Option<NodeName>,
    /// For `primary_down` and `probe`: why.
    pub reason: Option<String>,
    /// For `primary_up`: how long the primary was down, s.
    pub down_s: Option<f64>,
    /// For `replica_down` and `replica_up`.
    pub check: Option<CheckDoc>,
    /// For `source_change` and `role_change`.
    pub change: Option<ChangeDoc>,
    pub while_stopped: bool,
    /// For `probe`: `poll` or `binlog`.
    pub probe: Option<String>,
    /// For `trigger_run`: the event it ran for, the program, its exit code (null when
    /// killed), whether it timed out, and the first line of its stderr.
    pub trigger: Option<String>,
    pub program: Option<String>,
    pub code: Option<i32>,
    pub timed_out: bool,
    pub stderr: Option<String>,
}

impl EventDoc {
    pub fn kind(&self) -> EventKind {
        EventKind::of(&self.event)
    }

    /// The name of the server it is about, if it names one.
    pub fn node_name(&self) -> Option<&str> {
        self.node.as_ref().map(|n| n.name.as_str())
    }
}

/// A server named only, where an event needs no more of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeName {
    pub name: String,
}

/// What changed, as `source_change` and `role_change` carry it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeDoc {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A replica's live check, as `replica_down` and `replica_up` carry it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckDoc {
    /// `healthy`, `lagging`, `unreachable`, `io_stopped`, `sql_stopped`, `stale`, `source_down`;
    /// for PostgreSQL `wal_receiver_stopped` and `replay_paused` in place of the threads'.
    pub reason: String,
    pub detail: String,
    pub lag_lo_ms: Option<f64>,
    pub lag_hi_ms: Option<f64>,
    pub sql_delay_s: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_as_itself_and_an_unknown_one_keeps_its_name() {
        for (kind, name) in EventKind::NAMES {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), kind);
        }
        // A newer recorder's kind, with a field this version does not know.
        let doc: EventDoc = serde_json::from_str(
            r#"{"schema":2,"event":"quorum_lost","cluster":"c","node":{"name":"r1","address":"h2:3306"},"votes":3}"#,
        )
        .unwrap();
        assert_eq!(
            (doc.kind(), doc.event.as_str()),
            (EventKind::Unknown, "quorum_lost")
        );
        assert_eq!((doc.cluster.as_str(), doc.node_name()), ("c", Some("r1")));
    }

    #[test]
    fn a_trigger_run_reads_back_typed() {
        let doc: EventDoc = serde_json::from_str(
            r#"{"schema":1,"event":"trigger_run","time_utc":"2026-12-07T09:25:07Z","cluster":"c","trigger":"failover","program":"/bin/false","code":1,"timed_out":false,"duration_s":0.01,"stderr":"no"}"#,
        )
        .unwrap();
        assert_eq!(doc.kind(), EventKind::TriggerRun);
        assert_eq!(doc.trigger.as_deref(), Some("failover"));
        assert_eq!((doc.code, doc.timed_out), (Some(1), false));
    }
}
