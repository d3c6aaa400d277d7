//! One file per subcommand, each with a `run()` that loads what it needs, calls the
//! step modules (probe, store, analysis, output) and prints. `main.rs` only parses
//! arguments and maps a [`CmdError`] to an exit code.

pub mod export;
pub mod init;
pub mod record;

use std::fmt;

/// How a command failed; decides the exit code.
#[derive(Debug)]
pub enum CmdError {
    /// Bad config, arguments or files: exit 2.
    BadInput(String),
    /// Something failed while working (a server, the disk): exit 1.
    Runtime(String),
}

impl CmdError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CmdError::BadInput(_) => 2,
            CmdError::Runtime(_) => 1,
        }
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdError::BadInput(m) | CmdError::Runtime(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CmdError {}

impl From<crate::config::ConfigError> for CmdError {
    fn from(e: crate::config::ConfigError) -> Self {
        CmdError::BadInput(e.to_string())
    }
}

/// Store errors about the file itself are bad input; the rest are runtime failures.
pub fn store_error(e: crate::store::StoreError) -> CmdError {
    use crate::store::StoreError;
    match e {
        StoreError::NotAStore { .. }
        | StoreError::NewerFormat { .. }
        | StoreError::Missing { .. } => CmdError::BadInput(e.to_string()),
        other => CmdError::Runtime(other.to_string()),
    }
}

/// Loads the config and resolves the password from the real environment.
pub fn load_config(
    path: &std::path::Path,
) -> Result<(crate::config::Config, crate::config::Secret), CmdError> {
    let config = crate::config::load(path)?;
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let password = crate::config::resolve_password(&config.connection, home.as_deref(), |v| {
        std::env::var(v).ok()
    })
    .map_err(|m| CmdError::BadInput(format!("{}: {m}", path.display())))?;
    Ok((config, password))
}
