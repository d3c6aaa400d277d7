//! A flipped bit in each of two chunks of a real recording: by default every offline command
//! stops with exit 2 naming the chunk; with `--skip-corrupt` they read around them, warn
//! once per chunk naming the hole, and the hole shows as one gap; the file is never
//! rewritten.

mod common;

use std::path::Path;

use common::*;
use redb::ReadableTable;

/// Flips one bit in the middle of each of two consecutive observation chunks in the
/// middle of the replica whose observations come first in key order (a hole of about
/// two seconds at 1 ms: over analyze's 1 s gap rule whatever the chunks' lengths);
/// returns the first chunk's first time (UTC µs).
fn flip_a_bit(store: &Path) -> i64 {
    let db = redb::Database::open(store).unwrap();
    let tx = db.begin_write().unwrap();
    let first_us;
    {
        let mut table = tx.open_table(lagtrace::store::CHUNKS).unwrap();
        let keys: Vec<_> = table
            .iter()
            .unwrap()
            .map(|e| e.unwrap().0.value())
            .filter(|k| k.0 == lagtrace::store::KIND_OBSERVATIONS)
            .collect();
        let id = keys[0].1;
        let mine: Vec<_> = keys.iter().filter(|k| k.1 == id).collect();
        assert!(mine.len() >= 4, "only {} observation chunks", mine.len());
        first_us = mine[mine.len() / 2].2;
        for key in [*mine[mine.len() / 2], *mine[mine.len() / 2 + 1]] {
            let mut value = table.get(key).unwrap().unwrap().value().to_vec();
            let middle = value.len() / 2;
            value[middle] ^= 0x10;
            table.insert(key, value.as_slice()).unwrap();
        }
    }
    tx.commit().unwrap();
    first_us
}

#[test]
fn a_corrupt_chunk_stops_the_offline_commands_or_is_read_around_with_skip_corrupt() {
    let _lab = take_lab();
    let dir = TempDir::new("corrupt-chunk");
    let config = init_config(
        &dir,
        &lab_config("it_corrupt", PRIMARY, &REPLICAS, "LAGTRACE_IT_PASSWORD"),
    );
    let store = dir.path().join("s.redb");
    finish_record(start_record(
        &config,
        &store,
        &["--interval", "1ms", "--duration", "12s"],
    ));
    let whole = export_rows(&store);
    let flipped_at = flip_a_bit(&store);
    let bytes = std::fs::read(&store).unwrap();
    let store_arg = store.to_str().unwrap();

    for cmd in [
        vec!["export", "--store", store_arg],
        vec!["analyze", "--store", store_arg],
        vec!["replay", "--store", store_arg],
    ] {
        let out = lagtrace().args(&cmd).output().unwrap();
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{cmd:?}: {stderr}");
        assert!(
            stderr.contains(&format!("@{flipped_at} (session 1): checksum"))
                && stderr.contains("--skip-corrupt"),
            "{cmd:?}: {stderr}"
        );
    }

    let out = lagtrace()
        .args([
            "export",
            "--format",
            "jsonl",
            "--skip-corrupt",
            "--store",
            store_arg,
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(warnings.len(), 2, "one warning per bad chunk: {stderr}");
    assert!(
        warnings[0].contains("WARN")
            && warnings[0].contains("skipped corrupt chunk 2/")
            && warnings[0].contains(&format!("@{flipped_at} (session 1)"))
            && warnings[0].contains("no reads from "),
        "{stderr}"
    );
    // The hole: the rounds of the bad chunk's replica from its first time to the next
    // chunk's are gone; everything else is as before.
    let rows = stdout.lines().count();
    let until = warnings[0]
        .rsplit("until ")
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let until_us = utc_us(until);
    let holed = whole
        .iter()
        .filter(|r| (flipped_at..until_us).contains(&r.t_us))
        .map(|r| r.replica.clone())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        holed.len(),
        2,
        "both replicas have rounds in the hole's time"
    );
    let lost = whole.len() - rows;
    assert!(lost > 500, "{lost} rounds lost of {}", whole.len());
    eprintln!(
        "{} rounds, {rows} read around the bad chunk ({lost} in the hole of {} ms)",
        whole.len(),
        (until_us - flipped_at) / 1000
    );

    let out = lagtrace()
        .args([
            "analyze",
            "--format",
            "json",
            "--skip-corrupt",
            "--store",
            store_arg,
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let gaps: Vec<&serde_json::Value> = doc["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["coverage"]["gaps"].as_array().unwrap())
        .collect();
    assert_eq!(gaps.len(), 1, "the hole is one gap: {gaps:?}");
    assert_eq!(
        std::fs::read(&store).unwrap(),
        bytes,
        "the store was rewritten"
    );
}
