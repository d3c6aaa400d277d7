//! Step 5 of the data flow: what lagtrace shows and sends. Live outputs of `record`
//! (`console`, `statsd`) and the offline `export` writers (`export`).

pub mod console;
pub mod export;
pub mod live;
pub mod nagios;
pub mod plot;
pub mod report;
pub mod statsd;
