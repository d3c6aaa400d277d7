//! Live metrics to statsd through cadence: a queuing sink in front of a buffered,
//! non-blocking UDP sink, so the recorder never waits on the network. Errors are
//! counted, never fatal.
//!
//! Per replica, names `<prefix>.<cluster>.<replica>.<metric>`: `lag_ms` (a timer, whole
//! milliseconds as statsd timers are, and a gauge with microsecond precision; the lower
//! bound when only that is known), `lag_lo_ms` and `lag_hi_ms` (gauges; no `lag_hi_ms`
//! while the upper bound is unknown), `io_running` and `sql_running` (gauges, 0/1) and
//! `seconds_behind_master` (gauge, only when the server does not say NULL).

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cadence::prelude::*;
use cadence::{BufferedUdpMetricSink, QueuingMetricSink, StatsdClient};

use crate::analysis::lag::Lag;
use crate::config::StatsdConfig;
use crate::samples::{ChannelStatus, IoState};

/// Metrics queued for the UDP sender before new ones are dropped.
const QUEUE_CAPACITY: usize = 10_000;

pub struct Statsd {
    client: StatsdClient,
    errors: Arc<AtomicU64>,
}

/// Why statsd could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StatsdError {
    #[error("statsd: cannot open a UDP socket: {0}")]
    Socket(std::io::Error),
    #[error("statsd: bad address {target}: {source}")]
    Address {
        target: String,
        source: cadence::MetricError,
    },
}

impl Statsd {
    pub fn new(cfg: &StatsdConfig) -> Result<Statsd, StatsdError> {
        let target = cfg.address.to_string();
        let socket = UdpSocket::bind(if cfg.address.host.contains(':') {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        })
        .map_err(StatsdError::Socket)?;
        socket.set_nonblocking(true).map_err(StatsdError::Socket)?;
        let udp = BufferedUdpMetricSink::from(target.as_str(), socket).map_err(|source| {
            StatsdError::Address {
                target: target.clone(),
                source,
            }
        })?;
        let errors = Arc::new(AtomicU64::new(0));
        let queue_errors = errors.clone();
        let sink = QueuingMetricSink::builder()
            .with_capacity(QUEUE_CAPACITY)
            .with_error_handler(move |_| {
                queue_errors.fetch_add(1, Ordering::Relaxed);
            })
            .build(udp);
        let client_errors = errors.clone();
        let client = StatsdClient::builder(&cfg.prefix, sink)
            .with_error_handler(move |_| {
                client_errors.fetch_add(1, Ordering::Relaxed);
            })
            .build();
        Ok(Statsd { client, errors })
    }

    /// Lag of one read: `lag_ms` (timer and gauge) is the judged lag (the lower bound
    /// when the upper one is unknown), `lag_lo_ms` always, `lag_hi_ms` only when known.
    /// An unknown lag sends nothing.
    pub fn lag(&self, cluster: &str, replica: &str, lag: &Lag) {
        let Some(judged_us) = lag.judged_us() else {
            return;
        };
        let key = |m: &str| format!("{cluster}.{replica}.{m}");
        let _ = self.client.time(
            &key("lag_ms"),
            Duration::from_micros(judged_us.max(0) as u64),
        );
        let _ = self.client.gauge(&key("lag_ms"), judged_us as f64 / 1000.0);
        if let Some(lo_us) = lag.lo_us() {
            let _ = self.client.gauge(&key("lag_lo_ms"), lo_us as f64 / 1000.0);
        }
        if let Some(hi_us) = lag.hi_us() {
            let _ = self.client.gauge(&key("lag_hi_ms"), hi_us as f64 / 1000.0);
        }
    }

    /// Thread states and Seconds_Behind_Master of a replica's main channel.
    pub fn status(&self, cluster: &str, replica: &str, ch: &ChannelStatus) {
        let key = |m: &str| format!("{cluster}.{replica}.{m}");
        let _ = self
            .client
            .gauge(&key("io_running"), u64::from(ch.io == IoState::Yes));
        let _ = self
            .client
            .gauge(&key("sql_running"), u64::from(ch.sql_running));
        if let Some(sbm) = ch.seconds_behind_master {
            let _ = self.client.gauge(&key("seconds_behind_master"), sbm as u64);
        }
    }

    /// Sends what is buffered.
    /// A cluster's throttle verdict for one app: `<prefix>.throttle.<cluster>.<app>`
    /// (`default` for the default threshold), 1 while writers should wait. Not under
    /// `<prefix>.<cluster>.`, where the next name is a replica's.
    pub fn throttle(&self, t: &crate::output::throttle::ThrottleDoc) {
        let app = t.app.as_deref().unwrap_or("default");
        let key = format!("throttle.{}.{}", t.cluster, app.replace('.', "_"));
        let _ = self.client.gauge(&key, u64::from(t.throttled));
    }

    pub fn flush(&self) {
        if self.client.flush().is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Metrics that could not be sent.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}
