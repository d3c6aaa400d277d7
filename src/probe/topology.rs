//! Step 1 of the data flow, before any probing: for a cluster given as `nodes`, which
//! server is the primary and which replicate from it (plusmoin's discovery). Each node
//! is asked once for `@@server_id`, `@@read_only` and its replication channels (a
//! PostgreSQL node for `pg_is_in_recovery()` and its WAL receiver's sender; it has no
//! server id); the classification itself is a plain function of those answers
//! ([`classify`]).
//!
//! - primary: takes writes and replicates from nothing (when none does, because the
//!   primary is down, the one server every reachable replica replicates from);
//! - replica: replicates from the primary, matched by address (names resolved once and
//!   compared as IPs) or by the source's `server_id`;
//! - lost: did not answer; probed as a replica, so it shows as unreachable and comes
//!   into the pool when it answers;
//! - clusterless: replicates from a server outside the list, or is a second writable
//!   server: left out, with a warning.

use mysql_async::prelude::Queryable;

use crate::config::{Address, ClusterConfig, ConnectionConfig, Kind, ReplicaConfig, Secret};

use super::conn::{self, DbError, column_string, timed};

/// What one node said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub server_id: u32,
    /// `@@read_only` is off.
    pub writable: bool,
    /// Each replication channel's source: `Master_Host`, `Master_Port` and
    /// `Master_Server_Id` (0 when the server does not say).
    pub sources: Vec<(String, u16, u32)>,
}

/// A node's place in its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
    /// Did not answer (why).
    Lost(String),
    /// Not part of this cluster now (why).
    Clusterless(String),
}

/// Why a cluster given as `nodes` has no topology to probe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// What each node said, in words.
    #[error(
        "cannot tell the primary: none takes writes alone and the replicas do not agree on a source ({0})"
    )]
    NoPrimary(String),
    #[error("cluster {cluster}: found no replica of the primary {primary} among its nodes")]
    NoReplica { cluster: String, primary: String },
    #[error("cluster {cluster}: {why}")]
    Cluster {
        cluster: String,
        why: Box<TopologyError>,
    },
}

/// The nodes' roles, in the order given; `Err` when no primary can be told.
pub fn classify(
    nodes: &[ReplicaConfig],
    seen: &[Result<Seen, DbError>],
    same: &dyn Fn(&(String, u16), &Address) -> bool,
) -> Result<Vec<Role>, TopologyError> {
    // The node each reachable node replicates from (its first channel), if listed.
    let source_of = |s: &Seen| -> Option<usize> {
        let (host, port, id) = s.sources.first()?;
        nodes.iter().enumerate().position(|(j, n)| {
            same(&(host.clone(), *port), &n.address)
                || (*id != 0 && matches!(&seen[j], Ok(o) if o.server_id == *id))
        })
    };
    let writable: Vec<usize> = (0..nodes.len())
        .filter(|&i| matches!(&seen[i], Ok(s) if s.writable && s.sources.is_empty()))
        .collect();
    let followers = |p: usize| {
        seen.iter()
            .filter(|s| matches!(s, Ok(s) if source_of(s) == Some(p)))
            .count()
    };
    let primary = match writable.as_slice() {
        [one] => *one,
        [] => {
            // The primary is down (or read-only): the source every replica agrees on.
            let mut sources = seen.iter().filter_map(|s| s.as_ref().ok()).map(source_of);
            match sources.next() {
                Some(Some(p)) if sources.all(|s| s == Some(p)) => p,
                _ => return Err(no_primary(nodes, seen)),
            }
        }
        several => {
            let p = *several
                .iter()
                .max_by_key(|&&p| (followers(p), std::cmp::Reverse(p)))
                .expect("two or more");
            tracing::error!(
                servers = %several.iter().map(|&i| nodes[i].name.as_str()).collect::<Vec<_>>().join(", "),
                primary = %nodes[p].name,
                "several servers take writes and replicate from nothing (a split); taking as the primary the one most replicas follow"
            );
            p
        }
    };
    Ok((0..nodes.len())
        .map(|i| match &seen[i] {
            _ if i == primary => Role::Primary,
            Err(e) => Role::Lost(e.to_string()),
            Ok(s) if s.writable && s.sources.is_empty() => {
                Role::Clusterless("it takes writes too (a split)".into())
            }
            Ok(s) if s.sources.is_empty() => Role::Replica,
            Ok(s) => match source_of(s) {
                Some(p) if p == primary => Role::Replica,
                Some(p) => Role::Clusterless(format!(
                    "it replicates from {}, not from the primary",
                    nodes[p].name
                )),
                None => {
                    let (h, p, _) = &s.sources[0];
                    Role::Clusterless(format!("it replicates from {h}:{p}, which is not listed"))
                }
            },
        })
        .collect())
}

fn no_primary(nodes: &[ReplicaConfig], seen: &[Result<Seen, DbError>]) -> TopologyError {
    let said: Vec<String> = nodes
        .iter()
        .zip(seen)
        .map(|(n, s)| match s {
            Err(e) => format!("{} did not answer ({e})", n.name),
            Ok(s) if s.sources.is_empty() => format!(
                "{} replicates from nothing and is {}",
                n.name,
                if s.writable { "writable" } else { "read-only" }
            ),
            Ok(s) => format!(
                "{} replicates from {}:{}",
                n.name, s.sources[0].0, s.sources[0].1
            ),
        })
        .collect();
    TopologyError::NoPrimary(said.join("; "))
}

/// Asks one PostgreSQL node what [`Seen`] holds: writable when not in recovery, and
/// its WAL receiver's sender as its source (server id 0: matched by address only).
async fn ask_postgres(
    address: &Address,
    settings: &ConnectionConfig,
    password: &Secret,
) -> Result<Seen, DbError> {
    let c = super::pg::connect(address, settings, password).await?;
    let status = super::pg::status(&c, settings.query_timeout).await?;
    let sources = status
        .channels
        .iter()
        .filter_map(|c| {
            let (host, port) = crate::samples::source_host_port(&c.source)?;
            Some((host.to_string(), port, 0))
        })
        .collect();
    Ok(Seen {
        server_id: 0,
        writable: status.writable,
        sources,
    })
}

/// Asks one MySQL/MariaDB node what [`Seen`] holds.
async fn ask(
    address: &Address,
    settings: &ConnectionConfig,
    password: &Secret,
) -> Result<Seen, DbError> {
    let mut c = conn::connect(address, settings, password).await?;
    let t = settings.query_timeout;
    let row: Option<(u32, u8)> =
        timed("query", t, c.query_first("SELECT @@server_id, @@read_only")).await?;
    let (server_id, read_only) = row.ok_or_else(|| DbError::Driver {
        message: "no answer to SELECT @@server_id".into(),
    })?;
    let sql = super::status::status_sql(&mut c, t).await?;
    let rows: Vec<mysql_async::Row> = timed("status poll", t, c.query(sql)).await?;
    let sources = rows
        .iter()
        .map(|r| {
            let text = |names: &[&str]| column_string(r, names).unwrap_or_default();
            (
                text(&["Master_Host", "Source_Host"]),
                text(&["Master_Port", "Source_Port"]).parse().unwrap_or(0),
                text(&["Master_Server_Id", "Source_Server_Id"])
                    .parse()
                    .unwrap_or(0),
            )
        })
        .collect();
    let _ = c.disconnect().await;
    Ok(Seen {
        server_id,
        writable: read_only == 0,
        sources,
    })
}

/// Fills `cluster`'s primary and replicas from its nodes (nothing to do for a cluster
/// given as primary and replicas). Logs what it found; lost nodes are probed as
/// replicas, clusterless ones left out.
pub async fn discover(
    cluster: &mut ClusterConfig,
    settings: &ConnectionConfig,
    password: &Secret,
) -> Result<(), TopologyError> {
    if cluster.nodes.is_empty() {
        return Ok(());
    }
    // One after the other: a few nodes, each bounded by the connect and query timeouts.
    let mut seen = Vec::with_capacity(cluster.nodes.len());
    for n in &cluster.nodes {
        seen.push(match cluster.kind {
            Kind::Mysql => ask(&n.address, settings, password).await,
            Kind::Postgres => ask_postgres(&n.address, settings, password).await,
        });
    }
    let roles = classify(&cluster.nodes, &seen, &|(h, p), a| a.is(h, *p)).map_err(|e| {
        TopologyError::Cluster {
            cluster: cluster.name.clone(),
            why: Box::new(e),
        }
    })?;
    let mut replicas = Vec::new();
    for ((node, role), seen) in cluster.nodes.iter().zip(&roles).zip(&seen) {
        match role {
            Role::Primary => {
                if let Err(why) = seen {
                    tracing::warn!(cluster = %cluster.name, node = %node.name, error = %why, "the primary did not answer; it is the primary because the replicas replicate from it");
                }
                cluster.primary = node.address.clone();
            }
            Role::Replica => replicas.push(node.clone()),
            Role::Lost(why) => {
                tracing::warn!(cluster = %cluster.name, node = %node.name, error = %why, "node did not answer; probed as a replica until it does");
                replicas.push(node.clone());
            }
            Role::Clusterless(why) => {
                tracing::warn!(cluster = %cluster.name, node = %node.name, "node left out: {why}");
            }
        }
    }
    if replicas.is_empty() {
        return Err(TopologyError::NoReplica {
            cluster: cluster.name.clone(),
            primary: cluster.primary.to_string(),
        });
    }
    cluster.replicas = replicas;
    let primary = cluster
        .nodes
        .iter()
        .find(|n| n.address == cluster.primary)
        .map_or("?", |n| n.name.as_str());
    tracing::info!(
        cluster = %cluster.name,
        primary,
        replicas = %cluster.replicas.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", "),
        "topology found"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<ReplicaConfig> {
        ["db1:3306", "db2:3306", "db3:3306"]
            .iter()
            .map(|a| ReplicaConfig {
                name: crate::config::node_name(a),
                address: Address::parse(a).unwrap(),
            })
            .collect()
    }

    fn primary(id: u32) -> Result<Seen, DbError> {
        Ok(Seen {
            server_id: id,
            writable: true,
            sources: vec![],
        })
    }

    fn replica(id: u32, of: &str, of_id: u32) -> Result<Seen, DbError> {
        Ok(Seen {
            server_id: id,
            writable: false,
            sources: vec![(of.into(), 3306, of_id)],
        })
    }

    /// Names compare as given here (no resolving in unit tests).
    fn same(s: &(String, u16), a: &Address) -> bool {
        s.0 == a.host && s.1 == a.port
    }

    #[test]
    fn the_writable_server_is_the_primary_and_its_followers_replicas() {
        let seen = [replica(2, "db3", 0), replica(1, "10.0.0.3", 3), primary(3)];
        let roles = classify(&nodes(), &seen, &same).unwrap();
        // db2 names its source by IP: matched by the source's server_id.
        assert_eq!(roles, [Role::Replica, Role::Replica, Role::Primary]);
    }

    #[test]
    fn a_primary_down_is_the_source_every_replica_agrees_on() {
        let seen = [
            Err(DbError::Refused),
            replica(2, "db1", 1),
            replica(3, "db1", 1),
        ];
        let roles = classify(&nodes(), &seen, &same).unwrap();
        assert_eq!(roles, [Role::Primary, Role::Replica, Role::Replica]);
        // Disagreeing replicas and no writable server: no primary, and why.
        let seen = [
            Err(DbError::Refused),
            replica(2, "db1", 1),
            replica(3, "db2", 2),
        ];
        let e = classify(&nodes(), &seen, &same).unwrap_err().to_string();
        assert!(
            e.contains("db1-3306 did not answer (connection refused)"),
            "{e}"
        );
        assert!(e.contains("db3-3306 replicates from db2:3306"), "{e}");
    }

    #[test]
    fn a_lost_node_a_stranger_source_and_a_split_are_told_apart() {
        let seen = [
            primary(1),
            Err(DbError::Timeout {
                what: "connect",
                after: std::time::Duration::from_secs(2),
            }),
            replica(3, "elsewhere", 9),
        ];
        let roles = classify(&nodes(), &seen, &same).unwrap();
        assert_eq!(roles[0], Role::Primary);
        assert_eq!(roles[1], Role::Lost("connect timed out after 2s".into()));
        assert!(matches!(&roles[2], Role::Clusterless(w) if w.contains("elsewhere:3306")));
        // Two writable servers: the one the replica follows is the primary.
        let seen = [primary(1), primary(2), replica(3, "db2", 2)];
        let roles = classify(&nodes(), &seen, &same).unwrap();
        assert_eq!(roles[1], Role::Primary);
        assert!(matches!(&roles[0], Role::Clusterless(w) if w.contains("split")));
    }
}
