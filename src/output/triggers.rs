//! `[triggers]`: commands the recorder runs when something happens to a cluster (the
//! recorder came up, its primary went down or came back, the primary moved, a replica
//! left the read pool or came back to it). Each is an
//! argv run without a shell, with the event as one JSON document on its stdin, its
//! stdout discarded. Runs never block the probes: events go into a bounded queue (an
//! overflow is logged and counted) that one thread works off in order, so runs are
//! serialized; a run still going after `timeout` is killed with its whole process
//! group. Every run's exit status, duration and first line of stderr are logged.

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use super::live::{ReplicaDoc, State};
use crate::clock::format_utc_us;
use crate::config::{Address, ClusterConfig, TriggersConfig};
use crate::samples::{Beat, Outcome};

/// Events waiting to run; more are dropped (and counted) rather than waited for.
pub const QUEUE: usize = 64;
/// How often a running trigger is checked for its end.
const POLL: Duration = Duration::from_millis(10);
/// How long beats must keep failing before `primary_down` fires (a single failed beat
/// is a blip, not an outage), µs.
pub const PRIMARY_DOWN_AFTER_US: i64 = 1_000_000;

/// The document a trigger reads on stdin. Times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Version of this document's shape.
    pub schema: u32,
    /// `recorder_up`, `heartbeat`, `primary_down`, `primary_up`, `failover`,
    /// `replica_down`, `replica_up`.
    pub event: &'static str,
    pub time_utc: String,
    pub cluster: String,
    /// The server the event is about.
    pub node: Node,
    /// The primary beats go to after the event.
    pub primary: Node,
    pub replicas: Vec<Node>,
    /// For `failover`: where beats went before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_primary: Option<Node>,
    /// For `primary_down`: why the beats fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `primary_up`: how long the primary was down, s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_s: Option<f64>,
    /// For `replica_down` and `replica_up`: the live check's answer for the replica
    /// (its reason code, its lag in ms when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckDoc>,
}

/// A replica's live check, as `replica_down` and `replica_up` carry it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckDoc {
    /// `healthy`, `lagging`, `unreachable`, `io_stopped`, `sql_stopped`, `stale`.
    pub reason: String,
    pub detail: String,
    pub lag_lo_ms: Option<f64>,
    pub lag_hi_ms: Option<f64>,
    pub sql_delay_s: Option<u32>,
}

/// A server as triggers see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub name: String,
    pub address: String,
    /// `primary` or `replica` (as configured, or as found after a failover).
    pub role: &'static str,
}

/// The version of [`Event`]'s shape.
pub const SCHEMA: u32 = 1;

/// One cluster's events for triggers, from its beats and from the server its beat
/// writer writes to: `primary_down` once beats have failed for
/// [`PRIMARY_DOWN_AFTER_US`], `primary_up` at the first beat after that, `failover`
/// when the writer moved to another server.
pub struct ClusterEvents {
    cluster: String,
    /// Every server of the cluster: the configured primary (named `primary`), then the
    /// replicas.
    nodes: Vec<(String, Address)>,
    primary: Address,
    primary_now: watch::Receiver<Address>,
    /// The first failed beat of the current run of failures, and why it failed.
    failing_since_us: Option<(i64, String)>,
    down_fired: bool,
    /// Per replica name: whether it was in the pool at the last look (absent while it
    /// has not been judged yet, or is in maintenance).
    in_pool: std::collections::HashMap<String, bool>,
    /// `heartbeat` period and when it last fired, µs.
    heartbeat_every_us: i64,
    last_heartbeat_us: Option<i64>,
}

impl ClusterEvents {
    pub fn new(
        cluster: &ClusterConfig,
        heartbeat_every: Duration,
        primary_now: watch::Receiver<Address>,
    ) -> ClusterEvents {
        let nodes = std::iter::once(("primary".to_string(), cluster.primary.clone()))
            .chain(
                cluster
                    .replicas
                    .iter()
                    .map(|r| (r.name.clone(), r.address.clone())),
            )
            .collect();
        ClusterEvents {
            cluster: cluster.name.clone(),
            nodes,
            primary: cluster.primary.clone(),
            primary_now,
            failing_since_us: None,
            down_fired: false,
            in_pool: std::collections::HashMap::new(),
            heartbeat_every_us: crate::clock::duration_us(heartbeat_every),
            last_heartbeat_us: None,
        }
    }

    fn node(&self, address: &Address) -> Node {
        let name = self
            .nodes
            .iter()
            .find(|(_, a)| a == address)
            .map_or_else(|| address.to_string(), |(n, _)| n.clone());
        Node {
            name,
            address: address.to_string(),
            role: if *address == self.primary {
                "primary"
            } else {
                "replica"
            },
        }
    }

    /// An event about `node` now.
    pub fn event(&self, event: &'static str, node: &Address, now_us: i64) -> Event {
        Event {
            schema: SCHEMA,
            event,
            time_utc: format_utc_us(now_us),
            cluster: self.cluster.clone(),
            node: self.node(node),
            primary: self.node(&self.primary),
            replicas: self
                .nodes
                .iter()
                .filter(|(_, a)| *a != self.primary)
                .map(|(_, a)| self.node(a))
                .collect(),
            previous_primary: None,
            reason: None,
            down_s: None,
            check: None,
        }
    }

    /// `recorder_up` for this cluster.
    pub fn recorder_up(&self, now_us: i64) -> Event {
        self.event("recorder_up", &self.primary, now_us)
    }

    /// Follows a beat of this cluster; `primary_up` when it ends an outage that fired
    /// `primary_down`.
    pub fn on_beat(&mut self, beat: &Beat) -> Option<Event> {
        if beat.outcome != Outcome::Ok {
            self.failing_since_us
                .get_or_insert_with(|| (beat.t_send_us, beat.reason.clone().unwrap_or_default()));
            return None;
        }
        let (since_us, _) = self.failing_since_us.take()?;
        if !std::mem::replace(&mut self.down_fired, false) {
            return None;
        }
        let mut e = self.event("primary_up", &self.primary, beat.t_done_us);
        e.down_s = Some((beat.t_done_us - since_us) as f64 / 1e6);
        Some(e)
    }

    /// Follows the live checks of the cluster's replicas (`/check`'s pool state):
    /// `replica_down` when one leaves the pool, `replica_up` when it comes back. A
    /// replica still starting, or in maintenance, fires nothing.
    pub fn on_replicas(&mut self, replicas: &[ReplicaDoc], now_us: i64) -> Vec<Event> {
        let mut out = Vec::new();
        for r in replicas {
            let now_in = match (r.state, r.reason.as_str()) {
                (_, "starting") | (State::Maintenance, _) => continue,
                (State::In, _) => true,
                (State::Out, _) => false,
            };
            let Some(address) = self
                .nodes
                .iter()
                .find(|(n, _)| *n == r.replica)
                .map(|(_, a)| a.clone())
            else {
                continue;
            };
            let before = self.in_pool.insert(r.replica.clone(), now_in);
            let event = match (before, now_in) {
                (Some(true) | None, false) => "replica_down",
                (Some(false), true) => "replica_up",
                _ => continue,
            };
            let mut e = self.event(event, &address, now_us);
            e.check = Some(CheckDoc {
                reason: r.reason.clone(),
                detail: r.detail.clone(),
                lag_lo_ms: r.lag_lo_ms,
                lag_hi_ms: r.lag_hi_ms,
                sql_delay_s: r.sql_delay_s,
            });
            out.push(e);
        }
        out
    }

    /// Checks the time and the writer's server: `heartbeat` every period (the first at
    /// once), `primary_down` once the failures have lasted long enough, `failover` when
    /// the writer moved.
    pub fn on_tick(&mut self, now_us: i64) -> Vec<Event> {
        let mut out = Vec::new();
        if self.primary_now.has_changed().unwrap_or(false) {
            let now = self.primary_now.borrow_and_update().clone();
            if now != self.primary {
                let before = std::mem::replace(&mut self.primary, now.clone());
                let mut e = self.event("failover", &now, now_us);
                e.previous_primary = Some(self.node(&before));
                out.push(e);
            }
        }
        if self
            .last_heartbeat_us
            .is_none_or(|t| now_us - t >= self.heartbeat_every_us)
        {
            self.last_heartbeat_us = Some(now_us);
            out.push(self.event("heartbeat", &self.primary, now_us));
        }
        if let Some((since_us, reason)) = &self.failing_since_us
            && !self.down_fired
            && now_us - since_us >= PRIMARY_DOWN_AFTER_US
        {
            let mut e = self.event("primary_down", &self.primary, now_us);
            e.reason = Some(reason.clone());
            self.down_fired = true;
            out.push(e);
        }
        out
    }
}

/// Queues trigger runs; cheap to clone.
#[derive(Clone)]
pub struct Triggers {
    config: Arc<TriggersConfig>,
    queue: SyncSender<(Vec<String>, Event)>,
    dropped: Arc<AtomicU64>,
}

impl Triggers {
    /// Starts the thread that runs triggers, killing each after `timeout`.
    pub fn start(config: TriggersConfig, timeout: Duration) -> (Triggers, TriggerThread) {
        let (queue, runs) = std::sync::mpsc::sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("lagtrace-triggers".into())
            .spawn(move || work(runs, timeout))
            .expect("spawning the trigger thread");
        let triggers = Triggers {
            config: Arc::new(config),
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        (triggers, TriggerThread(thread))
    }

    /// Queues the command configured for `event.event`, if there is one.
    pub fn fire(&self, event: Event) {
        let argv = match event.event {
            "heartbeat" => &self.config.heartbeat,
            "recorder_up" => &self.config.recorder_up,
            "primary_down" => &self.config.primary_down,
            "primary_up" => &self.config.primary_up,
            "failover" => &self.config.failover,
            "replica_down" => &self.config.replica_down,
            "replica_up" => &self.config.replica_up,
            _ => &None,
        };
        let Some(argv) = argv.clone() else { return };
        let name = event.event;
        match self.queue.try_send((argv, event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(event = name, dropped = n, "trigger queue full; run dropped");
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Runs dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The thread that runs triggers.
pub struct TriggerThread(std::thread::JoinHandle<()>);

impl TriggerThread {
    /// Once every [`Triggers`] is dropped: waits up to `within` for the queued runs to
    /// end (a run still going then is left to finish on its own, and logged).
    pub fn finish(self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.0.is_finished() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        if !self.0.is_finished() {
            tracing::warn!("triggers still running at exit are left to finish on their own");
        }
    }
}

/// How one run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    /// The exit code; `None` when killed by a signal (or by the timeout).
    pub code: Option<i32>,
    pub timed_out: bool,
    pub duration: Duration,
    /// The first line the command wrote to stderr.
    pub stderr: Option<String>,
}

fn work(runs: Receiver<(Vec<String>, Event)>, timeout: Duration) {
    for (argv, event) in runs {
        let doc = serde_json::to_string(&event).expect("an event serializes");
        match run(&argv, &doc, timeout) {
            Ok(end) => {
                let ok = end.code == Some(0);
                let (code, timed_out) = (end.code, end.timed_out);
                let duration_s = end.duration.as_secs_f64();
                let stderr = end.stderr.unwrap_or_default();
                if ok {
                    tracing::info!(event = event.event, cluster = %event.cluster, program = %argv[0], duration_s, "trigger ran");
                } else {
                    tracing::warn!(event = event.event, cluster = %event.cluster, program = %argv[0], ?code, timed_out, duration_s, stderr = %stderr, "trigger failed");
                }
            }
            Err(e) => {
                tracing::warn!(event = event.event, cluster = %event.cluster, program = %argv[0], error = %e, "trigger could not start");
            }
        }
    }
}

/// Runs `argv` (no shell) with `stdin` as its input, in a process group of its own,
/// killing the group after `timeout`.
pub fn run(argv: &[String], stdin: &str, timeout: Duration) -> std::io::Result<RunEnd> {
    use std::os::unix::process::CommandExt;
    let started = Instant::now();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    if let Some(mut input) = child.stdin.take() {
        // A command that does not read its input is not a failure.
        let _ = input.write_all(stdin.as_bytes());
    }
    let stderr = child.stderr.take();
    // Read stderr on the side so that a chatty command cannot block on a full pipe.
    let first_line = std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stderr?).lines();
        let first = lines.next()?.ok();
        for _ in lines {}
        first
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= timeout {
            timed_out = true;
            kill_group(child.id());
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(POLL);
    };
    let duration = started.elapsed();
    // The group is dead or done; a grandchild that kept stderr open was killed with it.
    let stderr = first_line.join().ok().flatten();
    Ok(RunEnd {
        code: status.code(),
        timed_out,
        duration,
        stderr,
    })
}

/// SIGKILL to the process group `pgid` (the trigger and everything it started), through
/// kill(1): the standard library has no killpg.
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_trigger_reads_the_event_and_its_exit_and_stderr_are_kept() {
        let dir = std::env::temp_dir().join(format!("lagtrace-trig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("stdin.json");
        let end = run(
            &argv(&["/usr/bin/tee", out.to_str().unwrap()]),
            "{\"event\":\"x\"}",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!((end.code, end.timed_out), (Some(0), false));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"event\":\"x\"}");
        let end = run(
            &argv(&["/bin/ls", "/no/such/dir;rm -rf /tmp/x"]),
            "",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(end.code, Some(2));
        // The argument with `;` reached ls as one literal argument: no shell.
        assert!(
            end.stderr
                .as_deref()
                .unwrap()
                .contains("/no/such/dir;rm -rf /tmp/x"),
            "{end:?}"
        );
        assert!(run(&argv(&["/no/such/program"]), "", Duration::from_secs(1)).is_err());
    }

    fn beat(t_us: i64, ok: bool) -> Beat {
        Beat {
            seq: t_us as u64,
            t_send_us: t_us,
            t_done_us: t_us + 500,
            outcome: if ok { Outcome::Ok } else { Outcome::Timeout },
            reason: (!ok).then(|| "heartbeat write timed out after 1s".to_string()),
        }
    }

    #[test]
    fn beats_failing_for_a_second_are_primary_down_and_the_next_good_one_primary_up() {
        let config = crate::config::parse(
            "t.toml",
            "[[cluster]]\nname = \"c\"\nprimary = \"h1:3306\"\nreplicas = { r1 = \"h2:3306\", r2 = \"h3:3306\" }\n",
        )
        .unwrap();
        let cluster = &config.clusters[0];
        let (tx, rx) = watch::channel(cluster.primary.clone());
        let mut e = ClusterEvents::new(cluster, Duration::from_secs(10), rx);
        const S: i64 = 1_000_000;
        // A blip: one failed beat, then good ones: nothing fires.
        assert!(e.on_beat(&beat(0, false)).is_none());
        // The first tick is the first heartbeat; the next comes a period later.
        let first = e.on_tick(S / 2);
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].event, first[0].node.name.as_str()),
            ("heartbeat", "primary")
        );
        assert!(e.on_beat(&beat(S / 2, true)).is_none());
        // Failing from 2 s: down once a second has passed, once; up at the next good beat.
        assert!(e.on_beat(&beat(2 * S, false)).is_none());
        assert!(e.on_tick(2 * S + S / 2).is_empty());
        let down = e.on_tick(3 * S);
        assert_eq!(down.len(), 1);
        assert_eq!(down[0].event, "primary_down");
        assert_eq!(down[0].node.name, "primary");
        assert_eq!(
            down[0].reason.as_deref(),
            Some("heartbeat write timed out after 1s")
        );
        assert!(e.on_tick(4 * S).is_empty(), "fired once");
        let up = e.on_beat(&beat(5 * S, true)).unwrap();
        assert_eq!((up.event, up.down_s), ("primary_up", Some(3.0005)));
        // The writer moves to r2: a failover, with the old primary among the replicas.
        tx.send(cluster.replicas[1].address.clone()).unwrap();
        let moved = e.on_tick(6 * S);
        assert_eq!(moved.len(), 1);
        let f = &moved[0];
        assert_eq!(
            (f.event, f.node.name.as_str(), f.primary.name.as_str()),
            ("failover", "r2", "r2")
        );
        assert_eq!(f.previous_primary.as_ref().unwrap().name, "primary");
        let names: Vec<&str> = f.replicas.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["primary", "r1"]);
        let json = serde_json::to_value(f).unwrap();
        assert_eq!(json["primary"]["address"], "h3:3306");
        assert_eq!(json["schema"], 1);
        assert!(json.get("down_s").is_none());
        let beat_at_10s: Vec<&str> = e.on_tick(S / 2 + 10 * S).iter().map(|e| e.event).collect();
        assert_eq!(beat_at_10s, ["heartbeat"]);
    }

    fn doc(replica: &str, state: State, reason: &str) -> ReplicaDoc {
        ReplicaDoc {
            replica: replica.into(),
            cluster: "c".into(),
            state,
            reason: reason.into(),
            detail: reason.into(),
            since: None,
            lag_ms: None,
            lag_kind: None,
            lag_lo_ms: Some(1500.0),
            lag_hi_ms: None,
            vector: None,
            heartbeat_age_ms: None,
            io_running: None,
            sql_running: None,
            seconds_behind_master: None,
            sql_delay_s: None,
            ignore_intended_delay: false,
            reads_ok: 0,
            reads_failed: 0,
            last_read: None,
        }
    }

    #[test]
    fn a_replica_leaving_and_rejoining_the_pool_is_replica_down_then_up() {
        let config = crate::config::parse(
            "t.toml",
            "[[cluster]]\nname = \"c\"\nprimary = \"h1:3306\"\nreplicas = { r1 = \"h2:3306\" }\n",
        )
        .unwrap();
        let (_tx, rx) = watch::channel(config.clusters[0].primary.clone());
        let mut e = ClusterEvents::new(&config.clusters[0], Duration::from_secs(10), rx);
        let names =
            |events: Vec<Event>| -> Vec<&'static str> { events.iter().map(|e| e.event).collect() };
        assert!(
            e.on_replicas(&[doc("r1", State::Out, "starting")], 0)
                .is_empty()
        );
        assert!(
            e.on_replicas(&[doc("r1", State::In, "healthy")], 1)
                .is_empty()
        );
        let down = e.on_replicas(&[doc("r1", State::Out, "lagging")], 2);
        assert_eq!(down[0].node.address, "h2:3306");
        assert_eq!(down[0].check.as_ref().unwrap().reason, "lagging");
        assert_eq!(names(down), ["replica_down"]);
        assert!(
            e.on_replicas(&[doc("r1", State::Out, "lagging")], 3)
                .is_empty()
        );
        assert!(
            e.on_replicas(&[doc("r1", State::Maintenance, "maintenance")], 4)
                .is_empty()
        );
        assert_eq!(
            names(e.on_replicas(&[doc("r1", State::In, "healthy")], 5)),
            ["replica_up"]
        );
    }

    #[test]
    fn a_trigger_past_its_timeout_is_killed_with_its_children() {
        // A shell here only to start a grandchild; lagtrace itself never uses one.
        let started = Instant::now();
        let end = run(
            &argv(&["/bin/sh", "-c", "sleep 30 & echo started >&2; wait"]),
            "",
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(end.timed_out && end.code.is_none(), "{end:?}");
        // Killing the group ended the grandchild too, so stderr closed at once.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(end.stderr.as_deref(), Some("started"));
    }
}
