//! Accept loops and connection serving: HTTP/1.1 and h2c (prior knowledge) on each
//! connection, graceful drain on shutdown.
//!
//! The admin listener is served directly. The proxy listener is accepted by one loop that
//! hands each connection to the proxy thread with the fewest open connections: letting every
//! thread accept from the shared socket left them unevenly loaded (one thread could hold most
//! of a benchmark's keep-alive connections and become the bottleneck), and the hand-off costs
//! once per connection, not per request.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::body::ProxyBody;

/// A connection handed from the acceptor to a proxy thread.
pub(crate) type Handoff = (std::net::TcpStream, SocketAddr);

/// The acceptor's view of one proxy thread.
pub(crate) struct Lane {
    pub(crate) tx: mpsc::UnboundedSender<Handoff>,
    /// Connections open on that thread.
    pub(crate) open: Arc<AtomicUsize>,
}

/// Accepts proxy connections and hands each to the least busy lane, until `stop` flips.
pub(crate) async fn distribute(
    listener: TcpListener,
    lanes: Vec<Lane>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    let Some(lane) = lanes.iter().min_by_key(|l| l.open.load(Relaxed)) else {
                        return;
                    };
                    // Leaves this runtime's reactor; the proxy thread registers it with its own.
                    let Ok(stream) = stream.into_std() else { continue };
                    lane.open.fetch_add(1, Relaxed);
                    if lane.tx.send((stream, remote)).is_err() {
                        lane.open.fetch_sub(1, Relaxed);
                    }
                }
                Err(e) => accept_failed(e).await,
            },
            _ = stop.changed() => return,
        }
    }
}

/// Serves connections handed to this proxy thread until `stop` flips or the acceptor is gone,
/// then drains them for at most `drain`.
pub(crate) async fn serve_handoffs<F, Fut>(
    mut incoming: mpsc::UnboundedReceiver<Handoff>,
    open: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
    handler: F,
) where
    F: Fn(SocketAddr, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
{
    let conns = Conns::new();
    loop {
        tokio::select! {
            next = incoming.recv() => match next {
                Some((stream, remote)) => match TcpStream::from_std(stream) {
                    Ok(stream) => conns.spawn(stream, remote, handler.clone(), Some(open.clone())),
                    Err(e) => {
                        open.fetch_sub(1, Relaxed);
                        tracing::warn!(error = %e, "cannot register a connection");
                    }
                },
                None => break,
            },
            _ = stop.changed() => break,
        }
    }
    conns.drain(drain).await;
}

/// Serves `listener` until `stop` flips, then drains open connections for at most `drain`.
pub(crate) async fn serve<F, Fut>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
    handler: F,
) where
    F: Fn(SocketAddr, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
{
    let conns = Conns::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(stream, remote, handler.clone(), None);
                }
                Err(e) => accept_failed(e).await,
            },
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    conns.drain(drain).await;
}

/// Out of file descriptors and the like: wait a little rather than spin.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Longest wait for a request head on a connection (also between keep-alive requests).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The connections of one loop, watched for graceful shutdown.
struct Conns {
    builder: auto::Builder<TokioExecutor>,
    graceful: GracefulShutdown,
}

/// Decrements a lane's open-connection count when its connection ends.
struct OpenGuard(Option<Arc<AtomicUsize>>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if let Some(open) = &self.0 {
            open.fetch_sub(1, Relaxed);
        }
    }
}

impl Conns {
    fn new() -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // A client that opens a connection and never completes a request head (slowloris, or a
        // dead peer) is cut off: idle sockets cannot pile up without limit.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        Conns {
            builder,
            graceful: GracefulShutdown::new(),
        }
    }

    fn spawn<F, Fut>(
        &self,
        stream: TcpStream,
        remote: SocketAddr,
        handler: F,
        open: Option<Arc<AtomicUsize>>,
    ) where
        F: Fn(SocketAddr, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
    {
        let svc = service_fn(move |req| handler(remote, req));
        let conn = self
            .builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        let conn = self.graceful.watch(conn);
        let guard = OpenGuard(open);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(guard);
        });
    }

    async fn drain(self, drain: Duration) {
        if tokio::time::timeout(drain, self.graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the drain timeout");
        }
    }
}
