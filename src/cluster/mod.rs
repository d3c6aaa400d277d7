//! The cluster: what lagtrace knows of one cluster's servers as a whole, and decides
//! from it (pure, no I/O). [`events`] is the state machine that follows the primary, a
//! split and the replicas' pool states and says what happened as events; [`split`] says
//! which beats each replica of a split cluster is measured against; [`doc`] holds the
//! documents those events are made of. It takes facts (beats, roles, live checks) and
//! the time; the recorder feeds it and carries out what it says.

pub mod doc;
pub mod events;
pub mod split;

/// Clusters and events for the tests of this module and of the modules that take its
/// events.
#[cfg(test)]
pub(crate) mod testing {
    use std::time::Duration;

    use super::doc::ClusterState;
    use super::events::ClusterEvents;
    use crate::config::ClusterConfig;

    /// Cluster `c`: primary h1, then r1 on h2 and r2 on h3, as many replicas as asked.
    pub fn cluster(replicas: usize) -> ClusterConfig {
        let all = ["r1 = \"h2:3306\"", "r2 = \"h3:3306\""];
        let text = format!(
            "[[cluster]]\nname = \"c\"\nprimary = \"h1:3306\"\nreplicas = {{ {} }}\n",
            all[..replicas].join(", ")
        );
        crate::config::parse("t.toml", &text)
            .unwrap()
            .clusters
            .remove(0)
    }

    /// `cluster`'s events from time 0 with beats on its primary.
    pub fn events_of(
        cluster: &ClusterConfig,
        previous: Option<ClusterState>,
        judges_replicas: bool,
    ) -> ClusterEvents {
        ClusterEvents::new(
            cluster,
            Duration::from_secs(10),
            cluster.primary.clone(),
            previous,
            judges_replicas,
            0,
        )
    }
}
