//! The HTTP server: the API's router on hyper's HTTP/1.1, each request's head due within
//! [`HEAD_TIMEOUT`].
//!
//! `axum::serve` sets no such deadline (its connections have no timer), so a client that
//! opens connections and sends nothing, or a byte now and then, would hold each of them for
//! as long as it likes: enough of them and Prometheus's and Alertmanager's own pushes would
//! find no room.
//! Here hyper closes a connection whose request line and headers are not in within the
//! deadline, counted from when it opened or from its last answer (so it also ends kept-alive
//! connections left idle that long; clients open a new one). Once a request's head is in,
//! its body is bounded in size (1 MiB, [`super::MAX_BODY`]), not in time.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// How long a connection may take to deliver a request's head: hyper's own default, and
/// longer than any well-behaved client needs on the networks tocsin serves.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// After a failed accept (mostly: out of file descriptors), wait this long before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Serve `router` on `listener` until `shutdown` turns true, then stop accepting and wait for
/// the open connections to finish what they are answering. Handlers can extract the peer's
/// address as `ConnectInfo<SocketAddr>` (the per-client rate limit does).
pub async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT);
    let connections = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            // A client that went away or a head that came too late: nothing to do about it.
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::time::Instant;

    /// Read until the server closes the connection; what it sent.
    async fn until_closed(stream: &mut TcpStream) -> String {
        let mut got = Vec::new();
        let _ = stream.read_to_end(&mut got).await;
        String::from_utf8_lossy(&got).into_owned()
    }

    /// On tokio's paused clock: a connection that sends nothing, or a head that never ends,
    /// is closed once `HEAD_TIMEOUT` has passed, not before; a whole request is answered,
    /// with the peer's address for the handler; shutdown stops the server.
    #[tokio::test(start_paused = true)]
    async fn a_head_not_in_within_the_deadline_closes_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        );
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(listener, router, stopped));

        let start = Instant::now();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert_eq!(until_closed(&mut silent).await, "");
        let waited = start.elapsed();
        assert!(
            waited >= HEAD_TIMEOUT && waited < HEAD_TIMEOUT + Duration::from_secs(1),
            "closed after {waited:?}"
        );

        let start = Instant::now();
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: tocsin\r\nX-Slow: 1\r\n")
            .await
            .unwrap();
        tokio::time::sleep(HEAD_TIMEOUT / 2).await;
        slow.write_all(b"X-Slower: 2\r\n").await.unwrap();
        let sent = until_closed(&mut slow).await;
        assert!(!sent.contains("200 OK"), "{sent}");
        let waited = start.elapsed();
        assert!(
            waited >= HEAD_TIMEOUT && waited < HEAD_TIMEOUT + Duration::from_secs(1),
            "a head still coming in is not a head in: closed after {waited:?}"
        );

        let mut whole = TcpStream::connect(addr).await.unwrap();
        let me = whole.local_addr().unwrap();
        whole
            .write_all(b"GET / HTTP/1.1\r\nHost: tocsin\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = until_closed(&mut whole).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with(&me.to_string()), "{answer}");

        stop.send(true).unwrap();
        server.await.unwrap();
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    }

    /// On tokio's paused clock: a kept-alive connection is answered, then closed once it has
    /// sent no next request for `HEAD_TIMEOUT`.
    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_idle_for_the_deadline_is_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", get(|| async { "ok" }));
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(listener, router, stopped));

        let mut kept = TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET / HTTP/1.1\r\nHost: tocsin\r\n\r\n")
            .await
            .unwrap();
        let start = Instant::now();
        let answer = until_closed(&mut kept).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");
        let waited = start.elapsed();
        assert!(
            waited >= HEAD_TIMEOUT && waited < HEAD_TIMEOUT + Duration::from_secs(1),
            "an idle kept-alive connection closed after {waited:?}"
        );
        stop.send(true).unwrap();
        server.await.unwrap();
    }
}
