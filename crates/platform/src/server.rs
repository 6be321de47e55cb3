//! The server loop every service runs: accepts connections under a cap, bounds how long a
//! client may take to send a request head (which also bounds an idle keep-alive connection) and
//! how large that head may be, answers the HTTP library's own parse errors in the error
//! envelope, and shuts down in three steps so a load balancer can drain the instance:
//! report not ready and keep accepting, stop accepting (serving what waits in the backlog),
//! then give in-flight requests the grace period.
//!
//! `axum::serve` has none of these bounds (no head timeout, no connection cap), which is why
//! the loop is ours; it is a thin layer over hyper's HTTP/1 connection, not an HTTP server.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::Service;

use crate::config::HttpConfig;
use crate::error::{ErrorCode, envelope_json};
use crate::peer::{ClientIp, client_ip};

/// Shared by the server loop and `/ready`: set when shutdown has begun.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn begin(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Descriptors kept out of the connection cap for everything else a server holds open:
/// database and Redis pools, the broker, listeners, log files. A tenth of the limit, between
/// these bounds.
const RESERVED_FILES: (u64, u64) = (64, 1024);

/// The connection cap that fits under the process's open-file limit, so that the cap answers
/// 503 before `accept` starts failing with "too many open files" (which leaves new clients
/// waiting for a timeout instead). A configured cap above what fits is lowered, with a warning.
fn fit_connection_cap(configured: u32, open_files: Option<u64>) -> u32 {
    let Some(open_files) = open_files else {
        return configured;
    };
    let reserved = (open_files / 10).clamp(RESERVED_FILES.0, RESERVED_FILES.1);
    let fits = u32::try_from(open_files.saturating_sub(reserved).max(1)).unwrap_or(u32::MAX);
    if configured > fits {
        tracing::warn!(
            configured,
            open_files,
            cap = fits,
            "AGORA_MAX_CONNECTIONS does not fit under the open-file limit; lowered"
        );
        fits
    } else {
        tracing::info!(cap = configured, open_files, "connection cap");
        configured
    }
}

/// The process's open-file limit, raised first to its hard limit (the soft default of 1024 is
/// a relic the kernel keeps for old `select` users, which this server is not).
fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// One listener and the router it serves.
pub struct Endpoint {
    pub listener: TcpListener,
    pub router: Router,
}

/// Serves every endpoint until `shutdown` resolves, then drains (see the module docs).
pub async fn serve(
    endpoints: Vec<Endpoint>,
    config: &HttpConfig,
    draining: Draining,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let cap = fit_connection_cap(config.max_connections, open_file_limit());
    metrics::gauge!("http_connection_cap").set(f64::from(cap));
    let connections = Arc::new(Semaphore::new(cap as usize));
    let (stop_accepting_tx, stop_accepting) = watch::channel(false);
    let (close_tx, close) = watch::channel(false);
    let mut acceptors = Vec::new();
    for endpoint in endpoints {
        acceptors.push(tokio::spawn(accept_loop(
            endpoint,
            Limits::from(config),
            connections.clone(),
            stop_accepting.clone(),
            close.clone(),
        )));
    }

    shutdown.await;
    draining.begin();
    let drain = config.shutdown_drain();
    if !drain.is_zero() {
        tracing::info!(
            drain_ms = drain.as_millis() as u64,
            "reporting not ready; still accepting while load balancers notice"
        );
        tokio::time::sleep(drain).await;
    }
    let _ = stop_accepting_tx.send(true);
    for acceptor in acceptors {
        let _ = acceptor.await;
    }
    // Connections finish their current request and close.
    let _ = close_tx.send(true);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    if tokio::time::timeout(grace, connections.acquire_many(cap))
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "requests still running after the grace period; exiting"
        );
    }
    Ok(())
}

#[derive(Clone)]
struct Limits {
    head_timeout: Duration,
    head_bytes: usize,
    trusted_proxies: Arc<[IpAddr]>,
}

impl From<&HttpConfig> for Limits {
    fn from(config: &HttpConfig) -> Self {
        Self {
            head_timeout: Duration::from_secs(config.header_timeout_secs),
            head_bytes: usize::try_from(config.max_header_bytes).unwrap_or(usize::MAX),
            trusted_proxies: config.trusted_proxies.iter().copied().collect(),
        }
    }
}

async fn accept_loop(
    endpoint: Endpoint,
    limits: Limits,
    connections: Arc<Semaphore>,
    mut stop_accepting: watch::Receiver<bool>,
    close: watch::Receiver<bool>,
) {
    let Endpoint { listener, router } = endpoint;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop_accepting.wait_for(|stop| *stop) => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                handle(stream, peer, &router, &limits, &connections, &close);
            }
            Err(error) => accept_failed(error).await,
        }
    }
    // Whatever already completed the handshake waits in the backlog: serve it rather than
    // resetting it when the listener closes.
    let mut swept = 0u32;
    while let Some(Ok((stream, peer))) = ready_now(listener.accept()) {
        handle(stream, peer, &router, &limits, &connections, &close);
        swept += 1;
    }
    if swept > 0 {
        tracing::info!(
            connections = swept,
            "served connections waiting in the accept backlog"
        );
    }
}

/// Polls a future once: its output if it is ready now.
fn ready_now<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::noop();
    match future.as_mut().poll(&mut Context::from_waker(waker)) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// Out of file descriptors and the like: back off instead of spinning on the error.
async fn accept_failed(error: io::Error) {
    tracing::warn!(%error, "accept failed");
    metrics::counter!("http_accept_errors_total").increment(1);
    tokio::time::sleep(Duration::from_millis(50)).await;
}

fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    router: &Router,
    limits: &Limits,
    connections: &Arc<Semaphore>,
    close: &watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(permit) = connections.clone().try_acquire_owned() else {
        metrics::counter!("http_connections_refused_total").increment(1);
        tokio::spawn(refuse(stream));
        return;
    };
    let router = router.clone();
    let limits = limits.clone();
    let mut close = close.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let trusted_proxies = limits.trusted_proxies.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let client = client_ip(peer.ip(), request.headers(), &trusted_proxies);
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(ClientIp(client));
            router.clone().call(request)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.head_timeout)
            // hyper refuses a head that does not fit its read buffer with 431.
            .max_buf_size(limits.head_bytes.max(8192));
        let connection = builder
            .serve_connection(TokioIo::new(EnvelopedErrors::new(stream)), service)
            .with_upgrades();
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = close.wait_for(|close| *close) => {}
        }
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
    });
}

/// A clear answer to a client over the connection cap, instead of a silent reset.
async fn refuse(mut stream: TcpStream) {
    let request_id = crate::request_id::fresh_request_id();
    let body = envelope_json(
        ErrorCode::Overloaded,
        "too many open connections; retry shortly",
        Some(request_id.clone()),
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         x-request-id: {request_id}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// hyper answers a request head it cannot parse (400), one too large (431) or a URI too long
/// (414) itself, with an empty body. This wrapper swaps such an answer, recognisable as a
/// bodiless 4xx head (every response of ours carries a body), for the same status in the
/// error envelope.
struct EnvelopedErrors {
    inner: TcpStream,
    /// Bytes of a swapped answer not yet written.
    pending: Vec<u8>,
    written: usize,
}

impl EnvelopedErrors {
    fn new(inner: TcpStream) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

/// The envelope version of hyper's own error head, if `head` is one.
fn enveloped_library_error(head: &[u8]) -> Option<Vec<u8>> {
    let (status, message, code) = if head.starts_with(b"HTTP/1.1 400 ") {
        (
            "400 Bad Request",
            "the request head is malformed",
            ErrorCode::InvalidInput,
        )
    } else if head.starts_with(b"HTTP/1.1 414 ") {
        (
            "414 URI Too Long",
            "the URI is too long",
            ErrorCode::UriTooLong,
        )
    } else if head.starts_with(b"HTTP/1.1 431 ") {
        (
            "431 Request Header Fields Too Large",
            "the request headers are too large",
            ErrorCode::HeadersTooLarge,
        )
    } else {
        return None;
    };
    let text = std::str::from_utf8(head).ok()?;
    let lower = text.to_ascii_lowercase();
    if !lower.ends_with("\r\n\r\n")
        || !lower.contains("\r\ncontent-length: 0\r\n")
        || lower.contains("\r\ncontent-type:")
    {
        return None;
    }
    // The same id in the header as in the body, as on every other answer: the request never
    // reached the middleware that sets it.
    let request_id = crate::request_id::fresh_request_id();
    let body = envelope_json(code, message, Some(request_id.clone()));
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n\
             x-request-id: {request_id}\r\nx-content-type-options: nosniff\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl AsyncRead for EnvelopedErrors {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for EnvelopedErrors {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if buf.len() < 512
            && let Some(replacement) = enveloped_library_error(buf)
        {
            self.pending = replacement;
            self.written = 0;
            // The caller's bytes count as written once ours are.
            ready!(self.poll_pending(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let [single] = bufs {
            return self.poll_write(cx, single);
        }
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_fits_under_the_open_file_limit() {
        // The probe's case: a cap equal to the limit never fired before accept failed.
        assert_eq!(fit_connection_cap(20_000, Some(20_000)), 18_976);
        assert_eq!(fit_connection_cap(1_000, Some(1_048_576)), 1_000);
        assert_eq!(fit_connection_cap(20_000, Some(1_024)), 922);
        assert_eq!(fit_connection_cap(20_000, None), 20_000);
        assert_eq!(fit_connection_cap(20_000, Some(10)), 1);
    }

    #[test]
    fn library_error_heads_get_the_envelope() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 30 Nov 2026 18:00:00 GMT\r\n\r\n";
        let swapped = String::from_utf8(enveloped_library_error(head).unwrap()).unwrap();
        assert!(swapped.starts_with("HTTP/1.1 431 "));
        let body: serde_json::Value =
            serde_json::from_str(swapped.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["code"], ErrorCode::HeadersTooLarge as u16);
        assert!(body["message"].as_str().unwrap().contains("too large"));
        let header = format!(
            "\r\nx-request-id: {}\r\n",
            body["request_id"].as_str().unwrap()
        );
        assert!(swapped.contains(&header), "{swapped}");
    }

    #[test]
    fn our_own_responses_pass_untouched() {
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(enveloped_library_error(ours).is_none());
        let with_body = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 12\r\n\r\n";
        assert!(enveloped_library_error(with_body).is_none());
        assert!(enveloped_library_error(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }
}
