//! `lagtrace wait`: blocks until a cluster may take more batch writes, asking the
//! running recorder's `/throttle/<cluster>` (its `[http]` listener), for shell loops:
//! `lagtrace wait -c lagtrace.toml --cluster main && run-next-chunk`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::CmdError;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    lagtrace wait -c lagtrace.toml --cluster main && ./archive-next-chunk\n  \
    lagtrace wait -c lagtrace.toml --cluster main --app osc --timeout 10m\n  \
    lagtrace wait -c lagtrace.toml --cluster main --max-lag 500ms\n\n\
    It asks the recorder that runs with this config (`lagtrace record`, its [http]\n\
    listener) every --every until /throttle/<cluster> says the cluster may take writes:\n\
    every replica that counts within the threshold (the lag's upper bound), none\n\
    unreachable or stopped, the primary up, no force file ([throttle] in the config).\n\n\
    Exit status: 0 the cluster may take writes, 1 still held back at --timeout (the last\n\
    reason on stderr), 2 bad arguments or config, an unknown cluster or app, or no\n\
    recorder answering.")]
pub struct Args {
    /// The config file of the running recorder
    #[arg(short, long, value_name = "FILE", default_value = "lagtrace.toml")]
    pub config: PathBuf,
    /// The cluster to wait for
    #[arg(long, value_name = "NAME")]
    pub cluster: String,
    /// Wait for lag under this instead of [throttle]'s threshold (e.g. 500ms)
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub max_lag: Option<Duration>,
    /// The app whose threshold applies ([throttle] apps)
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// Give up after this long (default: wait until it may)
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub timeout: Option<Duration>,
    /// How often to ask
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = crate::config::parse_duration)]
    pub every: Duration,
    /// Say nothing while waiting
    #[arg(short, long)]
    pub quiet: bool,
}

/// What the recorder answered: the HTTP status and the verdict's JSON.
struct Answer {
    code: u16,
    doc: serde_json::Value,
}

pub fn run(args: &Args) -> Result<(), CmdError> {
    let config = crate::config::load_with(&args.config, &crate::config::Overrides::default())?;
    let Some(http) = &config.http else {
        return Err(CmdError::BadInput(format!(
            "{}: no [http] section: lagtrace wait asks the running recorder's /throttle, which [http] serves",
            args.config.display()
        )));
    };
    // A recorder listening on every address answers on loopback too.
    let mut at = http.listen;
    if at.ip().is_unspecified() {
        at.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let mut path = format!("/throttle/{}", args.cluster);
    let mut query = Vec::new();
    if let Some(app) = &args.app {
        query.push(format!("app={app}"));
    }
    if let Some(d) = args.max_lag {
        query.push(format!("max_lag={}ms", d.as_secs_f64() * 1e3));
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let started = Instant::now();
    // The reason and words of the last 429, said again only when the reason changes.
    let mut held: Option<(String, String)> = None;
    loop {
        let answer = ask(at, &path).map_err(|e| {
            CmdError::BadInput(format!(
                "no recorder answers on http://{at} ({e}): is `lagtrace record -c {}` running?",
                args.config.display()
            ))
        })?;
        let detail = answer.doc["detail"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match answer.code {
            200 => {
                if !args.quiet && held.is_some() {
                    eprintln!("lagtrace: {}: may write: {detail}", args.cluster);
                }
                return Ok(());
            }
            429 => {}
            code => {
                let why = answer.doc["error"].as_str().unwrap_or("unexpected answer");
                return Err(CmdError::BadInput(format!("{why} (HTTP {code})")));
            }
        }
        let reason = answer.doc["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !args.quiet && held.as_ref().is_none_or(|(r, _)| *r != reason) {
            eprintln!("lagtrace: {}: waiting: {reason}: {detail}", args.cluster);
        }
        held = Some((reason, detail));
        if let Some(limit) = args.timeout
            && started.elapsed() + args.every > limit
        {
            let (reason, detail) = held.unwrap_or_default();
            return Err(CmdError::Runtime(format!(
                "{}: still held back after {}: {reason}: {detail}",
                args.cluster,
                humantime::format_duration(limit)
            )));
        }
        std::thread::sleep(args.every);
    }
}

/// One `GET path` to the recorder at `at`, over a connection of its own.
fn ask(at: SocketAddr, path: &str) -> std::io::Result<Answer> {
    let timeout = Duration::from_secs(2);
    let mut s = TcpStream::connect_timeout(&at, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {at}\r\nConnection: close\r\nAccept: application/json\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer");
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(bad)?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let doc = serde_json::from_str(body.trim()).map_err(|_| bad())?;
    Ok(Answer { code, doc })
}
