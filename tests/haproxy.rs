//! A real HAProxy (Debian package `haproxy`, installed by `make test`) checking the lab's
//! replicas through the recorder: one backend by agent-check, one by httpchk, both with
//! `inter 200ms fall 2 rise 1`. Server states are read from HAProxy's stats socket, as
//! an operator would.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// HAProxy running in the foreground, killed when dropped.
struct Haproxy {
    child: Child,
    socket: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    fn start(dir: &TempDir, http_port: u16, agent_port: u16) -> Haproxy {
        let socket = dir.path().join("haproxy.sock");
        let front = free_port();
        let server = |name: &str, addr: &str| {
            format!(
                "    server {name} {addr} check inter 200ms fall 2 rise 1 agent-check \
                 agent-addr 127.0.0.1 agent-port {agent_port} agent-send \"{name}\\n\" agent-inter 200ms\n"
            )
        };
        let mut cfg = format!(
            "global\n    stats socket {} mode 600 level admin\n\
             defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 10s\n    \
             timeout server 10s\n    timeout check 1s\n\
             frontend fe_reads\n    bind 127.0.0.1:{front}\n    default_backend be_agent\n\
             backend be_agent\n",
            socket.display()
        );
        for (name, addr) in REPLICAS {
            cfg.push_str(&server(name, addr));
        }
        // httpchk: one backend per replica, as the check's URL names the replica.
        for (name, addr) in REPLICAS {
            cfg.push_str(&format!(
                "backend be_http_{name}\n    option httpchk GET /check/{name}\n    \
                 http-check disable-on-404\n    \
                 server {name} {addr} check port {http_port} inter 200ms fall 2 rise 1\n"
            ));
        }
        let path = dir.write("haproxy.cfg", &cfg);
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run haproxy ({e}): `make test` installs it (Debian package haproxy)")
            });
        let h = Haproxy { child, socket };
        let start = Instant::now();
        while h.states().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "haproxy did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        h
    }

    /// `show stat` from the stats socket: (backend, server) -> status (`UP`, `DOWN`,
    /// `DOWN (agent)`, `MAINT`, `NOLB`, ...).
    fn states(&self) -> Option<HashMap<(String, String), String>> {
        let mut s = UnixStream::connect(&self.socket).ok()?;
        s.write_all(b"show stat\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (px, sv, st) = (col("pxname")?, col("svname")?, col("status")?);
        Some(
            lines
                .map(|l| l.split(',').collect::<Vec<_>>())
                .filter(|f| f.len() > st)
                .map(|f| ((f[px].to_string(), f[sv].to_string()), f[st].to_string()))
                .collect(),
        )
    }

    fn state(&self, backend: &str, server: &str) -> String {
        self.states()
            .and_then(|m| m.get(&(backend.to_string(), server.to_string())).cloned())
            .unwrap_or_default()
    }

    /// Polls every 20 ms until `backend/server`'s status satisfies `want`; the time it
    /// took, or a failed test naming the last status.
    fn wait(
        &self,
        backend: &str,
        server: &str,
        limit: Duration,
        want: fn(&str) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let s = self.state(backend, server);
            if want(&s) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{backend}/{server} is {s:?} after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn up(s: &str) -> bool {
    s == "UP"
}

fn down(s: &str) -> bool {
    s.starts_with("DOWN")
}

#[test]
fn haproxy_takes_a_stalled_replica_out_and_back_and_honours_maintenance() {
    let _lab = take_lab();
    let dir = TempDir::new("haproxy");
    let (port, agent_port) = (free_port(), free_port());
    let config = live_config(&dir, "it_haproxy", port, agent_port);
    let _rec = Recorder::start(&config);
    let h = Haproxy::start(&dir, port, agent_port);
    let limit = Duration::from_secs(15);
    for (name, _) in REPLICAS {
        h.wait("be_agent", name, limit, up);
        h.wait(&format!("be_http_{name}"), name, limit, up);
    }

    // Stall r1: both backends mark it DOWN within max_lag + 1 s; r2 stays UP.
    let _restore = Restore(vec!["resume"], &[]);
    let max = Duration::from_secs(2);
    let t0 = Instant::now();
    lab(&["stall"], &[]);
    h.wait("be_agent", "r1", max, down);
    let by_agent = t0.elapsed();
    h.wait("be_http_r1", "r1", max, down);
    let by_http = t0.elapsed();
    eprintln!("stall -> DOWN: agent-check {by_agent:?}, httpchk {by_http:?}");
    assert!(
        by_agent <= max && by_http <= max,
        "{by_agent:?} {by_http:?}"
    );
    assert!(up(&h.state("be_agent", "r2")), "r2 should stay UP");

    lab(&["resume"], &[]);
    let t1 = Instant::now();
    h.wait("be_agent", "r1", Duration::from_secs(5), up);
    h.wait("be_http_r1", "r1", Duration::from_secs(5), up);
    eprintln!("resume -> UP: {:?}", t1.elapsed());

    // Maintenance file: MAINT through the agent, NOLB (drain) through httpchk's 404.
    let file = dir.path().join("maintenance").join("r1");
    std::fs::write(&file, "").unwrap();
    h.wait("be_agent", "r1", max, |s| s.starts_with("MAINT"));
    h.wait("be_http_r1", "r1", max, |s| s == "NOLB");
    std::fs::remove_file(&file).unwrap();
    h.wait("be_agent", "r1", max, up);
    h.wait("be_http_r1", "r1", max, up);
    assert!(up(&h.state("be_agent", "r2")));
}
