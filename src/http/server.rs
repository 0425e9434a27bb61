//! The connection loop: HTTP/1.1 with a deadline for reading request headers (slow clients,
//! "slowloris", are cut off; the same clock closes an idle keep-alive connection), a deadline for
//! writing each response (a client that stops reading is cut off), a cap on header size and
//! count, a cap on open connections and each address's share of them, and a graceful stop that
//! lets requests in flight finish.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::ServiceExt;

use crate::domain::net::Cidr;
use crate::infra::metrics::Metrics;
use crate::limits::address::is_trusted;
use crate::limits::shares::Shares;

/// Largest request head (request line and headers) read; a larger one is answered 431.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub max_connections: usize,
    /// Time to send a request's headers, counted from the moment the connection is ready for
    /// one: on a new connection and between the requests of a kept-alive one (the idle timeout).
    pub header_timeout: Duration,
    /// Time to write one response out to a client that does not read it.
    pub write_timeout: Duration,
    pub drain: Duration,
    /// Each address's share of the connections; a trusted proxy's own are not counted.
    pub shares: Arc<Shares>,
    pub trusted_proxies: Vec<Cidr>,
    pub metrics: Arc<Metrics>,
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains (at most `limits.drain`).
/// How long connections taken before the listener closed may still send their first request.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(500);

pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    tokio::pin!(shutdown);
    let serve_one = |stream: TcpStream, peer: SocketAddr| {
        // A trusted proxy carries everyone's connections: its clients are counted per request
        // instead (`protect::client_address`), where their forwarded address is known.
        let share = if is_trusted(peer.ip(), &limits.trusted_proxies) {
            None
        } else {
            match limits.shares.take(peer.ip()) {
                Some(s) => Some(s),
                None => {
                    limits.metrics.connection_refused("per_address");
                    tracing::debug!(peer = %peer, "the address holds its share of the connections; closing the new one");
                    drop(stream);
                    return;
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            limits.metrics.connection_refused("capacity");
            tracing::warn!(peer = %peer, "connection limit reached; closing the new connection");
            drop(stream);
            return;
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                    req
                });
        let io = WriteDeadline::new(stream, limits.write_timeout);
        let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop((slot, share));
        });
    };
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        serve_one(stream, peer);
    }
    // Connections the kernel completed but nobody accepted yet would be reset when the
    // listener closes, after their client sent a request (a load balancer cannot retry a POST
    // then): serve them too. A client that connects after the close is refused, and retries.
    while let Ok(Ok((stream, peer))) = tokio::time::timeout(Duration::ZERO, listener.accept()).await
    {
        serve_one(stream, peer);
    }
    drop(listener);
    tracing::info!("shutdown signal: draining in-flight requests");
    // hyper closes a connection at once when its graceful shutdown begins before the first byte
    // of a request was read: the connections just taken (above, or an instant before the
    // signal), whose client has already sent its request, would be closed unanswered (a load
    // balancer cannot retry a POST then). They get `FIRST_REQUEST_GRACE` to be read first.
    let grace = FIRST_REQUEST_GRACE.min(limits.drain);
    tokio::time::sleep(grace).await;
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.drain - grace) => tracing::warn!("drain did not finish within IMANGOR_SHUTDOWN_TIMEOUT; exiting"),
    }
    Ok(())
}

/// A connection whose responses must be written within `timeout`: the clock starts at the first
/// write after the last completed flush (hyper flushes after each response) and a write still
/// blocked when it runs out fails the connection, which is then closed. A client that stops
/// reading (or reads a byte at a time) holds its connection for at most that long per answer.
struct WriteDeadline {
    io: TcpStream,
    timeout: Duration,
    /// Made once per connection and reset for each response (a reset costs no allocation).
    deadline: Pin<Box<Sleep>>,
    running: bool,
}

impl WriteDeadline {
    fn new(io: TcpStream, timeout: Duration) -> Self {
        WriteDeadline {
            io,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            running: false,
        }
    }

    fn start(&mut self) {
        if !self.running {
            let at = tokio::time::Instant::now() + self.timeout;
            self.deadline.as_mut().reset(at);
            self.running = true;
        }
    }

    /// What a write that could not go on now answers: wait, or fail once the time is up.
    fn blocked<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        self.start();
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read the response in time",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for WriteDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.start();
        match Pin::new(&mut self.io).poll_write(cx, buf) {
            Poll::Pending => self.blocked(cx),
            done => done,
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.start();
        match Pin::new(&mut self.io).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.blocked(cx),
            done => done,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                // The response is out: the next one gets a fresh clock.
                self.running = false;
                Poll::Ready(Ok(()))
            }
            Poll::Pending => self.blocked(cx),
            failed => failed,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
