//! lagtrace: a flight recorder for MySQL/MariaDB replication lag.
//!
//! The data flows one way:
//!
//! ```text
//!   probe  ->  samples  ->  store  ->  analysis  ->  outputs
//! ```
//!
//! - [`config`]: the TOML configuration, validated (pure, no I/O besides reading it).
//! - [`probe`]: connections to servers, the heartbeat schema (`init`).
//! - [`cmd`]: one module per subcommand; each loads, calls the steps above, prints.
//!
//! `main.rs` only parses the command line and maps errors to exit codes.

pub mod analysis;
pub mod clock;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod output;
pub mod probe;
pub mod recorder;
pub mod samples;
pub mod store;
pub mod xorshift;
