//! The replication vector (DESIGN.md section 2, after Jeremy Cole): how fast a replica
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
    let known: Vec<(i64, i64)> = points
        .iter()
        .filter_map(|p| Some((p.t_us, p.lag.point_us()?)))
        .collect();
    fit_known(&known)
}

/// [`fit`] over (time, point estimate) pairs, µs.
fn fit_known(points: &[(i64, i64)]) -> Option<Fit> {
    let n = points.len();
    if n < MIN_POINTS {
        return None;
    }
    let t0 = points[0].0;
    let xs = || points.iter().map(|p| (p.0 - t0) as f64 / 1e6);
    let ys = || points.iter().map(|p| p.1 as f64 / 1e6);
    let nf = n as f64;
    let mx = xs().sum::<f64>() / nf;
    let my = ys().sum::<f64>() / nf;
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (x, y) in xs().zip(ys()) {
        sxx += (x - mx) * (x - mx);
        sxy += (x - mx) * (y - my);
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let sse: f64 = xs()
        .zip(ys())
        .map(|(x, y)| {
            let r = y - my - slope * (x - mx);
            r * r
        })
        .sum();
    let stderr = if n > 2 {
        (sse / (nf - 2.0) / sxx).sqrt()
    } else {
        f64::INFINITY
    };
    Some(Fit {
        slope,
        stderr,
        points: n,
        span_us: points[n - 1].0 - t0,
    })
}

/// The vector at every point, fitted over the bounded points in `(t - window_us, t]`;
/// NaN at "at least" points and where that window holds fewer than [`MIN_POINTS`]
/// bounded points or covers less than half of `window_us` (after a gap, at the start).
pub fn vector_series(points: &[LagPoint], window_us: i64) -> Vec<f32> {
    let known: Vec<(i64, i64)> = points
        .iter()
        .filter_map(|p| Some((p.t_us, p.lag.point_us()?)))
        .collect();
    let mut vectors = known_vector_series(&known, window_us).into_iter();
    points
        .iter()
        .map(|p| match p.lag {
            super::lag::Lag::Bounded { .. } => vectors.next().unwrap_or(f32::NAN),
            _ => f32::NAN,
        })
        .collect()
}

/// [`vector_series`] over (time, point estimate) pairs, µs. One pass with running sums.
fn known_vector_series(points: &[(i64, i64)], window_us: i64) -> Vec<f32> {
    // Running sums over the window of x = seconds since `base_us`, y = lag seconds.
    // Times are re-based now and then so the sums keep their precision over long runs.
    const REBASE_US: i64 = 600_000_000;
    let mut out = Vec::with_capacity(points.len());
    let mut base_us = points.first().map_or(0, |p| p.0);
    let (mut sx, mut sy, mut sxx, mut sxy) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let xy = |p: &(i64, i64), base: i64| ((p.0 - base) as f64 / 1e6, p.1 as f64 / 1e6);
    let mut first = 0;
    for (i, p) in points.iter().enumerate() {
        let (x, y) = xy(p, base_us);
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
        while points[first].0 <= p.0 - window_us {
            let (x, y) = xy(&points[first], base_us);
            sx -= x;
            sy -= y;
            sxx -= x * x;
            sxy -= x * y;
            first += 1;
        }
        if points[first].0 - base_us > REBASE_US {
            base_us = points[first].0;
            (sx, sy, sxx, sxy) = (0.0, 0.0, 0.0, 0.0);
            for q in &points[first..=i] {
                let (x, y) = xy(q, base_us);
                sx += x;
                sy += y;
                sxx += x * x;
                sxy += x * y;
            }
        }
        let n = (i + 1 - first) as f64;
        let span = p.0 - points[first].0;
        let den = n * sxx - sx * sx;
        let v = if i + 1 - first >= MIN_POINTS && span * 2 >= window_us && den > 0.0 {
            -((n * sxy - sx * sy) / den) as f32
        } else {
            f32::NAN
        };
        out.push(v);
    }
    out
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
