//! Behaviour kept, byte for byte: real incidents recorded on the lab (`make golden`:
//! a stall under load, a frozen primary, a failover and failback, a split, a paused
//! PostgreSQL replay) are committed under testdata/golden/ with what analyze, export,
//! replay and plot gave for them; these commands must give the same bytes today.
//! No server is needed: the stores are files.
//!
//! When output changes on purpose, `make golden-expect` rewrites the expected files from
//! the committed stores, in the commit that changes it, whose message says why.

mod common;

use std::path::Path;

use common::*;

/// `(expected file, arguments)` from testdata/golden/commands.tsv.
fn commands(root: &Path) -> Vec<(String, Vec<String>)> {
    let table = std::fs::read_to_string(root.join("commands.tsv")).expect("commands.tsv");
    table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (file, args) = l.split_once('\t').expect("FILE<TAB>ARGS");
            (
                file.to_string(),
                args.split_whitespace().map(str::to_string).collect(),
            )
        })
        .collect()
}

/// The first line where `got` and `want` differ, for the failure message.
fn first_difference(got: &[u8], want: &[u8]) -> String {
    let (got, want) = (String::from_utf8_lossy(got), String::from_utf8_lossy(want));
    for (n, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        if g != w {
            return format!("line {}:\n  got:  {g}\n  want: {w}", n + 1);
        }
    }
    format!(
        "one is a prefix of the other ({} and {} lines)",
        got.lines().count(),
        want.lines().count()
    )
}

#[test]
fn recorded_incidents_give_the_same_bytes_as_when_they_were_recorded() {
    let root = repo_root().join("testdata/golden");
    let table = commands(&root);
    let out_dir = TempDir::new("golden");
    let mut checked = 0;
    let mut failures = Vec::new();
    let incidents = golden_incidents(5);
    for incident in &incidents {
        let name = incident.file_name().unwrap().to_string_lossy().to_string();
        for (file, args) in &table {
            let mut cmd = lagtrace();
            cmd.args(args)
                .arg("--store")
                .arg(incident.join("store.redb"));
            let plot_out = out_dir.path().join(format!("{name}-{file}"));
            if args[0] == "plot" {
                cmd.arg("--out").arg(&plot_out);
            }
            let out = cmd.output().expect("run lagtrace");
            assert!(
                out.status.success(),
                "{name}: lagtrace {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            let got = if args[0] == "plot" {
                std::fs::read(&plot_out).expect("the plot's file")
            } else {
                out.stdout
            };
            let want = std::fs::read(incident.join("expected").join(file)).expect("expected file");
            if got != want {
                failures.push(format!(
                    "{name}/{file} (lagtrace {}): {}",
                    args.join(" "),
                    first_difference(&got, &want)
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} outputs changed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
