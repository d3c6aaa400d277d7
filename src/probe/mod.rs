//! Step 1 of the data flow: talking to the servers. Connections and their failures
//! (`conn`), the heartbeat schema (`schema`, for `init`), and the three probe tasks of
//! `record`: the beat writer per cluster (`beat`), the reader per replica (`reader`) and
//! the status poller per replica (`status`). Probe tasks only produce samples. Before
//! them, `topology` finds the primary and replicas of a cluster given as `nodes`.
//! `pg` says the same things to PostgreSQL (`kind = "postgres"`); `session` is a probe's
//! connection of either kind; `fine_sleep` times reads finer than tokio's millisecond.

pub mod beat;
pub mod binlog;
pub mod check;
pub mod conn;
pub mod fine_sleep;
pub mod follow;
pub mod pauses;
pub mod pg;
pub mod reader;
pub mod schema;
pub mod session;
pub mod stamped;
pub mod status;
pub mod tls;
pub mod topology;

/// The async runtime probes and listeners run on: one thread (the work is waiting on
/// sockets, and one thread avoids cross-thread wake-ups), with timers and I/O.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
