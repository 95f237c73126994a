//! The tokio driver: real sockets and the real clock around the sans-IO core.
//!
//! [`run`] binds the ports, starts the client listener, the gossip stream
//! acceptor, the metrics endpoint if asked for, and the [`driver::Driver`]
//! task that owns the core, and on shutdown stops clients (in-flight
//! commands finish) and the metrics endpoint first, hands the clients' last
//! writes to gossip, then leaves the mesh.

pub mod catch_up;
pub mod clock;
pub mod driver;
pub mod handle;
pub mod metrics;
pub mod metrics_http;
pub mod shared;
pub mod stream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use rand::Rng;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::config::Settings;
use crate::core::membership::Identity;
use crate::core::node::Node;
use crate::core::store::Store;
use crate::core::version::NodeId;
use clock::Clock;
use driver::{Driver, Inputs};
use handle::NodeHandle;
use metrics::Metrics;
use shared::{ClientStats, Shared};

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
}

/// The addresses a started node actually bound (useful with port 0).
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    /// Client address.
    pub listen: SocketAddr,
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
    let clock = Clock::start();
    let bind = |what, addr, source| ServerError::Bind { what, addr, source };
    let udp =
        bind_udp(settings.gossip, settings.socket_buffer_bytes).map_err(|e| bind("gossip", settings.gossip, e))?;
    let gossip = udp.local_addr().map_err(|e| bind("gossip", settings.gossip, e))?;
    let gossip_streams = TcpListener::bind(gossip).await.map_err(|e| bind("gossip", gossip, e))?;
    let clients = TcpListener::bind(settings.listen).await.map_err(|e| bind("listen", settings.listen, e))?;
    let listen = clients.local_addr().map_err(|e| bind("listen", settings.listen, e))?;
    let metrics_port = match settings.metrics {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await.map_err(|e| bind("metrics", addr, e))?;
            let bound = listener.local_addr().map_err(|e| bind("metrics", addr, e))?;
            Some((listener, bound))
        }
        None => None,
    };
    let bound = Bound { listen, gossip, metrics: metrics_port.as_ref().map(|(_, addr)| *addr) };

    let (id_bytes, seed) = os_randomness();
    let id = NodeId::from_random_bytes(id_bytes);
    // Start-up wall time orders restarts on one address: each run's identity
    // beats the last in foca's address conflict.
    let identity = Identity { id, addr: gossip, incarnation: clock.wall_ms(), name: settings.name.as_str().into() };
    let tombstone_ttl_ms = settings.node.tombstone_ttl.as_millis() as u64;
    let store = Arc::new(Store::new(id, settings.max_clock_drift_ms).with_tombstone_ttl(tombstone_ttl_ms));
    let (writes_tx, writes) = mpsc::channel(settings.write_queue.get());
    let (control_tx, control) = mpsc::channel(CONTROL_QUEUE);
    let (frames_tx, frames) = mpsc::channel(CONTROL_QUEUE);
    let metrics = metrics_port.as_ref().map(|_| Arc::new(Metrics::new()));
    let shared = Arc::new(Shared {
        name: settings.name.clone(),
        store: store.clone(),
        clock,
        writes: writes_tx,
        control: control_tx,
        limits: settings.limits.clone(),
        password: settings.requirepass.clone(),
        stats: ClientStats::default(),
        metrics: metrics.as_ref().map(|m| m.commands().clone()),
    });
    on_bound(bound, NodeHandle::new(&shared));
    tracing::info!(name = %settings.name, %id, %listen, %gossip, seeds = ?settings.node.seeds, "node starting");

    let node = Node::new(identity, settings.node.clone(), store, seed, clock.now());
    let (stop_clients, clients_stopped) = oneshot::channel::<()>();
    // Every log line of this node carries its name (several share a process
    // under `rumor dev`).
    let span = tracing::info_span!("node", name = %settings.name);
    let serve_clients = crate::resp::listener::serve(clients, shared.clone(), async {
        let _ = clients_stopped.await;
    });
    let client_task = tokio::spawn(serve_clients.instrument(span.clone()));
    let accept = stream::accept_frames(gossip_streams, settings.node.max_stream_bytes, frames_tx);
    let acceptor = tokio::spawn(accept.instrument(span.clone()));
    let (stop_metrics, metrics_stopped) = oneshot::channel::<()>();
    let metrics_task = metrics_port.zip(metrics).map(|((listener, addr), metrics)| {
        tracing::info!(name = %settings.name, %addr, "serving Prometheus metrics at /metrics");
        let shared = shared.clone();
        let render = move || {
            let (metrics, shared) = (metrics.clone(), shared.clone());
            async move { metrics::scrape(&metrics, &shared).await }
        };
        let stopped = async {
            let _ = metrics_stopped.await;
        };
        tokio::spawn(metrics_http::serve(listener, render, stopped).instrument(span.clone()))
    });
    drop(shared);

    // The driver stops once clients are done, so their last writes are in
    // the channel before it leaves.
    let stop = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing client commands");
        let _ = stop_clients.send(());
        let _ = stop_metrics.send(());
        let _ = client_task.await;
    };
    Driver::new(node, udp, clock, settings.write_batch_max.get())
        .run(Inputs { writes, control, frames }, stop)
        .instrument(span)
        .await;
    acceptor.abort();
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    Ok(())
}

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
