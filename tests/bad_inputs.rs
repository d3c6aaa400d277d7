//! Bad input of every kind through the real binary (arguments, the environment a
//! password comes from, store files): one line on stderr saying what is wrong, exit 2
//! (3 for `check`, a monitoring plugin), never a panic, and a store file never
//! rewritten. Bad config files are in testdata/bad/ (tests/config_errors.rs).

mod common;

use std::path::{Path, PathBuf};

use common::{TempDir, lagtrace, texts};

/// A cluster on loopback ports where nothing listens: commands that get as far as
/// connecting fail there, which these cases never reach.
const CONFIG: &str = "[connection]\npassword_env = \"LAGTRACE_IT_PASSWORD\"\n\
    [[cluster]]\nname = \"x\"\nprimary = \"127.0.0.1:13399\"\nreplicas = { y = \"127.0.0.1:13398\" }\n";

/// One bad input: the arguments (`{dir}` stands for the scratch directory), extra
/// environment, the exit code and a text the one stderr line must contain.
struct Case {
    args: &'static str,
    env: &'static [(&'static str, &'static str)],
    code: i32,
    expect: &'static str,
}

const fn case(args: &'static str, code: i32, expect: &'static str) -> Case {
    Case {
        args,
        env: &[],
        code,
        expect,
    }
}

const fn with_env(
    args: &'static str,
    env: &'static [(&'static str, &'static str)],
    expect: &'static str,
) -> Case {
    Case {
        args,
        env,
        code: 2,
        expect,
    }
}

const CASES: &[Case] = &[
    // Store files.
    case(
        "analyze --store {dir}/empty.redb",
        2,
        "empty.redb: not a lagtrace store (not a redb file)",
    ),
    case(
        "export --store {dir}/notes.redb",
        2,
        "notes.redb: not a lagtrace store",
    ),
    case(
        "plot --store {dir}/other.redb --out {dir}/x.svg",
        2,
        "other.redb: not a lagtrace store",
    ),
    case(
        "replay --store {dir}/newer.redb",
        2,
        "store format version 99 is newer than this lagtrace reads",
    ),
    case(
        "analyze --store {dir}/truncated.redb",
        2,
        "truncated.redb: corrupt store: the file is truncated",
    ),
    case(
        "prune --store {dir}/truncated.redb --older-than 1d",
        2,
        "corrupt store: the file is truncated",
    ),
    case(
        "analyze --store {dir}",
        2,
        "not a lagtrace store (it is a directory)",
    ),
    case(
        "export --store {dir}/absent.redb",
        2,
        "absent.redb: no such store file",
    ),
    case(
        "analyze --store {dir}/good.redb --store {dir}/notes.redb",
        2,
        "notes.redb: not a lagtrace store",
    ),
    // Arguments.
    case("analyze", 2, "not provided: --store <FILE>"),
    case(
        "plot --store {dir}/good.redb",
        2,
        "not provided: --out <FILE.svg>",
    ),
    case(
        "analyze --store {dir}/good.redb --from yesterday",
        2,
        "--from: bad time \"yesterday\"",
    ),
    case(
        "analyze --store {dir}/good.redb --to 2026-13-01T00:00:00Z",
        2,
        "--to: bad time",
    ),
    case(
        "export --store {dir}/good.redb --from 2026-11-30T00:00:00Z --to 2026-11-29T00:00:00Z",
        2,
        "--from (2026-11-30T00:00:00.000000Z) is after --to",
    ),
    case(
        "export --store {dir}/good.redb --format xml",
        2,
        "invalid value 'xml' for '--format",
    ),
    case(
        "analyze --store {dir}/good.redb --window 0s",
        2,
        "--window must be at least 10ms",
    ),
    case(
        "analyze --store {dir}/good.redb --max-lag 0s",
        2,
        "--max-lag must be above 0",
    ),
    case(
        "prune --store {dir}/good.redb --older-than 0s",
        2,
        "--older-than: 0s is out of range",
    ),
    case(
        "prune --store {dir}/good.redb",
        2,
        "not provided: --older-than",
    ),
    case(
        "record -c {dir}/lagtrace.toml --interval 0s",
        2,
        "--interval: 0s is out of range",
    ),
    case(
        "record -c {dir}/lagtrace.toml --flush 0s",
        2,
        "--flush: 0s is out of range",
    ),
    case(
        "record -c {dir}/lagtrace.toml --duration forever",
        2,
        "bad duration \"forever\"",
    ),
    case("record -c {dir}/lagtrace.toml --retain 1s", 2, "--retain"),
    case(
        "check -c {dir}/lagtrace.toml --warn 5s --crit 1s",
        3,
        "--warn (5s) must not be above --crit (1s)",
    ),
    case(
        "check -c {dir}/lagtrace.toml --bogus",
        3,
        "unexpected argument '--bogus'",
    ),
    case(
        "-v check -c {dir}/lagtrace.toml --bogus",
        3,
        "unexpected argument '--bogus'",
    ),
    case(
        "--log-format yaml analyze --store {dir}/good.redb",
        2,
        "invalid value 'yaml' for '--log-format",
    ),
    case("init -c {dir}", 2, "cannot read config: is a directory"),
    case(
        "init -c {dir}/binary.toml",
        2,
        "cannot read config: stream did not contain valid utf-8",
    ),
    case("init -c {dir}/empty.toml", 2, "no [[cluster]] defined"),
    // Where the password comes from.
    with_env(
        "init -c {dir}/lagtrace.toml",
        &[("LAGTRACE_IT_PASSWORD", "")],
        "LAGTRACE_IT_PASSWORD",
    ),
    with_env("init -c {dir}/pwfile-dir.toml", &[], "password"),
    with_env("init -c {dir}/pwfile-empty.toml", &[], "password"),
    with_env(
        "init -c {dir}/mycnf.toml",
        &[("HOME", "{dir}/home-bad")],
        ".my.cnf",
    ),
    with_env(
        "init -c {dir}/mycnf.toml",
        &[("HOME", "{dir}/home-nopw")],
        ".my.cnf",
    ),
];

/// The files the cases name, in `dir`.
fn files(dir: &TempDir) {
    let d = dir.path();
    let config = dir.write("lagtrace.toml", CONFIG);
    // A real store: a second of a recorder whose servers refuse connections.
    let good = d.join("good.redb");
    let out = lagtrace()
        .args(["record", "--quiet", "--duration", "1s", "-c"])
        .arg(&config)
        .arg("--store")
        .arg(&good)
        .env("LAGTRACE_IT_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", texts(&out));
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(d.join("truncated.redb"), &bytes[..4096]).unwrap();
    std::fs::write(d.join("empty.redb"), b"").unwrap();
    dir.write("notes.redb", &"important notes\n".repeat(500));
    // A redb database of some other program, and a lagtrace store from the future.
    {
        let db = redb::Database::create(d.join("other.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(redb::TableDefinition::<u64, u64>::new("accounts"))
            .unwrap()
            .insert(1, 2)
            .unwrap();
        tx.commit().unwrap();
    }
    std::fs::copy(&good, d.join("newer.redb")).unwrap();
    {
        let db = redb::Database::open(d.join("newer.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(lagtrace::store::META)
            .unwrap()
            .insert("format_version", 99u32.to_le_bytes().as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    // One bit flipped in the middle of an observation chunk.
    use redb::ReadableTable;
    std::fs::copy(&good, d.join("flipped.redb")).unwrap();
    {
        let db = redb::Database::open(d.join("flipped.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(lagtrace::store::CHUNKS).unwrap();
            let key = table
                .iter()
                .unwrap()
                .map(|e| e.unwrap().0.value())
                .find(|k| k.0 == lagtrace::store::KIND_OBSERVATIONS)
                .unwrap();
            let mut value = table.get(key).unwrap().unwrap().value().to_vec();
            let middle = value.len() / 2;
            value[middle] ^= 0x04;
            table.insert(key, value.as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }
    std::fs::write(d.join("binary.toml"), (0u8..=255).collect::<Vec<u8>>()).unwrap();
    dir.write("empty.toml", "");
    let cluster = "[[cluster]]\nname = \"x\"\nprimary = \"127.0.0.1:13399\"\nreplicas = { y = \"127.0.0.1:13398\" }\n";
    std::fs::create_dir_all(d.join("pw-dir")).unwrap();
    dir.write(
        "pwfile-dir.toml",
        &format!(
            "[connection]\npassword_file = \"{}/pw-dir\"\n{cluster}",
            d.display()
        ),
    );
    dir.write("pw-empty", "");
    dir.write(
        "pwfile-empty.toml",
        &format!(
            "[connection]\npassword_file = \"{}/pw-empty\"\n{cluster}",
            d.display()
        ),
    );
    dir.write("mycnf.toml", cluster);
    for (home, cnf) in [
        ("home-bad", "[client\npassword=\"unclosed\n"),
        ("home-nopw", "[client]\nuser = lagtrace\n"),
    ] {
        std::fs::create_dir_all(d.join(home)).unwrap();
        std::fs::write(d.join(home).join(".my.cnf"), cnf).unwrap();
    }
}

/// Every file in `dir` with its bytes, to see that no case wrote to any.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_bad_input_gives_one_clear_line_and_the_right_exit_code() {
    let dir = TempDir::new("bad-inputs");
    files(&dir);
    let before = snapshot(dir.path());
    let d = dir.path().display().to_string();
    let mut failures = Vec::new();
    for c in CASES {
        let args: Vec<String> = c
            .args
            .split_whitespace()
            .map(|a| a.replace("{dir}", &d))
            .collect();
        let mut cmd = lagtrace();
        cmd.args(&args).env("HOME", dir.path().join("no-home"));
        for (k, v) in c.env {
            cmd.env(k, v.replace("{dir}", &d));
        }
        let out = cmd.output().unwrap();
        let (stdout, stderr) = texts(&out);
        let line = stderr.trim_end();
        let ok = out.status.code() == Some(c.code)
            && stderr.lines().count() == 1
            && line.starts_with("lagtrace: ")
            && line.contains(c.expect)
            && !stderr.contains("panicked")
            && (c.code == 3 || stdout.is_empty());
        if !ok {
            failures.push(format!(
                "{}: exit {:?}, stderr {stderr:?}, stdout {stdout:?} (expected exit {} and {:?})",
                c.args,
                out.status.code(),
                c.code,
                c.expect
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(snapshot(dir.path()), before, "a bad input changed a file");
    assert!(CASES.len() >= 30);
}
