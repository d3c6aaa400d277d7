//! Bit-level coding under the span columns: zig-zag mapping of residuals, Rice codes
//! with an escape for outliers, and the bit writer and reader.

pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Quotients at or above this are escaped: written as the bit length and raw bits, so an
/// outlier (a 5 s gap in a 100 ms series) costs a few bytes, not thousands of bits.
pub(super) const RICE_ESCAPE: u64 = 24;

/// Bits that value `v` costs with Rice parameter `k`.
pub(super) fn rice_bits(v: u64, k: u8) -> u64 {
    let q = v >> k;
    if q < RICE_ESCAPE {
        q + 1 + k as u64
    } else {
        RICE_ESCAPE + 6 + (64 - v.leading_zeros() as u64).max(1)
    }
}

/// The Rice parameter that makes a column smallest. The optimum lies near log2 of the
/// column's median (outliers are escaped, so they do not move it), so only a few
/// candidates around it are costed: the open chunk is re-encoded at every flush.
pub(super) fn best_rice_k(col: &[u64]) -> u8 {
    if col.is_empty() {
        return 0;
    }
    let guess = 64 - quantile(col, 1, 2).leading_zeros() as i32;
    ((guess - 3).max(0)..=(guess + 2).min(40))
        .map(|k| k as u8)
        .min_by_key(|&k| col.iter().map(|&v| rice_bits(v, k)).sum::<u64>())
        .unwrap_or(0)
}

#[derive(Default)]
pub(super) struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    nbits: u32,
}

impl BitWriter {
    /// Appends the low `n` bits of `v` (n <= 57), most significant first.
    pub(super) fn bits(&mut self, v: u64, n: u32) {
        debug_assert!(n <= 57);
        if n == 0 {
            return;
        }
        self.acc = (self.acc << n) | (v & ((1u64 << n) - 1));
        self.nbits += n;
        while self.nbits >= 8 {
            self.nbits -= 8;
            self.bytes.push((self.acc >> self.nbits) as u8);
        }
    }

    pub(super) fn wide(&mut self, v: u64, n: u32) {
        if n > 32 {
            self.bits(v >> 32, n - 32);
            self.bits(v & 0xffff_ffff, 32);
        } else {
            self.bits(v, n);
        }
    }

    pub(super) fn rice(&mut self, v: u64, k: u8) {
        let q = v >> k;
        if q < RICE_ESCAPE {
            for _ in 0..q {
                self.bits(1, 1);
            }
            self.bits(0, 1);
            self.wide(v, k as u32);
        } else {
            for _ in 0..RICE_ESCAPE {
                self.bits(1, 1);
            }
            let len = (64 - v.leading_zeros()).max(1);
            self.bits((len - 1) as u64, 6);
            self.wide(v, len);
        }
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        if self.nbits > 0 {
            let pad = 8 - self.nbits;
            self.bits(0, pad);
        }
        self.bytes
    }
}

pub(super) struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, pos: 0 }
    }

    pub(super) fn bit(&mut self) -> Option<u64> {
        let byte = *self.bytes.get(self.pos / 8)?;
        let b = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Some(b as u64)
    }

    /// The next 64 bits from the current position, zero past the end (at least 57 of
    /// them are real bits when that many remain).
    #[inline]
    pub(super) fn peek64(&self) -> u64 {
        let at = self.pos / 8;
        if let Some(word) = self.bytes.get(at..at + 8) {
            let word: [u8; 8] = word.try_into().expect("8 bytes");
            return u64::from_be_bytes(word) << (self.pos % 8);
        }
        let mut buf = [0u8; 8];
        let tail = self.bytes.get(at..).unwrap_or_default();
        let n = tail.len().min(8);
        buf[..n].copy_from_slice(&tail[..n]);
        u64::from_be_bytes(buf) << (self.pos % 8)
    }

    /// Moves `n` bits on, if the stream holds them.
    pub(super) fn advance(&mut self, n: usize) -> Option<()> {
        (self.pos + n <= self.bytes.len() * 8).then(|| self.pos += n)
    }

    pub(super) fn bits(&mut self, n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        if n <= 56 {
            let v = self.peek64() >> (64 - n);
            self.advance(n as usize)?;
            return Some(v);
        }
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    /// Appends `len` Rice values with parameter `k` to `out`: exactly what `len` calls
    /// of [`BitReader::rice`] give, faster. The next bits are held in a word that is
    /// shifted as values are taken and loaded again only when it runs short, so most
    /// values need no memory read. With `k` 0 a zero is a single 0 bit, and steady
    /// columns (grid steps, beat numbers) are mostly zeros: those are taken up to 57 at
    /// a time.
    pub(super) fn rice_column(&mut self, k: u8, len: usize, out: &mut Vec<u64>) -> Option<()> {
        let end = out.len() + len;
        out.reserve(len);
        let total_bits = self.bytes.len() * 8;
        // `w` holds the stream from `self.pos` on; its first `avail` bits are the
        // stream's (at least 57 right after a load), the rest zeros.
        let load = |r: &BitReader| (r.peek64(), 64 - (r.pos % 8) as u64);
        let (mut w, mut avail) = load(self);
        while out.len() < end {
            if k == 0 {
                let left_bits = total_bits - self.pos.min(total_bits);
                let zeros = (w.leading_zeros() as u64)
                    .min(avail)
                    .min(57)
                    .min(left_bits as u64)
                    .min((end - out.len()) as u64);
                if zeros > 0 {
                    out.resize(out.len() + zeros as usize, 0);
                    self.advance(zeros as usize)?;
                    (w, avail) = (w << zeros, avail - zeros);
                    continue;
                }
            }
            let q = (!w).leading_zeros() as u64;
            let n = q + 1 + k as u64;
            if q < RICE_ESCAPE && n <= 57 && n <= avail {
                let low = if k == 0 {
                    0
                } else {
                    (w << (q + 1)) >> (64 - k as u32)
                };
                self.advance(n as usize)?;
                out.push((q << k) | low);
                (w, avail) = (w << n, avail - n);
            } else if avail < 57 {
                (w, avail) = load(self);
            } else {
                out.push(self.rice(k)?);
                (w, avail) = load(self);
            }
        }
        Some(())
    }

    #[inline]
    pub(super) fn rice(&mut self, k: u8) -> Option<u64> {
        // Fast path: the unary quotient and the k low bits lie within the next 57 bits.
        let w = self.peek64();
        let q = (!w).leading_zeros() as u64;
        if q < RICE_ESCAPE && q + 1 + k as u64 <= 57 {
            let low = if k == 0 {
                0
            } else {
                (w << (q + 1)) >> (64 - k as u32)
            };
            self.advance((q + 1 + k as u64) as usize)?;
            return Some((q << k) | low);
        }
        let mut q = 0u64;
        while q < RICE_ESCAPE {
            if self.bit()? == 0 {
                let low = self.bits(k as u32)?;
                return Some((q << k) | low);
            }
            q += 1;
        }
        let len = self.bits(6)? as u32 + 1;
        self.bits(len)
    }
}

/// The value at fraction `num / den` of the sorted values (0 for none).
pub(super) fn quantile<T: Ord + Copy + Default>(values: &[T], num: usize, den: usize) -> T {
    if values.is_empty() {
        return T::default();
    }
    let mut v = values.to_vec();
    let at = (v.len() * num / den).min(v.len() - 1);
    *v.select_nth_unstable(at).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_decodes_as_value_after_value_does() {
        let mut x = crate::xorshift::XorShift::new(17);
        for round in 0..400 {
            let k = (x.below(64)) as u8;
            let len = x.below(300) as usize;
            // Mostly small values, some zeros runs, some outliers that are escaped.
            let col: Vec<u64> = (0..len)
                .map(|_| match x.below(10) {
                    0..=3 => 0,
                    4..=7 => x.below(1 << k.min(20)) + x.below(4),
                    8 => x.next_u64() >> x.below(64),
                    _ => x.next_u64(),
                })
                .collect();
            let mut w = BitWriter::default();
            col.iter().for_each(|&v| w.rice(v, k));
            let mut bytes = w.finish();
            // Now and then a stream cut short, which both must refuse alike.
            if round % 5 == 0 && !bytes.is_empty() {
                bytes.truncate(x.below(bytes.len() as u64) as usize);
            }
            let mut one = BitReader::new(&bytes);
            let want: Option<Vec<u64>> = (0..len).map(|_| one.rice(k)).collect();
            let mut all = BitReader::new(&bytes);
            let mut got = Vec::new();
            let ok = all.rice_column(k, len, &mut got);
            match want {
                Some(want) => {
                    assert_eq!(ok, Some(()), "round {round} k {k}");
                    assert_eq!(got, want, "round {round} k {k}");
                    assert_eq!(all.pos, one.pos, "round {round} k {k}");
                }
                None => assert_eq!(ok, None, "round {round} k {k}"),
            }
        }
    }

    #[test]
    fn rice_parameter_search_finds_the_optimum() {
        let cost = |col: &[u64], k: u8| col.iter().map(|&v| rice_bits(v, k)).sum::<u64>();
        let columns: Vec<Vec<u64>> = vec![
            vec![0; 100],
            (0..1000).map(|i| (i * 7919) % 2000).collect(),
            (0..1000)
                .map(|i| if i % 50 == 0 { 5_000_000 } else { i % 3 })
                .collect(),
            (0..500).map(|i| 300 + (i * 31) % 200).collect(),
        ];
        for col in &columns {
            let best = (0..=40).map(|k| cost(col, k)).min().unwrap();
            assert_eq!(cost(col, best_rice_k(col)), best);
        }
    }
}
