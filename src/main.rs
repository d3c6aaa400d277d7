//! The lagtrace command line: parse, dispatch, map errors to exit codes. Nothing else.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use lagtrace::cmd::{self, CmdError};

#[derive(Parser)]
#[command(
    name = "lagtrace",
    version,
    about = "A flight recorder for MySQL/MariaDB replication lag",
    long_about = "lagtrace writes a heartbeat on each primary, reads it back on every replica \
                  in step with the writes, and records what it saw.\n\n\
                  Passwords are never taken from the command line: see password_env and \
                  password_file in the config, or ~/.my.cnf.",
    after_help = "Examples:\n  lagtrace init -c lagtrace.toml\n  lagtrace record -c lagtrace.toml --duration 1h\n  lagtrace export --store lagtrace.redb --format csv > lag.csv"
)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the heartbeat schema on every primary (idempotent) and check each replica
    #[command(after_help = "Examples:\n  \
        lagtrace init -c lagtrace.toml            # create or upgrade, then check replicas\n  \
        lagtrace init -c lagtrace.toml --dry-run  # print the SQL, touch nothing\n\n\
        Exit status: 0 all hosts OK, 1 a host failed, 2 bad config or arguments.")]
    Init {
        /// The config file
        #[arg(short, long, value_name = "FILE", default_value = "lagtrace.toml")]
        config: PathBuf,
        /// Print the SQL that would run on each primary instead of running it
        #[arg(long)]
        dry_run: bool,
        /// How long to wait for the heartbeat row to reach each replica
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
        wait: Duration,
    },
    /// Probe every replica in step with heartbeat writes and append what it sees to the store
    #[command(after_help = "Examples:\n  \
        lagtrace record -c lagtrace.toml                       # until Ctrl-C or SIGTERM\n  \
        lagtrace record -c lagtrace.toml --interval 10ms --duration 30s --store run.redb\n\n\
        On a terminal it shows a table refreshed each second; otherwise a log line per replica\n\
        every 10 s. SIGINT/SIGTERM stop the probes, flush the store and exit 0.\n\
        With [http] in the config it answers load balancers and Prometheus while it records:\n  \
        curl -i http://127.0.0.1:9104/check/replica1     # 200 in pool, 503 out, 404 maintenance\n  \
        curl http://127.0.0.1:9104/status                # every replica as JSON\n  \
        curl http://127.0.0.1:9104/metrics               # Prometheus text\n\
        Exit status: 0 stopped cleanly, 1 store or runtime failure, 2 bad config or arguments.")]
    Record {
        /// The config file
        #[arg(short, long, value_name = "FILE", default_value = "lagtrace.toml")]
        config: PathBuf,
        /// Store file (overrides record.store)
        #[arg(long, value_name = "FILE")]
        store: Option<PathBuf>,
        /// Beat interval (overrides record.interval), 1ms to 60s
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        interval: Option<Duration>,
        /// How often the store commits (overrides record.flush)
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        flush: Option<Duration>,
        /// Mean time between replication status polls (overrides record.status_every)
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        status_every: Option<Duration>,
        /// Stop after this long
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        duration: Option<Duration>,
        /// No console output
        #[arg(short, long)]
        quiet: bool,
    },
    /// One probe round without a store: a Nagios/Icinga plugin
    #[command(after_help = "Examples:\n  \
        lagtrace check -c lagtrace.toml                          # every replica\n  \
        lagtrace check -c lagtrace.toml --replica db2 --warn 500ms --crit 2s\n\n\
        Writes one beat per cluster, reads each replica until it shows the beat or --timeout\n\
        passes, adds its replication status, and prints one line per replica, worst first:\n  \
        OK - main/db2: lag 0.003 s (between 0.000 and 0.006 s) | lag=0.003s;1;5;0\n\
        Exit status (the worst replica): 0 OK, 1 WARNING (lag >= --warn), 2 CRITICAL\n\
        (lag >= --crit), 3 UNKNOWN (unreachable, not replicating, bad config or arguments).")]
    Check {
        /// The config file
        #[arg(short, long, value_name = "FILE", default_value = "lagtrace.toml")]
        config: PathBuf,
        /// Check only this replica (repeatable)
        #[arg(long, value_name = "NAME")]
        replica: Vec<String>,
        /// WARNING at or above this lag
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
        warn: Duration,
        /// CRITICAL at or above this lag
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
        crit: Duration,
        /// How long to wait for each replica to show the beat
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Write one row per probe round (or per read) as CSV or JSON lines
    #[command(after_help = "Examples:\n  \
        lagtrace export --store lagtrace.redb > lag.csv\n  \
        lagtrace export --store a.redb --store b.redb --format jsonl --replica db2 --from -2h\n  \
        lagtrace export --store lagtrace.redb --reads > reads.csv     # every read, follow-ups too\n\n\
        Columns: time_utc, cluster, replica, seq, lag_kind, lag_ms, lag_lo_ms, lag_hi_ms, reads,\n\
        rtt_ms, outcome, reason, io_running, sql_running, seconds_behind_master, sql_delay_s\n\
        (see README). lag_kind at_least: no upper bound, lag_ms is the lower bound.")]
    Export {
        #[command(flatten)]
        select: Selection,
        /// Output format
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// Write to this file instead of stdout
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// One row per read (follow-up reads too) instead of one per probe round
        #[arg(long)]
        reads: bool,
    },
    /// Per replica: coverage, lag percentiles, episodes, vector, catch-up time, capacity
    #[command(after_help = "Examples:\n  \
        lagtrace analyze --store lagtrace.redb\n  \
        lagtrace analyze --store a.redb --store b.redb --replica db2 --from -6h --max-lag 2s\n  \
        lagtrace analyze --store lagtrace.redb --format json | jq '.replicas[].capacity'\n\n\
        An episode starts when lag exceeds --max-lag and ends when it falls under --recover-lag.\n\
        The JSON document is described in the README (schema_version 2).")]
    Analyze {
        #[command(flatten)]
        select: Selection,
        #[command(flatten)]
        thresholds: Thresholds,
        /// Output format
        #[arg(long, value_enum, default_value = "text")]
        format: AnalyzeFormat,
    },
    /// Draw an SVG chart: lag with its bounds, vector, lag distribution, or an overview
    #[command(after_help = "Examples:\n  \
        lagtrace plot --store lagtrace.redb --out lag.svg\n  \
        lagtrace plot --store lagtrace.redb --out lag.svg --kind lag --log --from -1h\n  \
        lagtrace plot --store lagtrace.redb --out overview.svg --kind overview\n\n\
        Kinds: lag (lag over time, [lower, upper] band, episodes shaded), vector (fixed scale\n\
        -1..+1, clipped values marked), cdf (distribution per replica), overview (lag and\n\
        vector, one row per replica). Long series are reduced to their extremes per pixel.")]
    Plot {
        #[command(flatten)]
        select: Selection,
        #[command(flatten)]
        thresholds: Thresholds,
        /// The SVG file to write
        #[arg(long, value_name = "FILE.svg")]
        out: PathBuf,
        /// What to draw
        #[arg(long, value_enum, default_value = "lag")]
        kind: PlotKind,
        /// Logarithmic lag axis (kind lag and overview)
        #[arg(long)]
        log: bool,
    },
    /// Replay a recording through the pool state machine the live checks use
    #[command(after_help = "Examples:\n  \
        lagtrace replay --store lagtrace.redb --max-lag 1s --recover-lag 500ms\n  \
        lagtrace replay --store lagtrace.redb --max-lag 5s --min-duration 10s --replica db2\n  \
        lagtrace replay --store lagtrace.redb --speed 60 --statsd 127.0.0.1:8125\n\n\
        Prints every change in/out of the pool and why, then per replica how often and how\n\
        long it was out: \"with these thresholds, how often would it have left the pool?\"")]
    Replay {
        #[command(flatten)]
        select: Selection,
        /// Out of the pool when lag exceeds this
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
        max_lag: Duration,
        /// ... back in when lag falls under this
        #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
        recover_lag: Duration,
        /// A new state must hold this long before it is taken
        #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
        min_duration: Duration,
        /// Out when no read came for this long
        #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
        stale: Duration,
        /// Compare lag minus the intended delay (SQL_Delay) with the thresholds
        #[arg(long)]
        ignore_intended_delay: bool,
        /// 0: as fast as possible; N: N times real time
        #[arg(long, value_name = "N", default_value = "0")]
        speed: f64,
        /// Re-emit statsd metrics to HOST:PORT while replaying (needs --speed above 0)
        #[arg(long, value_name = "HOST:PORT")]
        statsd: Option<String>,
        /// Prefix of the re-emitted statsd metrics
        #[arg(long, value_name = "PREFIX", default_value = "lagtrace")]
        statsd_prefix: String,
    },
}

/// Which stores and which part of them an offline command reads.
#[derive(clap::Args)]
struct Selection {
    /// Store file(s) to read; several are merged by time
    #[arg(long, value_name = "FILE", required = true)]
    store: Vec<PathBuf>,
    /// Only this replica (repeatable)
    #[arg(long, value_name = "NAME")]
    replica: Vec<String>,
    /// Only this cluster (repeatable)
    #[arg(long, value_name = "NAME")]
    cluster: Vec<String>,
    /// Start time: RFC 3339 (2026-11-22T02:00:00Z) or relative (-2h)
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    from: Option<String>,
    /// End time, same forms as --from
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    to: Option<String>,
}

impl Selection {
    fn filter(&self) -> Result<lagtrace::store::scan::Filter, CmdError> {
        let (from_us, to_us) = time_window(self.from.as_deref(), self.to.as_deref())?;
        Ok(lagtrace::store::scan::Filter {
            clusters: self.cluster.clone(),
            replicas: self.replica.clone(),
            from_us,
            to_us,
        })
    }
}

/// Episode thresholds and the vector window.
#[derive(clap::Args)]
struct Thresholds {
    /// An episode starts when lag exceeds this
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    max_lag: Duration,
    /// ... and ends when lag falls under this
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    recover_lag: Duration,
    /// Least-squares window of the vector
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    window: Duration,
}

fn us(d: Duration) -> i64 {
    d.as_micros().min(i64::MAX as u128) as i64
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AnalyzeFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PlotKind {
    Lag,
    Vector,
    Cdf,
    Overview,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Csv,
    Jsonl,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    lagtrace::config::parse_duration(s)
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "lagtrace=warn",
        1 => "lagtrace=info",
        _ => "lagtrace=debug,mysql_async=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Check {
            config,
            replica,
            warn,
            crit,
            timeout,
        } => {
            // A monitoring plugin: every failure to check is UNKNOWN (3), never 1 or 2.
            return match cmd::check::run(&cmd::check::Options {
                config,
                replicas: replica,
                warn,
                crit,
                timeout,
            }) {
                Ok(state) => ExitCode::from(state.exit_code()),
                Err(e) => {
                    eprintln!("lagtrace: {e}");
                    println!("UNKNOWN - {e}");
                    ExitCode::from(3)
                }
            };
        }
        Command::Init {
            config,
            dry_run,
            wait,
        } => cmd::init::run(&cmd::init::Options {
            config,
            dry_run,
            wait,
        }),
        Command::Record {
            config,
            store,
            interval,
            flush,
            status_every,
            duration,
            quiet,
        } => cmd::record::run(&cmd::record::Options {
            config,
            store,
            interval,
            flush,
            status_every,
            duration,
            quiet,
        }),
        Command::Export {
            select,
            format,
            out,
            reads,
        } => select.filter().and_then(|filter| {
            cmd::export::run(&cmd::export::Options {
                stores: select.store.clone(),
                format: match format {
                    ExportFormat::Csv => cmd::export::Format::Csv,
                    ExportFormat::Jsonl => cmd::export::Format::Jsonl,
                },
                filter,
                out,
                per_read: reads,
            })
        }),
        Command::Analyze {
            select,
            thresholds,
            format,
        } => select.filter().and_then(|filter| {
            cmd::analyze::run(&cmd::analyze::Options {
                stores: select.store.clone(),
                filter,
                max_lag_us: us(thresholds.max_lag),
                recover_lag_us: us(thresholds.recover_lag),
                window_us: us(thresholds.window),
                format: match format {
                    AnalyzeFormat::Text => cmd::analyze::Format::Text,
                    AnalyzeFormat::Json => cmd::analyze::Format::Json,
                },
            })
        }),
        Command::Plot {
            select,
            thresholds,
            out,
            kind,
            log,
        } => select.filter().and_then(|filter| {
            cmd::plot::run(&cmd::plot::Options {
                stores: select.store.clone(),
                filter,
                out,
                kind: match kind {
                    PlotKind::Lag => lagtrace::output::plot::Kind::Lag,
                    PlotKind::Vector => lagtrace::output::plot::Kind::Vector,
                    PlotKind::Cdf => lagtrace::output::plot::Kind::Cdf,
                    PlotKind::Overview => lagtrace::output::plot::Kind::Overview,
                },
                log,
                max_lag_us: us(thresholds.max_lag),
                recover_lag_us: us(thresholds.recover_lag),
                window_us: us(thresholds.window),
            })
        }),
        Command::Replay {
            select,
            max_lag,
            recover_lag,
            min_duration,
            stale,
            ignore_intended_delay,
            speed,
            statsd,
            statsd_prefix,
        } => select.filter().and_then(|filter| {
            let statsd = statsd
                .map(|a| {
                    let address = lagtrace::config::statsd_address(&a)
                        .map_err(|e| CmdError::BadInput(format!("--statsd: {e}")))?;
                    lagtrace::config::check_statsd_prefix(&statsd_prefix)
                        .map_err(|e| CmdError::BadInput(format!("--statsd-prefix: {e}")))?;
                    Ok::<_, CmdError>(lagtrace::config::StatsdConfig {
                        address,
                        prefix: statsd_prefix.clone(),
                    })
                })
                .transpose()?;
            cmd::replay::run(&cmd::replay::Options {
                stores: select.store.clone(),
                filter,
                thresholds: lagtrace::analysis::health::Thresholds {
                    max_lag_us: us(max_lag),
                    recover_lag_us: us(recover_lag),
                    min_duration_us: us(min_duration),
                    stale_us: us(stale),
                    ignore_intended_delay,
                },
                speed,
                statsd,
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit_with(&e),
    }
}

/// `--from` / `--to` as UTC microseconds.
fn time_window(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Option<i64>, Option<i64>), CmdError> {
    let now = lagtrace::clock::Clock::start().now_us();
    let parse = |flag: &str, v: Option<&str>| {
        v.map(|t| lagtrace::clock::parse_time(t, now))
            .transpose()
            .map_err(|e| CmdError::BadInput(format!("{flag}: {e}")))
    };
    Ok((parse("--from", from)?, parse("--to", to)?))
}

/// Help and version go to stdout as clap prints them; a usage error becomes one line.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::from(2);
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("bad arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("lagtrace: {first} (see --help)");
    // `check` is a monitoring plugin, where 2 would mean CRITICAL: bad arguments are 3.
    if std::env::args().nth(1).as_deref() == Some("check") {
        return ExitCode::from(3);
    }
    ExitCode::from(2)
}

fn exit_with(e: &CmdError) -> ExitCode {
    eprintln!("lagtrace: {e}");
    ExitCode::from(e.exit_code())
}
