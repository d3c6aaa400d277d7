//! Log lines through the real binary: `--log-format json` gives one JSON object per
//! line for journald and log shippers, the text format plain key=value lines, and
//! neither carries the password.

mod common;

use common::{TempDir, lagtrace, texts};

/// A cluster whose servers refuse connections (nothing listens on these loopback
/// ports), so that probing fails: the first failure of each probe logs at warn, the
/// repeats at debug.
const CONFIG: &str = "[connection]\npassword_env = \"LAGTRACE_IT_PASSWORD\"\n\
    [[cluster]]\nname = \"x\"\nprimary = \"127.0.0.1:13399\"\nreplicas = { y = \"127.0.0.1:13398\" }\n";

const PASSWORD: &str = "hunter2-log-secret";

fn record_logs(dir: &TempDir, format: &str) -> String {
    let config = dir.write("lagtrace.toml", CONFIG);
    let out = lagtrace()
        .args([
            "-vv",
            "--log-format",
            format,
            "record",
            "--duration",
            "1s",
            "-c",
        ])
        .arg(&config)
        .arg("--store")
        .arg(dir.path().join(format!("{format}.redb")))
        .env("LAGTRACE_IT_PASSWORD", PASSWORD)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    stderr
}

#[test]
fn json_logs_are_one_object_per_line_with_the_event_fields() {
    let dir = TempDir::new("logs-json");
    let stderr = record_logs(&dir, "json");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let failed = |probe: &str| -> Vec<&serde_json::Value> {
        events.iter().filter(|e| e["probe"] == probe).collect()
    };
    let beats = failed("beat");
    assert!(beats.len() > 1, "one beat failure in 1 s: {stderr}");
    assert_eq!(beats[0]["level"], "WARN");
    assert_eq!(
        beats[0]["message"],
        "beat failed (repeats at debug level until it recovers)"
    );
    assert_eq!(beats[0]["cluster"], "x");
    assert_eq!(beats[0]["node"], "primary");
    assert_eq!(beats[0]["error"], "connection refused");
    assert_eq!(beats[0]["target"], "lagtrace::probe::conn");
    assert!(beats[0]["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(
        beats[1..]
            .iter()
            .all(|e| e["level"] == "DEBUG" && e["message"] == "beat failed"),
        "{beats:?}"
    );
    // The first status poll may come after the 1 s run; the first read cannot.
    for probe in ["read", "status"] {
        if let Some(first) = failed(probe).first() {
            assert_eq!(
                (&first["level"], &first["node"]),
                (&"WARN".into(), &"y".into()),
                "{first}"
            );
        } else {
            assert_eq!(probe, "status", "no read failure logged: {stderr}");
        }
    }
    // The console's summary lines are not logs; every log line is JSON.
    let others: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with('{') && !l.starts_with("lagtrace: ") && !l.contains(" x/y "))
        .collect();
    assert!(others.is_empty(), "{others:?}");
}

#[test]
fn text_logs_off_a_terminal_are_plain_key_value_lines() {
    let dir = TempDir::new("logs-text");
    let stderr = record_logs(&dir, "text");
    let line = stderr
        .lines()
        .find(|l| l.contains("beat failed"))
        .unwrap_or_else(|| panic!("no beat failed line in {stderr}"));
    assert!(
        !line.contains('\u{1b}'),
        "no colors off a terminal: {line:?}"
    );
    assert!(
        line.contains("probe=beat cluster=x node=primary error=connection refused"),
        "{line}"
    );
}
