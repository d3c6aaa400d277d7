//! The replication vector (docs/design.md, after Jeremy Cole): how fast a replica
//! falls behind or catches up. The replica reflects the primary as of `h(t) = t - lag(t)`;
//! `vector = dh/dt - 1 = -d(lag)/dt`, fitted by least squares over a trailing window.
//! 0 keeps up, -1 applies nothing, +0.5 catches up half a second per second.

use super::series::LagPoint;

/// Default fit window, µs.
pub const WINDOW_US: i64 = 1_000_000;

/// Fewest points a fit needs.
pub const MIN_POINTS: usize = 3;

/// A least-squares line through (time, lag) points. `slope` is seconds of lag gained per
/// second; `stderr` its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub slope: f64,
    pub stderr: f64,
    pub points: usize,
    /// Time covered by the points, µs.
    pub span_us: i64,
}

impl Fit {
    /// The vector of this fit: `-slope`.
    pub fn vector(&self) -> f64 {
        -self.slope
    }

    /// Whether the slope is clearly not noise: ten points or more and a t-statistic
    /// over 3.
    pub fn confident(&self) -> bool {
        self.points >= 10 && self.slope.abs() > 3.0 * self.stderr
    }
}

/// Least-squares fit of the point estimates of the bounded rounds over time ("at least"
/// rounds have no point estimate). `None` with fewer than [`MIN_POINTS`] of them or
/// when they all share one time.
pub fn fit(points: &[LagPoint]) -> Option<Fit> {
    fit_iter(points)
}

/// [`fit`] of points in any container (the live picture keeps a ring of them).
pub fn fit_iter<'a>(points: impl IntoIterator<Item = &'a LagPoint>) -> Option<Fit> {
    let mut sums = FitSums::default();
    points.into_iter().for_each(|p| sums.add(p));
    sums.fit()
}

/// The running sums a least-squares fit needs, fed point by point: a fit over a stretch
/// of any length in constant memory. x is seconds since the first point added, y the
/// lag in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FitSums {
    n: usize,
    first_us: i64,
    last_us: i64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
    syy: f64,
}

impl FitSums {
    /// Adds a point; those without a point estimate ("at least") are left out.
    pub fn add(&mut self, p: &LagPoint) {
        if let Some(y_us) = p.lag.point_us() {
            self.add_known(p.t_us, y_us);
        }
    }

    /// Adds a (time, lag) pair, µs.
    pub fn add_known(&mut self, t_us: i64, y_us: i64) {
        if self.n == 0 {
            self.first_us = t_us;
        }
        self.n += 1;
        self.last_us = t_us;
        let (x, y) = ((t_us - self.first_us) as f64 / 1e6, y_us as f64 / 1e6);
        self.sx += x;
        self.sy += y;
        self.sxx += x * x;
        self.sxy += x * y;
        self.syy += y * y;
    }

    /// The fit of the points added; `None` with fewer than [`MIN_POINTS`] or when they
    /// all share one time.
    pub fn fit(&self) -> Option<Fit> {
        if self.n < MIN_POINTS {
            return None;
        }
        let nf = self.n as f64;
        let sxx = self.sxx - self.sx * self.sx / nf;
        let sxy = self.sxy - self.sx * self.sy / nf;
        let syy = self.syy - self.sy * self.sy / nf;
        if sxx <= 0.0 {
            return None;
        }
        let slope = sxy / sxx;
        let sse = (syy - slope * sxy).max(0.0);
        let stderr = if self.n > 2 {
            (sse / (nf - 2.0) / sxx).sqrt()
        } else {
            f64::INFINITY
        };
        Some(Fit {
            slope,
            stderr,
            points: self.n,
            span_us: self.last_us - self.first_us,
        })
    }
}

/// The vector at every point, fitted over the bounded points in `(t - window_us, t]`;
/// NaN at "at least" points and where that window holds fewer than [`MIN_POINTS`]
/// bounded points or covers less than half of `window_us` (after a gap, at the start).
pub fn vector_series(points: &[LagPoint], window_us: i64) -> Vec<f32> {
    let mut window = VectorWindow::new(window_us);
    points.iter().map(|p| window.push(p)).collect()
}

/// [`vector_series`] point by point: the trailing window's bounded points and their
/// running sums. Holds one window of points.
#[derive(Debug, Clone)]
pub struct VectorWindow {
    window_us: i64,
    points: std::collections::VecDeque<(i64, i64)>,
    /// x = seconds since `base_us`, y = lag seconds. Times are re-based now and then so
    /// the sums keep their precision over long runs.
    base_us: Option<i64>,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
}

impl VectorWindow {
    const REBASE_US: i64 = 600_000_000;

    pub fn new(window_us: i64) -> Self {
        VectorWindow {
            window_us,
            points: std::collections::VecDeque::new(),
            base_us: None,
            sx: 0.0,
            sy: 0.0,
            sxx: 0.0,
            sxy: 0.0,
        }
    }

    fn xy(&self, p: (i64, i64)) -> (f64, f64) {
        let base = self.base_us.unwrap_or(0);
        ((p.0 - base) as f64 * 1e-6, p.1 as f64 * 1e-6)
    }

    fn sum(&mut self, p: (i64, i64), sign: f64) {
        let (x, y) = self.xy(p);
        self.sx += sign * x;
        self.sy += sign * y;
        self.sxx += sign * x * x;
        self.sxy += sign * x * y;
    }

    /// The vector at the next point (in time order): NaN as [`vector_series`] says.
    pub fn push(&mut self, p: &LagPoint) -> f32 {
        let Some(y_us) = p.lag.point_us() else {
            return f32::NAN;
        };
        let point = (p.t_us, y_us);
        self.base_us.get_or_insert(p.t_us);
        self.points.push_back(point);
        self.sum(point, 1.0);
        while let Some(&old) = self.points.front()
            && old.0 <= p.t_us - self.window_us
        {
            self.sum(old, -1.0);
            self.points.pop_front();
        }
        let first = *self.points.front().expect("holds the point just added");
        if first.0 - self.base_us.unwrap_or(0) > Self::REBASE_US {
            self.base_us = Some(first.0);
            (self.sx, self.sy, self.sxx, self.sxy) = (0.0, 0.0, 0.0, 0.0);
            for i in 0..self.points.len() {
                self.sum(self.points[i], 1.0);
            }
        }
        let n = self.points.len() as f64;
        let span = p.t_us - first.0;
        let den = n * self.sxx - self.sx * self.sx;
        if self.points.len() >= MIN_POINTS && span * 2 >= self.window_us && den > 0.0 {
            -((n * self.sxy - self.sx * self.sy) / den) as f32
        } else {
            f32::NAN
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points every `step_us` from `from_us` to `to_us` with lag `f(t_s)` seconds.
    fn series(from_us: i64, to_us: i64, step_us: i64, f: impl Fn(f64) -> f64) -> Vec<LagPoint> {
        (from_us..to_us)
            .step_by(step_us as usize)
            .map(|t| {
                let lag = (f(t as f64 / 1e6) * 1e6) as i64;
                LagPoint {
                    t_us: t,
                    lag: crate::analysis::lag::Lag::Bounded {
                        lo_us: lag - 500,
                        hi_us: lag + 500,
                    },
                }
            })
            .collect()
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn vector_of_a_ramp_a_stall_and_a_catch_up() {
        // Falling behind 0.25 s per second.
        let ramp = series(0, 10_000_000, 10_000, |t| 0.25 * t);
        let v = vector_series(&ramp, WINDOW_US);
        assert!(v[..40].iter().all(|x| x.is_nan()), "under half a window");
        assert!(v[60..].iter().all(|&x| close(x as f64, -0.25, 1e-3)));
        assert!(close(fit(&ramp).unwrap().vector(), -0.25, 1e-4));

        // A stopped applier: lag grows one second per second.
        let stall = series(0, 5_000_000, 10_000, |t| t);
        let v = vector_series(&stall, WINDOW_US);
        assert!(v[100..].iter().all(|&x| close(x as f64, -1.0, 1e-3)));

        // Catching up 10 s of lag at 3 s per second of primary time: vector +2.
        let catch_up = series(0, 4_000_000, 10_000, |t| (10.0 - 2.0 * t).max(0.0));
        let v = vector_series(&catch_up, WINDOW_US);
        assert!(close(v[300] as f64, 2.0, 1e-3));
        let f = fit(&catch_up[..400]).unwrap();
        assert!(f.confident() && close(f.vector(), 2.0, 1e-3));
    }

    #[test]
    fn vector_is_nan_after_a_gap_and_stays_precise_over_days() {
        let mut pts = series(0, 2_000_000, 100_000, |_| 0.001);
        pts.extend(series(10_000_000, 12_000_000, 100_000, |_| 0.001));
        let v = vector_series(&pts, WINDOW_US);
        assert!(v[20..24].iter().all(|x| x.is_nan()));
        assert!(close(v[39] as f64, 0.0, 1e-6));

        // Three days in, a ramp is still measured exactly.
        let day3 = 3 * 86_400_000_000;
        let mut long = series(0, 1_000_000, 100_000, |_| 0.0);
        long.extend(series(day3, day3 + 3_000_000, 10_000, |t| {
            0.5 * (t - day3 as f64 / 1e6)
        }));
        let v = vector_series(&long, WINDOW_US);
        assert!(close(*v.last().unwrap() as f64, -0.5, 1e-3));
    }

    #[test]
    fn at_least_rounds_have_no_vector_and_do_not_enter_fits() {
        let mut pts = series(0, 3_000_000, 10_000, |t| 0.5 * t);
        // A primary outage in the middle: "at least 0" says nothing about the slope.
        for p in &mut pts[100..150] {
            p.lag = crate::analysis::lag::Lag::AtLeast { lo_us: 0 };
        }
        let v = vector_series(&pts, WINDOW_US);
        assert!(v[100..150].iter().all(|x| x.is_nan()));
        assert!(close(v[299] as f64, -0.5, 1e-3));
        assert!(close(fit(&pts).unwrap().vector(), -0.5, 1e-4));
        assert_eq!(fit(&pts).unwrap().points, 250);
    }

    #[test]
    fn noise_is_not_confident() {
        let flat = series(0, 1_000_000, 10_000, |t| {
            0.001 * ((t * 1e3) as i64 % 3) as f64
        });
        let f = fit(&flat).unwrap();
        assert!(!f.confident(), "{f:?}");
    }
}
