//! SVG charts of a recording (plotters, SVG backend only). Every series is reduced, as
//! its rounds are walked, to one column per horizontal pixel holding the column's
//! extremes ([`ReplicaColumns`]): no spike is dropped, and neither the memory a chart
//! takes nor its size depends on the recording's length.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::analysis::series::LagPoint;
use crate::analysis::stats::Distribution;
use crate::clock::format_utc_us;

/// Chart width in pixels; also the number of columns a series is reduced to.
pub const WIDTH_PX: u32 = 1200;
/// Height of one chart (one row of the overview) in pixels.
pub const ROW_HEIGHT_PX: u32 = 260;
/// Smallest lag drawn on a log scale, s (lag 0 is drawn here).
pub const LOG_FLOOR_S: f64 = 1e-5;

/// What to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Lag over time with its [lower, upper] band, episodes and outages shaded
    Lag,
    /// The vector on a fixed -1..+1 scale, clipped values marked
    Vector,
    /// The lag distribution per replica
    Cdf,
    /// Lag and vector, one row per replica
    Overview,
}

/// One replica's data, reduced to pixel columns.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaPlot<'a> {
    /// `cluster/replica`.
    pub name: &'a str,
    pub columns: &'a ReplicaColumns,
    /// Episodes as `(start_us, end_us)`.
    pub episodes: &'a [(i64, i64)],
    /// Outages of the replica's primary as `(start_us, end_us)`: no beat acknowledged,
    /// so the lag drawn meanwhile is only a lower bound.
    pub outages: &'a [(i64, i64)],
    /// Changes of the replica's cluster to mark with a vertical line, as `(t_us,
    /// label)` (a failover, a split).
    pub marks: &'a [(i64, String)],
}

/// The extremes of one pixel column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Column {
    /// Lowest lower bound.
    pub lo: f64,
    /// Lowest and highest value.
    pub min: f64,
    pub max: f64,
    /// Highest upper bound.
    pub hi: f64,
}

/// Reduces `(t_us, lo, value, hi)` samples in time order over `[t0_us, t1_us]` to
/// `columns` columns; `None` where a column holds no sample (a gap). NaN values are
/// skipped.
pub fn reduce(
    samples: impl Iterator<Item = (i64, f64, f64, f64)>,
    t0_us: i64,
    t1_us: i64,
    columns: usize,
) -> Vec<Option<Column>> {
    let mut r = Reducer::new(t0_us, t1_us, columns);
    samples.for_each(|(t, lo, v, hi)| r.push(t, lo, v, hi));
    r.cols
}

/// [`reduce`] sample by sample.
#[derive(Debug, Clone)]
pub struct Reducer {
    t0_us: i64,
    t1_us: i64,
    cols: Vec<Option<Column>>,
}

impl Reducer {
    pub fn new(t0_us: i64, t1_us: i64, columns: usize) -> Self {
        Reducer {
            t0_us,
            t1_us,
            cols: vec![None; columns.max(1)],
        }
    }

    /// Adds a sample; NaN values and samples outside the range are skipped.
    pub fn push(&mut self, t_us: i64, lo: f64, v: f64, hi: f64) {
        if v.is_nan() || t_us < self.t0_us || t_us > self.t1_us {
            return;
        }
        let span = (self.t1_us - self.t0_us).max(1) as f64;
        let columns = self.cols.len();
        let c = (((t_us - self.t0_us) as f64 / span) * columns as f64) as usize;
        let slot = &mut self.cols[c.min(columns - 1)];
        match slot {
            None => {
                *slot = Some(Column {
                    lo,
                    min: v,
                    max: v,
                    hi,
                })
            }
            Some(col) => {
                col.lo = col.lo.min(lo);
                col.min = col.min.min(v);
                col.max = col.max.max(v);
                col.hi = col.hi.max(hi);
            }
        }
    }
}

/// What the charts draw of one replica, reduced as its rounds are fed in time order:
/// the lag and vector columns over the chart's time range and the lag distribution.
#[derive(Debug, Clone)]
pub struct ReplicaColumns {
    lag: Reducer,
    vector: Reducer,
    /// Point estimates of the bounded rounds, µs (for the CDF).
    distribution: Distribution,
}

impl ReplicaColumns {
    /// Columns over `(t0_us, t1_us)`, the time range of every replica charted.
    pub fn new((t0_us, t1_us): (i64, i64)) -> Self {
        let columns = WIDTH_PX as usize;
        ReplicaColumns {
            lag: Reducer::new(t0_us, t1_us, columns),
            vector: Reducer::new(t0_us, t1_us, columns),
            distribution: Distribution::default(),
        }
    }

    /// Adds a round and the vector at it (NaN where unknown).
    pub fn push(&mut self, p: &LagPoint, vector: f32) {
        let s = |us: i64| us as f64 / 1e6;
        // "At least" rounds have no upper bound: drawn at their lower bound, with no
        // band.
        if let (Some(lo), Some(judged)) = (p.lag.lo_us(), p.lag.judged_us()) {
            let hi = p.lag.hi_us().unwrap_or(lo);
            self.lag.push(p.t_us, s(lo), s(judged), s(hi));
        }
        let v = f64::from(vector);
        self.vector.push(p.t_us, v, v, v);
        if let Some(lag_us) = p.lag.point_us() {
            self.distribution.record(lag_us);
        }
    }

    /// Whether any round was drawn.
    pub fn is_empty(&self) -> bool {
        self.lag.cols.iter().all(Option::is_none)
    }
}

/// A plotting failure, as one line.
/// A chart that could not be drawn (the SVG backend failed: most often the file could
/// not be written), with the backend's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct DrawError(String);

fn err(e: impl std::fmt::Display) -> DrawError {
    DrawError(e.to_string())
}

/// `HH:MM:SS` UTC (or with the date when the chart spans days) for axis labels.
fn time_label(t_us: i64, with_date: bool) -> String {
    let full = format_utc_us(t_us);
    // 2026-11-22T03:44:00.123456Z
    if with_date {
        format!("{} {}", &full[5..10], &full[11..16])
    } else {
        full[11..19].to_string()
    }
}

fn color(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(23, 190, 207),
    ];
    PALETTE[i % PALETTE.len()]
}

/// Draws `kind` for `replicas` into an SVG file; `range` is the time range their
/// columns cover, µs (`None`: nothing recorded).
pub fn draw(
    path: &Path,
    kind: Kind,
    range: Option<(i64, i64)>,
    replicas: &[ReplicaPlot],
    log: bool,
) -> Result<(), DrawError> {
    let rows = match kind {
        Kind::Overview => replicas.len().max(1) as u32 * 2,
        _ => 2,
    };
    let root = SVGBackend::new(path, (WIDTH_PX, rows * ROW_HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let range = range.filter(|_| replicas.iter().any(|r| !r.columns.is_empty()));
    let Some(range) = range else {
        root.titled("no lag data in this recording", ("sans-serif", 20))
            .map_err(err)?;
        return root.present().map_err(err);
    };
    match kind {
        Kind::Lag => lag_chart(&root, replicas, range, log, "Replication lag")?,
        Kind::Vector => vector_chart(&root, replicas, range, "Replication vector")?,
        Kind::Cdf => cdf_chart(&root, replicas)?,
        Kind::Overview => {
            let areas = root.split_evenly((replicas.len(), 1));
            for (area, r) in areas.iter().zip(replicas) {
                let (top, bottom) = area.split_vertically(ROW_HEIGHT_PX);
                let one = [*r];
                lag_chart(&top, &one, range, log, &format!("{}: lag", r.name))?;
                vector_chart(&bottom, &one, range, &format!("{}: vector", r.name))?;
            }
        }
    }
    root.present().map_err(err)
}

/// What a lag chart draws, beside the chart it draws on.
struct LagPlot<'a> {
    replicas: &'a [ReplicaPlot<'a>],
    /// The time range, µs.
    range: (i64, i64),
    /// The top of the lag axis, s.
    top: f64,
    log: bool,
}

impl LagPlot<'_> {
    /// Seconds since the chart's start of pixel column `c`.
    fn x_of(&self, c: usize) -> f64 {
        let (t0, t1) = self.range;
        c as f64 / WIDTH_PX as f64 * (t1 - t0) as f64 / 1e6
    }

    /// Seconds since the chart's start of `t_us`, within the chart.
    fn x_at(&self, t_us: i64) -> f64 {
        let (t0, t1) = self.range;
        ((t_us.clamp(t0, t1) - t0) as f64 / 1e6).max(0.0)
    }

    /// The lag axis' lowest value, s.
    fn y_lo(&self) -> f64 {
        if self.log { LOG_FLOOR_S } else { 0.0 }
    }

    /// A lag as drawn: no lower than the log axis' floor.
    fn floor(&self, v: f64) -> f64 {
        if self.log { v.max(LOG_FLOOR_S) } else { v }
    }
}

fn lag_chart(
    area: &DrawingArea<SVGBackend, Shift>,
    replicas: &[ReplicaPlot],
    (t0, t1): (i64, i64),
    log: bool,
    title: &str,
) -> Result<(), DrawError> {
    let top = replicas
        .iter()
        .flat_map(|r| r.columns.lag.cols.iter().flatten())
        .map(|c| c.hi)
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.05;
    let plot = LagPlot {
        replicas,
        range: (t0, t1),
        top,
        log,
    };
    let x_max = (t1 - t0) as f64 / 1e6;
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(64);
    // Two coordinate types (linear, log): one generic drawing.
    if log {
        let chart = builder
            .build_cartesian_2d(0f64..x_max, (LOG_FLOOR_S..top).log_scale())
            .map_err(err)?;
        draw_lag(chart, &plot)
    } else {
        let chart = builder
            .build_cartesian_2d(0f64..x_max, 0f64..top)
            .map_err(err)?;
        draw_lag(chart, &plot)
    }
}

type LagChart<'a, Y> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>;

/// Draws `p` on `chart`: the mesh, each cluster's marks and outages, each replica's
/// episodes, bound band and lag line, and the legend.
fn draw_lag<'a, Y>(mut chart: LagChart<'a, Y>, p: &LagPlot) -> Result<(), DrawError>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let (t0, t1) = p.range;
    let with_date = t1 - t0 > 86_400_000_000;
    let label = |x: &f64| time_label(t0 + (x * 1e6) as i64, with_date);
    chart
        .configure_mesh()
        .x_desc("time (UTC)")
        .y_desc("lag (s)")
        .x_label_formatter(&label)
        .x_labels(8)
        .draw()
        .map_err(err)?;
    // Outages belong to a cluster: shade and name them once per cluster.
    let mut shaded: Vec<&str> = Vec::new();
    for (i, r) in p.replicas.iter().enumerate() {
        let cluster = r.name.split_once('/').map_or(r.name, |(c, _)| c);
        if !shaded.contains(&cluster) {
            shaded.push(cluster);
            draw_marks(&mut chart, p, r.marks)?;
            draw_outages(&mut chart, p, cluster, r.outages)?;
        }
        for &(s, e) in r.episodes {
            let (x0, x1) = ((s - t0) as f64 / 1e6, (e - t0) as f64 / 1e6);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, p.y_lo()), (x1, p.top)],
                    RGBColor(214, 39, 40).mix(0.08).filled(),
                )))
                .map_err(err)?;
        }
        draw_replica_lag(&mut chart, p, r, color(i))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// A cluster's failovers, splits and their ends: a line and a label each.
fn draw_marks<'a, Y>(
    chart: &mut LagChart<'a, Y>,
    p: &LagPlot,
    marks: &[(i64, String)],
) -> Result<(), DrawError>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let (t0, t1) = p.range;
    let ink = RGBColor(40, 40, 40);
    for (t, text) in marks.iter().filter(|(t, _)| (t0..=t1).contains(t)) {
        let x = (t - t0) as f64 / 1e6;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x, p.y_lo()), (x, p.top)],
                ink.stroke_width(1),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!(" {text}"),
                (x, p.top),
                ("sans-serif", 11).into_font().color(&ink),
            )))
            .map_err(err)?;
    }
    Ok(())
}

/// A cluster's primary outages, shaded, the first named in the legend.
fn draw_outages<'a, Y>(
    chart: &mut LagChart<'a, Y>,
    p: &LagPlot,
    cluster: &str,
    outages: &[(i64, i64)],
) -> Result<(), DrawError>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let shade = RGBColor(90, 90, 90);
    for (n, &(s, e)) in outages.iter().enumerate() {
        let x0 = p.x_at(s);
        let x1 = p.x_at(e).max(x0);
        let drawn = chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0, p.y_lo()), (x1, p.top)],
                shade.mix(0.15).filled(),
            )))
            .map_err(err)?;
        if n == 0 {
            drawn
                .label(format!(
                    "{cluster}: primary unreachable (lower bounds only)"
                ))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 16, y + 5)], shade.mix(0.3).filled())
                });
        }
    }
    Ok(())
}

/// One replica's bound band (lower..upper) and its lag line (each column's min..max).
fn draw_replica_lag<'a, Y>(
    chart: &mut LagChart<'a, Y>,
    p: &LagPlot,
    r: &ReplicaPlot,
    c: RGBColor,
) -> Result<(), DrawError>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let cols = r.columns.lag.cols.as_slice();
    for run in runs(cols) {
        let mut band: Vec<(f64, f64)> = run
            .iter()
            .map(|&(x, col)| (p.x_of(x), p.floor(col.hi)))
            .collect();
        band.extend(
            run.iter()
                .rev()
                .map(|&(x, col)| (p.x_of(x), p.floor(col.lo))),
        );
        chart
            .draw_series(std::iter::once(Polygon::new(band, c.mix(0.2).filled())))
            .map_err(err)?;
    }
    let mut first = true;
    for run in runs(cols) {
        let line = run
            .iter()
            .flat_map(|&(x, col)| [(p.x_of(x), p.floor(col.min)), (p.x_of(x), p.floor(col.max))]);
        let series = chart
            .draw_series(LineSeries::new(line, c.stroke_width(1)))
            .map_err(err)?;
        if first {
            series
                .label(format!("{} (band: lower..upper bound)", r.name))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
            first = false;
        }
    }
    Ok(())
}

/// Contiguous runs of non-empty columns, as `(column, extremes)`.
fn runs(cols: &[Option<Column>]) -> Vec<Vec<(usize, Column)>> {
    let mut out: Vec<Vec<(usize, Column)>> = Vec::new();
    let mut current = Vec::new();
    for (x, c) in cols.iter().enumerate() {
        match c {
            Some(c) => current.push((x, *c)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The vector's fixed scale: values beyond ±1 are clipped to it.
pub const VECTOR_LIMIT: f64 = 1.0;
/// Clipped values further out than this get a marker on the edge (a stopped applier
/// fits at -1 give or take fit noise, which is not worth a marker).
pub const VECTOR_MARK: f64 = 1.02;

fn vector_chart(
    area: &DrawingArea<SVGBackend, Shift>,
    replicas: &[ReplicaPlot],
    (t0, t1): (i64, i64),
    title: &str,
) -> Result<(), DrawError> {
    let columns = WIDTH_PX as usize;
    let with_date = t1 - t0 > 86_400_000_000;
    let x_of = |c: usize| c as f64 / columns as f64 * (t1 - t0) as f64 / 1e6;
    let x_max = (t1 - t0) as f64 / 1e6;
    let label = |x: &f64| time_label(t0 + (x * 1e6) as i64, with_date);
    let lim = VECTOR_LIMIT * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..x_max, -lim..lim)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (UTC)")
        .y_desc("vector (s/s)")
        .x_label_formatter(&label)
        .x_labels(8)
        .y_labels(9)
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, 0.0), (x_max, 0.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
    for (i, r) in replicas.iter().enumerate() {
        let cols = &r.columns.vector.cols;
        let c = color(i);
        let clip = |v: f64| v.clamp(-VECTOR_LIMIT, VECTOR_LIMIT);
        let mut first = true;
        for run in runs(cols) {
            let line = run
                .iter()
                .flat_map(|&(x, col)| [(x_of(x), clip(col.min)), (x_of(x), clip(col.max))]);
            let series = chart
                .draw_series(LineSeries::new(line, c.stroke_width(1)))
                .map_err(err)?;
            if first {
                series.label(r.name.to_string()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
                first = false;
            }
        }
        // Clipped values: a marker on the edge they left through.
        let marks = cols.iter().enumerate().filter_map(|(x, col)| {
            let col = col.as_ref()?;
            if col.max > VECTOR_MARK {
                Some((x_of(x), VECTOR_LIMIT))
            } else if col.min < -VECTOR_MARK {
                Some((x_of(x), -VECTOR_LIMIT))
            } else {
                None
            }
        });
        chart
            .draw_series(marks.map(|p| TriangleMarker::new(p, 3, c.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn cdf_chart(
    area: &DrawingArea<SVGBackend, Shift>,
    replicas: &[ReplicaPlot],
) -> Result<(), DrawError> {
    let curves: Vec<Vec<(f64, f64)>> = replicas
        .iter()
        .map(|r| {
            r.columns
                .distribution
                .cdf(WIDTH_PX as usize)
                .into_iter()
                .map(|(lag_us, share)| ((lag_us as f64 / 1e6).max(LOG_FLOOR_S), share))
                .collect()
        })
        .collect();
    let (lo, hi) = curves
        .iter()
        .flatten()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &(x, _)| {
            (lo.min(x), hi.max(x))
        });
    let (lo, hi) = (
        lo.min(hi / 10.0).max(LOG_FLOOR_S),
        hi.max(LOG_FLOOR_S * 10.0) * 1.2,
    );
    let mut chart = ChartBuilder::on(area)
        .caption("Lag distribution (cumulative)", ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("lag (s, log scale)")
        .y_desc("share of probe rounds at or below")
        .draw()
        .map_err(err)?;
    for (i, (r, curve)) in replicas.iter().zip(curves).enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(curve, c.stroke_width(2)))
            .map_err(err)?
            .label(r.name.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_keeps_every_extreme() {
        // A million samples with one spike up and one down hidden among them.
        let n = 1_000_000i64;
        let samples = (0..n).map(|i| {
            let v = match i {
                123_457 => 99.0,
                876_543 => -42.0,
                _ => (i % 100) as f64 / 100.0,
            };
            (i, v - 0.5, v, v + 0.5)
        });
        let cols = reduce(samples, 0, n - 1, 1000);
        assert_eq!(cols.len(), 1000);
        let all: Vec<Column> = cols.iter().map(|c| c.unwrap()).collect();
        let max = all.iter().map(|c| c.max).fold(f64::MIN, f64::max);
        let min = all.iter().map(|c| c.min).fold(f64::MAX, f64::min);
        let hi = all.iter().map(|c| c.hi).fold(f64::MIN, f64::max);
        assert_eq!((max, min, hi), (99.0, -42.0, 99.5));
        assert_eq!(all[123].max, 99.0);
        assert_eq!(all[876].min, -42.0);
        // Every column still spans the ordinary values.
        assert!(all.iter().all(|c| c.min <= 0.0 && c.max >= 0.99));
    }

    #[test]
    fn reduction_leaves_gaps_empty_and_skips_nan() {
        let samples = [
            (0, 0.0, 1.0, 2.0),
            (5, 0.0, f64::NAN, 0.0),
            (9, 0.0, 3.0, 4.0),
        ];
        let cols = reduce(samples.into_iter(), 0, 9, 10);
        assert!(cols[0].is_some() && cols[9].is_some());
        assert!(cols[1..9].iter().all(Option::is_none));
        assert_eq!(runs(&cols).len(), 2);
    }

    #[test]
    fn cdf_ends_at_one() {
        let mut d = Distribution::default();
        (1..=10_000).for_each(|v| d.record(v));
        let c = d.cdf(100);
        assert_eq!(c.first().unwrap().0, 1);
        assert_eq!(*c.last().unwrap(), (10_000, 1.0));
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }
}
