//! Step 4 of the data flow: numbers derived from the recorded facts. Pure functions on
//! plain data: no tokio, no database, no I/O.

pub mod lag;
