//! Distribution figures over lag points: percentiles and time above a threshold, fed
//! point by point.

use super::series::LagPoint;

/// Percentiles of a set of values (nearest rank), in the values' unit.
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

/// Percentiles of values (µs) recorded one by one, in memory that does not grow with
/// their number: an HdrHistogram of three significant digits, so a percentile is exact
/// up to [`Distribution::EXACT_BELOW_US`] and within [`Distribution::RELATIVE_ERROR`]
/// above (never below the true value); count, mean and max are exact.
#[derive(Debug, Clone)]
pub struct Distribution {
    hist: hdrhistogram::Histogram<u64>,
    /// Counts of the values under [`Distribution::EXACT_BELOW_US`], by value: most
    /// values are, and counting them here is several times cheaper than recording
    /// them. They join `hist` when it is read, exactly as recording them would.
    small: Vec<u64>,
    sum: i128,
    max: i64,
}

impl Default for Distribution {
    fn default() -> Self {
        Distribution {
            hist: hdrhistogram::Histogram::new(3).expect("3 significant digits are allowed"),
            small: vec![0; Self::EXACT_BELOW_US as usize],
            sum: 0,
            max: 0,
        }
    }
}

impl Distribution {
    /// Values under this are counted exactly, µs.
    pub const EXACT_BELOW_US: i64 = 2_048;
    /// The largest relative error of a percentile over that.
    pub const RELATIVE_ERROR: f64 = 1.0 / 1024.0;

    /// Records a value; a negative one counts as 0.
    pub fn record(&mut self, value: i64) {
        let v = value.max(0);
        match self.small.get_mut(v as usize) {
            Some(count) => *count += 1,
            // An auto-resizing histogram takes any u64.
            None => drop(self.hist.record(v as u64)),
        }
        self.sum += i128::from(v);
        // Values are at least 0, where `max` starts.
        self.max = self.max.max(v);
    }

    /// Every value recorded, in one histogram.
    fn histogram(&self) -> std::borrow::Cow<'_, hdrhistogram::Histogram<u64>> {
        if self.small.iter().all(|&c| c == 0) {
            return std::borrow::Cow::Borrowed(&self.hist);
        }
        let mut all = self.hist.clone();
        for (v, &n) in self.small.iter().enumerate().filter(|(_, n)| **n > 0) {
            // Auto-resizing, and these values are in range: it cannot fail.
            let _ = all.record_n(v as u64, n);
        }
        std::borrow::Cow::Owned(all)
    }

    /// The cumulative distribution at `n + 1` evenly spaced shares from 0 to 1:
    /// `(value, share of values at or below it)`; empty when nothing was recorded.
    pub fn cdf(&self, n: usize) -> Vec<(i64, f64)> {
        let hist = self.histogram();
        if hist.is_empty() {
            return Vec::new();
        }
        let n = n.max(1);
        (0..=n)
            .map(|k| {
                let share = k as f64 / n as f64;
                let v = (hist.value_at_quantile(share) as i64).min(self.max);
                (v, share)
            })
            .collect()
    }

    /// Nearest-rank percentiles; `None` when nothing was recorded.
    pub fn percentiles(&self) -> Option<Percentiles> {
        let hist = self.histogram();
        let n = hist.len();
        if n == 0 {
            return None;
        }
        let at = |q: f64| (hist.value_at_quantile(q) as i64).min(self.max);
        Some(Percentiles {
            count: n as usize,
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: self.max,
            mean: self.sum as f64 / n as f64,
        })
    }
}

/// [`time_above`] point by point.
#[derive(Debug, Clone, Copy)]
pub struct TimeAbove {
    threshold_us: i64,
    max_step_us: i64,
    prev: Option<LagPoint>,
    total_us: i64,
}

impl TimeAbove {
    pub fn new(threshold_us: i64, max_step_us: i64) -> Self {
        TimeAbove {
            threshold_us,
            max_step_us,
            prev: None,
            total_us: 0,
        }
    }

    /// Feeds the next point (in time order).
    pub fn push(&mut self, p: &LagPoint) {
        if let Some(prev) = self.prev
            && prev.lag.judged_us().is_some_and(|l| l > self.threshold_us)
        {
            self.total_us += (p.t_us - prev.t_us).min(self.max_step_us);
        }
        self.prev = Some(*p);
    }

    pub fn total_us(&self) -> i64 {
        self.total_us
    }
}

/// Time during which the judged lag ([`crate::analysis::lag::Lag::judged_us`]) was
/// above `threshold_us`, in µs: each point stands for the time until the next one, but
/// never more than `max_step_us` (a gap in the data counts for nothing).
pub fn time_above(points: &[LagPoint], threshold_us: i64, max_step_us: i64) -> i64 {
    let mut above = TimeAbove::new(threshold_us, max_step_us);
    points.iter().for_each(|p| above.push(p));
    above.total_us()
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
        let mut d = Distribution::default();
        values.iter().for_each(|&v| d.record(v));
        values.sort_unstable();
        let sorted = values;
        let p = d.percentiles().unwrap();
        let n = sorted.len();
        for (got, q) in [(p.p50, 0.5), (p.p90, 0.9), (p.p99, 0.99), (p.p999, 0.999)] {
            let exact = sorted[rank(n, q)];
            assert!(got >= exact, "q {q}: {got} under {exact}");
            let error = (got - exact) as f64 / exact.max(1) as f64;
            assert!(
                error <= Distribution::RELATIVE_ERROR,
                "q {q}: {got} vs {exact}"
            );
        }
        assert_eq!(p.max, sorted[n - 1]);
        let mean = sorted.iter().sum::<i64>() as f64 / n as f64;
        assert!((p.mean - mean).abs() < 1e-6);
        // Small values are exact.
        let mut d = Distribution::default();
        (0..2_000).rev().for_each(|v| d.record(v));
        let p = d.percentiles().unwrap();
        assert_eq!((p.p50, p.p90, p.p999, p.max), (999, 1_799, 1_997, 1_999));
        // Nearest rank on 10 values: p50 is the 5th, p90 the 9th.
        assert_eq!(rank(10, 0.5), 4);
        assert_eq!(rank(10, 0.9), 8);
        assert_eq!(rank(1, 0.999), 0);
        assert_eq!(Distribution::default().percentiles(), None);
    }

    #[test]
    fn small_values_counted_apart_read_as_if_recorded() {
        let mut x = crate::xorshift::XorShift::new(3);
        let mut d = Distribution::default();
        let mut plain = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for i in 0..50_000 {
            let v = match i % 4 {
                0 => x.below(2_048) as i64,
                1 => [-5, 0, 2_047, 2_048, 2_049][i % 5],
                2 => x.below(100_000_000) as i64,
                _ => 300 + x.below(500) as i64,
            };
            d.record(v);
            plain.record(v.max(0) as u64).unwrap();
        }
        let p = d.percentiles().unwrap();
        let at = |q: f64| plain.value_at_quantile(q) as i64;
        assert_eq!(p.count as u64, plain.len());
        assert_eq!(
            (p.p50, p.p90, p.p99, p.p999),
            (at(0.5), at(0.9), at(0.99), at(0.999))
        );
        let cdf = d.cdf(50);
        assert!(cdf.iter().all(|&(v, share)| v == at(share).min(p.max)));
        // Large values only: nothing counted apart.
        let mut d = Distribution::default();
        d.record(5_000);
        assert_eq!(d.percentiles().unwrap().p50, 5_000);
    }

    #[test]
    fn time_above_counts_steps_and_caps_gaps() {
        let p = |t_us, lag_us| LagPoint::bounded(t_us, lag_us, lag_us);
        let points = [p(0, 0), p(100, 5), p(200, 5), p(10_000, 5), p(10_100, 0)];
        // Above 1 from 100 to 200 (100), from 200 over a gap capped at 300, then 100.
        assert_eq!(time_above(&points, 1, 300), 100 + 300 + 100);
    }
}
