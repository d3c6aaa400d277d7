//! One file per subcommand, each with its `Args` (the command line it takes, parsed by
//! clap) and a `run()` that loads what it needs, calls the step modules (probe, store,
//! analysis, output) and prints. `main.rs` only dispatches and maps a [`CmdError`] to an
//! exit code.

pub mod analyze;
pub mod check;
pub mod export;
pub mod init;
pub mod plot;
pub mod prune;
pub mod record;
pub mod replay;
pub mod wait;

use std::path::PathBuf;
use std::time::Duration;

/// Which stores and which part of them an offline command reads.
#[derive(Debug, Clone, clap::Args)]
pub struct Selection {
    /// Store file(s) to read; several are merged by time
    #[arg(long, value_name = "FILE", required = true)]
    pub store: Vec<PathBuf>,
    /// Only this replica (repeatable)
    #[arg(long, value_name = "NAME")]
    pub replica: Vec<String>,
    /// Only this cluster (repeatable)
    #[arg(long, value_name = "NAME")]
    pub cluster: Vec<String>,
    /// Start time: RFC 3339 (2026-11-22T02:00:00Z) or relative (-2h)
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End time, same forms as --from
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub to: Option<String>,
    /// Read around chunks whose checksum fails (a flipped bit on disk), with a warning
    /// naming each hole, instead of stopping with exit 2 at the first
    #[arg(long)]
    pub skip_corrupt: bool,
}

impl Selection {
    /// The scan filter, with `--from`/`--to` resolved against the clock now.
    pub fn filter(&self) -> Result<crate::store::scan::Filter, CmdError> {
        let now = crate::clock::Clock::start().now_us();
        let parse = |flag: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| crate::clock::parse_time(t, now))
                .transpose()
                .map_err(|e| CmdError::BadInput(format!("{flag}: {e}")))
        };
        let (from_us, to_us) = (parse("--from", &self.from)?, parse("--to", &self.to)?);
        if let (Some(from), Some(to)) = (from_us, to_us)
            && from > to
        {
            return Err(CmdError::BadInput(format!(
                "--from ({}) is after --to ({})",
                crate::clock::format_utc_us(from),
                crate::clock::format_utc_us(to)
            )));
        }
        Ok(crate::store::scan::Filter {
            clusters: self.cluster.clone(),
            replicas: self.replica.clone(),
            from_us,
            to_us,
            skip_corrupt: self.skip_corrupt,
        })
    }
}

/// Episode thresholds and the vector window, for `analyze` and `plot`.
#[derive(Debug, Clone, clap::Args)]
pub struct EpisodeArgs {
    /// An episode starts when lag exceeds this
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::config::parse_duration)]
    pub max_lag: Duration,
    /// ... and ends when lag falls under this
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = crate::config::parse_duration)]
    pub recover_lag: Duration,
    /// Least-squares window of the vector
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::config::parse_duration)]
    pub window: Duration,
}

impl EpisodeArgs {
    /// `(max_lag_us, recover_lag_us, window_us)`, checked: recover under max, a
    /// window of at least 10 ms.
    pub fn checked_us(&self) -> Result<(i64, i64, i64), CmdError> {
        let (max, recover, window) = (us(self.max_lag), us(self.recover_lag), us(self.window));
        analyze::check_thresholds(max, recover)?;
        analyze::check_window(window)?;
        Ok((max, recover, window))
    }
}

pub use crate::clock::duration_us as us;

/// How a command failed; its kind decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// Bad arguments or files: exit 2.
    #[error("{0}")]
    BadInput(String),
    /// Something failed while working (a server, the disk): exit 1.
    #[error("{0}")]
    Runtime(String),
    /// A bad config file: exit 2.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A store that could not be read or written: exit 2 when the file is at fault
    /// ([`crate::store::StoreError::is_bad_file`]), else 1.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A cluster given as `nodes` whose topology could not be told: exit 1.
    #[error(transparent)]
    Topology(#[from] crate::probe::topology::TopologyError),
    /// The live listeners could not start (a port in use): exit 1.
    #[error(transparent)]
    Listen(#[from] crate::output::http::ListenError),
    /// statsd could not be set up: exit 1.
    #[error(transparent)]
    Statsd(#[from] crate::output::statsd::StatsdError),
}

impl CmdError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CmdError::BadInput(_) | CmdError::Config(_) => 2,
            CmdError::Store(e) if e.is_bad_file() => 2,
            CmdError::Runtime(_)
            | CmdError::Store(_)
            | CmdError::Topology(_)
            | CmdError::Listen(_)
            | CmdError::Statsd(_) => 1,
        }
    }
}

/// The runtime probes run on ([`crate::probe::runtime`]).
pub fn runtime() -> Result<tokio::runtime::Runtime, CmdError> {
    crate::probe::runtime()
        .map_err(|e| CmdError::Runtime(format!("cannot start the async runtime: {e}")))
}

/// Loads the config and resolves the password from the real environment.
pub fn load_config(
    path: &std::path::Path,
    overrides: &crate::config::Overrides,
) -> Result<(crate::config::Config, crate::config::Secret), CmdError> {
    let config = crate::config::load_with(path, overrides)?;
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let password = crate::config::resolve_password(&config.connection, home.as_deref(), |v| {
        std::env::var(v).ok()
    })
    .map_err(|m| CmdError::BadInput(format!("{}: {m}", path.display())))?;
    let mut config = config;
    discover_topology(&mut config, &password)?;
    Ok((config, password))
}

/// Asks the servers of every cluster given as `nodes` which is the primary and which
/// replicate from it (`probe::topology`), before a command connects for its own work.
fn discover_topology(
    config: &mut crate::config::Config,
    password: &crate::config::Secret,
) -> Result<(), CmdError> {
    if config.clusters.iter().all(|c| c.nodes.is_empty()) {
        return Ok(());
    }
    let runtime = runtime()?;
    let settings = config.connection.clone();
    runtime.block_on(async {
        for cluster in &mut config.clusters {
            crate::probe::topology::discover(cluster, &settings, password).await?;
        }
        Ok(())
    })
}

/// Every replica and cluster named in `filter` is in the loaded recording; otherwise a
/// bad-input error naming it (a typo should not look like an empty recording).
pub fn check_names(
    rec: &crate::store::scan::Recording,
    filter: &crate::store::scan::Filter,
    stores: &[std::path::PathBuf],
) -> Result<(), CmdError> {
    let files = || {
        stores
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for name in &filter.replicas {
        if !rec.replicas.iter().any(|r| &r.replica == name) {
            return Err(CmdError::BadInput(format!(
                "no replica named {name:?} in {} (with these filters)",
                files()
            )));
        }
    }
    for name in &filter.clusters {
        if !rec.replicas.iter().any(|r| &r.cluster == name) && !rec.beats.contains_key(name) {
            return Err(CmdError::BadInput(format!(
                "no cluster named {name:?} in {}",
                files()
            )));
        }
    }
    Ok(())
}

/// A progress bar on stderr (on a terminal only) over the chunks of a recording, kept
/// up to date by a thread while the command decodes; cleared when dropped.
pub struct LoadBar {
    bar: indicatif::ProgressBar,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoadBar {
    fn new() -> Option<LoadBar> {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "decoding {bar:30} {pos}/{len} chunks ({elapsed})",
            )
            .expect("a valid template"),
        );
        Some(LoadBar {
            bar,
            stop: Default::default(),
            thread: None,
        })
    }

    fn show(&self, p: crate::store::scan::Progress) {
        self.bar.set_length(p.total);
        self.bar.set_position(p.done);
    }

    /// Follows the decoding of observations that happens after loading.
    fn follow(&mut self, handle: crate::store::scan::ProgressHandle) {
        let (bar, stop) = (self.bar.clone(), std::sync::Arc::clone(&self.stop));
        self.thread = Some(std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let p = handle.get();
                bar.set_length(p.total);
                bar.set_position(p.done);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }));
    }
}

impl Drop for LoadBar {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

/// Loads a recording for an offline command, with a progress bar on a terminal that
/// keeps going while the command walks the observations; drop the bar before printing.
pub fn load_recording(
    stores: &[std::path::PathBuf],
    filter: &crate::store::scan::Filter,
) -> Result<(crate::store::scan::Recording, Option<LoadBar>), CmdError> {
    let mut bar = LoadBar::new();
    let rec = crate::store::scan::load_with_progress(stores, filter, &mut |p| {
        if let Some(bar) = &bar {
            bar.show(p);
        }
    })?;
    check_names(&rec, filter, stores)?;
    if let Some(bar) = &mut bar {
        bar.follow(rec.progress());
    }
    Ok((rec, bar))
}

/// Writes to stdout; a closed pipe (`lagtrace analyze | head`) is not an error.
pub fn print_stdout(text: &str) -> Result<(), CmdError> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CmdError::Runtime(format!("cannot write to stdout: {e}"))),
    }
}
