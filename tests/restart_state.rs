//! What changed while no recorder ran: a recorder stops with both replicas in the pool,
//! replica1's SQL thread is stopped, and the next recorder on the same store fires
//! `replica_down` with `while_stopped` before its `recorder_up`. The events and the
//! trigger runs are in the store (`export --events`, analyze), and the status file holds
//! `/status`'s document.

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let node = e["node"]["name"].as_str().unwrap_or("");
            let stopped = if e["while_stopped"] == true { "*" } else { "" };
            format!("{}:{node}{stopped}", e["event"].as_str().unwrap())
        })
        .collect()
}

#[test]
fn a_replica_stopped_between_two_recorders_is_replica_down_while_stopped() {
    let _lab = take_lab();
    let resume = Restore(vec!["resume"], &[]);
    let dir = TempDir::new("restart-state");
    let out = dir.path().join("events.jsonl");
    let status_file = dir.path().join("status.json");
    let store = dir.path().join("s.redb");
    let tee = format!("[\"/usr/bin/tee\", \"-a\", \"{}\"]", out.display());
    let (config, port) = http_lab_config(
        &dir,
        "it_restart",
        PRIMARY,
        &REPLICAS,
        &format!(
            "interval = \"20ms\"\nstatus_every = \"200ms\"\nstore = \"{}\"\nstatus_file = \"{}\"\n\n[triggers]\n\
             recorder_up = {tee}\nprimary_down = {tee}\nprimary_up = {tee}\nfailover = {tee}\n\
             replica_down = {tee}\nreplica_up = {tee}\nheartbeat = [\"/no/such/trigger\"]",
            store.display(),
            status_file.display()
        ),
    );

    let first = start_in_pool(&config, port);
    sleep(Duration::from_secs(3));
    let (code, log) = first.stop();
    assert_eq!(code, Some(0), "{log}");
    let status: Value = serde_json::from_slice(&std::fs::read(&status_file).unwrap()).unwrap();
    assert_eq!(status["schema"], 1);
    assert_eq!(status["clusters"][0]["cluster"], "it_restart");
    let states: Vec<&Value> = status["clusters"][0]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["state"])
        .collect();
    assert_eq!(states, ["in", "in"], "{status}");
    let before = json_documents(&out);
    assert_eq!(names(&before), ["recorder_up:primary"], "the first run");

    lab(&["stall"], &[]);
    let second = Recorder::start(&config);
    // r1 is out from the start; r2 comes in. 3 s more: recorder_up, then a heartbeat.
    wait_in_pool(port, &["r2"]);
    sleep(Duration::from_secs(3));
    let (code, log) = second.stop();
    assert_eq!(code, Some(0), "{log}");
    drop(resume);

    let all = json_documents(&out);
    let got = names(&all[before.len()..]);
    eprintln!("second run: {got:?}");
    assert_eq!(got, ["replica_down:r1*", "recorder_up:primary"]);
    let down = &all[before.len()];
    assert_eq!(down["check"]["reason"], "sql_stopped", "{down}");
    // The status file at the stop: r1 out, stopped SQL thread.
    let status: Value = serde_json::from_slice(&std::fs::read(&status_file).unwrap()).unwrap();
    let r1 = &status["clusters"][0]["replicas"][0];
    assert_eq!(
        (&r1["replica"], &r1["state"]),
        (&Value::from("r1"), &Value::from("out"))
    );
    assert!(!dir.path().join("status.json.tmp").exists());

    // The store holds the same events and every trigger run, in time order.
    let stored = export_json(&store, &["--events"]);
    let stored_names = names(&stored);
    let changes: Vec<&String> = stored_names
        .iter()
        .filter(|n| !n.starts_with("trigger_run"))
        .collect();
    assert_eq!(
        changes,
        [
            "recorder_up:primary",
            "replica_down:r1*",
            "recorder_up:primary"
        ]
    );
    let runs: Vec<&Value> = stored
        .iter()
        .filter(|e| e["event"] == "trigger_run")
        .collect();
    // Three tee runs that worked, and each recorder's first heartbeat, whose program
    // does not exist: stored as runs that could not start.
    let (good, bad): (Vec<&Value>, Vec<&Value>) =
        runs.iter().partition(|r| r["program"] == "/usr/bin/tee");
    assert_eq!((good.len(), bad.len()), (3, 2), "{stored:?}");
    for r in &good {
        assert_eq!(r["code"], 0, "{r}");
    }
    for r in &bad {
        assert_eq!(
            (&r["trigger"], &r["code"]),
            (&Value::from("heartbeat"), &Value::Null)
        );
        assert!(
            r["stderr"].as_str().unwrap().starts_with("could not start"),
            "{r}"
        );
    }
    assert!(log.contains("trigger could not start"), "{log}");
    let times: Vec<i64> = stored
        .iter()
        .map(|e| utc_us(e["time_utc"].as_str().unwrap()))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    let csv = lagtrace()
        .args(["export", "--events", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let (text, err) = texts(&csv);
    assert!(csv.status.success(), "{err}");
    assert!(
        text.starts_with("time_utc,cluster,event,node,while_stopped,document\n"),
        "{text}"
    );
    assert!(text.contains(",it_restart,replica_down,r1,true,"), "{text}");

    let report = lagtrace()
        .args(["analyze", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let (text, err) = texts(&report);
    assert!(report.status.success(), "{err}");
    assert!(text.contains("3 events"), "{text}");
    assert!(
        text.contains("replica_down  r1: ") && text.contains("(while no recorder ran)"),
        "{text}"
    );
    assert!(
        text.contains("5 trigger runs, 2 failed (first: heartbeat at "),
        "{text}"
    );
    let doc = analyze_json(&store);
    assert_eq!(doc["clusters"][0]["events"].as_array().unwrap().len(), 8);
}
