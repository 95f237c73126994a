//! `rumor dev`'s console: once every node has started (or failed to), the
//! command to connect to each, then a live one-line status of the mesh,
//! read from every node once a second, until the mesh stops.
//!
//! The status reads each node through a [`NodeHandle`] — the same numbers
//! a metrics scrape reads (members, keys, gossip counters) plus INFO's
//! command counter — so it adds no bookkeeping to the nodes and no client
//! connection that would count in what it shows.

pub mod output;
pub mod status;

use std::future::Future;
use std::io::Write;
use std::pin::pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::run::Bound;
use crate::run::handle::{NodeHandle, NodeReport};
use crate::server::clock::Clock;
use output::StatusOutput;
use status::Sampler;

/// How often the status is read and shown.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// How long one reading waits for a node's driver task before counting the
/// node as not answering.
const REPORT_TIMEOUT: Duration = Duration::from_millis(500);

/// What a node task sends once its ports are open.
#[derive(Debug)]
pub struct Started {
    /// The node's place in the mesh (0 for the first).
    pub index: usize,
    /// Its addresses.
    pub bound: Bound,
    /// A handle to read it by.
    pub handle: NodeHandle,
}

/// Runs the console of a mesh of the nodes `names`, in order, until `stop`
/// completes; then leaves the last status line in place.
///
/// `started` gets one message per node that started; each node task must
/// hold a sender until it has sent or failed, so that the channel closes
/// once every node has done one or the other.
pub async fn console(
    names: Vec<String>,
    mut started: mpsc::UnboundedReceiver<Started>,
    mut output: StatusOutput,
    stop: impl Future<Output = ()>,
) {
    let mut stop = pin!(stop);
    let mut nodes: Vec<Option<Started>> = names.iter().map(|_| None).collect();
    loop {
        tokio::select! {
            biased;
            () = &mut stop => return,
            message = started.recv() => match message {
                Some(node) => {
                    if let Some(slot) = nodes.get_mut(node.index) {
                        *slot = Some(node);
                    }
                }
                None => break,
            },
        }
    }
    print_connect_commands(&nodes);
    if matches!(output, StatusOutput::Off) {
        return;
    }

    let handles: Vec<Option<NodeHandle>> = nodes.into_iter().map(|n| n.map(|n| n.handle)).collect();
    let clock = Clock::start();
    let mut ticks = tokio::time::interval(STATUS_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    // The first tick is immediate: a baseline for the first rates.
    ticks.tick().await;
    let mut sampler = Sampler::new(names, &read(&handles).await, clock.mono());
    loop {
        tokio::select! {
            biased;
            () = &mut stop => break,
            _ = ticks.tick() => {
                let reports = read(&handles).await;
                let status = sampler.sample(&reports, clock.mono());
                output.show(&status, clock.mono());
            }
        }
    }
    output.finish();
}

/// `node1: redis-cli -p 6380   (gossip 127.0.0.1:7946)` for each node that
/// started, in order, and how to stop.
fn print_connect_commands(nodes: &[Option<Started>]) {
    let mut out = std::io::stdout().lock();
    for node in nodes.iter().flatten() {
        let name = node.handle.name();
        let _ = writeln!(
            out,
            "{name}: redis-cli -p {}   (gossip {})",
            node.bound.listen.map_or(0, |addr| addr.port()),
            node.bound.gossip
        );
    }
    let _ = writeln!(out, "rumor dev mesh running; Ctrl-C stops it.");
}

/// One report per node, in order, read concurrently so that a node that
/// does not answer delays the reading by [`REPORT_TIMEOUT`] at most.
async fn read(handles: &[Option<NodeHandle>]) -> Vec<Option<NodeReport>> {
    let asks: Vec<_> = handles
        .iter()
        .map(|handle| {
            let handle = handle.clone();
            tokio::spawn(async move { handle?.report(REPORT_TIMEOUT).await })
        })
        .collect();
    let mut reports = Vec::with_capacity(asks.len());
    for ask in asks {
        reports.push(ask.await.ok().flatten());
    }
    reports
}
