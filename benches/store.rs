//! Store benchmark: append rate, scan/decode rate and bytes per observation for a
//! synthetic hour at 10 Hz and at 100 Hz (one cluster, one replica). Prints figures;
//! asserts nothing (the machines are shared and noisy).
//!
//!     cargo bench --bench store

use std::path::PathBuf;
use std::time::Instant;

use lagtrace::samples::{Beat, Observation, Outcome, Sample};
use lagtrace::store::scan::{self, Filter};
use lagtrace::store::writer::Appender;
use lagtrace::store::{SessionInfo, Store, cluster_key, replica_key};

/// Deterministic jitter, so runs are comparable.
struct Jitter(lagtrace::xorshift::XorShift);

impl Jitter {
    fn next(&mut self, max: i64) -> i64 {
        self.0.below(max as u64) as i64
    }
}

/// One hour of beats and observations at `hz`, as a recorder on loopback sees them:
/// sends on a grid with up to 100 µs of scheduling jitter, 200-600 µs writes, reads
/// right after each acknowledgement taking 150-450 µs.
fn synthetic_hours(hours: i64, hz: i64, cluster: u32, replica: u32) -> Vec<Sample> {
    let step = 1_000_000 / hz;
    let n = hours * 3600 * hz;
    let t0 = 1_795_000_000_000_000i64;
    let mut j = Jitter(lagtrace::xorshift::XorShift::new(0x9e37_79b9_7f4a_7c15));
    let mut out = Vec::with_capacity(2 * n as usize);
    for i in 0..n {
        let send = t0 + i * step + j.next(100);
        let ack = send + 200 + j.next(400);
        let seq = t0 as u64 + i as u64;
        out.push(Sample::Beat {
            cluster,
            beat: Beat {
                seq,
                t_send_us: send,
                t_done_us: ack,
                outcome: Outcome::Ok,
                reason: None,
            },
        });
        let r_start = ack + 20 + j.next(60);
        out.push(Sample::Observation {
            replica,
            observation: Observation {
                r_start_us: r_start,
                r_end_us: r_start + 150 + j.next(300),
                seq: Some(seq),
                outcome: Outcome::Ok,
                reason: None,
                follow_up: false,
                probe: Default::default(),
            },
        });
    }
    out
}

fn temp_store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lagtrace-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

fn run(hours: i64, hz: i64) {
    let path = temp_store(&format!("hour-{hz}hz.redb"));
    let store = Store::open_or_create(&path).unwrap();
    let ids = store
        .intern(&[cluster_key("bench"), replica_key("bench", "r1")])
        .unwrap();
    let session = store
        .begin_session(&SessionInfo {
            started_us: 0,
            interval_us: (1_000_000 / hz) as u64,
            version: "bench".into(),
            host: "bench".into(),
            read_every: 1,
        })
        .unwrap();
    let samples = synthetic_hours(hours, hz, ids[0], ids[1]);
    let count = samples.len();
    let observations = count / 2;

    // Append as the recorder does: one flush (write transaction) per second of data.
    let per_second = 2 * hz as usize;
    let started = Instant::now();
    let mut appender = Appender::new(store, session);
    let mut it = samples.into_iter().peekable();
    while it.peek().is_some() {
        for s in it.by_ref().take(per_second) {
            appender.add(s);
        }
        appender.flush().unwrap();
    }
    let stats = appender.finish().unwrap();
    let append_s = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path).unwrap().len();
    let payload = chunk_bytes(&path);

    let started = Instant::now();
    let rec = scan::load(std::slice::from_ref(&path), &Filter::default()).unwrap();
    // Beats and observations are decoded as they are walked: walk them all.
    let decoded: usize = beats_in(&rec) + observations_in(&rec);
    let scan_s = started.elapsed().as_secs_f64();
    assert_eq!(decoded, count, "every sample read back");

    println!(
        "store {hz:>3} Hz, {hours} h: {count} samples ({observations} observations + as many beats), \
         {} flushes, {} chunk writes",
        stats.flushes, stats.chunks_written
    );
    println!(
        "  append {:>10.0} samples/s ({append_s:.2} s)   scan+decode {:>10.0} samples/s ({scan_s:.3} s)",
        count as f64 / append_s,
        decoded as f64 / scan_s
    );
    println!("  (the file is compacted when the session ends, as record does)");
    println!(
        "  chunks {payload} bytes = {:.2} bytes per sample; file {bytes} bytes = {:.2} bytes per sample (an observation or a beat)",
        payload as f64 / count as f64,
        bytes as f64 / count as f64,
    );
    let _ = std::fs::remove_file(&path);
}

/// Sum of the stored chunk values: what the codec costs, without redb's page overhead.
fn chunk_bytes(path: &std::path::Path) -> u64 {
    use redb::{ReadableDatabase, ReadableTable};
    let (db, _) = lagtrace::store::open_read(path).unwrap();
    let tx = db.begin_read().unwrap();
    let table = tx.open_table(lagtrace::store::CHUNKS).unwrap();
    table
        .iter()
        .unwrap()
        .map(|e| e.unwrap().1.value().len() as u64)
        .sum()
}

/// Decodes every observation of a recording; how many there are.
fn observations_in(rec: &scan::Recording) -> usize {
    let mut n = 0;
    for r in &rec.replicas {
        r.observations
            .for_each(|_, _| {
                n += 1;
                Ok::<(), lagtrace::store::StoreError>(())
            })
            .unwrap();
    }
    n
}

/// Decodes every beat of a recording; how many there are.
fn beats_in(rec: &scan::Recording) -> usize {
    let mut n = 0;
    for beats in rec.beats.values() {
        let mut reader = beats.reader();
        let (mut batch, mut failed) = (Vec::new(), Vec::new());
        while reader.fill(&mut batch, &mut failed).unwrap() {
            n += batch.len();
            batch.clear();
        }
    }
    n
}

/// Bytes per sample of each series kind in an existing store (`LAGTRACE_BENCH_STORE`).
fn report_store(path: &std::path::Path) {
    use redb::{ReadableDatabase, ReadableTable};
    let rec = scan::load(&[path.to_path_buf()], &Filter::default()).unwrap();
    let beats = beats_in(&rec);
    let obs = observations_in(&rec);
    let status: usize = rec.replicas.iter().map(|r| r.status.iter().count()).sum();
    let (db, _) = lagtrace::store::open_read(path).unwrap();
    let tx = db.begin_read().unwrap();
    let table = tx.open_table(lagtrace::store::CHUNKS).unwrap();
    let mut bytes = [0u64; 4];
    for e in table.iter().unwrap() {
        let (k, v) = e.unwrap();
        bytes[k.value().0 as usize] += v.value().len() as u64;
        if k.value().0 != 3 && std::env::var_os("LAGTRACE_BENCH_VERBOSE").is_some() {
            let c = lagtrace::store::codec::SpanChunk::from_bytes(v.value()).unwrap();
            println!(
                "  kind {} n {} step_ns {} dur {} k {:?} bits {} notes {}",
                k.value().0,
                c.count,
                c.step_ns,
                c.dur_us,
                c.k,
                c.bits.len(),
                c.notes.len()
            );
        }
    }
    let file = std::fs::metadata(path).unwrap().len();
    println!("{}: file {file} bytes", path.display());
    for (name, kind, n) in [
        ("beats", 1, beats),
        ("observations", 2, obs),
        ("status samples", 3, status),
    ] {
        println!(
            "  {n} {name}: {} chunk bytes = {:.2} bytes each",
            bytes[kind],
            bytes[kind] as f64 / n.max(1) as f64
        );
    }
}

fn main() {
    if let Some(path) = std::env::var_os("LAGTRACE_BENCH_STORE") {
        report_store(std::path::Path::new(&path));
        return;
    }
    // `cargo bench` passes --bench; `cargo test --benches` runs a smoke version.
    if std::env::args().any(|a| a == "--bench") {
        let hours = std::env::var("LAGTRACE_BENCH_HOURS")
            .ok()
            .and_then(|h| h.parse().ok())
            .unwrap_or(1);
        let rates: Vec<i64> = std::env::var("LAGTRACE_BENCH_HZ")
            .ok()
            .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![10, 100]);
        for hz in rates {
            run(hours, hz);
        }
    } else {
        run(1, 1);
    }
}
