//! `lagtrace plot`: load stores, compute lag points, vectors and episodes per replica
//! (analysis) and draw them as SVG (output::plot).

use std::path::PathBuf;

use super::CmdError;
use crate::analysis::{episodes, series, vector};
use crate::output::plot::{self, Kind, ReplicaPlot};
use crate::store::scan::Filter;

#[derive(Debug, Clone)]
pub struct Options {
    pub stores: Vec<PathBuf>,
    pub filter: Filter,
    pub out: PathBuf,
    pub kind: Kind,
    pub log: bool,
    pub max_lag_us: i64,
    pub recover_lag_us: i64,
    pub window_us: i64,
}

pub fn run(opts: &Options) -> Result<(), CmdError> {
    super::analyze::check_thresholds(opts.max_lag_us, opts.recover_lag_us)?;
    super::analyze::check_window(opts.window_us)?;
    if opts.out.extension().is_none_or(|e| e != "svg") {
        return Err(CmdError::BadInput(format!(
            "--out {}: charts are SVG; name the file *.svg",
            opts.out.display()
        )));
    }
    let (rec, bar) = super::load_recording(&opts.stores, &opts.filter)?;
    let window_us = super::analyze::fit_window_us(&rec, opts.window_us);
    struct Data {
        name: String,
        points: Vec<series::LagPoint>,
        vector: Vec<f32>,
        episodes: Vec<(i64, i64)>,
        outages: Vec<(i64, i64)>,
    }
    let outages_of = |cluster: &str| -> Vec<(i64, i64)> {
        crate::analysis::outages::primary_outages(
            rec.beats_of(cluster),
            rec.failed_beats.get(cluster).map_or(&[], Vec::as_slice),
        )
        .iter()
        .map(|o| (o.start_us, o.start_us + o.duration_us()))
        .collect()
    };
    let data: Vec<Data> = rec
        .replicas
        .iter()
        .map(|rs| {
            let s = super::lag_series(&rec, rs)?;
            let vector = vector::vector_series(&s.points, window_us);
            let eps =
                episodes::episodes(&s.points, &rs.status, opts.max_lag_us, opts.recover_lag_us)
                    .iter()
                    .map(|e| (e.start_us, e.end_us.unwrap_or(s.points[e.end_index].t_us)))
                    .collect();
            Ok(Data {
                name: format!("{}/{}", rs.cluster, rs.replica),
                points: s.points,
                vector,
                episodes: eps,
                outages: outages_of(&rs.cluster),
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
    plot::draw(&opts.out, opts.kind, &replicas, opts.log)
        .map_err(|e| CmdError::Runtime(format!("{}: {e}", opts.out.display())))
}
