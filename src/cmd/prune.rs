//! `lagtrace prune`: drop a store's chunks older than a retention, offline, then give the
//! space back to the file system. `record --retain` does the same while recording.

use std::path::PathBuf;
use std::time::Duration;

use super::CmdError;
use crate::clock::{Clock, duration_us, format_utc_us};
use crate::config::{MAX_RETAIN, MIN_RETAIN, parse_duration};
use crate::store::Cutoff;
use crate::store::Store;

/// `lagtrace prune`'s command line.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    lagtrace prune --store lagtrace.redb --older-than 30d --dry-run   # count, change nothing\n  \
    lagtrace prune --store lagtrace.redb --older-than 30d\n\n\
    Whole chunks go (a few seconds to an hour of one series each), so a little more than\n\
    asked may stay; beats are kept a little longer than reads, so that the oldest reads\n\
    kept still find the beats they saw. A store a recorder has open cannot be pruned\n\
    here: give that recorder --retain (or [record] retain) instead.\n\n\
    Exit status: 0 done, 1 store failure (or in use), 2 bad arguments or not a store.")]
pub struct Args {
    /// The store file
    #[arg(long, value_name = "FILE")]
    pub store: PathBuf,
    /// Drop what is older than this, 10s to 10y; e.g. 30d, 12h
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Duration,
    /// Count what would go and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(opts: &Args) -> Result<(), CmdError> {
    if !(MIN_RETAIN..=MAX_RETAIN).contains(&opts.older_than) {
        return Err(CmdError::BadInput(format!(
            "--older-than: {} is out of range: use {} to {}",
            humantime::format_duration(opts.older_than),
            humantime::format_duration(MIN_RETAIN),
            humantime::format_duration(MAX_RETAIN)
        )));
    }
    // Opening for writing creates a missing file: refuse that first.
    if !opts.store.exists() {
        return Err(CmdError::Store(crate::store::StoreError::Missing {
            path: opts.store.clone(),
        }));
    }
    let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = size(&opts.store);
    let mut store = Store::open_or_create(&opts.store)?;
    let cutoff = Cutoff::keeping(Clock::start().now_us(), duration_us(opts.older_than));
    let pruned = store.prune(cutoff, opts.dry_run)?;
    let what = format!(
        "{} chunks ({}){} older than {}",
        pruned.chunks,
        megabytes(pruned.bytes),
        match pruned.events {
            0 => String::new(),
            n => format!(" and {n} events"),
        },
        format_utc_us(cutoff.samples_us)
    );
    if opts.dry_run {
        println!("lagtrace: would drop {what} from {}", opts.store.display());
        return Ok(());
    }
    if pruned.chunks > 0 {
        store.compact()?;
    }
    drop(store);
    println!(
        "lagtrace: dropped {what} from {}; file {} -> {}",
        opts.store.display(),
        megabytes(before),
        megabytes(size(&opts.store))
    );
    Ok(())
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
