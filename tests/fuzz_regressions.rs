//! The decoders and the config parser on damaged input, on the stable toolchain: every
//! input kept under testdata/fuzz/<target>/ (crashes cargo-fuzz found, `make fuzz`),
//! then a few hundred thousand mutations of real chunks (bits flipped, bytes cut,
//! bytes inserted). Each must give a value or an error, never a panic.

use std::path::PathBuf;

use lagtrace::samples::{ChannelStatus, IoState, Outcome, PgFigures, StatusSample};
use lagtrace::store::codec::{
    Span, SpanChunk, decode_spans_each, encode_spans, status_from_bytes, status_to_bytes,
};
use lagtrace::xorshift::XorShift;

fn span_chunk(data: &[u8]) {
    if let Ok(chunk) = SpanChunk::from_bytes(data) {
        let mut n = 0u64;
        let _ = decode_spans_each(&chunk, |_| n += 1);
    }
}

fn status_chunk(data: &[u8]) {
    let _ = status_from_bytes(data);
}

fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lagtrace::config::parse("fuzz.toml", text);
    }
}

fn session(data: &[u8]) {
    let _ = lagtrace::store::SessionInfo::from_bytes(data);
}

/// A fuzz target's name and the code it runs on one input.
type Target = (&'static str, fn(&[u8]));

/// The inputs kept for `target`.
fn kept(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/fuzz")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

#[test]
fn kept_fuzz_inputs_decode_or_fail_cleanly() {
    let targets: [Target; 4] = [
        ("span_chunk", span_chunk),
        ("status_chunk", status_chunk),
        ("config", config),
        ("session", session),
    ];
    for (target, run) in targets {
        for (path, bytes) in kept(target) {
            eprintln!("{target}: {}", path.display());
            run(&bytes);
        }
    }
}

/// One mutation of `bytes`: a bit flipped, a tail cut, or bytes inserted.
fn mutate(x: &mut XorShift, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..=x.below(3) {
        match x.below(4) {
            0 | 1 if !b.is_empty() => {
                let i = x.below(b.len() as u64) as usize;
                b[i] ^= 1 << x.below(8);
            }
            2 if !b.is_empty() => b.truncate(x.below(b.len() as u64) as usize),
            _ => {
                let i = x.below(b.len() as u64 + 1) as usize;
                b.insert(i, x.next_u64() as u8);
            }
        }
    }
    b
}

#[test]
fn mutated_chunks_decode_or_fail_cleanly() {
    let mut x = XorShift::new(0xF022);
    // Reads every 10 ms with jitter, a few failed and a few follow-ups.
    let spans: Vec<Span> = (0..600i64)
        .map(|k| {
            let start = 1_000_000 + k * 10_000 + x.below(500) as i64;
            let failed = k % 97 == 5;
            Span {
                start_us: start,
                end_us: start + 200 + x.below(300) as i64,
                seq: 100 + k as u64,
                outcome: if failed {
                    Outcome::Timeout
                } else {
                    Outcome::Ok
                },
                reason: failed.then(|| "timed out".to_string()),
                follow_up: k % 13 == 7,
                probe: Default::default(),
            }
        })
        .collect();
    let spans = encode_spans(&spans).to_bytes().unwrap();
    let status: Vec<StatusSample> = (0..60i64)
        .map(|k| StatusSample {
            // Every third sample a PostgreSQL standby's figures, so that mutations
            // reach the trailers after the chunk too.
            postgres: (k % 3 == 0).then_some(PgFigures {
                replay_commit_us: Some(1_700_000_000_000_000 + k * 1_000_000 - 700),
                write_lag_us: Some(100 + k),
                flush_lag_us: None,
                replay_lag_us: Some(900),
                min_apply_delay_ms: (k % 2 == 0).then_some(1_200),
            }),
            t_us: 1_000_000 + k * 1_000_000,
            duration_us: 400,
            outcome: Outcome::Ok,
            reason: None,
            channels: vec![ChannelStatus {
                channel: String::new(),
                source: "127.0.0.1:13306".into(),
                io: if k % 17 == 3 {
                    IoState::Connecting
                } else {
                    IoState::Yes
                },
                sql_running: k % 11 != 4,
                seconds_behind_master: Some(k as u32 % 3),
                sql_delay_s: 0,
                last_io_errno: 0,
                last_io_error: String::new(),
                last_sql_errno: if k % 11 == 4 { 1062 } else { 0 },
                last_sql_error: String::new(),
                gtid_io_pos: format!("0-1-{}", k * 20),
                gtid_applied_pos: format!("0-1-{}", k * 19),
                relay_log_space: 4096,
                sql_applying: Some(k % 2 == 0),
            }],
        })
        .collect();
    let status = status_to_bytes(&status).unwrap();
    let example =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lagtrace.example.toml"))
            .unwrap();
    for _ in 0..100_000 {
        span_chunk(&mutate(&mut x, &spans));
    }
    for _ in 0..50_000 {
        status_chunk(&mutate(&mut x, &status));
    }
    for _ in 0..20_000 {
        config(&mutate(&mut x, &example));
    }
}
