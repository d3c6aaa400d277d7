//! The recorder's async shell: it runs the probe tasks the [`Recorder`] asks for, moves
//! their samples into it, ticks it once a second, and carries its effects out (the
//! store, the triggers, statsd, the status file, the console). It decides nothing.
//!
//! Shutdown is a visible protocol: when `shutdown` resolves (or the store fails) a
//! `watch` tells every probe task to stop and the [`Spawner`] lets go of its sample
//! sender (nothing starts after that); each task drops its sample sender when it ends;
//! when the last one is gone the loop has drained everything and returns, dropping the
//! store sender, and the writer thread makes its final flush.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::{ClusterId, Effect, PollerTask, ReaderTask, Recorder, Slot, StoreHealth, WriterTask};
use crate::clock::Clock;
use crate::config::{Config, ConnectionConfig, ProbeMode, Secret};
use crate::output::console::{self, Totals};
use crate::output::live;
use crate::output::statsd::Statsd;
use crate::output::triggers::{TriggerRun, Triggers};
use crate::probe::beat::{self, BeatNotice, BeatWriter};
use crate::probe::{binlog, reader, status};
use crate::samples::event::EventKind;
use crate::samples::{Probed, Sample};
use crate::store::writer::SampleSender;

/// Samples queued between the probes and the recorder.
const SAMPLE_QUEUE: usize = 10_000;
/// Seconds between log lines when stdout is not a terminal.
const LOG_EVERY_S: u64 = 10;

/// What the shell carries effects out to.
pub struct Outputs<'a> {
    pub store: SampleSender,
    pub triggers: &'a Triggers,
    /// Trigger runs that ended, to store as events.
    pub trigger_runs: &'a std::sync::mpsc::Receiver<TriggerRun>,
    pub statsd: Option<&'a Statsd>,
    /// The console, never waited on; `terminal`: it is a terminal (a table each
    /// second), else a log line per replica every `LOG_EVERY_S`.
    pub printer: Option<&'a console::Printer>,
    pub terminal: bool,
}

/// Runs `recorder` with the probe tasks its `start` effects ask for until `shutdown`
/// resolves or the store fails. Returns the totals and, off a terminal, the last log
/// lines to print.
pub async fn record(
    mut recorder: Recorder,
    start: Vec<Effect>,
    spawner: Spawner,
    out: Outputs<'_>,
    shutdown: impl std::future::Future<Output = ()>,
) -> (Totals, Option<String>) {
    let mut shell = Shell {
        spawner,
        writers: HashMap::new(),
        readers: HashMap::new(),
        out,
        status_file_ok: true,
        store_gone: false,
    };
    let mut samples = shell.spawner.take_receiver();
    shell.carry_out(start, &recorder);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut ticks: u64 = 0;
    let mut effects = Vec::new();
    tokio::pin!(shutdown);
    let mut stopping = false;
    loop {
        tokio::select! {
            sample = samples.recv() => {
                let Some(sample) = sample else { break };
                recorder.on_sample(sample, &mut effects);
            }
            _ = tick.tick() => {
                ticks += 1;
                let now_us = shell.spawner.clock.now_us();
                recorder.on_tick(now_us, shell.store_health(), &mut effects);
                shell.after_tick(&recorder, ticks);
            }
            _ = &mut shutdown, if !stopping => {
                stopping = true;
                shell.spawner.stop();
            }
        }
        shell.carry_out(std::mem::take(&mut effects), &recorder);
        if shell.store_gone && !stopping {
            // The writer ended with a store error; it is reported after shutdown.
            stopping = true;
            shell.spawner.stop();
        }
    }
    store_trigger_runs(shell.out.trigger_runs, &shell.out.store);
    let mut totals = recorder.totals().clone();
    totals.dropped = shell.out.store.dropped();
    totals.statsd_errors = shell.out.statsd.map_or(0, Statsd::errors);
    let last_lines = (shell.out.printer.is_some() && !shell.out.terminal)
        .then(|| console::log_lines(recorder.views(), shell.spawner.clock.now_us()));
    (totals, last_lines)
}

struct Shell<'a> {
    spawner: Spawner,
    /// Per cluster or part: its writer and the beats it announces.
    writers: HashMap<ClusterId, (Option<Stop>, watch::Receiver<BeatNotice>)>,
    /// Per slot: the replica's reader.
    readers: HashMap<Slot, Stop>,
    out: Outputs<'a>,
    /// Whether the last write of the status file worked.
    status_file_ok: bool,
    store_gone: bool,
}

impl Shell<'_> {
    fn carry_out(&mut self, effects: Vec<Effect>, recorder: &Recorder) {
        for effect in effects {
            match effect {
                Effect::Store(sample) => self.store(sample),
                Effect::Fire(event) => {
                    if event.event != EventKind::Heartbeat {
                        let doc = serde_json::to_string(&event).expect("an event serializes");
                        self.store(Sample::Event {
                            t_us: event.t_us,
                            doc,
                        });
                    }
                    self.out.triggers.fire(*event);
                }
                Effect::StartWriter(task) => {
                    let (notices_tx, notices) = watch::channel(BeatNotice::default());
                    let id = task.id;
                    let stop = self.spawner.writer(task, notices_tx);
                    self.writers.insert(id, (stop, notices));
                }
                Effect::StopWriter(id) => {
                    self.writers.remove(&id);
                }
                Effect::StartReader(task) => {
                    let Some((_, notices)) = self.writers.get(&task.beats) else {
                        continue;
                    };
                    let slot = task.slot;
                    if let Some(stop) = self.spawner.reader(task, notices.clone()) {
                        self.readers.insert(slot, stop);
                    }
                }
                Effect::StopReader(slot) => {
                    self.readers.remove(&slot);
                }
                Effect::StartPoller(task) => self.spawner.poller(task),
                Effect::LagMetric(slot) => {
                    let v = recorder.view(slot);
                    if let (Some(statsd), Some(lag)) = (self.out.statsd, v.lag.as_ref()) {
                        statsd.lag(&v.cluster, &v.replica, lag);
                    }
                }
                Effect::StatusMetric(slot) => {
                    let v = recorder.view(slot);
                    let channel = v.status.as_ref().and_then(|s| s.main_channel());
                    if let (Some(statsd), Some(ch)) = (self.out.statsd, channel) {
                        statsd.status(&v.cluster, &v.replica, ch);
                    }
                }
                Effect::ThrottleMetrics(verdicts) => {
                    if let Some(statsd) = self.out.statsd {
                        verdicts.iter().for_each(|t| statsd.throttle(t));
                    }
                }
                Effect::StatusFile(snapshot) => {
                    if let Some(path) = &self.spawner.status_file {
                        let written = live::write_status_file(path, &snapshot);
                        self.status_file_ok =
                            report_status_file(path, written, self.status_file_ok);
                    }
                }
            }
        }
    }

    fn store(&mut self, sample: Sample) {
        if !self.store_gone && self.out.store.send(sample).is_err() {
            self.store_gone = true;
        }
    }

    fn store_health(&self) -> StoreHealth {
        StoreHealth {
            dropped: self.out.store.dropped(),
            unstored: self.out.store.unstored(),
            failing: self.out.store.store_failing(),
        }
    }

    /// After a tick: the trigger runs that ended are stored, statsd flushed, the
    /// console offered a frame.
    fn after_tick(&mut self, recorder: &Recorder, ticks: u64) {
        store_trigger_runs(self.out.trigger_runs, &self.out.store);
        let mut totals = recorder.totals().clone();
        if let Some(statsd) = self.out.statsd {
            statsd.flush();
            totals.statsd_errors = statsd.errors();
        }
        if let Some(printer) = self.out.printer {
            let now = self.spawner.clock.now_us();
            if self.out.terminal {
                printer.offer(format!(
                    "\x1b[H\x1b[2J{}",
                    console::table(recorder.views(), &totals, now)
                ));
            } else if ticks.is_multiple_of(LOG_EVERY_S) {
                printer.offer(console::log_lines(recorder.views(), now));
            }
        }
    }
}

/// Logs the status file's first failed write of a run at warn and the next success;
/// returns whether this write worked.
fn report_status_file(path: &std::path::Path, written: std::io::Result<()>, was_ok: bool) -> bool {
    match (written, was_ok) {
        (Ok(()), false) => {
            tracing::warn!(path = %path.display(), "status file written again");
            true
        }
        (Ok(()), true) => true,
        (Err(e), true) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the status file (repeats at debug level until it works)");
            false
        }
        (Err(e), false) => {
            tracing::debug!(path = %path.display(), error = %e, "cannot write the status file");
            false
        }
    }
}

/// Stores the trigger runs that ended since the last call. A store that is gone is
/// noticed, and reported, by the loop.
fn store_trigger_runs(runs: &std::sync::mpsc::Receiver<TriggerRun>, store: &SampleSender) {
    for run in runs.try_iter() {
        let doc = serde_json::to_string(&run).expect("a trigger run serializes");
        let _ = store.send(Sample::Event {
            t_us: run.t_us,
            doc,
        });
    }
}

/// A task that runs until this is dropped (or the recorder stops).
pub struct Stop {
    _tx: oneshot::Sender<()>,
}

/// Starts probe tasks, all sending to the recorder's sample channel, until the recorder
/// stops: then it holds no sender any more, so that the channel closes once the last
/// task has ended.
pub struct Spawner {
    samples: Option<mpsc::Sender<Probed>>,
    receiver: Option<mpsc::Receiver<Probed>>,
    shutdown_tx: watch::Sender<bool>,
    shutdown: watch::Receiver<bool>,
    settings: ConnectionConfig,
    password: Secret,
    /// Beat interval.
    interval: Duration,
    /// Read after every n-th beat.
    read_every: u32,
    /// Mean time between status polls.
    status_every: Duration,
    /// Binary log streams register as this plus their replica's id.
    binlog_server_id: u32,
    status_file: Option<std::path::PathBuf>,
    clock: Clock,
}

impl Spawner {
    pub fn new(config: &Config, password: &Secret, clock: Clock) -> Spawner {
        let (samples, receiver) = mpsc::channel(SAMPLE_QUEUE);
        let (shutdown_tx, shutdown) = watch::channel(false);
        Spawner {
            samples: Some(samples),
            receiver: Some(receiver),
            shutdown_tx,
            shutdown,
            settings: config.connection.clone(),
            password: password.clone(),
            interval: config.record.interval,
            read_every: config.record.read_every,
            status_every: config.record.status_every,
            binlog_server_id: config.record.binlog_server_id,
            status_file: config.record.status_file.clone(),
            clock,
        }
    }

    fn take_receiver(&mut self) -> mpsc::Receiver<Probed> {
        self.receiver.take().expect("the receiver is taken once")
    }

    /// The recorder stops: every task is told to, and none starts from here on.
    fn stop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        self.samples = None;
    }

    /// Runs `task` until the recorder stops or the returned [`Stop`] is dropped;
    /// `None` (nothing started) once the recorder stops.
    fn spawn<F>(
        &self,
        task: impl FnOnce(mpsc::Sender<Probed>, watch::Receiver<bool>) -> F,
    ) -> Option<Stop>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let samples = self.samples.clone()?;
        let (tx, rx) = oneshot::channel::<()>();
        let run = task(samples, self.shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = run => {}
                // Sent never: dropping the sender ends the task.
                _ = rx => {}
            }
        });
        Some(Stop { _tx: tx })
    }

    /// Runs the beat writer `task`, publishing its acknowledged beats on `notices`.
    fn writer(&self, task: WriterTask, notices: watch::Sender<BeatNotice>) -> Option<Stop> {
        let w = BeatWriter {
            cluster_id: task.id.0,
            ensure_row: task.row != task.name,
            cluster: task.name,
            kind: task.kind,
            row: task.row,
            primary: task.primary,
            others: task.others,
            settings: self.settings.clone(),
            password: self.password.clone(),
            interval: self.interval,
            clock: self.clock,
        };
        self.spawn(|out, shutdown| beat::run(w, out, notices, shutdown))
    }

    /// The status poller `task`: it runs until the recorder stops, whichever side the
    /// replica is on.
    fn poller(&self, task: PollerTask) {
        let p = status::Poller {
            replica_id: task.id.0,
            kind: task.kind,
            cluster: task.cluster,
            replica: task.replica,
            address: task.address,
            settings: self.settings.clone(),
            password: self.password.clone(),
            every: self.status_every,
            clock: self.clock,
        };
        if let Some(out) = self.samples.clone() {
            tokio::spawn(status::run(p, out, self.shutdown.clone()));
        }
    }

    /// The reader `task`, reading after each beat `notices` announces, or with a probe
    /// other than poll, following its binary log (`probe::binlog`).
    fn reader(&self, task: ReaderTask, notices: watch::Receiver<BeatNotice>) -> Option<Stop> {
        let r = reader::Reader {
            replica_id: task.id.0,
            row_made_by_writer: task.row != task.cluster,
            cluster: task.cluster,
            kind: task.kind,
            row: task.row,
            replica: task.replica,
            address: task.address,
            settings: self.settings.clone(),
            password: self.password.clone(),
            interval: self.interval,
            read_every: self.read_every,
            clock: self.clock,
        };
        if task.probe == ProbeMode::Poll {
            return self.spawn(|out, shutdown| reader::run(r, out, notices, shutdown));
        }
        let b = binlog::Binlog {
            reader: r,
            mode: task.probe,
            server_id: self.binlog_server_id.saturating_add(task.id.0),
        };
        self.spawn(|out, shutdown| binlog::run(b, out, notices, shutdown))
    }
}
