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
fn example_config_is_valid() {
    let text = std::fs::read_to_string(repo_root().join("lagtrace.example.toml")).unwrap();
    lagtrace::config::parse("lagtrace.example.toml", &text).expect("example config parses");
}
