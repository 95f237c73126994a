//! The metrics endpoint's HTTP side: a minimal HTTP/1.1 server that
//! answers `GET /metrics` (and `HEAD`) and nothing else.
//!
//! Hand-written rather than built on hyper: one route, one request per
//! connection (`Connection: close`), no request bodies. Every step is
//! bounded so that junk input can neither panic nor hold a task: the
//! request head is read into a fixed buffer (`HEAD_MAX_BYTES`, 8 KiB)
//! within `READ_TIMEOUT` (5 s), at most `MAX_CONNECTIONS` (32) requests are
//! served at once (more are closed unanswered), and the answer is written
//! within `WRITE_TIMEOUT` (10 s). Status codes: 200, 404 for any other
//! path, 405 for any other method, 400 for a malformed request line, 408
//! for a slow client, 431 for an oversized head, 503 when the node cannot
//! answer.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;

/// The content type of the OpenMetrics text format prometheus-client writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves scrapes on `listener` until `shutdown` completes; each `GET
/// /metrics` is answered with the text `render` produces, or 503 with its
/// error. When `shutdown` completes the listener closes and requests in
/// flight are dropped (a scrape is worthless once the node is leaving).
pub async fn serve<R, F, E>(listener: TcpListener, render: R, shutdown: impl Future<Output = ()>)
where
    R: Fn() -> F + Send + Sync + 'static,
    F: Future<Output = Result<String, E>> + Send + 'static,
    E: Display,
{
    serve_with(listener, render, shutdown, READ_TIMEOUT).await;
}

/// [`serve`] with the head read timeout as a parameter, for tests.
async fn serve_with<R, F, E>(
    listener: TcpListener,
    render: R,
    shutdown: impl Future<Output = ()>,
    read_timeout: Duration,
) where
    R: Fn() -> F + Send + Sync + 'static,
    F: Future<Output = Result<String, E>> + Send + 'static,
    E: Display,
{
    let render = Arc::new(render);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut requests = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        while requests.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, most likely: pause rather than spin.
                tracing::warn!(%error, "accepting a metrics connection failed");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!("too many metrics requests at once; closing one unanswered");
            continue;
        };
        let render = Arc::clone(&render);
        requests.spawn(async move {
            answer(stream, render.as_ref(), read_timeout).await;
            drop(slot);
        });
    }
    requests.shutdown().await;
}

/// Reads one request, routes it, writes the response and closes.
async fn answer<R, F, E>(mut stream: TcpStream, render: &R, read_timeout: Duration)
where
    R: Fn() -> F,
    F: Future<Output = Result<String, E>>,
    E: Display,
{
    let mut head = vec![0u8; HEAD_MAX_BYTES];
    let response = match timeout(read_timeout, read_head(&mut stream, &mut head)).await {
        Err(_) => Response::text(408, "Request Timeout", "request head not received in time\n"),
        Ok(Err(_) | Ok(Head::Closed)) => return,
        Ok(Ok(Head::TooLarge)) => Response::text(431, "Request Header Fields Too Large", "request head too large\n"),
        Ok(Ok(Head::Complete(len))) => match route(&head[..len]) {
            Route::BadRequest => Response::text(400, "Bad Request", "malformed request line\n"),
            Route::NotFound => Response::text(404, "Not Found", "only /metrics is served here\n"),
            Route::MethodNotAllowed => Response::text(405, "Method Not Allowed", "use GET\n"),
            Route::Metrics { head_only } => match render().await {
                Ok(body) => Response { head_only, ..Response::new(200, "OK", CONTENT_TYPE, body) },
                Err(error) => Response::text(503, "Service Unavailable", &format!("{error}\n")),
            },
        },
    };
    let written = timeout(WRITE_TIMEOUT, async {
        stream.write_all(&response.encode()).await?;
        stream.shutdown().await
    })
    .await;
    if matches!(written, Ok(Ok(()))) {
        linger(&mut stream).await;
    }
}

/// After answering: reads and discards what the client still sends, for a
/// bounded time. Closing with unread input would send a reset, which can
/// destroy the response before the client reads it.
async fn linger(stream: &mut TcpStream) {
    let drain = async {
        let mut sink = [0u8; 1024];
        let mut discarded = 0;
        while discarded < LINGER_MAX_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    };
    let _ = timeout(LINGER, drain).await;
}

/// How reading a request head ended.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// The head (through its blank line) is the first `n` bytes.
    Complete(usize),
    /// The buffer filled up before the blank line.
    TooLarge,
    /// The client closed before finishing the head.
    Closed,
}

/// Reads until the blank line that ends a request head, into `buf`.
async fn read_head(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<Head> {
    let mut filled = 0;
    loop {
        let Some(free) = buf.get_mut(filled..).filter(|free| !free.is_empty()) else {
            return Ok(Head::TooLarge);
        };
        let n = stream.read(free).await?;
        if n == 0 {
            return Ok(Head::Closed);
        }
        // The terminator may straddle the previous read.
        let from = filled.saturating_sub(3);
        filled += n;
        if let Some(end) = head_end(&buf[from..filled]) {
            return Ok(Head::Complete(from + end));
        }
    }
}

/// The length of the head in `bytes` through its blank line (`\r\n\r\n`,
/// or a bare `\n\n` as lenient servers accept), if it is there.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `GET /metrics` (`head_only` for `HEAD`); a query string is ignored.
    Metrics {
        /// Answer with headers only.
        head_only: bool,
    },
    /// Another path.
    NotFound,
    /// `/metrics` with a method other than GET or HEAD.
    MethodNotAllowed,
    /// Not `METHOD /target HTTP/1.x`.
    BadRequest,
}

/// Routes a request by its first line; the headers are not needed.
fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    let method_ok = !method.is_empty() && method.iter().all(u8::is_ascii_uppercase);
    if !method_ok || !target.starts_with(b"/") || !version.starts_with(b"HTTP/1.") {
        return Route::BadRequest;
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    if path != b"/metrics" {
        return Route::NotFound;
    }
    match method {
        b"GET" => Route::Metrics { head_only: false },
        b"HEAD" => Route::Metrics { head_only: true },
        _ => Route::MethodNotAllowed,
    }
}

/// One response, always closing the connection.
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
    head_only: bool,
}

impl Response {
    fn new(status: u16, reason: &'static str, content_type: &'static str, body: String) -> Self {
        Response { status, reason, content_type, body, head_only: false }
    }

    fn text(status: u16, reason: &'static str, body: &str) -> Self {
        Response::new(status, reason, "text/plain; charset=utf-8", body.to_owned())
    }

    fn encode(&self) -> Vec<u8> {
        let allow = if self.status == 405 { "Allow: GET, HEAD\r\n" } else { "" };
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len(),
        );
        let mut bytes = head.into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

/// The most bytes of request head read before answering 431.
const HEAD_MAX_BYTES: usize = 8 * 1024;

/// How long a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long writing a response may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests served at once; scrapers are few, so more is abuse.
pub const MAX_CONNECTIONS: usize = 32;

/// The pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long, and how much, a closing connection drains after answering.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_MAX_BYTES: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::sync::oneshot;

    use super::*;

    /// A running endpoint whose metrics are `body` (or an error when
    /// `body` is empty), stopped when dropped.
    struct Endpoint {
        addr: SocketAddr,
        _stop: oneshot::Sender<()>,
    }

    async fn endpoint(body: &'static str, read_timeout: Duration) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let render =
            move || async move { if body.is_empty() { Err("the node is not answering") } else { Ok(body.to_owned()) } };
        tokio::spawn(serve_with(
            listener,
            render,
            async {
                let _ = stopped.await;
            },
            read_timeout,
        ));
        Endpoint { addr, _stop: stop }
    }

    /// Sends `request` and returns everything the server answers.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn get_metrics_answers_openmetrics_and_closes() {
        let e = endpoint("a 1\n# EOF\n", READ_TIMEOUT).await;
        let answer = exchange(e.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(
            answer,
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: 10\r\nConnection: close\r\n\r\na 1\n# EOF\n"
            )
        );
        let answer = exchange(e.addr, b"GET /metrics?x=1 HTTP/1.0\n\n").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        let answer = exchange(e.addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\n"), "{answer}");
        assert!(answer.contains("Content-Length: 10\r\n"), "{answer}");
    }

    #[tokio::test]
    async fn other_paths_methods_and_junk_get_errors() {
        let e = endpoint("a 1\n", READ_TIMEOUT).await;
        let status = |answer: String| answer.lines().next().unwrap_or_default().to_owned();
        assert_eq!(status(exchange(e.addr, b"GET / HTTP/1.1\r\n\r\n").await), "HTTP/1.1 404 Not Found");
        assert_eq!(status(exchange(e.addr, b"GET /metricsx HTTP/1.1\r\n\r\n").await), "HTTP/1.1 404 Not Found");
        let answer = exchange(e.addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").await;
        assert_eq!(status(answer.clone()), "HTTP/1.1 405 Method Not Allowed");
        assert!(answer.contains("Allow: GET, HEAD\r\n"), "{answer}");
        for junk in [
            &b"\x00\x01\x02\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET /metrics SPDY/3\r\n\r\n",
            b"get /metrics HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(status(exchange(e.addr, junk).await), "HTTP/1.1 400 Bad Request", "{junk:?}");
        }
        let huge = [b"GET /metrics HTTP/1.1\r\nX: ".as_slice(), &[b'a'; HEAD_MAX_BYTES]].concat();
        assert_eq!(status(exchange(e.addr, &huge).await), "HTTP/1.1 431 Request Header Fields Too Large");
        // Closing half-way through a head is not an error for the server.
        drop(TcpStream::connect(e.addr).await.unwrap());
        assert_eq!(status(exchange(e.addr, b"GET /metrics HTTP/1.1\r\n\r\n").await), "HTTP/1.1 200 OK");
    }

    #[tokio::test]
    async fn a_silent_client_times_out() {
        let e = endpoint("a 1\n", Duration::from_millis(100)).await;
        let answer = exchange(e.addr, b"GET /metrics HTTP/1.1\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer}");
    }

    #[tokio::test]
    async fn an_unavailable_node_is_503() {
        let e = endpoint("", READ_TIMEOUT).await;
        let answer = exchange(e.addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nthe node is not answering\n"), "{answer}");
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nrest"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\n\r\n"), Route::Metrics { head_only: false });
        assert_eq!(route(b"DELETE /metrics HTTP/1.1\r\n\r\n"), Route::MethodNotAllowed);
        assert_eq!(route(b"GET  /metrics HTTP/1.1\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"\r\n\r\n"), Route::BadRequest);
    }
}
