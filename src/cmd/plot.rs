//! `lagtrace plot`: load stores, compute lag points, vectors and episodes per replica
//! (analysis) and draw them as SVG (output::plot).

use std::path::PathBuf;

use super::{CmdError, EpisodeArgs, Selection};
use crate::analysis::{episodes, series, vector};
use crate::output::plot::{self, Kind, ReplicaPlot};

/// `lagtrace plot`'s command line.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    lagtrace plot --store lagtrace.redb --out lag.svg\n  \
    lagtrace plot --store lagtrace.redb --out lag.svg --kind lag --log --from -1h\n  \
    lagtrace plot --store lagtrace.redb --out overview.svg --kind overview\n\n\
    Long series are reduced to their extremes per pixel.")]
pub struct Args {
    #[command(flatten)]
    pub select: Selection,
    #[command(flatten)]
    pub episodes: EpisodeArgs,
    /// The SVG file to write
    #[arg(long, value_name = "FILE.svg")]
    pub out: PathBuf,
    /// What to draw
    #[arg(long, value_enum, default_value = "lag")]
    pub kind: Kind,
    /// Logarithmic lag axis (kind lag and overview)
    #[arg(long)]
    pub log: bool,
}

pub fn run(args: &Args) -> Result<(), CmdError> {
    let (max_lag_us, recover_lag_us, window_us) = args.episodes.checked_us()?;
    let filter = args.select.filter()?;
    if args.out.extension().is_none_or(|e| e != "svg") {
        return Err(CmdError::BadInput(format!(
            "--out {}: charts are SVG; name the file *.svg",
            args.out.display()
        )));
    }
    let (rec, bar) = super::load_recording(&args.select.store, &filter)?;
    let window_us = crate::analysis::report::fit_window_us(&rec, window_us);
    struct Data {
        name: String,
        points: Vec<series::LagPoint>,
        vector: Vec<f32>,
        episodes: Vec<(i64, i64)>,
        outages: Vec<(i64, i64)>,
    }
    let outages_of = |cluster: &str| -> Result<Vec<(i64, i64)>, CmdError> {
        Ok(
            crate::analysis::outages::cluster_outages(rec.beats_of(cluster))
                .map_err(super::store_error)?
                .iter()
                .map(|o| (o.start_us, o.start_us + o.duration_us()))
                .collect(),
        )
    };
    let data: Vec<Data> = rec
        .replicas
        .iter()
        .map(|rs| {
            let s = super::lag_series(&rec, rs)?;
            let vector = vector::vector_series(&s.points, window_us);
            let eps = episodes::episodes(&s.points, &rs.status, max_lag_us, recover_lag_us)
                .iter()
                .map(|e| (e.start_us, e.end_us.unwrap_or(s.points[e.end_index].t_us)))
                .collect();
            Ok(Data {
                name: format!("{}/{}", rs.cluster, rs.replica),
                points: s.points,
                vector,
                episodes: eps,
                outages: outages_of(&rs.cluster)?,
            })
        })
        .collect::<Result<_, CmdError>>()?;
    drop(bar);
    let replicas: Vec<ReplicaPlot> = data
        .iter()
        .map(|d| ReplicaPlot {
            name: &d.name,
            points: &d.points,
            vector: &d.vector,
            episodes: &d.episodes,
            outages: &d.outages,
        })
        .collect();
    plot::draw(&args.out, args.kind, &replicas, args.log)
        .map_err(|e| CmdError::Runtime(format!("{}: {e}", args.out.display())))
}
