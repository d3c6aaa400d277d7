//! `lagtrace export`: one row per probe round (or per read with `--reads`), as CSV or
//! JSON lines, from one or more stores (merged by time).

use crate::analysis::window::BeatWindow;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use super::{CmdError, Selection};
use crate::output::export::{self, Format};
use crate::store::scan::Recording;

/// `lagtrace export`'s command line.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    lagtrace export --store lagtrace.redb > lag.csv\n  \
    lagtrace export --store a.redb --store b.redb --format jsonl --replica db2 --from -2h\n  \
    lagtrace export --store lagtrace.redb --reads > reads.csv     # every read, follow-ups too\n  \
    lagtrace export --store lagtrace.redb --events --format jsonl # failovers, pool changes, triggers\n\n\
    Columns: time_utc, cluster, replica, seq, lag_kind, lag_ms, lag_lo_ms, lag_hi_ms, reads,\n\
    rtt_ms, outcome, reason, io_running, sql_running, seconds_behind_master, sql_delay_s\n\
    (see docs/commands.md). lag_kind at_least: no upper bound, lag_ms is the lower bound.")]
pub struct Args {
    #[command(flatten)]
    pub select: Selection,
    /// Output format
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// Write to this file instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// One row per read (follow-up reads too) instead of one per probe round
    #[arg(long)]
    pub reads: bool,
    /// The clusters' events instead of rows: primary down/up, failovers, splits,
    /// replicas leaving and rejoining the pool, trigger runs
    #[arg(long, conflicts_with = "reads")]
    pub events: bool,
}

pub fn run(args: &Args) -> Result<(), CmdError> {
    let filter = args.select.filter()?;
    let (rec, bar) = super::load_recording(&args.select.store, &filter)?;
    // Rows on a terminal and a bar on it would mix.
    let _bar = bar.filter(|_| args.out.is_some() || !std::io::stdout().is_terminal());
    match &args.out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| CmdError::Runtime(format!("cannot create {}: {e}", path.display())))?;
            write(
                &rec,
                args,
                export::Writer::new(args.format, BufWriter::new(file)),
            )
        }
        None => write(
            &rec,
            args,
            export::Writer::new(args.format, BufWriter::new(std::io::stdout().lock())),
        ),
    }
}

/// Writes every replica's rows, replica by replica, each in time order (or the events,
/// with `--events`).
fn write(
    rec: &Recording,
    args: &Args,
    mut out: export::Writer<impl Write>,
) -> Result<(), CmdError> {
    let per_read = args.reads;
    let mut failed: Option<std::io::Error> = None;
    if args.events {
        failed = export::write_events(&rec.events, &mut out).err();
    }
    let replicas = if args.events {
        &[][..]
    } else {
        &rec.replicas[..]
    };
    let continuity = crate::analysis::lag::continuity_of(&rec.sessions);
    for rs in replicas {
        let mut rows = export::Rows::new(&rs.cluster, &rs.replica, per_read);
        let mut beats = BeatWindow::new(rec.beats_of(&rs.cluster), &continuity);
        let mut status = rs.status.iter().peekable();
        rs.observations.for_each(|obs, session| {
            // The status samples up to this read, for the rows it may close (an error
            // is taken too, and stops the export).
            while let Some(s) =
                status.next_if(|s| !s.as_ref().is_ok_and(|s| s.t_us > obs.r_start_us))
            {
                rows.add_status(s?);
            }
            let lag = beats.lag(session, obs)?;
            for row in rows.push(obs, session, lag) {
                if failed.is_none() {
                    failed = out.write(&row).err();
                }
            }
            Ok::<(), crate::store::StoreError>(())
        })?;
        for row in rows.finish() {
            if failed.is_none() {
                failed = out.write(&row).err();
            }
        }
    }
    match failed.map_or_else(|| out.finish(), Err) {
        Ok(()) => Ok(()),
        // `lagtrace export | head` is fine.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CmdError::Runtime(format!("cannot write the export: {e}"))),
    }
}
