//! The TOML configuration: parsing, validation and defaults (DESIGN.md section 4).
//!
//! This module is pure: it reads text and returns either a validated [`Config`] or
//! one [`ConfigError`] that names the file, line and key at fault. Raw serde structs
//! (`Raw*`) mirror the file; each section is then validated into a typed struct with
//! defaults applied. Passwords are never part of the file: [`PasswordSource`] says
//! where to find one and [`resolve_password`] fetches it when a command needs it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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
    pub agent: Option<AgentConfig>,
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
}

/// `[connection]`: settings shared by every host.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionConfig {
    pub user: String,
    pub password: PasswordSource,
    /// Schema holding the heartbeat table; a plain identifier.
    pub database: String,
    pub connect_timeout: Duration,
    /// Timeout of every query after connecting.
    pub query_timeout: Duration,
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

/// One `[[cluster]]`: a primary and the replicas that follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub name: String,
    pub primary: Address,
    /// Replicas by name, sorted by name.
    pub replicas: Vec<ReplicaConfig>,
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
}

/// Default `[http] stale`.
pub const DEFAULT_STALE: Duration = Duration::from_secs(3);

/// `[agent]`: HAProxy's agent-check protocol (one line in: a replica name; one line
/// out: its state), answered with the thresholds of `[http]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub listen: SocketAddr,
}

/// `[triggers]`: a command (argv, no shell) per topology event; empty when unset.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TriggersConfig {
    pub recorder_up: Option<Vec<String>>,
    pub primary_down: Option<Vec<String>>,
    pub primary_up: Option<Vec<String>>,
    pub replica_down: Option<Vec<String>>,
    pub replica_up: Option<Vec<String>>,
}

/// A configuration problem: the file, the line when known, the key, and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    /// Dotted path of the key at fault (`cluster[0].primary`); empty for syntax errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A statsd `host:port` (there is no default port: 8125 is only the usual one).
pub fn statsd_address(text: &str) -> Result<Address, String> {
    if !text.contains(':') {
        return Err(format!(
            "bad address {text:?}: give host:port (statsd has no default port here)"
        ));
    }
    Address::parse(text)
}

/// A statsd metric prefix: letters, digits, `_`, `-` and inner dots.
pub fn check_statsd_prefix(prefix: &str) -> Result<(), String> {
    let valid = !prefix.is_empty()
        && !prefix.starts_with('.')
        && !prefix.ends_with('.')
        && !prefix.contains("..")
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{prefix:?} is not a statsd prefix (letters, digits, _ - and inner dots)"
        ))
    }
}

impl Address {
    /// Parses `host:port`, `host` (port 3306) or `[v6]:port`.
    pub fn parse(text: &str) -> Result<Address, String> {
        let text_q = format!("{text:?}");
        if text.is_empty() {
            return Err("address is empty".into());
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("bad address {text_q}: contains whitespace"));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("bad address {text_q}: missing ']'"))?;
            match after {
                "" => (host, None),
                p => match p.strip_prefix(':') {
                    Some(p) => (host, Some(p)),
                    None => return Err(format!("bad address {text_q}: expected ':' after ']'")),
                },
            }
        } else {
            match text.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err(format!(
                        "bad address {text_q}: write IPv6 addresses as [addr]:port"
                    ));
                }
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        if host.is_empty() {
            return Err(format!("bad address {text_q}: host is empty"));
        }
        let valid_host = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%'));
        if !valid_host {
            return Err(format!("bad address {text_q}: host has invalid characters"));
        }
        let port = match port {
            None => DEFAULT_MYSQL_PORT,
            Some(p) => match p.parse::<u32>() {
                Ok(n) if (1..=65535).contains(&n) => n as u16,
                Ok(_) => return Err(format!("bad address {text_q}: port must be 1-65535")),
                Err(_) => return Err(format!("bad address {text_q}: port is not a number")),
            },
        };
        Ok(Address {
            host: host.to_string(),
            port,
        })
    }
}

// ---------------------------------------------------------------------------
// Raw file structure

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    record: RawRecord,
    #[serde(default)]
    connection: RawConnection,
    #[serde(default)]
    cluster: Vec<RawCluster>,
    statsd: Option<RawStatsd>,
    http: Option<RawHttp>,
    agent: Option<RawAgent>,
    #[serde(default)]
    triggers: RawTriggers,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    interval: Option<String>,
    store: Option<String>,
    flush: Option<String>,
    read_every: Option<u32>,
    status_every: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    user: Option<String>,
    /// Present only to reject it with a helpful message.
    password: Option<toml::Value>,
    password_env: Option<String>,
    password_file: Option<String>,
    database: Option<String>,
    connect_timeout: Option<String>,
    query_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: String,
    primary: String,
    #[serde(default)]
    replicas: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatsd {
    address: Option<String>,
    prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    max_lag: Option<String>,
    recover_lag: Option<String>,
    stale: Option<String>,
    min_duration: Option<String>,
    maintenance_dir: Option<String>,
    ignore_intended_delay: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTriggers {
    recorder_up: Option<Vec<String>>,
    primary_down: Option<Vec<String>>,
    primary_up: Option<Vec<String>>,
    replica_down: Option<Vec<String>>,
    replica_up: Option<Vec<String>>,
}

// ---------------------------------------------------------------------------
// Loading and validation

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
        message: format!("cannot read config: {}", io_reason(&e)),
    })?;
    parse_with(&file, &text, overrides)
}

/// Parses and validates config text; `file` is only used in error messages.
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    parse_with(file, text, &Overrides::default())
}

/// [`parse`] with command-line overrides applied before validation.
pub fn parse_with(file: &str, text: &str, overrides: &Overrides) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
        file: file.to_string(),
        line: e.span().map(|s| line_at(text, s.start)),
        key: String::new(),
        message: e.message().trim().replace('\n', " "),
    })?;
    let v = Validator {
        file,
        text,
        overrides,
    };
    v.config(raw)
}

/// Turns raw sections into validated ones; knows the text to find lines for keys.
struct Validator<'a> {
    file: &'a str,
    text: &'a str,
    overrides: &'a Overrides,
}

/// One step of a key path: a table key or an array index.
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

impl Validator<'_> {
    /// An error about a command-line flag that overrides a key.
    fn flag_err(flag: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: flag.to_string(),
            line: None,
            key: String::new(),
            message: message.into(),
        }
    }

    /// A `[record]` duration: the flag's value when given, else the key's, else
    /// `default`; in `range` either way.
    fn record_duration(
        &self,
        key: &str,
        (flag, given): (&str, Option<Duration>),
        raw: Option<String>,
        default: Duration,
        (min, max): (Duration, Duration),
    ) -> Result<Duration, ConfigError> {
        let Some(d) = given else {
            return self.bounded_duration(
                &[Seg::Key("record"), Seg::Key(key)],
                raw,
                default,
                (min, max),
            );
        };
        if d < min || d > max {
            return Err(Self::flag_err(
                flag,
                format!(
                    "{} is out of range: use {} to {}",
                    humantime::format_duration(d),
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ),
            ));
        }
        Ok(d)
    }

    fn err(&self, path: &[Seg<'_>], message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: line_of_path(self.text, path),
            key: path_string(path),
            message: message.into(),
        }
    }

    fn config(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let record = self.record(raw.record)?;
        let connection = self.connection(raw.connection)?;
        if raw.cluster.is_empty() {
            return Err(self.err(
                &[Seg::Key("cluster")],
                "no [[cluster]] defined; add one with a name, a primary and replicas",
            ));
        }
        let mut clusters = Vec::new();
        let mut names: HashMap<String, String> = HashMap::new();
        for (i, rc) in raw.cluster.into_iter().enumerate() {
            let c = self.cluster(i, rc, &mut names)?;
            clusters.push(c);
        }
        let statsd = raw.statsd.map(|s| self.statsd(s)).transpose()?;
        let http = raw
            .http
            .map(|h| self.http(h, &record, &clusters))
            .transpose()?;
        let agent = raw
            .agent
            .map(|a| self.agent(a, http.as_ref()))
            .transpose()?;
        let triggers = self.triggers(raw.triggers)?;
        Ok(Config {
            record,
            connection,
            clusters,
            statsd,
            http,
            agent,
            triggers,
        })
    }

    fn record(&self, raw: RawRecord) -> Result<RecordConfig, ConfigError> {
        let o = self.overrides;
        let interval = match (o.interval, raw.interval) {
            (Some(d), _) if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&d) => {
                return Err(Self::flag_err(
                    "--interval",
                    format!(
                        "{} is out of range: use 1ms to 60s",
                        humantime::format_duration(d)
                    ),
                ));
            }
            (Some(d), _) => d,
            (None, None) => DEFAULT_INTERVAL,
            (None, Some(s)) => {
                let path = [Seg::Key("record"), Seg::Key("interval")];
                let d = parse_duration(&s).map_err(|m| self.err(&path, m))?;
                if d < MIN_INTERVAL || d > MAX_INTERVAL {
                    return Err(self.err(
                        &path,
                        format!("interval {s:?} is out of range: use 1ms to 60s"),
                    ));
                }
                d
            }
        };
        let store = match (&o.store, raw.store) {
            (Some(p), _) if p.as_os_str().is_empty() => {
                return Err(Self::flag_err("--store", "is empty"));
            }
            (Some(p), _) => p.clone(),
            (None, None) => PathBuf::from("lagtrace.redb"),
            (None, Some(s)) if s.trim().is_empty() => {
                return Err(self.err(&[Seg::Key("record"), Seg::Key("store")], "is empty"));
            }
            (None, Some(s)) => PathBuf::from(s),
        };
        let flush = self.record_duration(
            "flush",
            ("--flush", o.flush),
            raw.flush,
            Duration::from_secs(1),
            (Duration::from_millis(10), Duration::from_secs(60)),
        )?;
        let read_every = raw.read_every.unwrap_or(1);
        if !(1..=1000).contains(&read_every) {
            return Err(self.err(
                &[Seg::Key("record"), Seg::Key("read_every")],
                format!("{read_every} is out of range: use 1 to 1000"),
            ));
        }
        let status_every = self.record_duration(
            "status_every",
            ("--status-every", o.status_every),
            raw.status_every,
            Duration::from_secs(1),
            (Duration::from_millis(100), Duration::from_secs(3600)),
        )?;
        Ok(RecordConfig {
            interval,
            store,
            flush,
            read_every,
            status_every,
        })
    }

    /// A duration key with a default and an inclusive range.
    fn bounded_duration(
        &self,
        path: &[Seg<'_>],
        raw: Option<String>,
        default: Duration,
        (min, max): (Duration, Duration),
    ) -> Result<Duration, ConfigError> {
        let Some(s) = raw else { return Ok(default) };
        let d = parse_duration(&s).map_err(|m| self.err(path, m))?;
        if d < min || d > max {
            return Err(self.err(
                path,
                format!(
                    "{s:?} is out of range: use {} to {}",
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ),
            ));
        }
        Ok(d)
    }

    fn connection(&self, raw: RawConnection) -> Result<ConnectionConfig, ConfigError> {
        let key = |k| [Seg::Key("connection"), Seg::Key(k)];
        if raw.password.is_some() {
            return Err(self.err(
                &key("password"),
                "passwords are not accepted in the config file; use password_env or password_file",
            ));
        }
        let user = raw.user.unwrap_or_else(|| "lagtrace".to_string());
        if user.is_empty() || user.len() > 80 {
            return Err(self.err(&key("user"), "must be 1 to 80 characters"));
        }
        let password = match (raw.password_env, raw.password_file) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    &key("password_file"),
                    "set only one of password_env and password_file",
                ));
            }
            (Some(var), None) => {
                let valid = !var.is_empty()
                    && !var.starts_with(|c: char| c.is_ascii_digit())
                    && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(self.err(
                        &key("password_env"),
                        format!("{var:?} is not an environment variable name"),
                    ));
                }
                PasswordSource::Env { var }
            }
            (None, Some(path)) => {
                if path.trim().is_empty() {
                    return Err(self.err(&key("password_file"), "is empty"));
                }
                PasswordSource::File {
                    path: PathBuf::from(path),
                }
            }
            (None, None) => PasswordSource::MyCnf,
        };
        let database = raw.database.unwrap_or_else(|| "lagtrace".to_string());
        let valid_db = !database.is_empty()
            && database.len() <= 64
            && database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        if !valid_db {
            return Err(self.err(
                &key("database"),
                format!(
                    "{database:?} is not a plain schema name (letters, digits, _ and $; at most 64)"
                ),
            ));
        }
        let timeout_range = (Duration::from_millis(1), Duration::from_secs(300));
        let connect_timeout = self.bounded_duration(
            &key("connect_timeout"),
            raw.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
            timeout_range,
        )?;
        let query_timeout = self.bounded_duration(
            &key("query_timeout"),
            raw.query_timeout,
            DEFAULT_QUERY_TIMEOUT,
            timeout_range,
        )?;
        Ok(ConnectionConfig {
            user,
            password,
            database,
            connect_timeout,
            query_timeout,
        })
    }

    /// Validates one cluster; `names` maps every name seen so far to what it named,
    /// because cluster and replica names share one namespace (URLs, metric names).
    fn cluster(
        &self,
        i: usize,
        raw: RawCluster,
        names: &mut HashMap<String, String>,
    ) -> Result<ClusterConfig, ConfigError> {
        let base = [Seg::Key("cluster"), Seg::Index(i)];
        let at = |k| [Seg::Key("cluster"), Seg::Index(i), Seg::Key(k)];
        check_name(&raw.name).map_err(|m| self.err(&at("name"), m))?;
        if raw.name.len() > MAX_CLUSTER_NAME_LEN {
            return Err(self.err(
                &at("name"),
                format!(
                    "cluster name {:?} is longer than {MAX_CLUSTER_NAME_LEN} characters (the heartbeat row of `lagtrace check` adds \"#check\" to it)",
                    raw.name
                ),
            ));
        }
        if let Some(prev) = names.insert(raw.name.clone(), "a cluster".into()) {
            return Err(self.err(
                &at("name"),
                format!("duplicate name {:?}: already used by {prev}", raw.name),
            ));
        }
        let primary = Address::parse(&raw.primary).map_err(|m| self.err(&at("primary"), m))?;
        if raw.replicas.is_empty() {
            return Err(self.err(
                &base,
                format!(
                    "cluster {:?} has no replicas; add replicas = {{ name = \"host:port\" }}",
                    raw.name
                ),
            ));
        }
        let mut replicas = Vec::new();
        for (name, addr) in &raw.replicas {
            let path = [
                Seg::Key("cluster"),
                Seg::Index(i),
                Seg::Key("replicas"),
                Seg::Key(name),
            ];
            check_name(name).map_err(|m| self.err(&path, m))?;
            let owner = format!("a replica in cluster {:?}", raw.name);
            if let Some(prev) = names.insert(name.clone(), owner) {
                return Err(self.err(
                    &path,
                    format!("duplicate name {name:?}: already used by {prev}"),
                ));
            }
            let address = Address::parse(addr).map_err(|m| self.err(&path, m))?;
            if address == primary {
                return Err(self.err(
                    &path,
                    format!("replica {name:?} has the primary's address {address}"),
                ));
            }
            if let Some(other) = replicas
                .iter()
                .find(|r: &&ReplicaConfig| r.address == address)
            {
                return Err(self.err(
                    &path,
                    format!(
                        "replica {name:?} has the same address as replica {:?} ({address})",
                        other.name
                    ),
                ));
            }
            replicas.push(ReplicaConfig {
                name: name.clone(),
                address,
            });
        }
        Ok(ClusterConfig {
            name: raw.name,
            primary,
            replicas,
        })
    }

    fn statsd(&self, raw: RawStatsd) -> Result<StatsdConfig, ConfigError> {
        let key = |k| [Seg::Key("statsd"), Seg::Key(k)];
        let address = match raw.address {
            None => Address {
                host: "127.0.0.1".into(),
                port: 8125,
            },
            Some(s) => statsd_address(&s).map_err(|m| self.err(&key("address"), m))?,
        };
        let prefix = raw.prefix.unwrap_or_else(|| "lagtrace".to_string());
        check_statsd_prefix(&prefix).map_err(|m| self.err(&key("prefix"), m))?;
        Ok(StatsdConfig { address, prefix })
    }

    fn http(
        &self,
        raw: RawHttp,
        record: &RecordConfig,
        clusters: &[ClusterConfig],
    ) -> Result<HttpConfig, ConfigError> {
        let key = |k| [Seg::Key("http"), Seg::Key(k)];
        let listen = match raw.listen {
            None => SocketAddr::from(([127, 0, 0, 1], 9104)),
            Some(s) => self.listen_address(&key("listen"), &s)?,
        };
        let long = (Duration::from_millis(1), Duration::from_secs(24 * 3600));
        let max_lag =
            self.bounded_duration(&key("max_lag"), raw.max_lag, Duration::from_secs(1), long)?;
        let recover_lag =
            self.bounded_duration(&key("recover_lag"), raw.recover_lag, max_lag / 2, long)?;
        if recover_lag > max_lag {
            return Err(self.err(
                &key("recover_lag"),
                format!(
                    "recover_lag ({}) is above max_lag ({}): a replica could never come back",
                    humantime::format_duration(recover_lag),
                    humantime::format_duration(max_lag)
                ),
            ));
        }
        let stale = self.bounded_duration(&key("stale"), raw.stale, DEFAULT_STALE, long)?;
        let read_period = record.interval * record.read_every;
        if stale <= read_period {
            return Err(self.err(
                &key("stale"),
                format!(
                    "stale ({}) must be longer than the time between reads ({})",
                    humantime::format_duration(stale),
                    humantime::format_duration(read_period)
                ),
            ));
        }
        let min_duration = self.bounded_duration(
            &key("min_duration"),
            raw.min_duration,
            Duration::ZERO,
            (Duration::ZERO, Duration::from_secs(3600)),
        )?;
        let maintenance_dir = match raw.maintenance_dir {
            Some(s) if s.trim().is_empty() => {
                return Err(self.err(&key("maintenance_dir"), "is empty"));
            }
            s => s.map(PathBuf::from),
        };
        let mut ignore = raw.ignore_intended_delay.unwrap_or_default();
        for name in &ignore {
            if !clusters
                .iter()
                .any(|c| c.replicas.iter().any(|r| &r.name == name))
            {
                return Err(self.err(
                    &key("ignore_intended_delay"),
                    format!("{name:?} is not a replica of any [[cluster]]"),
                ));
            }
        }
        ignore.sort();
        ignore.dedup();
        Ok(HttpConfig {
            listen,
            max_lag,
            recover_lag,
            stale,
            min_duration,
            maintenance_dir,
            ignore_intended_delay: ignore,
        })
    }

    fn agent(&self, raw: RawAgent, http: Option<&HttpConfig>) -> Result<AgentConfig, ConfigError> {
        let path = [Seg::Key("agent"), Seg::Key("listen")];
        let Some(http) = http else {
            return Err(self.err(
                &[Seg::Key("agent")],
                "[agent] answers with the thresholds of [http]: add an [http] section",
            ));
        };
        let listen = match raw.listen {
            None => SocketAddr::from(([127, 0, 0, 1], 9105)),
            Some(s) => self.listen_address(&path, &s)?,
        };
        if listen == http.listen {
            return Err(self.err(
                &path,
                format!("{listen} is already [http] listen: give the agent its own port"),
            ));
        }
        Ok(AgentConfig { listen })
    }

    fn listen_address(&self, path: &[Seg<'_>], s: &str) -> Result<SocketAddr, ConfigError> {
        s.parse::<SocketAddr>().map_err(|_| {
            self.err(
                path,
                format!("bad listen address {s:?}: give ip:port, e.g. 127.0.0.1:9104"),
            )
        })
    }

    fn triggers(&self, raw: RawTriggers) -> Result<TriggersConfig, ConfigError> {
        let check = |name: &'static str, v: Option<Vec<String>>| match v {
            Some(argv) if argv.first().is_none_or(|c| c.trim().is_empty()) => Err(self.err(
                &[Seg::Key("triggers"), Seg::Key(name)],
                "needs a command: [\"/path/to/program\", \"arg\", ...]",
            )),
            v => Ok(v),
        };
        Ok(TriggersConfig {
            recorder_up: check("recorder_up", raw.recorder_up)?,
            primary_down: check("primary_down", raw.primary_down)?,
            primary_up: check("primary_up", raw.primary_up)?,
            replica_down: check("replica_down", raw.replica_down)?,
            replica_up: check("replica_up", raw.replica_up)?,
        })
    }
}

/// Names of clusters and replicas end up in URLs and metric names: keep them plain.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "name {name:?} is longer than {MAX_NAME_LEN} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "name {name:?} may only use letters, digits, '_' and '-'"
        ));
    }
    Ok(())
}

/// Parses a humantime duration (`10ms`, `1.5s`, `5m`), with a message naming the value.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("bad duration {text:?}: {e} (examples: 10ms, 1.5s, 5m)"))
}

fn path_string(path: &[Seg<'_>]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line of the deepest part of `path` present in the document.
fn line_of_path(text: &str, path: &[Seg<'_>]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let root = DeValue::Table(doc.into_inner());
    let mut current = &root;
    let mut span = None;
    for seg in path {
        let next = match seg {
            Seg::Key(k) => current.get(*k),
            Seg::Index(i) => current.get(*i),
        };
        match next {
            Some(v) => {
                span = Some(v.span());
                current = v.get_ref();
            }
            None => break,
        }
    }
    span.map(|s| line_at(text, s.start))
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string().to_lowercase(),
    }
}

// ---------------------------------------------------------------------------
// Passwords

/// A password in memory. Its `Debug` never shows it, so it cannot leak into logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Fetches the password from its source. `home` is the directory holding `.my.cnf`
/// (normally `$HOME`); `env` looks up environment variables (normally `std::env::var`).
/// Errors name the config key and the source, never the password.
pub fn resolve_password(
    conn: &ConnectionConfig,
    home: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Secret, String> {
    match &conn.password {
        PasswordSource::Env { var } => match env(var) {
            Some(p) if !p.is_empty() => Ok(Secret(p)),
            Some(_) => Err(format!(
                "connection.password_env: environment variable {var} is empty"
            )),
            None => Err(format!(
                "connection.password_env: environment variable {var} is not set"
            )),
        },
        PasswordSource::File { path } => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "connection.password_file: cannot read {}: {}",
                    path.display(),
                    io_reason(&e)
                )
            })?;
            let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
            if line.is_empty() {
                return Err(format!(
                    "connection.password_file: {} is empty",
                    path.display()
                ));
            }
            Ok(Secret(line.to_string()))
        }
        PasswordSource::MyCnf => {
            let missing = "connection: no password source: set password_env or password_file, \
                           or put password= under [client] in ~/.my.cnf";
            let Some(home) = home else {
                return Err(missing.into());
            };
            let path = home.join(".my.cnf");
            match std::fs::read_to_string(&path) {
                Ok(text) => my_cnf_password(&text)
                    .map(Secret)
                    .ok_or_else(|| missing.into()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing.into()),
                Err(e) => Err(format!(
                    "connection: cannot read {}: {}",
                    path.display(),
                    io_reason(&e)
                )),
            }
        }
    }
}

/// The `password` of the `[client]` (or `[mysql]`/`[mariadb-client]`) group in a my.cnf text.
fn my_cnf_password(text: &str) -> Option<String> {
    let mut in_client = false;
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(group) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_client = matches!(group.trim(), "client" | "mysql" | "client-mariadb");
            continue;
        }
        if !in_client {
            continue;
        }
        if let Some((k, v)) = line.split_once('=')
            && k.trim() == "password"
        {
            let v = v.trim();
            let unquoted = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            found = Some(unquoted.to_string());
        }
    }
    found.filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[record]
interval = "10ms"
store = "x.redb"

[connection]
user = "lagtrace"
password_env = "LAGTRACE_PASSWORD"
connect_timeout = "1s"

[[cluster]]
name = "main"
primary = "127.0.0.1:13306"
replicas = { db2 = "127.0.0.1:13307", db3 = "127.0.0.1:13308" }

[statsd]
address = "127.0.0.1:8125"

[http]
listen = "127.0.0.1:9104"
max_lag = "2s"
ignore_intended_delay = ["db3"]

[agent]
listen = "127.0.0.1:9105"

[triggers]
replica_down = ["/bin/true", "--x"]
"#;

    fn err_of(text: &str) -> ConfigError {
        parse("t.toml", text).expect_err("config should be rejected")
    }

    /// Replaces `from` in the good config; panics if `from` is not there.
    fn good_with(from: &str, to: &str) -> String {
        assert!(GOOD.contains(from), "test fixture lacks {from:?}");
        GOOD.replacen(from, to, 1)
    }

    #[test]
    fn good_config_parses_with_values() {
        let c = parse("t.toml", GOOD).unwrap();
        assert_eq!(c.record.interval, Duration::from_millis(10));
        assert_eq!(c.record.store, PathBuf::from("x.redb"));
        assert_eq!(
            c.connection.password,
            PasswordSource::Env {
                var: "LAGTRACE_PASSWORD".into()
            }
        );
        assert_eq!(c.clusters.len(), 1);
        let names: Vec<_> = c.clusters[0].replicas.iter().map(|r| &r.name).collect();
        assert_eq!(names, ["db2", "db3"]);
        assert_eq!(c.clusters[0].primary.port, 13306);
        let http = c.http.unwrap();
        assert_eq!(http.max_lag, Duration::from_secs(2));
        assert_eq!(http.recover_lag, Duration::from_secs(1), "half of max_lag");
        assert_eq!(http.stale, DEFAULT_STALE);
        assert_eq!(http.ignore_intended_delay, ["db3"]);
        assert_eq!(c.agent.unwrap().listen.port(), 9105);
        assert_eq!(c.statsd.unwrap().prefix, "lagtrace");
        assert_eq!(c.triggers.replica_down.unwrap()[0], "/bin/true");
    }

    #[test]
    fn defaults_apply_to_a_minimal_config() {
        let c = parse(
            "t.toml",
            "[[cluster]]\nname = \"a\"\nprimary = \"h1\"\nreplicas = { r = \"h2:3307\" }\n",
        )
        .unwrap();
        assert_eq!(c.record.interval, DEFAULT_INTERVAL);
        assert_eq!(c.record.store, PathBuf::from("lagtrace.redb"));
        assert_eq!(c.connection.user, "lagtrace");
        assert_eq!(c.connection.database, "lagtrace");
        assert_eq!(c.connection.password, PasswordSource::MyCnf);
        assert_eq!(c.connection.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(c.clusters[0].primary.port, 3306);
        assert!(c.statsd.is_none() && c.http.is_none());
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = err_of(&good_with("interval = \"10ms\"", "intervall = \"10ms\""));
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("intervall"), "{e}");
    }

    #[test]
    fn unknown_section_is_rejected() {
        let e = err_of(&format!("{GOOD}\n[recorder]\nx = 1\n"));
        assert!(e.message.contains("recorder"), "{e}");
    }

    #[test]
    fn bad_duration_names_key_and_line() {
        let e = err_of(&good_with("\"10ms\"", "\"10 parsecs\""));
        assert_eq!(e.key, "record.interval");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("bad duration"), "{e}");
    }

    #[test]
    fn interval_out_of_range() {
        let e = err_of(&good_with("\"10ms\"", "\"500us\""));
        assert!(e.message.contains("out of range"), "{e}");
        let e = err_of(&good_with("\"10ms\"", "\"2m\""));
        assert!(e.message.contains("out of range"), "{e}");
    }

    #[test]
    fn bad_port_names_replica() {
        let e = err_of(&good_with("127.0.0.1:13307", "127.0.0.1:99999"));
        assert_eq!(e.key, "cluster[0].replicas.db2");
        assert_eq!(e.line, Some(14));
        assert!(e.message.contains("port must be 1-65535"), "{e}");
    }

    #[test]
    fn address_forms() {
        assert_eq!(Address::parse("db1").unwrap().port, 3306);
        assert_eq!(Address::parse("[::1]:3307").unwrap().host, "::1");
        assert_eq!(
            Address::parse("[::1]:3307").unwrap().to_string(),
            "[::1]:3307"
        );
        assert!(Address::parse("::1:3306").unwrap_err().contains("IPv6"));
        assert!(
            Address::parse(":3306")
                .unwrap_err()
                .contains("host is empty")
        );
        assert!(
            Address::parse("db1:abc")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(Address::parse("db1:0").unwrap_err().contains("1-65535"));
        assert!(
            Address::parse("db 1:3306")
                .unwrap_err()
                .contains("whitespace")
        );
        assert!(Address::parse("").unwrap_err().contains("empty"));
    }

    #[test]
    fn duplicate_replica_name_across_clusters() {
        let text = format!(
            "{GOOD}\n[[cluster]]\nname = \"other\"\nprimary = \"h9\"\nreplicas = {{ db2 = \"h10\" }}\n"
        );
        let e = err_of(&text);
        assert_eq!(e.key, "cluster[1].replicas.db2");
        assert!(e.message.contains("duplicate name"), "{e}");
    }

    #[test]
    fn duplicate_cluster_name() {
        let text = format!(
            "{GOOD}\n[[cluster]]\nname = \"main\"\nprimary = \"h9\"\nreplicas = {{ x = \"h10\" }}\n"
        );
        let e = err_of(&text);
        assert_eq!(e.key, "cluster[1].name");
        assert_eq!(e.line, Some(31));
    }

    #[test]
    fn replica_sharing_primary_address() {
        let e = err_of(&good_with("127.0.0.1:13307", "127.0.0.1:13306"));
        assert!(e.message.contains("primary's address"), "{e}");
    }

    #[test]
    fn two_replicas_same_address() {
        let e = err_of(&good_with("127.0.0.1:13308", "127.0.0.1:13307"));
        assert!(e.message.contains("same address"), "{e}");
    }

    #[test]
    fn bad_names() {
        let e = err_of(&good_with("name = \"main\"", "name = \"ma.in\""));
        assert!(e.message.contains("may only use"), "{e}");
        let e = err_of(&good_with("name = \"main\"", "name = \"\""));
        assert!(e.message.contains("empty"), "{e}");
        let long = "x".repeat(65);
        let e = err_of(&good_with("name = \"main\"", &format!("name = \"{long}\"")));
        assert!(e.message.contains("longer than"), "{e}");
    }

    #[test]
    fn no_cluster_and_no_replicas() {
        let e = err_of("[record]\ninterval = \"1s\"\n");
        assert!(e.message.contains("no [[cluster]]"), "{e}");
        let e = err_of("[[cluster]]\nname = \"a\"\nprimary = \"h1\"\n");
        assert!(e.message.contains("no replicas"), "{e}");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn password_in_config_is_refused() {
        let e = err_of(&good_with(
            "password_env = \"LAGTRACE_PASSWORD\"",
            "password = \"hunter2\"",
        ));
        assert!(e.message.contains("not accepted"), "{e}");
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn two_password_sources() {
        let e = err_of(&good_with(
            "password_env = \"LAGTRACE_PASSWORD\"",
            "password_env = \"X\"\npassword_file = \"/p\"",
        ));
        assert!(e.message.contains("only one"), "{e}");
    }

    #[test]
    fn bad_env_var_name() {
        let e = err_of(&good_with("\"LAGTRACE_PASSWORD\"", "\"1BAD-NAME\""));
        assert_eq!(e.key, "connection.password_env");
    }

    #[test]
    fn bad_database_name() {
        let e = err_of(&good_with(
            "user = \"lagtrace\"",
            "database = \"lag`trace\"",
        ));
        assert!(e.message.contains("plain schema name"), "{e}");
    }

    #[test]
    fn bad_connect_timeout() {
        let e = err_of(&good_with(
            "connect_timeout = \"1s\"",
            "connect_timeout = \"0s\"",
        ));
        assert_eq!(e.key, "connection.connect_timeout");
    }

    #[test]
    fn wrong_type_is_a_syntax_error_with_line() {
        let e = err_of(&good_with("interval = \"10ms\"", "interval = 10"));
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("string"), "{e}");
    }

    #[test]
    fn toml_syntax_error_has_line() {
        let e = err_of("[record\ninterval = \"1s\"\n");
        assert_eq!(e.line, Some(1));
        assert!(!e.message.contains('\n'));
    }

    #[test]
    fn bad_http_and_statsd() {
        let e = err_of(&good_with(
            "listen = \"127.0.0.1:9104\"",
            "listen = \"localhost\"",
        ));
        assert_eq!(e.key, "http.listen");
        let e = err_of(&good_with("max_lag = \"2s\"", "max_lag = \"0s\""));
        assert_eq!(e.key, "http.max_lag");
        let e = err_of(&good_with(
            "max_lag = \"2s\"",
            "max_lag = \"2s\"\nrecover_lag = \"3s\"",
        ));
        assert_eq!(e.key, "http.recover_lag");
        let e = err_of(&good_with("max_lag = \"2s\"", "stale = \"10ms\""));
        assert_eq!(e.key, "http.stale");
        assert!(e.message.contains("between reads"), "{e}");
        let e = err_of(&good_with("[\"db3\"]", "[\"db9\"]"));
        assert_eq!(e.key, "http.ignore_intended_delay");
        let e = err_of(&good_with("127.0.0.1:9105", "127.0.0.1:9104"));
        assert_eq!(e.key, "agent.listen");
        let e = err_of(&good_with(
            "[http]\nlisten = \"127.0.0.1:9104\"\nmax_lag = \"2s\"\nignore_intended_delay = [\"db3\"]\n",
            "",
        ));
        assert_eq!(e.key, "agent");
        let e = err_of(&good_with(
            "address = \"127.0.0.1:8125\"",
            "address = \"host\"",
        ));
        assert_eq!(e.key, "statsd.address");
        let e = err_of(&good_with(
            "address = \"127.0.0.1:8125\"",
            "prefix = \"a..b\"",
        ));
        assert_eq!(e.key, "statsd.prefix");
    }

    #[test]
    fn empty_trigger_command() {
        let e = err_of(&good_with("[\"/bin/true\", \"--x\"]", "[]"));
        assert_eq!(e.key, "triggers.replica_down");
    }

    #[test]
    fn password_from_env() {
        let c = parse("t.toml", GOOD).unwrap();
        let p = resolve_password(&c.connection, None, |v| {
            (v == "LAGTRACE_PASSWORD").then(|| "s3cret".to_string())
        })
        .unwrap();
        assert_eq!(p.expose(), "s3cret");
        assert_eq!(format!("{p:?}"), "Secret(***)");
        let e = resolve_password(&c.connection, None, |_| None).unwrap_err();
        assert!(e.contains("LAGTRACE_PASSWORD is not set"), "{e}");
    }

    #[test]
    fn password_from_file_and_my_cnf() {
        let dir = std::env::temp_dir().join(format!("lagtrace-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pfile = dir.join("pw");
        std::fs::write(&pfile, "from-file\n").unwrap();
        let conn = ConnectionConfig {
            user: "u".into(),
            password: PasswordSource::File { path: pfile },
            database: "lagtrace".into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
        };
        assert_eq!(
            resolve_password(&conn, None, |_| None).unwrap().expose(),
            "from-file"
        );

        let conn = ConnectionConfig {
            password: PasswordSource::MyCnf,
            ..conn
        };
        let e = resolve_password(&conn, Some(&dir), |_| None).unwrap_err();
        assert!(e.contains("no password source"), "{e}");
        std::fs::write(
            dir.join(".my.cnf"),
            "[mysqld]\npassword=nope\n[client]\nuser=x\npassword = \"from cnf\"\n",
        )
        .unwrap();
        let p = resolve_password(&conn, Some(&dir), |_| None).unwrap();
        assert_eq!(p.expose(), "from cnf");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
