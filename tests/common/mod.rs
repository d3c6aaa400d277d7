//! Helpers shared by the integration tests: the compiled binary, the lab, temp dirs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The lab's lagtrace password (scripts/lab.sh).
pub const LAB_PASSWORD: &str = "lagtrace-lab";

/// The compiled `lagtrace` binary, with a clean environment for passwords.
pub fn lagtrace() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lagtrace"));
    c.env_remove("LAGTRACE_PASSWORD").env_remove("RUST_LOG");
    c
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts the lab unless it runs already. Fails the test (never skips) when it cannot.
pub fn ensure_lab() {
    static UP: OnceLock<Result<(), String>> = OnceLock::new();
    let result = UP.get_or_init(|| {
        let out = Command::new(repo_root().join("scripts/lab.sh"))
            .arg("up")
            .output()
            .map_err(|e| format!("cannot run scripts/lab.sh: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "scripts/lab.sh up failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = result {
        panic!("the lab is needed for this test and did not start: {e}");
    }
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("lagtrace-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// Writes a file in the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Text of stdout and stderr.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config for the lab with one cluster of the given name, primary and replicas,
/// the password taken from `password_env`.
pub fn lab_config(
    cluster: &str,
    primary: &str,
    replicas: &[(&str, &str)],
    password_env: &str,
) -> String {
    let replicas: Vec<String> = replicas
        .iter()
        .map(|(n, a)| format!("{n} = \"{a}\""))
        .collect();
    format!(
        "[connection]\nuser = \"lagtrace\"\npassword_env = \"{password_env}\"\nconnect_timeout = \"2s\"\n\n\
         [[cluster]]\nname = \"{cluster}\"\nprimary = \"{primary}\"\nreplicas = {{ {} }}\n",
        replicas.join(", ")
    )
}
