//! A TCP proxy on loopback for network-fault tests, switched at run time between
//! passing bytes, delaying them, holding them (a silent cut) and resetting connections.
//!
//! Bytes are never dropped: a delayed or held chunk waits in its pump thread (as TCP
//! retransmission would deliver it) until the mode lets it through. Only the client's
//! bytes toward the server are delayed, so a query's round trip grows by the delay.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::{sleep, spawn};
use std::time::{Duration, Instant};

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward at once.
    Pass,
    /// Hold each client-to-server chunk until this long after it arrived.
    Delay(Duration),
    /// Accept and keep connections open, forward nothing either way.
    Silent,
    /// Reset every open connection when set, and every new one at accept.
    Reset,
}

/// A running proxy; its threads live until the test process ends.
pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    mode: Mutex<Mode>,
    /// Both ends of every connection made, for resetting them.
    open: Mutex<Vec<TcpStream>>,
}

/// How often a held chunk looks at the mode again.
const POLL: Duration = Duration::from_millis(5);

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (`127.0.0.1:port`).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Pass),
            open: Mutex::new(Vec::new()),
        });
        let upstream = upstream.to_string();
        let s = Arc::clone(&shared);
        spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if s.mode() == Mode::Reset {
                    reset(&client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    reset(&client);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut open = s.open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                pump(
                    &s,
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    true,
                );
                pump(&s, server, client, false);
            }
        });
        Proxy { port, shared }
    }

    /// The proxy's `host:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Switches the mode; `Reset` resets every open connection at once.
    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
        if mode == Mode::Reset {
            for s in self.shared.open.lock().unwrap().drain(..) {
                reset(&s);
            }
        }
    }
}

impl Shared {
    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }

    /// Waits until a chunk that arrived at `arrived` may go on; false when the
    /// connection was reset meanwhile.
    fn hold(&self, arrived: Instant, delayed: bool) -> bool {
        loop {
            match self.mode() {
                Mode::Pass => return true,
                Mode::Reset => return false,
                Mode::Delay(d) if !delayed || arrived.elapsed() >= d => return true,
                Mode::Delay(_) | Mode::Silent => sleep(POLL),
            }
        }
    }
}

/// Copies `from` to `to` in a thread, holding chunks as the mode says.
fn pump(shared: &Arc<Shared>, mut from: TcpStream, mut to: TcpStream, delayed: bool) {
    let shared = Arc::clone(shared);
    spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !shared.hold(Instant::now(), delayed) || to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// Closes a connection with a TCP RST (linger 0), whoever else holds its descriptor.
fn reset(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
    let _ = s.shutdown(Shutdown::Both);
}

/// Listens on a free loopback port and, for each connection, opens one to `upstream`
/// (`127.0.0.1:port`) and hands both (no Nagle delay on either) to `serve`; a
/// connection the upstream refuses is reset. Returns the port; its threads live until
/// the test process ends.
fn forwarding(upstream: &str, serve: impl Fn(TcpStream, TcpStream) + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
    let port = listener.local_addr().unwrap().port();
    let upstream = upstream.to_string();
    spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(&upstream) else {
                reset(&client);
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            serve(client, server);
        }
    });
    port
}

/// Copies `from` to `to` as it comes, in a thread.
fn pass(mut from: TcpStream, mut to: TcpStream) {
    spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// A running delay line: its port, and the chunks it passed on late.
pub struct DelayLine {
    pub port: u16,
    /// `(wall clock µs when written, µs past due)` for every chunk written more than
    /// 1 ms after it was due: the line's own scheduling on a busy machine, which adds
    /// to the link's delay.
    late: Arc<Mutex<Vec<(i64, i64)>>>,
}

impl DelayLine {
    /// The most any chunk written in `[from_us, to_us]` (wall clock µs) was late, in µs;
    /// 0 when none was more than 1 ms late.
    pub fn late_us(&self, from_us: i64, to_us: i64) -> i64 {
        let late = self.late.lock().unwrap();
        late.iter()
            .filter(|(at, _)| (from_us..=to_us).contains(at))
            .map(|&(_, by)| by)
            .max()
            .unwrap_or(0)
    }
}

/// A one-way delay line on loopback: forwards to `upstream` (`127.0.0.1:port`), holding
/// every server-to-client chunk until `delay` after it arrived (a link of known latency
/// in front of a replica's IO thread), the client's bytes at once. Unlike
/// [`Mode::Delay`], chunks queue without adding up their delays. Its threads live until
/// the test process ends.
pub fn delay_line(upstream: &str, delay: Duration) -> DelayLine {
    let late = Arc::new(Mutex::new(Vec::new()));
    let late_log = late.clone();
    let port = forwarding(upstream, move |client, server| {
        let late = late_log.clone();
        pass(client.try_clone().unwrap(), server.try_clone().unwrap());
        let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
        let mut from = server;
        spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
        let mut to = client;
        spawn(move || {
            for (arrived, chunk) in rx {
                let due = arrived + delay;
                let now = Instant::now();
                if due > now {
                    sleep(due - now);
                }
                if to.write_all(&chunk).is_err() {
                    break;
                }
                let by = Instant::now().saturating_duration_since(due);
                if by > Duration::from_millis(1) {
                    late.lock()
                        .unwrap()
                        .push((super::now_us(), by.as_micros() as i64));
                }
            }
            let _ = to.shutdown(Shutdown::Both);
        });
    });
    DelayLine { port, late }
}

/// A narrow link on loopback: forwards to `upstream` (`127.0.0.1:port`), passing the
/// server's bytes to the client at no more than `bytes_per_s`, in segments of at most
/// 1 460 bytes (as a saturated network link delivers them), the client's bytes at
/// once. Each connection has the whole rate. Returns the port; its threads live until
/// the test process ends.
pub fn narrow_line(upstream: &str, bytes_per_s: u64) -> u16 {
    const SEGMENT: usize = 1460;
    forwarding(upstream, move |client, server| {
        pass(client.try_clone().unwrap(), server.try_clone().unwrap());
        let (mut from, mut to) = (server, client);
        spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            // When the link is free again.
            let mut free = Instant::now();
            'read: while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for segment in buf[..n].chunks(SEGMENT) {
                    let now = Instant::now();
                    if free > now {
                        sleep(free - now);
                    }
                    free = free.max(now)
                        + Duration::from_secs_f64(segment.len() as f64 / bytes_per_s as f64);
                    if to.write_all(segment).is_err() {
                        break 'read;
                    }
                }
            }
            let _ = to.shutdown(Shutdown::Both);
        });
    })
}

/// Which server a [`tls_hiding_line`] stands in front of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaks {
    Mysql,
    Postgres,
}

/// A server with TLS off, made from one with it on: forwards to `upstream`
/// (`127.0.0.1:port`) and hides that the server offers TLS. MySQL: the CLIENT_SSL flag
/// is cleared in the server's greeting, so a client never asks. PostgreSQL: the
/// client's SSLRequest is answered `N` here and not passed on. Everything else passes
/// as it is. Returns the port; its threads live until the test process ends.
pub fn tls_hiding_line(upstream: &str, speaks: Speaks) -> u16 {
    forwarding(upstream, move |mut client, mut server| {
        let hidden = match speaks {
            Speaks::Mysql => hide_mysql_tls(&mut server, &mut client),
            Speaks::Postgres => refuse_pg_tls(&mut client, &mut server),
        };
        if hidden.is_err() {
            reset(&client);
            return;
        }
        pass(client.try_clone().unwrap(), server.try_clone().unwrap());
        pass(server, client);
    })
}

/// Passes the server's greeting on with CLIENT_SSL (0x0800) cleared.
fn hide_mysql_tls(server: &mut TcpStream, client: &mut TcpStream) -> std::io::Result<()> {
    let mut header = [0u8; 4];
    server.read_exact(&mut header)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    let mut payload = vec![0u8; len];
    server.read_exact(&mut payload)?;
    // Protocol version, the server's version (NUL-terminated), thread id (4), the
    // first 8 bytes of the scramble, a filler: then the lower capability flags.
    let nul = payload[1..]
        .iter()
        .position(|&b| b == 0)
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let flags = 1 + nul + 1 + 4 + 8 + 1;
    payload[flags + 1] &= !0x08;
    client.write_all(&header)?;
    client.write_all(&payload)
}

/// Answers the client's SSLRequest, if it sends one, with `N` (no TLS here); any
/// other first message goes on to the server.
fn refuse_pg_tls(client: &mut TcpStream, server: &mut TcpStream) -> std::io::Result<()> {
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let mut first = [0u8; 8];
    client.read_exact(&mut first)?;
    if first == SSL_REQUEST {
        client.write_all(b"N")
    } else {
        server.write_all(&first)
    }
}
