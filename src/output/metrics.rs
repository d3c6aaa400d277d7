//! Live outputs of `record`: `/metrics`, the live picture ([`Snapshot`]) in the
//! Prometheus text format, written by prometheus-client. Every value is in seconds or a
//! plain count; a fact that is unknown (no lag yet, Seconds_Behind_Master NULL) is
//! absent, never a sentinel number.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::live::{ReplicaDoc, Snapshot, State};

type Labels = Vec<(&'static str, String)>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;
type Counters = Family<Labels, Counter<u64>>;

/// The gauges every replica has, name and help, in the order [`replica_values`] gives
/// their values and the registry lists them.
const REPLICA_GAUGES: [(&str, &str); 11] = [
    (
        "replica_lag_seconds",
        "Replication lag of the last read: the middle of its bounds",
    ),
    (
        "replica_lag_lower_seconds",
        "Lower bound of the lag of the last read",
    ),
    (
        "replica_lag_upper_seconds",
        "Upper bound of the lag of the last read",
    ),
    (
        "replica_vector",
        "Replication vector over the last second: 0 keeps up, -1 applies nothing, +0.5 catches up half a second per second",
    ),
    (
        "replica_heartbeat_age_seconds",
        "Time since the newest beat the replica showed was sent",
    ),
    (
        "replica_io_running",
        "1 when the IO thread runs (Slave_IO_Running = Yes)",
    ),
    ("replica_sql_running", "1 when the SQL thread runs"),
    (
        "replica_seconds_behind_master",
        "Seconds_Behind_Master as the server reports it; absent when NULL",
    ),
    (
        "replica_sql_delay_seconds",
        "Intended delay (SQL_Delay) of the replica",
    ),
    (
        "replica_in_pool",
        "1 when /check/<replica> answers 200 (in the read pool)",
    ),
    (
        "replica_maintenance",
        "1 when a maintenance file for the replica is present",
    ),
];

/// A replica's values of [`REPLICA_GAUGES`], seconds or 0/1; `None` is left out.
fn replica_values(r: &ReplicaDoc) -> [Option<f64>; 11] {
    let bit = |b: bool| if b { 1.0 } else { 0.0 };
    let s = |ms: Option<f64>| ms.map(|v| v / 1e3);
    [
        s(r.lag.lag_ms),
        s(r.lag.lag_lo_ms),
        s(r.lag.lag_hi_ms),
        r.vector,
        s(r.heartbeat_age_ms),
        r.io_running.map(bit),
        r.sql_running.map(bit),
        r.seconds_behind_master.map(f64::from),
        r.sql_delay_s.map(f64::from),
        Some(bit(r.state == State::In)),
        Some(bit(r.state == State::Maintenance)),
    ]
}

/// Content type of [`render`]'s output.
pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of [`classic`]'s output.
pub const CLASSIC_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The snapshot in the OpenMetrics text format (what prometheus-client writes, and
/// what a Prometheus server asks for first).
pub fn render(snap: &Snapshot) -> String {
    let mut registry = Registry::with_prefix("lagtrace");
    let gauges: Vec<Gauges> = REPLICA_GAUGES.iter().map(|_| Gauges::default()).collect();
    let reads = Counters::default();
    let beats = Counters::default();
    let errors = Counters::default();

    for c in &snap.clusters {
        beats
            .get_or_create(&vec![("cluster", c.cluster.clone())])
            .inc_by(c.beats_ok + c.beats_failed);
        for r in &c.replicas {
            let labels: Labels = vec![
                ("cluster", c.cluster.clone()),
                ("replica", r.replica.clone()),
            ];
            for (family, value) in gauges.iter().zip(replica_values(r)) {
                if let Some(v) = value {
                    family.get_or_create(&labels).set(v);
                }
            }
            for (result, n) in [("ok", r.reads_ok), ("failed", r.reads_failed)] {
                let mut l = labels.clone();
                l.push(("result", result.to_string()));
                reads.get_or_create(&l).inc_by(n);
            }
        }
    }
    for (probe, kinds) in &snap.probe_errors {
        for (kind, n) in kinds {
            errors
                .get_or_create(&vec![("probe", probe.clone()), ("kind", kind.clone())])
                .inc_by(*n);
        }
    }
    let dropped: Counter<u64> = Counter::default();
    dropped.inc_by(snap.dropped_samples);
    let unstored: Counter<u64> = Counter::default();
    unstored.inc_by(snap.unstored_samples);
    let writable: Gauge<f64, AtomicU64> = Gauge::default();
    writable.set(if snap.store_writable { 1.0 } else { 0.0 });

    for ((name, help), family) in REPLICA_GAUGES.iter().zip(gauges) {
        registry.register(*name, *help, family);
    }
    registry.register("reads", "Reads of the heartbeat row per replica", reads);
    registry.register(
        "beats",
        "Heartbeats written per cluster, failed ones included",
        beats,
    );
    registry.register(
        "probe_errors",
        "Failed probe steps by probe (beat, read, status) and kind of failure",
        errors,
    );
    registry.register(
        "dropped_samples",
        "Samples dropped because the store fell behind",
        dropped,
    );
    registry.register(
        "unstored_samples",
        "Samples dropped because the store could not be written for too long (disk full)",
        unstored,
    );
    registry.register(
        "store_writable",
        "1 while the store takes writes, 0 while samples wait in memory for it",
        writable,
    );
    let throttled = Gauges::default();
    for t in &snap.throttle {
        let labels: Labels = vec![
            ("cluster", t.cluster.clone()),
            ("app", t.app.clone().unwrap_or_default()),
            ("reason", t.reason.to_string()),
        ];
        throttled
            .get_or_create(&labels)
            .set(if t.throttled { 1.0 } else { 0.0 });
    }
    registry.register(
        "throttled",
        "1 while batch writers of the cluster (app \"\" for the default threshold) should wait (/throttle answers 429), with why",
        throttled,
    );
    // A gauge set to 1, not an OpenMetrics info: the classic text format that
    // Prometheus and promtool parse has no info type.
    let build = Gauges::default();
    build
        .get_or_create(&vec![("version", snap.version.to_string())])
        .set(1.0);
    registry.register("build_info", "The lagtrace version answering", build);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

/// OpenMetrics text turned into the classic Prometheus text format (0.0.4), for
/// scrapers that do not ask for OpenMetrics (promtool, curl, older agents). The two
/// differ, for what [`render`] writes, in that a classic counter's HELP and TYPE name
/// its `_total` samples, and in that classic text has no `# EOF` or `# UNIT` lines.
pub fn classic(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(&name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::output::live::{ClusterDoc, ReplicaDoc};
    use std::collections::BTreeMap;

    /// A healthy replica of cluster `lab` in the pool, its lag `lag_ms` (bounds that
    /// wide: none), the fixture of the tests that read `/status` documents.
    pub(crate) fn doc(replica: &str, lag_ms: Option<f64>, sbm: Option<u32>) -> ReplicaDoc {
        ReplicaDoc {
            replica: replica.into(),
            cluster: "lab".into(),
            address: "127.0.0.1:13307".into(),
            part: None,
            state: State::In,
            reason: "healthy".into(),
            detail: String::new(),
            since: None,
            lag: crate::analysis::lag::LagMs {
                lag_kind: lag_ms.map(|_| "bounded"),
                lag_ms,
                lag_lo_ms: lag_ms,
                lag_hi_ms: lag_ms,
            },
            vector: None,
            heartbeat_age_ms: None,
            io_running: Some(true),
            sql_running: Some(true),
            seconds_behind_master: sbm,
            sql_delay_s: Some(0),
            ignore_intended_delay: false,
            reads_ok: 7,
            reads_failed: 1,
            last_read: None,
            probe: None,
            probe_note: None,
            tls: None,
        }
    }

    #[test]
    fn unknown_facts_are_absent_and_names_carry_units() {
        let snap = Snapshot {
            schema: crate::output::live::STATUS_SCHEMA,
            version: "9.9.9",
            started: String::new(),
            now: String::new(),
            max_lag_ms: 1000.0,
            recover_lag_ms: 500.0,
            clusters: vec![ClusterDoc {
                cluster: "lab".into(),
                primary: crate::output::live::PrimaryDoc {
                    name: "primary".into(),
                    address: "127.0.0.1:13306".into(),
                    tls: None,
                },
                foreign_beats: 0,
                last_foreign_seq: None,
                second_writer: false,
                beats_failing: false,
                beats_ok: 10,
                beats_failed: 2,
                replicas: vec![doc("r1", Some(1500.0), Some(1)), doc("r2", None, None)],
            }],
            probe_errors: BTreeMap::from([(
                "beat".to_string(),
                BTreeMap::from([("timeout".to_string(), 2)]),
            )]),
            dropped_samples: 0,
            unstored_samples: 0,
            store_writable: true,
            recorder: None,
            throttle: Vec::new(),
        };
        let text = render(&snap);
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(
            has("lagtrace_replica_lag_seconds{cluster=\"lab\",replica=\"r1\"} 1.5"),
            "{text}"
        );
        assert!(
            has("lagtrace_replica_seconds_behind_master{cluster=\"lab\",replica=\"r1\"} 1.0"),
            "{text}"
        );
        assert!(
            !text
                .contains("lagtrace_replica_seconds_behind_master{cluster=\"lab\",replica=\"r2\"}")
        );
        assert!(!text.contains("lagtrace_replica_lag_seconds{cluster=\"lab\",replica=\"r2\"}"));
        assert!(has("lagtrace_beats_total{cluster=\"lab\"} 12"), "{text}");
        assert!(
            has("lagtrace_probe_errors_total{probe=\"beat\",kind=\"timeout\"} 2"),
            "{text}"
        );
        assert!(
            has("lagtrace_reads_total{cluster=\"lab\",replica=\"r1\",result=\"failed\"} 1"),
            "{text}"
        );
        assert!(has("lagtrace_build_info{version=\"9.9.9\"} 1.0"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");

        let old = classic(&text);
        let has = |line: &str| old.lines().any(|l| l == line);
        assert!(has("# TYPE lagtrace_beats_total counter"), "{old}");
        assert!(
            has(
                "# HELP lagtrace_beats_total Heartbeats written per cluster, failed ones included."
            ),
            "{old}"
        );
        assert!(has("# TYPE lagtrace_replica_lag_seconds gauge"), "{old}");
        assert!(has("lagtrace_beats_total{cluster=\"lab\"} 12"), "{old}");
        assert!(!old.contains("# EOF"), "{old}");
    }
}
