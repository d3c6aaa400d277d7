//! The lagtrace command line: parse, dispatch, map errors to exit codes. Nothing else.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use lagtrace::cmd::{self, CmdError};
use lagtrace::store::guard::guarded;

#[derive(Parser)]
#[command(
    name = "lagtrace",
    version,
    about = "A flight recorder for MySQL/MariaDB replication lag",
    long_about = "lagtrace writes a heartbeat on each primary, reads it back on every replica \
                  in step with the writes, and records what it saw.\n\n\
                  Passwords are never taken from the command line: see password_env and \
                  password_file in the config, or ~/.my.cnf.",
    after_help = "Examples:\n  lagtrace init -c lagtrace.toml\n  lagtrace record -c lagtrace.toml --duration 1h\n  lagtrace -v --log-format json record -c lagtrace.toml   # JSON log lines\n  lagtrace export --store lagtrace.redb --format csv > lag.csv"
)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Log lines as text (time, level, message, key=value fields) or as one JSON
    /// object per line, for journald and log shippers
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the heartbeat schema on every primary (idempotent) and check each replica
    Init(cmd::init::Args),
    /// Probe every replica in step with heartbeat writes and append what it sees to the store
    Record(cmd::record::Args),
    /// One probe round without a store: a Nagios/Icinga plugin
    Check(cmd::check::Args),
    /// Write one row per probe round (or per read) as CSV or JSON lines
    Export(cmd::export::Args),
    /// Per replica: coverage, lag percentiles, episodes, vector, catch-up time, capacity
    Analyze(cmd::analyze::Args),
    /// Draw an SVG chart: lag with its bounds, vector, lag distribution, or an overview
    Plot(cmd::plot::Args),
    /// Replay a recording through the pool state machine the live checks use
    Replay(cmd::replay::Args),
    /// Drop a store's data older than a retention (record --retain does it live)
    Prune(cmd::prune::Args),
    /// Block until a cluster may take more batch writes (asks the running recorder)
    Wait(cmd::wait::Args),
}

/// How log lines are written on stderr.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(verbose: u8, format: LogFormat) {
    use std::io::IsTerminal;
    let default = match verbose {
        0 => "lagtrace=warn",
        1 => "lagtrace=info",
        _ => "lagtrace=debug,mysql_async=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colors only on a terminal: journald and files get plain key=value lines.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    init_logging(cli.verbose, cli.log_format);
    let result = match cli.command {
        Command::Check(args) => {
            // A monitoring plugin: every failure to check is UNKNOWN (3), never 1 or 2.
            return match cmd::check::run(&args) {
                Ok(state) => ExitCode::from(state.exit_code()),
                Err(e) => {
                    eprintln!("lagtrace: {e}");
                    println!("UNKNOWN - {e}");
                    ExitCode::from(3)
                }
            };
        }
        Command::Init(args) => cmd::init::run(&args),
        Command::Record(args) => cmd::record::run(&args),
        Command::Wait(args) => cmd::wait::run(&args),
        // The offline commands: a store damaged where the database library cannot
        // decode it is an error naming the store, not a panic.
        Command::Export(args) => guarded(&args.select.store, || cmd::export::run(&args)),
        Command::Analyze(args) => guarded(&args.select.store, || cmd::analyze::run(&args)),
        Command::Plot(args) => guarded(&args.select.store, || cmd::plot::run(&args)),
        Command::Replay(args) => guarded(&args.select.store, || cmd::replay::run(&args)),
        Command::Prune(args) => {
            guarded(std::slice::from_ref(&args.store), || cmd::prune::run(&args))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit_with(&e),
    }
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
    // clap's message up to its first blank line, on one line: "... not provided:" goes
    // on with the names of the missing arguments on the lines after it.
    let text = e.render().to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    let message = if message.is_empty() {
        "bad arguments"
    } else {
        message
    };
    eprintln!("lagtrace: {message} (see --help)");
    // `check` is a monitoring plugin, where 2 would mean CRITICAL: bad arguments are 3.
    // Which subcommand was meant comes from clap parsing as much as it can.
    let subcommand = Cli::command()
        .ignore_errors(true)
        .try_get_matches()
        .ok()
        .and_then(|m| m.subcommand_name().map(str::to_owned));
    if subcommand.as_deref() == Some("check") {
        return ExitCode::from(3);
    }
    ExitCode::from(2)
}

fn exit_with(e: &CmdError) -> ExitCode {
    eprintln!("lagtrace: {e}");
    ExitCode::from(e.exit_code())
}
