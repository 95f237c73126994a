//! The client accept loop: one task per connection, at most `max_clients`
//! of them over the plain and the TLS port together, and a graceful stop.
//! A TLS client's handshake runs in its connection's task, under a
//! deadline, so a slow or silent one holds up nobody else.
//!
//! Shutdown follows mini-redis: dropping a broadcast sender tells every
//! connection to close after the batch it is running, and each connection
//! task holds a clone of an mpsc sender, so when the receiver sees the
//! channel closed, every task has ended.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast, mpsc};

use super::cmd::Session;
use super::connection::Connection;
use super::shared::Shared;
use super::shutdown::Shutdown;
use crate::server::tls::Tls;

/// The ports clients connect to: plain, TLS, or both.
#[derive(Debug, Default)]
pub struct Listeners {
    /// Plain RESP.
    pub plain: Option<TcpListener>,
    /// RESP over TLS, with the configuration (reloadable) it serves.
    pub tls: Option<(TcpListener, Arc<Tls>)>,
}

/// Serves RESP clients on `listener` until `shutdown` completes.
///
/// Each accepted connection gets its own task (with `TCP_NODELAY`); past
/// `shared.limits.max_clients` open connections, a new one is answered
/// `-ERR max number of clients reached` and closed. Accept errors (such as
/// running out of file descriptors) are logged and retried with backoff.
/// When `shutdown` completes, the listener closes at once, each connection
/// finishes the commands it has read, writes their replies and closes, and
/// `serve` returns once every connection task has ended.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: impl Future<Output = ()>) {
    serve_all(Listeners { plain: Some(listener), tls: None }, shared, shutdown).await;
}

/// [`serve`] over every port in `listeners`, with one `max_clients` for
/// all of them. A TLS client that does not finish its handshake within the
/// configuration's deadline is closed and counted
/// (`tls_handshake_failures`); one refused at `max_clients` gets the error
/// over TLS.
pub async fn serve_all(listeners: Listeners, shared: Arc<Shared>, shutdown: impl Future<Output = ()>) {
    let Listeners { plain, tls } = listeners;
    let (stop, _) = broadcast::channel::<()>(1);
    let (done, mut all_done) = mpsc::channel::<()>(1);
    let refusals = Arc::new(Semaphore::new(MAX_POLITE_REFUSALS));
    let fallback_local = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut backoff = ACCEPT_BACKOFF_MIN;
    tokio::pin!(shutdown);
    loop {
        let (accepted, tls) = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(plain.as_ref()) => (accepted, None),
            accepted = accept(tls.as_ref().map(|(listener, _)| listener)) => {
                (accepted, tls.as_ref().map(|(_, tls)| tls))
            }
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF_MIN;
                accepted
            }
            Err(error) => {
                tracing::warn!(%error, ?backoff, "accepting a client failed; backing off");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        if protected(&shared, peer) {
            shared.stats.protected_mode_refusals.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, "refusing a client from beyond loopback: protected mode (no password is set)");
            refuse(stream, tls.map(|tls| tls.acceptor()), &refusals, &done, PROTECTED_MODE_REPLY);
            continue;
        }
        // Only this loop admits clients, so the gauge cannot rise between
        // this check and the admission; `max_clients` is read afresh as
        // CONFIG SET may change it (clients over a lowered limit stay).
        let connected = shared.stats.connected_clients.load(Ordering::Relaxed);
        if usize::try_from(connected).unwrap_or(usize::MAX) >= shared.limits.max_clients() {
            shared.stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "refusing a client: max_clients reached");
            refuse(stream, tls.map(|tls| tls.acceptor()), &refusals, &done, MAX_CLIENTS_REPLY);
            continue;
        }
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
        }
        let local = stream.local_addr().unwrap_or(fallback_local);
        let id = shared.stats.total_connections_received.fetch_add(1, Ordering::Relaxed) + 1;
        let admitted = Admitted::new(Arc::clone(&shared), done.clone());
        let shared = Arc::clone(&shared);
        let shutdown = Shutdown::new(stop.subscribe());
        let session = Session::on_socket(id, peer, local, socket_fd(&stream));
        match tls {
            None => {
                let connection = Connection::new(stream, shared, shutdown, session);
                tokio::spawn(async move {
                    connection.run().await;
                    drop(admitted);
                });
            }
            Some(tls) => {
                let (acceptor, deadline) = (tls.acceptor(), tls.handshake_timeout());
                let mut shutdown = shutdown;
                tokio::spawn(async move {
                    let handshake = tokio::select! {
                        handshake = tokio::time::timeout(deadline, acceptor.accept(stream)) => Some(handshake),
                        // A handshake under way does not hold shutdown up.
                        () = shutdown.wait() => None,
                    };
                    match handshake {
                        None => {}
                        Some(Ok(Ok(stream))) => Connection::new(stream, shared, shutdown, session).run().await,
                        Some(failed) => {
                            shared.stats.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
                            let reason = match failed {
                                Ok(Err(error)) => error.to_string(),
                                _ => "timed out".into(),
                            };
                            tracing::debug!(%peer, %reason, "TLS handshake failed");
                        }
                    }
                    drop(admitted);
                });
            }
        }
    }
    drop((plain, tls));
    drop(stop);
    drop(done);
    // Every connection task holds a `done` sender: `None` means all ended.
    let _ = all_done.recv().await;
}

/// What an admitted connection holds until its task ends, even by panic:
/// its part in the all-done channel and its place in `connected_clients`
/// (which is what `max_clients` is checked against).
struct Admitted {
    shared: Arc<Shared>,
    _done: mpsc::Sender<()>,
}

impl Admitted {
    fn new(shared: Arc<Shared>, done: mpsc::Sender<()>) -> Self {
        shared.stats.connected_clients.fetch_add(1, Ordering::Relaxed);
        Admitted { shared, _done: done }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.shared.stats.connected_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Tells a client over the limit why it is refused. Up to
/// [`MAX_POLITE_REFUSALS`] at a time get a short task that sends the error,
/// then FIN, and drains what the client already sent so the error is not
/// lost to a reset; beyond that (a flood), the error is tried once without
/// waiting and the socket dropped.
/// A TLS client is refused after its handshake, inside the same time.
fn refuse(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    refusals: &Arc<Semaphore>,
    done: &mpsc::Sender<()>,
    reply: &'static [u8],
) {
    let Ok(permit) = Arc::clone(refusals).try_acquire_owned() else {
        if tls.is_none() {
            let _ = stream.try_write(reply);
        }
        return;
    };
    let done = done.clone();
    tokio::spawn(async move {
        let polite = async {
            match tls {
                None => polite_refusal(stream, reply).await,
                Some(acceptor) => polite_refusal(acceptor.accept(stream).await?, reply).await,
            }
        };
        let _ = tokio::time::timeout(REFUSAL_TIME, polite).await;
        drop((permit, done));
    });
}

async fn polite_refusal<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, reply: &[u8]) -> std::io::Result<()> {
    stream.write_all(reply).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 1024];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}

/// The next client on `listener`; never, without one.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

const MAX_CLIENTS_REPLY: &[u8] = b"-ERR max number of clients reached\r\n";

/// Redis's protected mode, checked at accept as Redis does: while the
/// default user is on without a password (nothing protects the node), a
/// client whose address is not loopback is told why and closed.
/// The socket's descriptor, for CLIENT LIST's `fd=` (-1 off Unix).
fn socket_fd(stream: &TcpStream) -> i64 {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd as _;
        i64::from(stream.as_raw_fd())
    }
    #[cfg(not(unix))]
    {
        let _ = stream;
        -1
    }
}

fn protected(shared: &Shared, peer: SocketAddr) -> bool {
    shared.protected_mode && !peer.ip().to_canonical().is_loopback() && shared.users.default_is_open()
}

/// Redis's `-DENIED` text, naming rumor's ways out.
const PROTECTED_MODE_REPLY: &[u8] = b"-DENIED rumor is running in protected mode because protected mode is enabled \
and no password is set for the default user. In this mode connections are only accepted from the loopback \
interface. If you want to connect from external computers to rumor you may adopt one of the following solutions: \
1) Set a password for the default user with requirepass or requirepass_file (--requirepass-file) and restart the \
node. 2) Define users in an ACL file (aclfile, --aclfile) where the default user has a password or is off. \
3) Disable protected mode with protected_mode = false in the config file or '--protected-mode no', but MAKE SURE \
rumor is not publicly accessible from the internet if you do so. 4) Listen on a loopback address only. NOTE: You \
only need to do one of the above things in order for the node to start accepting connections from the outside.\r\n";

/// Refusals handled politely at once (each holds a descriptor for up to
/// `REFUSAL_TIME`).
pub const MAX_POLITE_REFUSALS: usize = 64;

/// The most time a polite refusal takes.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// First and longest waits after a failed accept.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
