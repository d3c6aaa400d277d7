//! `lagtrace analyze`: load one or more stores, compute each replica's report
//! (analysis::report) and print it as text or JSON (output::report).

use super::{CmdError, EpisodeArgs, Selection};
use crate::analysis::report::{self, ClusterReport, ReplicaReport, Settings};
use crate::output;
use crate::output::report::Format;
use crate::store::scan::Recording;

/// `lagtrace analyze`'s command line.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    lagtrace analyze --store lagtrace.redb\n  \
    lagtrace analyze --store a.redb --store b.redb --replica db2 --from -6h --max-lag 2s\n  \
    lagtrace analyze --store lagtrace.redb --format json | jq '.replicas[].capacity'\n\n\
    An episode starts when lag exceeds --max-lag and ends when it falls under --recover-lag.\n\
    The JSON document is described in the README (schema_version 2).")]
pub struct Args {
    #[command(flatten)]
    pub select: Selection,
    #[command(flatten)]
    pub episodes: EpisodeArgs,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// The smallest gap between reads reported as "no data", µs.
pub const MIN_GAP_US: i64 = 1_000_000;

pub fn run(args: &Args) -> Result<(), CmdError> {
    let (max_lag_us, recover_lag_us, window_us) = args.episodes.checked_us()?;
    let filter = args.select.filter()?;
    let started = std::time::Instant::now();
    let (rec, bar) = super::load_recording(&args.select.store, &filter)?;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "loaded");
    let settings = Settings {
        max_lag_us,
        recover_lag_us,
        window_us: fit_window_us(&rec, window_us),
        gap_us: gap_us(&rec),
    };
    let reports = reports(&rec, &settings)?;
    let clusters = clusters(&rec);
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

/// Reports of every replica in the recording, in (cluster, replica) order.
pub fn reports(rec: &Recording, settings: &Settings) -> Result<Vec<ReplicaReport>, CmdError> {
    rec.replicas
        .iter()
        .map(|rs| {
            let series = super::lag_series(rec, rs)?;
            Ok(report::replica_report(
                &rs.cluster,
                &rs.replica,
                &series,
                &rs.status,
                settings,
            ))
        })
        .collect()
}

/// Every cluster with its primary outages, in name order.
pub fn clusters(rec: &Recording) -> Vec<ClusterReport> {
    rec.beats
        .iter()
        .map(|(cluster, beats)| ClusterReport {
            cluster: cluster.clone(),
            outages: crate::analysis::outages::primary_outages(
                beats,
                rec.failed_beats.get(cluster).map_or(&[], Vec::as_slice),
            ),
        })
        .collect()
}

/// The longest time between a replica's regular reads over the recording's sessions
/// (`interval * read_every`), µs.
fn read_period_us(rec: &Recording) -> i64 {
    rec.sessions
        .iter()
        .map(|s| s.read_period_us())
        .max()
        .unwrap_or(0)
}

/// Reads further apart than five read periods (at least [`MIN_GAP_US`]) leave a gap.
pub fn gap_us(rec: &Recording) -> i64 {
    (5 * read_period_us(rec)).max(MIN_GAP_US)
}

/// The vector's fit window: the one asked for, widened to four read periods when reads
/// are sparser than that (a fit needs three points over half its window).
pub fn fit_window_us(rec: &Recording, asked_us: i64) -> i64 {
    asked_us.max(4 * read_period_us(rec))
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
