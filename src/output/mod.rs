//! Step 5 of the data flow: what lagtrace shows and sends. Live outputs of `record`
//! (`console`, `statsd`, and `live`, the in-memory picture that `http`, `agent` and
//! `metrics` answer from), `check`'s Nagios lines (`nagios`), and the offline reports,
//! charts and `export` writers.

pub mod agent;
pub mod console;
pub mod export;
pub mod http;
pub mod live;
pub mod metrics;
pub mod nagios;
pub mod plot;
pub mod report;
pub mod statsd;
pub mod throttle;
pub mod triggers;
