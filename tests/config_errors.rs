//! Every bad config under testdata/bad/ gives its own one-line message and exit 2.
//! Each file's first line says what the message must contain: `# expect: TEXT`.

mod common;

use common::{TempDir, lagtrace, repo_root, texts};

#[test]
fn every_bad_config_gives_its_own_clear_message_and_exit_2() {
    let home = TempDir::new("home"); // no .my.cnf here
    let dir = repo_root().join("testdata/bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata/bad exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 15,
        "expected at least 15 bad configs, found {}",
        files.len()
    );

    let mut seen = std::collections::HashMap::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks a '# expect: ' first line", file.display()));
        let out = lagtrace()
            .args(["init", "-c"])
            .arg(file)
            .env("HOME", home.path())
            .output()
            .unwrap();
        let (stdout, stderr) = texts(&out);
        let name = file.display();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name}: exit code; stderr: {stderr}"
        );
        assert!(stdout.is_empty(), "{name}: printed to stdout: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{name}: not one line: {stderr}");
        let line = stderr.trim_end();
        assert!(
            line.starts_with(&format!("lagtrace: {}", file.display())),
            "{name}: message does not name the file: {line}"
        );
        assert!(
            line.contains(expect),
            "{name}: expected {expect:?} in: {line}"
        );
        if let Some(other) = seen.insert(
            line.replace(&file.display().to_string(), ""),
            name.to_string(),
        ) {
            panic!("{name} and {other} give the same message: {line}");
        }
    }
}

#[test]
fn missing_config_file_is_bad_input() {
    let out = lagtrace()
        .args(["init", "-c", "/nonexistent/lagtrace.toml"])
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr.trim_end(),
        "lagtrace: /nonexistent/lagtrace.toml: cannot read config: no such file"
    );
}

#[test]
fn bad_command_line_is_one_line_and_exit_2() {
    let out = lagtrace()
        .args(["init", "--wait", "soon"])
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad duration \"soon\""), "{stderr}");
}

/// `record`'s flags replace config keys before validation: they meet the same ranges
/// and the same cross-checks, and the error names the flag. Each fails before any
/// server is contacted.
#[test]
fn record_overrides_are_validated_like_the_config() {
    let dir = TempDir::new("overrides");
    let config = dir.write(
        "lagtrace.toml",
        "[connection]\npassword_env = \"LAGTRACE_IT_PASSWORD\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\
         [[cluster]]\nname = \"lab\"\nprimary = \"127.0.0.1:13306\"\n\
         replicas = { r1 = \"127.0.0.1:13307\" }\n",
    );
    let cases: [(&[&str], &str); 5] = [
        (
            &["--flush", "0s"],
            "--flush: 0s is out of range: use 10ms to 1m",
        ),
        (
            &["--interval", "5m"],
            "--interval: 5m is out of range: use 1ms to 60s",
        ),
        (
            &["--status-every", "10ms"],
            "--status-every: 10ms is out of range: use 100ms to 1h",
        ),
        (
            &["--retain", "5s"],
            "--retain: 5s is out of range: use 10s to 10years",
        ),
        // The default [http] stale (3 s) is not longer than a 5 s read period.
        (
            &["--interval", "5s"],
            "http.stale: stale (3s) must be longer",
        ),
    ];
    for (args, expect) in cases {
        let out = lagtrace()
            .args(["record", "-c"])
            .arg(&config)
            .args(args)
            .env("LAGTRACE_IT_PASSWORD", "x")
            .output()
            .unwrap();
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}

#[test]
fn help_has_examples() {
    let out = lagtrace().args(["init", "--help"]).output().unwrap();
    let (stdout, _) = texts(&out);
    assert!(out.status.success());
    assert!(
        stdout.contains("Examples:") && stdout.contains("lagtrace init -c lagtrace.toml"),
        "{stdout}"
    );
}

#[test]
fn dry_run_prints_sql_without_a_password() {
    let out = lagtrace()
        .args(["init", "--dry-run", "-c"])
        .arg(repo_root().join("lagtrace.example.toml"))
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("CREATE TABLE IF NOT EXISTS heartbeat"),
        "{stdout}"
    );
    assert!(
        stdout.contains("VALUES ('lab', 0, 0, @@server_id);"),
        "{stdout}"
    );
}

#[test]
fn example_configs_are_valid() {
    for name in ["lagtrace.example.toml", "lagtrace.postgres.example.toml"] {
        let text = std::fs::read_to_string(repo_root().join(name)).unwrap();
        lagtrace::config::parse(name, &text).expect("example config parses");
    }
}
