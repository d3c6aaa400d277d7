//! `dist/lagtrace.service`: systemd accepts the unit as written, and its `ExecStart`
//! runs as the service would (password from a credential file, `--retain`, stopped by
//! SIGTERM with a final flush and exit 0) against the lab.

mod common;

use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use common::*;

const UNIT: &str = "dist/lagtrace.service";
/// Where the unit expects the binary.
const INSTALLED: &str = "/usr/local/bin/lagtrace";

fn unit_text() -> String {
    std::fs::read_to_string(repo_root().join(UNIT)).expect("read the unit")
}

/// The unit's `ExecStart` command line, split on spaces (it has no quoting).
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    line.split_whitespace().map(String::from).collect()
}

/// `systemd-analyze verify` on the unit, with `ExecStart` pointed at this build (it
/// checks that the program exists): no error and no warning (an unknown key is only a
/// warning to systemd, and a silently ignored line here).
#[test]
fn systemd_accepts_the_unit() {
    let dir = TempDir::new("unit");
    let unit = unit_text().replace(INSTALLED, env!("CARGO_BIN_EXE_lagtrace"));
    let path = dir.write("lagtrace.service", &unit);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze (scripts/test.sh installs systemd)");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stderr.trim(), "", "systemd-analyze warned");
    assert_eq!(exec_start(&unit_text())[0], INSTALLED);
}

/// The unit's command line with its paths moved into a test directory, against the lab,
/// reading the password from a file as from the credential systemd gives it.
#[test]
fn the_units_command_records_and_stops_cleanly_on_sigterm() {
    let _lab = take_lab();
    let dir = TempDir::new("unit-run");
    let credential = dir.write("password", &format!("{LAB_PASSWORD}\n"));
    let config = format!(
        "[connection]\nuser = \"lagtrace\"\npassword_file = \"{}\"\n\n\
         [[cluster]]\nname = \"unit\"\nprimary = \"{PRIMARY}\"\nreplicas = {{ r1 = \"{}\" }}\n",
        credential.display(),
        REPLICAS[0].1
    );
    let config_path = dir.write("lagtrace.toml", &config);
    let init = lagtrace()
        .args(["init", "-c"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", texts(&init).1);

    let store = dir.path().join("lagtrace.redb");
    let mut args = exec_start(&unit_text());
    for a in args.iter_mut() {
        if a == "/etc/lagtrace/lagtrace.toml" {
            *a = config_path.display().to_string();
        } else if a == "/var/lib/lagtrace/lagtrace.redb" {
            *a = store.display().to_string();
        }
    }
    assert!(
        args.iter()
            .all(|a| !a.starts_with("/etc") && !a.starts_with("/var"))
    );
    let mut child = lagtrace()
        .args(&args[1..])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the service exited early"
    );
    signal(child.id(), "TERM");
    let out = finish_record(child);
    let (stdout, stderr) = texts(&out);
    assert!(!stdout.contains(LAB_PASSWORD) && !stderr.contains(LAB_PASSWORD));
    let bytes = std::fs::read(&store).unwrap();
    assert!(
        !bytes
            .windows(LAB_PASSWORD.len())
            .any(|w| w == LAB_PASSWORD.as_bytes())
    );
    let rows = export_rows(Path::new(&store));
    assert!(rows.len() > 20, "{} rows in 3 s", rows.len());
}
