//! `export` rows: one per observation, with lag bounds and the replica's latest
//! replication status at that time, written as CSV or JSON lines.
//!
//! Columns (README, "export"): `time_utc, cluster, replica, seq, lag_ms, lag_lo_ms,
//! lag_hi_ms, rtt_ms, outcome, reason, io_running, sql_running, seconds_behind_master,
//! sql_delay_s`. Empty (CSV) or null (JSON) means unknown: no lag for a failed read, no
//! status before the first poll, and Seconds_Behind_Master when the server said NULL.

use std::io::Write;

use serde::Serialize;

use crate::analysis::lag::BeatIndex;
use crate::clock::format_utc_us;
use crate::samples::{BeatTimes, IoState, Observation, StatusSample};

/// One exported observation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub time_utc: String,
    pub cluster: String,
    pub replica: String,
    pub seq: Option<u64>,
    pub lag_ms: Option<f64>,
    pub lag_lo_ms: Option<f64>,
    pub lag_hi_ms: Option<f64>,
    pub rtt_ms: f64,
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub io_running: Option<&'static str>,
    pub sql_running: Option<&'static str>,
    pub seconds_behind_master: Option<u32>,
    pub sql_delay_s: Option<u32>,
}

fn ms(us: i64) -> f64 {
    us as f64 / 1000.0
}

/// Turns one replica's observations, fed in time order, into rows: lag from the beats,
/// status from the latest sample at or before each read.
pub struct Rows<'a> {
    cluster: &'a str,
    replica: &'a str,
    index: BeatIndex<'a>,
    status: &'a [StatusSample],
    /// Status samples at or before the last read.
    status_at: usize,
}

impl<'a> Rows<'a> {
    /// `beats` ordered by seq, `status` in time order.
    pub fn new(
        cluster: &'a str,
        replica: &'a str,
        beats: &'a [BeatTimes],
        status: &'a [StatusSample],
    ) -> Self {
        Rows {
            cluster,
            replica,
            index: BeatIndex::new(beats),
            status,
            status_at: 0,
        }
    }

    /// The row of the next observation.
    pub fn row(&mut self, obs: &Observation) -> Row {
        while self.status_at < self.status.len()
            && self.status[self.status_at].t_us <= obs.r_start_us
        {
            self.status_at += 1;
        }
        let status = self.status_at.checked_sub(1).map(|i| &self.status[i]);
        let channel = status.and_then(|s| s.main_channel());
        let lag = self.index.lag(obs);
        Row {
            time_utc: format_utc_us(obs.r_start_us),
            cluster: self.cluster.to_string(),
            replica: self.replica.to_string(),
            seq: obs.seq,
            lag_ms: lag.map(|b| ms(b.point_us())),
            lag_lo_ms: lag.map(|b| ms(b.lo_us)),
            lag_hi_ms: lag.map(|b| ms(b.hi_us)),
            rtt_ms: ms(obs.r_end_us - obs.r_start_us),
            outcome: obs.outcome.name(),
            reason: obs.reason.clone(),
            io_running: channel.map(|c| match c.io {
                IoState::Yes => "Yes",
                IoState::No => "No",
                IoState::Connecting => "Connecting",
            }),
            sql_running: channel.map(|c| if c.sql_running { "Yes" } else { "No" }),
            seconds_behind_master: channel.and_then(|c| c.seconds_behind_master),
            sql_delay_s: channel.map(|c| c.sql_delay_s),
        }
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// With a header line.
    Csv,
    /// One JSON object per line.
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

    pub fn write(&mut self, row: &Row) -> std::io::Result<()> {
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

    fn rows() -> Vec<Row> {
        let beats = [
            BeatTimes::new(1, 1_000_000, Some(1_000_400)),
            BeatTimes::new(2, 1_100_000, Some(1_100_400)),
        ];
        let channel = ChannelStatus {
            sql_running: false,
            seconds_behind_master: None,
            sql_delay_s: 2,
            sql_applying: None,
            ..ChannelStatus::running()
        };
        let status = [StatusSample {
            t_us: 1_050_000,
            duration_us: 100,
            outcome: Outcome::Ok,
            reason: None,
            channels: vec![channel],
        }];
        let observations = [
            Observation {
                r_start_us: 1_000_500,
                r_end_us: 1_000_700,
                seq: Some(1),
                outcome: Outcome::Ok,
                reason: None,
            },
            Observation {
                r_start_us: 1_100_500,
                r_end_us: 1_100_900,
                seq: Some(1),
                outcome: Outcome::Ok,
                reason: None,
            },
            Observation {
                r_start_us: 1_200_500,
                r_end_us: 1_201_500,
                seq: None,
                outcome: Outcome::Refused,
                reason: Some("connection refused".into()),
            },
        ];
        let mut rows = Rows::new("lab", "r1", &beats, &status);
        observations.iter().map(|o| rows.row(o)).collect()
    }

    fn written(format: Format) -> String {
        let mut out = Vec::new();
        let mut w = Writer::new(format, &mut out);
        for row in rows() {
            w.write(&row).unwrap();
        }
        w.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rows_join_lag_and_latest_status() {
        let rows = rows();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].io_running, None, "no status before the first poll");
        assert_eq!(rows[0].lag_hi_ms, Some(0.7));
        assert_eq!(rows[1].lag_lo_ms, Some(0.1));
        assert_eq!(rows[1].lag_hi_ms, Some(100.9));
        assert_eq!(rows[1].sql_running, Some("No"));
        assert_eq!(rows[1].seconds_behind_master, None);
        assert_eq!(rows[1].sql_delay_s, Some(2));
        assert_eq!(rows[2].lag_ms, None);
        assert_eq!(rows[2].outcome, "refused");
    }

    #[test]
    fn csv_and_jsonl_formats() {
        let text = written(Format::Csv);
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "time_utc,cluster,replica,seq,lag_ms,lag_lo_ms,lag_hi_ms,rtt_ms,outcome,reason,io_running,sql_running,seconds_behind_master,sql_delay_s"
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
