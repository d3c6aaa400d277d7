//! Validation: each raw table becomes its typed struct with defaults applied, or one
//! [`ConfigError`] naming the file, line and key at fault (or the flag that overrode the
//! key).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use super::raw::*;
use super::values::check_name;
use super::*;

/// Turns raw sections into validated ones; knows the text to find lines for keys.
/// Parses config text and validates it with `overrides` applied.
pub(super) fn validate(
    file: &str,
    text: &str,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
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

    fn err(&self, path: &[Seg<'_>], message: impl std::fmt::Display) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: line_of_path(self.text, path),
            key: path_string(path),
            message: message.to_string(),
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
            let c = self.cluster(i, rc, &mut names, record.probe)?;
            clusters.push(c);
        }
        if connection.tls.mode == TlsMode::VerifyCa
            && let Some(c) = clusters.iter().find(|c| c.kind == Kind::Mysql)
        {
            // mysql_async 0.37.1 checks the name whatever it is told (its issue
            // #404, fixed upstream, not released): verify_ca would be verify_identity.
            return Err(self.err(
                &[Seg::Key("connection"), Seg::Key("tls")],
                format!(
                    "verify_ca is not available for MySQL/MariaDB (cluster {:?}): its driver \
                     checks the certificate's name too; use verify_identity, with \
                     tls_server_name set to the name the certificate is for",
                    c.name
                ),
            ));
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
        let throttle = match raw.throttle {
            Some(t) => self.throttle(t, &clusters)?,
            None => ThrottleConfig::default(),
        };
        let pool = match &http {
            Some(h) => h.clone(),
            None => self.default_pool(&record, &clusters)?,
        };
        Ok(Config {
            record,
            connection,
            clusters,
            statsd,
            http,
            pool,
            agent,
            throttle,
            triggers,
        })
    }

    /// `[throttle]`: thresholds within [`HttpConfig`]'s range, app names fit for URLs
    /// and metric labels, replica names that exist.
    fn throttle(
        &self,
        raw: RawThrottle,
        clusters: &[ClusterConfig],
    ) -> Result<ThrottleConfig, ConfigError> {
        let key = |k| [Seg::Key("throttle"), Seg::Key(k)];
        let long = (Duration::from_millis(1), Duration::from_secs(24 * 3600));
        let max_lag =
            self.bounded_duration(&key("max_lag"), raw.max_lag, Duration::from_secs(1), long)?;
        let mut apps = BTreeMap::new();
        for (name, lag) in raw.apps.unwrap_or_default() {
            let path = [Seg::Key("throttle"), Seg::Key("apps"), Seg::Key(&name)];
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !valid {
                return Err(self.err(
                    &path,
                    format!("{name:?} is not an app name (letters, digits, _ - .; at most 64)"),
                ));
            }
            let lag = self.bounded_duration(&path, Some(lag), max_lag, long)?;
            apps.insert(name, lag);
        }
        let replicas = match raw.replicas {
            None => ThrottleReplicas::Pool,
            Some(toml::Value::String(s)) if s == "pool" => ThrottleReplicas::Pool,
            Some(toml::Value::String(s)) if s == "all" => ThrottleReplicas::All,
            Some(toml::Value::Array(list)) => {
                let mut names = Vec::new();
                for v in list {
                    let Some(name) = v.as_str() else {
                        return Err(self.err(&key("replicas"), "list replica names as strings"));
                    };
                    if !clusters
                        .iter()
                        .any(|c| c.replicas.iter().any(|r| r.name == name))
                    {
                        return Err(self.err(
                            &key("replicas"),
                            format!("{name:?} is not a replica of any [[cluster]]"),
                        ));
                    }
                    names.push(name.to_string());
                }
                ThrottleReplicas::Named(names)
            }
            Some(other) => {
                return Err(self.err(
                    &key("replicas"),
                    format!("{other} is not \"pool\", \"all\" or a list of replica names"),
                ));
            }
        };
        let unreachable_throttles = match raw.unreachable.as_deref() {
            None | Some("throttle") => true,
            Some("ignore") => false,
            Some(other) => {
                return Err(self.err(
                    &key("unreachable"),
                    format!("{other:?}: use \"throttle\" (the default) or \"ignore\""),
                ));
            }
        };
        let force_dir = match raw.force_dir {
            Some(s) if s.trim().is_empty() => return Err(self.err(&key("force_dir"), "is empty")),
            Some(s) if !std::path::Path::new(&s).is_dir() => {
                return Err(self.err(&key("force_dir"), format!("{s}: no such directory")));
            }
            s => s.map(PathBuf::from),
        };
        Ok(ThrottleConfig {
            max_lag,
            apps,
            replicas,
            unreachable_throttles,
            force_dir,
        })
    }

    /// The pool rules without `[http]`: its defaults, `stale` at least three read
    /// periods (the default 3 s is too short for a slow interval).
    fn default_pool(
        &self,
        record: &RecordConfig,
        clusters: &[ClusterConfig],
    ) -> Result<HttpConfig, ConfigError> {
        let stale = DEFAULT_STALE.max(record.interval * record.read_every * 3);
        let raw = RawHttp {
            stale: Some(format!("{}ms", stale.as_millis())),
            ..RawHttp::default()
        };
        self.http(raw, record, clusters)
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
        let retain = match (o.retain, &raw.retain) {
            (None, None) => None,
            _ => Some(self.record_duration(
                "retain",
                ("--retain", o.retain),
                raw.retain,
                MAX_RETAIN,
                (MIN_RETAIN, MAX_RETAIN),
            )?),
        };
        let status_file = match raw.status_file {
            Some(s) if s.trim().is_empty() => {
                return Err(self.err(&[Seg::Key("record"), Seg::Key("status_file")], "is empty"));
            }
            Some(s) => {
                let path = PathBuf::from(s);
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                if !dir.is_dir() {
                    return Err(self.err(
                        &[Seg::Key("record"), Seg::Key("status_file")],
                        format!("its directory {} does not exist", dir.display()),
                    ));
                }
                Some(path)
            }
            None => None,
        };
        let probe = match (o.probe, raw.probe) {
            (Some(m), _) => m,
            (None, None) => ProbeMode::default(),
            (None, Some(s)) => self.probe_mode(&[Seg::Key("record"), Seg::Key("probe")], &s)?,
        };
        let binlog_server_id = raw.binlog_server_id.unwrap_or(DEFAULT_BINLOG_SERVER_ID);
        if !(1..=u32::MAX - u32::from(u16::MAX)).contains(&binlog_server_id) {
            return Err(self.err(
                &[Seg::Key("record"), Seg::Key("binlog_server_id")],
                format!(
                    "{binlog_server_id} is out of range: use 1 to {} (the streams add their replica's id)",
                    u32::MAX - u32::from(u16::MAX)
                ),
            ));
        }
        let id = match raw.id {
            Some(id) if !super::recorder_id_ok(&id) => {
                return Err(self.err(
                    &[Seg::Key("record"), Seg::Key("id")],
                    format!(
                        "{id:?} is not a recorder id: use 1 to {} lower-case letters and digits, not \"check\" or \"split\"",
                        super::MAX_RECORDER_ID_LEN
                    ),
                ));
            }
            id => id,
        };
        Ok(RecordConfig {
            id,
            interval,
            store,
            flush,
            read_every,
            status_every,
            retain,
            status_file,
            probe,
            binlog_server_id,
            binlog_server_id_default: raw.binlog_server_id.is_none(),
        })
    }

    /// A `probe` key's value.
    fn probe_mode(&self, path: &[Seg<'_>], s: &str) -> Result<ProbeMode, ConfigError> {
        parse_probe(s).map_err(|m| self.err(path, m))
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
        let tls = self.tls(&raw)?;
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
        let plain = |field: &'static str, what: &str, value: Option<String>, default: &str| {
            let name = value.unwrap_or_else(|| default.to_string());
            let valid = !name.is_empty()
                && name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
            if valid {
                Ok(name)
            } else {
                Err(self.err(
                    &key(field),
                    format!(
                        "{name:?} is not a plain {what} name (letters, digits, _ and $; at most 63)"
                    ),
                ))
            }
        };
        let database = plain("database", "schema", raw.database, "lagtrace")?;
        let postgres_database = plain(
            "postgres_database",
            "database",
            raw.postgres_database,
            "postgres",
        )?;
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
            postgres_database,
            connect_timeout,
            query_timeout,
            tls,
        })
    }

    /// `tls` and the files and name it uses. A CA given without a mode verifies against
    /// it (`verify_ca`, as the mysql client does); a CA or a server name that the mode
    /// would not use is an error, not a false sense of safety.
    fn tls(&self, raw: &RawConnection) -> Result<TlsConfig, ConfigError> {
        let key = |k| [Seg::Key("connection"), Seg::Key(k)];
        let mode = match raw.tls.as_deref() {
            None if raw.tls_ca.is_some() => TlsMode::VerifyCa,
            None => TlsMode::default(),
            Some(name) => match TlsMode::NAMES.iter().find(|(n, _)| *n == name) {
                Some((_, mode)) => *mode,
                None => {
                    return Err(self.err(
                        &key("tls"),
                        format!(
                            "{name:?} is not a TLS mode: use disabled, preferred, required, \
                             verify_ca or verify_identity (or libpq's disable, prefer, require, \
                             verify-ca, verify-full)"
                        ),
                    ));
                }
            },
        };
        let pem = |field: &'static str, value: &str, private: bool| {
            let path = PathBuf::from(value);
            let bytes = std::fs::read(&path).map_err(|e| {
                self.err(
                    &key(field),
                    format!("{}: cannot read it: {e}", path.display()),
                )
            })?;
            let found = if private {
                use rustls::pki_types::PrivateKeyDer;
                use rustls::pki_types::pem::PemObject;
                PrivateKeyDer::from_pem_slice(&bytes).is_ok()
            } else {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject;
                let mut certs = CertificateDer::pem_slice_iter(&bytes);
                certs.all(|c| c.is_ok()) && CertificateDer::pem_slice_iter(&bytes).next().is_some()
            };
            if !found {
                let what = if private {
                    "private key"
                } else {
                    "certificate"
                };
                return Err(self.err(
                    &key(field),
                    format!("{}: no PEM {what} in it", path.display()),
                ));
            }
            Ok(PemFile { path, pem: bytes })
        };
        let ca = match raw.tls_ca.as_deref() {
            Some(path) if !mode.verifies() => {
                return Err(self.err(
                    &key("tls_ca"),
                    format!(
                        "{path}: tls = \"{}\" does not check certificates; use verify_ca or \
                         verify_identity to verify against it",
                        mode.name()
                    ),
                ));
            }
            Some(path) => Some(pem("tls_ca", path, false)?),
            None => None,
        };
        let client = match (raw.tls_cert.as_deref(), raw.tls_key.as_deref()) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(self.err(&key("tls_cert"), "needs tls_key, its private key"));
            }
            (None, Some(_)) => {
                return Err(self.err(&key("tls_key"), "needs tls_cert, the certificate it is for"));
            }
            (Some(_), Some(_)) if mode == TlsMode::Disabled => {
                return Err(self.err(
                    &key("tls_cert"),
                    "tls = \"disabled\": there is no TLS to present a client certificate in",
                ));
            }
            (Some(cert), Some(k)) => {
                Some((pem("tls_cert", cert, false)?, pem("tls_key", k, true)?))
            }
        };
        let server_name = match raw.tls_server_name.as_deref() {
            None => None,
            Some(_) if mode != TlsMode::VerifyIdentity => {
                return Err(self.err(
                    &key("tls_server_name"),
                    "is checked only with tls = \"verify_identity\"",
                ));
            }
            Some(name) if rustls::pki_types::ServerName::try_from(name).is_err() => {
                return Err(self.err(
                    &key("tls_server_name"),
                    format!("{name:?} is not a DNS name or an IP address"),
                ));
            }
            Some(name) => Some(name.to_string()),
        };
        Ok(TlsConfig {
            mode,
            ca,
            client,
            server_name,
        })
    }

    /// Validates one cluster; `names` maps every name seen so far to what it named,
    /// because cluster and replica names share one namespace (URLs, metric names).
    fn cluster(
        &self,
        i: usize,
        raw: RawCluster,
        names: &mut HashMap<String, String>,
        record_probe: ProbeMode,
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
        let kind = match raw.kind.as_deref() {
            None | Some("mysql") | Some("mariadb") => Kind::Mysql,
            Some("postgres") | Some("postgresql") => Kind::Postgres,
            Some(other) => {
                return Err(self.err(
                    &at("kind"),
                    format!("unknown kind {other:?}; use \"mysql\" (also MariaDB) or \"postgres\""),
                ));
            }
        };
        let (primary, replicas, nodes) = match (raw.primary, raw.nodes) {
            (Some(p), None) => {
                let primary = Address::parse_or_port(&p, kind.default_port())
                    .map_err(|m| self.err(&at("primary"), m))?;
                if raw.replicas.is_empty() {
                    return Err(self.err(
                        &base,
                        format!(
                            "cluster {:?} has no replicas; add replicas = {{ name = \"host:port\" }}",
                            raw.name
                        ),
                    ));
                }
                let replicas = self.servers(
                    (i, kind),
                    &raw.name,
                    "replicas",
                    &raw.replicas,
                    Some(&primary),
                    names,
                )?;
                (primary, replicas, Vec::new())
            }
            (None, Some(nodes)) if raw.replicas.is_empty() => {
                let named: BTreeMap<String, String> = match nodes {
                    RawNodes::Named(m) => m,
                    RawNodes::List(list) => list.into_iter().map(|a| (node_name(&a), a)).collect(),
                };
                if named.len() < 2 {
                    return Err(self.err(
                        &at("nodes"),
                        "give at least two servers (a primary and a replica)",
                    ));
                }
                let nodes = self.servers((i, kind), &raw.name, "nodes", &named, None, names)?;
                // The first stands for the primary until discovery says.
                (nodes[0].address.clone(), nodes[1..].to_vec(), nodes)
            }
            (None, None) => {
                return Err(self.err(
                    &base,
                    format!(
                        "cluster {:?} has neither primary nor nodes; give primary = \"host:port\" and replicas, or nodes = [\"host:port\", ...]",
                        raw.name
                    ),
                ));
            }
            _ => {
                return Err(self.err(
                    &at("nodes"),
                    "give either nodes (found by lagtrace) or primary and replicas, not both",
                ));
            }
        };
        let probe = match (self.overrides.probe, raw.probe) {
            (Some(_), _) | (None, None) => record_probe,
            (None, Some(s)) => self.probe_mode(&at("probe"), &s)?,
        };
        if kind == Kind::Postgres && probe == ProbeMode::Binlog {
            return Err(self.err(
                &at("probe"),
                "a PostgreSQL cluster has no binary log: use \"poll\" (or \"auto\")",
            ));
        }
        Ok(ClusterConfig {
            name: raw.name,
            kind,
            primary,
            replicas,
            nodes,
            probe,
        })
    }

    /// The servers of cluster number `i` (of `kind`) listed under `key` (`replicas` or
    /// `nodes`), by name: names plain and unique in the whole file (recorded in
    /// `names`), addresses valid, none twice, and none the `primary`'s. In name order.
    fn servers(
        &self,
        (i, db): (usize, Kind),
        cluster: &str,
        key: &'static str,
        listed: &BTreeMap<String, String>,
        primary: Option<&Address>,
        names: &mut HashMap<String, String>,
    ) -> Result<Vec<ReplicaConfig>, ConfigError> {
        let kind = if key == "nodes" { "node" } else { "replica" };
        let mut servers: Vec<ReplicaConfig> = Vec::new();
        for (name, addr) in listed {
            let path = [
                Seg::Key("cluster"),
                Seg::Index(i),
                Seg::Key(key),
                Seg::Key(name),
            ];
            check_name(name).map_err(|m| self.err(&path, m))?;
            let owner = format!("a {kind} in cluster {cluster:?}");
            if let Some(prev) = names.insert(name.clone(), owner) {
                return Err(self.err(
                    &path,
                    format!("duplicate name {name:?}: already used by {prev}"),
                ));
            }
            let address =
                Address::parse_or_port(addr, db.default_port()).map_err(|m| self.err(&path, m))?;
            if primary == Some(&address) {
                return Err(self.err(
                    &path,
                    format!("replica {name:?} has the primary's address {address}"),
                ));
            }
            if let Some(other) = servers.iter().find(|r| r.address == address) {
                return Err(self.err(
                    &path,
                    format!(
                        "{kind} {name:?} has the same address as {kind} {:?} ({address})",
                        other.name
                    ),
                ));
            }
            servers.push(ReplicaConfig {
                name: name.clone(),
                address,
            });
        }
        Ok(servers)
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
            out_when_source_down: raw.out_when_source_down.unwrap_or(false),
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
            timeout: self.bounded_duration(
                &[Seg::Key("triggers"), Seg::Key("timeout")],
                raw.timeout,
                DEFAULT_TRIGGER_TIMEOUT,
                (Duration::from_millis(100), Duration::from_secs(3600)),
            )?,
            heartbeat_every: self.bounded_duration(
                &[Seg::Key("triggers"), Seg::Key("heartbeat_every")],
                raw.heartbeat_every,
                DEFAULT_HEARTBEAT_EVERY,
                (Duration::from_secs(1), Duration::from_secs(86_400)),
            )?,
            heartbeat: check("heartbeat", raw.heartbeat)?,
            recorder_up: check("recorder_up", raw.recorder_up)?,
            primary_down: check("primary_down", raw.primary_down)?,
            primary_up: check("primary_up", raw.primary_up)?,
            failover: check("failover", raw.failover)?,
            replica_down: check("replica_down", raw.replica_down)?,
            replica_up: check("replica_up", raw.replica_up)?,
            split: check("split", raw.split)?,
        })
    }
}

/// The name of a server listed in `nodes` by address alone: its address with every
/// character that is not a letter or a digit turned into `-` (`10.0.0.5:3306` is
/// `10-0-0-5-3306`), so that it stays the same whatever order the list is in.
pub fn node_name(address: &str) -> String {
    address
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .to_string()
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

pub(super) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string().to_lowercase(),
    }
}
