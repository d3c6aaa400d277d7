//! `lagtrace export`: one row per probe round (or per read with `--reads`), as CSV or
//! JSON lines, from one or more stores (merged by time).

use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use super::CmdError;
use crate::output::export;
use crate::store::scan::{Filter, Recording};

pub use crate::output::export::Format;

#[derive(Debug, Clone)]
pub struct Options {
    pub stores: Vec<PathBuf>,
    pub format: Format,
    pub filter: Filter,
    /// Write here instead of stdout.
    pub out: Option<PathBuf>,
    /// One row per read instead of per probe round.
    pub per_read: bool,
}

pub fn run(opts: &Options) -> Result<(), CmdError> {
    let (rec, bar) = super::load_recording(&opts.stores, &opts.filter)?;
    // Rows on a terminal and a bar on it would mix.
    let _bar = bar.filter(|_| opts.out.is_some() || !std::io::stdout().is_terminal());
    match &opts.out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| CmdError::Runtime(format!("cannot create {}: {e}", path.display())))?;
            write(
                &rec,
                opts.per_read,
                export::Writer::new(opts.format, BufWriter::new(file)),
            )
        }
        None => write(
            &rec,
            opts.per_read,
            export::Writer::new(opts.format, BufWriter::new(std::io::stdout().lock())),
        ),
    }
}

/// Writes every replica's rows, replica by replica, each in time order.
fn write(
    rec: &Recording,
    per_read: bool,
    mut out: export::Writer<impl Write>,
) -> Result<(), CmdError> {
    let mut failed: Option<std::io::Error> = None;
    let continuity = crate::analysis::lag::continuity_of(&rec.sessions);
    for rs in &rec.replicas {
        let mut rows = export::Rows::new(
            &rs.cluster,
            &rs.replica,
            rec.beats_of(&rs.cluster),
            &continuity,
            &rs.status,
            per_read,
        );
        rs.observations
            .for_each(|obs, session| {
                if failed.is_none()
                    && let Some(row) = rows.push(obs, session)
                {
                    failed = out.write(&row).err();
                }
            })
            .map_err(super::store_error)?;
        if failed.is_none()
            && let Some(row) = rows.finish()
        {
            failed = out.write(&row).err();
        }
    }
    match failed.map_or_else(|| out.finish(), Err) {
        Ok(()) => Ok(()),
        // `lagtrace export | head` is fine.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CmdError::Runtime(format!("cannot write the export: {e}"))),
    }
}
