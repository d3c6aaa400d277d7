//! Status chunks: replication status samples, each stored as the changes from the
//! sample before it (postcard), then, when a sample has them, PostgreSQL's own figures
//! ([`PgTrailer`]) and its exact apply delays ([`PgDelays`]: after the figures, which
//! readers older than it stop at).

use serde::{Deserialize, Serialize};

use super::{DecodeError, corrupt};
use crate::samples::{ChannelStatus, IoState, Outcome, PgFigures, StatusSample};

/// A status sample stored as the difference from the previous one in its chunk. Its
/// text is `String` when encoded and borrowed from the chunk's bytes when decoded
/// (`&str`: the same bytes), so that decoding allocates only the samples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StatusEntry<S = String> {
    dt_us: i64,
    duration_us: u32,
    outcome: u8,
    reason: Option<S>,
    /// `None`: the same channels as the previous sample; otherwise one diff per channel.
    channels: Option<Vec<ChannelEntry<S>>>,
}

/// A channel as the difference from the same-position channel of the previous sample;
/// `None` fields are unchanged. Text positions (GTIDs) keep the unchanged prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
struct ChannelEntry<S = String> {
    channel: Option<S>,
    source: Option<S>,
    io: Option<IoState>,
    sql_running: Option<bool>,
    seconds_behind_master: Option<Option<u32>>,
    sql_delay_s: Option<u32>,
    last_io_errno: Option<u32>,
    last_io_error: Option<S>,
    last_sql_errno: Option<u32>,
    last_sql_error: Option<S>,
    gtid_io_pos: Option<(u16, S)>,
    gtid_applied_pos: Option<(u16, S)>,
    relay_log_space: Option<i64>,
    sql_applying: Option<Option<bool>>,
}

/// The stored form of a status chunk (postcard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StatusChunk<S = String> {
    t0_us: i64,
    entries: Vec<StatusEntry<S>>,
}

fn changed<T: PartialEq + Clone>(new: &T, old: Option<&T>) -> Option<T> {
    match old {
        Some(o) if o == new => None,
        _ => Some(new.clone()),
    }
}

fn text_diff(new: &str, old: Option<&str>) -> Option<(u16, String)> {
    let old = old.unwrap_or("");
    if new == old {
        return None;
    }
    let common = new
        .char_indices()
        .zip(old.chars())
        .take_while(|((_, a), b)| a == b)
        .last()
        .map_or(0, |((i, c), _)| i + c.len_utf8())
        .min(u16::MAX as usize);
    Some((common as u16, new[common..].to_string()))
}

fn text_apply(diff: Option<(u16, &str)>, old: &str) -> Result<String, DecodeError> {
    match diff {
        None => Ok(old.to_string()),
        Some((keep, suffix)) => {
            let prefix = old
                .get(..keep as usize)
                .ok_or_else(|| corrupt("text diff prefix"))?;
            let mut text = String::with_capacity(prefix.len() + suffix.len());
            text.push_str(prefix);
            text.push_str(suffix);
            Ok(text)
        }
    }
}

fn channel_entry(new: &ChannelStatus, old: Option<&ChannelStatus>) -> ChannelEntry {
    ChannelEntry {
        channel: changed(&new.channel, old.map(|o| &o.channel)),
        source: changed(&new.source, old.map(|o| &o.source)),
        io: changed(&new.io, old.map(|o| &o.io)),
        sql_running: changed(&new.sql_running, old.map(|o| &o.sql_running)),
        seconds_behind_master: changed(
            &new.seconds_behind_master,
            old.map(|o| &o.seconds_behind_master),
        ),
        sql_delay_s: changed(&new.sql_delay_s, old.map(|o| &o.sql_delay_s)),
        last_io_errno: changed(&new.last_io_errno, old.map(|o| &o.last_io_errno)),
        last_io_error: changed(&new.last_io_error, old.map(|o| &o.last_io_error)),
        last_sql_errno: changed(&new.last_sql_errno, old.map(|o| &o.last_sql_errno)),
        last_sql_error: changed(&new.last_sql_error, old.map(|o| &o.last_sql_error)),
        gtid_io_pos: text_diff(&new.gtid_io_pos, old.map(|o| o.gtid_io_pos.as_str())),
        gtid_applied_pos: text_diff(
            &new.gtid_applied_pos,
            old.map(|o| o.gtid_applied_pos.as_str()),
        ),
        relay_log_space: match old {
            Some(o) if o.relay_log_space == new.relay_log_space => None,
            o => Some(
                (new.relay_log_space as i64)
                    .wrapping_sub(o.map_or(0, |o| o.relay_log_space as i64)),
            ),
        },
        sql_applying: changed(&new.sql_applying, old.map(|o| &o.sql_applying)),
    }
}

fn channel_apply(
    e: &ChannelEntry<&str>,
    old: Option<&ChannelStatus>,
) -> Result<ChannelStatus, DecodeError> {
    /// The field as the entry gives it (borrowed text becomes owned), else as before.
    fn pick<T: Clone>(
        new: Option<impl Into<T>>,
        old: Option<&T>,
        what: &str,
    ) -> Result<T, DecodeError> {
        match (new, old) {
            (Some(v), _) => Ok(v.into()),
            (None, Some(o)) => Ok(o.clone()),
            (None, None) => Err(corrupt(format!("status field {what} missing"))),
        }
    }
    Ok(ChannelStatus {
        channel: pick(e.channel, old.map(|o| &o.channel), "channel")?,
        source: pick(e.source, old.map(|o| &o.source), "source")?,
        io: pick(e.io, old.map(|o| &o.io), "io")?,
        sql_running: pick(e.sql_running, old.map(|o| &o.sql_running), "sql_running")?,
        seconds_behind_master: pick(
            e.seconds_behind_master,
            old.map(|o| &o.seconds_behind_master),
            "seconds_behind_master",
        )?,
        sql_delay_s: pick(e.sql_delay_s, old.map(|o| &o.sql_delay_s), "sql_delay")?,
        last_io_errno: pick(e.last_io_errno, old.map(|o| &o.last_io_errno), "io_errno")?,
        last_io_error: pick(e.last_io_error, old.map(|o| &o.last_io_error), "io_error")?,
        last_sql_errno: pick(
            e.last_sql_errno,
            old.map(|o| &o.last_sql_errno),
            "sql_errno",
        )?,
        last_sql_error: pick(
            e.last_sql_error,
            old.map(|o| &o.last_sql_error),
            "sql_error",
        )?,
        gtid_io_pos: text_apply(e.gtid_io_pos, old.map_or("", |o| &o.gtid_io_pos))?,
        gtid_applied_pos: text_apply(e.gtid_applied_pos, old.map_or("", |o| &o.gtid_applied_pos))?,
        relay_log_space: match (e.relay_log_space, old) {
            (None, Some(o)) => o.relay_log_space,
            (None, None) => return Err(corrupt("status field relay_log_space missing")),
            (Some(d), o) => (o.map_or(0, |o| o.relay_log_space as i64)).wrapping_add(d) as u64,
        },
        sql_applying: pick(e.sql_applying, old.map(|o| &o.sql_applying), "sql_applying")?,
    })
}

/// Encodes status samples (in time order) as a chunk.
fn encode_status(samples: &[StatusSample]) -> StatusChunk {
    let t0_us = samples.first().map_or(0, |s| s.t_us);
    let mut prev: Option<&StatusSample> = None;
    let mut entries = Vec::with_capacity(samples.len());
    for s in samples {
        let channels = match prev {
            Some(p) if p.channels == s.channels => None,
            p => Some(
                s.channels
                    .iter()
                    .enumerate()
                    .map(|(i, c)| channel_entry(c, p.and_then(|p| p.channels.get(i))))
                    .collect(),
            ),
        };
        entries.push(StatusEntry {
            dt_us: s.t_us.wrapping_sub(prev.map_or(t0_us, |p| p.t_us)),
            duration_us: s.duration_us,
            outcome: s.outcome.code(),
            reason: s.reason.clone(),
            channels,
        });
        prev = Some(s);
    }
    StatusChunk { t0_us, entries }
}

/// PostgreSQL's figures of a chunk's samples, one entry per sample, stored after the
/// [`StatusChunk`] when any sample has them. Readers before it stop at the chunk's end
/// and never see it, so the store format stays the same; a chunk without it has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PgTrailer(Vec<Option<PgEntry>>);

/// [`PgFigures`] with the replay timestamp as its difference from the sample's time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PgEntry {
    replay_commit_dt_us: Option<i64>,
    write_lag_us: Option<i64>,
    flush_lag_us: Option<i64>,
    replay_lag_us: Option<i64>,
}

/// `recovery_min_apply_delay` of each sample, ms (`None`: not PostgreSQL, or not
/// known). A trailer of its own after [`PgTrailer`], so that stores written before it
/// read the same, and readers written before it read the stores written after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PgDelays(Vec<Option<u32>>);

/// Status samples (in time order) as a stored chunk's bytes (before the checksum).
pub fn status_to_bytes(samples: &[StatusSample]) -> Result<Vec<u8>, postcard::Error> {
    let mut bytes = postcard::to_stdvec(&encode_status(samples))?;
    if samples.iter().any(|s| s.postgres.is_some()) {
        let entries = samples.iter().map(|s| {
            s.postgres.map(|p| PgEntry {
                replay_commit_dt_us: p.replay_commit_us.map(|r| r.wrapping_sub(s.t_us)),
                write_lag_us: p.write_lag_us,
                flush_lag_us: p.flush_lag_us,
                replay_lag_us: p.replay_lag_us,
            })
        });
        bytes.extend(postcard::to_stdvec(&PgTrailer(entries.collect()))?);
        let delays = samples
            .iter()
            .map(|s| s.postgres.and_then(|p| p.min_apply_delay_ms));
        bytes.extend(postcard::to_stdvec(&PgDelays(delays.collect()))?);
    }
    Ok(bytes)
}

/// A stored chunk's bytes (without the checksum) back as status samples.
pub fn status_from_bytes(bytes: &[u8]) -> Result<Vec<StatusSample>, DecodeError> {
    let (chunk, rest): (StatusChunk<&str>, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut samples = decode_status(&chunk)?;
    if rest.is_empty() {
        return Ok(samples);
    }
    let (PgTrailer(entries), rest) = trailer(rest, "postgres figures", samples.len())?;
    for (s, e) in samples.iter_mut().zip(entries) {
        s.postgres = e.map(|e| PgFigures {
            replay_commit_us: e.replay_commit_dt_us.map(|d| s.t_us.wrapping_add(d)),
            write_lag_us: e.write_lag_us,
            flush_lag_us: e.flush_lag_us,
            replay_lag_us: e.replay_lag_us,
            min_apply_delay_ms: None,
        });
    }
    if rest.is_empty() {
        return Ok(samples);
    }
    let (PgDelays(delays), _) = trailer(rest, "postgres delays", samples.len())?;
    for (s, d) in samples.iter_mut().zip(delays) {
        if let Some(p) = s.postgres.as_mut() {
            p.min_apply_delay_ms = d;
        }
    }
    Ok(samples)
}

/// One trailer after the chunk (`what` it holds, for messages) and the bytes after it:
/// one entry per status sample, `samples` of them, or the chunk is corrupt.
fn trailer<'a, T: Deserialize<'a> + Trailer>(
    bytes: &'a [u8],
    what: &str,
    samples: usize,
) -> Result<(T, &'a [u8]), DecodeError> {
    let (t, rest): (T, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| corrupt(format!("{what}: {e}")))?;
    if t.entries() != samples {
        return Err(corrupt(format!(
            "{what} for {} of {samples} status samples",
            t.entries()
        )));
    }
    Ok((t, rest))
}

/// A trailer's number of entries.
trait Trailer {
    fn entries(&self) -> usize;
}

impl Trailer for PgTrailer {
    fn entries(&self) -> usize {
        self.0.len()
    }
}

impl Trailer for PgDelays {
    fn entries(&self) -> usize {
        self.0.len()
    }
}

/// Decodes a status chunk.
fn decode_status(chunk: &StatusChunk<&str>) -> Result<Vec<StatusSample>, DecodeError> {
    let mut out: Vec<StatusSample> = Vec::with_capacity(chunk.entries.len());
    let mut t = chunk.t0_us;
    for e in &chunk.entries {
        t = t.wrapping_add(e.dt_us);
        let prev = out.last();
        let channels = match &e.channels {
            None => prev.map(|p| p.channels.clone()).unwrap_or_default(),
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, c)| channel_apply(c, prev.and_then(|p| p.channels.get(i))))
                .collect::<Result<_, _>>()?,
        };
        out.push(StatusSample {
            postgres: None,
            t_us: t,
            duration_us: e.duration_us,
            outcome: Outcome::from_code(e.outcome).ok_or_else(|| corrupt("status outcome"))?,
            reason: e.reason.map(str::to_string),
            channels,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(pos: u64, sbm: Option<u32>) -> ChannelStatus {
        ChannelStatus {
            sql_running: sbm.is_some(),
            seconds_behind_master: sbm,
            gtid_io_pos: format!("0-1-{pos}"),
            gtid_applied_pos: format!("0-1-{}", pos - 1),
            relay_log_space: 1000 + pos,
            ..ChannelStatus::running()
        }
    }

    #[test]
    fn status_round_trip_and_is_compact() {
        let mut samples: Vec<StatusSample> = (0..100)
            .map(|i| StatusSample {
                postgres: None,
                t_us: 1_700_000_000_000_000 + i * 1_000_000,
                duration_us: 300,
                outcome: Outcome::Ok,
                reason: None,
                channels: vec![channel(12_000 + i as u64 * 10, Some(0))],
            })
            .collect();
        samples[50].channels[0].seconds_behind_master = None;
        samples[51].outcome = Outcome::Timeout;
        samples[51].reason = Some("status poll timed out".into());
        samples[51].channels.clear();
        samples[52].channels.push(channel(5, Some(3)));
        let chunk = encode_status(&samples);
        // Without PostgreSQL figures the stored bytes are the chunk alone.
        let bytes = status_to_bytes(&samples).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&chunk).unwrap());
        assert_eq!(status_from_bytes(&bytes).unwrap(), samples);
        let bytes = postcard::to_stdvec(&chunk).unwrap().len();
        assert!(bytes < 100 * 40, "{bytes} bytes for 100 samples");
    }

    #[test]
    fn postgres_figures_ride_after_the_chunk_which_older_readers_still_read() {
        let mut samples: Vec<StatusSample> = (0..10)
            .map(|i| StatusSample {
                t_us: 1_700_000_000_000_000 + i * 200_000,
                duration_us: 300,
                outcome: Outcome::Ok,
                reason: None,
                channels: vec![ChannelStatus {
                    gtid_io_pos: format!("0/{:X}", 0x300_0000 + i * 4096),
                    gtid_applied_pos: format!("0/{:X}", 0x300_0000 + i * 4000),
                    ..ChannelStatus::running()
                }],
                postgres: Some(PgFigures {
                    replay_commit_us: Some(1_700_000_000_000_000 + i * 200_000 - 800),
                    write_lag_us: Some(120),
                    flush_lag_us: Some(400),
                    replay_lag_us: (i % 3 != 0).then_some(650),
                    min_apply_delay_ms: Some(1_500),
                }),
            })
            .collect();
        samples[4].postgres = None;
        samples[5].postgres = Some(PgFigures::default());
        let bytes = status_to_bytes(&samples).unwrap();
        assert_eq!(status_from_bytes(&bytes).unwrap(), samples);
        // A reader that knows only the chunk reads it and stops there.
        let old: StatusChunk<&str> = postcard::from_bytes(&bytes).unwrap();
        let without: Vec<StatusSample> = samples
            .iter()
            .map(|s| StatusSample {
                postgres: None,
                ..s.clone()
            })
            .collect();
        assert_eq!(decode_status(&old).unwrap(), without);
        // What a writer before the delays trailer wrote: the figures, no delays.
        let delays = samples
            .iter()
            .map(|s| s.postgres.and_then(|p| p.min_apply_delay_ms));
        let figures_end = bytes.len()
            - postcard::to_stdvec(&PgDelays(delays.collect()))
                .unwrap()
                .len();
        let before: Vec<StatusSample> = samples
            .iter()
            .map(|s| StatusSample {
                postgres: s.postgres.map(|p| PgFigures {
                    min_apply_delay_ms: None,
                    ..p
                }),
                ..s.clone()
            })
            .collect();
        assert_eq!(status_from_bytes(&bytes[..figures_end]).unwrap(), before);
        // A trailer that does not match the chunk is corruption, not a guess.
        let mut short = postcard::to_stdvec(&encode_status(&samples[..9])).unwrap();
        short.extend_from_slice(&bytes[postcard::to_stdvec(&old).unwrap().len()..]);
        let e = status_from_bytes(&short).unwrap_err();
        assert!(
            e.to_string().contains("postgres figures for 10 of 9"),
            "{e}"
        );
        assert!(status_from_bytes(&bytes[..bytes.len() - 1]).is_err());
    }
}
