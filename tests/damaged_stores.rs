//! Whole store files damaged anywhere: every page of each real recording under
//! testdata/golden/ gets 300 bytes overwritten in its middle (one page at a time), and
//! every offline command must still end with at most a clear line on stderr and exit
//! 0, 1 or 2, never a panic (exit 101). Chunk decoders were fuzzed before; whole files,
//! with their events and state tables, were not.

mod common;

use std::path::Path;

use common::*;

/// redb's page size: the unit the damage walks over.
const PAGE: usize = 4096;
/// How many bytes each damage overwrites, in the middle of its page.
const DAMAGE: usize = 300;

/// What one command did with a damaged copy, when it was wrong.
fn misbehaved(store: &Path, args: &[&str], out: &Path) -> Option<String> {
    let mut cmd = lagtrace();
    cmd.args(args).arg("--store").arg(store);
    if args[0] == "plot" {
        cmd.arg("--out").arg(out);
    }
    let result = cmd.output().expect("run lagtrace");
    let stderr = String::from_utf8_lossy(&result.stderr);
    match result.status.code() {
        Some(0..=2) if !stderr.contains("panicked") => None,
        code => Some(format!(
            "lagtrace {} exit {code:?}: {}",
            args.join(" "),
            stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
        )),
    }
}

#[test]
fn every_page_of_a_real_store_damaged_gives_an_error_never_a_panic() {
    let dir = TempDir::new("damaged");
    let mut failures = Vec::new();
    let mut runs = 0;
    let incidents = golden_incidents(5);
    for incident in &incidents {
        let name = incident.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(incident.join("store.redb")).expect("the store");
        for page in 0..bytes.len() / PAGE {
            let mut damaged = bytes.clone();
            let start = page * PAGE + (PAGE - DAMAGE) / 2;
            // A fixed pattern per page: the same damage on every run.
            for (i, b) in damaged[start..start + DAMAGE].iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(151).wrapping_add(page as u8) ^ 0x5a;
            }
            let copy = dir.path().join(format!("{name}-{page}.redb"));
            std::fs::write(&copy, &damaged).expect("write the damaged copy");
            let out = dir.path().join("plot.svg");
            for args in [
                &["analyze"][..],
                &["analyze", "--format", "json"],
                &["export"],
                &["export", "--events"],
                &["replay"],
                &["plot", "--kind", "overview"],
            ] {
                runs += 1;
                if let Some(why) = misbehaved(&copy, args, &out) {
                    failures.push(format!("{name} page {page}: {why}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} runs on damaged stores misbehaved:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
