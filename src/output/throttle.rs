//! Output step: whether a cluster may take more batch writes (schema changes, archivers,
//! backfills), judged from the live picture of its replicas, for `/throttle/<cluster>`,
//! freno's `/check/<app>/mysql/<cluster>`, `lagtrace wait` and the throttle metrics.
//!
//! Conservative by design: a replica's lag is judged by its upper bound, and a replica
//! whose lag cannot be known (it does not answer, its SQL or IO thread is stopped, it
//! has no lag yet) holds writers back, as does a primary whose beats fail or a file in
//! `[throttle] force_dir`.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::live::{ClusterDoc, ReplicaDoc, State};
use crate::config::{ThrottleConfig, ThrottleReplicas};

/// The verdict for one cluster and app.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThrottleDoc {
    pub cluster: String,
    /// The app asked for; null for the default threshold.
    pub app: Option<String>,
    /// Whether writers should wait (HTTP 429) or may go on (200).
    pub throttled: bool,
    /// Why, in one word: `ok`, `lagging`, `lag_unknown`, `starting`, `unreachable`,
    /// `sql_stopped`, `io_stopped`, `primary_down`, `forced`, `no_replica`.
    pub reason: &'static str,
    /// Why, in words.
    pub detail: String,
    /// The deciding replica: the one that holds writers back, or the most lagging one.
    pub replica: Option<String>,
    /// Its lag's upper bound, ms; null when unknown.
    pub lag_ms: Option<f64>,
    pub threshold_ms: f64,
}

/// What one replica says about writing more.
struct Say {
    replica: String,
    /// Its lag's upper bound, ms, when known.
    lag_ms: Option<f64>,
    /// Why it holds writers back, if it does.
    holds: Option<(&'static str, String)>,
}

/// The threshold for `app` (`None`: the default), or the names of the apps that exist.
pub fn threshold(rules: &ThrottleConfig, app: Option<&str>) -> Result<Duration, String> {
    match app {
        None => Ok(rules.max_lag),
        Some(a) => rules.apps.get(a).copied().ok_or_else(|| {
            let known: Vec<&str> = rules.apps.keys().map(String::as_str).collect();
            if known.is_empty() {
                format!("no app named {a:?}: [throttle] apps names none")
            } else {
                format!(
                    "no app named {a:?}: [throttle] apps has {}",
                    known.join(", ")
                )
            }
        }),
    }
}

/// Why a file in `force_dir` holds `cluster` (or `app`) back, if one does: a file
/// `cluster.<cluster>` or `app.<app>`.
pub fn forced(force_dir: Option<&Path>, cluster: &str, app: Option<&str>) -> Option<String> {
    let dir = force_dir?;
    let by_cluster = dir.join(format!("cluster.{cluster}"));
    if by_cluster.exists() {
        return Some(format!("forced by {}", by_cluster.display()));
    }
    let by_app = dir.join(format!("app.{}", app?));
    by_app
        .exists()
        .then(|| format!("forced by {}", by_app.display()))
}

/// The verdict for `cluster` under `rules` at threshold `max_lag`, for `app`; `forced`
/// is [`forced`]'s answer. A cluster whose beats fail now has its primary down.
pub fn judge(
    cluster: &ClusterDoc,
    rules: &ThrottleConfig,
    (app, max_lag): (Option<&str>, Duration),
    forced: Option<String>,
) -> ThrottleDoc {
    let threshold_ms = max_lag.as_secs_f64() * 1e3;
    let says: Vec<Say> = cluster
        .replicas
        .iter()
        .filter(|r| counts(r, &rules.replicas))
        .filter_map(|r| say(r, threshold_ms, rules.unreachable_throttles))
        .collect();
    // The most lagging replica (unknown lag ranks first), among those that hold
    // writers back if any do.
    let rank = |s: &&Say| s.lag_ms.map_or(f64::INFINITY, |l| l);
    let holding = says
        .iter()
        .filter(|s| s.holds.is_some())
        .max_by(|a, b| rank(a).total_cmp(&rank(b)));
    let worst = says
        .iter()
        .filter(|s| s.lag_ms.is_some())
        .max_by(|a, b| rank(a).total_cmp(&rank(b)));
    let decider = holding.or(worst);
    let (throttled, reason, detail) = if let Some(why) = forced {
        (true, "forced", why)
    } else if cluster.beats_failing {
        (
            true,
            "primary_down",
            format!("the primary of {} takes no beats", cluster.cluster),
        )
    } else if let Some((reason, detail)) = holding.and_then(|s| s.holds.clone()) {
        (true, reason, detail)
    } else if says.is_empty() {
        (
            false,
            "no_replica",
            format!(
                "no replica of {} counts ([throttle] replicas)",
                cluster.cluster
            ),
        )
    } else {
        let detail = match decider {
            Some(Say {
                replica,
                lag_ms: Some(l),
                ..
            }) => format!(
                "every replica within {:.3} s; the most behind, {replica}, at most {:.3} s",
                threshold_ms / 1e3,
                l / 1e3
            ),
            _ => format!("every replica within {:.3} s", threshold_ms / 1e3),
        };
        (false, "ok", detail)
    };
    ThrottleDoc {
        cluster: cluster.cluster.clone(),
        app: app.map(str::to_string),
        throttled,
        reason,
        detail,
        replica: decider.map(|s| s.replica.clone()),
        lag_ms: decider.and_then(|s| s.lag_ms),
        threshold_ms,
    }
}

/// Whether replica `r` counts under `which`. The primary of a `nodes` cluster and a
/// replica on a split's other side never do.
fn counts(r: &ReplicaDoc, which: &ThrottleReplicas) -> bool {
    if matches!(r.reason.as_str(), "primary" | "split") {
        return false;
    }
    match which {
        ThrottleReplicas::Pool => r.state != State::Maintenance,
        ThrottleReplicas::All => true,
        ThrottleReplicas::Named(names) => names.contains(&r.replica),
    }
}

/// What replica `r` says at `threshold_ms`; `None` when it says nothing (unreachable
/// and `[throttle] unreachable = "ignore"`).
fn say(r: &ReplicaDoc, threshold_ms: f64, unreachable_throttles: bool) -> Option<Say> {
    let name = &r.replica;
    let hold = |reason: &'static str, detail: String| Some((reason, detail));
    let holds = match r.reason.as_str() {
        "unreachable" | "stale" if !unreachable_throttles => return None,
        "unreachable" | "stale" => hold("unreachable", format!("{name}: {}", r.detail)),
        "starting" => hold("starting", format!("{name}: no lag measured yet")),
        "sql_stopped" | "replay_paused" => hold("sql_stopped", format!("{name}: {}", r.detail)),
        "io_stopped" | "wal_receiver_stopped" => {
            hold("io_stopped", format!("{name}: {}", r.detail))
        }
        _ => match (r.lag.lag_hi_ms, r.lag.lag_lo_ms) {
            (Some(hi), _) if hi > threshold_ms => hold(
                "lagging",
                format!(
                    "{name} is up to {:.3} s behind, over {:.3} s",
                    hi / 1e3,
                    threshold_ms / 1e3
                ),
            ),
            (Some(_), _) => None,
            (None, Some(lo)) => hold(
                "lag_unknown",
                format!(
                    "{name} is at least {:.3} s behind; how far more is unknown",
                    lo / 1e3
                ),
            ),
            (None, None) => hold("starting", format!("{name}: no lag measured yet")),
        },
    };
    Some(Say {
        replica: name.clone(),
        lag_ms: r.lag.lag_hi_ms,
        holds,
    })
}

/// freno's answer shape (`/check/<app>/mysql/<cluster>`): tools written for freno
/// (gh-ost's `--throttle-http` among them) read its status, some its body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FrenoDoc {
    pub status_code: u16,
    /// The deciding lag, s.
    pub value: f64,
    /// The threshold, s.
    pub threshold: f64,
    pub message: String,
}

impl ThrottleDoc {
    /// The HTTP status: 200 to go on, 429 to wait.
    pub fn status(&self) -> u16 {
        if self.throttled { 429 } else { 200 }
    }

    pub fn freno(&self) -> FrenoDoc {
        FrenoDoc {
            status_code: self.status(),
            value: self.lag_ms.unwrap_or(0.0) / 1e3,
            threshold: self.threshold_ms / 1e3,
            message: if self.throttled {
                format!("{}: {}", self.reason, self.detail)
            } else {
                String::new()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::live::PrimaryDoc;
    use crate::output::metrics::tests::doc;

    fn cluster(replicas: Vec<ReplicaDoc>) -> ClusterDoc {
        ClusterDoc {
            cluster: "lab".into(),
            primary: PrimaryDoc {
                name: "p".into(),
                address: "h1:3306".into(),
                tls: None,
            },
            beats_ok: 1,
            beats_failed: 0,
            foreign_beats: 0,
            last_foreign_seq: None,
            second_writer: false,
            beats_failing: false,
            replicas,
        }
    }

    fn rules() -> ThrottleConfig {
        let mut r = ThrottleConfig::default();
        r.apps.insert("osc".into(), Duration::from_secs(2));
        r
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_upper_bound_over_the_threshold_holds_writers_back() {
        let mut r1 = doc("r1", Some(300.0), None);
        r1.lag.lag_hi_ms = Some(1_400.0);
        let c = cluster(vec![r1, doc("r2", Some(200.0), None)]);
        let t = judge(&c, &rules(), (None, S), None);
        assert!(t.throttled);
        assert_eq!((t.reason, t.replica.as_deref()), ("lagging", Some("r1")));
        assert_eq!(t.lag_ms, Some(1_400.0));
        assert_eq!(t.status(), 429);
        // The app's own threshold (2 s) lets it go on; the deciding replica is the
        // most behind.
        let t = judge(&c, &rules(), (Some("osc"), Duration::from_secs(2)), None);
        assert!(!t.throttled, "{t:?}");
        assert_eq!((t.reason, t.replica.as_deref()), ("ok", Some("r1")));
        let f = t.freno();
        assert_eq!((f.status_code, f.value, f.threshold), (200, 1.4, 2.0));
        assert_eq!(threshold(&rules(), Some("osc")), Ok(Duration::from_secs(2)));
        assert!(
            threshold(&rules(), Some("nope"))
                .unwrap_err()
                .contains("osc")
        );
    }

    #[test]
    fn a_replica_whose_lag_cannot_be_known_holds_writers_back_unless_told_not_to() {
        let mut r2 = doc("r2", None, None);
        r2.reason = "unreachable".into();
        r2.detail = "connection refused".into();
        let c = cluster(vec![doc("r1", Some(1.0), None), r2.clone()]);
        let t = judge(&c, &rules(), (None, S), None);
        assert_eq!((t.throttled, t.reason), (true, "unreachable"));
        let mut ignore = rules();
        ignore.unreachable_throttles = false;
        assert!(!judge(&c, &ignore, (None, S), None).throttled);
        r2.reason = "sql_stopped".into();
        let c = cluster(vec![doc("r1", Some(1.0), None), r2.clone()]);
        assert_eq!(judge(&c, &rules(), (None, S), None).reason, "sql_stopped");
        // At least 0.2 s behind, how much more unknown.
        let mut floor = doc("r3", None, None);
        floor.lag.lag_lo_ms = Some(200.0);
        let c = cluster(vec![floor]);
        assert_eq!(judge(&c, &rules(), (None, S), None).reason, "lag_unknown");
    }

    #[test]
    fn which_replicas_count_and_what_overrides_them() {
        let mut delayed = doc("delayed", Some(3_600_000.0), None);
        delayed.state = State::Maintenance;
        delayed.reason = "maintenance".into();
        let c = cluster(vec![doc("r1", Some(5.0), None), delayed]);
        // The read pool leaves the one in maintenance out; "all" counts it.
        assert!(!judge(&c, &rules(), (None, S), None).throttled);
        let mut all = rules();
        all.replicas = ThrottleReplicas::All;
        assert!(judge(&c, &all, (None, S), None).throttled);
        let mut named = rules();
        named.replicas = ThrottleReplicas::Named(vec!["nobody".into()]);
        let t = judge(&c, &named, (None, S), None);
        assert_eq!((t.throttled, t.reason), (false, "no_replica"));
        // A primary down and a force file win over healthy replicas.
        assert_eq!(
            judge(
                &ClusterDoc {
                    beats_failing: true,
                    ..c.clone()
                },
                &rules(),
                (None, S),
                None
            )
            .reason,
            "primary_down"
        );
        let t = judge(&c, &rules(), (None, S), Some("forced by f".into()));
        assert_eq!((t.throttled, t.reason), (true, "forced"));
    }

    #[test]
    fn a_file_forces_a_cluster_or_an_app() {
        let dir = std::env::temp_dir().join(format!("lagtrace-force-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(forced(Some(&dir), "lab", Some("osc")), None);
        std::fs::write(dir.join("app.osc"), "").unwrap();
        assert!(
            forced(Some(&dir), "lab", Some("osc"))
                .unwrap()
                .contains("app.osc")
        );
        assert_eq!(forced(Some(&dir), "lab", None), None);
        std::fs::write(dir.join("cluster.lab"), "").unwrap();
        assert!(
            forced(Some(&dir), "lab", None)
                .unwrap()
                .contains("cluster.lab")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
