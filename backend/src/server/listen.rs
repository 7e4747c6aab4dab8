//! Serving a router on a socket with the limits a public server needs, which
//! `axum::serve` does not set: a client must send its request headers
//! within a bound (a slowloris holding connections open with a byte now and
//! then is cut off), and there is a most connections at once (beyond it,
//! new ones are closed at once rather than exhausting file descriptors).
//! Stopping finishes in-flight requests first, as `axum::serve`'s graceful
//! shutdown does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Longest time a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits { header_timeout: Duration::from_secs(10), max_connections: 10_000 }
    }
}

/// Serves `router` until `stop` turns true, then waits for the open
/// connections to finish their requests.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Each connection holds a receiver; `closed()` resolves when all are gone.
    let (open_tx, open_rx) = watch::channel(());
    let mut accepting = stop.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = accepting.wait_for(|s| *s) => break,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(max = limits.max_connections, "connection limit reached; closing a new connection");
            continue;
        };
        let service = router.clone().map_request(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            request
        });
        let (mut stop, open) = (stop.clone(), open_rx.clone());
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
            let mut connection =
                Box::pin(builder.serve_connection(TokioIo::new(socket), TowerToHyperService::new(service)));
            let stopping = tokio::select! {
                _ = connection.as_mut() => false,
                // The guard `wait_for` returns is dropped here, not held
                // across the await below.
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopping {
                connection.as_mut().graceful_shutdown();
                let _ = connection.as_mut().await;
            }
            // The connection holds a clone of the router, and with it the
            // stream: it goes before `open` says this connection is done, so
            // that when serving returns nothing holds the log any more (a
            // restart in the same process can open it at once).
            drop(connection);
            drop((slot, open));
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}
