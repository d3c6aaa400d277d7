//! A MySQL/MariaDB connection whose reads carry the kernel's receive time, for the
//! binary log stream (and, without the client library's per-statement work, for the
//! poll reader's and the cross-check's reads of the heartbeat row). A quiet stretch of
//! a stream proves the server had sent everything only if nothing arrived during it;
//! read through a client library, the stretch is timed by when the recorder read, and
//! a recorder that was paused (SIGSTOP, stolen time) can neither tell a message that
//! waited unread from one that just came. Here every read asks the kernel when the
//! data arrived (`SO_TIMESTAMPNS`, the software receive time of the newest segment the
//! read took), and a stretch ends only where the socket was found empty, so a pause of
//! the recorder can neither hide nor fake a quiet stretch.
//!
//! The connection is ours from the first byte: the handshake, `mysql_native_password`
//! authentication (the only plugin MariaDB's replication users commonly have; any other
//! is [`OpenError::Unsupported`], and the caller uses the client library instead), TLS
//! with rustls as `[connection]` says (`probe::tls`), text queries whose answer is OK
//! or one number ([`Stamped::query_u64`]), and the binary log dump. Packets are built
//! and parsed with mysql_common, the library mysql_async is made of.
//!
//! What a packet's times mean ([`Packet`]): `arrived_us` is when the read that
//! completed it took its last segment from the kernel (no earlier than the packet's
//! last byte arrived); `quiet` is, for the first packet that began after the socket
//! was found empty, the arrival of the last data before and the last time the socket
//! was found empty (a clock read made before the read that found it so, or before
//! [`Stamped::check_empty`]): nothing arrived between the two.
//!
//! The end of a quiet stretch is never a stamp. The kernel joins a segment that comes
//! while the one before it is still unread into that one, and gives the whole the
//! newer segment's time (`tcp_try_coalesce`): after a pause of the recorder's the
//! first byte read may be stamped as late as the last data that joined it, and a
//! stretch ending there would hide what came meanwhile. A stamp is only ever an upper
//! bound of when its bytes came. Stamps are kernel times moved onto the recorder's
//! clock by their age at the read; a read during which the wall clock was stepped
//! gives no quiet stretch and its read time as the arrival.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use mysql_common::constants::{CapabilityFlags, UTF8MB4_GENERAL_CI};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    AuthPlugin, AuthSwitchRequest, ComBinlogDump, ComRegisterSlave, ErrPacket, HandshakePacket,
    HandshakeResponse, SslRequest,
};
use mysql_common::proto::MySerialize;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::conn::{DbError, io_failure, server_error};
use super::tls::{Security, note};
use crate::clock::Clock;
use crate::config::{Address, ConnectionConfig, Secret, TlsMode};

/// Largest packet payload in one frame; a longer one goes on in the next frames.
const MAX_FRAME: usize = 0xff_ffff;
/// Bytes asked of the kernel per read (into a buffer all streams of the thread share).
const READ_SIZE: usize = 64 * 1024;
/// What a stream's buffer keeps between packets, bytes: a beat's events are a few
/// hundred.
const KEPT_CAPACITY: usize = 16 * 1024;

thread_local! {
    /// Where reads land before they are appended to a stream's buffer: one per thread
    /// (each read uses it and is done with it before it awaits), not one per stream.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; READ_SIZE].into_boxed_slice());
}
/// A wall clock that moved against the monotonic one by more than this between two
/// reads was stepped: the stamps of that read are not trusted, µs.
const STEP_US: i64 = 1_000;
/// The most a client may send in one packet, as it tells the server.
const MAX_PACKET: u32 = 16 * 1024 * 1024;

/// Why a connection of our own could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Something this module does not do (an authentication plugin, a kernel without
    /// receive times, a Unix socket): the client library can still connect.
    Unsupported(String),
    /// The server refused or failed, as any connection would.
    Failed(DbError),
}

impl From<DbError> for OpenError {
    fn from(e: DbError) -> Self {
        OpenError::Failed(e)
    }
}

/// One packet read, with when it came (see the module's doc).
#[derive(Debug)]
pub struct Packet<'a> {
    pub payload: &'a [u8],
    /// When the read that completed it took its last segment, µs of the clock.
    pub arrived_us: i64,
    /// For the first packet that began after the socket was found empty: when the
    /// last data before arrived, and the last time the socket was found empty after
    /// it, µs. Nothing arrived in between.
    pub quiet: Option<(i64, i64)>,
}

/// An open connection.
pub struct Stamped {
    io: AsyncFd<std::net::TcpStream>,
    tls: Option<Box<rustls::ClientConnection>>,
    clock: Clock,
    capabilities: CapabilityFlags,
    /// The next packet's sequence number.
    seq: u8,
    /// Plain bytes received and not taken yet: `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    /// The packet handed out last ends here (it is dropped at the next read).
    taken: usize,
    /// Per read that added bytes: the end of its bytes in `buf`, and its stamp, µs.
    reads: VecDeque<(usize, i64)>,
    /// When the socket was last found empty with no packet begun in `buf`, if it was
    /// since the last read that brought data: a clock read made before the `recv`
    /// that found it so, µs.
    empty_us: Option<i64>,
    /// The stamp of the last read that brought data, µs.
    last_us: i64,
    /// A quiet stretch waiting for the next completed packet.
    quiet: Option<(i64, i64)>,
    /// The wall clock less the recorder's clock at the last read, µs.
    offset_us: Option<i64>,
    /// Whether any read came with a stamp.
    stamped_once: bool,
}

impl Stamped {
    /// Connects to `addr` over TCP, turns receive times on, and logs in as
    /// `settings` says, with TLS as `settings.tls` says (`preferred`: plain text when
    /// the server offers no TLS). What the connection ended as is noted
    /// (`probe::tls::seen`).
    pub async fn connect(
        addr: &Address,
        settings: &ConnectionConfig,
        password: &Secret,
        clock: Clock,
    ) -> Result<Stamped, OpenError> {
        let after = settings.connect_timeout;
        let inner = Self::connect_inner(addr, settings, password, clock);
        match tokio::time::timeout(after, inner).await {
            Ok(r) => r,
            Err(_) => Err(OpenError::Failed(DbError::Timeout {
                what: "connect",
                after,
            })),
        }
    }

    async fn connect_inner(
        addr: &Address,
        settings: &ConnectionConfig,
        password: &Secret,
        clock: Clock,
    ) -> Result<Stamped, OpenError> {
        let tcp = tokio::net::TcpStream::connect((addr.host.as_str(), addr.port))
            .await
            .map_err(|e| io_failure(&e))?;
        tcp.set_nodelay(true).map_err(io_error)?;
        let tcp = tcp.into_std().map_err(io_error)?;
        let mut c = Stamped::over(tcp, clock)?;
        c.login(addr, settings, password).await?;
        Ok(c)
    }

    /// Reads of `tcp` (connected, non-blocking) with receive times, before any login.
    fn over(tcp: std::net::TcpStream, clock: Clock) -> Result<Stamped, OpenError> {
        stamp_receives(tcp.as_raw_fd())
            .map_err(|e| OpenError::Unsupported(format!("no kernel receive times: {e}")))?;
        // SAFETY: the AsyncFd owns the stream (moved into it), so the descriptor stays
        // open while it is registered and is closed only after.
        let io = unsafe {
            AsyncFd::register_with_interest(tcp, Interest::READABLE | Interest::WRITABLE)
        }
        .map_err(|e| io_error(e.into()))?;
        Ok(Stamped {
            io,
            tls: None,
            clock,
            capabilities: CapabilityFlags::empty(),
            seq: 0,
            buf: Vec::new(),
            start: 0,
            taken: 0,
            reads: VecDeque::new(),
            empty_us: None,
            last_us: clock.now_us(),
            quiet: None,
            offset_us: None,
            stamped_once: false,
        })
    }

    /// The handshake and authentication.
    async fn login(
        &mut self,
        addr: &Address,
        settings: &ConnectionConfig,
        password: &Secret,
    ) -> Result<(), OpenError> {
        let greeting = self.packet_owned().await?;
        if greeting.first() == Some(&0xff) {
            return Err(OpenError::Failed(self.error_of(&greeting)));
        }
        let hs: HandshakePacket = ParseBuf(&greeting)
            .parse(())
            .map_err(|e| driver(format!("unreadable greeting: {e}")))?;
        let mut nonce = hs.scramble_1_ref().to_vec();
        nonce.extend_from_slice(hs.scramble_2_ref().unwrap_or(&[]));
        nonce.resize(20, 0);
        let version = hs
            .maria_db_server_version_parsed()
            .or_else(|| hs.server_version_parsed())
            .unwrap_or((0, 0, 0));
        let wanted = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_LONG_PASSWORD
            | CapabilityFlags::CLIENT_LONG_FLAG
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_DEPRECATE_EOF
            | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
        let offered = hs.capabilities();
        self.capabilities = offered & wanted;
        let mode = settings.tls.mode;
        let tls_offered = offered.contains(CapabilityFlags::CLIENT_SSL);
        let security = match mode {
            TlsMode::Disabled => Security::PlainAsConfigured,
            TlsMode::Preferred if !tls_offered => Security::PlainFallback,
            _ if !tls_offered => return Err(OpenError::Failed(DbError::TlsNotOffered)),
            _ => {
                self.capabilities |= CapabilityFlags::CLIENT_SSL;
                let request =
                    SslRequest::new(self.capabilities, MAX_PACKET, UTF8MB4_GENERAL_CI as u8);
                self.send(&request).await?;
                self.start_tls(addr, settings).await?;
                Security::Encrypted { mode }
            }
        };
        let plugin_name = hs
            .auth_plugin_name_ref()
            .unwrap_or(b"mysql_native_password");
        if plugin_name != b"mysql_native_password" {
            return Err(OpenError::Unsupported(format!(
                "authentication plugin {}",
                String::from_utf8_lossy(plugin_name)
            )));
        }
        let pass = password.expose();
        let scramble = native_scramble(&nonce, pass);
        let response = HandshakeResponse::new(
            Some(scramble.as_slice()),
            version,
            Some(settings.user.as_bytes()),
            None::<&[u8]>,
            Some(AuthPlugin::MysqlNativePassword),
            self.capabilities,
            None,
            MAX_PACKET,
        );
        self.send(&response).await?;
        loop {
            let answer = self.packet_owned().await?;
            match answer.first() {
                Some(0x00) => break,
                Some(0xff) => return Err(OpenError::Failed(self.error_of(&answer))),
                Some(0xfe) => {
                    let switch: AuthSwitchRequest = ParseBuf(&answer)
                        .parse(())
                        .map_err(|e| driver(format!("unreadable auth switch: {e}")))?;
                    if switch.auth_plugin().as_bytes() != b"mysql_native_password" {
                        return Err(OpenError::Unsupported(format!(
                            "authentication plugin {}",
                            String::from_utf8_lossy(switch.auth_plugin().as_bytes())
                        )));
                    }
                    let mut nonce = switch.plugin_data().to_vec();
                    nonce.truncate(20);
                    let scramble = native_scramble(&nonce, pass);
                    self.send_raw(&scramble).await?;
                }
                _ => {
                    return Err(OpenError::Unsupported(
                        "an authentication exchange this client does not speak".into(),
                    ));
                }
            }
        }
        note(addr, security);
        Ok(())
    }

    /// The TLS handshake, after the SSL request.
    async fn start_tls(
        &mut self,
        addr: &Address,
        settings: &ConnectionConfig,
    ) -> Result<(), OpenError> {
        let config = super::tls::cached_client_config(&settings.tls)
            .map_err(|message| DbError::Tls { message })?;
        let host = settings
            .tls
            .server_name
            .clone()
            .unwrap_or_else(|| addr.host.clone());
        let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| DbError::Tls {
            message: format!("not a server name: {e}"),
        })?;
        let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(tls_error)?;
        self.tls = Some(Box::new(conn));
        loop {
            let tls = self.tls.as_mut().expect("set above");
            if tls.wants_write() {
                self.flush().await?;
                continue;
            }
            if !tls.is_handshaking() {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    /// Whether the kernel has stamped any read yet. (The first socket of a process
    /// that asks for stamps turns them on in the kernel a moment later: the first
    /// packets may come unstamped. A read without a stamp gives its read time and no
    /// quiet stretch.)
    pub fn stamps_seen(&self) -> bool {
        self.stamped_once
    }

    /// Runs a text query whose answer is OK (SET, DO).
    pub async fn query(&mut self, sql: &str) -> Result<(), DbError> {
        self.seq = 0;
        let mut body = Vec::with_capacity(sql.len() + 1);
        body.push(0x03);
        body.extend_from_slice(sql.as_bytes());
        self.send_raw(&body).await?;
        self.expect_ok().await
    }

    /// Runs a text query whose answer is at most one row, and gives its first column
    /// as an unsigned integer: None for no row or NULL. `body` is the command: 0x03
    /// (COM_QUERY) and the statement (built by the caller in a buffer it keeps, so that
    /// a read per beat allocates nothing for it).
    pub async fn query_u64(&mut self, body: &[u8]) -> Result<Option<u64>, DbError> {
        self.seq = 0;
        self.send_raw(body).await?;
        let unreadable = |what: &str| DbError::Driver {
            message: format!("an unreadable answer to a query: {what}"),
        };
        let columns = {
            let first = self.packet().await?.payload;
            match first.first() {
                Some(0x00) => return Ok(None),
                Some(0xff) => {
                    let first = first.to_vec();
                    return Err(self.error_of(&first));
                }
                _ => lenenc(&mut &first[..]).ok_or_else(|| unreadable("its column count"))?,
            }
        };
        for _ in 0..columns {
            self.packet().await?;
        }
        if !self
            .capabilities
            .contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
        {
            self.packet().await?;
        }
        let mut value = None;
        loop {
            let row = self.packet().await?.payload;
            match row.first() {
                // The end (EOF, or OK with CLIENT_DEPRECATE_EOF): a row never starts so.
                Some(0xfe) if row.len() < MAX_FRAME => return Ok(value),
                Some(0xff) => {
                    let row = row.to_vec();
                    return Err(self.error_of(&row));
                }
                // NULL
                Some(0xfb) => {}
                _ if value.is_none() => {
                    let mut rest = row;
                    let len = lenenc(&mut rest).ok_or_else(|| unreadable("a row"))?;
                    let text = rest
                        .get(..usize::try_from(len).map_err(|_| unreadable("a row"))?)
                        .ok_or_else(|| unreadable("a row"))?;
                    let number = std::str::from_utf8(text)
                        .ok()
                        .and_then(|t| t.parse::<u64>().ok())
                        .ok_or_else(|| unreadable("not an unsigned integer"))?;
                    value = Some(number);
                }
                _ => {}
            }
        }
    }

    /// Registers as a replica with `server_id` and asks for the binary log from
    /// `file` at `pos`, or (`file` None) from the GTID state set before.
    pub async fn dump(&mut self, server_id: u32, file: Option<(&str, u64)>) -> Result<(), DbError> {
        self.seq = 0;
        self.send(&ComRegisterSlave::new(server_id)).await?;
        self.expect_ok().await?;
        self.seq = 0;
        let mut request = ComBinlogDump::new(server_id);
        if let Some((name, pos)) = file {
            let pos = u32::try_from(pos).map_err(|_| DbError::Driver {
                message: format!("binary log position {pos} is past 4 GiB"),
            })?;
            request = request.with_filename(name.as_bytes()).with_pos(pos);
        }
        self.send(&request).await
    }

    async fn expect_ok(&mut self) -> Result<(), DbError> {
        let answer = self.packet().await?.payload;
        match answer.first() {
            Some(0x00) => Ok(()),
            Some(0xff) => {
                let answer = answer.to_vec();
                Err(self.error_of(&answer))
            }
            _ => Err(DbError::Driver {
                message: "an answer other than OK to a statement".into(),
            }),
        }
    }

    /// The server's error in `payload` (an ERR packet).
    pub fn error_of(&self, payload: &[u8]) -> DbError {
        match ParseBuf(payload).parse::<ErrPacket>(self.capabilities) {
            Ok(ErrPacket::Error(e)) => server_error(e.error_code(), e.message_str().into_owned()),
            _ => DbError::Driver {
                message: "an unreadable error packet".into(),
            },
        }
    }

    /// The next packet (frames of a long one joined), as [`Packet`] says.
    pub async fn packet(&mut self) -> Result<Packet<'_>, DbError> {
        // The packet handed out before is done with.
        self.start = self.taken;
        if self.start == self.buf.len() {
            // All taken (the usual case): start over, and give back what a large
            // packet made the buffer hold (a thousand streams keep a buffer each).
            self.buf.clear();
            if self.buf.capacity() > KEPT_CAPACITY {
                self.buf.shrink_to(KEPT_CAPACITY);
            }
            self.reads.retain(|r| r.0 > self.start);
            self.start = 0;
            self.taken = 0;
        } else if self.start > self.buf.len() / 2 && self.start > KEPT_CAPACITY {
            self.buf.drain(..self.start);
            for r in &mut self.reads {
                r.0 -= self.start;
            }
            self.taken -= self.start;
            self.start = 0;
        }
        loop {
            if let Some((range, end)) = self.complete()? {
                self.taken = end;
                while self.reads.len() > 1 && self.reads[0].0 < end {
                    self.reads.pop_front();
                }
                let arrived_us = match self.reads.iter().find(|r| r.0 >= end) {
                    Some(r) => r.1,
                    None => self.clock.now_us(),
                };
                let quiet = self.quiet.take();
                return Ok(Packet {
                    payload: &self.buf[range],
                    arrived_us,
                    quiet,
                });
            }
            self.fill().await?;
        }
    }

    async fn packet_owned(&mut self) -> Result<Vec<u8>, DbError> {
        Ok(self.packet().await?.payload.to_vec())
    }

    /// Where the next complete packet lies in `buf`, and where it ends; None when it
    /// has not all come. A packet of several frames is joined in place.
    fn complete(&mut self) -> Result<Option<(std::ops::Range<usize>, usize)>, DbError> {
        let mut at = self.start;
        let mut frames = Vec::new();
        loop {
            let Some(header) = self.buf.get(at..at + 4) else {
                return Ok(None);
            };
            let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
            let seq = header[3];
            if self.buf.len() < at + 4 + len {
                return Ok(None);
            }
            frames.push((at + 4, len, seq));
            at += 4 + len;
            if len < MAX_FRAME {
                break;
            }
        }
        self.seq = frames.last().map_or(self.seq, |f| f.2.wrapping_add(1));
        if frames.len() == 1 {
            let (from, len, _) = frames[0];
            return Ok(Some((from..from + len, at)));
        }
        // Joined: each later frame's payload moves over the headers before it.
        let first = frames[0].0;
        let mut to = first;
        for (from, len, _) in frames {
            self.buf.copy_within(from..from + len, to);
            to += len;
        }
        Ok(Some((first..to, at)))
    }

    /// One read from the socket (waiting for data when none is there), through TLS
    /// when on: adds what came to `buf`, stamped.
    async fn fill(&mut self) -> Result<(), DbError> {
        loop {
            let mut guard = self.io.readable().await.map_err(io_error)?;
            let cap = READ_SIZE;
            // Before the read: if it finds the socket empty, nothing came before this.
            let before_us = self.clock.now_us();
            let fd = self.io.as_raw_fd();
            // (bytes read, their stamp, whether they are plain text and in `buf`
            // already; through TLS, rustls holds them until decrypted).
            let read = match self.tls.as_mut() {
                None => SCRATCH.with_borrow_mut(|scratch| {
                    let read = recv_stamped(fd, &mut scratch[..cap]);
                    if let Ok((n, _)) = read {
                        self.buf.extend_from_slice(&scratch[..n]);
                    }
                    read.map(|(n, s)| (n, s, true))
                }),
                Some(tls) => {
                    let mut source = Source {
                        fd,
                        cap,
                        stamp: None,
                    };
                    match tls.read_tls(&mut source) {
                        Ok(n) => Ok((n, source.stamp, false)),
                        Err(e) => Err(e),
                    }
                }
            };
            match read {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    self.found_empty(before_us);
                    continue;
                }
                Err(e) => return Err(io_error(e)),
                Ok((0, _, _)) => {
                    return Err(DbError::Io {
                        message: "the server closed the connection".into(),
                    });
                }
                Ok((_, stamp, plain)) => {
                    drop(guard);
                    let at_us = self.stamp_us(stamp);
                    let empty_us = self.empty_us.take();
                    if let (Some(_), Some(empty_us)) = (at_us, empty_us) {
                        self.quiet = Some((self.last_us, empty_us));
                    }
                    let at_us = at_us.unwrap_or_else(|| self.clock.now_us());
                    self.last_us = at_us;
                    // Plain bytes are in `buf` already.
                    if !plain {
                        self.decrypt()?;
                    }
                    self.reads.push_back((self.buf.len(), at_us));
                    return Ok(());
                }
            }
        }
    }

    /// Checks, without waiting, whether anything came since the last read; if
    /// nothing did, a quiet stretch now lasts at least until this call (taking the
    /// time for a quiet stretch's end from the stamps would not be true, see the
    /// module's doc). For a caller that wakes anyway (the stream at each beat while
    /// its replica is behind), so that a stretch ends close to the next message's
    /// arrival.
    pub fn check_empty(&mut self) {
        let before_us = self.clock.now_us();
        let mut byte = [0u8; 1];
        // SAFETY: `byte` is writable for its one byte through the call.
        let n = unsafe {
            libc::recv(
                self.io.as_raw_fd(),
                byte.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock {
            self.found_empty(before_us);
        }
    }

    /// The socket had nothing at `before_us`: a quiet stretch lasts until then, unless
    /// a packet has begun (its first bytes came before).
    fn found_empty(&mut self, before_us: i64) {
        if self.taken >= self.buf.len() {
            self.empty_us = Some(before_us);
        }
    }

    /// Moves what TLS decrypted into `buf`.
    fn decrypt(&mut self) -> Result<(), DbError> {
        let tls = self.tls.as_mut().expect("only with TLS");
        tls.process_new_packets().map_err(|e| DbError::Tls {
            message: super::tls::reason(&e).unwrap_or_else(|| e.to_string()),
        })?;
        let buf = &mut self.buf;
        SCRATCH.with_borrow_mut(|scratch| {
            loop {
                match tls.reader().read(scratch) {
                    Ok(0) => return Ok(()),
                    Ok(n) => buf.extend_from_slice(&scratch[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(io_error(e)),
                }
            }
        })
    }

    /// A kernel stamp on the recorder's clock: its age now, taken from the clock now.
    /// None without a stamp, or when the wall clock moved against the monotonic one
    /// since the last read (a step: the age may be off by it).
    fn stamp_us(&mut self, stamp: Option<libc::timespec>) -> Option<i64> {
        let stamp = stamp?;
        self.stamped_once = true;
        let now_us = self.clock.now_us();
        let wall_us = wall_now_us();
        let offset_us = wall_us - now_us;
        let stepped = self
            .offset_us
            .is_some_and(|o| (o - offset_us).abs() > STEP_US);
        self.offset_us = Some(offset_us);
        if stepped {
            return None;
        }
        let stamp_us = stamp.tv_sec * 1_000_000 + stamp.tv_nsec / 1_000;
        Some(now_us - (wall_us - stamp_us).max(0))
    }

    /// Sends a packet made by mysql_common.
    async fn send(&mut self, what: &impl MySerialize) -> Result<(), DbError> {
        let mut body = Vec::new();
        what.serialize(&mut body);
        self.send_raw(&body).await
    }

    /// Sends `body` as one packet (in frames when long).
    async fn send_raw(&mut self, body: &[u8]) -> Result<(), DbError> {
        let mut out = Vec::with_capacity(body.len() + 4);
        let chunks = body.chunks(MAX_FRAME);
        let mut last_len = 0;
        for chunk in chunks {
            let len = chunk.len() as u32;
            out.extend_from_slice(&len.to_le_bytes()[..3]);
            out.push(self.seq);
            self.seq = self.seq.wrapping_add(1);
            out.extend_from_slice(chunk);
            last_len = chunk.len();
        }
        if last_len == MAX_FRAME || body.is_empty() {
            out.extend_from_slice(&[0, 0, 0, self.seq]);
            self.seq = self.seq.wrapping_add(1);
        }
        match self.tls.as_mut() {
            None => self.write_all(&out).await,
            Some(tls) => {
                tls.writer().write_all(&out).map_err(io_error)?;
                self.flush().await
            }
        }
    }

    /// Writes what TLS has to send.
    async fn flush(&mut self) -> Result<(), DbError> {
        while self.tls.as_ref().is_some_and(|t| t.wants_write()) {
            let mut guard = self.io.writable().await.map_err(io_error)?;
            let tls = self.tls.as_mut().expect("checked");
            match guard.try_io(|s| tls.write_tls(&mut s.get_ref())) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(io_error(e)),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }

    async fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), DbError> {
        while !bytes.is_empty() {
            let mut guard = self.io.writable().await.map_err(io_error)?;
            match guard.try_io(|s| s.get_ref().write(bytes)) {
                Ok(Ok(n)) => bytes = &bytes[n..],
                Ok(Err(e)) => return Err(io_error(e)),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }
}

impl Drop for Stamped {
    /// Says goodbye (COM_QUIT, and TLS's close_notify) without waiting, so that the
    /// server counts no aborted connection for a stream that ends.
    fn drop(&mut self) {
        const QUIT: [u8; 5] = [1, 0, 0, 0, 0x01];
        let mut socket = self.io.get_ref();
        match self.tls.as_mut() {
            None => {
                let _ = socket.write(&QUIT);
            }
            Some(tls) => {
                let _ = tls.writer().write_all(&QUIT);
                tls.send_close_notify();
                while tls.wants_write() {
                    if tls.write_tls(&mut socket).is_err() {
                        break;
                    }
                }
            }
        }
    }
}

/// mysql_native_password's answer to `nonce` (empty for an empty password).
fn native_scramble(nonce: &[u8], pass: &str) -> Vec<u8> {
    mysql_common::scramble::scramble_native(nonce, pass.as_bytes())
        .map(|s| s.to_vec())
        .unwrap_or_default()
}

fn io_error(e: io::Error) -> DbError {
    DbError::Io {
        message: e.to_string(),
    }
}

fn tls_error(e: rustls::Error) -> DbError {
    DbError::Tls {
        message: super::tls::reason(&e).unwrap_or_else(|| e.to_string()),
    }
}

fn driver(message: String) -> DbError {
    DbError::Driver { message }
}

/// The kernel's wall clock now, µs since the Unix epoch: the clock its stamps are on.
/// Read through rustix (the vDSO), not libc: a process whose libc clock is shifted
/// (libfaketime, as `tests/clock_steps.rs` does) would otherwise see every stamp as
/// old or new by the shift.
fn wall_now_us() -> i64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    t.tv_sec * 1_000_000 + t.tv_nsec / 1_000
}

/// A length-encoded integer at the start of `bytes`, which it moves past (the
/// protocol's and the binary log's rows events' encoding).
pub(crate) fn lenenc(bytes: &mut &[u8]) -> Option<u64> {
    let (&first, rest) = bytes.split_first()?;
    let width = match first {
        0..=0xfa => {
            *bytes = rest;
            return Some(u64::from(first));
        }
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let mut le = [0u8; 8];
    le[..width].copy_from_slice(rest.get(..width)?);
    *bytes = &rest[width..];
    Some(u64::from_le_bytes(le))
}

/// Asks the kernel to stamp what `fd` receives.
fn stamp_receives(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `fd` is an open socket; the option's value is a c_int that lives
    // through the call, and its size is passed with it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One `recvmsg` without waiting: the bytes read, and the receive time of the newest
/// segment it took when the kernel gave one.
fn recv_stamped(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<libc::timespec>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one control message holding a timespec, aligned for its header.
    let mut control = [0u64; 8];
    // SAFETY: a zeroed msghdr is valid (null pointers, zero lengths); the pointers set
    // below point at `iov` and `control`, which outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    // SAFETY: `msg` describes writable memory owned here for the call's duration.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the kernel filled `control` up to `msg_controllen`; the CMSG macros walk
    // only within it, and a timestamp's data is a timespec (read unaligned).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                stamp = Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(cmsg).cast::<libc::timespec>(),
                ));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}

/// The socket as rustls reads it: at most `cap` bytes per read, the stamp kept.
struct Source {
    fd: RawFd,
    cap: usize,
    stamp: Option<libc::timespec>,
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let cap = buf.len().min(self.cap);
        let (n, stamp) = recv_stamped(self.fd, &mut buf[..cap])?;
        if stamp.is_some() {
            self.stamp = stamp;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A connected pair on loopback: the far end (blocking) and ours.
    fn pair(clock: Clock) -> (std::net::TcpStream, Stamped) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let near = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (far, _) = listener.accept().unwrap();
        near.set_nonblocking(true).unwrap();
        (far, Stamped::over(near, clock).unwrap())
    }

    /// Sends one packet with `payload`, and says when, µs of `clock`.
    fn send(far: &mut std::net::TcpStream, clock: &Clock, seq: u8, payload: &[u8]) -> i64 {
        let mut frame = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        frame.push(seq);
        frame.extend_from_slice(payload);
        let at_us = clock.now_us();
        far.write_all(&frame).unwrap();
        at_us
    }

    /// A clock, a runtime, and a connected pair registered with it.
    fn setup() -> (Clock, tokio::runtime::Runtime, std::net::TcpStream, Stamped) {
        let clock = Clock::start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (far, near) = {
            let _in = rt.enter();
            pair(clock)
        };
        (clock, rt, far, near)
    }

    /// The recorder stopped (here: its thread asleep) while packets came: their times
    /// are when they came, not when they were read; and a quiet stretch ends when the
    /// reader last found the socket empty, however late it woke.
    #[test]
    fn a_packet_read_late_keeps_its_arrival_and_a_quiet_stretch_its_true_length() {
        let (clock, rt, mut far, mut near) = setup();
        rt.block_on(async {
            // Two packets 100 ms apart, read 300 ms after the first.
            let a_us = send(&mut far, &clock, 0, b"a");
            std::thread::sleep(Duration::from_millis(100));
            let b_us = send(&mut far, &clock, 1, b"bb");
            std::thread::sleep(Duration::from_millis(200));
            let read_us = clock.now_us();
            let a = near.packet().await.unwrap();
            assert_eq!(a.payload, b"a");
            // One read took both: each is stamped with the newest segment's arrival,
            // no earlier than its own.
            let a_arrived = a.arrived_us;
            assert!(
                a_arrived >= a_us,
                "{a_arrived} before it was sent at {a_us}"
            );
            assert!(
                a_arrived < b_us + 50_000,
                "{a_arrived} vs the read at {read_us}"
            );
            let b = near.packet().await.unwrap();
            assert_eq!(b.payload, b"bb");
            assert!(
                (b.arrived_us - b_us).abs() < 50_000,
                "{} vs {b_us}",
                b.arrived_us
            );
            assert_eq!(b.quiet, None);
            // Nothing more: the reader finds the socket empty and waits.
            let wait_us = clock.now_us();
            let waited = tokio::time::timeout(Duration::from_millis(20), near.packet()).await;
            assert!(waited.is_err());
            // Then the thread stops for 300 ms; a packet comes 100 ms into it.
            let sender = std::thread::spawn({
                let mut far = far.try_clone().unwrap();
                move || {
                    std::thread::sleep(Duration::from_millis(100));
                    send(&mut far, &clock, 2, b"c")
                }
            });
            std::thread::sleep(Duration::from_millis(300));
            let c_us = sender.join().unwrap();
            let c = near.packet().await.unwrap();
            assert_eq!(c.payload, b"c");
            assert!(
                (c.arrived_us - c_us).abs() < 50_000,
                "{} vs {c_us}",
                c.arrived_us
            );
            // The stretch: from b's arrival to when the reader last found the socket
            // empty, before the stop.
            let (from_us, to_us) = c.quiet.expect("the first packet after a wait");
            assert!((from_us - b_us).abs() < 50_000, "{from_us} vs {b_us}");
            assert!(
                wait_us <= to_us && to_us <= c_us,
                "{wait_us} <= {to_us} <= {c_us}"
            );
        });
    }

    /// The kernel joins a segment that comes while the one before is still unread into
    /// it, and gives the joined segment the newer segment's time: the first byte after
    /// a stop of the recorder's is stamped as late as the last data that joined it. A
    /// quiet stretch must not end there (it would prove the server had sent nothing
    /// when it had), but no later than the reader last found the socket empty.
    #[test]
    fn a_quiet_stretch_ends_no_later_than_its_first_byte_when_later_data_joined_it() {
        let (clock, rt, mut far, mut near) = setup();
        rt.block_on(async {
            send(&mut far, &clock, 0, b"a");
            near.packet().await.unwrap();
            let waited = tokio::time::timeout(Duration::from_millis(20), near.packet()).await;
            assert!(waited.is_err());
            let empty_us = clock.now_us();
            // The thread stops for 300 ms; packets come 100 and 200 ms into it.
            let sender = std::thread::spawn({
                let mut far = far.try_clone().unwrap();
                move || {
                    std::thread::sleep(Duration::from_millis(100));
                    let b_us = send(&mut far, &clock, 1, b"b");
                    std::thread::sleep(Duration::from_millis(100));
                    send(&mut far, &clock, 2, b"c");
                    b_us
                }
            });
            std::thread::sleep(Duration::from_millis(300));
            let b_us = sender.join().unwrap();
            let b = near.packet().await.unwrap();
            assert_eq!(b.payload, b"b");
            let (_, to_us) = b.quiet.expect("the first packet after a wait");
            assert!(
                to_us <= b_us,
                "the stretch ends at {to_us}, after the packet after it was sent at {b_us}"
            );
            assert!(to_us <= empty_us, "{to_us} vs {empty_us}");
            // Its arrival is still no earlier than its own.
            assert!(b.arrived_us >= b_us);
        });
    }

    /// A check made while the socket is empty (the stream does one at each beat)
    /// ends the quiet stretch there, no earlier; one made while a packet waits unread
    /// changes nothing.
    #[test]
    fn a_check_of_an_empty_socket_moves_the_end_of_a_quiet_stretch_up_to_it() {
        let (clock, rt, mut far, mut near) = setup();
        rt.block_on(async {
            send(&mut far, &clock, 0, b"a");
            near.packet().await.unwrap();
            let waited = tokio::time::timeout(Duration::from_millis(5), near.packet()).await;
            assert!(waited.is_err());
            std::thread::sleep(Duration::from_millis(30));
            let check_us = clock.now_us();
            near.check_empty();
            let b_us = send(&mut far, &clock, 1, b"b");
            std::thread::sleep(Duration::from_millis(30));
            // Data waits: the check says nothing.
            near.check_empty();
            let b = near.packet().await.unwrap();
            let (_, to_us) = b.quiet.expect("the first packet after a wait");
            assert!(
                check_us <= to_us && to_us <= b_us,
                "{check_us} <= {to_us} <= {b_us}"
            );
        });
    }

    /// A one-row answer gives its number; NULL or no row gives none; an error packet
    /// gives the server's error. (The far end answers as a server without
    /// CLIENT_DEPRECATE_EOF: an EOF after the column descriptions, and one at the end.)
    #[test]
    fn a_query_for_one_number_reads_the_result_set_it_gets() {
        let (clock, rt, mut far, mut near) = setup();
        // Each answer: the column count, a column description, EOF, the rows, EOF.
        const EOF: &[u8] = b"\xfe\0\0\x02\0";
        let answers: [(Option<&[u8]>, Option<u64>); 3] = [
            (Some(b"\x0512345"), Some(12345)),
            (Some(b"\xfb"), None),
            (None, None),
        ];
        let server = std::thread::spawn(move || {
            let mut request = [0u8; 64];
            for (row, _) in answers {
                let n = far.read(&mut request).unwrap();
                assert_eq!(request[4], 0x03, "a COM_QUERY");
                assert!(request[5..n].starts_with(b"SELECT"));
                let packets = [
                    Some(&b"\x01"[..]),
                    Some(b"def-seq"),
                    Some(EOF),
                    row,
                    Some(EOF),
                ];
                for (seq, p) in packets.into_iter().flatten().enumerate() {
                    send(&mut far, &clock, seq as u8 + 1, p);
                }
            }
            let _ = far.read(&mut request).unwrap();
            let missing_table = b"\xff\x7a\x04#42S02Table 'x' doesn't exist";
            send(&mut far, &clock, 1, missing_table);
        });
        rt.block_on(async {
            for (_, want) in answers {
                assert_eq!(near.query_u64(b"\x03SELECT 1").await.unwrap(), want);
            }
            let e = near.query_u64(b"\x03SELECT 1").await.unwrap_err();
            assert!(matches!(e, DbError::MissingTable { .. }), "{e:?}");
        });
        server.join().unwrap();
    }

    /// A packet longer than one frame is joined from its frames.
    #[test]
    fn a_packet_of_several_frames_is_joined() {
        let (clock, rt, mut far, mut near) = setup();
        let long: Vec<u8> = (0..MAX_FRAME + 10).map(|i| (i % 251) as u8).collect();
        let frames = long.clone();
        let writer = std::thread::spawn(move || {
            let (head, tail) = frames.split_at(MAX_FRAME);
            send(&mut far, &clock, 0, head);
            send(&mut far, &clock, 1, tail);
            send(&mut far, &clock, 2, b"next");
        });
        rt.block_on(async {
            let p = near.packet().await.unwrap();
            assert_eq!(p.payload.len(), long.len());
            assert!(p.payload == long.as_slice());
            assert_eq!(near.packet().await.unwrap().payload, b"next");
        });
        writer.join().unwrap();
    }
}
