//! The TOML configuration: parsing, validation and defaults (docs/configuration.md).
//!
//! This module is pure: it reads text and returns either a validated [`Config`] or
//! one [`ConfigError`] that names the file, line and key at fault. Raw serde structs
//! (`Raw*`) mirror the file; each section is then validated into a typed struct with
//! defaults applied. Passwords are never part of the file: [`PasswordSource`] says
//! where to find one and [`resolve_password`] fetches it when a command needs it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod address;
mod raw;
mod secret;
mod validate;
mod values;

pub use address::{check_statsd_prefix, statsd_address};
pub use secret::{Secret, resolve_password};
pub use validate::node_name;
pub use values::{ValueError, parse_duration, parse_probe};

/// Default beat interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
/// Shortest beat interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// Longest beat interval accepted: beyond this a heartbeat says little about lag.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// Default TCP connect timeout for every host.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default timeout of each query.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(1);
/// Default port when an address gives none.
pub const DEFAULT_MYSQL_PORT: u16 = 3306;
/// Default port of a PostgreSQL cluster's addresses.
pub const DEFAULT_POSTGRES_PORT: u16 = 5432;
/// Longest name (cluster, replica) accepted; names travel into metric names and URLs.
pub const MAX_NAME_LEN: usize = 64;
/// Longest cluster name: its `check` row, `<name>#check`, must fit the heartbeat
/// table's 64-character key.
pub const MAX_CLUSTER_NAME_LEN: usize = 58;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub record: RecordConfig,
    pub connection: ConnectionConfig,
    pub clusters: Vec<ClusterConfig>,
    pub statsd: Option<StatsdConfig>,
    pub http: Option<HttpConfig>,
    /// The rules `record` judges replicas in or out of the pool by (for the
    /// replica triggers and events): `[http]`'s, or its defaults without it.
    pub pool: HttpConfig,
    pub agent: Option<AgentConfig>,
    /// `[throttle]`: when batch writers may write (`/throttle`); its defaults without it.
    pub throttle: ThrottleConfig,
    pub triggers: TriggersConfig,
}

/// `[record]`: how `lagtrace record` probes and where it stores.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordConfig {
    /// Beat interval, between [`MIN_INTERVAL`] and [`MAX_INTERVAL`].
    pub interval: Duration,
    /// The redb store file.
    pub store: PathBuf,
    /// How often the store commits (a crash loses at most this much).
    pub flush: Duration,
    /// Each replica reads after every `read_every`-th beat (1 = every beat).
    pub read_every: u32,
    /// Period of the replication status poll.
    pub status_every: Duration,
    /// Chunks older than this are dropped while recording (`None`: kept for ever),
    /// between [`MIN_RETAIN`] and [`MAX_RETAIN`].
    pub retain: Option<Duration>,
    /// `/status`'s document (with or without `[http]`) is also written here,
    /// atomically (a temporary file renamed over it), every second.
    pub status_file: Option<PathBuf>,
    /// How replicas are probed, unless their cluster says otherwise.
    pub probe: ProbeMode,
    /// The binary log streams' replication server ids are this plus the replica's
    /// store id: each must differ from every real server's `server_id`, and two
    /// recorders watching one replica need different ones.
    pub binlog_server_id: u32,
    /// `binlog_server_id` was not given: `record` moves it by its recorder id
    /// ([`binlog_server_id_for`]), so two recorders' streams never share one.
    pub binlog_server_id_default: bool,
    /// This recorder's name among the recorders of a cluster (`[record] id`, or
    /// [`default_recorder_id`] once `record` knows its host): its beats go to a
    /// heartbeat row of its own, so two recorders on one cluster measure it
    /// independently. `None`: the cluster's own row, the one `init` creates.
    pub id: Option<String>,
}

/// Longest recorder id: its row, `<cluster>#<id>`, must fit the heartbeat table's
/// 64-character key with a cluster name of [`MAX_CLUSTER_NAME_LEN`].
pub const MAX_RECORDER_ID_LEN: usize = 5;

/// Whether `id` may name a recorder: 1 to [`MAX_RECORDER_ID_LEN`] lower-case letters
/// and digits, and not a row suffix lagtrace uses itself (`check`, `split`).
pub fn recorder_id_ok(id: &str) -> bool {
    (1..=MAX_RECORDER_ID_LEN).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && !matches!(id, "check" | "split")
}

/// The binary log streams' base server id of the recorder named `id` when the config
/// gives none: [`DEFAULT_BINLOG_SERVER_ID`] plus a multiple of 65 536 (a stream adds
/// its replica's store id, under 65 536) from the id, so that two recorders watching
/// one replica do not register with one server id (the server would end the older
/// stream each time the other connects).
pub fn binlog_server_id_for(id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    DEFAULT_BINLOG_SERVER_ID + (hash % 16_384) * 65_536
}

/// The id of a recorder on host `host` writing `store` (as given, made absolute by the
/// caller) when the config names none: stable across restarts and upgrades (FNV-1a,
/// not the standard library's hasher, whose output may change), different for two
/// recorders on one host (their stores differ) and, almost surely, on two hosts.
pub fn default_recorder_id(host: &str, store: &std::path::Path) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let store = store.to_string_lossy();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in host.bytes().chain([0]).chain(store.bytes()) {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Five base-36 digits, the first a letter: never `check` or `split`, never a number
    // that reads like a port.
    let mut id = String::new();
    id.push(ALPHABET[10 + (hash % 26) as usize] as char);
    hash /= 26;
    for _ in 1..MAX_RECORDER_ID_LEN {
        id.push(ALPHABET[(hash % 36) as usize] as char);
        hash /= 36;
    }
    if recorder_id_ok(&id) {
        id
    } else {
        format!("r{}", &id[1..])
    }
}

/// How a replica's heartbeat is seen (`probe`, `docs/binlog-probe.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProbeMode {
    /// Read the row after each beat.
    #[default]
    Poll,
    /// The binary log stream where the replica allows it, else polling (and why is
    /// logged once, shown in `/status` and stored).
    Auto,
    /// The binary log stream only: a replica that does not allow it has failed reads.
    Binlog,
}

impl ProbeMode {
    /// As the config spells it.
    pub fn name(self) -> &'static str {
        match self {
            ProbeMode::Poll => "poll",
            ProbeMode::Auto => "auto",
            ProbeMode::Binlog => "binlog",
        }
    }

    pub fn parse(s: &str) -> Option<ProbeMode> {
        [ProbeMode::Poll, ProbeMode::Auto, ProbeMode::Binlog]
            .into_iter()
            .find(|m| m.name() == s)
    }
}

/// The default base of binary log stream server ids: far above the small numbers
/// servers are usually given.
pub const DEFAULT_BINLOG_SERVER_ID: u32 = 1_280_000_000;

/// Shortest retention: long enough for every live check and a short test.
pub const MIN_RETAIN: Duration = Duration::from_secs(10);
/// Longest retention, ten years of 365.25 days (humantime's "10years").
pub const MAX_RETAIN: Duration = Duration::from_secs(10 * 31_557_600);

/// `[connection]`: settings shared by every host.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionConfig {
    pub user: String,
    pub password: PasswordSource,
    /// Schema holding the heartbeat table; a plain identifier.
    pub database: String,
    /// The PostgreSQL database lagtrace connects to (the `database` schema lives in
    /// it); a plain identifier.
    pub postgres_database: String,
    pub connect_timeout: Duration,
    /// Timeout of every query after connecting.
    pub query_timeout: Duration,
    /// How every connection uses TLS.
    pub tls: TlsConfig,
}

/// How connections use TLS (`tls`), by MySQL's `--ssl-mode` names; libpq's `sslmode`
/// names mean the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain text (`disable`).
    Disabled,
    /// TLS when the server offers it, plain text when it does not; the certificate is
    /// not checked (`prefer`): both clients' default.
    #[default]
    Preferred,
    /// TLS or no connection; the certificate is not checked (`require`).
    Required,
    /// TLS with a certificate signed by a trusted CA, whatever name it is for
    /// (`verify-ca`).
    VerifyCa,
    /// TLS with a certificate signed by a trusted CA for the server's name or IP
    /// (`verify-full`).
    VerifyIdentity,
}

impl TlsMode {
    /// Every accepted name and what it means: MySQL's first, then libpq's.
    pub const NAMES: [(&str, TlsMode); 10] = [
        ("disabled", TlsMode::Disabled),
        ("preferred", TlsMode::Preferred),
        ("required", TlsMode::Required),
        ("verify_ca", TlsMode::VerifyCa),
        ("verify_identity", TlsMode::VerifyIdentity),
        ("disable", TlsMode::Disabled),
        ("prefer", TlsMode::Preferred),
        ("require", TlsMode::Required),
        ("verify-ca", TlsMode::VerifyCa),
        ("verify-full", TlsMode::VerifyIdentity),
    ];

    /// Its MySQL name, as lagtrace prints it.
    pub fn name(self) -> &'static str {
        TlsMode::NAMES
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("preferred", |(n, _)| n)
    }

    /// Whether the server's certificate must chain to a trusted CA.
    pub fn verifies(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyIdentity)
    }
}

/// `tls`, `tls_ca`, `tls_cert`, `tls_key` and `tls_server_name` of `[connection]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsConfig {
    pub mode: TlsMode,
    /// The CAs to trust (`tls_ca`); `None`: the Mozilla roots built into lagtrace.
    pub ca: Option<PemFile>,
    /// A client certificate and its key (`tls_cert`, `tls_key`), both or neither.
    pub client: Option<(PemFile, PemFile)>,
    /// The name the server's certificate must be for (`tls_server_name`), when it is
    /// not the host connected to (an IP, a tunnel, a proxy).
    pub server_name: Option<String>,
}

/// A PEM file read when the config was: its path (for messages) and its bytes. Its
/// `Debug` shows the path only: a key's bytes never reach a log.
#[derive(Clone, PartialEq)]
pub struct PemFile {
    pub path: PathBuf,
    pub pem: Vec<u8>,
}

impl std::fmt::Debug for PemFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PemFile({})", self.path.display())
    }
}

/// Where the password comes from. Never the config file itself, never argv.
#[derive(Debug, Clone, PartialEq)]
pub enum PasswordSource {
    /// An environment variable's name (`password_env`).
    Env { var: String },
    /// A file whose first line is the password (`password_file`).
    File { path: PathBuf },
    /// `password=` in the `[client]` section of `~/.my.cnf` (the default).
    MyCnf,
}

/// What a cluster's servers are (`kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// MySQL or MariaDB (the default).
    #[default]
    Mysql,
    /// PostgreSQL streaming replication: a primary and hot standbys.
    Postgres,
}

impl Kind {
    /// The port an address of this kind gets when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Kind::Mysql => DEFAULT_MYSQL_PORT,
            Kind::Postgres => DEFAULT_POSTGRES_PORT,
        }
    }

    /// As the config spells it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mysql => "mysql",
            Kind::Postgres => "postgres",
        }
    }
}

/// One `[[cluster]]`: a primary and the replicas that follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub name: String,
    /// What its servers are.
    pub kind: Kind,
    pub primary: Address,
    /// Replicas by name, sorted by name.
    pub replicas: Vec<ReplicaConfig>,
    /// A cluster given as `nodes`: every server, by name (sorted). `primary` and
    /// `replicas` are then found by asking the servers (`probe::topology`), which
    /// every command that connects does before anything else; until then they hold
    /// the first node and the others.
    pub nodes: Vec<ReplicaConfig>,
    /// How its replicas are probed: its own `probe`, else `[record] probe`.
    pub probe: ProbeMode,
}

impl ClusterConfig {
    /// The name triggers and logs give the primary: its node name for a cluster given
    /// as `nodes`, else `primary`.
    pub fn primary_name(&self) -> &str {
        self.nodes
            .iter()
            .find(|n| n.address == self.primary)
            .map_or("primary", |n| n.name.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaConfig {
    pub name: String,
    pub address: Address,
}

/// A MySQL server address: host name or IP, and TCP port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

/// `[statsd]`: where live metrics go.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsdConfig {
    pub address: Address,
    pub prefix: String,
}

/// `[http]`: the health-check and metrics listener, and the thresholds of the live
/// pool state machine (which the `[agent]` listener shares).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Out of the pool when lag exceeds this.
    pub max_lag: Duration,
    /// Back in once lag falls under this (not above `max_lag`; default half of it).
    pub recover_lag: Duration,
    /// Out when no read came for this long.
    pub stale: Duration,
    /// A new pool state must hold this long before checks report it.
    pub min_duration: Duration,
    /// A file named after a replica in this directory puts it in maintenance.
    pub maintenance_dir: Option<PathBuf>,
    /// Replicas whose intended delay (SQL_Delay) is subtracted from their lag before
    /// it is compared with the thresholds; sorted.
    pub ignore_intended_delay: Vec<String>,
    /// Take a replica out of the pool while its source is down (the primary is
    /// unreachable from lagtrace and from the replica); by default it stays in, judged
    /// by its lag.
    pub out_when_source_down: bool,
}

/// `[throttle]`: when a cluster may take more batch writes (`/throttle/<cluster>`,
/// freno's `/check/<app>/mysql/<cluster>`, `lagtrace wait`).
#[derive(Debug, Clone, PartialEq)]
pub struct ThrottleConfig {
    /// The lag (upper bound) over which writers wait, for a request that names no app.
    pub max_lag: Duration,
    /// Per app (`?app=`, freno's `<app>`): its own `max_lag`.
    pub apps: BTreeMap<String, Duration>,
    /// Which replicas count.
    pub replicas: ThrottleReplicas,
    /// Whether a replica that does not answer holds writers back (default: it does).
    pub unreachable_throttles: bool,
    /// A file `cluster.<name>` here holds every writer of that cluster back, `app.<name>`
    /// that app's everywhere.
    pub force_dir: Option<PathBuf>,
}

/// Which replicas `/throttle` asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottleReplicas {
    /// Every replica that serves reads: all but those in maintenance.
    Pool,
    /// Every replica, in maintenance or not.
    All,
    /// These (a delayed or backup replica left out holds nothing up).
    Named(Vec<String>),
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_lag: Duration::from_secs(1),
            apps: BTreeMap::new(),
            replicas: ThrottleReplicas::Pool,
            unreachable_throttles: true,
            force_dir: None,
        }
    }
}

/// Default `[http] stale`.
pub const DEFAULT_STALE: Duration = Duration::from_secs(3);

/// `[agent]`: HAProxy's agent-check protocol (one line in: a replica name; one line
/// out: its state), answered with the thresholds of `[http]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub listen: SocketAddr,
}

/// How long a trigger may run before it is killed with its process group.
pub const DEFAULT_TRIGGER_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the `heartbeat` trigger runs.
pub const DEFAULT_HEARTBEAT_EVERY: Duration = Duration::from_secs(60);

/// `[triggers]`: a command (argv, no shell) per topology event; empty when unset.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TriggersConfig {
    /// See [`DEFAULT_TRIGGER_TIMEOUT`].
    pub timeout: Duration,
    /// See [`DEFAULT_HEARTBEAT_EVERY`].
    pub heartbeat_every: Duration,
    /// Run every `heartbeat_every` per cluster with the cluster's state (plusmoin's
    /// per-iteration hook).
    pub heartbeat: Option<Vec<String>>,
    pub recorder_up: Option<Vec<String>>,
    pub primary_down: Option<Vec<String>>,
    pub primary_up: Option<Vec<String>>,
    /// The beat writer found the primary moved to another server of the cluster.
    pub failover: Option<Vec<String>>,
    pub replica_down: Option<Vec<String>>,
    pub replica_up: Option<Vec<String>>,
    /// A second server of the cluster takes writes (see `SPLIT_AFTER_US`).
    pub split: Option<Vec<String>>,
}

/// A configuration problem: the file, the line when known, the key, and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}{}{}: {message}", at_line(.line), at_key(.key))]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    /// Dotted path of the key at fault (`cluster[0].primary`); empty for syntax errors.
    pub key: String,
    pub message: String,
}

/// `:line` when the line is known.
fn at_line(line: &Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// `: key` when a key is at fault.
fn at_key(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!(": {key}")
    }
}

/// Command-line values that replace `[record]` keys before validation, so that they
/// pass the same checks as the file's values; an error about one names its flag
/// (`--flush: ...`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--store` for `record.store`.
    pub store: Option<PathBuf>,
    /// `--interval` for `record.interval`.
    pub interval: Option<Duration>,
    /// `--flush` for `record.flush`.
    pub flush: Option<Duration>,
    /// `--status-every` for `record.status_every`.
    pub status_every: Option<Duration>,
    /// `--retain` for `record.retain`.
    pub retain: Option<Duration>,
    /// `--probe` for `record.probe` and every cluster's `probe`.
    pub probe: Option<ProbeMode>,
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, &Overrides::default())
}

/// Reads a config file, applies `overrides` and validates the result once.
pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: None,
        key: String::new(),
        message: format!("cannot read config: {}", validate::io_reason(&e)),
    })?;
    parse_with(&file, &text, overrides)
}

/// Parses and validates config text; `file` is only used in error messages.
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    parse_with(file, text, &Overrides::default())
}

/// [`parse`] with command-line overrides applied before validation.
pub fn parse_with(file: &str, text: &str, overrides: &Overrides) -> Result<Config, ConfigError> {
    validate::validate(file, text, overrides)
}

#[cfg(test)]
mod tests;
