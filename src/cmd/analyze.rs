//! `lagtrace analyze`: load one or more stores, compute each replica's report
//! (analysis::report) and print it as text or JSON (output::report).

use super::{CmdError, EpisodeArgs, Selection};
use crate::analysis::report::{self, Settings};
use crate::output;
use crate::output::report::Format;

/// `lagtrace analyze`'s command line.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    lagtrace analyze --store lagtrace.redb\n  \
    lagtrace analyze --store a.redb --store b.redb --replica db2 --from -6h --max-lag 2s\n  \
    lagtrace analyze --store lagtrace.redb --format json | jq '.replicas[].capacity'\n\n\
    An episode starts when lag exceeds --max-lag and ends when it falls under --recover-lag.\n\
    The JSON document is described in docs/commands.md (schema_version 2).")]
pub struct Args {
    #[command(flatten)]
    pub select: Selection,
    #[command(flatten)]
    pub episodes: EpisodeArgs,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub fn run(args: &Args) -> Result<(), CmdError> {
    let (max_lag_us, recover_lag_us, window_us) = args.episodes.checked_us()?;
    let filter = args.select.filter()?;
    let started = std::time::Instant::now();
    let (rec, bar) = super::load_recording(&args.select.store, &filter)?;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "loaded");
    let settings = Settings::for_recording(&rec, max_lag_us, recover_lag_us, window_us);
    let (clusters, reports) = report::reports(&rec, &settings)?;
    drop(bar);
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "analyzed"
    );
    let text = match args.format {
        Format::Text => output::report::text(&clusters, &reports, &settings),
        Format::Json => {
            let doc = output::report::json(&clusters, &reports, &settings);
            let mut s = serde_json::to_string_pretty(&doc)
                .map_err(|e| CmdError::Runtime(format!("cannot encode the report: {e}")))?;
            s.push('\n');
            s
        }
    };
    super::print_stdout(&text)
}

/// `max_lag` positive and `recover_lag` not above it.
pub fn check_thresholds(max_lag_us: i64, recover_lag_us: i64) -> Result<(), CmdError> {
    if max_lag_us <= 0 {
        return Err(CmdError::BadInput("--max-lag must be above 0".to_string()));
    }
    if recover_lag_us > max_lag_us {
        return Err(CmdError::BadInput(format!(
            "--recover-lag ({} ms) must not be above --max-lag ({} ms)",
            recover_lag_us / 1000,
            max_lag_us / 1000
        )));
    }
    Ok(())
}

/// The vector's fit window: at least 10 ms.
pub fn check_window(window_us: i64) -> Result<(), CmdError> {
    if window_us < 10_000 {
        return Err(CmdError::BadInput(
            "--window must be at least 10ms".to_string(),
        ));
    }
    Ok(())
}
