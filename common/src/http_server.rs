//! The HTTP server of both binaries: axum's router on hyper, with the
//! limits a server facing untrusted clients needs and `axum::serve` lacks:
//!
//! - **header-read timeout**: a client must send a request's whole header
//!   within it (a client trickling a byte a second is cut off);
//! - **idle timeout**: a keep-alive connection with no request in progress
//!   and no bytes moving for this long is closed;
//! - **connection cap**: at most this many connections are served at once;
//!   further clients wait in the listen backlog until one closes.
//!
//! Shutdown is graceful: on the shutdown signal no new connection is
//! accepted, idle ones close, and requests in progress get to finish.
//!
//! It speaks HTTP/1.1, as Prometheus' and Alertmanager's own servers do
//! without TLS: no HTTP/2 over cleartext, no protocol upgrades (nothing
//! here serves WebSockets).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt as _;

/// Default time a client has to send a request's headers.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time an idle keep-alive connection stays open.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for requests in progress after the shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Default most connections served at once (well under the usual 1024
/// open-file limit, which the process also needs for scrapes and storage).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// The limits of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `app` on `listener` with `limits` until `shutdown` completes,
/// then waits for the requests in progress, at most [`SHUTDOWN_GRACE`].
/// Errors accepting one connection (for instance
/// too many open files) are logged and retried after a short pause.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept an HTTP connection; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: Arc::clone(&activity),
        });
        let service = {
            let activity = Arc::clone(&activity);
            let app = app.clone();
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let app = app.clone();
                let guard = activity.request_started();
                async move {
                    let response = app.oneshot(request.map(Body::new)).await;
                    drop(guard);
                    response
                }
            })
        };
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            // hyper's own timer also runs while a keep-alive connection
            // waits for its next request, which would make the idle
            // timeout the header timeout; both are watched below instead.
            .header_read_timeout(None)
            .keep_alive(true)
            .serve_connection(io, service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = &mut connection => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "HTTP connection ended with an error");
                    }
                }
                why = activity.expired(limits) => {
                    tracing::debug!(why, "closing an HTTP connection");
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "HTTP requests still in progress at shutdown; closing them");
    }
    Ok(())
}

/// When a connection last moved bytes, since when it has been sending a
/// request header, and how many of its requests are in progress.
struct Activity {
    last: Mutex<Instant>,
    /// Set by the first byte that arrives while no request is in progress
    /// (and at accept: a silent client is reading its header too); cleared
    /// when the request reaches the handler.
    header_since: Mutex<Option<Instant>>,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Arc<Activity> {
        let now = Instant::now();
        Arc::new(Activity {
            last: Mutex::new(now),
            header_since: Mutex::new(Some(now)),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn read_bytes(&self) {
        let now = Instant::now();
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = now;
        if self.in_flight.load(Ordering::SeqCst) == 0 {
            self.header_since
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(now);
        }
    }

    fn request_started(self: &Arc<Activity>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        *self.header_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
        InFlight(Arc::clone(self))
    }

    /// Completes, saying why, once the connection has been sending one
    /// request header for longer than the header-read timeout, or has had
    /// no request in progress and no bytes moving for the idle timeout.
    /// Checked a few times per timeout.
    async fn expired(&self, limits: HttpLimits) -> &'static str {
        let shortest = limits.header_read_timeout.min(limits.idle_timeout);
        let every = (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            tokio::time::sleep(every).await;
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                continue;
            }
            let now = Instant::now();
            let header_since = *self.header_since.lock().unwrap_or_else(|e| e.into_inner());
            if header_since.is_some_and(|since| now >= since + limits.header_read_timeout) {
                return "no complete request header within the header-read timeout";
            }
            let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
            if now >= last + limits.idle_timeout {
                return "idle for the idle timeout";
            }
        }
    }
}

/// Marks a request in progress until dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

/// A TCP stream that records when bytes move.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_bytes();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(limits: HttpLimits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/-/healthy", get(|| async { "ok" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, app, limits, async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    /// Sends a request header one byte per `pace` until the server closes
    /// the connection; returns how many bytes it got out.
    async fn trickle(addr: std::net::SocketAddr, pace: Duration) -> usize {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let header = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Slow: ".repeat(100);
        let mut buf = [0u8; 64];
        for (sent, byte) in header.iter().enumerate() {
            if stream.write_all(&[*byte]).await.is_err() {
                return sent;
            }
            tokio::select! {
                read = stream.read(&mut buf) => {
                    // EOF, a reset, or the server's error answer: closed.
                    let _ = read;
                    return sent + 1;
                }
                () = tokio::time::sleep(pace) => {}
            }
        }
        panic!("the server never closed a connection trickling its header");
    }

    async fn healthy(addr: std::net::SocketAddr) -> bool {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        answer.starts_with(b"HTTP/1.1 200")
    }

    #[tokio::test]
    async fn slow_clients_are_cut_off_at_the_header_read_timeout_while_health_answers() {
        let (addr, _stop) = start(HttpLimits {
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(60),
            max_connections: 100,
        })
        .await;
        // 50 clients at one byte a second: the whole header would take
        // over 40 minutes.
        let clients: Vec<_> = (0..50)
            .map(|_| tokio::spawn(trickle(addr, Duration::from_secs(1))))
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            healthy(addr).await,
            "health answers next to 50 slow clients"
        );
        for client in clients {
            let sent = tokio::time::timeout(Duration::from_secs(30), client)
                .await
                .expect("every slow client is closed (hang guard)")
                .unwrap();
            assert!(sent < 10, "closed after {sent} bytes");
        }
        assert!(healthy(addr).await);
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
        let (addr, _stop) = start(HttpLimits {
            header_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(1),
            max_connections: 10,
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        // Requests every 300 ms keep the connection in use past the idle
        // timeout.
        let mut buf = vec![0u8; 1024];
        for _ in 0..6 {
            stream
                .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let n = stream.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // Then silence: the server closes it.
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .expect("the idle connection is closed (hang guard)")
            .unwrap_or(0);
        assert_eq!(n, 0, "EOF, no further answer");
    }

    #[tokio::test]
    async fn a_keep_alive_connection_may_wait_longer_than_the_header_timeout_for_its_next_request()
    {
        let (addr, _stop) = start(HttpLimits {
            header_read_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10,
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut buf = vec![0u8; 1024];
        for _ in 0..2 {
            stream
                .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let n = stream.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "still open");
            // Idle for three header timeouts: only the idle timeout counts.
            tokio::time::sleep(Duration::from_millis(900)).await;
        }
    }

    #[tokio::test]
    async fn connections_over_the_cap_wait_until_one_closes() {
        let (addr, _stop) = start(HttpLimits {
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(60),
            max_connections: 2,
        })
        .await;
        // Two silent connections take both slots until the header-read
        // timeout closes them; the third client is answered after that.
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let waiting = tokio::spawn(healthy(addr));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "no slot while both are taken");
        assert!(tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("answered once a slot frees (hang guard)")
            .unwrap());
    }
}
