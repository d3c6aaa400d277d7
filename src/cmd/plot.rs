//! `lagtrace plot`: load stores, walk each replica's rounds computing vectors and
//! episodes (analysis) while reducing them to pixel columns, and draw them as SVG
//! (output::plot).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{CmdError, EpisodeArgs, Selection};
use crate::analysis::episodes::EpisodeFinder;
use crate::analysis::series::walk_rounds;
use crate::analysis::vector::VectorWindow;
use crate::output::plot::{self, Kind, ReplicaColumns, ReplicaPlot};
use crate::samples::event::EventKind;
use crate::store::events::RecordedEvent;

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
    let gap_us = crate::analysis::report::gap_us(&rec);
    // The charts' time range, from every replica's first read to its last: the
    // columns are filled as the rounds are walked.
    let mut range: Option<(i64, i64)> = None;
    for rs in &rec.replicas {
        if let Some((first, last)) = rs.observations.span_us()? {
            range = Some(range.map_or((first, last), |(a, b)| (a.min(first), b.max(last))));
        }
    }
    let range = range.map(|(first, last)| (first, last.max(first + 1)));
    struct Data {
        name: String,
        columns: ReplicaColumns,
        episodes: Vec<(i64, i64)>,
        cluster: String,
    }
    // A cluster's outages come from its first replica's walk, which reads its beats.
    let mut outages: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    let mut data = Vec::with_capacity(rec.replicas.len());
    for rs in &rec.replicas {
        let mut columns = ReplicaColumns::new(range.unwrap_or((0, 1)));
        let mut vectors = VectorWindow::new(window_us);
        let mut episodes = EpisodeFinder::new(max_lag_us, recover_lag_us, gap_us);
        let mut last_us = 0;
        let first_of_cluster = !outages.contains_key(&rs.cluster);
        let (_, found) = walk_rounds(&rec, rs, first_of_cluster, |batch| {
            for p in &batch.rounds {
                columns.push(p, vectors.push(p));
                episodes.push(p);
                last_us = p.t_us;
            }
        })?;
        if let Some(found) = found {
            let spans = found
                .iter()
                .map(|o| (o.start_us, o.start_us + o.duration_us()))
                .collect();
            outages.insert(rs.cluster.clone(), spans);
        }
        data.push(Data {
            name: format!("{}/{}", rs.cluster, rs.replica),
            columns,
            episodes: episodes
                .finish()
                .iter()
                .map(|e| (e.start_us, e.end_us.unwrap_or(last_us)))
                .collect(),
            cluster: rs.cluster.clone(),
        });
    }
    drop(bar);
    let marks = marks(&rec.events);
    let replicas: Vec<ReplicaPlot> = data
        .iter()
        .map(|d| ReplicaPlot {
            name: &d.name,
            columns: &d.columns,
            episodes: &d.episodes,
            outages: outages.get(&d.cluster).map_or(&[], Vec::as_slice),
            marks: marks.get(&d.cluster).map_or(&[], Vec::as_slice),
        })
        .collect();
    plot::draw(&args.out, args.kind, range, &replicas, args.log)
        .map_err(|e| CmdError::Runtime(format!("{}: {e}", args.out.display())))
}

/// Per cluster: its failovers, splits and their ends, labelled, to mark on the lag
/// chart; a split and its end are marked on its part's charts too.
fn marks(events: &[RecordedEvent]) -> BTreeMap<String, Vec<(i64, String)>> {
    let mut marks: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for e in events {
        let node = e.doc.node_name().unwrap_or("?");
        let (label, part) = match e.kind() {
            EventKind::Failover => (format!("failover to {node}"), None),
            EventKind::Split => (
                format!("split: {node} takes writes too"),
                Some(crate::cluster::split::part_name(e.cluster(), node)),
            ),
            EventKind::SplitEnd => (
                format!("split ended: {node}"),
                Some(crate::cluster::split::part_name(e.cluster(), node)),
            ),
            _ => continue,
        };
        for cluster in std::iter::once(e.cluster().to_string()).chain(part) {
            marks
                .entry(cluster)
                .or_default()
                .push((e.t_us, label.clone()));
        }
    }
    marks
}
