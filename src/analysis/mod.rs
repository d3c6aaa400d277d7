//! Offline analysis: pure functions from a loaded recording to figures. No I/O, no
//! tokio, no database driver; commands load, call and print.
//!
//! - `lag`: bounds of one observation (also used live by `record`);
//! - `series`: observations to lag points, one per probe round;
//! - `stats`: percentiles and time above a threshold;
//! - `vector`: least-squares vector, per point and per stretch;
//! - `health`: the hysteresis gate and the pool state machine (shared with `replay` and
//!   the live checks);
//! - `episodes`: lag episodes, their rates and cause hints;
//! - `outages`: primary outages (runs of failed beats), a cluster fact, never lag;
//! - `capacity`: replay rate during catch-up and busy fraction;
//! - `pg`: PostgreSQL's own lag figures, summarized beside lagtrace's;
//! - `report`: everything above for one replica.

pub mod capacity;
pub mod episodes;
pub mod health;
pub mod lag;
pub mod outages;
pub mod pg;
pub mod report;
pub mod series;
pub mod stats;
pub mod vector;
pub mod window;
