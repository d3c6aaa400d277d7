//! `lagtrace export`: one row per observation, as CSV or JSON lines, from one or more
//! stores (merged by time).

use std::io::Write;
use std::path::PathBuf;

use super::CmdError;
use crate::output::export;
use crate::store::scan::Filter;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub stores: Vec<PathBuf>,
    pub format: Format,
    pub filter: Filter,
    /// Write here instead of stdout.
    pub out: Option<PathBuf>,
}

pub fn run(opts: &Options) -> Result<(), CmdError> {
    let rec = super::load_recording(&opts.stores, &opts.filter)?;
    let rows = export::rows(&rec);
    let result = match &opts.out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| CmdError::Runtime(format!("cannot create {}: {e}", path.display())))?;
            write(opts.format, rows, std::io::BufWriter::new(file))
        }
        None => write(
            opts.format,
            rows,
            std::io::BufWriter::new(std::io::stdout().lock()),
        ),
    };
    match result {
        Ok(()) => Ok(()),
        // `lagtrace export | head` is fine.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CmdError::Runtime(format!("cannot write the export: {e}"))),
    }
}

fn write(
    format: Format,
    rows: impl Iterator<Item = export::Row>,
    out: impl Write,
) -> std::io::Result<()> {
    match format {
        Format::Csv => export::write_csv(rows, out),
        Format::Jsonl => export::write_jsonl(rows, out),
    }
}
