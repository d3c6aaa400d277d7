//! `check` output in the Nagios plugin format: one line per replica,
//! `STATE - text | lag=0.003s;1;5;0`, and the exit code of the worst state; and the
//! state of a replica from what the check round found.

use std::time::Duration;

use crate::analysis::lag::Lag;
use crate::clock::duration_us;
use crate::samples::{ChannelStatus, IoState, StatusSample};

/// A Nagios service state; the value is the plugin's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }

    /// How bad it is, as Nagios and Icinga rank states for a summary:
    /// OK < WARNING < UNKNOWN < CRITICAL.
    pub fn severity(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Unknown => 2,
            State::Critical => 3,
        }
    }

    pub fn exit_code(self) -> u8 {
        self as u8
    }
}

/// What `check` found about one replica.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub state: State,
    /// `cluster/replica`.
    pub name: String,
    pub text: String,
    /// The lag's point estimate, s; `None` when unknown.
    pub lag_s: Option<f64>,
    pub warn_s: f64,
    pub crit_s: f64,
}

/// A number of seconds as perfdata wants it: plain decimal, no trailing zeros.
fn seconds(s: f64) -> String {
    let text = format!("{s:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// `STATE - name: text | lag=VALUEs;WARN;CRIT;0` (`U` when the lag is unknown).
pub fn format_line(line: &Line) -> String {
    let value = line
        .lag_s
        .map_or_else(|| "U".to_string(), |s| format!("{}s", seconds(s)));
    format!(
        "{} - {}: {} | lag={value};{};{};0",
        line.state.label(),
        line.name,
        line.text,
        seconds(line.warn_s),
        seconds(line.crit_s)
    )
}

/// The lines worst first (stable: config order among equals), since monitoring shows
/// the first line as the summary, and the worst state.
pub fn report(mut lines: Vec<Line>) -> (String, State) {
    lines.sort_by_key(|l| std::cmp::Reverse(l.state.severity()));
    let worst = lines.first().map_or(State::Unknown, |l| l.state);
    let mut text = String::new();
    for l in &lines {
        text.push_str(&format_line(l));
        text.push('\n');
    }
    (text, worst)
}

/// The state and line of one replica, from why the round could not measure (`error`),
/// its replication channels and the lag measured. A state holds when the lag is above
/// its threshold; "at least" lag is judged by its lower bound.
pub fn classify(
    name: String,
    error: Option<&str>,
    channels: &[ChannelStatus],
    lag: Option<Lag>,
    warn: Duration,
    crit: Duration,
) -> Line {
    let (warn_us, crit_us) = (duration_us(warn), duration_us(crit));
    let threads = threads_note(channels);
    let (state, text, lag_s) = match (error, lag) {
        (Some(e), _) => (State::Unknown, e.to_string(), None),
        (None, _) if channels.is_empty() => (
            State::Unknown,
            "not replicating: no replication channel is configured".to_string(),
            None,
        ),
        (None, Some(bounded @ Lag::Bounded { lo_us, hi_us })) => {
            let lag = bounded.judged_us().unwrap_or_default();
            let state = if lag > crit_us {
                State::Critical
            } else if lag > warn_us {
                State::Warning
            } else {
                State::Ok
            };
            let text = format!(
                "lag {} s (between {} and {} s){threads}",
                s3(lag),
                s3(lo_us),
                s3(hi_us)
            );
            (state, text, Some(lag as f64 / 1e6))
        }
        (None, Some(Lag::AtLeast { lo_us })) => {
            let (state, what) = if lo_us > crit_us {
                (State::Critical, "lag")
            } else if lo_us > warn_us {
                (State::Warning, "lag")
            } else if threads.is_empty() {
                (State::Unknown, "beat not shown yet, lag")
            } else {
                (State::Unknown, "not replicating, lag")
            };
            let text = format!("{what} above {} s{threads}", s3(lo_us));
            (state, text, Some(lo_us as f64 / 1e6))
        }
        (None, _) => (State::Unknown, format!("lag unknown{threads}"), None),
    };
    Line {
        state,
        name,
        text,
        lag_s,
        warn_s: warn.as_secs_f64(),
        crit_s: crit.as_secs_f64(),
    }
}

/// Microseconds as seconds with three decimals.
fn s3(us: i64) -> String {
    format!("{:.3}", us as f64 / 1e6)
}

/// "; IO thread Connecting, SQL thread stopped (error 1062)" or "" when both run.
fn threads_note(channels: &[ChannelStatus]) -> String {
    let main = StatusSample {
        postgres: None,
        t_us: 0,
        duration_us: 0,
        outcome: crate::samples::Outcome::Ok,
        reason: None,
        channels: channels.to_vec(),
    };
    let Some(c) = main.main_channel() else {
        return String::new();
    };
    let mut notes = Vec::new();
    let wal = c.is_wal_stream();
    match (c.io, wal) {
        (IoState::Yes, _) => {}
        (IoState::No, false) => notes.push(errno("IO thread stopped", c.last_io_errno)),
        (IoState::Connecting, false) => notes.push(errno("IO thread connecting", c.last_io_errno)),
        (IoState::No, true) => notes.push("WAL receiver not streaming".to_string()),
        (IoState::Connecting, true) => notes.push("WAL receiver connecting".to_string()),
    }
    if !c.sql_running {
        notes.push(if wal {
            "replay paused".to_string()
        } else {
            errno("SQL thread stopped", c.last_sql_errno)
        });
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!("; {}", notes.join(", "))
    }
}

fn errno(what: &str, errno: u32) -> String {
    if errno == 0 {
        what.to_string()
    } else {
        format!("{what} (error {errno})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(state: State, name: &str, lag_s: Option<f64>) -> Line {
        Line {
            state,
            name: name.into(),
            text: "lag 0.003 s".into(),
            lag_s,
            warn_s: 1.0,
            crit_s: 5.0,
        }
    }

    #[test]
    fn perfdata_as_the_issue_shows_it() {
        assert_eq!(
            format_line(&line(State::Ok, "lab/r1", Some(0.003))),
            "OK - lab/r1: lag 0.003 s | lag=0.003s;1;5;0"
        );
        assert_eq!(
            format_line(&line(State::Unknown, "lab/r2", None)),
            "UNKNOWN - lab/r2: lag 0.003 s | lag=U;1;5;0"
        );
        assert_eq!(seconds(0.0), "0");
        assert_eq!(seconds(1.5), "1.5");
        assert_eq!(seconds(0.0000004), "0");
    }

    #[test]
    fn the_worst_state_leads_and_sets_the_exit_code() {
        let (text, worst) = report(vec![
            line(State::Ok, "a", Some(0.0)),
            line(State::Warning, "b", Some(2.0)),
            line(State::Critical, "c", Some(9.0)),
            line(State::Unknown, "d", None),
        ]);
        assert_eq!(worst, State::Critical);
        assert_eq!(worst.exit_code(), 2);
        let names: Vec<&str> = text.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
        assert_eq!(names, ["c:", "d:", "b:", "a:"]);
        let (_, worst) = report(vec![
            line(State::Warning, "b", Some(2.0)),
            line(State::Unknown, "d", None),
        ]);
        assert_eq!(worst.exit_code(), 3);
    }
}

#[cfg(test)]
mod classify_tests {
    use super::*;

    const S: i64 = 1_000_000;

    /// What a round found: an error, the replica's channels, the lag.
    struct Found {
        error: Option<String>,
        channels: Vec<ChannelStatus>,
        lag: Option<Lag>,
    }

    fn found(lag: Lag, channel: Option<ChannelStatus>) -> Found {
        Found {
            error: None,
            channels: channel.into_iter().collect(),
            lag: Some(lag),
        }
    }

    fn state(f: &Found) -> (State, String) {
        let l = classify(
            "lab/r1".into(),
            f.error.as_deref(),
            &f.channels,
            f.lag,
            Duration::from_secs(1),
            Duration::from_secs(5),
        );
        (l.state, format_line(&l))
    }

    #[test]
    fn states_follow_the_lag_and_the_threads() {
        let running = Some(ChannelStatus::running());
        let seen = |lo_us, hi_us| Lag::Bounded { lo_us, hi_us };
        let (s, line) = state(&found(seen(0, 6_000), running.clone()));
        assert_eq!(s, State::Ok);
        assert_eq!(
            line,
            "OK - lab/r1: lag 0.003 s (between 0.000 and 0.006 s) | lag=0.003s;1;5;0"
        );
        assert_eq!(
            state(&found(seen(2 * S, 2 * S + 10), running.clone())).0,
            State::Warning
        );
        assert_eq!(
            state(&found(seen(6 * S, 6 * S), running.clone())).0,
            State::Critical
        );

        let stopped = Some(ChannelStatus {
            sql_running: false,
            last_sql_errno: 1062,
            ..ChannelStatus::running()
        });
        let (s, line) = state(&found(Lag::AtLeast { lo_us: 5 * S + 3 }, stopped.clone()));
        assert_eq!(s, State::Critical, "{line}");
        assert!(
            line.contains("lag above 5.000 s; SQL thread stopped (error 1062)"),
            "{line}"
        );
        let (s, line) = state(&found(Lag::AtLeast { lo_us: S / 2 }, stopped));
        assert_eq!(s, State::Unknown, "{line}");
        assert!(line.contains("not replicating"), "{line}");
        assert_eq!(
            state(&found(Lag::AtLeast { lo_us: 2 * S }, running.clone())).0,
            State::Warning
        );
        // Above the threshold, not at it: exactly --crit is WARNING.
        assert_eq!(
            state(&found(Lag::AtLeast { lo_us: 5 * S }, running)).0,
            State::Warning
        );

        let (s, line) = state(&found(seen(0, 10), None));
        assert_eq!(s, State::Unknown);
        assert!(line.contains("no replication channel"), "{line}");
        let unreachable = Found {
            error: Some("replica 127.0.0.1:13307 unreachable: connection refused".into()),
            channels: vec![],
            lag: None,
        };
        let (s, line) = state(&unreachable);
        assert_eq!(s, State::Unknown);
        assert!(line.ends_with("| lag=U;1;5;0"), "{line}");
    }
}
