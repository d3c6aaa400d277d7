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
    after_help = "Examples:\n  lagtrace init -c lagtrace.toml\n  lagtrace init -c lagtrace.toml --dry-run"
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
        Command::Init {
            config,
            dry_run,
            wait,
        } => cmd::init::run(&cmd::init::Options {
            config,
            dry_run,
            wait,
        }),
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
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("bad arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("lagtrace: {first} (see --help)");
    ExitCode::from(2)
}

fn exit_with(e: &CmdError) -> ExitCode {
    eprintln!("lagtrace: {e}");
    ExitCode::from(e.exit_code())
}
