//! Step 1 of the data flow: talking to the servers. Connections and their failures
//! (`conn`), and the heartbeat schema on primaries and replicas (`schema`).

pub mod conn;
pub mod schema;
