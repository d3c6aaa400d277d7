//! Distribution figures over lag points: exact percentiles and time above a threshold.

use super::series::LagPoint;

/// Exact percentiles of a set of values (nearest rank), in the values' unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub p50: i64,
    pub p90: i64,
    pub p99: i64,
    pub p999: i64,
    pub max: i64,
    pub mean: f64,
}

/// Index of quantile `q` (0..=1) among `n` sorted values, by nearest rank.
pub fn rank(n: usize, q: f64) -> usize {
    ((q * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1
}

/// Exact percentiles; reorders `values`. `None` when empty. Runs in linear time: each
/// quantile is selected within the part above the previous one.
pub fn percentiles(values: &mut [i64]) -> Option<Percentiles> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let mut out = [0i64; 4];
    let mut from = 0;
    for (slot, q) in out.iter_mut().zip([0.5, 0.9, 0.99, 0.999]) {
        let k = rank(n, q);
        let (_, v, _) = values[from..].select_nth_unstable(k - from);
        *slot = *v;
        from = k;
    }
    let max = *values[from..].iter().max().expect("non-empty");
    Some(Percentiles {
        count: n,
        p50: out[0],
        p90: out[1],
        p99: out[2],
        p999: out[3],
        max,
        mean,
    })
}

/// Time during which the judged lag ([`crate::analysis::lag::Lag::judged_us`]) was
/// above `threshold_us`, in µs: each point stands for the time until the next one, but
/// never more than `max_step_us` (a gap in the data counts for nothing).
pub fn time_above(points: &[LagPoint], threshold_us: i64, max_step_us: i64) -> i64 {
    points
        .windows(2)
        .filter(|w| w[0].lag.judged_us().is_some_and(|l| l > threshold_us))
        .map(|w| (w[1].t_us - w[0].t_us).min(max_step_us))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_an_exact_sort() {
        // A skewed, shuffled series with duplicates.
        let mut x = crate::xorshift::XorShift::new(0x9E37_79B9_7F4A_7C15);
        let mut values: Vec<i64> = (0..10_007)
            .map(|_| {
                let r = x.next_u64();
                let u = (r % 1_000_000) as i64;
                u * u / 1_000_000 + (r % 7) as i64
            })
            .collect();
        let mut sorted = values.clone();
        sorted.sort_unstable();
        let p = percentiles(&mut values).unwrap();
        let n = sorted.len();
        assert_eq!(p.p50, sorted[rank(n, 0.5)]);
        assert_eq!(p.p90, sorted[rank(n, 0.9)]);
        assert_eq!(p.p99, sorted[rank(n, 0.99)]);
        assert_eq!(p.p999, sorted[rank(n, 0.999)]);
        assert_eq!(p.max, sorted[n - 1]);
        let mean = sorted.iter().sum::<i64>() as f64 / n as f64;
        assert!((p.mean - mean).abs() < 1e-6);
        // Nearest rank on 10 values: p50 is the 5th, p90 the 9th.
        assert_eq!(rank(10, 0.5), 4);
        assert_eq!(rank(10, 0.9), 8);
        assert_eq!(rank(1, 0.999), 0);
        assert_eq!(percentiles(&mut []), None);
    }

    #[test]
    fn time_above_counts_steps_and_caps_gaps() {
        let p = |t_us, lag_us| LagPoint::bounded(t_us, lag_us, lag_us);
        let points = [p(0, 0), p(100, 5), p(200, 5), p(10_000, 5), p(10_100, 0)];
        // Above 1 from 100 to 200 (100), from 200 over a gap capped at 300, then 100.
        assert_eq!(time_above(&points, 1, 300), 100 + 300 + 100);
    }
}
