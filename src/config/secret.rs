//! Passwords: never in the file, never in argv. [`resolve_password`] fetches one from
//! the source the config names (an environment variable, a file, `~/.my.cnf`) when a
//! command needs it, as a [`Secret`] that does not print.

use std::fmt;
use std::path::{Path, PathBuf};

use super::validate::io_reason;
use super::{ConnectionConfig, PasswordSource};

/// A password in memory. Its `Debug` never shows it, so it cannot leak into logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why no password could be had; names the config key and the source, never a
/// password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("connection.password_env: environment variable {0} is empty")]
    EnvEmpty(String),
    #[error("connection.password_env: environment variable {0} is not set")]
    EnvUnset(String),
    #[error("connection.password_file: cannot read {}: {reason}", .path.display())]
    FileUnreadable { path: PathBuf, reason: String },
    #[error("connection.password_file: {} is empty", .0.display())]
    FileEmpty(PathBuf),
    #[error(
        "connection: no password source: set password_env or password_file, \
         or put password= under [client] in ~/.my.cnf"
    )]
    NoSource,
    #[error(
        "connection: no password source: {} has no password= under [client] \
         (or [mysql], [client-mariadb]); or set password_env or password_file",
        .0.display()
    )]
    NotInMyCnf(PathBuf),
    #[error("connection: cannot read {}: {reason}", .path.display())]
    MyCnfUnreadable { path: PathBuf, reason: String },
}

/// Fetches the password from its source. `home` is the directory holding `.my.cnf`
/// (normally `$HOME`); `env` looks up environment variables (normally `std::env::var`).
/// Errors name the config key and the source, never the password.
pub fn resolve_password(
    conn: &ConnectionConfig,
    home: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Secret, PasswordError> {
    match &conn.password {
        PasswordSource::Env { var } => match env(var) {
            Some(p) if !p.is_empty() => Ok(Secret(p)),
            Some(_) => Err(PasswordError::EnvEmpty(var.clone())),
            None => Err(PasswordError::EnvUnset(var.clone())),
        },
        PasswordSource::File { path } => {
            let text =
                std::fs::read_to_string(path).map_err(|e| PasswordError::FileUnreadable {
                    path: path.clone(),
                    reason: io_reason(&e),
                })?;
            let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
            if line.is_empty() {
                return Err(PasswordError::FileEmpty(path.clone()));
            }
            Ok(Secret(line.to_string()))
        }
        PasswordSource::MyCnf => {
            let Some(home) = home else {
                return Err(PasswordError::NoSource);
            };
            let path = home.join(".my.cnf");
            match std::fs::read_to_string(&path) {
                Ok(text) => my_cnf_password(&text)
                    .map(Secret)
                    .ok_or(PasswordError::NotInMyCnf(path)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PasswordError::NoSource),
                Err(e) => Err(PasswordError::MyCnfUnreadable {
                    reason: io_reason(&e),
                    path,
                }),
            }
        }
    }
}

/// The `password` of the `[client]` (or `[mysql]`/`[mariadb-client]`) group in a my.cnf text.
fn my_cnf_password(text: &str) -> Option<String> {
    let mut in_client = false;
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(group) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_client = matches!(group.trim(), "client" | "mysql" | "client-mariadb");
            continue;
        }
        if !in_client {
            continue;
        }
        if let Some((k, v)) = line.split_once('=')
            && k.trim() == "password"
        {
            let v = v.trim();
            let unquoted = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            found = Some(unquoted.to_string());
        }
    }
    found.filter(|p| !p.is_empty())
}
