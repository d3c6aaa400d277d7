//! Live outputs of `record`: HAProxy's agent-check protocol. HAProxy connects, sends
//! the line set by `agent-send` (here a replica's name: `agent-send "db2\n"`), reads one
//! line back and closes. One recorder thus answers for every server of a backend.
//!
//! Answers: `up ready` (in the pool), `down ready #<reason>` (out), `maint #<reason>`
//! (maintenance file present), `down #unknown replica <name>`. `ready` takes a server
//! out of a maintenance the agent set before; the text after `#` shows in HAProxy's
//! logs and stats.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::live::{self, Check, Shared, State};
use crate::clock::Clock;

/// Longest request line read; replica names are at most 64 characters.
const MAX_LINE: usize = 256;
/// A client that sends no full line within this is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Accepts agent-check connections until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    live: Shared,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream, live.clone(), clock));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!("agent: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

async fn answer(mut stream: TcpStream, live: Shared, clock: Clock) {
    let Ok(Some(line)) = tokio::time::timeout(READ_TIMEOUT, read_line(&mut stream)).await else {
        return;
    };
    let reply = reply(&live, line.trim(), clock.now_us());
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads up to the first newline (or the end of the stream); `None` when the line is
/// too long or the read fails.
async fn read_line(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 64];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.contains(&b'\n') || buf.len() > MAX_LINE {
            break;
        }
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(&[]);
    (line.len() <= MAX_LINE).then(|| String::from_utf8_lossy(line).into_owned())
}

/// The answer line for the replica named `name`.
pub fn reply(live: &Shared, name: &str, now_us: i64) -> String {
    let doc = live::lock(live).check(name, Check::Pool, now_us);
    match doc {
        None => format!("down #unknown replica {}\n", printable(name)),
        Some(d) => match d.state {
            State::In => "up ready\n".to_string(),
            State::Out => format!("down ready #{}\n", d.detail),
            State::Maintenance => format!("maint #{}\n", d.detail),
        },
    }
}

/// A name echoed back, cut short and stripped of anything but plain characters.
fn printable(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn answers_name_the_state() {
        let config = crate::config::parse(
            "t.toml",
            "[[cluster]]\nname = \"c\"\nprimary = \"h1\"\nreplicas = { r1 = \"h2\" }\n[http]\n",
        )
        .unwrap();
        let live: Shared = Arc::new(Mutex::new(live::Live::new(
            &config,
            config.http.as_ref().unwrap(),
            0,
        )));
        assert_eq!(
            reply(&live, "r1", 0),
            "down ready #no lag measured or no status polled yet\n"
        );
        assert_eq!(
            reply(&live, "r\u{7}x\"", 0),
            "down #unknown replica r?x\"\n"
        );
    }
}
