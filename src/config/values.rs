//! Single values of the config or the command line (names, durations, probe modes),
//! parsed with an error that names the value.

use std::time::Duration;

use super::{MAX_NAME_LEN, ProbeMode};

/// A value of the config or the command line that is not one, naming the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("name is empty")]
    EmptyName,
    #[error("name {0:?} is longer than {MAX_NAME_LEN} characters")]
    LongName(String),
    #[error("name {0:?} may only use letters, digits, '_' and '-'")]
    NameChars(String),
    #[error("bad duration {text:?}: {why} (examples: 10ms, 1.5s, 5m)")]
    Duration {
        text: String,
        why: humantime::DurationError,
    },
    #[error("unknown probe {0:?}; use poll, auto or binlog")]
    Probe(String),
}

/// Names of clusters and replicas end up in URLs and metric names: keep them plain.
pub(super) fn check_name(name: &str) -> Result<(), ValueError> {
    if name.is_empty() {
        return Err(ValueError::EmptyName);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ValueError::LongName(name.to_string()));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ValueError::NameChars(name.to_string()));
    }
    Ok(())
}

/// Parses a humantime duration (`10ms`, `1.5s`, `5m`).
pub fn parse_duration(text: &str) -> Result<Duration, ValueError> {
    humantime::parse_duration(text.trim()).map_err(|why| ValueError::Duration {
        text: text.to_string(),
        why,
    })
}

/// Parses a probe mode (`poll`, `auto`, `binlog`).
pub fn parse_probe(text: &str) -> Result<ProbeMode, ValueError> {
    ProbeMode::parse(text.trim()).ok_or_else(|| ValueError::Probe(text.to_string()))
}
