//! Bad store files through the real binary: one clear line, exit 2, file untouched.

mod common;

use common::{TempDir, lagtrace, texts};

const CONFIG: &str = "[connection]\npassword_env = \"LAGTRACE_IT_PASSWORD\"\n\
    [[cluster]]\nname = \"x\"\nprimary = \"127.0.0.1:13399\"\nreplicas = { y = \"127.0.0.1:13398\" }\n";

#[test]
fn record_refuses_a_file_that_is_not_a_store_and_leaves_it_alone() {
    let dir = TempDir::new("store-foreign");
    let config = dir.write("lagtrace.toml", CONFIG);
    let victim = dir.write("notes.redb", &"important notes\n".repeat(500));
    let before = std::fs::read(&victim).unwrap();
    let out = lagtrace()
        .args(["record", "--duration", "1s", "-c"])
        .arg(&config)
        .arg("--store")
        .arg(&victim)
        .env("LAGTRACE_IT_PASSWORD", "x")
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("notes.redb: not a lagtrace store"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), before);
}

#[test]
fn export_of_missing_or_foreign_files_is_one_line_exit_2() {
    let dir = TempDir::new("store-export");
    let out = lagtrace()
        .args(["export", "--store"])
        .arg(dir.path().join("absent.redb"))
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr
            .trim_end()
            .ends_with("absent.redb: no such store file"),
        "{stderr}"
    );

    let foreign = dir.write("x.redb", "not a store");
    let out = lagtrace()
        .args(["export", "--store"])
        .arg(&foreign)
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("not a lagtrace store"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "not a store");
}

#[test]
fn export_rejects_bad_times() {
    let dir = TempDir::new("store-args");
    let out = lagtrace()
        .args(["export", "--store", "x.redb", "--from", "last tuesday"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("--from: bad time \"last tuesday\""),
        "{stderr}"
    );
}
