//! The driver on a thread of its own, with a single-threaded runtime.
//!
//! Client commands run on the shared tokio workers, and some take seconds
//! of CPU (KEYS or SCAN with a MATCH over millions of keys, a big MGET).
//! Were SWIM on those workers too, a probe arriving behind such a command
//! would wait for it, and on two cores a couple of them are enough for the
//! mesh to suspect, then declare down, a node that is only busy. On its own
//! thread the driver is scheduled by the OS beside the workers: it sleeps
//! between packets and timers, so it is never starved by them.

use std::future::Future;

use tokio::sync::oneshot;
use tracing::Instrument;

use crate::core::node::Node;
use crate::server::clock::Clock;
use crate::server::driver::{Driver, DriverOptions, Inputs};

/// Everything the driver thread is started with.
pub struct DriverParts {
    /// The core.
    pub node: Node,
    /// The gossip UDP socket, taken out of the caller's runtime: it is
    /// registered again with the driver's own.
    pub udp: std::net::UdpSocket,
    /// The real clock.
    pub clock: Clock,
    /// Driver options.
    pub options: DriverOptions,
    /// Its input channels.
    pub inputs: Inputs,
}

/// Runs the driver on a new thread until `stop` completes (awaited here,
/// in the caller's runtime) and the driver has left the mesh. A panic on
/// the driver thread is raised again here, as it would be were the driver
/// awaited in place. Fails only if the thread or its runtime cannot start.
pub async fn run(parts: DriverParts, stop: impl Future<Output = ()>, span: tracing::Span) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (done_tx, mut done_rx) = oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let thread = std::thread::Builder::new().name("rumor-driver".into()).spawn(move || -> std::io::Result<()> {
        let DriverParts { node, udp, clock, options, inputs } = parts;
        runtime.block_on(async move {
            let udp = tokio::net::UdpSocket::from_std(udp)?;
            let stop = async {
                let _ = stop_rx.await;
            };
            Driver::new(node, udp, clock, options).run(inputs, stop).instrument(span).await;
            Ok::<(), std::io::Error>(())
        })?;
        drop(done_tx);
        Ok(())
    })?;
    let mut stop = std::pin::pin!(stop);
    tokio::select! {
        () = &mut stop => {
            let _ = stop_tx.send(());
            let _ = (&mut done_rx).await;
        }
        // The driver ends only on a stop, or by failing or panicking.
        _ = &mut done_rx => {}
    }
    match tokio::task::spawn_blocking(move || thread.join()).await {
        Ok(Ok(ended)) => ended,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}
