//! A small xorshift64 generator: the status poller's jitter, and deterministic data for
//! tests and benchmarks. Nothing that uses it needs statistical or cryptographic
//! quality, so it is not worth a crate.

/// Marsaglia's xorshift64 (shifts 13, 7, 17).
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (made odd: a zero state would stay zero).
    pub fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// In `0..n` (`n` above 0), with a modulo bias too small to matter here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_range_and_cover_it() {
        let mut x = XorShift::new(0);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[x.below(10) as usize] = true;
            let u = x.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert!(seen.iter().all(|&s| s));
    }
}
