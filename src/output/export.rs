//! `export` rows, written as CSV or JSON lines: by default one per probe round (a first
//! read and its follow-ups, keeping the read with the tightest lag), with `--reads` one
//! per read; each with its lag and the replica's latest replication status at that time.
//!
//! Columns (docs/commands.md, "export"): `time_utc, cluster, replica, seq, lag_kind, lag_ms,
//! lag_lo_ms, lag_hi_ms, reads, rtt_ms, outcome, reason, io_running, sql_running,
//! seconds_behind_master, sql_delay_s, probe`. `probe` is `poll` (a read of the row) or
//! `binlog` (the replica's binary log stream; `rtt_ms` is then the delivery delay
//! bound). `lag_kind` is `bounded`, `at_least` (no upper
//! bound: `lag_ms` is the lower bound) or `unknown` (the read worked but says nothing
//! of the lag; `reason` says why). Empty
//! (CSV) or null (JSON) means unknown: no lag for a failed read, no upper bound for
//! "at least" lag, no status before the first poll, and Seconds_Behind_Master when the
//! server said NULL.

use std::io::Write;

use serde::Serialize;

use crate::analysis::lag::{Lag, LagMs};
use crate::analysis::series::{ROUND_HOLD_US, joins_round, replaces};
use crate::clock::format_utc_us;
use crate::clock::ms;
use crate::samples::{Observation, Outcome, StatusSample};

/// One exported round (or read).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub time_utc: String,
    pub cluster: String,
    pub replica: String,
    pub seq: Option<u64>,
    /// [`LagMs`]'s fields, one column each (CSV has no nesting).
    pub lag_kind: Option<&'static str>,
    /// The judged lag: the point estimate of bounded lag, the lower bound otherwise.
    pub lag_ms: Option<f64>,
    pub lag_lo_ms: Option<f64>,
    pub lag_hi_ms: Option<f64>,
    /// Reads in the round (1 with `--reads`).
    pub reads: u32,
    pub rtt_ms: f64,
    pub outcome: &'static str,
    /// Why the read failed, or for a read with an unknown lag, why it is unknown.
    pub reason: Option<String>,
    pub io_running: Option<&'static str>,
    pub sql_running: Option<&'static str>,
    pub seconds_behind_master: Option<u32>,
    pub sql_delay_s: Option<u32>,
    /// `poll` or `binlog`.
    pub probe: &'static str,
}

/// A round being gathered: the read kept so far, its lag, and the reads in it.
struct Round {
    obs: Observation,
    lag: Option<Lag>,
    session: u32,
    reads: u32,
}

/// Turns one replica's observations, fed in time order, into rows: lag from the beats
/// of each read's session, status from the latest sample at or before the row's read.
/// Status samples are fed in time order too ([`Rows::add_status`]), up to each read
/// before it is pushed.
pub struct Rows<'a> {
    cluster: &'a str,
    replica: &'a str,
    /// The samples fed that a row may still use, in time order.
    status: std::collections::VecDeque<StatusSample>,
    /// One row per read instead of per round.
    per_read: bool,
    /// The rounds being gathered, one per session at most (two recorders' stores
    /// exported together interleave their reads).
    open: Vec<Round>,
    /// Rounds gathered and not written yet, in the time order of their reads (equal
    /// times in the order they closed): rows go out in time order once no open round
    /// can come before them.
    closed: std::collections::VecDeque<Round>,
}

impl<'a> Rows<'a> {
    pub fn new(cluster: &'a str, replica: &'a str, per_read: bool) -> Self {
        Rows {
            cluster,
            replica,
            status: std::collections::VecDeque::new(),
            per_read,
            open: Vec::new(),
            closed: std::collections::VecDeque::new(),
        }
    }

    /// Adds the next read (of `session`) with the lag it shows (`None` for a failed
    /// read); returns the rows of the rounds it closed, in time order. A round whose
    /// session has read nothing for [`ROUND_HOLD_US`] is closed (its recorder stopped).
    pub fn push(&mut self, obs: &Observation, session: u32, lag: Option<Lag>) -> Vec<Row> {
        let t = obs.r_start_us;
        while let Some(i) = self
            .open
            .iter()
            .position(|r| t - r.obs.r_start_us > ROUND_HOLD_US)
        {
            let r = self.open.remove(i);
            self.close(r);
        }
        let mine = self.open.iter().position(|r| r.session == session);
        let open = mine
            .map(|i| &self.open[i])
            .filter(|r| r.obs.outcome == Outcome::Ok)
            .map(|r| r.session);
        if let Some(i) = mine.filter(|_| !self.per_read && joins_round(open, obs, session)) {
            let round = &mut self.open[i];
            round.reads += 1;
            let better = match (round.lag, lag) {
                (Some(kept), Some(new)) => replaces(kept, new),
                (None, Some(_)) => true,
                _ => false,
            };
            if better {
                (round.obs, round.lag) = (obs.clone(), lag);
            }
            return self.hand_on();
        }
        if let Some(i) = mine {
            let r = self.open.remove(i);
            self.close(r);
        }
        self.open.push(Round {
            obs: obs.clone(),
            lag,
            session,
            reads: 1,
        });
        self.hand_on()
    }

    fn close(&mut self, round: Round) {
        let t = round.obs.r_start_us;
        let at = self.closed.partition_point(|r| r.obs.r_start_us <= t);
        self.closed.insert(at, round);
    }

    /// The rows of the closed rounds no other session's open round can come before
    /// (an open round's read only moves on, and later reads come later). One
    /// session's rows go out at once, as its reads came.
    fn hand_on(&mut self) -> Vec<Row> {
        let mut rows = Vec::new();
        while let Some(round) = self.closed.front() {
            let t = round.obs.r_start_us;
            if self
                .open
                .iter()
                .any(|r| r.session != round.session && r.obs.r_start_us <= t)
            {
                break;
            }
            if let Some(round) = self.closed.pop_front() {
                rows.push(self.row(round));
            }
        }
        rows
    }

    /// Adds the next status sample (in time order).
    pub fn add_status(&mut self, sample: StatusSample) {
        self.status.push_back(sample);
    }

    /// The rows of the last rounds.
    pub fn finish(&mut self) -> Vec<Row> {
        for r in std::mem::take(&mut self.open) {
            self.close(r);
        }
        self.hand_on()
    }

    fn row(&mut self, round: Round) -> Row {
        let obs = &round.obs;
        // Rows come in time order: samples before the latest one at or before this
        // row's read are of no more use.
        while self.status.get(1).is_some_and(|s| s.t_us <= obs.r_start_us) {
            self.status.pop_front();
        }
        let status = self.status.front().filter(|s| s.t_us <= obs.r_start_us);
        let channel = status.and_then(|s| s.main_channel());
        let lag = round.lag;
        let LagMs {
            lag_kind,
            lag_ms,
            lag_lo_ms,
            lag_hi_ms,
        } = LagMs::of(lag);
        let unknown = match lag {
            Some(Lag::Unknown(why)) => Some(why.to_string()),
            _ => None,
        };
        Row {
            time_utc: format_utc_us(obs.r_start_us),
            cluster: self.cluster.to_string(),
            replica: self.replica.to_string(),
            seq: obs.seq,
            lag_kind,
            lag_ms,
            lag_lo_ms,
            lag_hi_ms,
            reads: round.reads,
            rtt_ms: ms(obs.r_end_us - obs.r_start_us),
            outcome: obs.outcome.name(),
            reason: obs.reason.clone().or(unknown),
            io_running: channel.map(|c| c.io.label()),
            sql_running: channel.map(|c| if c.sql_running { "Yes" } else { "No" }),
            seconds_behind_master: channel.and_then(|c| c.seconds_behind_master),
            sql_delay_s: channel.map(|c| c.sql_delay_s),
            probe: obs.probe.name(),
        }
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated, with a header line
    Csv,
    /// One JSON object per line
    Jsonl,
}

/// Writes rows one by one in a format.
pub enum Writer<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Jsonl(W),
}

impl<W: Write> Writer<W> {
    pub fn new(format: Format, out: W) -> Self {
        match format {
            Format::Csv => Writer::Csv(Box::new(csv::Writer::from_writer(out))),
            Format::Jsonl => Writer::Jsonl(out),
        }
    }

    pub fn write(&mut self, row: &impl Serialize) -> std::io::Result<()> {
        match self {
            Writer::Csv(w) => w.serialize(row).map_err(csv_io),
            Writer::Jsonl(out) => {
                serde_json::to_writer(&mut *out, row)?;
                out.write_all(b"\n")
            }
        }
    }

    pub fn finish(self) -> std::io::Result<()> {
        match self {
            Writer::Csv(mut w) => w.flush(),
            Writer::Jsonl(mut out) => out.flush(),
        }
    }
}

/// A stored event as `export --events` writes it in CSV: the fields to sort and filter
/// on, then the whole document (JSON lines give the document alone).
#[derive(Debug, Serialize)]
pub struct EventRow<'a> {
    pub time_utc: String,
    pub cluster: &'a str,
    pub event: &'a str,
    /// The server it is about (name), or the trigger's program for `trigger_run`.
    pub node: &'a str,
    pub while_stopped: bool,
    pub document: String,
}

/// Writes `events` in `format`: JSON lines give each stored document as it is; CSV an
/// [`EventRow`] each.
pub fn write_events<W: Write>(
    events: &[crate::store::events::RecordedEvent],
    out: &mut Writer<W>,
) -> std::io::Result<()> {
    for e in events {
        match out {
            Writer::Jsonl(_) => out.write(&e.json)?,
            Writer::Csv(_) => out.write(&EventRow {
                time_utc: crate::clock::format_utc_us(e.t_us),
                cluster: e.cluster(),
                event: &e.doc.event,
                node: e
                    .doc
                    .node_name()
                    .or(e.doc.program.as_deref())
                    .unwrap_or_default(),
                while_stopped: e.doc.while_stopped,
                document: e.json.to_string(),
            })?,
        }
    }
    Ok(())
}

fn csv_io(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => io,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::{ChannelStatus, Outcome};

    fn make_rows(per_read: bool) -> Vec<Row> {
        let beats = [
            crate::samples::BeatTimes::new(1, 1_000_000, Some(1_000_400), 0),
            crate::samples::BeatTimes::new(2, 1_100_000, Some(1_100_400), 0),
        ];
        let continuity = [crate::analysis::lag::Continuity::for_interval(100_000)];
        let channel = ChannelStatus {
            sql_running: false,
            seconds_behind_master: None,
            sql_delay_s: 2,
            sql_applying: None,
            ..ChannelStatus::running()
        };
        let status = [StatusSample {
            postgres: None,
            t_us: 1_050_000,
            duration_us: 100,
            outcome: Outcome::Ok,
            reason: None,
            channels: vec![channel],
        }];
        let read = |start, end, seq: Option<u64>, follow_up| Observation {
            r_start_us: start,
            r_end_us: end,
            seq,
            outcome: if seq.is_some() {
                Outcome::Ok
            } else {
                Outcome::Refused
            },
            reason: seq.is_none().then(|| "connection refused".into()),
            follow_up,
            probe: Default::default(),
        };
        let observations = [
            read(1_000_500, 1_000_700, Some(1), false),
            read(1_100_500, 1_100_900, Some(1), false),
            // Its follow-up: narrower (it shows beat 2).
            read(1_101_000, 1_101_200, Some(2), true),
            read(1_200_500, 1_201_500, None, false),
        ];
        let mut rows = Rows::new("lab", "r1", per_read);
        let mut cursor = crate::analysis::lag::BeatCursor::new(&beats, &continuity);
        let mut status = status.into_iter().peekable();
        let mut out: Vec<Row> = Vec::new();
        for o in &observations {
            while let Some(s) = status.next_if(|s| s.t_us <= o.r_start_us) {
                rows.add_status(s);
            }
            out.extend(rows.push(o, 0, cursor.lag(0, o)));
        }
        out.extend(rows.finish());
        out
    }

    #[test]
    fn rows_join_lag_and_latest_status_one_per_round() {
        let rows = make_rows(false);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].io_running, None, "no status before the first poll");
        assert_eq!(rows[0].lag_hi_ms, Some(0.7));
        assert_eq!((rows[0].lag_kind, rows[0].reads), (Some("bounded"), 1));
        // The round of two reads keeps the follow-up's tighter bounds.
        assert_eq!(rows[1].reads, 2);
        assert_eq!(rows[1].seq, Some(2));
        assert_eq!(
            (rows[1].lag_lo_ms, rows[1].lag_hi_ms),
            (Some(0.0), Some(1.2))
        );
        assert_eq!(rows[1].sql_running, Some("No"));
        assert_eq!(rows[1].seconds_behind_master, None);
        assert_eq!(rows[1].sql_delay_s, Some(2));
        assert_eq!((rows[2].lag_ms, rows[2].lag_kind), (None, None));
        assert_eq!(rows[2].outcome, "refused");
        // One per read: the first read of the round has its own, wider, bounds.
        let reads = make_rows(true);
        assert_eq!(reads.len(), 4);
        assert_eq!(
            (reads[1].lag_lo_ms, reads[1].lag_hi_ms),
            (Some(0.1), Some(100.9))
        );
        assert!(reads.iter().all(|r| r.reads == 1));
    }

    /// A read of a seq this recorder never wrote: lag_kind `unknown` (the one
    /// vocabulary: bounded, at_least, unknown), no number, and why in `reason`.
    #[test]
    fn a_foreign_beat_is_unknown_with_its_reason() {
        let mut rows = Rows::new("lab", "r1", true);
        let o = Observation {
            r_start_us: 1_000,
            r_end_us: 1_200,
            seq: Some(99),
            outcome: Outcome::Ok,
            reason: None,
            follow_up: false,
            probe: Default::default(),
        };
        let lag = Lag::Unknown(crate::analysis::lag::Unknown::ForeignBeat { seq: 99 });
        let mut out: Vec<Row> = rows.push(&o, 0, Some(lag)).into_iter().collect();
        out.extend(rows.finish());
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].lag_kind, out[0].lag_ms), (Some("unknown"), None));
        let reason = out[0].reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains("seq 99, which this recorder never wrote"),
            "{reason}"
        );
    }

    fn written(format: Format) -> String {
        let mut out = Vec::new();
        let mut w = Writer::new(format, &mut out);
        for row in make_rows(false) {
            w.write(&row).unwrap();
        }
        w.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_and_jsonl_formats() {
        let text = written(Format::Csv);
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "time_utc,cluster,replica,seq,lag_kind,lag_ms,lag_lo_ms,lag_hi_ms,reads,rtt_ms,outcome,reason,io_running,sql_running,seconds_behind_master,sql_delay_s,probe"
        );
        assert!(
            text.contains(",refused,connection refused,Yes,No,,2"),
            "{text}"
        );
        let json = written(Format::Jsonl);
        let first: serde_json::Value = serde_json::from_str(json.lines().nth(1).unwrap()).unwrap();
        assert_eq!(first["seconds_behind_master"], serde_json::Value::Null);
        assert_eq!(first["sql_delay_s"], 2);
    }
}
