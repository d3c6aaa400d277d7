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
use crate::samples::{IoState, StatusSample};
use crate::store::scan::Recording;

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

/// The rows of a recording, replica by replica, each in time order.
pub fn rows(rec: &Recording) -> impl Iterator<Item = Row> + '_ {
    rec.replicas.iter().flat_map(move |series| {
        let beats = rec
            .beats
            .get(&series.cluster)
            .map_or(&[][..], |b| b.as_slice());
        let index = BeatIndex::new(beats);
        let mut status_at = 0usize;
        series.observations.iter().map(move |obs| {
            while status_at < series.status.len() && series.status[status_at].t_us <= obs.r_start_us
            {
                status_at += 1;
            }
            let status: Option<&StatusSample> = status_at.checked_sub(1).map(|i| &series.status[i]);
            let channel = status.and_then(|s| s.main_channel());
            let lag = index.lag(obs);
            Row {
                time_utc: format_utc_us(obs.r_start_us),
                cluster: series.cluster.clone(),
                replica: series.replica.clone(),
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
        })
    })
}

/// Writes rows as CSV with a header.
pub fn write_csv(rows: impl Iterator<Item = Row>, out: impl Write) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    for row in rows {
        w.serialize(row).map_err(csv_io)?;
    }
    w.flush()
}

/// Writes rows as JSON lines.
pub fn write_jsonl(rows: impl Iterator<Item = Row>, mut out: impl Write) -> std::io::Result<()> {
    for row in rows {
        serde_json::to_writer(&mut out, &row)?;
        out.write_all(b"\n")?;
    }
    out.flush()
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
    use crate::samples::{Beat, ChannelStatus, Observation, Outcome};
    use crate::store::scan::ReplicaSeries;

    fn recording() -> Recording {
        let mut rec = Recording::default();
        rec.beats.insert(
            "lab".into(),
            vec![
                Beat {
                    seq: 1,
                    t_send_us: 1_000_000,
                    t_done_us: 1_000_400,
                    outcome: Outcome::Ok,
                    reason: None,
                },
                Beat {
                    seq: 2,
                    t_send_us: 1_100_000,
                    t_done_us: 1_100_400,
                    outcome: Outcome::Ok,
                    reason: None,
                },
            ],
        );
        let channel = ChannelStatus {
            sql_running: false,
            seconds_behind_master: None,
            sql_delay_s: 2,
            sql_applying: None,
            ..ChannelStatus::running()
        };
        rec.replicas.push(ReplicaSeries {
            cluster: "lab".into(),
            replica: "r1".into(),
            observations: vec![
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
            ],
            status: vec![StatusSample {
                t_us: 1_050_000,
                duration_us: 100,
                outcome: Outcome::Ok,
                reason: None,
                channels: vec![channel],
            }],
        });
        rec
    }

    #[test]
    fn rows_join_lag_and_latest_status() {
        let rec = recording();
        let rows: Vec<Row> = rows(&rec).collect();
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
        let rec = recording();
        let mut csv_out = Vec::new();
        write_csv(rows(&rec), &mut csv_out).unwrap();
        let text = String::from_utf8(csv_out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "time_utc,cluster,replica,seq,lag_ms,lag_lo_ms,lag_hi_ms,rtt_ms,outcome,reason,io_running,sql_running,seconds_behind_master,sql_delay_s"
        );
        assert!(
            text.contains(",refused,connection refused,Yes,No,,2"),
            "{text}"
        );
        let mut json_out = Vec::new();
        write_jsonl(rows(&rec), &mut json_out).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(String::from_utf8(json_out).unwrap().lines().nth(1).unwrap())
                .unwrap();
        assert_eq!(first["seconds_behind_master"], serde_json::Value::Null);
        assert_eq!(first["sql_delay_s"], 2);
    }
}
