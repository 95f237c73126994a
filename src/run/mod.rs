//! One process's wiring: a node's driver (`crate::server`) and its client
//! side (`crate::resp`), joined by the driver's channels. [`run`] fits
//! `max_clients` to the descriptor limit, binds the ports, loads the data
//! dir if there is one (its storage thread then writes every change),
//! starts the client listener (plain, TLS or both; TLS files reloaded on
//! SIGHUP), the gossip stream acceptor, the metrics endpoint if asked for,
//! and the driver that owns the core, a task beside the clients; on shutdown
//! it stops clients (in-flight commands finish) and the metrics endpoint
//! first, hands the clients' last writes to gossip, leaves the mesh, and
//! syncs the data dir.
//!
//! - [`handle`] — a node running in this process, for `rumor dev`.
//! - [`descriptors`] — `max_clients` fitted to the file descriptor limit.

pub mod descriptors;
pub mod handle;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rand::Rng;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::config::{Settings, TlsSettings};
use crate::core::membership::Identity;
use crate::core::node::{Node, NodeMemory};
use crate::core::start::{DataDir, Recording, StartError, Started};
use crate::core::store::Store;
use crate::core::version::NodeId;
use crate::resp::listener::Listeners;
use crate::resp::shared::{ClientStats, Shared};
use crate::server::clock::Clock;
use crate::server::driver::{Driver, DriverOptions, Inputs};
use crate::server::metrics::{self, Metrics};
use crate::server::storage::{self, Fsync, Storage, StorageError, Writer};
use crate::server::{handover, metrics_http, stream, tls};
use handle::NodeHandle;

/// Channel depth for stream frames and control questions.
const CONTROL_QUEUE: usize = 1024;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A port could not be bound.
    #[error("cannot bind {what} address {addr}: {source}")]
    Bind {
        /// Which port (`listen`, `gossip`, `metrics`).
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The data dir could not be opened or loaded.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The descriptor limit leaves no room for clients.
    #[error(transparent)]
    Descriptors(#[from] descriptors::NoRoomForClients),
    /// The TLS files could not be loaded.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Writing the data dir failed while running; the node stopped.
    #[error("writing the data dir {0} failed (the error is logged above)")]
    StorageFailed(PathBuf),
}

/// The addresses a started node actually bound (useful with port 0).
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    /// Client address; `None` with TLS only.
    pub listen: Option<SocketAddr>,
    /// TLS client address, when the node serves TLS.
    pub tls: Option<SocketAddr>,
    /// Gossip address.
    pub gossip: SocketAddr,
    /// Metrics address, when the node serves `/metrics`.
    pub metrics: Option<SocketAddr>,
}

/// Runs one node until `shutdown` completes, then leaves the mesh cleanly.
/// Once the ports are open, and before any client is served, `on_bound` is
/// told the bound addresses and given a handle to read how the node is
/// doing from this process.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    on_bound: impl FnOnce(Bound, NodeHandle),
) -> Result<(), ServerError> {
    let mut settings = settings;
    let fitted = descriptors::fit(&mut settings)?;
    tracing::debug!(?fitted, "file descriptors shared out");
    let clock = Clock::start();
    let bind = |what, addr, source| ServerError::Bind { what, addr, source };
    let (udp, gossip_streams) = bind_gossip(settings.gossip, settings.socket_buffer_bytes)
        .await
        .map_err(|e| bind("gossip", settings.gossip, e))?;
    let gossip = udp.local_addr().map_err(|e| bind("gossip", settings.gossip, e))?;
    let clients = match settings.tls.as_ref().is_some_and(|tls| tls.only) {
        true => None,
        false => Some(TcpListener::bind(settings.listen).await.map_err(|e| bind("listen", settings.listen, e))?),
    };
    let listen = clients.as_ref().map(TcpListener::local_addr).transpose();
    let listen = listen.map_err(|e| bind("listen", settings.listen, e))?;
    let tls_port = match &settings.tls {
        Some(t) => {
            let listener = TcpListener::bind(t.listen).await.map_err(|e| bind("tls", t.listen, e))?;
            let addr = listener.local_addr().map_err(|e| bind("tls", t.listen, e))?;
            Some((listener, addr, Arc::new(tls::Tls::new(t.files.clone(), t.handshake_timeout)?)))
        }
        None => None,
    };
    let metrics_port = match settings.metrics {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await.map_err(|e| bind("metrics", addr, e))?;
            let bound = listener.local_addr().map_err(|e| bind("metrics", addr, e))?;
            Some((listener, bound))
        }
        None => None,
    };
    let tls_addr = tls_port.as_ref().map(|(_, addr, _)| *addr);
    let bound = Bound { listen, tls: tls_addr, gossip, metrics: metrics_port.as_ref().map(|(_, addr)| *addr) };

    let (id_bytes, seed) = os_randomness();
    let fresh_id = NodeId::from_random_bytes(id_bytes);
    let Started { store, memory, data_dir, .. } = start_store(fresh_id, &settings, clock).await?;
    let id = store.writer();
    let store = Arc::new(store);
    let storage_queue = data_dir.as_ref().map(|writer| writer.queue.clone());
    // Start-up wall time orders restarts on one address: each run's identity
    // beats the last in foca's address conflict.
    let identity = Identity { id, addr: gossip, life: clock.wall_ms(), name: settings.name.as_str().into() };
    let (writes_tx, writes) = handover::channel(settings.write_queue.get(), settings.write_queue_bytes);
    let (control_tx, control) = mpsc::channel(CONTROL_QUEUE);
    let (frames_tx, frames) = mpsc::channel(CONTROL_QUEUE);
    let metrics =
        metrics_port.as_ref().map(|_| Arc::new(Metrics::new(&crate::resp::command_labels().collect::<Vec<_>>())));
    let shared = Arc::new(Shared {
        name: settings.name.clone(),
        store: store.clone(),
        clock,
        writes: writes_tx,
        control: control_tx,
        limits: settings.limits.clone().into(),
        fixed_settings: crate::config::fixed_parameters(&Settings {
            listen: listen.unwrap_or(settings.listen),
            gossip,
            metrics: bound.metrics,
            tls: settings.tls.clone().map(|t| TlsSettings { listen: tls_addr.unwrap_or(t.listen), ..t }),
            ..settings.clone()
        }),
        users: crate::resp::acl::Users::new(settings.users.clone()),
        auth_throttle: crate::resp::acl::throttle::AuthThrottle::new(settings.auth_throttle.clone()),
        protected_mode: settings.protected_mode,
        stats: ClientStats::default(),
        metrics: metrics.as_ref().map(|m| m.commands().clone()),
        storage: storage_queue.clone(),
        clients: Default::default(),
        transaction_gate: Default::default(),
        shutdown_requested: Default::default(),
    });
    on_bound(bound, NodeHandle::new(&shared));
    if settings.cluster_keys.is_none() && !gossip.ip().is_loopback() {
        tracing::warn!(
            %gossip,
            "insecure gossip: no cluster key, so anyone who can reach the gossip port can join the mesh and read \
             and write every key (asked for with insecure_gossip)"
        );
    }
    if let Some(listen) = listen
        && settings.protected_mode
        && !listen.ip().is_loopback()
        && shared.users.default_is_open()
    {
        tracing::warn!(
            %listen,
            "protected mode: the default user has no password, so only loopback clients are accepted; set \
             requirepass_file or aclfile, or protected_mode = false on a trusted network"
        );
    }
    let none = || "none".to_owned();
    let (plain, tls) = (listen.map_or_else(none, |a| a.to_string()), tls_addr.map_or_else(none, |a| a.to_string()));
    tracing::info!(name = %settings.name, %id, listen = %plain, %tls, %gossip, seeds = ?settings.node.seeds, "node starting");

    let node = Node::new(identity, settings.node.clone(), store, seed, clock.now(), memory);
    let (stop_clients, clients_stopped) = oneshot::channel::<()>();
    // Every log line of this node carries its name (several share a process
    // under `rumor dev`).
    let span = tracing::info_span!("node", name = %settings.name);
    let reloader = tls_port.as_ref().and_then(|(_, _, tls)| {
        // Registered before any client is served: once one can connect,
        // SIGHUP reloads rather than ends the process.
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .inspect_err(|error| tracing::warn!(%error, "cannot listen for SIGHUP: TLS files will not be reloaded"))
            .ok()?;
        Some(tokio::spawn(reload_on_sighup(tls.clone(), hangups).instrument(span.clone())))
    });
    let listeners = Listeners { plain: clients, tls: tls_port.map(|(listener, _, tls)| (listener, tls)) };
    let serve_clients = crate::resp::listener::serve_all(listeners, shared.clone(), async {
        let _ = clients_stopped.await;
    });
    let client_task = tokio::spawn(serve_clients.instrument(span.clone()));
    let auth_failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stream_stats = Arc::new(stream::StreamStats::default());
    let rules = stream::FrameRules {
        max_frame_bytes: settings.node.max_stream_bytes,
        keys: settings.cluster_keys.clone(),
        auth_failures: auth_failures.clone(),
        clock,
        limits: settings.streams.clone(),
        stats: stream_stats.clone(),
    };
    let accept = stream::accept_frames(gossip_streams, rules, frames_tx);
    let acceptor = tokio::spawn(accept.instrument(span.clone()));
    let (stop_metrics, metrics_stopped) = oneshot::channel::<()>();
    let metrics_task = metrics_port.zip(metrics).map(|((listener, addr), metrics)| {
        tracing::info!(name = %settings.name, %addr, "serving Prometheus metrics at /metrics");
        let shared = shared.clone();
        let render = move || {
            let (metrics, shared) = (metrics.clone(), shared.clone());
            async move { metrics::scrape(&metrics, shared.client_snapshot(), &shared.control).await }
        };
        let stopped = async {
            let _ = metrics_stopped.await;
        };
        tokio::spawn(metrics_http::serve(listener, render, stopped).instrument(span.clone()))
    });
    let shutdown_requested = shared.shutdown_requested.clone();
    drop(shared);

    // The driver stops once clients are done, so their last writes are in
    // the hand-over queue before it leaves.
    let failure_queue = storage_queue.clone();
    let stop = async move {
        let storage_failed = async {
            match &failure_queue {
                Some(queue) => queue.failure().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown => {}
            () = shutdown_requested.notified() => tracing::info!("stopping: SHUTDOWN from a client"),
            () = storage_failed => tracing::error!("stopping: the data dir can no longer be written"),
        }
        tracing::info!("shutting down: finishing client commands");
        let _ = stop_clients.send(());
        let _ = stop_metrics.send(());
        let _ = client_task.await;
    };
    let options = DriverOptions {
        write_batch_max: settings.write_batch_max.get(),
        storage: storage_queue,
        keys: settings.cluster_keys.clone(),
        auth_failures,
        stream_stats,
        stream_idle_close: settings.streams.idle_timeout / 2,
        handoff_wait: settings.stop_handoff.filter(|_| data_dir.is_none()),
    };
    // On the clients' runtime, beside their connections: handing it their
    // writes costs no thread switch, and the commands that run long go off
    // the workers instead (`crate::resp::blocking`).
    Driver::new(node, udp, clock, options).run(Inputs { writes, control, frames }, stop).instrument(span).await;
    acceptor.abort();
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    if let Some(Writer { queue, thread }) = data_dir {
        let dir = queue.dir().to_owned();
        queue.stop();
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        if queue.has_failed() {
            return Err(ServerError::StorageFailed(dir));
        }
        tracing::info!(dir = %dir.display(), "data dir synced");
    }
    Ok(())
}

/// Reloads the TLS files on each SIGHUP, off the async threads. New
/// handshakes get what they hold; open connections keep their sessions; a
/// bad file leaves the configuration in use, and says so.
async fn reload_on_sighup(tls: Arc<tls::Tls>, mut hangups: tokio::signal::unix::Signal) {
    while hangups.recv().await.is_some() {
        let reloading = tls.clone();
        match tokio::task::spawn_blocking(move || reloading.reload()).await {
            Ok(Ok(())) => tracing::info!(cert = %tls.files().cert.display(), "TLS certificate reloaded (SIGHUP)"),
            Ok(Err(error)) => tracing::error!(%error, "TLS reload failed; still serving the certificate loaded before"),
            Err(join) => tracing::error!(%join, "TLS reload failed; still serving the certificate loaded before"),
        }
    }
}

/// A data dir being opened: fjall behind the core's [`DataDir`], so that
/// the core decides what is done with what it holds.
struct Opening {
    dir: PathBuf,
    storage: Storage,
    fsync: Fsync,
    clock: Clock,
    /// Entries loaded, for INFO.
    loaded: u64,
}

impl DataDir for Opening {
    type Error = StorageError;
    type Running = Writer;

    fn node_id(&mut self, fresh: NodeId) -> Result<NodeId, StorageError> {
        self.storage.node_id(fresh)
    }

    fn memory(&self) -> Result<NodeMemory, StorageError> {
        Ok(NodeMemory { last_in_mesh_ms: self.storage.last_in_mesh_ms()?, members: self.storage.kept_members()? })
    }

    fn discard_entries(&mut self) -> Result<(), StorageError> {
        self.storage.discard_entries()
    }

    fn load_into(&mut self, store: &Store, _now_ms: u64) -> Result<(), StorageError> {
        tracing::info!(dir = %self.dir.display(), fsync = %self.fsync, "loading the data dir");
        let loaded = self.storage.load_into(store, &self.clock, storage::LOAD_REPORT_EVERY, |p| {
            let storage::LoadProgress { percent, loaded, expected, per_second } = p;
            tracing::info!(
                percent,
                loaded,
                expected,
                per_second,
                "loading the data dir: {percent}% ({loaded} of about {expected} entries), {per_second} entries/s"
            );
        })?;
        let took = loaded.took;
        tracing::info!(
            entries = loaded.entries,
            took_ms = took.as_millis() as u64,
            "loaded {} entries in {took:.1?}",
            loaded.entries
        );
        self.loaded = loaded.entries;
        Ok(())
    }

    fn start_change_log(self, store: &Store) -> Result<Recording<Writer>, StorageError> {
        let writer = self.storage.start_writer(self.fsync, self.clock, store.hlc())?;
        writer.queue.stats().loaded.store(self.loaded, std::sync::atomic::Ordering::Relaxed);
        Ok((writer.queue.clone(), writer))
    }
}

/// Starts the node's store (see
/// [`crate::core::start::NodeConfig::start_store`]) from its data dir if it
/// has one, with the node id kept there, or `fresh_id`. Runs on a blocking
/// thread: loading a large dir takes a while, and logs its progress each
/// second.
async fn start_store(fresh_id: NodeId, settings: &Settings, clock: Clock) -> Result<Started<Writer>, ServerError> {
    let (fsync, stale_data, open_files) = (settings.fsync, settings.stale_data, settings.storage_open_files);
    let (node, gossip, dir) = (settings.node.clone(), settings.gossip, settings.data_dir.clone());
    let open = move || -> Result<Started<Writer>, StorageError> {
        let opening = match &dir {
            Some(dir) => {
                let storage = Storage::open_with_files(dir, open_files)?;
                Some(Opening { dir: dir.clone(), storage, fsync, clock, loaded: 0 })
            }
            None => None,
        };
        node.start_store(gossip, fresh_id, opening, stale_data, clock.wall_ms()).map_err(|error| match error {
            StartError::DataDir(error) => error,
            StartError::Stale { away_ms, gone_after_ms } => {
                let hours = |ms: u64| ms as f64 / 3_600_000.0;
                let dir = dir.unwrap_or_default();
                StorageError::Stale { dir, away_h: hours(away_ms), ttl_h: hours(gone_after_ms) }
            }
        })
    };
    match tokio::task::spawn_blocking(open).await {
        Ok(started) => Ok(started?),
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

/// The gossip port, UDP and TCP. With port 0 the OS picks the UDP port,
/// which TCP may already use elsewhere: then another pick is tried.
async fn bind_gossip(addr: SocketAddr, buffer_bytes: usize) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut attempts = 0;
    loop {
        let udp = bind_udp(addr, buffer_bytes)?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) if addr.port() == 0 && attempts < PORT_ZERO_ATTEMPTS => {
                attempts += 1;
                tracing::debug!(%error, "gossip port picked for UDP is taken for TCP; picking another");
            }
            Err(error) => return Err(error),
        }
    }
}

/// Picks of a gossip port before giving up, with port 0.
const PORT_ZERO_ATTEMPTS: usize = 16;

/// The gossip socket, with buffers big enough that a burst of pushes does
/// not overflow them and drop SWIM probes with it (the kernel caps the size
/// at `net.core.rmem_max`/`wmem_max`).
fn bind_udp(addr: SocketAddr, buffer_bytes: usize) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
    if let Err(error) = socket.set_recv_buffer_size(buffer_bytes) {
        tracing::warn!(%error, buffer_bytes, "cannot size the gossip receive buffer");
    }
    if let Err(error) = socket.set_send_buffer_size(buffer_bytes) {
        tracing::warn!(%error, buffer_bytes, "cannot size the gossip send buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// A node id and an RNG seed from the OS: the driver's only randomness,
/// injected into the core.
#[expect(clippy::disallowed_methods, reason = "the driver seeds the core from the OS once")]
fn os_randomness() -> ([u8; 16], u64) {
    let mut rng = rand::rng();
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    (id, rng.next_u64())
}
