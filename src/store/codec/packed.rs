//! Samples packed in memory: the writer's open chunks, between their samples' arrival
//! and the chunk's sealing. Status samples are simply their postcard bytes (about a
//! fifth of their size as structs and strings). A [`Span`] takes 56 bytes; packed as
//! below it takes 4-5, so a hundred replicas' open chunks (thousands of spans each
//! before they reach a page's worth of Rice-coded bytes) hold about 2 MB instead of
//! 22 MB. Both are unpacked only to be encoded, one chunk at a time.
//!
//! Each span is: a flag byte (outcome code in bits 0-3, the follow-up mark in bit 4,
//! the probe code in bits 5-6, "has a reason" in bit 7); then LEB128 varints of three
//! zig-zagged residuals: the step (start − previous start) less the previous step
//! (µs), the duration (end − start) less the previous duration (µs), and seq − previous
//! seq (everything before the first span is 0); then, with a reason, its length
//! (varint) and UTF-8 bytes. Wrapping arithmetic throughout, so any values round-trip.

use super::Span;
use super::bits::{unzigzag, zigzag};
use crate::samples::{Outcome, Probe, StatusSample};

const FOLLOW_UP: u8 = 1 << 4;
const PROBE_SHIFT: u8 = 5;
const HAS_REASON: u8 = 1 << 7;

/// A series' spans, in arrival order, packed.
#[derive(Debug, Default)]
pub struct PackedSpans {
    bytes: Vec<u8>,
    len: usize,
    /// Start of the first span, µs.
    first_start_us: i64,
    /// The last span (the next one's prediction): start, start − the start before,
    /// duration, seq.
    last: Last,
}

/// What the next span is predicted from: the last one's start, step (its start less the
/// one before), duration (µs) and seq; all 0 before the first span.
#[derive(Debug, Default, Clone, Copy)]
struct Last {
    start_us: i64,
    step_us: i64,
    dur_us: i64,
    seq: u64,
}

impl Last {
    /// The next span's residuals against this prediction, and the new prediction.
    fn residuals(self, s: &Span) -> ([i64; 3], Last) {
        let step_us = s.start_us.wrapping_sub(self.start_us);
        let dur_us = s.end_us.wrapping_sub(s.start_us);
        let residuals = [
            step_us.wrapping_sub(self.step_us),
            dur_us.wrapping_sub(self.dur_us),
            s.seq.wrapping_sub(self.seq) as i64,
        ];
        let next = Last {
            start_us: s.start_us,
            step_us,
            dur_us,
            seq: s.seq,
        };
        (residuals, next)
    }

    /// The inverse of [`Last::residuals`]: the span's start, end and seq.
    fn apply(self, r: [i64; 3]) -> ((i64, i64, u64), Last) {
        let step_us = self.step_us.wrapping_add(r[0]);
        let start_us = self.start_us.wrapping_add(step_us);
        let dur_us = self.dur_us.wrapping_add(r[1]);
        let seq = self.seq.wrapping_add(r[2] as u64);
        let next = Last {
            start_us,
            step_us,
            dur_us,
            seq,
        };
        ((start_us, start_us.wrapping_add(dur_us), seq), next)
    }
}

impl PackedSpans {
    pub fn push(&mut self, s: &Span) {
        if self.len == 0 {
            self.first_start_us = s.start_us;
        }
        let mut flags = s.outcome.code() | (s.probe.code() << PROBE_SHIFT);
        if s.follow_up {
            flags |= FOLLOW_UP;
        }
        if s.reason.is_some() {
            flags |= HAS_REASON;
        }
        self.bytes.push(flags);
        let (residuals, last) = self.last.residuals(s);
        for r in residuals {
            varint(&mut self.bytes, zigzag(r));
        }
        if let Some(reason) = &s.reason {
            varint(&mut self.bytes, reason.len() as u64);
            self.bytes.extend_from_slice(reason.as_bytes());
        }
        self.last = last;
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Starts of the first and last spans, µs (0 when empty).
    pub fn first_last_start_us(&self) -> (i64, i64) {
        (self.first_start_us, self.last.start_us)
    }

    /// The last span's beat number.
    pub fn last_seq(&self) -> Option<u64> {
        (self.len > 0).then_some(self.last.seq)
    }

    /// The spans, as pushed.
    pub fn unpack(&self) -> Vec<Span> {
        let mut out = Vec::with_capacity(self.len);
        let mut at = 0;
        let mut last = Last::default();
        let b = &self.bytes;
        while at < b.len() {
            let flags = b[at];
            at += 1;
            let r = [(); 3].map(|()| unzigzag(read_varint(b, &mut at)));
            let ((start, end, seq), next) = last.apply(r);
            last = next;
            let reason = (flags & HAS_REASON != 0).then(|| {
                let n = read_varint(b, &mut at) as usize;
                at += n;
                String::from_utf8_lossy(&b[at - n..at]).into_owned()
            });
            out.push(Span {
                start_us: start,
                end_us: end,
                seq,
                // Written from the enums' own codes just above, so always valid.
                outcome: Outcome::from_code(flags & 0x0f).unwrap_or(Outcome::Driver),
                reason,
                follow_up: flags & FOLLOW_UP != 0,
                probe: Probe::from_code((flags >> PROBE_SHIFT) & 0x03).unwrap_or_default(),
            });
        }
        out
    }
}

/// A series' status samples, in arrival order, as their postcard bytes one after the
/// other.
#[derive(Debug, Default)]
pub struct PackedStatus {
    bytes: Vec<u8>,
    len: usize,
    /// Times of the first and last samples, µs.
    first_t_us: i64,
    last_t_us: i64,
}

impl PackedStatus {
    /// Appends a sample; one that cannot be encoded leaves the others as they were.
    pub fn push(&mut self, s: &StatusSample) -> Result<(), postcard::Error> {
        self.bytes.extend(postcard::to_stdvec(s)?);
        if self.len == 0 {
            self.first_t_us = s.t_us;
        }
        self.last_t_us = s.t_us;
        self.len += 1;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Times of the first and last samples, µs (0 when empty).
    pub fn first_last_t_us(&self) -> (i64, i64) {
        (self.first_t_us, self.last_t_us)
    }

    /// The samples, as pushed.
    pub fn unpack(&self) -> Result<Vec<StatusSample>, postcard::Error> {
        let mut out = Vec::with_capacity(self.len);
        let mut rest = &self.bytes[..];
        while !rest.is_empty() {
            let (sample, tail) = postcard::take_from_bytes(rest)?;
            out.push(sample);
            rest = tail;
        }
        Ok(out)
    }
}

/// Appends `v` as LEB128: seven bits a byte, low first, the top bit set on all but the
/// last.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*at];
        *at += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xorshift::XorShift;

    fn span(start_us: i64, end_us: i64, seq: u64) -> Span {
        Span {
            start_us,
            end_us,
            seq,
            outcome: Outcome::Ok,
            reason: None,
            follow_up: false,
            probe: Probe::Poll,
        }
    }

    /// Every field round-trips, extremes and reasons included.
    #[test]
    fn spans_round_trip_whatever_their_values() {
        let mut rng = XorShift::new(7);
        let mut spans = vec![
            span(i64::MIN, i64::MAX, u64::MAX),
            span(i64::MAX, i64::MIN, 0),
            span(0, 0, 0),
            span(-5, -10, 3),
        ];
        for i in 0..5_000u64 {
            let r = rng.next_u64();
            let start = 1_700_000_000_000_000 + i as i64 * 10_000 + (r % 3_000) as i64;
            let mut s = span(start, start + (r >> 20) as i64 % 2_000, i / 2 + (r & 1));
            s.outcome = Outcome::ALL[(r >> 8) as usize % Outcome::ALL.len()];
            s.follow_up = r & 2 != 0;
            s.probe = Probe::from_code((r >> 4) as u8 % 3).unwrap();
            if s.outcome != Outcome::Ok {
                s.reason = Some(format!("failure {i}: connexion refusée"));
            }
            spans.push(s);
        }
        spans.push(span(i64::MIN, i64::MIN, 1));
        let mut packed = PackedSpans::default();
        for s in &spans {
            packed.push(s);
        }
        assert_eq!(packed.len(), spans.len());
        assert_eq!(packed.last_seq(), Some(1));
        assert_eq!(packed.first_last_start_us(), (i64::MIN, i64::MIN));
        assert_eq!(packed.unpack(), spans);
    }

    /// The point of packing: a 10 ms series takes a few bytes a span.
    #[test]
    fn a_regular_series_packs_to_a_few_bytes_a_span() {
        let mut packed = PackedSpans::default();
        assert!(packed.is_empty() && packed.last_seq().is_none());
        for k in 0..4_000i64 {
            let start = 1_700_000_000_000_000 + k * 10_000 + k % 7;
            packed.push(&span(start, start + 400 + k % 13, k as u64 + 1));
        }
        assert!(packed.bytes.len() <= 5 * 4_000, "{}", packed.bytes.len());
        assert_eq!(packed.first_last_start_us().0, 1_700_000_000_000_000);
    }

    /// Status samples of every shape (failed, PostgreSQL figures, several channels)
    /// come back as they went in.
    #[test]
    fn status_samples_round_trip() {
        use crate::samples::{ChannelStatus, PgFigures};
        let mut packed = PackedStatus::default();
        assert!(packed.is_empty());
        let samples: Vec<StatusSample> = (0..50i64)
            .map(|i| StatusSample {
                t_us: 1_700_000_000_000_000 + i * 1_000_000,
                duration_us: 300 + i as u32,
                outcome: if i % 7 == 3 {
                    Outcome::Timeout
                } else {
                    Outcome::Ok
                },
                reason: (i % 7 == 3).then(|| "status poll timed out".to_string()),
                channels: (0..i % 3)
                    .map(|c| ChannelStatus {
                        channel: format!("ch{c}"),
                        seconds_behind_master: (i % 2 == 0).then_some(i as u32),
                        gtid_io_pos: format!("0-1-{}", 100 + i),
                        ..ChannelStatus::running()
                    })
                    .collect(),
                postgres: (i % 5 == 0).then_some(PgFigures {
                    replay_commit_us: Some(i),
                    write_lag_us: None,
                    flush_lag_us: Some(-4),
                    replay_lag_us: Some(i64::MAX),
                    min_apply_delay_ms: (i % 10 == 0).then_some(1_500),
                }),
            })
            .collect();
        for s in &samples {
            packed.push(s).unwrap();
        }
        assert_eq!(packed.len(), 50);
        assert_eq!(
            packed.first_last_t_us(),
            (samples[0].t_us, samples[49].t_us)
        );
        assert_eq!(packed.unpack().unwrap(), samples);
    }
}
