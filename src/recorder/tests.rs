//! The recorder's decisions under simulated time, with no server: a scripted cluster
//! ([`Sim`]) plays the servers and the probe tasks the recorder starts, and the truth
//! (which server takes writes, what each replica holds) is known by construction.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::cluster::doc::SCHEMA;
use crate::cluster::split::part_keys;
use crate::output::live::{Check, Live, State};
use crate::probe::follow::{Decision, PrimarySearch, TargetAnswer};
use crate::samples::{Beat, ChannelStatus, IoState, Observation, Probe, Probed, StatusSample};

const MS: i64 = 1_000;
const S: i64 = 1_000_000;
/// The beat interval of every simulated cluster.
const INTERVAL_US: i64 = 100 * MS;

/// Cluster `c`: the primary h1 and replicas r1 (h2) and r2 (h3), beats every 100 ms,
/// the pool's default thresholds.
const CONFIG: &str = "[record]\ninterval = \"100ms\"\n\n[[cluster]]\nname = \"c\"\n\
    primary = \"h1:3306\"\nreplicas = { r1 = \"h2:3306\", r2 = \"h3:3306\" }\n";

/// One server as the script has it.
#[derive(Debug, Clone)]
pub(super) struct Server {
    address: Address,
    /// It answers at all (not frozen, not down).
    pub(super) up: bool,
    /// It does not answer but holds its connections open (SIGSTOP): its replicas' IO
    /// threads still say `Yes` until `slave_net_timeout`.
    pub(super) frozen: bool,
    pub(super) writable: bool,
    /// The server it replicates from, by name.
    pub(super) source: Option<String>,
    /// Its SQL thread applies what it receives.
    pub(super) applying: bool,
    /// How many beats it applies per replication pass (four passes a beat) when
    /// behind; `None`: all at once.
    pub(super) apply_per_pass: Option<u64>,
    /// Its intended delay (MASTER_DELAY), µs: it applies a beat only this long after
    /// the beat committed on the primary. Its status says it in whole seconds.
    pub(super) delay_us: i64,
    /// The one-way delay of the recorder's link to it, µs: a read reaches it this
    /// long after it was sent, and its answer takes as long back.
    pub(super) link_us: i64,
    /// The seq each heartbeat row holds here.
    pub(super) rows: BTreeMap<String, u64>,
}

/// A beat writer the recorder started.
#[derive(Debug, Clone)]
struct Writer {
    row: String,
    /// Where it writes, by server name.
    target: String,
    /// Where it looks for the primary when its target refuses writes (none for a
    /// split part's writer).
    follows: bool,
    search: PrimarySearch,
}

/// A scripted cluster around a [`Recorder`]: every 100 ms each running writer beats and
/// each running reader reads what its replica holds; every 500 ms each replica's status
/// is polled; every second the recorder ticks.
pub(super) struct Sim {
    pub(super) now_us: i64,
    pub(super) recorder: Recorder,
    live: Shared,
    pub(super) servers: BTreeMap<String, Server>,
    writers: BTreeMap<ClusterId, Writer>,
    readers: BTreeMap<Slot, ReaderTask>,
    pollers: Vec<PollerTask>,
    /// Every effect but the stored samples, with when it happened.
    log: Vec<(i64, Effect)>,
    /// The cluster states the recorder stored, newest last.
    states: Vec<ClusterState>,
    /// Every successful read judged against the truth.
    pub(super) truth: Truth,
    /// What the recorder stored, with the number of the recorder session (from 0, one
    /// more at each restart).
    pub(super) stored: Vec<(u32, Sample)>,
    session: u32,
    /// Per heartbeat row, every beat written and when it committed, µs.
    commits: BTreeMap<String, BTreeMap<u64, i64>>,
}

/// What the recorder said, judged against the truth the script knows.
#[derive(Debug, Clone, Default)]
pub(super) struct Truth {
    /// Reads whose lag was checked, and those whose bounds left the true lag out.
    pub(super) reads: usize,
    pub(super) bounds_wrong: Vec<String>,
    /// Pool checks made once the truth had held for [`SETTLED_US`], and those that
    /// disagreed with it.
    pub(super) pool_checks: usize,
    pub(super) pool_wrong: Vec<String>,
    /// Per replica: whether it truly belongs in the pool, since when (µs).
    pub(super) in_pool: BTreeMap<String, (bool, i64)>,
    /// Per replica: how many times the truth went from in to out.
    pub(super) left: BTreeMap<String, usize>,
    /// Per (cluster or part, replica) as read: the largest true lag of a read, µs.
    pub(super) max_lag_us: BTreeMap<(String, String), i64>,
}

/// How long the truth must hold before the pool verdict must agree with it, µs: the
/// state machine's `min_duration` and the replica's next reads and status poll.
pub(super) const SETTLED_US: i64 = 4 * S;

/// The pool's `max_lag` by default, µs (`recover_lag` is half of it).
const MAX_LAG_US: i64 = S;

/// How close to a threshold the true lag is left unjudged, µs: a read's timing (the
/// upper bound is a few ms above the truth) decides there.
const TRUTH_MARGIN_US: i64 = 20 * MS;

impl Sim {
    /// A recorder on config [`CONFIG`] started at 0 with the cluster state `previous`.
    fn start(previous: Option<ClusterState>, now_us: i64) -> (Recorder, Shared, Vec<Effect>) {
        let config = crate::config::parse("t.toml", CONFIG).unwrap();
        let live: Shared = Arc::new(Mutex::new(Live::new(&config, &config.pool, now_us)));
        let c = &config.clusters[0];
        let names: Vec<String> = c.replicas.iter().map(|r| r.name.clone()).collect();
        let ids = Ids {
            clusters: vec![ClusterId(1)],
            replicas: vec![ReplicaId(2), ReplicaId(3)],
            parts: part_keys(&c.name, &names).into_iter().zip(10..).collect(),
        };
        let (recorder, start) = Recorder::new(&config, ids, vec![previous], live.clone(), now_us);
        (recorder, live, start)
    }

    /// The recorder stops (its tasks with it) and a new one starts from the state the
    /// last stored, as `record` does after a restart.
    pub(super) fn restart(&mut self) {
        let (recorder, live, start) = Sim::start(self.states.last().cloned(), self.now_us);
        (self.recorder, self.live) = (recorder, live);
        self.session += 1;
        self.writers.clear();
        self.readers.clear();
        self.pollers.clear();
        self.take(start);
        // A new recorder knows nothing yet: the settling starts again.
        let now = self.now_us;
        self.truth
            .in_pool
            .values_mut()
            .for_each(|(_, since)| *since = now);
    }

    pub(super) fn new(previous: Option<ClusterState>) -> Sim {
        let config = crate::config::parse("t.toml", CONFIG).unwrap();
        let c = &config.clusters[0];
        let (recorder, live, start) = Sim::start(previous, 0);
        let server = |address: &Address, source: Option<&str>| Server {
            address: address.clone(),
            up: true,
            frozen: false,
            writable: source.is_none(),
            source: source.map(str::to_string),
            applying: true,
            apply_per_pass: None,
            delay_us: 0,
            link_us: 0,
            rows: BTreeMap::new(),
        };
        let mut servers = BTreeMap::new();
        servers.insert("primary".to_string(), server(&c.primary, None));
        for r in &c.replicas {
            servers.insert(r.name.clone(), server(&r.address, Some("primary")));
        }
        let mut sim = Sim {
            now_us: 0,
            recorder,
            live,
            servers,
            writers: BTreeMap::new(),
            readers: BTreeMap::new(),
            pollers: Vec::new(),
            log: Vec::new(),
            states: Vec::new(),
            truth: Truth::default(),
            stored: Vec::new(),
            session: 0,
            commits: BTreeMap::new(),
        };
        sim.take(start);
        sim
    }

    fn name_at(&self, address: &Address) -> String {
        self.servers
            .iter()
            .find(|(_, s)| s.address == *address)
            .map(|(n, _)| n.clone())
            .expect("a server of the cluster")
    }

    /// Plays the effects' tasks, and keeps them for the test to look at.
    fn take(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match &e {
                Effect::StartWriter(w) => {
                    let target = self.name_at(&w.primary);
                    self.writers.insert(
                        w.id,
                        Writer {
                            row: w.row.clone(),
                            target,
                            follows: !w.others.is_empty(),
                            search: PrimarySearch::default(),
                        },
                    );
                }
                Effect::StopWriter(id) => {
                    self.writers.remove(id);
                }
                Effect::StartReader(r) => {
                    self.readers.insert(r.slot, r.clone());
                }
                Effect::StopReader(slot) => {
                    self.readers.remove(slot);
                }
                Effect::StartPoller(p) => self.pollers.push(p.clone()),
                Effect::Store(Sample::State { doc, .. }) => {
                    self.states.push(serde_json::from_str(doc).unwrap());
                    continue;
                }
                Effect::Store(sample) => {
                    self.stored.push((self.session, sample.clone()));
                    continue;
                }
                Effect::LagMetric(_) | Effect::StatusMetric(_) | Effect::ThrottleMetrics(_) => {
                    continue;
                }
                Effect::Fire(_) | Effect::StatusFile(_) => {}
            }
            self.log.push((self.now_us, e));
        }
    }

    fn sample(&mut self, sample: Probed) {
        let mut out = Vec::new();
        self.recorder.on_sample(sample, &mut out);
        self.take(out);
    }

    /// Runs the script for `us` of simulated time.
    pub(super) fn run(&mut self, us: i64) {
        let end = self.now_us + us;
        while self.now_us < end {
            self.now_us += INTERVAL_US;
            self.replicate();
            self.beat();
            self.replicate();
            self.read();
            if self.now_us % (S / 2) == 0 {
                self.poll();
            }
            self.judge_pool();
            if self.now_us % S == 0 {
                let mut out = Vec::new();
                let health = StoreHealth::default();
                self.recorder.on_tick(self.now_us, health, &mut out);
                self.take(out);
            }
        }
    }

    /// Each applying replica whose source answers holds what its source holds (twice,
    /// for a chain), less what its intended delay holds back.
    fn replicate(&mut self) {
        for _ in 0..2 {
            let snapshot = self.servers.clone();
            for s in self.servers.values_mut() {
                let Some(source) = s.source.as_ref().and_then(|n| snapshot.get(n)) else {
                    continue;
                };
                if s.up && s.applying && source.up {
                    for (row, seq) in &source.rows {
                        let held = s.rows.entry(row.clone()).or_default();
                        let mut reach = match (s.apply_per_pass, *held) {
                            (Some(k), h) if h > 0 => (h + k).min(*seq),
                            _ => *seq,
                        };
                        if s.delay_us > 0 {
                            // The newest beat committed at least the delay ago.
                            let due_us = self.now_us - s.delay_us;
                            let ripe = self
                                .commits
                                .get(row)
                                .and_then(|c| c.range(..=reach).rev().find(|(_, t)| **t <= due_us));
                            reach = ripe.map_or(*held, |(k, _)| *k);
                        }
                        *held = (*held).max(reach);
                    }
                }
            }
        }
    }

    /// Every writer beats; one whose target refuses writes follows the primary, as
    /// the beat writer does (the writable server that replicates from nothing).
    fn beat(&mut self) {
        let seq = (self.now_us / INTERVAL_US) as u64 + 1_000;
        let ids: Vec<ClusterId> = self.writers.keys().copied().collect();
        for id in ids {
            let w = self.writers[&id].clone();
            let target = &self.servers[&w.target];
            let (outcome, reason) = if !target.up {
                (Outcome::Timeout, Some("heartbeat write timed out after 1s"))
            } else if !target.writable {
                (Outcome::ServerError, Some("server error 1290: read-only"))
            } else {
                (Outcome::Ok, None)
            };
            if outcome == Outcome::Ok {
                let server = self.servers.get_mut(&w.target).unwrap();
                server.rows.insert(w.row.clone(), seq);
                let commits = self.commits.entry(w.row.clone()).or_default();
                commits.insert(seq, self.now_us + MS / 2);
            }
            self.sample(Probed::Beat {
                cluster: id.0,
                beat: Beat {
                    seq,
                    t_send_us: self.now_us,
                    t_done_us: self.now_us + MS,
                    outcome,
                    reason: reason.map(str::to_string),
                },
            });
            if outcome == Outcome::Ok {
                self.writers.get_mut(&id).unwrap().search.succeeded();
            } else if w.follows {
                self.follow_primary(id);
            }
        }
    }

    /// After a failed beat, the writer looks for the primary as the real one does
    /// (`probe::follow`): which other servers take writes, and, when one does, what its
    /// own target answers.
    fn follow_primary(&mut self, id: ClusterId) {
        let target = self.writers[&id].target.clone();
        let takes = |s: &Server| s.up && s.writable && s.source.is_none();
        let writers: Vec<Address> = self
            .servers
            .iter()
            .filter(|(n, s)| **n != target && takes(s))
            .map(|(_, s)| s.address.clone())
            .collect();
        let t = &self.servers[&target];
        let asked = (writers.len() == 1).then(|| match (t.up, takes(t)) {
            (false, _) => TargetAnswer::Unreachable,
            (true, true) => TargetAnswer::TakesWrites,
            (true, false) => TargetAnswer::RefusesWrites,
        });
        let now = self.now_us;
        let decision = self
            .writers
            .get_mut(&id)
            .unwrap()
            .search
            .decide(now, &writers, asked);
        if let Decision::Move(address) = decision {
            self.writers.get_mut(&id).unwrap().target = self.name_at(&address);
            self.sample(Probed::Writer {
                cluster: id.0,
                t_us: self.now_us + 2 * MS,
                address,
            });
        }
    }

    /// Every reader reads its row on its replica.
    fn read(&mut self) {
        let readers: Vec<ReaderTask> = self.readers.values().cloned().collect();
        for r in readers {
            let server = &self.servers[&r.replica];
            let seq = server.rows.get(&r.row).copied();
            let ok = server.up && seq.is_some();
            let link_us = server.link_us;
            // The true lag when the read reached the replica (what it holds then is
            // what it held at this tick, before the next one): the age of the first
            // beat it lacks.
            let true_us =
                self.true_lag_us(r.beats, &r.row, seq.unwrap_or(0), 2 * MS + link_us + MS / 2);
            self.sample(Probed::Observation {
                replica: r.id.0,
                observation: Observation {
                    r_start_us: self.now_us + 2 * MS,
                    r_end_us: self.now_us + 3 * MS + 2 * link_us,
                    seq: if ok { seq } else { None },
                    outcome: if ok { Outcome::Ok } else { Outcome::Timeout },
                    reason: (!ok).then(|| "read timed out".to_string()),
                    follow_up: false,
                    probe: Probe::Poll,
                },
            });
            if !ok {
                continue;
            }
            let lag = self.recorder.views()[r.slot.0].lag;
            let holds = match lag {
                Some(Lag::Bounded { lo_us, hi_us }) => lo_us <= true_us && true_us <= hi_us,
                Some(Lag::AtLeast { lo_us }) => lo_us <= true_us,
                Some(Lag::Unknown(_)) | None => true,
            };
            self.truth.reads += 1;
            let max = self
                .truth
                .max_lag_us
                .entry((r.cluster.clone(), r.replica.clone()))
                .or_default();
            *max = (*max).max(true_us);
            if !holds {
                let at = self.now_us;
                self.truth.bounds_wrong.push(format!(
                    "{} at {at} µs: {lag:?}, truly {true_us} µs",
                    r.replica
                ));
            }
        }
    }

    /// The true lag `at_us` after this tick of a replica that holds `held` of row
    /// `row`, whose beats go where cluster (or part) `beats`'s writer writes: the age of
    /// the first beat it lacks ([`Sim::commits`]), 0 when it lacks none.
    fn true_lag_us(&self, beats: ClusterId, row: &str, held: u64, at_us: i64) -> i64 {
        let Some(w) = self.writers.get(&beats) else {
            return 0;
        };
        let written = self.servers[&w.target].rows.get(row).copied().unwrap_or(0);
        if held >= written {
            return 0;
        }
        // The first beat written after the one it holds (a primary down wrote none).
        let committed_us = self
            .commits
            .get(row)
            .and_then(|c| c.range(held + 1..).next())
            .map_or(0, |(_, t)| *t);
        self.now_us + at_us - committed_us
    }

    /// Whether replica `name` truly belongs in the pool now, judged as the pool's
    /// thresholds say (out over `max_lag`, back in under `recover_lag`, from `was_in`):
    /// it answers, replicates with its SQL thread running, is not where the cluster's
    /// beats go (the primary), and lacks no beat of the cluster's older than the
    /// threshold. `None` within
    /// [`TRUTH_MARGIN_US`] of the threshold, where a read's timing decides.
    fn truly_in(&self, name: &str, was_in: bool) -> Option<bool> {
        let s = &self.servers[name];
        let w = self.writers.get(&ClusterId(1))?;
        // A stopped SQL thread is out at once, by design: it cannot stay in step.
        if !s.up || !s.applying || s.writable || s.source.is_none() || w.target == name {
            return Some(false);
        }
        let held = s.rows.get(&w.row).copied().unwrap_or(0);
        let lag = self.true_lag_us(ClusterId(1), &w.row, held, 0);
        let threshold = if was_in { MAX_LAG_US } else { MAX_LAG_US / 2 };
        if (lag - threshold).abs() <= TRUTH_MARGIN_US {
            return None;
        }
        Some(lag < threshold)
    }

    /// Follows the truth of each replica's place in the pool and, once it has held for
    /// [`SETTLED_US`], checks the pool verdict against it.
    fn judge_pool(&mut self) {
        let names: Vec<String> = self.readers.values().map(|r| r.replica.clone()).collect();
        let names: Vec<String> = self
            .servers
            .keys()
            .filter(|n| n.starts_with('r') || names.contains(n))
            .cloned()
            .collect();
        for name in names {
            let was = self.truth.in_pool.get(&name).copied();
            let Some(now_in) = self.truly_in(&name, was.is_none_or(|(i, _)| i)) else {
                // At the threshold: the settling starts again after it.
                if let Some((i, _)) = was {
                    self.truth.in_pool.insert(name.clone(), (i, self.now_us));
                }
                continue;
            };
            let (was_in, since) = *self
                .truth
                .in_pool
                .entry(name.clone())
                .or_insert((now_in, self.now_us));
            if was_in != now_in {
                self.truth
                    .in_pool
                    .insert(name.clone(), (now_in, self.now_us));
                if !now_in {
                    *self.truth.left.entry(name.clone()).or_default() += 1;
                }
                continue;
            }
            if self.now_us - since < SETTLED_US {
                continue;
            }
            self.truth.pool_checks += 1;
            let verdict = self.check(&name) == State::In;
            if verdict != now_in {
                let at = self.now_us;
                self.truth.pool_wrong.push(format!(
                    "{name} at {at} µs: {} while truly {} for {} µs",
                    if verdict { "in" } else { "out" },
                    if now_in { "in" } else { "out" },
                    at - since
                ));
            }
        }
    }

    /// Every replica's status and role, as its poller sees them.
    fn poll(&mut self) {
        for p in self.pollers.clone() {
            let s = self.servers[&p.replica].clone();
            let source = s.source.as_ref().map(|n| self.servers[n].clone());
            let channels = source
                .iter()
                .map(|src| ChannelStatus {
                    source: src.address.to_string(),
                    io: if src.up || src.frozen {
                        IoState::Yes
                    } else {
                        IoState::Connecting
                    },
                    sql_running: s.applying,
                    sql_delay_s: (s.delay_us / S) as u32,
                    ..ChannelStatus::running()
                })
                .collect();
            if !s.up {
                continue;
            }
            self.sample(Probed::Status {
                replica: p.id.0,
                status: StatusSample {
                    t_us: self.now_us,
                    duration_us: 500,
                    outcome: Outcome::Ok,
                    reason: None,
                    channels,
                    postgres: None,
                },
            });
            self.sample(Probed::Role {
                replica: p.id.0,
                t_us: self.now_us,
                writable: s.writable,
                source: source.map(|src| src.address.to_string()),
            });
        }
    }

    pub(super) fn server(&mut self, name: &str) -> &mut Server {
        self.servers.get_mut(name).unwrap()
    }

    /// The events fired, as `(event, node)`.
    pub(super) fn fired(&self) -> Vec<(&'static str, String)> {
        self.log
            .iter()
            .filter_map(|(_, e)| match e {
                Effect::Fire(e) if e.event != "heartbeat" => {
                    Some((e.event.name(), e.node.name.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// How many times `event` fired.
    pub(super) fn count(&self, event: &str) -> usize {
        self.fired().iter().filter(|(e, _)| *e == event).count()
    }

    /// The pool check of `replica` now.
    pub(super) fn check(&self, replica: &str) -> State {
        live::lock(&self.live)
            .check(replica, Check::Pool, self.now_us)
            .unwrap()
            .state
    }

    /// The effects logged since `from_us` that start or stop a task.
    fn tasks_since(&self, from_us: i64) -> Vec<&Effect> {
        self.log
            .iter()
            .filter(|(t, e)| *t >= from_us && !matches!(e, Effect::Fire(_) | Effect::StatusFile(_)))
            .map(|(_, e)| e)
            .collect()
    }
}

#[test]
fn the_start_runs_a_writer_a_reader_and_a_poller_and_fires_recorder_up_once() {
    let mut sim = Sim::new(None);
    assert_eq!(sim.writers.len(), 1);
    assert_eq!(sim.readers.len(), 2);
    assert_eq!(sim.pollers.len(), 2);
    sim.run(5 * S);
    assert_eq!(sim.fired(), [("recorder_up", "primary".to_string())]);
    assert_eq!((sim.check("r1"), sim.check("r2")), (State::In, State::In));
    let last = sim.states.last().unwrap();
    assert_eq!(last.primary, "h1:3306");
    assert_eq!(last.in_pool.values().filter(|i| **i).count(), 2);
}

#[test]
fn a_failover_moves_the_beats_and_fires_once_with_no_outage_and_no_split() {
    let mut sim = Sim::new(None);
    sim.run(3 * S);
    // r2 is promoted; the old primary refuses writes; r1 follows r2.
    sim.server("primary").writable = false;
    sim.server("primary").source = Some("r2".into());
    sim.server("r2").source = None;
    sim.server("r2").writable = true;
    sim.server("r1").source = Some("r2".into());
    sim.run(8 * S);
    let failovers: Vec<&Event> = sim
        .log
        .iter()
        .filter_map(|(_, e)| match e {
            Effect::Fire(e) if e.event == "failover" => Some(&**e),
            _ => None,
        })
        .collect();
    assert_eq!(failovers.len(), 1, "{:?}", sim.fired());
    assert_eq!(failovers[0].node.name, "r2");
    assert_eq!(
        failovers[0].previous_primary.as_ref().unwrap().name,
        "primary"
    );
    assert_eq!(sim.count("primary_down"), 0, "{:?}", sim.fired());
    assert_eq!(sim.count("split"), 0, "{:?}", sim.fired());
    assert_eq!(sim.count("replica_down"), 0, "{:?}", sim.fired());
    assert_eq!(sim.check("r1"), State::In);
    assert_eq!(sim.states.last().unwrap().primary, "h3:3306");
    // r1's lag is against beats on r2 now: a few ms, not growing.
    let lag = sim.recorder.views()[0].lag.unwrap();
    assert!(lag.hi_us().is_some_and(|hi| hi < 200 * MS), "{lag:?}");
}

#[test]
fn a_split_gets_a_part_of_its_own_and_its_end_brings_the_readers_back() {
    let mut sim = Sim::new(None);
    sim.run(2 * S);
    // r1 follows r2 (a chain), then r2 takes writes beside the primary.
    sim.server("r1").source = Some("r2".into());
    sim.run(S);
    let split_at = sim.now_us;
    sim.server("r2").source = None;
    sim.server("r2").writable = true;
    sim.run(2 * S);
    assert_eq!(
        sim.count("split"),
        0,
        "a split fires only after SPLIT_AFTER_US"
    );
    sim.run(3 * S);
    assert_eq!(sim.count("split"), 1, "{:?}", sim.fired());
    let part = ClusterId(sim.recorder.part_ids["c/c~r2"]);
    let tasks = sim.tasks_since(split_at);
    let part_writer = tasks.iter().find_map(|e| match e {
        Effect::StartWriter(w) => Some(w),
        _ => None,
    });
    let w = part_writer.expect("a writer for the part");
    assert_eq!(
        (w.id, w.row.as_str(), w.name.as_str()),
        (part, "c#split", "c~r2")
    );
    assert_eq!(w.primary.to_string(), "h3:3306");
    // r2 is read no more (it is the part's primary); r1 is read against the part.
    assert!(!sim.readers.contains_key(&Slot(1)));
    let r1 = &sim.readers[&Slot(0)];
    assert_eq!(
        (r1.beats, r1.cluster.as_str(), r1.row.as_str()),
        (part, "c~r2", "c#split")
    );
    assert_eq!(sim.recorder.views()[0].cluster, "c~r2");
    sim.run(4 * S);
    // In step with the part's beats: no lag growing with the split.
    let lag = sim.recorder.views()[0].lag.unwrap();
    assert!(lag.hi_us().is_some_and(|hi| hi < 200 * MS), "{lag:?}");
    assert_eq!(
        sim.count("failover"),
        0,
        "beats stay on the primary in a split"
    );

    // The split ends: r2 read-only again, following the primary.
    let end_at = sim.now_us;
    sim.server("r2").writable = false;
    sim.server("r2").source = Some("primary".into());
    sim.run(3 * S);
    assert_eq!(sim.count("split_end"), 1, "{:?}", sim.fired());
    let tasks = sim.tasks_since(end_at);
    assert!(tasks.contains(&&Effect::StopWriter(part)), "{tasks:?}");
    assert!(!sim.writers.contains_key(&part));
    for slot in [Slot(0), Slot(1)] {
        assert_eq!(sim.readers[&slot].beats, ClusterId(1), "{slot:?}");
    }
    assert_eq!(sim.recorder.views()[0].cluster, "c");
    sim.run(3 * S);
    assert_eq!((sim.check("r1"), sim.check("r2")), (State::In, State::In));
}

#[test]
fn a_restart_fires_what_changed_while_stopped_before_recorder_up() {
    let previous = ClusterState {
        schema: SCHEMA,
        primary: "h1:3306".into(),
        primary_down: false,
        in_pool: [("r1".to_string(), true), ("r2".to_string(), true)].into(),
        split: Vec::new(),
    };
    let mut sim = Sim::new(Some(previous));
    // r1's SQL thread was stopped while no recorder ran.
    sim.server("r1").applying = false;
    sim.run(5 * S);
    let fired: Vec<(&str, bool)> = sim
        .log
        .iter()
        .filter_map(|(_, e)| match e {
            Effect::Fire(e) if e.event != "heartbeat" => Some((e.event.name(), e.while_stopped)),
            _ => None,
        })
        .collect();
    assert_eq!(fired, [("replica_down", true), ("recorder_up", false)]);
    assert!(!sim.states.last().unwrap().in_pool["r1"]);
}

#[test]
fn a_replica_leaving_and_rejoining_the_pool_fires_down_then_up_once_each() {
    let mut sim = Sim::new(None);
    sim.run(3 * S);
    sim.server("r1").applying = false;
    sim.run(6 * S);
    assert_eq!(sim.check("r1"), State::Out);
    sim.server("r1").applying = true;
    sim.run(6 * S);
    assert_eq!(sim.check("r1"), State::In);
    let r1: Vec<&str> = sim
        .fired()
        .into_iter()
        .filter(|(_, n)| n == "r1")
        .map(|(e, _)| e)
        .collect();
    assert_eq!(r1, ["replica_down", "replica_up"]);
    assert_eq!(sim.count("replica_down"), 1, "r2 stays: {:?}", sim.fired());
}

#[test]
fn a_frozen_primary_is_one_outage_and_no_replica_leaves_the_pool() {
    // Frozen: its replicas' IO threads stay connected (`Yes`).
    let mut sim = Sim::new(None);
    sim.run(3 * S);
    sim.server("primary").up = false;
    sim.server("primary").frozen = true;
    sim.run(5 * S);
    sim.server("primary").up = true;
    sim.server("primary").frozen = false;
    sim.run(3 * S);
    assert_eq!(sim.count("primary_down"), 1, "{:?}", sim.fired());
    assert_eq!(sim.count("primary_up"), 1, "{:?}", sim.fired());
    assert_eq!(sim.count("replica_down"), 0, "{:?}", sim.fired());
    assert_eq!(sim.count("failover"), 0, "{:?}", sim.fired());
}

/// The incident matrix's first finding: a primary that shuts down used to take every
/// replica out of the pool (their IO threads leave `Yes`), although they hold all it
/// committed. Down by agreement (lagtrace's beats fail and the replicas' IO threads
/// cannot reach it either), the replicas stay in, judged by their lag.
#[test]
fn a_primary_that_shuts_down_is_one_outage_and_no_replica_leaves_the_pool() {
    let mut sim = Sim::new(None);
    sim.run(3 * S);
    sim.server("primary").up = false;
    sim.run(3 * S);
    let doc = live::lock(&sim.live)
        .check("r1", Check::Pool, sim.now_us)
        .unwrap();
    assert_eq!((doc.state, doc.reason.as_str()), (State::In, "source_down"));
    sim.run(2 * S);
    sim.server("primary").up = true;
    sim.run(3 * S);
    assert_eq!(sim.count("primary_down"), 1, "{:?}", sim.fired());
    assert_eq!(sim.count("primary_up"), 1, "{:?}", sim.fired());
    assert_eq!(sim.count("replica_down"), 0, "{:?}", sim.fired());
    assert_eq!((sim.check("r1"), sim.check("r2")), (State::In, State::In));
}

/// A replica whose IO thread cannot reach a primary that lagtrace reaches is out: the
/// fault is the replica's, not the source's.
#[test]
fn an_io_thread_cut_off_from_a_reachable_primary_is_out() {
    let mut sim = Sim::new(None);
    sim.run(3 * S);
    // r1's link to its source breaks: its IO thread reconnects, the primary answers.
    sim.server("r1").source = Some("nowhere".into());
    sim.servers.insert(
        "nowhere".into(),
        Server {
            address: Address::parse("h9:3306").unwrap(),
            up: false,
            frozen: false,
            writable: false,
            source: None,
            applying: false,
            apply_per_pass: None,
            delay_us: 0,
            link_us: 0,
            rows: BTreeMap::new(),
        },
    );
    sim.run(3 * S);
    let doc = live::lock(&sim.live)
        .check("r1", Check::Pool, sim.now_us)
        .unwrap();
    assert_eq!((doc.state, doc.reason.as_str()), (State::Out, "io_stopped"));
}

#[test]
fn a_second_writer_is_reported_and_its_beats_never_matched() {
    let mut sim = Sim::new(None);
    sim.run(2 * S);
    // Another recorder moved the row far ahead: this one's beats are stale, and the
    // replicas show a seq it never wrote.
    for s in sim.servers.values_mut() {
        s.rows.insert("c".into(), 1 << 40);
    }
    sim.sample(Probed::Beat {
        cluster: 1,
        beat: Beat {
            seq: 2_000,
            t_send_us: sim.now_us,
            t_done_us: sim.now_us + MS,
            outcome: Outcome::Stale,
            reason: Some("the row already holds a newer seq".into()),
        },
    });
    sim.read();
    assert!(sim.recorder.clusters()[0].second_writer);
    assert!(live::lock(&sim.live).second_writer(0));
    let lag = sim.recorder.views()[0].lag;
    assert!(
        matches!(lag, Some(Lag::Unknown(Unknown::ForeignBeat { .. }))),
        "{lag:?}"
    );
}

/// All the recorder's effects for a run are a function of its inputs: the same script
/// gives the same effects.
#[test]
fn the_same_script_gives_the_same_effects() {
    let script = |sim: &mut Sim| {
        sim.run(2 * S);
        sim.server("r1").applying = false;
        sim.run(3 * S);
        sim.server("r1").applying = true;
        sim.run(3 * S);
        sim.log.clone()
    };
    let (mut a, mut b) = (Sim::new(None), Sim::new(None));
    assert_eq!(script(&mut a), script(&mut b));
}
