//! The binary log probe: one task per replica that follows the replica's own binary
//! log (a replication connection to the replica, as a replica of it would open) and
//! takes each heartbeat row event as an observation, with no query per beat. Why its
//! bounds hold is in `docs/binlog-probe.md`; in short:
//!
//! - the event of beat `k` arriving at `t` says the replica had applied `k` by `t`
//!   (upper bound), and lacked `k + 1` at `t - delay_us`, where `delay_us` bounds the
//!   stream's delivery delay (lower bound). It is stored as an observation spanning
//!   `[t - delay_us, t]`, so every formula of the Lag model applies unchanged;
//! - any other message (another transaction's event, the server's binlog heartbeat,
//!   sent every `heartbeat_period` while the binary log is idle) says the same of the
//!   newest beat seen: a stalled replica keeps producing observations;
//! - `delay_us` is measured, never assumed: the largest of a few query round trips on
//!   the stream's connection, and of how late the stream delivered a beat that a read
//!   once a second (the cross-check) had already seen;
//! - after (re)connecting, the stream first sends what the binary log gained while
//!   the connection was set up: until it has caught up, an event's lower bound is the
//!   start of a read of the row made during the setup instead; and messages read back
//!   to back (less than [`BACKLOG_GAP_US`] after the task began to wait, a backlog
//!   being sent after a stall) prove only what the first of their run proves;
//! - a quiet wait proves the server had sent everything only if nothing arrived
//!   during it. The stream's own connection ([`super::stamped`]) knows when each
//!   message arrived from the kernel, and when the socket was last found empty
//!   (checked at every beat as well while the replica is behind), so a pause of the
//!   recorder's can neither hide nor fake one: a run starts when the socket was last
//!   found empty, never at a kernel stamp (a stamp may be later than its first byte).
//!   Where the kernel's times cannot be had, the stream goes through the client
//!   library and a message arrives when it is read: across a pause of the recorder's
//!   own ([`super::pauses`]) it proves only what one arriving when the pause began
//!   would.
//!
//! The stream starts at the replica's current GTID position (never at an older one:
//! events replayed late would look like lag), so a reconnection leaves a gap, stored
//! as the failed observation that ended the stream. A stream that stops delivering
//! (the cross-check saw a beat it did not bring, or nothing at all arrived for a
//! while) is reconnected. MariaDB only so far; elsewhere `probe = "auto"` polls.

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use mysql_async::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Value};
use mysql_common::binlog::EventStreamReader;
use mysql_common::binlog::consts::BinlogVersion;
use tokio::sync::{mpsc, watch};

mod rows;
mod setup;

use setup::{Streamable, stream_settings};
pub use setup::{binlog_file_position, readiness};

use super::beat::BeatNotice;
use super::conn::MAX_BACKOFF;
use super::conn::{self, Backoff, DbError, FailureRun, timed};
use super::reader::{self, Reader};
use super::session::Session;
use super::stamped::{OpenError, Stamped};
use crate::config::{Kind, ProbeMode};
use crate::samples::{Observation, Outcome, Probe, Probed};

/// Everything a binary log probe needs: a poll reader's settings (it falls back to
/// one, and cross-checks with one), how it was asked for, and its stream's server id.
#[derive(Debug, Clone)]
pub struct Binlog {
    pub reader: Reader,
    /// `Auto` or `Binlog`.
    pub mode: ProbeMode,
    /// The replication server id the stream registers with.
    pub server_id: u32,
}

/// A stream lost again within this of its last restart is a failed read.
const RESTART_QUIET: Duration = Duration::from_secs(10);

/// How often the cross-check reads the row.
const CROSS_CHECK_EVERY: Duration = Duration::from_secs(1);
/// A beat a cross-check read showed and the stream has not brought this long after
/// ends the stream.
const UNDELIVERED_AFTER_US: i64 = 2_000_000;
/// The smallest delivery delay bound, µs.
const MIN_DELAY_US: i64 = 100;
/// How long a late delivery the cross-check measured keeps widening the bounds, µs.
const LATENESS_KEPT_US: i64 = 60_000_000;
/// A message read less than this after the task began to wait for the stream may
/// have been waiting already (a backlog the server is still sending after a stall or
/// during a catch-up, or one that came while the task was busy): it proves only what
/// the first message of its run proves, µs.
const BACKLOG_GAP_US: i64 = 200;

/// A wait inside a transaction may ask the cross-check for a read at once, at most this
/// often, µs: the stream's delivery is limited, and a read tells how far behind it is.
const POKE_EVERY_US: i64 = 50_000;

/// The server's binlog heartbeat period for a beat interval: a beat's period, within
/// 10 ms and 1 s (a stalled replica's lag then moves by at most that between
/// observations).
pub fn heartbeat_period(interval: Duration) -> Duration {
    interval.clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Nothing at all (no event, no heartbeat) for this long ends the stream.
fn silence_limit(interval: Duration) -> Duration {
    (heartbeat_period(interval) * 5).max(Duration::from_secs(2))
}

/// How long a stream that has not caught up yet may stay silent, or leave a beat the
/// cross-check saw undelivered, µs. A stream started by GTID (the user lacks `BINLOG
/// MONITOR`, so the file position is unknown) makes the server scan its current binary
/// log file up to the position first, sending nothing meanwhile: 50 such streams on a
/// file of 400 000 small transactions took more than the steady limits, so each was
/// dropped before it delivered and started again, for good.
const CATCH_UP_LIMIT_US: i64 = 60_000_000;

/// Why a stream could not start.
enum SetupError {
    /// The replica does not allow it (binary log off, no `log_slave_updates`, not
    /// row-based, a missing privilege, not MariaDB): `auto` polls instead.
    Unsupported(String),
    /// Anything else (the replica is down, a timeout): try again.
    Failed(DbError),
}

impl From<DbError> for SetupError {
    fn from(e: DbError) -> Self {
        SetupError::Failed(e)
    }
}

/// A started stream and what its setup learned.
struct Opened {
    stream: Source,
    /// When the stream was requested, µs.
    requested_us: i64,
    /// The largest query round trip of the setup, µs.
    round_trip_us: i64,
    /// The row's beat as a read showed it during the setup: a poll observation.
    read: Observation,
    /// Whether the stream started by GTID (the user lacks `BINLOG MONITOR`).
    by_gtid: bool,
}

/// How following a stream ended.
enum End {
    Shutdown,
    /// The stream broke or stopped delivering: the failed observation to store.
    Lost(DbError),
}

/// Follows the replica's binary log until `shutdown` turns true or the beat writer
/// goes away; with `probe = "auto"`, polls instead (through [`reader::run`]) when the
/// replica does not allow a stream.
pub async fn run(
    b: Binlog,
    out: mpsc::Sender<Probed>,
    mut notices: watch::Receiver<BeatNotice>,
    mut shutdown: watch::Receiver<bool>,
) {
    let r = &b.reader;
    if r.kind == Kind::Postgres {
        let why = "PostgreSQL has no binary log".to_string();
        choose(&out, r, false, Some(why)).await;
        return Box::pin(reader::run(b.reader, out, notices, shutdown)).await;
    }
    let mut backoff = Backoff::new(r.interval.max(Duration::from_millis(50)), MAX_BACKOFF);
    let mut failures = FailureRun::new("binlog", &r.cluster, &r.replica);
    let mut announced = false;
    let mut refused_before: Option<String> = None;
    let mut arrival = reader::RowArrival::new(r);
    // Whether the log said why the stream goes through the client library.
    let mut library_said = false;
    // When a lost stream was last restarted without a failed read.
    let mut restarted: Option<std::time::Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let mut t0_us = r.clock.now_us();
        let failed = match Box::pin(open(&b, &mut arrival, &mut library_said)).await {
            Ok(opened) => {
                backoff.reset();
                failures.succeeded();
                refused_before = None;
                if !announced {
                    announced = true;
                    if opened.by_gtid {
                        tracing::warn!(cluster = %r.cluster, replica = %r.replica, "the binary log stream starts by GTID (the user lacks BINLOG MONITOR, so the file position is unknown): the replica scans its current binary log file before it sends anything, at each reconnection");
                    }
                    choose(&out, r, true, None).await;
                }
                match Box::pin(follow(&b, opened, &out, &mut notices, &mut shutdown)).await {
                    End::Shutdown => break,
                    // A stream that ends (its dump thread killed, logs purged, a beat
                    // not delivered) is restarted at once: the replica answers, and a
                    // failed read would take it out of the pool for nothing. Only a
                    // stream that ends again within RESTART_QUIET is a failure.
                    End::Lost(e) if restarted.is_none_or(|t| t.elapsed() > RESTART_QUIET) => {
                        restarted = Some(std::time::Instant::now());
                        tracing::info!(cluster = %r.cluster, replica = %r.replica, error = %e, "the binary log stream ended; restarting it");
                        continue;
                    }
                    End::Lost(e) => {
                        t0_us = r.clock.now_us();
                        (e.outcome(), e.to_string())
                    }
                }
            }
            Err(SetupError::Unsupported(why)) if b.mode == ProbeMode::Auto => {
                choose(&out, r, false, Some(why)).await;
                return Box::pin(reader::run(b.reader, out, notices, shutdown)).await;
            }
            Err(SetupError::Unsupported(why)) => {
                if refused_before.as_deref() != Some(why.as_str()) {
                    tracing::error!(cluster = %r.cluster, replica = %r.replica, "probe = \"binlog\" but the replica does not allow a binary log stream: {why}");
                    refused_before = Some(why.clone());
                }
                // A missing privilege is access denied; a setting, the server's refusal.
                let outcome = if why.contains("REPLICATION SLAVE") {
                    Outcome::AccessDenied
                } else {
                    Outcome::ServerError
                };
                (outcome, why)
            }
            Err(SetupError::Failed(e)) => (e.outcome(), e.to_string()),
        };
        failures.failed(&failed.1);
        let obs = Observation {
            r_start_us: t0_us,
            r_end_us: r.clock.now_us().max(t0_us),
            seq: None,
            outcome: failed.0,
            reason: Some(format!("binary log stream: {}", failed.1)),
            follow_up: false,
            probe: Probe::BinlogEvent,
        };
        if send(&out, r, obs).await.is_err() {
            break;
        }
        let wait = backoff.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
    }
}

/// Tells the recorder how the replica is probed.
async fn choose(out: &mpsc::Sender<Probed>, r: &Reader, binlog: bool, reason: Option<String>) {
    let _ = out
        .send(Probed::ProbeChoice {
            replica: r.replica_id,
            t_us: r.clock.now_us(),
            binlog,
            reason,
        })
        .await;
}

async fn send(out: &mpsc::Sender<Probed>, r: &Reader, observation: Observation) -> Result<(), ()> {
    out.send(Probed::Observation {
        replica: r.replica_id,
        observation,
    })
    .await
    .map_err(|_| ())
}

/// Connects, checks that the replica can stream its binary log with the heartbeat's
/// row events in it, measures round trips, reads the row once, and starts the stream
/// at the current GTID position. A row a writer creates that has not reached the
/// replica yet reads as seq 0 ([`reader::RowArrival`]).
async fn open(
    b: &Binlog,
    arrival: &mut reader::RowArrival,
    library_said: &mut bool,
) -> Result<Opened, SetupError> {
    let r = &b.reader;
    let timeout = r.settings.query_timeout;
    let mut c = conn::connect(&r.address, &r.settings, &r.password).await?;
    let gtid_position = match stream_settings(&mut c, timeout).await? {
        Streamable::Yes { gtid_position } => gtid_position,
        Streamable::No { why } => return Err(SetupError::Unsupported(why)),
    };
    let file_position = binlog_file_position(&mut c, timeout).await?;
    let mut round_trip_us = 0;
    for _ in 0..3 {
        let t = r.clock.now_us();
        timed("binlog setup", timeout, c.query_drop("DO 1")).await?;
        round_trip_us = round_trip_us.max(r.clock.now_us() - t);
    }
    let read_start_us = r.clock.now_us();
    let seq: Option<u64> = timed(
        "heartbeat read",
        timeout,
        c.exec_first(
            format!(
                "SELECT seq FROM `{}`.heartbeat WHERE cluster = ?",
                r.settings.database
            ),
            (&r.row,),
        ),
    )
    .await?;
    let read_end_us = r.clock.now_us();
    let seq = arrival.read(seq);
    let read = Observation {
        r_start_us: read_start_us,
        r_end_us: read_end_us,
        seq,
        outcome: if seq.is_some() {
            Outcome::Ok
        } else {
            Outcome::MissingRow
        },
        reason: seq.is_none().then(|| reader::missing_row(r)),
        follow_up: false,
        probe: Probe::Poll,
    };
    let period_ns = heartbeat_period(r.interval).as_nanos() as u64;
    let own = open_own(b, (&gtid_position, &file_position), period_ns, library_said);
    if let Some(own) = own.await? {
        let (conn, requested_us, own_round_trip_us) = own;
        // The setup's connection is done with (a goodbye, not a dropped socket).
        let _ = timed("binlog setup", timeout, c.disconnect()).await;
        return Ok(Opened {
            stream: Source::Own {
                conn: Box::new(conn),
                events: Box::new(EventStreamReader::new(BinlogVersion::Version4)),
            },
            requested_us,
            round_trip_us: round_trip_us.max(own_round_trip_us),
            read,
            by_gtid: file_position.is_none(),
        });
    }
    // At the current file position when the user may read it: the server then starts
    // sending at once. By GTID otherwise, which makes it scan the file first.
    let request = BinlogStreamRequest::new(b.server_id);
    // (A GTID state of '' would mean "from the first GTID": NULL means none.)
    let (connect_state, request) = match &file_position {
        Some((file, pos)) => (None, request.with_filename(file.as_bytes()).with_pos(*pos)),
        None => (Some(gtid_position.as_str()), request),
    };
    timed(
        "binlog setup",
        timeout,
        c.exec_drop(
            "SET @mariadb_slave_capability = 4, @slave_connect_state = ?, \
             @master_heartbeat_period = ?",
            (connect_state, period_ns),
        ),
    )
    .await?;
    let requested_us = r.clock.now_us();
    let stream = timed(
        "binlog stream request",
        timeout,
        c.get_binlog_stream(request),
    )
    .await
    .map_err(request_failed)?;
    Ok(Opened {
        stream: Source::Library(Box::new(stream)),
        requested_us,
        round_trip_us,
        read,
        by_gtid: file_position.is_none(),
    })
}

/// Why a request for the stream failed: a refusal means the user lacks the grant.
fn request_failed(e: DbError) -> SetupError {
    match e {
        DbError::AccessDenied { message } => SetupError::Unsupported(format!(
            "the user may not stream the binary log (grant REPLICATION SLAVE): {message}"
        )),
        e => SetupError::Failed(e),
    }
}

/// Opens the stream on a connection of our own ([`Stamped`]): its round trips, the
/// stream's settings and the dump request, from the file position when known, else
/// from `gtid_position`. Returns the connection, when the stream was requested and the
/// largest round trip (µs); None when such a connection cannot be had here (said once
/// per replica, in `said`): the client library's stream is used instead.
async fn open_own(
    b: &Binlog,
    (gtid_position, file_position): (&str, &Option<(String, u64)>),
    period_ns: u64,
    said: &mut bool,
) -> Result<Option<(Stamped, i64, i64)>, SetupError> {
    let r = &b.reader;
    let timeout = r.settings.query_timeout;
    let mut c = match Stamped::connect(&r.address, &r.settings, &r.password, r.clock).await {
        Ok(c) => c,
        Err(OpenError::Unsupported(why)) => {
            if !std::mem::replace(said, true) {
                tracing::warn!(cluster = %r.cluster, replica = %r.replica, "the binary log stream goes through the client library ({why}): a thread wakes every 2 ms to tell the recorder's own pauses, which kernel receive times would have told");
            }
            return Ok(None);
        }
        Err(OpenError::Failed(e)) => return Err(e.into()),
    };
    let mut round_trip_us = 0;
    for _ in 0..3 {
        let t = r.clock.now_us();
        timed("binlog setup", timeout, c.query("DO 1")).await?;
        round_trip_us = round_trip_us.max(r.clock.now_us() - t);
    }
    if !c.stamps_seen() {
        if !std::mem::replace(said, true) {
            tracing::warn!(cluster = %r.cluster, replica = %r.replica, "the binary log stream goes through the client library (the kernel gives no receive times): a thread wakes every 2 ms to tell the recorder's own pauses");
        }
        return Ok(None);
    }
    // (A GTID state of '' would mean "from the first GTID": NULL means none.)
    let state = match file_position {
        Some(_) => "NULL".to_string(),
        None if gtid_position
            .bytes()
            .all(|c| c.is_ascii_digit() || c == b'-' || c == b',') =>
        {
            format!("'{gtid_position}'")
        }
        None => {
            return Err(SetupError::Failed(DbError::Driver {
                message: format!("an unexpected GTID position {gtid_position:?}"),
            }));
        }
    };
    let set = format!(
        "SET @mariadb_slave_capability = 4, @slave_connect_state = {state}, \
         @master_heartbeat_period = {period_ns}, @master_binlog_checksum = 'ALL'"
    );
    timed("binlog setup", timeout, c.query(&set)).await?;
    let requested_us = r.clock.now_us();
    let from = file_position
        .as_ref()
        .map(|(file, pos)| (file.as_str(), *pos));
    timed("binlog stream request", timeout, c.dump(b.server_id, from))
        .await
        .map_err(request_failed)?;
    Ok(Some((c, requested_us, round_trip_us)))
}

/// The newest beat of heartbeat row `row` (in schema `database`) that `event`
/// carries: `(seq, t_send_us)`. Read straight from the event's bytes ([`rows`]);
/// what that cannot read goes through mysql_common's row decoder, which a debug build
/// also runs on every event to check the two agree.
fn heartbeat_row(
    stream: &Source,
    event: &Event,
    (database, row): (&str, &str),
) -> Option<(u64, i64)> {
    use mysql_async::binlog::EventType;
    let kind = event.header().event_type().ok()?;
    if !matches!(
        kind,
        EventType::UPDATE_ROWS_EVENT
            | EventType::WRITE_ROWS_EVENT
            | EventType::UPDATE_ROWS_EVENT_V1
            | EventType::WRITE_ROWS_EVENT_V1
    ) {
        return None;
    }
    let post_header_len = usize::from(event.fde().get_event_type_header_length(kind));
    let tme = stream.tme(rows::table_id(event.data(), post_header_len)?)?;
    if tme.database_name_raw() != database.as_bytes() || tme.table_name_raw() != b"heartbeat" {
        return None;
    }
    let mut columns: [rows::ColumnSpec<'_>; MAX_HEARTBEAT_COLUMNS] =
        [(0, &[]); MAX_HEARTBEAT_COLUMNS];
    let count = usize::try_from(tme.columns_count()).ok()?;
    let direct = (count <= MAX_HEARTBEAT_COLUMNS)
        .then(|| {
            for (i, column) in columns.iter_mut().enumerate().take(count) {
                let kind = tme.get_column_type(i).ok()?? as u8;
                *column = (kind, tme.get_column_metadata(i)?);
            }
            rows::newest_beat(
                kind as u8,
                event.data(),
                post_header_len,
                &columns[..count],
                row.as_bytes(),
            )
        })
        .flatten();
    match direct {
        Some(beat) => {
            debug_assert_eq!(beat, decoded_heartbeat_row(event, tme, row));
            beat
        }
        None => decoded_heartbeat_row(event, tme, row),
    }
}

/// The most columns a heartbeat table is read directly with.
const MAX_HEARTBEAT_COLUMNS: usize = 8;

/// [`heartbeat_row`] through mysql_common's generic row decoder.
fn decoded_heartbeat_row(
    event: &Event,
    tme: &TableMapEvent<'static>,
    row: &str,
) -> Option<(u64, i64)> {
    let Ok(Some(EventData::RowsEvent(rows))) = event.read_data() else {
        return None;
    };
    if matches!(
        rows,
        RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_)
    ) {
        return None;
    }
    let mut newest: Option<(u64, i64)> = None;
    for r in rows.rows(tme) {
        let Ok((_, Some(after))) = r else { continue };
        let name = match after.as_ref(0) {
            Some(BinlogValue::Value(Value::Bytes(b))) => b.as_slice(),
            _ => continue,
        };
        if name != row.as_bytes() {
            continue;
        }
        let seq = match after.as_ref(1) {
            Some(BinlogValue::Value(Value::UInt(v))) => *v,
            Some(BinlogValue::Value(Value::Int(v))) => *v as u64,
            _ => continue,
        };
        let t_send_us = match after.as_ref(2) {
            Some(BinlogValue::Value(Value::Int(v))) => *v,
            Some(BinlogValue::Value(Value::UInt(v))) => *v as i64,
            _ => continue,
        };
        if newest.is_none_or(|(s, _)| seq > s) {
            newest = Some((seq, t_send_us));
        }
    }
    newest
}

/// Where the stream's messages come from.
enum Source {
    /// A connection of our own: each message's arrival is the kernel's
    /// (`probe::stamped`), so a pause of the recorder cannot fake a quiet stretch.
    Own {
        conn: Box<Stamped>,
        events: Box<EventStreamReader>,
    },
    /// The client library's stream, where the kernel's times are not to be had: a
    /// message arrives when it is read, and the recorder's pauses are told by a
    /// watcher thread (`probe::pauses`).
    Library(Box<BinlogStream>),
}

/// One message of the stream, and what its arrival proves.
struct Message {
    event: Event,
    /// When it arrived, µs.
    t_us: i64,
    /// Whether it came after a wait of at least [`BACKLOG_GAP_US`] with nothing
    /// arriving: it may begin a run.
    waited: bool,
    /// If it waited: where the run it begins starts, when the wait proves the server
    /// had sent everything (None: the wait may hide a pause of the recorder's).
    run_start_us: Option<i64>,
}

impl Source {
    /// At a beat: whether anything came since the last read, so that a quiet stretch
    /// goes on until now (the run of the next message starts no earlier than this).
    fn check_empty(&mut self) {
        if let Source::Own { conn, .. } = self {
            conn.check_empty();
        }
    }

    /// The table map the stream gave for `table_id`.
    fn tme(&self, table_id: u64) -> Option<&TableMapEvent<'static>> {
        match self {
            Source::Own { events, .. } => events.get_tme(table_id),
            Source::Library(stream) => stream.get_tme(table_id),
        }
    }

    /// The next message; None when the server ended the stream. `waiting_us`: when the
    /// task began to wait; `heard_us`: when the message before arrived.
    async fn next(
        &mut self,
        clock: &crate::clock::Clock,
        (waiting_us, heard_us): (i64, i64),
    ) -> Result<Option<Message>, DbError> {
        match self {
            Source::Own { conn, events } => {
                let packet = conn.packet().await?;
                let (t_us, quiet) = (packet.arrived_us, packet.quiet);
                let event = match packet.payload.split_first() {
                    Some((0x00, data)) => events.read(data).map_err(|e| DbError::Driver {
                        message: format!("unreadable binary log event: {e}"),
                    })?,
                    Some((0xfe, _)) if packet.payload.len() < 8 => None,
                    Some((0xff, _)) => {
                        let payload = packet.payload.to_vec();
                        return Err(conn.error_of(&payload));
                    }
                    _ => {
                        return Err(DbError::Driver {
                            message: "an unexpected packet in the binary log stream".into(),
                        });
                    }
                };
                let Some(event) = event else { return Ok(None) };
                // A wait nothing arrived in, from the last data's arrival to the last
                // time the socket was found empty, whether or not the recorder ran
                // through it; the run starts there, before the message's first byte.
                let waited =
                    quiet.is_some_and(|(from_us, to_us)| to_us - from_us >= BACKLOG_GAP_US);
                Ok(Some(Message {
                    event,
                    t_us,
                    waited,
                    run_start_us: quiet.filter(|_| waited).map(|(_, to_us)| to_us),
                }))
            }
            Source::Library(stream) => {
                let event = poll_fn(|cx| Pin::new(&mut **stream).poll_next(cx)).await;
                let t_us = clock.now_us();
                let event = match event {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(event)) => event,
                };
                let waited = t_us - waiting_us >= BACKLOG_GAP_US;
                let run_start_us = if waited {
                    let paused = super::pauses::watch().paused_in(clock, heard_us, t_us);
                    run_start(paused, heard_us, t_us)
                } else {
                    None
                };
                Ok(Some(Message {
                    event,
                    t_us,
                    waited,
                    run_start_us,
                }))
            }
        }
    }
}

/// What the stream has shown, and how far it can be trusted.
struct Seen {
    /// The newest beat shown.
    seq: Option<u64>,
    /// Every message's arrival proves the replica lacked `seq + 1` this long before
    /// it (the delivery delay bound), µs.
    delay_us: i64,
    /// From the setup's round trips, µs.
    round_trip_us: i64,
    /// The largest lateness the cross-check measured, and when, µs.
    late: (i64, i64),
    /// Until the stream has caught up with what the binary log gained during the
    /// setup, its events only prove the replica lacked the next beat when the setup's
    /// read of the row began.
    caught_up: bool,
    /// When the current run began, µs: the server had sent everything written before
    /// it less [`Seen::delay_us`]. A message read at least [`BACKLOG_GAP_US`] after
    /// the task began to wait begins a run ([`Seen::may_begin_run`]), at its arrival,
    /// or at the recorder's last running time before a pause in the wait
    /// ([`run_start`]).
    run_start_us: i64,
    /// Whether the messages so far ended inside a transaction (its first event came,
    /// its last not yet).
    in_transaction: bool,
    /// Since the stream caught up: the newest message's run start and arrival, µs.
    certified: Option<(i64, i64)>,
    /// The end of the newest observation sent, µs.
    sent_end_us: i64,
    /// Whether an observation was sent since the last beat notice.
    sent_since_notice: bool,
    /// When the last beat notice (or quiet period) was taken, µs.
    notice_us: i64,
    /// The arrival of the newest message of any kind, µs.
    heard_us: i64,
    /// A beat the cross-check saw before the stream brought it, and when the read
    /// that saw it ended, µs.
    pending: Option<(u64, i64)>,
    /// The newest beat a cross-check read showed and sent as the measurement while
    /// the stream was behind: the stream bringing it, or an older beat, later says
    /// nothing new.
    read_seq: Option<u64>,
}

impl Seen {
    /// What the stream's setup knew: the read it made (`read`), the round trip it
    /// measured, and when the stream was requested (µs).
    fn at_setup(read: &Observation, round_trip_us: i64, requested_us: i64) -> Seen {
        let mut seen = Seen {
            seq: read.seq,
            delay_us: 0,
            round_trip_us,
            late: (0, requested_us),
            caught_up: false,
            run_start_us: requested_us,
            in_transaction: false,
            certified: None,
            sent_end_us: read.r_end_us,
            sent_since_notice: true,
            notice_us: requested_us,
            heard_us: requested_us,
            pending: None,
            read_seq: None,
        };
        seen.refresh_delay(requested_us);
        seen
    }

    /// A message read at `t_us`: a beat's row event (`beat`: its seq and send time)
    /// or a server heartbeat (`is_heartbeat`), or neither. Returns the beat to emit and
    /// the window it was applied in, when it is newer than any shown. `requested_us` is
    /// when the stream was requested, `setup_read_us` when the setup's read began.
    fn on_message(
        &mut self,
        beat: Option<(u64, i64)>,
        is_heartbeat: bool,
        t_us: i64,
        (requested_us, setup_read_us): (i64, i64),
    ) -> Option<(u64, (i64, i64))> {
        let was_caught_up = self.caught_up;
        let mut shown = None;
        if let Some((seq, t_send_us)) = beat {
            // A beat sent after the stream was requested was written after it:
            // everything before it in the binary log has arrived.
            self.caught_up |= t_send_us >= requested_us;
            if let Some((pending, read_end_us)) = self.pending
                && seq >= pending
            {
                let late_us = t_us - read_end_us;
                if late_us > self.late.0 {
                    self.late = (late_us, t_us);
                }
                self.pending = None;
            }
            self.refresh_delay(t_us);
            let newer = self.seq.is_none_or(|s| seq > s);
            if newer {
                self.seq = Some(seq);
            }
            // A beat a read already measured says nothing new.
            if newer && self.read_seq.is_none_or(|s| seq > s) {
                // The setup's read did not show beat `seq + 1` when it began, so no
                // later beat was there either: what the stream brings before it has
                // caught up proves no more.
                let r_start_us = if was_caught_up {
                    self.run_start_us - self.delay_us
                } else {
                    setup_read_us
                };
                shown = Some((seq, (r_start_us, t_us)));
            }
        }
        // The server sends a heartbeat only when it has sent everything.
        self.caught_up |= is_heartbeat;
        if self.caught_up {
            self.certified = Some((self.run_start_us, t_us));
        }
        shown
    }

    /// A cross-check read (`read`, `asked` for at once or a periodic one) that showed a
    /// beat: whether it is to be sent as an observation. A read that shows a beat the
    /// stream has not brought marks the stream behind (`pending`). While it is behind,
    /// because a read said so before or the stream's delivery looked limited (`asked`),
    /// the stream's messages prove little (what they bring the server had long ago), so
    /// the read is the measurement: it is sent, unless it ended before an observation
    /// already sent (observations go on in time order).
    fn on_read(&mut self, read: &Observation, asked: bool) -> bool {
        let Some(seq) = read.seq else { return false };
        if self.seq.is_some_and(|s| seq <= s) {
            return false;
        }
        let was_behind = self.pending.is_some();
        if !was_behind {
            self.pending = Some((seq, read.r_end_us));
        }
        let news = self.read_seq.is_none_or(|s| seq > s);
        if (was_behind || asked) && news && read.r_end_us >= self.sent_end_us {
            self.read_seq = Some(seq);
            self.sent_end_us = read.r_end_us;
            self.sent_since_notice = true;
            return true;
        }
        false
    }

    /// Whether a wait before the next message proves the server had sent everything,
    /// so that the message may begin a run. Not inside a transaction: the server wrote
    /// it whole to its binary log before sending its first event, so a wait between its
    /// events is the link's, not the server's (a narrow link, a large transaction).
    /// Nor while a beat a read already showed is still on its way: the server had it
    /// and has not sent it, so everything the stream brings meanwhile is a backlog.
    fn may_begin_run(&self) -> bool {
        !self.in_transaction && self.pending.is_none()
    }

    fn refresh_delay(&mut self, now_us: i64) {
        if now_us - self.late.1 > LATENESS_KEPT_US {
            self.late = (0, now_us);
        }
        self.delay_us = self.round_trip_us.max(self.late.0).max(MIN_DELAY_US);
    }
}

/// Whether the binary log is inside a transaction after `event`, when it was `before`
/// ([`in_transaction_after`]).
fn in_transaction_after_event(event: &Event, before: bool) -> bool {
    let kind = event.header().event_type_raw();
    if kind != mysql_async::binlog::EventType::QUERY_EVENT as u8 {
        return in_transaction_after(kind, None, before);
    }
    match event.read_data() {
        Ok(Some(EventData::QueryEvent(q))) => {
            in_transaction_after(kind, Some(q.query_raw()), before)
        }
        // An unreadable query event changes nothing: a transaction taken as open
        // longer only widens bounds.
        _ => before,
    }
}

/// Whether the binary log is inside a transaction after an event of type `kind` (raw
/// type code; `query`: a query event's text), when it was `before`. A transaction
/// begins at its GTID event (MariaDB's, MySQL's) or a `BEGIN` query, and ends at its
/// XID event or any other query (`COMMIT`, or DDL, which is a transaction of its own).
/// Every other event leaves it as it was.
fn in_transaction_after(kind: u8, query: Option<&[u8]>, before: bool) -> bool {
    use mysql_async::binlog::EventType;
    /// MariaDB's GTID event, which mysql_common does not name.
    const MARIADB_GTID_EVENT: u8 = 0xa2;
    match kind {
        MARIADB_GTID_EVENT => true,
        k if k == EventType::GTID_EVENT as u8 || k == EventType::ANONYMOUS_GTID_EVENT as u8 => true,
        k if k == EventType::XID_EVENT as u8 => false,
        k if k == EventType::QUERY_EVENT as u8 => query == Some(b"BEGIN".as_slice()),
        _ => before,
    }
}

/// Where a message read at `t_us`, after the task waited for the stream at least
/// [`BACKLOG_GAP_US`], starts a new run, or None when it goes on with the run before.
/// If the recorder ran throughout since it read the message before (at `heard_us`),
/// the server had sent everything by `t_us`. If it was paused meanwhile
/// (`ran_until_us`: the last time it is known to have run before the pause), only by
/// then: the message may have arrived as the pause began and waited unread, and
/// after the pause the runtime may learn of it only after waking the task for
/// something else, so the wait proves nothing.
fn run_start(ran_until_us: Option<i64>, heard_us: i64, t_us: i64) -> Option<i64> {
    match ran_until_us {
        None => Some(t_us),
        Some(us) if us - heard_us < BACKLOG_GAP_US => None,
        Some(us) => Some(us),
    }
}

/// Takes observations from the stream until it breaks, stops delivering, or the
/// recorder stops.
async fn follow(
    b: &Binlog,
    opened: Opened,
    out: &mpsc::Sender<Probed>,
    notices: &mut watch::Receiver<BeatNotice>,
    shutdown: &mut watch::Receiver<bool>,
) -> End {
    let r = &b.reader;
    let Opened {
        mut stream,
        requested_us,
        round_trip_us,
        read,
        ..
    } = opened;
    let mut seen = Seen::at_setup(&read, round_trip_us, requested_us);
    let setup_read_us = read.r_start_us;
    if send(out, r, read).await.is_err() {
        return End::Shutdown;
    }
    let (cross_tx, mut cross_rx) = mpsc::channel(2);
    let poke = std::sync::Arc::new(tokio::sync::Notify::new());
    let cross = tokio::spawn(cross_check(r.clone(), cross_tx, poke.clone()));
    let mut poked_us = requested_us - POKE_EVERY_US;
    let _abort = AbortOnDrop(cross);
    let silence_us = crate::clock::duration_us(silence_limit(r.interval));
    let key = (r.settings.database.as_str(), r.row.as_str());
    // The newest acknowledged beat announced: a notice without a newer one is a
    // deadline whose beat failed (`BeatNotice::missed`).
    let mut announced = notices.borrow().seq;
    loop {
        // From here the task waits for the stream (it may have been busy since the
        // last message, say waiting for room in `out`: a message read at once came
        // meanwhile, and goes on with its run).
        let waiting_us = r.clock.now_us();
        tokio::select! {
            biased;
            _ = shutdown.changed() => return End::Shutdown,
            message = stream.next(&r.clock, (waiting_us, seen.heard_us)) => {
                let Message { event, t_us, waited, run_start_us } = match message {
                    Ok(Some(message)) => message,
                    Ok(None) => return End::Lost(DbError::Io { message: "the stream ended".into() }),
                    Err(e) => return End::Lost(e),
                };
                if waited {
                    if seen.may_begin_run() {
                        if let Some(start_us) = run_start_us {
                            seen.run_start_us = start_us;
                        }
                    } else if seen.in_transaction && t_us - poked_us >= POKE_EVERY_US {
                        // The link limits delivery: a read now tells how far behind
                        // the stream is, before a beat behind this transaction comes.
                        poke.notify_one();
                        poked_us = t_us;
                    }
                }
                seen.heard_us = seen.heard_us.max(t_us);
                let kind = event.header().event_type_raw();
                let is_heartbeat = kind == mysql_async::binlog::EventType::HEARTBEAT_EVENT as u8;
                seen.in_transaction = in_transaction_after_event(&event, seen.in_transaction);
                let beat = heartbeat_row(&stream, &event, key);
                let shown = seen.on_message(beat, is_heartbeat, t_us, (requested_us, setup_read_us));
                if let Some((seq, window)) = shown
                    && emit(out, (r, Probe::BinlogEvent), &mut seen, seq, window).await.is_err()
                {
                    return End::Shutdown;
                }
            }
            changed = notices.changed() => {
                if changed.is_err() {
                    return End::Shutdown;
                }
                let newest = notices.borrow_and_update().seq;
                let missed = std::mem::replace(&mut announced, newest) == newest;
                // A replica that has not shown the beat before the newest yet: its
                // lag is growing past an interval, worth an observation per beat; and
                // without beats, one per interval.
                let behind = missed || seen.seq.is_none_or(|s| s.saturating_add(1) < newest);
                // Behind, its lower bounds count: the next message's run starts no
                // earlier than now, when the socket is empty. (Within an interval a
                // replica's lower bound is zero whenever its run starts: no check, no
                // system call per beat.)
                if behind {
                    stream.check_empty();
                }
                let now_us = r.clock.now_us();
                if let Some(lost) = check(&seen, now_us, silence_us) {
                    return End::Lost(lost);
                }
                // A stream behind a read: reads measure meanwhile, one per beat.
                if seen.pending.is_some() {
                    poke.notify_one();
                }
                if snapshot(out, r, &mut seen, (now_us, behind)).await.is_err() {
                    return End::Shutdown;
                }
            }
            Some((read, asked)) = cross_rx.recv() => {
                if seen.on_read(&read, asked) && send(out, r, read).await.is_err() {
                    return End::Shutdown;
                }
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why the stream must be given up, if it must: it brought nothing at all for the
/// silence limit, or not a beat that a cross-check read showed long ago. Until it has
/// caught up, both limits are [`CATCH_UP_LIMIT_US`].
fn check(seen: &Seen, now_us: i64, silence_us: i64) -> Option<DbError> {
    let (silence_us, undelivered_us) = if seen.caught_up {
        (silence_us, UNDELIVERED_AFTER_US)
    } else {
        (CATCH_UP_LIMIT_US, CATCH_UP_LIMIT_US)
    };
    if now_us - seen.heard_us > silence_us {
        return Some(DbError::Timeout {
            what: "binary log stream (no event, no heartbeat)",
            after: Duration::from_micros((now_us - seen.heard_us) as u64),
        });
    }
    match seen.pending {
        Some((seq, read_end_us)) if now_us - read_end_us > undelivered_us => Some(DbError::Io {
            message: format!(
                "the stream stopped delivering: a read showed beat {seq} {:.1} s ago and the stream has not brought it",
                (now_us - read_end_us) as f64 / 1e6
            ),
        }),
        _ => None,
    }
}

/// Sends one binary log observation (`probe`) of `seq` spanning `[r_start_us,
/// r_end_us]`.
async fn emit(
    out: &mpsc::Sender<Probed>,
    (r, probe): (&Reader, Probe),
    seen: &mut Seen,
    seq: u64,
    (r_start_us, r_end_us): (i64, i64),
) -> Result<(), ()> {
    // A message the kernel stamped may have arrived before a read that was sent
    // first: its window ends no earlier (a later upper bound is still true).
    let r_end_us = r_end_us.max(seen.sent_end_us);
    seen.sent_end_us = r_end_us;
    seen.sent_since_notice = true;
    let obs = Observation {
        r_start_us: r_start_us.min(r_end_us),
        r_end_us,
        seq: Some(seq),
        outcome: Outcome::Ok,
        reason: None,
        follow_up: false,
        probe,
    };
    send(out, r, obs).await
}

/// At a beat notice (or a period without one) taken at `now_us`: when the stream
/// brought no beat since the last notice but some other message, and the replica is
/// `behind` (or no beat came), what its newest message proves (still the same beat,
/// as of its arrival) becomes an observation. (A replica within an interval would
/// only get bounds an interval wide from it: its next event says more.)
async fn snapshot(
    out: &mpsc::Sender<Probed>,
    r: &Reader,
    seen: &mut Seen,
    (now_us, behind): (i64, bool),
) -> Result<(), ()> {
    let quiet = !std::mem::replace(&mut seen.sent_since_notice, false);
    let after_us = std::mem::replace(&mut seen.notice_us, now_us).max(seen.sent_end_us);
    match (seen.seq, seen.certified) {
        // While the stream is behind a read, the reads measure.
        (Some(seq), Some((run_start_us, at_us)))
            if quiet && behind && at_us > after_us && seen.pending.is_none() =>
        {
            let start = run_start_us - seen.delay_us;
            emit(out, (r, Probe::BinlogIdle), seen, seq, (start, at_us)).await?;
            seen.sent_since_notice = false;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Reads the row once per [`CROSS_CHECK_EVERY`], and at once when `poke`d, on a
/// connection of its own, and sends each read that showed a beat with whether it was
/// asked for: so that a stream that stops delivering, or delivers late, is noticed,
/// and measured around meanwhile ([`Seen::on_read`]).
async fn cross_check(
    r: Reader,
    found: mpsc::Sender<(Observation, bool)>,
    poke: std::sync::Arc<tokio::sync::Notify>,
) {
    let mut conn: Option<Session> = None;
    let mut tick = tokio::time::interval(CROSS_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let asked = tokio::select! {
            _ = tick.tick() => false,
            _ = poke.notified() => true,
        };
        if conn.is_none() {
            let session =
                Session::own_reader(r.kind, &r.address, &r.settings, &r.password, r.clock);
            conn = Box::pin(session).await.ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        let r_start_us = r.clock.now_us();
        match c.read(&r.row, r.settings.query_timeout).await {
            Ok(Some(seq)) => {
                let read = Observation {
                    r_start_us,
                    r_end_us: r.clock.now_us(),
                    seq: Some(seq),
                    outcome: Outcome::Ok,
                    reason: None,
                    follow_up: false,
                    probe: Probe::Poll,
                };
                if found.send((read, asked)).await.is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(_) => conn = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Before the stream has caught up, a beat proves only what the setup's read did:
    /// its window starts there. A beat sent after the stream was requested, or the
    /// server's heartbeat, means everything before it arrived; later beats start from
    /// their run less the delivery delay. A beat no newer than one shown emits nothing.
    #[test]
    fn a_message_proves_what_the_stream_has_caught_up_to() {
        let (setup_read_us, requested_us) = (1_000_000, 1_001_000);
        let read = Observation {
            r_start_us: setup_read_us,
            r_end_us: setup_read_us + 500,
            seq: Some(10),
            outcome: Outcome::Ok,
            reason: None,
            follow_up: false,
            probe: Probe::Poll,
        };
        let times = (requested_us, setup_read_us);
        let mut seen = Seen::at_setup(&read, 300, requested_us);
        // An old beat from the backlog, sent before the request.
        let shown = seen.on_message(Some((11, 900_000)), false, 1_002_000, times);
        assert_eq!(shown, Some((11, (setup_read_us, 1_002_000))));
        assert!(!seen.caught_up && seen.certified.is_none());
        // Not newer: nothing to emit.
        assert_eq!(
            seen.on_message(Some((11, 900_000)), false, 1_003_000, times),
            None
        );
        // The server's heartbeat: it has sent everything.
        assert_eq!(seen.on_message(None, true, 1_004_000, times), None);
        assert!(seen.caught_up);
        assert_eq!(seen.certified, Some((seen.run_start_us, 1_004_000)));
        // Caught up: the window starts at the run, less the delivery delay.
        seen.run_start_us = 1_010_000;
        let (seq, (start, end)) = seen
            .on_message(Some((12, 1_009_000)), false, 1_010_500, times)
            .unwrap();
        assert_eq!((seq, end), (12, 1_010_500));
        assert_eq!(start, 1_010_000 - seen.delay_us);
    }

    #[test]
    fn a_wait_the_recorder_was_paused_in_proves_only_up_to_the_pause() {
        let (heard_us, t_us) = (1_000_000, 1_050_000);
        // Ran throughout: the message arrived when it was read.
        assert_eq!(run_start(None, heard_us, t_us), Some(t_us));
        // Paused 20 ms after the message before: this one may have come then.
        assert_eq!(run_start(Some(1_020_000), heard_us, t_us), Some(1_020_000));
        // Paused right after the message before: this one may have come back to
        // back with it, so the run goes on.
        assert_eq!(run_start(Some(heard_us + 50), heard_us, t_us), None);
    }

    /// A transaction is open from its GTID event to its XID event (or a query other
    /// than BEGIN); the events inside it, and events outside any, change nothing.
    #[test]
    fn a_transaction_is_open_from_its_gtid_to_its_end() {
        use mysql_async::binlog::EventType as T;
        let kinds = |events: &[(u8, Option<&[u8]>)]| {
            let mut open = false;
            events
                .iter()
                .map(|&(k, q)| {
                    open = in_transaction_after(k, q, open);
                    open
                })
                .collect::<Vec<_>>()
        };
        let rows = [
            (0xa2, None),
            (T::TABLE_MAP_EVENT as u8, None),
            (T::WRITE_ROWS_EVENT as u8, None),
            (T::WRITE_ROWS_EVENT as u8, None),
            (T::XID_EVENT as u8, None),
            (T::HEARTBEAT_EVENT as u8, None),
        ];
        assert_eq!(kinds(&rows), [true, true, true, true, false, false]);
        // DDL: a GTID event, then its query.
        let ddl = [
            (0xa2, None),
            (T::QUERY_EVENT as u8, Some(b"DROP TABLE t".as_slice())),
        ];
        assert_eq!(kinds(&ddl), [true, false]);
        // A non-transactional table: BEGIN ... COMMIT as queries.
        let myisam = [
            (T::QUERY_EVENT as u8, Some(b"BEGIN".as_slice())),
            (T::WRITE_ROWS_EVENT as u8, None),
            (T::QUERY_EVENT as u8, Some(b"COMMIT".as_slice())),
        ];
        assert_eq!(kinds(&myisam), [true, true, false]);
        assert!(!in_transaction_after(T::ROTATE_EVENT as u8, None, false));
    }

    /// A wait proves the server had sent everything only between transactions and
    /// while no beat a read showed is still to come.
    #[test]
    fn a_wait_inside_a_transaction_or_before_a_beat_a_read_showed_begins_no_run() {
        let read = Observation {
            r_start_us: 1_000_000,
            r_end_us: 1_000_500,
            seq: Some(10),
            outcome: Outcome::Ok,
            reason: None,
            follow_up: false,
            probe: Probe::Poll,
        };
        let mut seen = Seen::at_setup(&read, 300, 1_001_000);
        assert!(seen.may_begin_run());
        seen.in_transaction = true;
        assert!(!seen.may_begin_run());
        seen.in_transaction = false;
        seen.pending = Some((12, 1_100_000));
        assert!(!seen.may_begin_run());
        // The stream brings the beat the read showed: the backlog is through.
        seen.on_message(
            Some((12, 1_090_000)),
            false,
            1_200_000,
            (1_001_000, 1_000_000),
        );
        assert!(seen.may_begin_run());
    }

    /// A read that shows a beat the stream has not brought marks the stream behind;
    /// a read asked for, or any read while behind, is then the measurement, and the
    /// stream's late copies of what it showed emit nothing.
    #[test]
    fn while_the_stream_is_behind_a_read_reads_measure() {
        let read = |seq: u64, end_us: i64| Observation {
            r_start_us: end_us - 400,
            r_end_us: end_us,
            seq: Some(seq),
            outcome: Outcome::Ok,
            reason: None,
            follow_up: false,
            probe: Probe::Poll,
        };
        let times = (1_001_000, 1_000_000);
        let mut seen = Seen::at_setup(&read(10, 1_000_500), 300, 1_001_000);
        seen.on_message(None, true, 1_002_000, times);
        // A periodic read of a beat the stream already brought: nothing.
        assert!(!seen.on_read(&read(10, 1_003_000), false));
        assert!(seen.pending.is_none());
        // A periodic read ahead of the stream: marked behind, not sent (the stream
        // may bring the beat a moment later).
        assert!(!seen.on_read(&read(12, 1_010_000), false));
        assert_eq!(seen.pending, Some((12, 1_010_000)));
        // The next read while behind is the measurement.
        assert!(seen.on_read(&read(15, 1_040_000), false));
        assert_eq!(seen.sent_end_us, 1_040_000);
        // The stream brings the backlog: beats the read showed say nothing new, and
        // the pending one measures the stream's lateness.
        assert_eq!(
            seen.on_message(Some((12, 1_005_000)), false, 1_900_000, times),
            None
        );
        assert!(seen.pending.is_none());
        assert_eq!(seen.late.0, 1_900_000 - 1_010_000);
        assert_eq!(
            seen.on_message(Some((15, 1_008_000)), false, 1_901_000, times),
            None
        );
        assert!(
            seen.on_message(Some((16, 1_895_000)), false, 1_902_000, times)
                .is_some()
        );
        // A read asked for (delivery looked limited) is sent at once, unless it ended
        // before an observation already sent.
        assert!(seen.on_read(&read(18, 1_903_000), true));
        assert!(!seen.on_read(&read(19, 1_902_500), true));
    }

    #[test]
    fn the_heartbeat_period_follows_the_interval_within_limits() {
        let ms = Duration::from_millis;
        assert_eq!(heartbeat_period(ms(1)), ms(10));
        assert_eq!(heartbeat_period(ms(100)), ms(100));
        assert_eq!(heartbeat_period(ms(5000)), ms(1000));
        assert_eq!(silence_limit(ms(100)), ms(2000));
        assert_eq!(silence_limit(ms(5000)), ms(5000));
    }
}
