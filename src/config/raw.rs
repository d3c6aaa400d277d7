//! The config file as it is written: serde structs that mirror its tables, before
//! validation (`validate.rs`) turns them into the typed [`super::Config`].

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) record: RawRecord,
    #[serde(default)]
    pub(super) connection: RawConnection,
    #[serde(default)]
    pub(super) cluster: Vec<RawCluster>,
    pub(super) statsd: Option<RawStatsd>,
    pub(super) http: Option<RawHttp>,
    pub(super) agent: Option<RawAgent>,
    pub(super) throttle: Option<RawThrottle>,
    #[serde(default)]
    pub(super) triggers: RawTriggers,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawThrottle {
    pub(super) max_lag: Option<String>,
    pub(super) apps: Option<BTreeMap<String, String>>,
    /// `"pool"`, `"all"`, or a list of replica names.
    pub(super) replicas: Option<toml::Value>,
    pub(super) unreachable: Option<String>,
    pub(super) force_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecord {
    pub(super) interval: Option<String>,
    pub(super) store: Option<String>,
    pub(super) flush: Option<String>,
    pub(super) read_every: Option<u32>,
    pub(super) status_every: Option<String>,
    pub(super) retain: Option<String>,
    pub(super) status_file: Option<String>,
    pub(super) probe: Option<String>,
    pub(super) binlog_server_id: Option<u32>,
    pub(super) id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConnection {
    pub(super) user: Option<String>,
    /// Present only to reject it with a helpful message.
    pub(super) password: Option<toml::Value>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<String>,
    pub(super) database: Option<String>,
    pub(super) postgres_database: Option<String>,
    pub(super) connect_timeout: Option<String>,
    pub(super) query_timeout: Option<String>,
    pub(super) tls: Option<String>,
    pub(super) tls_ca: Option<String>,
    pub(super) tls_cert: Option<String>,
    pub(super) tls_key: Option<String>,
    pub(super) tls_server_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) name: String,
    pub(super) kind: Option<String>,
    pub(super) primary: Option<String>,
    #[serde(default)]
    pub(super) replicas: BTreeMap<String, String>,
    pub(super) nodes: Option<RawNodes>,
    pub(super) probe: Option<String>,
}

/// `nodes`: addresses (each named after its address) or `{ name = "host:port" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawNodes {
    List(Vec<String>),
    Named(BTreeMap<String, String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatsd {
    pub(super) address: Option<String>,
    pub(super) prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) listen: Option<String>,
    pub(super) max_lag: Option<String>,
    pub(super) recover_lag: Option<String>,
    pub(super) stale: Option<String>,
    pub(super) min_duration: Option<String>,
    pub(super) maintenance_dir: Option<String>,
    pub(super) ignore_intended_delay: Option<Vec<String>>,
    pub(super) out_when_source_down: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    pub(super) listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTriggers {
    pub(super) timeout: Option<String>,
    pub(super) heartbeat_every: Option<String>,
    pub(super) heartbeat: Option<Vec<String>>,
    pub(super) recorder_up: Option<Vec<String>>,
    pub(super) primary_down: Option<Vec<String>>,
    pub(super) primary_up: Option<Vec<String>>,
    pub(super) failover: Option<Vec<String>>,
    pub(super) replica_down: Option<Vec<String>>,
    pub(super) replica_up: Option<Vec<String>>,
    pub(super) split: Option<Vec<String>>,
}
