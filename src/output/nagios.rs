//! `check` output in the Nagios plugin format: one line per replica,
//! `STATE - text | lag=0.003s;1;5;0`, and the exit code of the worst state.

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
