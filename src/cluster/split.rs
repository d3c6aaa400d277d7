//! A split cluster's sides: which beats each replica is measured against while a second
//! server takes writes beside the primary, and the names its parts are stored under.
//!
//! A cluster with two primaries (a split, which `ClusterEvents` in the events module finds) is
//! measured as two: the cluster keeps its beats and the replicas that follow its
//! primary (or neither), and each second primary gets a part of its own: a beat writer
//! on it, under the cluster name `<cluster>~<node>` ([`part_name`]) and on the
//! heartbeat row `<cluster>#split`, and readers on the replicas that follow it, matched
//! against that part's beats. When the split ends the part's writer stops and its
//! replicas are read against the cluster's beats again.

use crate::store::{cluster_key, replica_key};

/// Which beats a replica is measured against while its cluster may be split (see
/// `ClusterEvents::side`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// The cluster's own beats.
    Cluster,
    /// It is the second primary named here: its part's beats go to it, and it is not
    /// read as a replica.
    PartPrimary(String),
    /// The beats of the part of the second primary named here, which it follows.
    Part(String),
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_keys_name_every_part_and_its_other_replicas() {
        let keys = part_keys("lab", &["r1".into(), "r2".into()]);
        assert_eq!(keys, ["c/lab~r1", "r/lab~r1/r2", "c/lab~r2", "r/lab~r2/r1"]);
    }
}
