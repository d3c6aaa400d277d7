//! Live outputs of `record`: the `[http]` listener (and the `[agent]` one) on a thread
//! of their own, answering from the live picture so that neither a flood of checks
//! slows the probes nor a slow database delays a check.
//!
//! - `GET|HEAD /check/<replica>`: 200 in the read pool, 503 out, 404 in maintenance.
//! - `GET|HEAD /ignore-lag/<replica>`: 200 when reachable and replicating, any lag.
//! - `GET /status`: every cluster and replica as JSON.
//! - `GET /metrics`: Prometheus text (OpenMetrics when the scraper asks for it).
//!
//! Unknown replicas and paths get 404 with a JSON error, other methods 405.

use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;

use super::live::{self, Check, Shared};
use super::{agent, metrics};
use crate::clock::Clock;
use crate::config::{AgentConfig, HttpConfig};

/// The listening sockets, bound before the recorder starts so that a taken port is
/// an error at once rather than a silent absence.
pub struct Listeners {
    http: TcpListener,
    agent: Option<TcpListener>,
}

/// Why the listeners could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot start the HTTP runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot start the HTTP thread: {0}")]
    Thread(std::io::Error),
}

/// Binds `[http]` and `[agent]`; warns when an address is not loopback (the answers
/// carry the topology and need no authentication).
pub fn bind(http: &HttpConfig, agent: Option<&AgentConfig>) -> Result<Listeners, ListenError> {
    let open = |addr: SocketAddr, what: &'static str| {
        if !addr.ip().is_loopback() {
            tracing::warn!(
                "{what} listens on {addr}, which is not a loopback address: anyone who can reach it sees the topology and lag"
            );
        }
        let bind_err = |source| ListenError::Bind { addr, what, source };
        let l = TcpListener::bind(addr).map_err(bind_err)?;
        l.set_nonblocking(true).map_err(bind_err)?;
        Ok::<_, ListenError>(l)
    };
    Ok(Listeners {
        http: open(http.listen, "[http] listen")?,
        agent: agent
            .map(|a| open(a.listen, "[agent] listen"))
            .transpose()?,
    })
}

/// The running listeners; [`Server::stop`] ends them.
pub struct Server {
    stop: watch::Sender<bool>,
    thread: JoinHandle<()>,
}

impl Server {
    /// Starts the listeners on their own thread and single-threaded runtime.
    pub fn start(listeners: Listeners, live: Shared, clock: Clock) -> Result<Server, ListenError> {
        let (stop, stopped) = watch::channel(false);
        let runtime = crate::probe::runtime().map_err(ListenError::Runtime)?;
        let thread = std::thread::Builder::new()
            .name("lagtrace-http".into())
            .spawn(move || runtime.block_on(serve(listeners, live, clock, stopped)))
            .map_err(ListenError::Thread)?;
        Ok(Server { stop, thread })
    }

    /// Stops accepting, lets requests in flight finish, and joins the thread.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        if self.thread.join().is_err() {
            tracing::warn!("the HTTP thread crashed");
        }
    }
}

async fn serve(listeners: Listeners, live: Shared, clock: Clock, stop: watch::Receiver<bool>) {
    if let Some(l) = listeners.agent {
        match tokio::net::TcpListener::from_std(l) {
            Ok(l) => {
                tokio::spawn(agent::serve(l, live.clone(), clock, stop.clone()));
            }
            Err(e) => tracing::warn!("agent: cannot use the listening socket: {e}"),
        }
    }
    let listener = match tokio::net::TcpListener::from_std(listeners.http) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("http: cannot use the listening socket: {e}");
            return;
        }
    };
    let mut until = stop.clone();
    let shutdown = async move {
        let _ = until.wait_for(|&s| s).await;
    };
    if let Err(e) = axum::serve(listener, router(live, clock))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!("http: {e}");
    }
}

#[derive(Clone)]
struct App {
    live: Shared,
    clock: Clock,
}

/// The routes, on the live picture and the recorder's clock.
pub fn router(live: Shared, clock: Clock) -> Router {
    Router::new()
        .route("/check/{replica}", get(check_pool))
        .route("/ignore-lag/{replica}", get(check_ignore_lag))
        .route("/status", get(status))
        .route("/metrics", get(metrics_text))
        .route("/throttle/{cluster}", get(throttle))
        .route("/check/{app}/mysql/{cluster}", get(freno_check))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(App { live, clock })
}

async fn check_pool(
    State(app): State<App>,
    replica: Result<Path<String>, PathRejection>,
) -> Response {
    check(&app, replica, Check::Pool)
}

async fn check_ignore_lag(
    State(app): State<App>,
    replica: Result<Path<String>, PathRejection>,
) -> Response {
    check(&app, replica, Check::IgnoreLag)
}

fn check(app: &App, replica: Result<Path<String>, PathRejection>, kind: Check) -> Response {
    let Ok(Path(name)) = replica else {
        return error(
            StatusCode::BAD_REQUEST,
            "malformed replica name in the path",
        );
    };
    let doc = live::lock(&app.live).check(&name, kind, app.clock.now_us());
    let Some(doc) = doc else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no replica named {name:?} in the configuration"),
        );
    };
    let code = match doc.state {
        live::State::In => StatusCode::OK,
        live::State::Out => StatusCode::SERVICE_UNAVAILABLE,
        live::State::Maintenance => StatusCode::NOT_FOUND,
    };
    json(code, &doc)
}

/// `/throttle/<cluster>[?app=A][&max_lag=D]`: 200 when the cluster may take more batch
/// writes, 429 when writers should wait, with the verdict as JSON.
async fn throttle(
    State(app): State<App>,
    cluster: Result<Path<String>, PathRejection>,
    uri: axum::http::Uri,
) -> Response {
    let Ok(Path(cluster)) = cluster else {
        return error(
            StatusCode::BAD_REQUEST,
            "malformed cluster name in the path",
        );
    };
    let mut asked_app = None;
    let mut max_lag = None;
    for (k, v) in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
    {
        match k {
            "app" => asked_app = Some(v.to_string()),
            "max_lag" => match humantime::parse_duration(v) {
                Ok(d) if d > std::time::Duration::ZERO => max_lag = Some(d),
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("max_lag={v:?} is not a duration (1s, 500ms)"),
                    );
                }
            },
            _ => {}
        }
    }
    let verdict =
        live::lock(&app.live).throttle(&cluster, asked_app.as_deref(), max_lag, app.clock.now_us());
    match verdict {
        Ok(doc) => json(code_of(doc.status()), &doc),
        Err(why) => error(StatusCode::NOT_FOUND, &why),
    }
}

/// freno's `/check/<app>/mysql/<cluster>`: the same verdict in freno's shape.
async fn freno_check(
    State(app): State<App>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let Ok(Path((asked_app, cluster))) = path else {
        return error(
            StatusCode::BAD_REQUEST,
            "malformed app or cluster name in the path",
        );
    };
    let verdict =
        live::lock(&app.live).throttle(&cluster, Some(&asked_app), None, app.clock.now_us());
    match verdict {
        Ok(doc) => json(code_of(doc.status()), &doc.freno()),
        Err(why) => json(
            StatusCode::NOT_FOUND,
            &super::throttle::FrenoDoc {
                status_code: 404,
                value: 0.0,
                threshold: 0.0,
                message: why,
            },
        ),
    }
}

fn code_of(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn status(State(app): State<App>) -> Response {
    let snap = live::lock(&app.live).snapshot(app.clock.now_us());
    json(StatusCode::OK, &snap)
}

async fn metrics_text(State(app): State<App>, headers: HeaderMap) -> Response {
    let snap = live::lock(&app.live).snapshot(app.clock.now_us());
    let text = metrics::render(&snap);
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = if openmetrics {
        (metrics::OPENMETRICS_TYPE, text)
    } else {
        (metrics::CLASSIC_TYPE, metrics::classic(&text))
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint: use /check/<replica>, /ignore-lag/<replica>, /throttle/<cluster>, /check/<app>/mysql/<cluster>, /status or /metrics",
    )
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: use GET or HEAD",
    )
}

fn error(code: StatusCode, message: &str) -> Response {
    json(code, &serde_json::json!({ "error": message }))
}

fn json<T: serde::Serialize>(code: StatusCode, body: &T) -> Response {
    let mut text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_string());
    text.push('\n');
    (
        code,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        text,
    )
        .into_response()
}
