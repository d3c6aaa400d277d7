//! Config parsing and validation, from text to `Config` or one error.
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
    assert_eq!(c.record.retain, None, "kept for ever unless asked");
}

#[test]
fn retain_is_optional_and_bounded() {
    let c = parse(
        "t.toml",
        &good_with("store = ", "retain = \"30d\"\nstore = "),
    )
    .unwrap();
    assert_eq!(c.record.retain, Some(Duration::from_secs(30 * 86_400)));
    let e = err_of(&good_with("store = ", "retain = \"1s\"\nstore = "));
    assert_eq!(e.key, "record.retain");
    assert!(
        e.message.contains("out of range: use 10s to 10years"),
        "{e}"
    );
}

#[test]
fn probe_defaults_to_poll_and_a_cluster_or_the_command_line_may_choose() {
    let c = parse("t.toml", GOOD).unwrap();
    assert_eq!(c.record.probe, ProbeMode::Poll);
    assert_eq!(c.clusters[0].probe, ProbeMode::Poll);
    assert_eq!(c.record.binlog_server_id, DEFAULT_BINLOG_SERVER_ID);
    let text = good_with(
        "store = ",
        "probe = \"auto\"\nbinlog_server_id = 77\nstore = ",
    )
    .replace("replicas = {", "probe = \"binlog\"\nreplicas = {");
    let c = parse("t.toml", &text).unwrap();
    assert_eq!(
        (c.record.probe, c.clusters[0].probe),
        (ProbeMode::Auto, ProbeMode::Binlog)
    );
    assert_eq!(c.record.binlog_server_id, 77);
    // --probe wins over both.
    let o = Overrides {
        probe: Some(ProbeMode::Poll),
        ..Overrides::default()
    };
    let c = parse_with("t.toml", &text, &o).unwrap();
    assert_eq!(
        (c.record.probe, c.clusters[0].probe),
        (ProbeMode::Poll, ProbeMode::Poll)
    );

    let e = err_of(&good_with("store = ", "probe = \"stream\"\nstore = "));
    assert_eq!(e.key, "record.probe");
    assert!(e.message.contains("use poll, auto or binlog"), "{e}");
    let e = err_of(&good_with("store = ", "binlog_server_id = 0\nstore = "));
    assert_eq!(e.key, "record.binlog_server_id");
    let e = err_of(&GOOD.replace(
        "replicas = {",
        "kind = \"postgres\"\nprobe = \"binlog\"\nreplicas = {",
    ));
    assert_eq!(e.key, "cluster[0].probe");
    assert!(e.message.contains("no binary log"), "{e}");
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
    assert!(
        Address::parse("::1:3306")
            .unwrap_err()
            .to_string()
            .contains("IPv6")
    );
    assert!(
        Address::parse(":3306")
            .unwrap_err()
            .to_string()
            .contains("host is empty")
    );
    assert!(
        Address::parse("db1:abc")
            .unwrap_err()
            .to_string()
            .contains("not a number")
    );
    assert!(
        Address::parse("db1:0")
            .unwrap_err()
            .to_string()
            .contains("1-65535")
    );
    assert!(
        Address::parse("db 1:3306")
            .unwrap_err()
            .to_string()
            .contains("whitespace")
    );
    assert!(
        Address::parse("")
            .unwrap_err()
            .to_string()
            .contains("empty")
    );
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
    assert!(
        e.to_string().contains("LAGTRACE_PASSWORD is not set"),
        "{e}"
    );
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
        postgres_database: "postgres".into(),
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        query_timeout: DEFAULT_QUERY_TIMEOUT,
        tls: TlsConfig::default(),
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
    assert!(e.to_string().contains("no password source"), "{e}");
    std::fs::write(
        dir.join(".my.cnf"),
        "[mysqld]\npassword=nope\n[client]\nuser=x\npassword = \"from cnf\"\n",
    )
    .unwrap();
    let p = resolve_password(&conn, Some(&dir), |_| None).unwrap();
    assert_eq!(p.expose(), "from cnf");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_cluster_given_as_nodes() {
    let c = parse(
        "t.toml",
        "[[cluster]]\nname = \"c\"\nnodes = [\"10.0.0.7:3306\", \"db1\"]\n",
    )
    .unwrap();
    let names: Vec<&str> = c.clusters[0]
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    // Named after their addresses, sorted: the same whatever the list's order.
    assert_eq!(names, ["10-0-0-7-3306", "db1"]);
    assert_eq!(c.clusters[0].nodes[1].address.port, 3306);
    let named = parse(
        "t.toml",
        "[[cluster]]\nname = \"c\"\nnodes = { b = \"h2:3306\", a = \"h1:3306\" }\n",
    )
    .unwrap();
    assert_eq!(named.clusters[0].primary_name(), "a");
    assert_eq!(named.clusters[0].replicas[0].name, "b");
    let given = parse("t.toml", GOOD).unwrap();
    assert!(given.clusters[0].nodes.is_empty());
    assert_eq!(given.clusters[0].primary_name(), "primary");

    for (text, key, says) in [
        ("nodes = [\"h1\"]", "cluster[0].nodes", "at least two"),
        (
            "primary = \"h1\"\nnodes = [\"h2\", \"h3\"]",
            "cluster[0].nodes",
            "not both",
        ),
        ("", "cluster[0]", "neither primary nor nodes"),
        (
            "nodes = [\"h1\", \"h1:3306\"]",
            "cluster[0].nodes",
            "same address",
        ),
    ] {
        let e = err_of(&format!("[[cluster]]\nname = \"c\"\n{text}\n"));
        assert!(
            e.key.starts_with(key) && e.message.contains(says),
            "{text}: {e:?}"
        );
    }
}

#[test]
fn names_and_ips_of_one_server_match() {
    let a = Address::parse("localhost:13306").unwrap();
    assert!(a.is("127.0.0.1", 13306));
    assert!(!a.is("127.0.0.1", 13307));
    assert!(a.is("LOCALHOST", 13306));
    assert!(!a.is("no-such-host.invalid", 13306));
}

#[test]
fn a_postgres_cluster_defaults_to_port_5432_and_kinds_are_checked() {
    let c = parse(
        "t.toml",
        "[[cluster]]\nname = \"pg\"\nkind = \"postgres\"\nprimary = \"h1\"\nreplicas = { s1 = \"h2:15433\" }\n",
    )
    .unwrap();
    assert_eq!(c.clusters[0].kind, Kind::Postgres);
    assert_eq!(c.clusters[0].primary.port, 5432);
    assert_eq!(c.clusters[0].replicas[0].address.port, 15433);
    assert_eq!(c.connection.postgres_database, "postgres");
    let m = parse(
        "t.toml",
        "[[cluster]]\nname = \"m\"\nprimary = \"h1\"\nreplicas = { r1 = \"h2\" }\n",
    )
    .unwrap();
    assert_eq!(m.clusters[0].kind, Kind::Mysql);
    assert_eq!(m.clusters[0].primary.port, 3306);
    let e = parse(
        "t.toml",
        "[[cluster]]\nname = \"o\"\nkind = \"oracle\"\nprimary = \"h1\"\nreplicas = { r1 = \"h2\" }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown kind \"oracle\""), "{e}");
    assert!(e.starts_with("t.toml:3:"), "{e}");
}

#[test]
fn out_when_source_down_is_off_unless_asked() {
    let base = "[[cluster]]\nname = \"c\"\nprimary = \"h1\"\nreplicas = { r1 = \"h2\" }\n\n[http]\nlisten = \"127.0.0.1:9104\"\n";
    let c = parse("t.toml", base).unwrap();
    assert!(!c.http.unwrap().out_when_source_down);
    let c = parse("t.toml", &format!("{base}out_when_source_down = true\n")).unwrap();
    assert!(c.http.unwrap().out_when_source_down);
    let e = parse("t.toml", &format!("{base}out_when_source_down = \"yes\"\n")).unwrap_err();
    assert!(e.to_string().starts_with("t.toml:8: invalid type"), "{e}");
}

#[test]
fn a_recorder_id_is_short_plain_and_not_a_row_lagtrace_uses() {
    assert_eq!(parse("t.toml", GOOD).unwrap().record.id, None);
    let c = parse("t.toml", &good_with("store = ", "id = \"b2\"\nstore = ")).unwrap();
    assert_eq!(c.record.id.as_deref(), Some("b2"));
    for bad in ["", "check", "split", "Upper", "toolong", "a-b"] {
        let e = err_of(&good_with("store = ", &format!("id = \"{bad}\"\nstore = ")));
        assert_eq!(e.key, "record.id", "{bad}");
        assert!(e.message.contains("lower-case letters and digits"), "{e}");
    }
}

/// The default id is stable (the same host and store give the same row after a
/// restart or an upgrade: FNV-1a, pinned here), and differs between stores.
#[test]
fn the_default_recorder_id_is_stable_and_differs_per_store() {
    let a = default_recorder_id("bastion1", Path::new("/var/lib/lagtrace/a.redb"));
    let b = default_recorder_id("bastion1", Path::new("/var/lib/lagtrace/b.redb"));
    let c = default_recorder_id("bastion2", Path::new("/var/lib/lagtrace/a.redb"));
    assert!(recorder_id_ok(&a) && recorder_id_ok(&b) && recorder_id_ok(&c));
    assert!(a != b && a != c && b != c, "{a} {b} {c}");
    assert_eq!(
        a,
        default_recorder_id("bastion1", Path::new("/var/lib/lagtrace/a.redb"))
    );
    assert_eq!(a, "bool5");
}

/// Two recorders' binary log streams never share a server id by default, and the
/// default stays in the range a given one must be in.
#[test]
fn the_default_binlog_server_id_follows_the_recorder_id() {
    let (a, b) = (binlog_server_id_for("bool5"), binlog_server_id_for("k2x9a"));
    assert_ne!(a, b);
    for id in [a, b] {
        assert!(id >= DEFAULT_BINLOG_SERVER_ID && id <= u32::MAX - u32::from(u16::MAX));
        assert_eq!((id - DEFAULT_BINLOG_SERVER_ID) % 65_536, 0);
    }
    let c = parse("t.toml", GOOD).unwrap();
    assert!(c.record.binlog_server_id_default);
    let given = parse(
        "t.toml",
        &good_with("store = ", "binlog_server_id = 77\nstore = "),
    )
    .unwrap();
    assert!(!given.record.binlog_server_id_default);
}

/// A throwaway directory with a CA certificate and a key in PEM (made by openssl, which
/// the lab needs anyway), and a file that holds neither.
fn tls_files(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lagtrace-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=test", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("ca.pem"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    std::fs::write(dir.join("junk.pem"), "not a certificate\n").unwrap();
    dir
}

fn tls_config(keys: &str) -> Result<Config, ConfigError> {
    parse(
        "t.toml",
        &format!(
            "[connection]\n{keys}\n[[cluster]]\nname = \"p\"\nkind = \"postgres\"\nprimary = \"h1\"\nreplicas = {{ r1 = \"h2\" }}\n"
        ),
    )
}

#[test]
fn tls_modes_take_mysql_and_libpq_names_and_default_to_preferred() {
    assert_eq!(
        tls_config("").unwrap().connection.tls.mode,
        TlsMode::Preferred
    );
    for (name, mode) in TlsMode::NAMES {
        let c = tls_config(&format!("tls = \"{name}\"")).unwrap();
        assert_eq!(c.connection.tls.mode, mode, "{name}");
    }
    let e = tls_config("tls = \"on\"").unwrap_err();
    assert_eq!(e.key, "connection.tls");
    assert!(e.message.contains("verify_identity"), "{e}");
}

#[test]
fn tls_files_are_read_and_checked_when_the_config_is() {
    let dir = tls_files("cfg");
    let path = |f: &str| dir.join(f).display().to_string();
    // A CA alone means verify_ca, as the mysql client takes it.
    let c = tls_config(&format!("tls_ca = \"{}\"", path("ca.pem"))).unwrap();
    assert_eq!(c.connection.tls.mode, TlsMode::VerifyCa);
    assert!(
        c.connection
            .tls
            .ca
            .as_ref()
            .unwrap()
            .pem
            .starts_with(b"-----BEGIN")
    );
    // The key's bytes never show in Debug output.
    let c = tls_config(&format!(
        "tls = \"verify_identity\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_server_name = \"db.example\"",
        path("ca.pem"),
        path("key.pem")
    ))
    .unwrap();
    let shown = format!("{:?}", c.connection.tls);
    assert!(
        shown.contains("key.pem") && !shown.contains("PRIVATE"),
        "{shown}"
    );
    let fails = |keys: String, key: &str, says: &str| {
        let e = tls_config(&keys).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(e.message.contains(says), "{e}");
    };
    fails(
        format!("tls_ca = \"{}\"", path("missing.pem")),
        "connection.tls_ca",
        "cannot read it",
    );
    fails(
        format!("tls_ca = \"{}\"", path("junk.pem")),
        "connection.tls_ca",
        "no PEM certificate",
    );
    fails(
        format!("tls = \"required\"\ntls_ca = \"{}\"", path("ca.pem")),
        "connection.tls_ca",
        "does not check certificates",
    );
    fails(
        format!("tls_cert = \"{}\"", path("ca.pem")),
        "connection.tls_cert",
        "needs tls_key",
    );
    fails(
        format!("tls_key = \"{}\"", path("key.pem")),
        "connection.tls_key",
        "needs tls_cert",
    );
    fails(
        format!(
            "tls = \"verify_identity\"\ntls_cert = \"{}\"\ntls_key = \"{}\"",
            path("ca.pem"),
            path("ca.pem")
        ),
        "connection.tls_key",
        "no PEM private key",
    );
    fails(
        "tls = \"required\"\ntls_server_name = \"db\"".into(),
        "connection.tls_server_name",
        "verify_identity",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_ca_is_refused_for_mysql_whose_driver_checks_the_name_anyway() {
    let e = parse(
        "t.toml",
        "[connection]\ntls = \"verify_ca\"\n[[cluster]]\nname = \"m\"\nprimary = \"h1\"\nreplicas = { r1 = \"h2\" }\n",
    )
    .unwrap_err();
    assert_eq!(e.key, "connection.tls");
    assert!(e.message.contains("verify_identity"), "{e}");
}

#[test]
fn throttle_takes_apps_replica_choices_and_a_force_dir() {
    let base =
        "[[cluster]]\nname = \"c\"\nprimary = \"h1\"\nreplicas = { r1 = \"h2\", r2 = \"h3\" }\n";
    let c = parse("t.toml", base).unwrap();
    assert_eq!(c.throttle, ThrottleConfig::default());
    let c = parse(
        "t.toml",
        &format!(
            "{base}[throttle]\nmax_lag = \"500ms\"\napps = {{ gh-ost = \"2s\", \"pt-osc\" = \"1s\" }}\n\
             replicas = [\"r1\"]\nunreachable = \"ignore\"\nforce_dir = \"/tmp\"\n"
        ),
    )
    .unwrap();
    let t = c.throttle;
    assert_eq!(t.max_lag, Duration::from_millis(500));
    assert_eq!(t.apps["gh-ost"], Duration::from_secs(2));
    assert_eq!(t.replicas, ThrottleReplicas::Named(vec!["r1".into()]));
    assert!(!t.unreachable_throttles);
    let fails = |section: &str, key: &str, says: &str| {
        let e = parse("t.toml", &format!("{base}[throttle]\n{section}\n")).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(e.message.contains(says), "{e}");
    };
    fails("replicas = [\"r9\"]", "throttle.replicas", "not a replica");
    fails(
        "replicas = \"some\"",
        "throttle.replicas",
        "\"pool\", \"all\"",
    );
    fails("unreachable = \"maybe\"", "throttle.unreachable", "ignore");
    fails(
        "apps = { \"a b\" = \"1s\" }",
        "throttle.apps.a b",
        "not an app name",
    );
    fails(
        "force_dir = \"/nonexistent-dir\"",
        "throttle.force_dir",
        "no such directory",
    );
}
