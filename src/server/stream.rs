//! Length-prefixed frames over TCP on the gossip port: for payloads too big
//! for one datagram. Outbound, one task per peer keeps a connection and
//! writes frames in order; inbound, one task per connection reads frames and
//! hands them to the driver.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::core::wire::FRAME_HEADER_BYTES;
use crate::server::clock::Clock;
use crate::server::envelope::{ClusterKeys, ENVELOPE_OVERHEAD};

/// Frames queued per peer before new ones are dropped (and counted);
/// anti-entropy repairs what a dropped frame carried.
const QUEUE_PER_PEER: usize = 1024;
/// How long to wait for a peer to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Outbound stream connections, one task per peer.
#[derive(Debug, Default)]
pub struct StreamPool {
    peers: HashMap<SocketAddr, (mpsc::Sender<Bytes>, tokio::task::JoinHandle<()>)>,
    /// Frames dropped because a peer's queue was full or its connection failed.
    pub dropped: Arc<AtomicU64>,
    /// Seal every frame with a cluster key, stamped with the clock's time.
    sealing: Option<(ClusterKeys, Clock)>,
}

impl StreamPool {
    /// A pool whose frames are sealed with `keys`, if given, stamped with
    /// `clock`'s wall time.
    pub fn new(keys: Option<ClusterKeys>, clock: Clock) -> Self {
        StreamPool { sealing: keys.map(|keys| (keys, clock)), ..StreamPool::default() }
    }

    /// Queues `payload` for `to`, starting its connection task if needed.
    pub fn send(&mut self, to: SocketAddr, payload: Bytes) {
        let spawn = || spawn_peer(to, self.dropped.clone(), self.sealing.clone());
        let peer = self.peers.entry(to).or_insert_with(spawn);
        if peer.0.is_closed() {
            *peer = spawn();
        }
        if peer.0.try_send(payload).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lets every peer task write what it has queued, then stop; waits at
    /// most `deadline` for all of them.
    pub async fn close(&mut self, deadline: Duration) {
        // Dropping a sender ends its task's receive loop once the queue is written.
        let tasks: Vec<_> = self
            .peers
            .drain()
            .map(|(_, (sender, task))| {
                drop(sender);
                task
            })
            .collect();
        let _ = tokio::time::timeout(deadline, async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await;
    }
}

fn spawn_peer(
    to: SocketAddr,
    dropped: Arc<AtomicU64>,
    sealing: Option<(ClusterKeys, Clock)>,
) -> (mpsc::Sender<Bytes>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE_PER_PEER);
    let task = tokio::spawn(async move {
        let mut connection: Option<TcpStream> = None;
        while let Some(payload) = rx.recv().await {
            if connection.is_none() {
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
                    Ok(Ok(stream)) => {
                        let _ = stream.set_nodelay(true);
                        connection = Some(stream);
                    }
                    _ => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(peer = %to, "stream connect failed; frame dropped");
                        continue;
                    }
                }
            }
            let Some(stream) = connection.as_mut() else {
                continue;
            };
            let payload = match &sealing {
                Some((keys, clock)) => {
                    let now_ms = clock.wall_ms();
                    Bytes::from(off_worker(payload.len(), keys.clone(), move |k| k.seal(&payload, now_ms)).await)
                }
                None => payload,
            };
            let header = (payload.len() as u32).to_be_bytes();
            let written = async {
                stream.write_all(&header).await?;
                stream.write_all(&payload).await
            }
            .await;
            if let Err(error) = written {
                dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %to, %error, "stream write failed; frame dropped");
                connection = None;
            }
        }
        if let Some(mut stream) = connection {
            let _ = stream.shutdown().await;
        }
    });
    (tx, task)
}

/// How inbound frames are checked.
#[derive(Clone, Debug)]
pub struct FrameRules {
    /// Largest plain frame, bytes.
    pub max_frame_bytes: usize,
    /// Open every frame with these keys; a frame that does not open closes
    /// its connection (and is counted in `auth_failures`).
    pub keys: Option<ClusterKeys>,
    /// Where refused frames are counted.
    pub auth_failures: Arc<AtomicU64>,
    /// The clock sealed frames' times are checked against.
    pub clock: Clock,
}

/// Frames at least this big are sealed and opened on a blocking thread:
/// a 64 MiB value takes tens of milliseconds, too long for an async worker.
const SEAL_OFF_WORKER_BYTES: usize = 256 * 1024;

/// Runs `work` with `keys` inline for a small frame, on a blocking thread
/// for a big one.
async fn off_worker<T: Send + 'static>(
    len: usize,
    keys: ClusterKeys,
    work: impl FnOnce(&ClusterKeys) -> T + Send + 'static,
) -> T {
    if len < SEAL_OFF_WORKER_BYTES {
        return work(&keys);
    }
    match tokio::task::spawn_blocking(move || work(&keys)).await {
        Ok(done) => done,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

/// Accepts stream connections on the gossip port and forwards each frame
/// (checked against `rules`) with its sender's address.
pub async fn accept_frames(listener: TcpListener, rules: FrameRules, frames: mpsc::Sender<(SocketAddr, Bytes)>) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "gossip stream accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (frames, rules) = (frames.clone(), rules.clone());
        tokio::spawn(async move {
            if let Err(error) = read_frames(stream, from, &rules, frames).await {
                tracing::debug!(%from, %error, "gossip stream closed");
            }
        });
    }
}

async fn read_frames(
    mut stream: TcpStream,
    from: SocketAddr,
    rules: &FrameRules,
    frames: mpsc::Sender<(SocketAddr, Bytes)>,
) -> std::io::Result<()> {
    let overhead = if rules.keys.is_some() { ENVELOPE_OVERHEAD } else { 0 };
    let max_frame_bytes = rules.max_frame_bytes + overhead;
    loop {
        let mut header = [0u8; FRAME_HEADER_BYTES];
        match stream.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes(header) as usize;
        if len > max_frame_bytes {
            // A peer whose frame limit is larger than ours: what it sends
            // this way never arrives, so say so where an operator looks.
            tracing::warn!(peer = %from, bytes = len, limit = max_frame_bytes, "stream frame over the frame limit; closing");
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("frame of {len} bytes over limit"),
            ));
        }
        let mut payload = BytesMut::zeroed(len);
        stream.read_exact(&mut payload).await?;
        let payload = match &rules.keys {
            None => payload.freeze(),
            Some(keys) => match off_worker(len, keys.clone(), {
                let now_ms = rules.clock.wall_ms();
                move |k| k.open(&payload, now_ms)
            })
            .await
            {
                Ok(plain) => Bytes::from(plain),
                Err(error) => {
                    rules.auth_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, error));
                }
            },
        };
        if frames.send((from, payload)).await.is_err() {
            return Ok(());
        }
    }
}
