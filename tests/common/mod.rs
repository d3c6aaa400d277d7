//! Helpers shared by the integration tests: the compiled binary, the lab, temp dirs.
#![allow(dead_code)]

pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The lab's lagtrace password (scripts/lab.sh).
pub const LAB_PASSWORD: &str = "lagtrace-lab";

/// The compiled `lagtrace` binary, with a clean environment for passwords.
pub fn lagtrace() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lagtrace"));
    c.env_remove("LAGTRACE_PASSWORD").env_remove("RUST_LOG");
    c
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts the lab unless it runs already. Fails the test (never skips) when it cannot.
pub fn ensure_lab() {
    static UP: OnceLock<Result<(), String>> = OnceLock::new();
    start_lab(&UP, "mariadb");
}

/// Starts the PostgreSQL lab (`make up DB=postgres`) unless it runs already. Fails the
/// test (never skips) when it cannot.
pub fn ensure_pg_lab() {
    static UP: OnceLock<Result<(), String>> = OnceLock::new();
    start_lab(&UP, "postgres");
}

/// `scripts/lab.sh up` with `DB=db`, once per test binary.
fn start_lab(up: &OnceLock<Result<(), String>>, db: &str) {
    let result = up.get_or_init(|| {
        let out = Command::new(repo_root().join("scripts/lab.sh"))
            .arg("up")
            .env("DB", db)
            .output()
            .map_err(|e| format!("cannot run scripts/lab.sh: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "scripts/lab.sh up failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = result {
        panic!("the lab is needed for this test and did not start: {e}");
    }
}

/// A directory removed when dropped, unless the test failed and
/// `LAGTRACE_TEST_KEEP` is set (then its path is printed, for the store and logs).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("lagtrace-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// Writes a file in the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("LAGTRACE_TEST_KEEP").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Text of stdout and stderr.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config for the lab with one cluster of the given name, primary and replicas,
/// the password taken from `password_env`.
pub fn lab_config(
    cluster: &str,
    primary: &str,
    replicas: &[(&str, &str)],
    password_env: &str,
) -> String {
    let replicas: Vec<String> = replicas
        .iter()
        .map(|(n, a)| format!("{n} = \"{a}\""))
        .collect();
    format!(
        "[connection]\nuser = \"lagtrace\"\npassword_env = \"{password_env}\"\nconnect_timeout = \"2s\"\n\n\
         [[cluster]]\nname = \"{cluster}\"\nprimary = \"{primary}\"\nreplicas = {{ {} }}\n",
        replicas.join(", ")
    )
}

/// Runs `scripts/lab.sh ARGS` with extra environment, failing the test if it fails.
pub fn lab(args: &[&str], env: &[(&str, &str)]) {
    let mut c = Command::new(repo_root().join("scripts/lab.sh"));
    // The MariaDB lab, whatever DB the tests were started with.
    c.args(args).env("DB", "mariadb");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run scripts/lab.sh");
    assert!(
        out.status.success(),
        "scripts/lab.sh {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `sql` as the lab's root over `node`'s socket (`primary`, `replica1`,
/// `replica2`); returns its output (tab-separated, no column names), failing the test
/// if it fails.
pub fn root_sql(node: &str, sql: &str) -> String {
    match root_sql_try(node, sql) {
        Ok(out) => out,
        Err(stderr) => panic!("{node}: {sql}: {stderr}"),
    }
}

/// [`root_sql`] that returns the client's stderr when it fails, for a statement that
/// may fail (a table not made yet).
pub fn root_sql_try(node: &str, sql: &str) -> Result<String, String> {
    let socket = Command::new(repo_root().join("scripts/lab.sh"))
        .args(["socket", node])
        .env("DB", "mariadb")
        .output()
        .expect("run scripts/lab.sh socket");
    let socket = String::from_utf8_lossy(&socket.stdout).trim().to_string();
    let out = Command::new("mariadb")
        .args([
            "--no-defaults",
            "--batch",
            "--skip-column-names",
            "-uroot",
            "-S",
        ])
        .arg(&socket)
        .args(["-e", sql])
        .output()
        .expect("run the mariadb client");
    let (stdout, stderr) = texts(&out);
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(stderr)
    }
}

/// The pid of a lab server (`primary`, `replica1`, `replica2`).
pub fn lab_pid(node: &str) -> u32 {
    let path = repo_root().join(".lab").join(node).join("mysqld.pid");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .parse()
        .expect("pid")
}

/// Sends a signal by name (`KILL`, `TERM`, `INT`) with kill(1).
pub fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{name} {pid} failed");
}

/// Writes `config` to `dir/lagtrace.toml` and runs `lagtrace init` on it with the lab
/// password in `LAGTRACE_IT_PASSWORD`, failing the test if it fails.
pub fn init_config(dir: &TempDir, config: &str) -> PathBuf {
    let path = dir.write("lagtrace.toml", config);
    let (code, text) = run_init(&path);
    assert_eq!(code, Some(0), "init failed: {text}");
    path
}

/// Runs `lagtrace init -c config` with the lab's password in `LAGTRACE_IT_PASSWORD`:
/// its exit code, and its stdout then stderr.
pub fn run_init(config: &Path) -> (Option<i32>, String) {
    run_lab(&["init"], config)
}

/// Runs `lagtrace ARGS -c config` with the lab's password in `LAGTRACE_IT_PASSWORD`:
/// its exit code, and its stdout then stderr.
pub fn run_lab(args: &[&str], config: &Path) -> (Option<i32>, String) {
    let out = lagtrace()
        .args(args)
        .arg("-c")
        .arg(config)
        .env("LAGTRACE_IT_PASSWORD", LAB_PASSWORD)
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    (out.status.code(), format!("{stdout}{stderr}"))
}

/// UTC microseconds now (the wall clock, for comparing with exported times).
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// One exported row, parsed.
#[derive(Debug, Clone)]
pub struct Row {
    pub t_us: i64,
    pub replica: String,
    pub seq: Option<u64>,
    /// `bounded`, `at_least`, `before_first_beat`, `foreign_beat`; None for a failed read.
    pub lag_kind: Option<String>,
    /// Reads in the round.
    pub reads: u64,
    pub lag_ms: Option<f64>,
    pub lo_ms: Option<f64>,
    pub hi_ms: Option<f64>,
    pub outcome: String,
    /// Why a read failed; None for a successful one.
    pub reason: Option<String>,
    pub sql_running: Option<String>,
    pub sbm: Option<u64>,
    pub sql_delay_s: Option<u64>,
    /// `poll` or `binlog`.
    pub probe: String,
}

/// UTC µs of an RFC 3339 time as lagtrace prints it (`2026-11-29T20:31:46.862288Z`).
pub fn utc_us(time: &str) -> i64 {
    humantime::parse_rfc3339_weak(time.trim_end_matches('Z'))
        .unwrap_or_else(|e| panic!("{time:?}: {e}"))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// `lagtrace export --format jsonl ARGS` of a store, one JSON object per row; fails the
/// test if the export fails.
pub fn export_json(store: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = lagtrace()
        .args(["export", "--format", "jsonl"])
        .args(args)
        .arg("--store")
        .arg(store)
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "export failed: {stderr}");
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("jsonl row"))
        .collect()
}

/// `lagtrace export --format jsonl` of a store, parsed.
pub fn export_rows(store: &Path) -> Vec<Row> {
    export_json(store, &[])
        .into_iter()
        .map(|v| Row {
            t_us: utc_us(v["time_utc"].as_str().unwrap()),
            replica: v["replica"].as_str().unwrap().to_string(),
            seq: v["seq"].as_u64(),
            lag_kind: v["lag_kind"].as_str().map(String::from),
            reads: v["reads"].as_u64().unwrap(),
            lag_ms: v["lag_ms"].as_f64(),
            lo_ms: v["lag_lo_ms"].as_f64(),
            hi_ms: v["lag_hi_ms"].as_f64(),
            outcome: v["outcome"].as_str().unwrap().to_string(),
            reason: v["reason"].as_str().map(String::from),
            sql_running: v["sql_running"].as_str().map(String::from),
            sbm: v["seconds_behind_master"].as_u64(),
            sql_delay_s: v["sql_delay_s"].as_u64(),
            probe: v["probe"].as_str().unwrap().to_string(),
        })
        .collect()
}

/// The median of some values.
pub fn median(values: &mut [f64]) -> f64 {
    assert!(!values.is_empty(), "median of nothing");
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// The lab's primary and replicas, as the tests name them.
pub const PRIMARY: &str = "127.0.0.1:13306";
pub const REPLICAS: [(&str, &str); 2] = [("r1", "127.0.0.1:13307"), ("r2", "127.0.0.1:13308")];

static LAB_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the lab for one test of this test binary (tests that stall or kill servers take
/// turns; a failed test must not poison the others), starting it if needed.
pub fn take_lab() -> std::sync::MutexGuard<'static, ()> {
    let guard = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    ensure_lab();
    guard
}

/// Undoes a lab change when the test ends, even by panic: runs `scripts/lab.sh ARGS`
/// with the environment given.
pub struct Restore(
    pub Vec<&'static str>,
    pub &'static [(&'static str, &'static str)],
);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/lab.sh"))
            .args(&self.0)
            .env("DB", "mariadb")
            .envs(self.1.iter().copied())
            .output();
    }
}

/// A free loopback port (bound, then released: another process could take it in
/// between, which the lab machine does not do).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// A running `lagtrace record`, stopped with SIGINT (then killed) when dropped.
pub struct Recorder(pub std::process::Child);

impl Recorder {
    /// Starts `lagtrace record -c CONFIG --quiet` with the lab password.
    pub fn start(config: &Path) -> Recorder {
        let child = lagtrace()
            .args(["record", "--quiet", "-c"])
            .arg(config)
            .env("LAGTRACE_IT_PASSWORD", LAB_PASSWORD)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start lagtrace record");
        Recorder(child)
    }
}

impl Recorder {
    /// Stops the recorder with SIGINT; returns its exit code and everything it logged.
    /// (Its log is read only now: enough for tests that log a few lines.)
    pub fn stop(mut self) -> (Option<i32>, String) {
        let mut log = self.0.stderr.take().expect("stderr piped");
        signal(self.0.id(), "INT");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut log, &mut text).unwrap();
        let code = self.0.wait().unwrap().code();
        (code, text)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .stderr(std::process::Stdio::null())
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 response: status code, header lines (lower-cased names), body.
#[derive(Debug)]
pub struct Response {
    pub code: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, failing the test when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// Sends `raw` (a whole request) to `port` on loopback and parses the answer; `None`
/// when nothing answers.
pub fn http_raw(port: u16, raw: &str) -> Option<Response> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    s.write_all(raw.as_bytes()).ok()?;
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let code = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Response {
        code,
        headers,
        body: body.to_string(),
    })
}

/// `METHOD PATH` to the recorder's HTTP port, with extra header lines.
pub fn http(port: u16, method: &str, path: &str, headers: &[&str]) -> Option<Response> {
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    http_raw(
        port,
        &format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n"),
    )
}

/// Polls `GET path` every 20 ms until `done` accepts the response; the time it took,
/// or `None` after `limit`.
pub fn wait_http(
    port: u16,
    path: &str,
    limit: std::time::Duration,
    done: impl Fn(&Response) -> bool,
) -> Option<std::time::Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if http(port, "GET", path, &[]).is_some_and(|r| done(&r)) {
            return Some(start.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    None
}

/// The lab config for cluster `cluster` with `[http]` on `port` (max_lag 1s, maintenance
/// directory `dir/maintenance`) and `[agent]` on `agent_port`; init has run.
pub fn live_config(dir: &TempDir, cluster: &str, port: u16, agent_port: u16) -> PathBuf {
    let maint = dir.path().join("maintenance");
    std::fs::create_dir_all(&maint).unwrap();
    let config = format!(
        "{}\n[record]\nstore = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\nmax_lag = \"1s\"\n\
         maintenance_dir = \"{}\"\n\n[agent]\nlisten = \"127.0.0.1:{agent_port}\"\n",
        lab_config(cluster, PRIMARY, &REPLICAS, "LAGTRACE_IT_PASSWORD"),
        dir.path().join("live.redb").display(),
        maint.display(),
    );
    init_config(dir, &config)
}

/// Starts `lagtrace record --quiet -c CONFIG --store STORE ARGS` with the lab password,
/// stdout and stderr piped.
pub fn start_record(config: &Path, store: &Path, args: &[&str]) -> std::process::Child {
    start_record_env(config, store, args, &[])
}

/// [`start_record`] with more environment variables.
pub fn start_record_env(
    config: &Path,
    store: &Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> std::process::Child {
    lagtrace()
        .args(["record", "--quiet", "-c"])
        .arg(config)
        .arg("--store")
        .arg(store)
        .args(args)
        .env("LAGTRACE_IT_PASSWORD", LAB_PASSWORD)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start lagtrace record")
}

/// Waits for a recorder started by [`start_record`], failing the test unless it exited
/// 0; returns its output.
pub fn finish_record(child: std::process::Child) -> Output {
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success(),
        "record failed ({}): {stdout}{stderr}",
        out.status
    );
    out
}

/// A `mariadb` client kept open on one lab server (as the lagtrace user), for tests that
/// read a server's own state many times a second.
pub struct Sql {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl Sql {
    pub fn open(address: &str) -> Sql {
        let (host, port) = address.split_once(':').expect("host:port");
        let mut child = Command::new("mariadb")
            .args([
                "--no-defaults",
                "--batch",
                "--skip-column-names",
                "--unbuffered",
            ])
            .args(["-h", host, "-P", port, "-u", "lagtrace"])
            .env("MYSQL_PWD", LAB_PASSWORD)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the mariadb client");
        let stdin = child.stdin.take().unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        Sql { child, stdin, out }
    }

    /// The one value `query` returns (one row, one column).
    pub fn value(&mut self, query: &str) -> String {
        use std::io::{BufRead, Write};
        writeln!(self.stdin, "{query};").expect("send a query to mariadb");
        let mut line = String::new();
        self.out
            .read_line(&mut line)
            .expect("read mariadb's answer");
        assert!(!line.is_empty(), "mariadb closed its output on {query}");
        line.trim_end().to_string()
    }

    /// The transactions a MariaDB GTID position variable stands for (the sum over
    /// domains of their sequence numbers; the lab replicates one domain).
    pub fn transactions(&mut self, variable: &str) -> u64 {
        let pos = self.value(&format!("SELECT @@{variable}"));
        pos.split(',')
            .filter(|g| !g.is_empty())
            .map(|g| g.rsplit('-').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }
}

impl Drop for Sql {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `lagtrace analyze --format json` of a store, parsed; fails the test if it fails.
pub fn analyze_json(store: &Path) -> serde_json::Value {
    let out = lagtrace()
        .args(["analyze", "--format", "json", "--store"])
        .arg(store)
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "analyze failed: {stderr}");
    serde_json::from_str(&stdout).expect("analyze JSON")
}

/// The analyze document's entry for one replica.
pub fn replica_doc<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["replica"] == name)
        .unwrap_or_else(|| panic!("no replica {name} in {doc}"))
}

/// A config for `cluster` on the lab (the primary and replicas given) with the
/// `[record]` lines `record` and `[http]` on a free port (max_lag 1s); init has run.
/// Returns the config and the port.
pub fn http_lab_config(
    dir: &TempDir,
    cluster: &str,
    primary: &str,
    replicas: &[(&str, &str)],
    record: &str,
) -> (PathBuf, u16) {
    let port = free_port();
    let config = init_config(
        dir,
        &format!(
            "{}\n[record]\n{record}\n\n[http]\nlisten = \"127.0.0.1:{port}\"\nmax_lag = \"1s\"\n",
            lab_config(cluster, primary, replicas, "LAGTRACE_IT_PASSWORD")
        ),
    );
    (config, port)
}

/// Starts `lagtrace record` on `config` and waits up to 10 s for replicas r1 and r2 to
/// enter the pool of the `[http]` listener on `port`.
pub fn start_in_pool(config: &Path, port: u16) -> Recorder {
    let recorder = Recorder::start(config);
    wait_in_pool(port, &["r1", "r2"]);
    recorder
}

/// Waits up to 10 s for each of `replicas` to enter the pool of the `[http]` listener
/// on `port`; fails the test with `/status` if one does not.
pub fn wait_in_pool(port: u16, replicas: &[&str]) {
    for replica in replicas {
        let entered = wait_http(
            port,
            &format!("/check/{replica}"),
            std::time::Duration::from_secs(10),
            |r| r.code == 200,
        );
        assert!(
            entered.is_some(),
            "{replica} never entered the pool: {}",
            http(port, "GET", "/status", &[]).map_or(serde_json::Value::Null, |r| r.json())
        );
    }
}

/// `/status`'s document of replica `name` of the first cluster.
pub fn status_of(port: u16, name: &str) -> serde_json::Value {
    let status = http(port, "GET", "/status", &[]).unwrap().json();
    status["clusters"][0]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["replica"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

/// Waits up to `within` for every replica of the first cluster to be out of its pool
/// as `split` (on the other side of a split brain); fails the test otherwise.
pub fn wait_all_split(port: u16, within: std::time::Duration) {
    let parted = wait_http(port, "/status", within, |r| {
        let status = r.json();
        let replicas = status["clusters"][0]["replicas"]
            .as_array()
            .unwrap()
            .clone();
        replicas.iter().all(|r| r["reason"] == "split")
    });
    assert!(
        parted.is_some(),
        "not every replica left as split: {}",
        http(port, "GET", "/status", &[]).map_or(serde_json::Value::Null, |r| r.json())
    );
}

/// The JSON documents a file holds one after the other (what `tee -a` triggers wrote,
/// one per run), in order; none when the file does not exist.
pub fn json_documents(file: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    serde_json::Deserializer::from_str(&text)
        .into_iter::<serde_json::Value>()
        .map(|v| v.expect("a whole JSON document per run"))
        .collect()
}

/// A lab script running in its own process group (a load: the script and the sysbench
/// or pgbench it starts), killed whole when dropped, so a failing test leaves no load
/// behind.
pub struct Background(Child);

impl Background {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Background {
        use std::os::unix::process::CommandExt;
        let child = Command::new(repo_root().join("scripts/lab.sh"))
            .args(args)
            .envs(env.iter().copied())
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a lab load");
        Background(child)
    }

    /// Waits for the script to end by itself, failing the test unless it exited 0.
    pub fn wait_ok(mut self) {
        let status = self.0.wait().unwrap();
        assert!(status.success(), "the lab load failed: {}", self.stderr());
    }

    /// Fails the test if the script already ended (a load that died early), else stops
    /// it (when dropped).
    pub fn stop_running(mut self) {
        if let Some(status) = self.0.try_wait().unwrap() {
            panic!("the lab load ended early ({status}): {}", self.stderr());
        }
    }

    /// What the script wrote on stderr, once it has ended.
    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut text);
        }
        text
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", self.0.id())])
                .status();
        }
        let _ = self.0.wait();
    }
}

/// The incidents recorded under testdata/golden/ (each a folder with a store.redb), in
/// name order; fails the test when there are fewer than `at_least`.
pub fn golden_incidents(at_least: usize) -> Vec<PathBuf> {
    let root = repo_root().join("testdata/golden");
    let mut incidents: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("testdata/golden")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("store.redb").exists())
        .collect();
    incidents.sort();
    assert!(
        incidents.len() >= at_least,
        "the incidents under {} are missing: {incidents:?}",
        root.display()
    );
    incidents
}
