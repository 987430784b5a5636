//! The HTTP endpoints a container orchestrator probes and scrapes
//! (`--health-port`, or `RSUP_HEALTH_PORT` for the daemon): `/livez`,
//! `/readyz` and `/metrics`; and the readiness that a stop turns off
//! before any app hears of it, so that the load balancer stops sending
//! requests first (the drain).

use super::exposition;
use super::lifecycle::Daemon;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rsup_proto::app::Status;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long `/readyz` answers 503 before the apps are stopped, unless
/// told otherwise: long enough for Kubernetes to take the pod out of its
/// endpoints in a quiet cluster.
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::from_secs(5);

/// Where the endpoints listen, and how long a stop drains first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthOptions {
    pub addr: SocketAddr,
    pub drain_delay: Duration,
}

impl HealthOptions {
    /// From `--health-port` and `--drain-delay`: no endpoints without a
    /// port, and a drain delay needs them.
    pub fn new(port: Option<&str>, drain_delay_ms: Option<u64>) -> Result<Option<Self>, String> {
        match (port, drain_delay_ms) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(
                "--drain-delay needs --health-port: without /readyz nothing learns of the drain"
                    .into(),
            ),
            (Some(port), delay) => Ok(Some(HealthOptions {
                addr: parse_listen_address(port)?,
                drain_delay: delay.map_or(DEFAULT_DRAIN_DELAY, Duration::from_millis),
            })),
        }
    }

    /// What the daemon started on demand serves: `RSUP_HEALTH_PORT` and
    /// `RSUP_DRAIN_DELAY` (ms) from its environment.
    pub fn from_env() -> Result<Option<Self>, String> {
        Self::from_flags_or_env(None, None)
    }

    /// Each flag given, else its variable; an error names whichever was
    /// wrong.
    pub fn from_flags_or_env(
        port: Option<&str>,
        drain_delay_ms: Option<u64>,
    ) -> Result<Option<Self>, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let delay = match (drain_delay_ms, var("RSUP_DRAIN_DELAY")) {
            (Some(ms), _) => Some(ms),
            (None, Some(text)) => Some(text.trim().parse::<u64>().map_err(|_| {
                format!("RSUP_DRAIN_DELAY: expected milliseconds (\"5000\"), got {text:?}")
            })?),
            (None, None) => None,
        };
        let as_variables = |e: String| {
            e.replace("--health-port", "RSUP_HEALTH_PORT")
                .replace("--drain-delay", "RSUP_DRAIN_DELAY")
        };
        match (port, var("RSUP_HEALTH_PORT")) {
            (Some(port), _) => Self::new(Some(port), delay),
            (None, Some(port)) => Self::new(Some(&port), delay).map_err(as_variables),
            (None, None) if drain_delay_ms.is_some() => Self::new(None, delay),
            (None, None) => Self::new(None, delay).map_err(as_variables),
        }
    }
}

/// `9102` listens on every IPv4 address (probes come to the pod's IP);
/// `127.0.0.1:9102` or `[::]:9102` listen where they say.
pub fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
    }
    text.parse().map_err(|_| {
        format!(
            "--health-port: expected a port (\"9102\") or an address and port (\"127.0.0.1:9102\"), got {text:?}"
        )
    })
}

/// Whether the pod should get traffic: not before the first apps have
/// started, and never again once a stop has begun.
#[derive(Default)]
pub struct Readiness {
    started: AtomicBool,
    stopping: AtomicBool,
}

impl Readiness {
    pub fn started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    /// A stop of everything begins: from now on `/readyz` answers 503.
    pub fn stop_begins(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }
}

/// `Ok` when `/readyz` answers 200: every instance online, and no stop
/// begun; otherwise why not.
pub fn ready(daemon: &Daemon) -> Result<(), String> {
    let readiness = &daemon.readiness;
    if readiness.stopping.load(Ordering::SeqCst) {
        return Err("stopping".into());
    }
    if !readiness.started.load(Ordering::SeqCst) {
        return Err("starting".into());
    }
    let instances = daemon.apps.instances();
    if instances.is_empty() {
        return Err("no app runs".into());
    }
    let waiting: Vec<String> = instances
        .iter()
        .filter_map(|h| {
            let state = h.state();
            (state.status != Status::Online).then(|| {
                format!(
                    "{} (id {}) is {}",
                    state.spec.name,
                    h.identity.id,
                    state.status.as_str()
                )
            })
        })
        .collect();
    match waiting.is_empty() {
        true => Ok(()),
        false => Err(waiting.join(", ")),
    }
}

/// Listens at `addr`, before any app starts: a port taken is an error at
/// start, not a pod that never gets ready.
/// The listener a previous daemon had bound.
pub fn listener(fd: std::os::fd::OwnedFd) -> std::io::Result<TcpListener> {
    let std = std::net::TcpListener::from(fd);
    std.set_nonblocking(true)?;
    TcpListener::from_std(std)
}

pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "--health-port: cannot listen on {addr} for /livez, /readyz and /metrics: {e}"
        )
    })?;
    tracing::info!(
        "health endpoints on http://{}/ (livez, readyz, metrics)",
        listener.local_addr()?
    );
    Ok(listener)
}

/// A client that sends no complete request head in this time is let go.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers on `listener` for as long as the daemon runs.
pub async fn serve(listener: TcpListener, daemon: Arc<Daemon>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: the control socket's
                // loop reports it; here a pause keeps from spinning.
                tracing::debug!("health endpoints: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = answer(&daemon, &request);
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(daemon: &Daemon, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n".into());
    }
    match request.uri().path() {
        // The daemon's loop answered: it is alive. Apps that crash are
        // rsup's to restart, not a reason to restart the container.
        "/livez" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match ready(daemon) {
            Ok(()) => text(StatusCode::OK, "ok\n".into()),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        "/metrics" => {
            let mut response = Response::new(Full::from(exposition::render(daemon)));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(exposition::CONTENT_TYPE),
            );
            response
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /livez, /readyz and /metrics are served\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_alone_listens_everywhere_and_an_address_where_it_says() {
        assert_eq!(
            parse_listen_address("9102").unwrap(),
            "0.0.0.0:9102".parse().unwrap()
        );
        assert_eq!(
            parse_listen_address("127.0.0.1:80").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            parse_listen_address("[::]:9102").unwrap(),
            "[::]:9102".parse().unwrap()
        );
        let e = parse_listen_address("nine").unwrap_err();
        assert!(
            e.starts_with("--health-port:") && e.contains("\"nine\""),
            "{e}"
        );
        assert!(parse_listen_address("70000").is_err());
    }

    #[test]
    fn the_drain_delay_defaults_with_a_port_and_needs_one() {
        assert_eq!(HealthOptions::new(None, None), Ok(None));
        let options = HealthOptions::new(Some("9102"), None).unwrap().unwrap();
        assert_eq!(options.drain_delay, DEFAULT_DRAIN_DELAY);
        let options = HealthOptions::new(Some("9102"), Some(0)).unwrap().unwrap();
        assert_eq!(options.drain_delay, Duration::ZERO);
        let e = HealthOptions::new(None, Some(100)).unwrap_err();
        assert!(e.starts_with("--drain-delay needs --health-port"), "{e}");
    }
}
