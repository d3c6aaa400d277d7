//! A cluster given as a flat `nodes` list, in any order: `init` and `record` find that
//! 127.0.0.1:13306 is the primary and the other two its replicas, `/status` says so, and
//! the replicas are checked under their node names. With the primary frozen when the
//! recorder starts, the replicas' common source is still taken as the primary. Every
//! node is probed, so after a failover the demoted primary is measured as a replica.

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::*;

/// The lab's servers as `nodes`, shuffled; `[http]` on a free port.
fn nodes_config(dir: &TempDir, cluster: &str, nodes: &[&str], port: u16) -> std::path::PathBuf {
    let list: Vec<String> = nodes.iter().map(|n| format!("\"{n}\"")).collect();
    dir.write(
        "lagtrace.toml",
        &format!(
            "[connection]\nuser = \"lagtrace\"\npassword_env = \"LAGTRACE_IT_PASSWORD\"\nconnect_timeout = \"2s\"\n\n\
             [[cluster]]\nname = \"{cluster}\"\nnodes = [{}]\n\n\
             [record]\ninterval = \"20ms\"\nstore = \"{}\"\n\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\nmax_lag = \"1s\"\n",
            list.join(", "),
            dir.path().join("s.redb").display()
        ),
    )
}

/// Runs `lagtrace init` (which discovers too), which must succeed; returns its output.
fn init(config: &std::path::Path) -> String {
    let (code, out) = run_init(config);
    assert_eq!(code, Some(0), "{out}");
    out
}

const R1: &str = "127-0-0-1-13307";
const R2: &str = "127-0-0-1-13308";

fn primary_of(port: u16) -> serde_json::Value {
    http(port, "GET", "/status", &[]).unwrap().json()["clusters"][0]["primary"].clone()
}

#[test]
fn nodes_in_any_order_give_the_labs_topology() {
    let _lab = take_lab();
    let dir = TempDir::new("discovery");
    let port = free_port();
    let config = nodes_config(
        &dir,
        "it_discovery",
        &[REPLICAS[1].1, PRIMARY, REPLICAS[0].1],
        port,
    );
    let out = init(&config);
    assert!(out.contains(&format!("replica it_discovery/{R1}")), "{out}");

    let recorder = Recorder::start(&config);
    wait_in_pool(port, &[R1, R2]);
    let p = primary_of(port);
    assert_eq!(
        (p["name"].as_str(), p["address"].as_str()),
        (Some("127-0-0-1-13306"), Some(PRIMARY))
    );
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

#[test]
fn a_frozen_primary_at_the_start_is_the_source_its_replicas_agree_on() {
    let _lab = take_lab();
    let dir = TempDir::new("discovery-frozen");
    let port = free_port();
    let config = nodes_config(
        &dir,
        "it_discovery_frozen",
        &[PRIMARY, REPLICAS[0].1, REPLICAS[1].1],
        port,
    );
    init(&config);
    let pid = lab_pid("primary");
    signal(pid, "STOP");
    struct Thaw(u32);
    impl Drop for Thaw {
        fn drop(&mut self) {
            signal(self.0, "CONT");
        }
    }
    let thaw = Thaw(pid);
    let recorder = Recorder::start(&config);
    // Discovery waits out the primary's connect timeout (2 s), then the recorder starts
    // its probes; the primary thaws a second later.
    let listening = wait_http(port, "/status", Duration::from_secs(10), |x| x.code == 200);
    assert!(listening.is_some(), "the recorder never answered");
    assert_eq!(primary_of(port)["address"], PRIMARY);
    sleep(Duration::from_secs(1));
    drop(thaw);
    wait_in_pool(port, &[R1, R2]);
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("the primary did not answer"), "{log}");
}

/// Every node is probed: after `make failover` the old primary is measured as the
/// replica it has become (in the pool, lag under a second), and the new one is out of
/// the replicas' pool as the primary.
#[test]
fn after_a_failover_the_demoted_primary_is_measured_as_a_replica() {
    let _lab = take_lab();
    let _restore = Restore(vec!["failback"], &[]);
    let dir = TempDir::new("discovery-failover");
    let port = free_port();
    let cluster = "it_discovery_failover";
    let config = nodes_config(
        &dir,
        cluster,
        &[REPLICAS[0].1, REPLICAS[1].1, PRIMARY],
        port,
    );
    init(&config);
    let recorder = Recorder::start(&config);
    const P: &str = "127-0-0-1-13306";
    wait_in_pool(port, &[R1, R2]);
    let primary = http(port, "GET", &format!("/check/{P}"), &[]).unwrap();
    assert_eq!(
        (primary.code, primary.json()["reason"].as_str()),
        (503, Some("primary"))
    );

    lab(&["failover"], &[]);
    let demoted = wait_http(port, &format!("/check/{P}"), Duration::from_secs(10), |x| {
        x.code == 200
    });
    assert!(
        demoted.is_some(),
        "the old primary never joined the pool: {}",
        http(port, "GET", "/status", &[]).unwrap().json()
    );
    let doc = http(port, "GET", &format!("/check/{P}"), &[])
        .unwrap()
        .json();
    assert!(doc["lag_ms"].as_f64().unwrap() < 1000.0, "{doc}");
    let new = http(port, "GET", &format!("/check/{R2}"), &[]).unwrap();
    assert_eq!(new.json()["reason"], "primary", "{}", new.json());
    assert_eq!(primary_of(port)["address"], REPLICAS[1].1);
    let (code, log) = recorder.stop();
    assert_eq!(code, Some(0), "{log}");
}
