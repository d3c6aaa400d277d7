//! `[triggers]`: commands the recorder runs when something happens to a cluster (the
//! recorder came up, its primary went down or came back, the primary moved, a replica
//! left the read pool or came back to it). Each is an
//! argv run without a shell, with the event as one JSON document on its stdin, its
//! stdout discarded. Runs never block the probes: each cluster's events go into a
//! bounded queue of its own (an overflow is logged and counted) that one thread works
//! off in order, so a cluster's runs are serialized and a slow trigger of one cluster
//! never delays another's; a run still going after `timeout` is killed with its whole
//! process group. Every run's exit status, duration and first line of stderr are
//! logged and stored.

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::format_utc_us;
use crate::cluster::doc::{Event, EventKind, SCHEMA};
use crate::config::TriggersConfig;

/// Events waiting to run; more are dropped (and counted) rather than waited for.
pub const QUEUE: usize = 64;
/// How often a running trigger is checked for its end.
const POLL: Duration = Duration::from_millis(10);

/// The record of one trigger run, stored as an event (`trigger_run`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerRun {
    pub schema: u32,
    /// Always `trigger_run`.
    pub event: EventKind,
    /// When the run ended.
    pub time_utc: String,
    /// The same time, UTC µs (for the store's key).
    #[serde(skip)]
    pub t_us: i64,
    pub cluster: String,
    /// The event the trigger ran for.
    pub trigger: EventKind,
    pub program: String,
    /// The exit code; `null` when killed (by a signal or the timeout) or not started.
    pub code: Option<i32>,
    pub timed_out: bool,
    pub duration_s: f64,
    /// The first line of its stderr, or why it could not start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
}

/// A queued run: the command and the event it reads.
type Run = (Vec<String>, Event);

/// Queues trigger runs, one queue per cluster; cheap to clone.
#[derive(Clone)]
pub struct Triggers {
    config: Arc<TriggersConfig>,
    queues: Arc<std::collections::HashMap<String, SyncSender<Run>>>,
    dropped: Arc<AtomicU64>,
}

impl Triggers {
    /// Starts one thread per cluster that runs its triggers, killing each after
    /// `timeout`; how each run ended comes out of the receiver (times from `clock`).
    pub fn start(
        config: TriggersConfig,
        timeout: Duration,
        clock: crate::clock::Clock,
        clusters: &[String],
    ) -> (Triggers, TriggerThread, Receiver<TriggerRun>) {
        let (ended_tx, ended) = std::sync::mpsc::channel();
        let mut queues = std::collections::HashMap::new();
        let mut threads = Vec::new();
        for cluster in clusters {
            let (queue, runs) = std::sync::mpsc::sync_channel(QUEUE);
            let ended_tx = ended_tx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("lagtrace-triggers-{cluster}"))
                    .spawn(move || work(runs, timeout, clock, ended_tx))
                    .expect("spawning a trigger thread"),
            );
            queues.insert(cluster.clone(), queue);
        }
        let triggers = Triggers {
            config: Arc::new(config),
            queues: Arc::new(queues),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        (triggers, TriggerThread(threads), ended)
    }

    /// Queues the command configured for `event.event`, if there is one.
    pub fn fire(&self, event: Event) {
        let argv = match event.event {
            EventKind::Heartbeat => &self.config.heartbeat,
            EventKind::RecorderUp => &self.config.recorder_up,
            EventKind::PrimaryDown => &self.config.primary_down,
            EventKind::PrimaryUp => &self.config.primary_up,
            EventKind::Failover => &self.config.failover,
            EventKind::ReplicaDown => &self.config.replica_down,
            EventKind::Split => &self.config.split,
            EventKind::ReplicaUp => &self.config.replica_up,
            _ => &None,
        };
        let Some(argv) = argv.clone() else { return };
        let name = event.event.name();
        let Some(queue) = self.queues.get(&event.cluster) else {
            return;
        };
        match queue.try_send((argv, event)) {
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

/// The threads that run triggers, one per cluster.
pub struct TriggerThread(Vec<std::thread::JoinHandle<()>>);

impl TriggerThread {
    /// Once every [`Triggers`] is dropped: waits up to `within` for the queued runs to
    /// end (a run still going then is left to finish on its own, and logged).
    pub fn finish(self, within: Duration) {
        let deadline = Instant::now() + within;
        let done = |t: &Vec<std::thread::JoinHandle<()>>| t.iter().all(|h| h.is_finished());
        while !done(&self.0) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        if !done(&self.0) {
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

fn work(
    runs: Receiver<Run>,
    timeout: Duration,
    clock: crate::clock::Clock,
    ended: std::sync::mpsc::Sender<TriggerRun>,
) {
    for (argv, event) in runs {
        let doc = serde_json::to_string(&event).expect("an event serializes");
        let (name, cluster, program) = (event.event.name(), &event.cluster, &argv[0]);
        let result = run(&argv, &doc, timeout);
        let t_us = clock.now_us();
        let mut record = TriggerRun {
            schema: SCHEMA,
            event: EventKind::TriggerRun,
            time_utc: format_utc_us(t_us),
            t_us,
            cluster: cluster.clone(),
            trigger: event.event,
            program: program.clone(),
            code: None,
            timed_out: false,
            duration_s: 0.0,
            stderr: None,
        };
        match result {
            Ok(end) => {
                let duration_s = end.duration.as_secs_f64();
                let (code, timed_out) = (end.code, end.timed_out);
                if code == Some(0) {
                    tracing::info!(event = name, %cluster, %program, duration_s, "trigger ran");
                } else {
                    let stderr = end.stderr.as_deref().unwrap_or_default();
                    tracing::warn!(event = name, %cluster, %program, ?code, timed_out, duration_s, %stderr, "trigger failed");
                }
                (record.code, record.timed_out) = (code, timed_out);
                (record.duration_s, record.stderr) = (duration_s, end.stderr);
            }
            Err(e) => {
                tracing::warn!(event = name, %cluster, %program, error = %e, "trigger could not start");
                record.stderr = Some(format!("could not start: {e}"));
            }
        }
        // The recorder may be past storing: the log line above is then the record.
        let _ = ended.send(record);
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

/// SIGKILL to the process group `pgid` (the trigger and everything it started); a
/// group already gone is nothing to do.
fn kill_group(pgid: u32) {
    let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testing::{cluster, events_of};

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

    /// Cluster a's trigger sleeps; cluster b's, queued after it, runs at once: each
    /// cluster has its own queue and thread.
    #[test]
    fn a_slow_trigger_of_one_cluster_does_not_delay_another() {
        let config = cluster(1);
        let e = events_of(&config, None, false);
        let mut triggers_config = crate::config::parse(
            "t.toml",
            "[[cluster]]\nname = \"c\"\nprimary = \"h1\"\nreplicas = { r1 = \"h2\" }\n",
        )
        .unwrap()
        .triggers;
        triggers_config.recorder_up = Some(argv(&["/bin/sleep", "2"]));
        triggers_config.failover = Some(argv(&["/bin/true"]));
        let (triggers, thread, ended) = Triggers::start(
            triggers_config,
            Duration::from_secs(5),
            crate::clock::Clock::start(),
            &["a".to_string(), "b".to_string()],
        );
        let started = Instant::now();
        let mut slow = e.event(EventKind::RecorderUp, &config.primary, 0);
        slow.cluster = "a".into();
        let mut quick = e.event(EventKind::Failover, &config.primary, 0);
        quick.cluster = "b".into();
        triggers.fire(slow);
        triggers.fire(quick);
        let first = ended.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            (first.cluster.as_str(), first.trigger),
            ("b", EventKind::Failover)
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let second = ended.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((second.cluster.as_str(), second.code), ("a", Some(0)));
        drop(triggers);
        thread.finish(Duration::from_secs(1));
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
