//! The facts lagtrace records: plain data passed from the probes to the store and read
//! back by the analysis. Times are UTC microseconds of the recorder's clock (`_us`).
//! A probe that fails is still a fact: it carries an [`Outcome`] and a reason, never a
//! sentinel number.

use serde::{Deserialize, Serialize};

pub mod event;
pub mod security;

/// How one probe step (a beat write, a read, a status poll) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Outcome {
    Ok = 0,
    /// The step did not finish within its timeout.
    Timeout = 1,
    /// Nothing listens on the port.
    Refused = 2,
    /// Bad credentials or a missing privilege.
    AccessDenied = 3,
    /// The heartbeat schema or table does not exist.
    MissingTable = 4,
    /// The table exists but has no row for this cluster.
    MissingRow = 5,
    /// Another server error (read-only, lock wait, ...).
    ServerError = 6,
    /// The connection broke.
    Io = 7,
    /// The host name did not resolve.
    UnknownHost = 8,
    /// The driver failed.
    Driver = 9,
    /// The beat did not move the row's seq: a newer seq was already there (another
    /// writer's beat). Nothing was committed.
    Stale = 10,
}

impl Outcome {
    pub const ALL: [Outcome; 11] = [
        Outcome::Ok,
        Outcome::Timeout,
        Outcome::Refused,
        Outcome::AccessDenied,
        Outcome::MissingTable,
        Outcome::MissingRow,
        Outcome::ServerError,
        Outcome::Io,
        Outcome::UnknownHost,
        Outcome::Driver,
        Outcome::Stale,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Outcome> {
        Outcome::ALL.get(code as usize).copied()
    }

    /// Stable lower-case name used in exports and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Timeout => "timeout",
            Outcome::Refused => "refused",
            Outcome::AccessDenied => "access_denied",
            Outcome::MissingTable => "missing_table",
            Outcome::MissingRow => "missing_row",
            Outcome::ServerError => "server_error",
            Outcome::Io => "io_error",
            Outcome::UnknownHost => "unknown_host",
            Outcome::Driver => "driver_error",
            Outcome::Stale => "stale",
        }
    }
}

/// One heartbeat write on a primary. The commit, if it happened, lies in
/// `[t_send_us, t_done_us]`; `t_done_us` is the acknowledgement when `outcome` is Ok.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    pub seq: u64,
    pub t_send_us: i64,
    pub t_done_us: i64,
    pub outcome: Outcome,
    /// The error text when the write failed.
    pub reason: Option<String>,
}

impl Beat {
    /// The acknowledgement time, when the write is known to have committed.
    pub fn t_ack_us(&self) -> Option<i64> {
        (self.outcome == Outcome::Ok).then_some(self.t_done_us)
    }
}

/// A beat reduced to what lag bounds need, with the recorder session that wrote it:
/// 24 bytes instead of a [`Beat`]'s 56 with its reason, which matters when offline
/// analysis holds a day of beats at 100 Hz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeatTimes {
    pub seq: u64,
    pub t_send_us: i64,
    /// From the send to the acknowledgement; [`BeatTimes::NO_ACK`] when the write is
    /// not known to have committed (read it through [`BeatTimes::t_ack_us`]).
    ack_after_us: u32,
    /// The session that wrote it: an index into the loaded recording's sessions
    /// offline, 0 live.
    pub session: u32,
}

impl BeatTimes {
    const NO_ACK: u32 = u32::MAX;

    /// An acknowledgement more than 71 minutes after the send (beyond any write
    /// timeout) is dropped, which only loosens the bounds that would use it.
    pub fn new(seq: u64, t_send_us: i64, t_ack_us: Option<i64>, session: u32) -> BeatTimes {
        BeatTimes {
            seq,
            t_send_us,
            ack_after_us: t_ack_us
                .and_then(|ack| u32::try_from(ack.checked_sub(t_send_us)?).ok())
                .filter(|&d| d != Self::NO_ACK)
                .unwrap_or(Self::NO_ACK),
            session,
        }
    }

    /// The acknowledgement time, when the write is known to have committed.
    pub fn t_ack_us(&self) -> Option<i64> {
        (self.ack_after_us != Self::NO_ACK).then(|| self.t_send_us + i64::from(self.ack_after_us))
    }
}

/// One read of the heartbeat row on a replica, in `[r_start_us, r_end_us]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub r_start_us: i64,
    pub r_end_us: i64,
    /// The visible beat number; present exactly when `outcome` is Ok.
    pub seq: Option<u64>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// A follow-up: an immediate re-read after a read that raced the newest beat, part
    /// of the same probe round as the read before it. The reader marks it when it takes
    /// it; rounds are never guessed from timing.
    pub follow_up: bool,
    /// How the beat was seen: a query, or the replica's binary log stream.
    pub probe: Probe,
}

/// How a replica's observation was taken (`docs/binlog-probe.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Probe {
    /// A read of the heartbeat row, in `[r_start_us, r_end_us]`.
    #[default]
    Poll = 0,
    /// The beat's own row event from the replica's binary log stream, delivered at
    /// `r_end_us`: the replica wrote it (applied the beat) within `[r_start_us,
    /// r_end_us]`, `r_start_us` being the delivery less an upper bound on the stream's
    /// delay. At that moment the beat was the newest change it had.
    BinlogEvent = 1,
    /// Another message of the stream (another transaction, the server's binlog
    /// heartbeat) with no newer beat: the replica still showed this beat, as a read in
    /// `[r_start_us, r_end_us]` would have.
    BinlogIdle = 2,
}

impl Probe {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Probe> {
        [Probe::Poll, Probe::BinlogEvent, Probe::BinlogIdle]
            .get(code as usize)
            .copied()
    }

    /// Whether it came from the binary log stream.
    pub fn is_binlog(self) -> bool {
        self != Probe::Poll
    }

    /// Stable lower-case name used in exports, JSON and logs: `poll`, `binlog`,
    /// `binlog_idle`.
    pub fn name(self) -> &'static str {
        match self {
            Probe::Poll => "poll",
            Probe::BinlogEvent => "binlog",
            Probe::BinlogIdle => "binlog_idle",
        }
    }
}

/// State of a replica's IO thread as the server reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IoState {
    Yes,
    No,
    Connecting,
}

impl IoState {
    /// As `SHOW SLAVE STATUS` spells it: Yes, No, Connecting.
    pub fn label(self) -> &'static str {
        match self {
            IoState::Yes => "Yes",
            IoState::No => "No",
            IoState::Connecting => "Connecting",
        }
    }
}

/// One replication channel as `SHOW ALL SLAVES STATUS` / `SHOW REPLICA STATUS` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStatus {
    /// `Connection_name` (MariaDB multi-source) or `Channel_Name` (MySQL); "" by default.
    pub channel: String,
    /// `Master_Host:Master_Port`.
    pub source: String,
    pub io: IoState,
    pub sql_running: bool,
    /// `Seconds_Behind_Master`; `None` when the server says NULL (never turned into 0).
    pub seconds_behind_master: Option<u32>,
    /// `SQL_Delay`: intended delay in seconds (MASTER_DELAY), reported apart from lag.
    pub sql_delay_s: u32,
    pub last_io_errno: u32,
    pub last_io_error: String,
    pub last_sql_errno: u32,
    pub last_sql_error: String,
    /// `Gtid_IO_Pos` (MariaDB) or `Retrieved_Gtid_Set` (MySQL).
    pub gtid_io_pos: String,
    /// `Gtid_Slave_Pos` (MariaDB) or `Executed_Gtid_Set` (MySQL).
    pub gtid_applied_pos: String,
    pub relay_log_space: u64,
    /// Whether the SQL thread was applying events (true) or waiting for the relay log
    /// (false); `None` when the SQL thread is stopped or the state is unknown.
    pub sql_applying: Option<bool>,
}

/// What a replication position counts: transactions (MySQL/MariaDB GTIDs) or bytes of
/// WAL (PostgreSQL LSNs). Rates and backlogs are only ever compared within one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressUnit {
    Transactions,
    WalBytes,
}

impl ProgressUnit {
    /// The unit `pos` counts in: WAL bytes for an LSN (`16/B374D848`), which no GTID
    /// looks like, else transactions.
    pub fn of(pos: &str) -> ProgressUnit {
        if lsn_bytes(pos).is_some() {
            ProgressUnit::WalBytes
        } else {
            ProgressUnit::Transactions
        }
    }

    /// The smallest backlog (received but not applied) that counts as one: status polls
    /// come faster while a replica has one, and analysis measures the apply rate only in
    /// backlogs at least this large. Under a busy load a little is always in flight: a
    /// few transactions, or a few kB of WAL.
    pub fn backlog_min(self) -> u64 {
        match self {
            ProgressUnit::Transactions => 20,
            ProgressUnit::WalBytes => 256 * 1024,
        }
    }

    /// The unit in JSON keys and text: `tx` or `wal_bytes`.
    pub fn key(self) -> &'static str {
        match self {
            ProgressUnit::Transactions => "tx",
            ProgressUnit::WalBytes => "wal_bytes",
        }
    }
}

impl ChannelStatus {
    /// What this channel's positions count in.
    pub fn unit(&self) -> ProgressUnit {
        ProgressUnit::of(&self.gtid_applied_pos)
    }

    /// Whether this is a PostgreSQL standby's WAL stream (its positions are LSNs):
    /// its "IO thread" is the WAL receiver and its "SQL thread" is WAL replay.
    pub fn is_wal_stream(&self) -> bool {
        self.unit() == ProgressUnit::WalBytes
    }

    /// Applied so far, in [`ChannelStatus::unit`]s (see [`progress_in`]).
    pub fn applied(&self) -> Option<u64> {
        progress_in(&self.gtid_applied_pos)
    }

    /// Received so far, in [`ChannelStatus::unit`]s.
    pub fn received(&self) -> Option<u64> {
        progress_in(&self.gtid_io_pos)
    }

    /// Received but not yet applied; `None` when a position is unknown.
    pub fn backlog(&self) -> Option<u64> {
        Some(self.received()?.saturating_sub(self.applied()?))
    }

    /// Whether the channel has a backlog of at least [`ProgressUnit::backlog_min`].
    pub fn in_backlog(&self) -> bool {
        self.backlog()
            .is_some_and(|b| b >= self.unit().backlog_min())
    }
}

/// How far a position is, in its [`ProgressUnit`]: bytes for a PostgreSQL LSN, else
/// the transactions a GTID position stands for ([`transactions_in`]).
pub fn progress_in(pos: &str) -> Option<u64> {
    lsn_bytes(pos).or_else(|| transactions_in(pos))
}

/// A PostgreSQL LSN (`16/B374D848`: two hex halves of a 64-bit WAL byte position) as
/// bytes; `None` when `pos` is not one.
pub fn lsn_bytes(pos: &str) -> Option<u64> {
    let (hi, lo) = pos.trim().split_once('/')?;
    let hex = |h: &str| {
        (!h.is_empty() && h.len() <= 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(h, 16).ok())
            .flatten()
    };
    Some(hex(hi)? << 32 | hex(lo)?)
}

/// A channel's `source` (`host:port`, as the status poll writes it) as host and port,
/// split at the last colon so an IPv6 host (`::1:5432`, which the servers report
/// unbracketed) keeps its own; `None` when there is no port.
pub fn source_host_port(source: &str) -> Option<(&str, u16)> {
    let (host, port) = source.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

/// The number of transactions a GTID position stands for: for MariaDB (`0-1-120,1-5-7`)
/// the sum over domains of the highest sequence number, for MySQL
/// (`3E11FA47-...:1-5:11-18,...`) the sum of the interval lengths. `None` when empty or
/// not a position.
pub fn transactions_in(pos: &str) -> Option<u64> {
    let pos = pos.trim();
    if pos.is_empty() {
        return None;
    }
    if pos.contains(':') {
        return mysql_gtid_count(pos);
    }
    let mut domains: Vec<(u32, u64)> = Vec::new();
    for gtid in pos.split(',') {
        let mut parts = gtid.trim().splitn(3, '-');
        let domain = parts.next()?.parse::<u32>().ok()?;
        let _server = parts.next()?.parse::<u32>().ok()?;
        let seq = parts.next()?.parse::<u64>().ok()?;
        match domains.iter_mut().find(|(d, _)| *d == domain) {
            Some((_, best)) => *best = (*best).max(seq),
            None => domains.push((domain, seq)),
        }
    }
    Some(domains.iter().map(|(_, seq)| seq).sum())
}

fn mysql_gtid_count(set: &str) -> Option<u64> {
    let mut total = 0u64;
    for source in set.split(',') {
        let mut parts = source.trim().split(':');
        let _uuid = parts.next()?;
        for interval in parts {
            let (lo, hi) = match interval.split_once('-') {
                Some((lo, hi)) => (lo.parse::<u64>().ok()?, hi.parse::<u64>().ok()?),
                None => {
                    let n = interval.parse::<u64>().ok()?;
                    (n, n)
                }
            };
            total += hi.checked_sub(lo)? + 1;
        }
    }
    Some(total)
}

#[cfg(test)]
impl ChannelStatus {
    /// A default channel from the lab's primary with both threads running and the SQL
    /// thread idle, for tests to adjust with struct update syntax.
    pub(crate) fn running() -> ChannelStatus {
        ChannelStatus {
            channel: String::new(),
            source: "127.0.0.1:13306".into(),
            io: IoState::Yes,
            sql_running: true,
            seconds_behind_master: Some(0),
            sql_delay_s: 0,
            last_io_errno: 0,
            last_io_error: String::new(),
            last_sql_errno: 0,
            last_sql_error: String::new(),
            gtid_io_pos: String::new(),
            gtid_applied_pos: String::new(),
            relay_log_space: 0,
            sql_applying: Some(false),
        }
    }
}

/// One replication status poll of a replica, at `t_us` (the poll's start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSample {
    pub t_us: i64,
    /// How long the poll took, in microseconds.
    pub duration_us: u32,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// Every channel; empty when the poll failed or the server replicates from nothing.
    pub channels: Vec<ChannelStatus>,
    /// A PostgreSQL standby's own figures; `None` for MySQL/MariaDB and when unread.
    #[serde(default)]
    pub postgres: Option<PgFigures>,
}

/// PostgreSQL's own figures for a standby at one status poll, stored and shown beside
/// lagtrace's measurements and never used as lag: the replay timestamp is the
/// primary's clock, and `pg_stat_replication`'s lags are measured only while WAL
/// flows (NULL on an idle primary) and only up to the standby's last reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PgFigures {
    /// `pg_last_xact_replay_timestamp()`: when the last replayed transaction committed
    /// on the primary, UTC µs by the primary's clock; `None` before one.
    pub replay_commit_us: Option<i64>,
    /// The standby's row in its sender's `pg_stat_replication` (matched by
    /// application_name): `write_lag`, `flush_lag` and `replay_lag`, µs; `None` when
    /// NULL, or when the row could not be read or was not one.
    pub write_lag_us: Option<i64>,
    pub flush_lag_us: Option<i64>,
    pub replay_lag_us: Option<i64>,
    /// `recovery_min_apply_delay` as set, ms (the channel's `sql_delay_s` is it rounded
    /// up to whole seconds); `None` in stores written before it was kept.
    pub min_apply_delay_ms: Option<u32>,
}

impl StatusSample {
    /// A successful poll at `t_us` that took 1 µs and showed `channels`: the fixture
    /// of the tests that judge status samples.
    #[cfg(test)]
    pub fn polled(t_us: i64, channels: Vec<ChannelStatus>) -> StatusSample {
        StatusSample {
            t_us,
            duration_us: 1,
            outcome: Outcome::Ok,
            reason: None,
            channels,
            postgres: None,
        }
    }

    /// The channel that carries this replica's heartbeat: the default ("") channel, or
    /// the first one.
    pub fn main_channel(&self) -> Option<&ChannelStatus> {
        self.channels
            .iter()
            .find(|c| c.channel.is_empty())
            .or_else(|| self.channels.first())
    }
}

/// What `check`'s reads of one replica saw of the beat it wrote, µs on the recorder's
/// clock (its lag is `analysis::lag::sighting_lag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckSighting {
    pub t_send_us: i64,
    pub t_ack_us: i64,
    /// Start of the last read that began after the acknowledgement and missed the beat.
    pub missed_after_ack_us: Option<i64>,
    /// `(r_start_us, r_end_us)` of the read that showed the beat; `None` when no read
    /// did by the deadline.
    pub shown: Option<(i64, i64)>,
}

/// What a probe task tells the recorder: a fact to store (a beat, a read, a status
/// poll) or something the recorder acts on live and never stores as such (a replica's
/// role, how it is probed, where the beat writer writes).
#[derive(Debug, Clone, PartialEq)]
pub enum Probed {
    Beat {
        cluster: u32,
        beat: Beat,
    },
    Observation {
        replica: u32,
        observation: Observation,
    },
    Status {
        replica: u32,
        status: StatusSample,
    },
    /// Whether a replica takes writes (`@@read_only` is off) and replicates from
    /// anything, from the same status poll, and the source of its main channel. What
    /// it reveals (a second primary: a split) is stored as an event.
    Role {
        replica: u32,
        t_us: i64,
        writable: bool,
        source: Option<String>,
    },
    /// How a replica is probed from `t_us` on, and why when it is not the configured
    /// way (`probe = "auto"` fell back to polling). The recorder shows it live and
    /// stores it as a `probe` event.
    ProbeChoice {
        replica: u32,
        t_us: i64,
        /// The binary log stream (true) or reads of the row.
        binlog: bool,
        reason: Option<String>,
    },
    /// The beat writer of cluster (or part) `cluster` writes to `address` from `t_us`
    /// on: it followed a failover. The recorder stores the `failover` event.
    Writer {
        cluster: u32,
        t_us: i64,
        address: crate::config::Address,
    },
}

impl Probed {
    /// The fact to store, for a beat, a read or a status poll; `None` for what is live
    /// only.
    pub fn into_stored(self) -> Option<Sample> {
        match self {
            Probed::Beat { cluster, beat } => Some(Sample::Beat { cluster, beat }),
            Probed::Observation {
                replica,
                observation,
            } => Some(Sample::Observation {
                replica,
                observation,
            }),
            Probed::Status { replica, status } => Some(Sample::Status { replica, status }),
            Probed::Role { .. } | Probed::ProbeChoice { .. } | Probed::Writer { .. } => None,
        }
    }
}

/// One sample on its way to the store: the probes' facts, and what the recorder made
/// of them (events, the cluster's state).
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    Beat {
        cluster: u32,
        beat: Beat,
    },
    Observation {
        replica: u32,
        observation: Observation,
    },
    Status {
        replica: u32,
        status: StatusSample,
    },
    /// A change the recorder saw in a cluster (the primary went down or moved, a
    /// replica left the pool, ...) or a trigger's run: the JSON document of
    /// `cluster::doc::Event` or `TriggerRun`, kept as the trigger read it.
    Event {
        t_us: i64,
        doc: String,
    },
    /// What the recorder last knew of a cluster (its primary, which replicas were in
    /// the pool), as JSON: the newest replaces the one before, and the next `record`
    /// starts from it.
    State {
        cluster: String,
        doc: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_positions_count_transactions() {
        assert_eq!(transactions_in("0-1-120"), Some(120));
        assert_eq!(transactions_in("0-1-120,1-5-7"), Some(127));
        // Gtid_IO_Pos may list a domain once per server: the highest counts.
        assert_eq!(transactions_in("0-1-120,0-2-125"), Some(125));
        assert_eq!(
            transactions_in("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:11-18,\n ab:7"),
            Some(14)
        );
        assert_eq!(transactions_in(""), None);
        assert_eq!(transactions_in("0-1"), None);
        assert_eq!(transactions_in("uuid:9-3"), None);
        assert_eq!(transactions_in("x-1-2"), None);
    }

    #[test]
    fn sources_split_at_the_last_colon() {
        assert_eq!(
            source_host_port("127.0.0.1:15432"),
            Some(("127.0.0.1", 15432))
        );
        assert_eq!(source_host_port("::1:5432"), Some(("::1", 5432)));
        assert_eq!(source_host_port("db1"), None);
        assert_eq!(source_host_port("db1:x"), None);
        assert_eq!(source_host_port(""), None);
    }

    #[test]
    fn lsns_count_wal_bytes() {
        assert_eq!(lsn_bytes("0/3000148"), Some(0x300_0148));
        assert_eq!(lsn_bytes("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(lsn_bytes(" 1/0 "), Some(1 << 32));
        for not in ["", "0-1-120", "/5", "1/", "g/1", "123456789/0", "1/2/3"] {
            assert_eq!(lsn_bytes(not), None, "{not}");
        }
        assert_eq!(progress_in("0/10"), Some(16));
        assert_eq!(progress_in("0-1-120"), Some(120));
        assert_eq!(ProgressUnit::of("0/10"), ProgressUnit::WalBytes);
        assert_eq!(ProgressUnit::of("0-1-120"), ProgressUnit::Transactions);
        assert_eq!(ProgressUnit::of(""), ProgressUnit::Transactions);
        let pg = ChannelStatus {
            gtid_io_pos: "0/80000".into(),
            gtid_applied_pos: "0/40000".into(),
            ..ChannelStatus::running()
        };
        assert!(pg.is_wal_stream());
        assert_eq!(pg.backlog(), Some(0x40000));
        assert!(pg.in_backlog());
        let mysql = ChannelStatus {
            gtid_io_pos: "0-1-100".into(),
            gtid_applied_pos: "0-1-90".into(),
            ..ChannelStatus::running()
        };
        assert!(!mysql.is_wal_stream() && !mysql.in_backlog());
    }
}
