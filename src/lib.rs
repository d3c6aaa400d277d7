//! lagtrace: a flight recorder for MySQL/MariaDB and PostgreSQL replication lag.
//!
//! The data flows one way:
//!
//! ```text
//!   probe  ->  samples  ->  store  ->  analysis  ->  output
//!                  \->  recorder (cluster)  ->  output (live)
//! ```
//!
//! - [`config`]: the TOML configuration, validated (pure, no I/O besides reading it).
//! - [`clock`]: the one clock, its UTC anchor, time formats.
//! - [`samples`]: the recorded facts, and the stored event documents read back.
//! - [`probe`]: connections to servers, the heartbeat schema (`init`), the beat writer,
//!   readers, the binary log stream, status polls, topology discovery.
//! - [`store`]: the redb file: the writer thread, scans, retention, the chunk codec.
//! - [`analysis`]: pure functions of stored facts: lag, episodes, vector, capacity,
//!   the pool state machine, the report.
//! - [`cluster`]: one cluster's state machine (primary, failover, split, pool changes)
//!   and its event documents.
//! - [`recorder`]: `record`'s decisions as a pure core (samples and ticks in, effects
//!   out) and the async shell that runs the probes.
//! - [`output`]: console, statsd, the live picture and its listeners, triggers' runs,
//!   export, the analyze report, charts, Nagios lines.
//! - [`cmd`]: one module per subcommand; each loads, calls the steps above, prints.
//! - [`xorshift`]: the small generator behind poll jitter and test data.
//!
//! `main.rs` only parses the command line and maps errors to exit codes. Which module
//! decides what is in docs/design.md ("Architecture").

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
