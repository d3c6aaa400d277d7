//! Span chunks: beats and observations as columns of residuals from predictions, Rice
//! coded (see the module above and `docs/store-format.md`).

use serde::{Deserialize, Serialize};

use super::bits::*;
use super::{DecodeError, corrupt};
use crate::samples::{Beat, Observation, Outcome, Probe};

/// One span: the common shape of a beat and an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub start_us: i64,
    pub end_us: i64,
    pub seq: u64,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// An observation's follow-up mark (always false for beats).
    pub follow_up: bool,
    /// How an observation was taken (always poll for beats).
    pub probe: Probe,
}

impl From<&Beat> for Span {
    fn from(b: &Beat) -> Span {
        Span {
            start_us: b.t_send_us,
            end_us: b.t_done_us,
            seq: b.seq,
            outcome: b.outcome,
            reason: b.reason.clone(),
            follow_up: false,
            probe: Probe::Poll,
        }
    }
}

impl From<Span> for Beat {
    fn from(s: Span) -> Beat {
        Beat {
            seq: s.seq,
            t_send_us: s.start_us,
            t_done_us: s.end_us,
            outcome: s.outcome,
            reason: s.reason,
        }
    }
}

impl Span {
    /// The span of an observation. A failed read has no visible beat: it is stored with
    /// `prev_seq` (the previous span's beat), which costs one bit; decoding drops it again.
    pub fn from_observation(o: &Observation, prev_seq: u64) -> Span {
        Span {
            start_us: o.r_start_us,
            end_us: o.r_end_us,
            seq: o.seq.unwrap_or(prev_seq),
            outcome: o.outcome,
            reason: o.reason.clone(),
            follow_up: o.follow_up,
            probe: o.probe,
        }
    }
}

impl From<Span> for Observation {
    fn from(s: Span) -> Observation {
        Observation {
            r_start_us: s.start_us,
            r_end_us: s.end_us,
            seq: (s.outcome == Outcome::Ok).then_some(s.seq),
            outcome: s.outcome,
            reason: s.reason,
            follow_up: s.follow_up,
            probe: s.probe,
        }
    }
}

/// The stored form of a span chunk (postcard).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanChunk {
    pub count: u32,
    /// Start of the first span, UTC microseconds.
    pub t0_us: i64,
    /// The grid the starts follow: its period in nanoseconds (fitted to the chunk).
    pub step_ns: i64,
    /// Median offset of a start from its grid point, microseconds.
    pub offset_us: i64,
    /// Median duration (end - start), microseconds.
    pub dur_us: i64,
    /// Beat number of the first span.
    pub seq0: u64,
    /// Number of runs of equal outcomes.
    pub runs: u32,
    /// Rice parameters of the columns: grid step, offset, follow-up gap, duration, seq,
    /// run outcome, run length.
    pub k: [u8; 7],
    /// The seven columns, bit-packed one after the other.
    #[serde(with = "byte_buf")]
    pub bits: Vec<u8>,
    /// Failure reasons by span index (only spans whose outcome is not Ok).
    pub notes: Vec<(u32, String)>,
    /// Format 2: runs of equal follow-up marks, alternating from "first read" (0 in
    /// format 1 chunks, which carry no marks). Stored after the fields above, see
    /// [`SpanChunk::to_bytes`].
    #[serde(skip)]
    pub mark_runs: u32,
    /// Format 2: Rice parameter of the mark-run column, the eighth in `bits`.
    #[serde(skip)]
    pub k_mark: u8,
    /// Runs of equal probe kinds (0: every span is a poll, and nothing of this is
    /// stored). Stored after the mark fields, see [`SpanChunk::to_bytes`]; no format
    /// change: older readers stop before it.
    #[serde(skip)]
    pub probe_runs: u32,
    /// Rice parameters of the probe-run columns (each run's [`Probe::code`], its
    /// length - 1), the ninth and tenth in `bits`.
    #[serde(skip)]
    pub k_probe: [u8; 2],
}

impl SpanChunk {
    /// The stored bytes: the format 1 layout (postcard) followed by the format 2 mark
    /// fields `(mark_runs, k_mark)` (postcard), so both formats share one reader; then,
    /// when some span came from a binary log stream, `(probe_runs, k_probe)`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, postcard::Error> {
        let mut bytes = postcard::to_stdvec(self)?;
        bytes.extend(postcard::to_stdvec(&(self.mark_runs, self.k_mark))?);
        if self.probe_runs > 0 {
            bytes.extend(postcard::to_stdvec(&(self.probe_runs, self.k_probe))?);
        }
        Ok(bytes)
    }

    /// Reads a chunk of either format: a format 1 chunk ends after `notes`.
    pub fn from_bytes(bytes: &[u8]) -> Result<SpanChunk, postcard::Error> {
        let (mut chunk, rest): (SpanChunk, &[u8]) = postcard::take_from_bytes(bytes)?;
        if !rest.is_empty() {
            let ((runs, k), rest): ((u32, u8), _) = postcard::take_from_bytes(rest)?;
            (chunk.mark_runs, chunk.k_mark) = (runs, k);
            if !rest.is_empty() {
                let ((runs, k), _): ((u32, [u8; 2]), _) = postcard::take_from_bytes(rest)?;
                (chunk.probe_runs, chunk.k_probe) = (runs, k);
            }
        }
        Ok(chunk)
    }
}

/// A byte vector as serde "bytes" rather than a sequence of u8. Postcard writes both as
/// a varint length and the raw bytes, so stores written either way read the same; as
/// bytes they decode in one copy instead of one visitor call per byte.
mod byte_buf {
    use serde::{Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Vec<u8>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element()? {
                    v.push(b);
                }
                Ok(v)
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

/// The grid point `g` of a chunk: `t0 + g * step_ns / 1000`, in whole microseconds.
fn grid_us(t0_us: i64, step_ns: i64, g: i64) -> i64 {
    // Wrapping throughout: encoder and decoder compute the same prediction, so any
    // residual, however absurd the input, round-trips exactly.
    // The product nearly always fits in 64 bits, where the division is much cheaper and
    // gives the same quotient.
    let offset = match g.checked_mul(step_ns) {
        Some(p) => p.div_euclid(1000),
        None => (g as i128 * step_ns as i128).div_euclid(1000) as i64,
    };
    t0_us.wrapping_add(offset)
}

/// [`grid_us`] slot after slot, as a decoder walks a chunk: a step to the next slot
/// adds the step's whole microseconds and carries its remainder, with no division.
/// Gives exactly what `grid_us` gives for every slot (both are the floor of `g *
/// step_ns / 1000`, wrapped to 64 bits).
struct Grid {
    t0_us: i64,
    step_ns: i64,
    /// `step_ns` as whole microseconds and the nanoseconds left, in [0, 1000).
    step_us: i64,
    step_rem_ns: i64,
    /// The slot, and `g * step_ns` as whole microseconds and nanoseconds left.
    g: i64,
    us: i64,
    rem_ns: i64,
}

impl Grid {
    fn new(t0_us: i64, step_ns: i64) -> Grid {
        Grid {
            t0_us,
            step_ns,
            step_us: step_ns.div_euclid(1000),
            step_rem_ns: step_ns.rem_euclid(1000),
            g: 0,
            us: 0,
            rem_ns: 0,
        }
    }

    /// The grid point of slot `g`.
    #[inline]
    fn at(&mut self, g: i64) -> i64 {
        if g == self.g.wrapping_add(1) {
            self.us = self.us.wrapping_add(self.step_us);
            self.rem_ns += self.step_rem_ns;
            if self.rem_ns >= 1000 {
                self.rem_ns -= 1000;
                self.us = self.us.wrapping_add(1);
            }
        } else if g != self.g {
            let product = i128::from(g) * i128::from(self.step_ns);
            self.us = product.div_euclid(1000) as i64;
            self.rem_ns = product.rem_euclid(1000) as i64;
        }
        self.g = g;
        self.t0_us.wrapping_add(self.us)
    }
}

/// Grid slots of the starts: consecutive starts one step apart are one slot apart; a
/// follow-up read shares its slot; a gap skips slots.
fn grid_slots(spans: &[Span], step_us: i64) -> Vec<i64> {
    let mut g = 0i64;
    let mut out = Vec::with_capacity(spans.len());
    out.push(0);
    for w in spans.windows(2) {
        let delta = w[1].start_us.wrapping_sub(w[0].start_us);
        let slots = if step_us > 0 {
            delta.wrapping_add(step_us / 2).div_euclid(step_us).max(0)
        } else {
            0
        };
        g = g.wrapping_add(slots);
        out.push(g);
    }
    out
}

/// The least-squares period (ns) of starts against their slots; `step_us * 1000` when
/// the slots do not determine one.
fn fit_step_ns(spans: &[Span], slots: &[i64], step_us: i64) -> i64 {
    let n = spans.len() as f64;
    let t0 = spans[0].start_us;
    let (mut sg, mut st) = (0f64, 0f64);
    for (s, &g) in spans.iter().zip(slots) {
        sg += g as f64;
        st += s.start_us.wrapping_sub(t0) as f64;
    }
    let (mg, mt) = (sg / n, st / n);
    let (mut cov, mut var) = (0f64, 0f64);
    for (s, &g) in spans.iter().zip(slots) {
        let dg = g as f64 - mg;
        cov += dg * (s.start_us.wrapping_sub(t0) as f64 - mt);
        var += dg * dg;
    }
    if var > 0.0 && (cov / var).is_finite() {
        (cov / var * 1000.0).round() as i64
    } else {
        step_us.saturating_mul(1000)
    }
}

/// Encodes spans (in time order) as a chunk.
pub fn encode_spans(spans: &[Span]) -> SpanChunk {
    let n = spans.len();
    let Some(first) = spans.first() else {
        return SpanChunk::default();
    };
    let t0_us = first.start_us;
    // The grid period: follow-up reads put many short steps among the regular ones, so
    // take the three-quarter point of the steps rather than their median; the slots
    // round it and the fit below corrects it.
    let steps: Vec<i64> = spans
        .windows(2)
        .map(|w| w[1].start_us.wrapping_sub(w[0].start_us))
        .filter(|&d| d > 0)
        .collect();
    let step_us = quantile(&steps, 3, 4);
    let slots = grid_slots(spans, step_us);
    let step_ns = fit_step_ns(spans, &slots, step_us);
    // A span in the same slot as the one before it is a follow-up read: it starts right
    // after the previous one ends, which predicts it far better than the grid does.
    let offsets: Vec<i64> = spans
        .iter()
        .zip(&slots)
        .map(|(s, &g)| s.start_us.wrapping_sub(grid_us(t0_us, step_ns, g)))
        .collect();
    let is_follow_up = |i: usize| i > 0 && slots[i] == slots[i - 1];
    let regular: Vec<i64> = (0..n)
        .filter(|&i| !is_follow_up(i))
        .map(|i| offsets[i])
        .collect();
    let offset_us = median(&regular);
    let durs: Vec<i64> = spans
        .iter()
        .map(|s| s.end_us.wrapping_sub(s.start_us))
        .collect();
    let dur_us = median(&durs);

    let col_slot: Vec<u64> = slots
        .windows(2)
        .map(|w| zigzag(w[1].wrapping_sub(w[0]).wrapping_sub(1)))
        .collect();
    let (mut col_offset, mut col_gap) = (Vec::new(), Vec::new());
    for i in 0..n {
        if is_follow_up(i) {
            col_gap.push(zigzag(spans[i].start_us.wrapping_sub(spans[i - 1].end_us)));
        } else {
            col_offset.push(zigzag(offsets[i].wrapping_sub(offset_us)));
        }
    }
    let col_dur: Vec<u64> = durs
        .iter()
        .map(|d| zigzag(d.wrapping_sub(dur_us)))
        .collect();
    let col_seq: Vec<u64> = spans
        .windows(2)
        .map(|w| zigzag((w[1].seq.wrapping_sub(w[0].seq) as i64).wrapping_sub(1)))
        .collect();
    let (col_run_code, col_run_len) = code_runs(spans.iter().map(|s| s.outcome.code()));

    let mut w = BitWriter::default();
    let mut k = [0u8; 7];
    let columns = [
        &col_slot,
        &col_offset,
        &col_gap,
        &col_dur,
        &col_seq,
        &col_run_code,
        &col_run_len,
    ];
    for (i, col) in columns.iter().enumerate() {
        k[i] = write_column(&mut w, col);
    }
    let col_mark = bool_runs(spans.iter().map(|s| s.follow_up));
    let k_mark = write_column(&mut w, &col_mark);
    let (col_probe_code, col_probe_len) = if spans.iter().any(|s| s.probe != Probe::Poll) {
        code_runs(spans.iter().map(|s| s.probe.code()))
    } else {
        (Vec::new(), Vec::new())
    };
    let k_probe = [
        write_column(&mut w, &col_probe_code),
        write_column(&mut w, &col_probe_len),
    ];
    let notes = spans
        .iter()
        .enumerate()
        .filter(|(_, s)| s.outcome != Outcome::Ok)
        .filter_map(|(i, s)| s.reason.clone().map(|r| (i as u32, r)))
        .collect();
    SpanChunk {
        count: n as u32,
        t0_us,
        step_ns,
        offset_us,
        dur_us,
        seq0: first.seq,
        runs: col_run_code.len() as u32,
        k,
        bits: w.finish(),
        notes,
        mark_runs: col_mark.len() as u32,
        k_mark,
        probe_runs: col_probe_code.len() as u32,
        k_probe,
    }
}

/// Writes `col` Rice-coded with the parameter that makes it shortest; returns that
/// parameter.
fn write_column(w: &mut BitWriter, col: &[u64]) -> u8 {
    let k = best_rice_k(col);
    for &v in col {
        w.rice(v, k);
    }
    k
}

/// Runs of equal codes (outcomes, probe kinds): each run's code, and its length - 1.
fn code_runs(codes: impl Iterator<Item = u8>) -> (Vec<u64>, Vec<u64>) {
    let (mut run_codes, mut run_lens) = (Vec::new(), Vec::new());
    for code in codes.map(u64::from) {
        match run_codes.last() {
            Some(&c) if c == code => *run_lens.last_mut().expect("a run per code") += 1,
            _ => {
                run_codes.push(code);
                run_lens.push(0u64);
            }
        }
    }
    (run_codes, run_lens)
}

/// [`code_runs`] read back into the `n` values they stand for, each code through
/// `from_code`; `what` names the values in errors.
fn expand_runs<T: Copy>(
    (codes, lens): (&[u64], &[u64]),
    n: usize,
    from_code: impl Fn(u8) -> Option<T>,
    what: &str,
) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::with_capacity(n);
    for (&code, &len) in codes.iter().zip(lens) {
        let value = u8::try_from(code)
            .ok()
            .and_then(&from_code)
            .ok_or_else(|| corrupt(format!("unknown {what} code")))?;
        let len = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(1))
            .filter(|&l| l <= n - out.len())
            .ok_or_else(|| corrupt(format!("{what} runs longer than the chunk")))?;
        out.extend(std::iter::repeat_n(value, len));
    }
    if out.len() != n {
        return Err(corrupt(format!("{what} runs shorter than the chunk")));
    }
    Ok(out)
}

/// Per-span flags (follow-up marks) as run lengths, alternating from false: the first run as its length (0 when the chunk starts with a true), the
/// others as length - 1.
fn bool_runs(flags: impl Iterator<Item = bool>) -> Vec<u64> {
    let mut runs = Vec::new();
    let (mut current, mut len) = (false, 0u64);
    for flag in flags {
        if flag == current {
            len += 1;
        } else {
            runs.push(len);
            (current, len) = (flag, 1);
        }
    }
    runs.push(len);
    for r in runs.iter_mut().skip(1) {
        *r -= 1;
    }
    runs
}

/// Decodes a chunk back into spans.
pub fn decode_spans(chunk: &SpanChunk) -> Result<Vec<Span>, DecodeError> {
    let mut out = Vec::with_capacity(chunk.count as usize);
    decode_spans_into(chunk, &mut out, |s| s)?;
    Ok(out)
}

/// Decodes a chunk's spans, appending `convert(span)` for each to `out` (so a reader
/// builds its own type without an intermediate vector).
pub fn decode_spans_into<T>(
    chunk: &SpanChunk,
    out: &mut Vec<T>,
    convert: impl Fn(Span) -> T,
) -> Result<(), DecodeError> {
    out.reserve(chunk.count as usize);
    decode_spans_each(chunk, |s| out.push(convert(s)))
}

/// Decodes a chunk's spans, calling `each` with every span in order (exactly
/// `chunk.count` times when it succeeds).
pub fn decode_spans_each(chunk: &SpanChunk, mut each: impl FnMut(Span)) -> Result<(), DecodeError> {
    let n = chunk.count as usize;
    if n == 0 {
        return Ok(());
    }
    let runs = chunk.runs as usize;
    if chunk.k.iter().any(|&k| k > 63) {
        return Err(corrupt("rice parameter out of range"));
    }
    if runs == 0 || runs > n || chunk.bits.len() < n.div_ceil(8) {
        return Err(corrupt("chunk header does not match its bits"));
    }
    let mut r = BitReader::new(&chunk.bits);
    let mut read_col = |len: usize, k: u8| -> Result<Vec<u64>, DecodeError> {
        let mut col = Vec::with_capacity(len);
        r.rice_column(k, len, &mut col)
            .ok_or_else(|| corrupt("bit stream too short"))?;
        Ok(col)
    };
    let col_slot = read_col(n - 1, chunk.k[0])?;
    let follow_ups = col_slot.iter().filter(|&&v| unzigzag(v) == -1).count();
    let col_offset = read_col(n - follow_ups, chunk.k[1])?;
    let col_gap = read_col(follow_ups, chunk.k[2])?;
    let col_dur = read_col(n, chunk.k[3])?;
    let col_seq = read_col(n - 1, chunk.k[4])?;
    let col_run_code = read_col(runs, chunk.k[5])?;
    let col_run_len = read_col(runs, chunk.k[6])?;
    let mut flags = |runs: u32, k: u8, what: &str| -> Result<Vec<bool>, DecodeError> {
        let mut flags = Vec::new();
        if runs == 0 {
            return Ok(flags);
        }
        if runs as usize > n + 1 || k > 63 {
            return Err(corrupt(format!("{what} runs do not match the chunk")));
        }
        let col = read_col(runs as usize, k)?;
        flags.reserve(n);
        for (i, &len) in col.iter().enumerate() {
            let len = usize::try_from(len)
                .ok()
                .and_then(|l| l.checked_add(usize::from(i > 0)))
                .filter(|&l| l <= n - flags.len())
                .ok_or_else(|| corrupt(format!("{what} runs longer than the chunk")))?;
            flags.extend(std::iter::repeat_n(i % 2 == 1, len));
        }
        if flags.len() != n {
            return Err(corrupt(format!("{what} runs shorter than the chunk")));
        }
        Ok(flags)
    };
    let marks = flags(chunk.mark_runs, chunk.k_mark, "mark")?;
    let mut probes = Vec::new();
    if chunk.probe_runs > 0 {
        let runs = chunk.probe_runs as usize;
        if runs > n || chunk.k_probe.iter().any(|&k| k > 63) {
            return Err(corrupt("probe runs do not match the chunk"));
        }
        let codes = read_col(runs, chunk.k_probe[0])?;
        let lens = read_col(runs, chunk.k_probe[1])?;
        probes = expand_runs((&codes, &lens), n, Probe::from_code, "probe")?;
    }

    let outcomes = expand_runs(
        (&col_run_code, &col_run_len),
        n,
        Outcome::from_code,
        "outcome",
    )?;
    if col_offset.len() != n - follow_ups || col_gap.len() != follow_ups {
        return Err(corrupt("offset columns do not match the chunk"));
    }

    let mut notes = chunk.notes.iter();
    let mut note = notes.next();
    let mut grid = Grid::new(chunk.t0_us, chunk.step_ns);
    let (mut slot, mut seq, mut prev_end) = (0i64, chunk.seq0, 0i64);
    let (mut offsets, mut gaps) = (col_offset.iter(), col_gap.iter());
    for i in 0..n {
        let mut follow_up = false;
        if i > 0 {
            let step = unzigzag(col_slot[i - 1]);
            follow_up = step == -1;
            slot = slot.wrapping_add(1).wrapping_add(step);
            seq = seq
                .wrapping_add(1)
                .wrapping_add(unzigzag(col_seq[i - 1]) as u64);
        }
        // The columns' lengths were checked against the follow-ups above, and the first
        // span is never one: neither iterator runs out.
        let start = if follow_up {
            prev_end.wrapping_add(unzigzag(gaps.next().copied().unwrap_or_default()))
        } else {
            grid.at(slot)
                .wrapping_add(chunk.offset_us)
                .wrapping_add(unzigzag(offsets.next().copied().unwrap_or_default()))
        };
        let reason = match note {
            Some((idx, r)) if *idx as usize == i => {
                note = notes.next();
                Some(r.clone())
            }
            _ => None,
        };
        let end_us = start
            .wrapping_add(chunk.dur_us)
            .wrapping_add(unzigzag(col_dur[i]));
        prev_end = end_us;
        each(Span {
            start_us: start,
            end_us,
            seq,
            outcome: outcomes[i],
            reason,
            follow_up: marks.get(i).copied().unwrap_or(false),
            probe: probes.get(i).copied().unwrap_or(Probe::Poll),
        });
    }
    Ok(())
}

fn median(values: &[i64]) -> i64 {
    quantile(values, 1, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steady(n: usize, step: i64, seed: u64) -> Vec<Span> {
        let mut x = crate::xorshift::XorShift::new(seed);
        let mut next = move |m: i64| x.below(m as u64) as i64;
        (0..n)
            .map(|i| {
                let start = 1_700_000_000_000_000 + i as i64 * step + next(80);
                Span {
                    start_us: start,
                    end_us: start + 150 + next(60),
                    seq: 1000 + i as u64,
                    outcome: Outcome::Ok,
                    reason: None,
                    follow_up: false,
                    probe: Default::default(),
                }
            })
            .collect()
    }

    #[test]
    fn the_walking_grid_gives_what_grid_us_gives() {
        let mut x = crate::xorshift::XorShift::new(11);
        let steps = [
            0,
            1,
            999,
            1000,
            10_000_013,
            -7_654_321,
            i64::MAX,
            i64::MIN,
            x.next_u64() as i64,
        ];
        for step_ns in steps {
            let t0_us = x.next_u64() as i64;
            let mut grid = Grid::new(t0_us, step_ns);
            let mut g = 0i64;
            for i in 0..5_000u64 {
                // Mostly the next slot; now and then the same one, a jump, a step back
                // or a slot far away (where the product overflows 64 bits).
                g = match i % 97 {
                    13 => g,
                    29 => g.wrapping_add(x.below(1_000) as i64),
                    41 => g.wrapping_sub(3),
                    83 => x.next_u64() as i64,
                    _ => g.wrapping_add(1),
                };
                assert_eq!(
                    grid.at(g),
                    grid_us(t0_us, step_ns, g),
                    "step {step_ns} slot {g}"
                );
            }
        }
    }

    #[test]
    fn spans_round_trip() {
        let mut spans = steady(500, 100_000, 7);
        spans[10].outcome = Outcome::Refused;
        spans[10].reason = Some("connection refused".into());
        spans[11].seq = spans[10].seq; // a stall: the same beat visible twice
        for s in &mut spans[12..] {
            s.seq -= 1;
        }
        spans[200].start_us += 5_000_000; // a 5 s gap
        for s in &mut spans[201..] {
            s.start_us += 5_000_000;
            s.end_us += 5_000_000;
        }
        spans[200].end_us = spans[200].start_us + 2_000_000;
        let chunk = encode_spans(&spans);
        assert_eq!(decode_spans(&chunk).unwrap(), spans);
    }

    #[test]
    fn steady_series_costs_under_three_bytes_per_span() {
        for step in [100_000, 10_000, 1_000] {
            let spans = steady(4096, step, 3);
            let bytes = postcard::to_stdvec(&encode_spans(&spans)).unwrap().len();
            let per = bytes as f64 / spans.len() as f64;
            assert!(per < 3.0, "step {step}: {per:.2} bytes per span");
        }
    }

    #[test]
    fn random_series_round_trip() {
        // Follow-up reads (same grid slot), gaps, failures and seq jumps, many seeds.
        for seed in 1..200u64 {
            let mut x = crate::xorshift::XorShift::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut next = move |m: u64| x.below(m);
            let mut t = 1_700_000_000_000_000i64;
            let mut seq = 5u64;
            let n = 1 + next(300) as usize;
            let spans: Vec<Span> = (0..n)
                .map(|_| {
                    t += match next(10) {
                        0 => 300,
                        1 => 3_000_000 + next(1_000_000) as i64,
                        _ => 10_000 + next(900) as i64,
                    };
                    seq = seq.wrapping_add(next(3)).wrapping_sub(next(2));
                    let failed = next(20) == 0;
                    Span {
                        start_us: t,
                        end_us: t + next(5_000) as i64,
                        seq,
                        outcome: if failed {
                            Outcome::Timeout
                        } else {
                            Outcome::Ok
                        },
                        reason: failed.then(|| "read timed out".to_string()),
                        follow_up: false,
                        probe: Default::default(),
                    }
                })
                .collect();
            let chunk = encode_spans(&spans);
            assert_eq!(decode_spans(&chunk).unwrap(), spans, "seed {seed}");
            let bytes = chunk.to_bytes().unwrap();
            let back = SpanChunk::from_bytes(&bytes).unwrap();
            assert_eq!(back, chunk);
        }
    }

    #[test]
    fn empty_and_single() {
        assert!(decode_spans(&encode_spans(&[])).unwrap().is_empty());
        let one = steady(1, 1, 1);
        assert_eq!(decode_spans(&encode_spans(&one)).unwrap(), one);
    }

    #[test]
    fn extreme_values_round_trip() {
        let spans = vec![
            Span {
                start_us: i64::MIN / 2,
                end_us: i64::MAX / 2,
                seq: u64::MAX / 2,
                outcome: Outcome::Driver,
                reason: None,
                follow_up: false,
                probe: Default::default(),
            },
            Span {
                start_us: i64::MAX / 2,
                end_us: i64::MIN / 2,
                seq: 0,
                outcome: Outcome::Ok,
                reason: None,
                follow_up: false,
                probe: Default::default(),
            },
        ];
        assert_eq!(decode_spans(&encode_spans(&spans)).unwrap(), spans);
    }

    #[test]
    fn truncated_chunk_is_an_error_not_a_panic() {
        let mut chunk = encode_spans(&steady(100, 100_000, 5));
        chunk.bits.truncate(chunk.bits.len() / 2);
        assert!(decode_spans(&chunk).is_err());
        chunk.k[0] = 200;
        assert!(decode_spans(&chunk).is_err());
    }

    #[test]
    fn observation_spans_keep_missing_seq() {
        let obs = vec![
            Observation {
                r_start_us: 1,
                r_end_us: 2,
                seq: Some(5),
                outcome: Outcome::Ok,
                reason: None,
                follow_up: false,
                probe: Default::default(),
            },
            Observation {
                r_start_us: 3,
                r_end_us: 4,
                seq: None,
                outcome: Outcome::Timeout,
                reason: Some("read timed out".into()),
                follow_up: false,
                probe: Default::default(),
            },
        ];
        let spans = vec![
            Span::from_observation(&obs[0], 0),
            Span::from_observation(&obs[1], 5),
        ];
        assert_eq!(spans[1].seq, 5);
        let back: Vec<Observation> = decode_spans(&encode_spans(&spans))
            .unwrap()
            .into_iter()
            .map(Observation::from)
            .collect();
        assert_eq!(back, obs);
    }

    #[test]
    fn bits_as_bytes_read_chunks_written_as_a_sequence() {
        // The layout of SpanChunk before `bits` was serialized as bytes.
        #[derive(Serialize)]
        struct Before {
            count: u32,
            t0_us: i64,
            step_ns: i64,
            offset_us: i64,
            dur_us: i64,
            seq0: u64,
            runs: u32,
            k: [u8; 7],
            bits: Vec<u8>,
            notes: Vec<(u32, String)>,
        }
        let spans: Vec<Span> = (0..300)
            .map(|i| Span {
                start_us: 1_000_000 + i * 10_000 + i % 7,
                end_us: 1_000_400 + i * 10_000,
                seq: i as u64 + 1,
                outcome: if i % 50 == 3 {
                    Outcome::Timeout
                } else {
                    Outcome::Ok
                },
                reason: (i % 50 == 3).then(|| "timed out".to_string()),
                follow_up: false,
                probe: Default::default(),
            })
            .collect();
        let now = encode_spans(&spans);
        let before = Before {
            count: now.count,
            t0_us: now.t0_us,
            step_ns: now.step_ns,
            offset_us: now.offset_us,
            dur_us: now.dur_us,
            seq0: now.seq0,
            runs: now.runs,
            k: now.k,
            bits: now.bits.clone(),
            notes: now.notes.clone(),
        };
        let old_bytes = postcard::to_allocvec(&before).unwrap();
        assert_eq!(
            postcard::to_allocvec(&now).unwrap(),
            old_bytes,
            "the format 1 fields keep their bytes; format 2 appends the marks"
        );
        let back = SpanChunk::from_bytes(&old_bytes).unwrap();
        assert_eq!((back.mark_runs, back.k_mark), (0, 0), "format 1: no marks");
        assert_eq!(decode_spans(&back).unwrap(), spans);
        assert_eq!(
            SpanChunk::from_bytes(&now.to_bytes().unwrap()).unwrap(),
            now
        );
    }

    #[test]
    fn follow_up_marks_round_trip() {
        let mut spans = steady(600, 10_000, 11);
        // Rounds of one to four reads, a chunk that starts with a follow-up too.
        for (i, s) in spans.iter_mut().enumerate() {
            s.follow_up = i == 0 || (i % 7) % 3 != 0;
        }
        let chunk = encode_spans(&spans);
        let back = SpanChunk::from_bytes(&chunk.to_bytes().unwrap()).unwrap();
        assert_eq!(decode_spans(&back).unwrap(), spans);
        // Beats carry no marks and pay a few bits for that.
        let beats = steady(600, 10_000, 11);
        let c = encode_spans(&beats);
        assert_eq!(c.mark_runs, 1);
        assert_eq!(decode_spans(&c).unwrap(), beats);
    }

    #[test]
    fn probe_kinds_round_trip_and_older_readers_see_polls() {
        let mut spans = steady(600, 10_000, 11);
        // A stream that falls back to polling and comes back, follow-ups among them.
        for (i, s) in spans.iter_mut().enumerate() {
            s.probe = match i {
                100..250 => Probe::Poll,
                300..310 | 400 => Probe::BinlogIdle,
                _ => Probe::BinlogEvent,
            };
            s.follow_up = i % 5 == 4 && s.probe == Probe::Poll;
        }
        let chunk = encode_spans(&spans);
        assert_eq!(chunk.probe_runs, 7);
        let bytes = chunk.to_bytes().unwrap();
        let back = SpanChunk::from_bytes(&bytes).unwrap();
        assert_eq!(decode_spans(&back).unwrap(), spans);
        // A reader that stops after the mark fields (lagtrace before the binlog probe)
        // gets the same spans, every one a poll.
        let mut older = SpanChunk::from_bytes(&bytes).unwrap();
        (older.probe_runs, older.k_probe) = (0, [0; 2]);
        let polls: Vec<Span> = spans
            .iter()
            .cloned()
            .map(|s| Span {
                probe: Probe::Poll,
                ..s
            })
            .collect();
        assert_eq!(decode_spans(&older).unwrap(), polls);
        // All polls: nothing is stored for the kinds.
        let c = encode_spans(&polls);
        assert_eq!(c.probe_runs, 0);
        let back = SpanChunk::from_bytes(&c.to_bytes().unwrap()).unwrap();
        assert_eq!(back.probe_runs, 0);
        assert_eq!(decode_spans(&back).unwrap(), polls);
    }
}
