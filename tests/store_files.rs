//! Bad store files through the real binary: one clear line, exit 2, file untouched.

mod common;

use common::{TempDir, lagtrace, texts};

const CONFIG: &str = "[connection]\npassword_env = \"LAGTRACE_IT_PASSWORD\"\n\
    [[cluster]]\nname = \"x\"\nprimary = \"127.0.0.1:13399\"\nreplicas = { y = \"127.0.0.1:13398\" }\n";

#[test]
fn record_refuses_a_file_that_is_not_a_store_and_leaves_it_alone() {
    let dir = TempDir::new("store-foreign");
    let config = dir.write("lagtrace.toml", CONFIG);
    let victim = dir.write("notes.redb", &"important notes\n".repeat(500));
    let before = std::fs::read(&victim).unwrap();
    let out = lagtrace()
        .args(["record", "--duration", "1s", "-c"])
        .arg(&config)
        .arg("--store")
        .arg(&victim)
        .env("LAGTRACE_IT_PASSWORD", "x")
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("notes.redb: not a lagtrace store"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), before);
}

#[test]
fn export_of_missing_or_foreign_files_is_one_line_exit_2() {
    let dir = TempDir::new("store-export");
    let out = lagtrace()
        .args(["export", "--store"])
        .arg(dir.path().join("absent.redb"))
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr
            .trim_end()
            .ends_with("absent.redb: no such store file"),
        "{stderr}"
    );

    let foreign = dir.write("x.redb", "not a store");
    let out = lagtrace()
        .args(["export", "--store"])
        .arg(&foreign)
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("not a lagtrace store"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "not a store");
}

#[test]
fn export_rejects_bad_times() {
    let dir = TempDir::new("store-args");
    let out = lagtrace()
        .args(["export", "--store", "x.redb", "--from", "last tuesday"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("--from: bad time \"last tuesday\""),
        "{stderr}"
    );
}

/// Runs lagtrace; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = lagtrace().args(args).output().unwrap();
    let (stdout, stderr) = texts(&out);
    (out.status.code(), stdout, stderr)
}

#[test]
fn offline_commands_on_a_recording_of_unreachable_hosts_and_bad_arguments() {
    let dir = TempDir::new("store-offline");
    let config = dir.write("lagtrace.toml", CONFIG);
    let store = dir.path().join("s.redb");
    let out = lagtrace()
        .args([
            "record",
            "--quiet",
            "--duration",
            "1s",
            "--interval",
            "100ms",
            "-c",
        ])
        .arg(&config)
        .arg("--store")
        .arg(&store)
        .env("LAGTRACE_IT_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", texts(&out));
    let s = store.to_str().unwrap();

    // Nothing but failures: every command answers, saying what it cannot know.
    let (code, text, err) = run(&["analyze", "--store", s]);
    assert_eq!(code, Some(0), "{err}");
    assert!(text.contains("x/y"), "{text}");
    assert!(text.contains("unreachable (refused)"), "{text}");
    assert!(text.contains("not enough data"), "{text}");
    let (code, json, _) = run(&["analyze", "--store", s, "--format", "json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["replicas"][0]["lag"].is_null());
    assert_eq!(
        v["replicas"][0]["coverage"]["gaps"][0]["kind"],
        "unreachable"
    );
    for kind in ["lag", "vector", "cdf", "overview"] {
        let svg = dir.path().join(format!("{kind}.svg"));
        let (code, _, err) = run(&[
            "plot",
            "--store",
            s,
            "--kind",
            kind,
            "--out",
            svg.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{kind}: {err}");
        roxmltree::Document::parse(&std::fs::read_to_string(&svg).unwrap()).unwrap();
    }
    let (code, text, _) = run(&["replay", "--store", s]);
    assert_eq!(code, Some(0));
    assert!(text.contains("x/y  out  unreachable (refused)"), "{text}");

    // Bad arguments: one line on stderr, exit 2.
    let png = dir.path().join("chart.png");
    let foreign = dir.write("notes.redb", "not a store\n");
    for args in [
        vec![
            "analyze",
            "--store",
            s,
            "--max-lag",
            "1s",
            "--recover-lag",
            "2s",
        ],
        vec!["analyze", "--store", s, "--replica", "nope"],
        vec!["analyze", "--store", s, "--cluster", "nope"],
        vec!["analyze", "--store", s, "--max-lag", "soon"],
        vec!["analyze", "--store", foreign.to_str().unwrap()],
        vec!["plot", "--store", s, "--out", png.to_str().unwrap()],
        vec!["plot", "--store", s, "--out", "x.svg", "--kind", "pie"],
        vec!["plot", "--store", s, "--out", "x.svg", "--window", "1ms"],
        vec!["replay", "--store", s, "--statsd", "127.0.0.1:8125"],
        vec!["replay", "--store", s, "--speed", "-1"],
        vec![
            "replay",
            "--store",
            s,
            "--speed",
            "2",
            "--statsd",
            "127.0.0.1",
        ],
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("lagtrace: "), "{args:?}: {err}");
    }
    assert!(!png.exists());
}

/// testdata/stores/v1.redb: 3 s of the lab at 10 ms, recorded by the last build that wrote
/// store format 1 (its `analyze` then said 300 probe rounds per replica, lag p50 0.46 and
/// 0.47 ms). This build reads it with the same figures and never writes to it.
#[test]
fn a_format_1_store_reads_as_before_and_is_never_appended_to() {
    let dir = TempDir::new("store-v1");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/stores/v1.redb");
    let copy = dir.path().join("v1.redb");
    std::fs::copy(&fixture, &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let out = lagtrace()
        .args(["analyze", "--format", "json", "--store"])
        .arg(&copy)
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let replicas = doc["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2);
    for r in replicas {
        assert_eq!(r["coverage"]["rounds"], 300, "{r}");
        assert_eq!(r["coverage"]["at_least_rounds"], 0, "{r}");
        let p50 = r["lag"]["percentiles"]["p50_ms"].as_f64().unwrap();
        assert!((0.4..0.5).contains(&p50), "{p50}");
    }

    let config = dir.write("lagtrace.toml", CONFIG);
    let out = lagtrace()
        .args(["record", "--duration", "1s", "-c"])
        .arg(&config)
        .arg("--store")
        .arg(&copy)
        .env("LAGTRACE_IT_PASSWORD", "x")
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("store format version 1 is read-only"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        before,
        "the v1 store was modified"
    );
}
