//! Length-prefixed frames over TCP on the gossip port: for payloads too big
//! for one datagram. Outbound, one task per peer keeps a connection and
//! writes frames in order; inbound, one task per connection reads frames and
//! hands them to the driver.
//!
//! Anyone who can reach the port may connect, so inbound connections are
//! capped in number and in time (first frame, between frames, per frame),
//! and a frame's memory is reserved from a budget shared by every
//! connection only as its bytes arrive. With a cluster key a frame can be
//! checked only once whole, so a connection's first frame must be small
//! ([`StreamLimits::unauthenticated_frame_bytes`]): our senders open every
//! connection with an empty sealed frame, and a stranger holds no more than
//! that before its key is found wanting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::config::StreamLimits;

use crate::core::wire::FRAME_HEADER_BYTES;
use crate::server::clock::Clock;
use crate::server::envelope::{ClusterKeys, ENVELOPE_OVERHEAD};

/// Frames queued per peer before new ones are dropped (and counted);
/// anti-entropy repairs what a dropped frame carried.
const QUEUE_PER_PEER: usize = 1024;
/// Bytes queued per peer before new frames are dropped, but for one
/// frame: 1,024 frames of large values would otherwise hold gigabytes for
/// a peer that reads slowly.
const QUEUE_BYTES_PER_PEER: usize = 64 << 20;
/// How long to wait for a peer to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest piece of a frame's body reserved and read at once: what a
/// connection that sent a frame's header and stalls holds of the budget.
/// Small, so that stalled connections up to the cap (256 by default) hold
/// a fraction of the budget (16 MiB of 128 MiB) even without a cluster key,
/// when every frame counts as authenticated.
const READ_PIECE_BYTES: usize = 64 * 1024;
/// Connections refused over the cap that are logged as warnings before
/// they go to debug.
const REFUSAL_WARNINGS: u64 = 10;

/// Counters of inbound stream connections, shared with the driver's INFO.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Connections closed at once because `max_inbound` were open.
    pub refused: AtomicU64,
    /// Connections closed for a timeout (no first frame, idle, slow frame).
    pub timed_out: AtomicU64,
}

/// Outbound stream connections, one task per peer.
#[derive(Debug, Default)]
pub struct StreamPool {
    peers: HashMap<SocketAddr, Peer>,
    /// Frames dropped because a peer's queue was full or its connection failed.
    pub dropped: Arc<AtomicU64>,
    /// Seal every frame with a cluster key, stamped with the clock's time.
    sealing: Option<(ClusterKeys, Clock)>,
    /// A connection with nothing to send for this long is closed: before
    /// the peer's idle timeout, so a peer's close never meets a frame in
    /// flight.
    idle_close: Duration,
}

impl StreamPool {
    /// A pool whose frames are sealed with `keys`, if given, stamped with
    /// `clock`'s wall time; connections idle for `idle_close` are closed.
    pub fn new(keys: Option<ClusterKeys>, clock: Clock, idle_close: Duration) -> Self {
        StreamPool { sealing: keys.map(|keys| (keys, clock)), idle_close, ..StreamPool::default() }
    }

    /// Queues `payload` for `to`, starting its connection task if needed.
    pub fn send(&mut self, to: SocketAddr, payload: Bytes) {
        let spawn = || spawn_peer(to, self.dropped.clone(), self.sealing.clone(), self.idle_close);
        let peer = self.peers.entry(to).or_insert_with(spawn);
        if peer.sender.is_closed() {
            *peer = spawn();
        }
        let (len, queued) = (payload.len(), peer.queued.load(Ordering::Relaxed));
        if queued != 0 && queued + len > QUEUE_BYTES_PER_PEER {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Counted before the task can take it, so the task's subtraction
        // never comes first.
        peer.queued.fetch_add(len, Ordering::Relaxed);
        if peer.sender.try_send(payload).is_err() {
            peer.queued.fetch_sub(len, Ordering::Relaxed);
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
            .map(|(_, Peer { sender, task, .. })| {
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

/// One peer's outbound connection task, and what is queued for it.
#[derive(Debug)]
struct Peer {
    sender: mpsc::Sender<Bytes>,
    task: tokio::task::JoinHandle<()>,
    /// Bytes of the frames in `sender`'s queue.
    queued: Arc<AtomicUsize>,
}

fn spawn_peer(
    to: SocketAddr,
    dropped: Arc<AtomicU64>,
    sealing: Option<(ClusterKeys, Clock)>,
    idle_close: Duration,
) -> Peer {
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE_PER_PEER);
    let queued = Arc::new(AtomicUsize::new(0));
    let taken = queued.clone();
    let task = tokio::spawn(async move {
        let mut connection: Option<TcpStream> = None;
        loop {
            let payload = match tokio::time::timeout(idle_close, rx.recv()).await {
                Ok(Some(payload)) => {
                    taken.fetch_sub(payload.len(), Ordering::Relaxed);
                    payload
                }
                Ok(None) => break,
                Err(_) => {
                    if let Some(mut stream) = connection.take() {
                        let _ = stream.shutdown().await;
                    }
                    continue;
                }
            };
            if connection.as_ref().is_some_and(closed_by_peer) {
                connection = None;
            }
            if connection.is_none() {
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
                    Ok(Ok(mut stream)) => {
                        let _ = stream.set_nodelay(true);
                        if let Some((keys, clock)) = &sealing {
                            // The empty sealed frame that lets the peer
                            // check our key before it takes a big frame.
                            let hello = keys.seal(&[], clock.wall_ms());
                            if write_frame(&mut stream, &hello).await.is_err() {
                                dropped.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(peer = %to, "stream hello failed; frame dropped");
                                continue;
                            }
                        }
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
            if let Err(error) = write_frame(stream, &payload).await {
                dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %to, %error, "stream write failed; frame dropped");
                connection = None;
            }
        }
        if let Some(mut stream) = connection {
            let _ = stream.shutdown().await;
        }
    });
    Peer { sender: tx, task, queued }
}

async fn write_frame(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    stream.write_all(&(payload.len() as u32).to_be_bytes()).await?;
    stream.write_all(payload).await
}

/// Whether the peer closed `stream` (it closes idle connections): then a
/// frame written to it would be lost, so the writer reconnects first.
fn closed_by_peer(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    match stream.try_read(&mut probe) {
        Ok(0) => true,
        // Peers never write on our outbound connections; a would-block is
        // an open one.
        Ok(_) => false,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    }
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
    /// Caps on connections, time and buffered bytes.
    pub limits: StreamLimits,
    /// Where refused and timed-out connections are counted.
    pub stats: Arc<StreamStats>,
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
    let slots = Arc::new(Semaphore::new(rules.limits.max_inbound));
    let budget = Arc::new(Semaphore::new(rules.limits.buffer_bytes.min(Semaphore::MAX_PERMITS)));
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "gossip stream accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closed at once: a flood of connections costs us no descriptor
            // for longer than this.
            drop(stream);
            let refused = rules.stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
            let max = rules.limits.max_inbound;
            if refused <= REFUSAL_WARNINGS {
                tracing::warn!(%from, max, "gossip stream refused: {max} inbound connections open");
            } else {
                tracing::debug!(%from, max, "gossip stream refused: inbound connections at the cap");
            }
            continue;
        };
        let (frames, rules, budget) = (frames.clone(), rules.clone(), budget.clone());
        tokio::spawn(async move {
            match read_frames(stream, from, &rules, &budget, frames).await {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                    rules.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%from, %error, "gossip stream closed");
                }
                Err(error) => tracing::debug!(%from, %error, "gossip stream closed"),
            }
            drop(slot);
        });
    }
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_owned())
}

/// Reads frames off one inbound connection until it ends, breaks a rule or
/// times out; generic over the stream so the fuzz check can feed it bytes.
pub(crate) async fn read_frames<S: AsyncRead + Unpin>(
    mut stream: S,
    from: SocketAddr,
    rules: &FrameRules,
    budget: &Arc<Semaphore>,
    frames: mpsc::Sender<(SocketAddr, Bytes)>,
) -> std::io::Result<()> {
    let overhead = if rules.keys.is_some() { ENVELOPE_OVERHEAD } else { 0 };
    let max_frame_bytes = rules.max_frame_bytes + overhead;
    // Without a key there is nothing to check here: the core checks every
    // message's sender against the connection's source.
    let mut authenticated = rules.keys.is_none();
    let mut first = true;
    loop {
        let mut header = [0u8; FRAME_HEADER_BYTES];
        let wait = if first { rules.limits.first_frame_timeout } else { rules.limits.idle_timeout };
        match tokio::time::timeout(wait, stream.read_exact(&mut header)).await {
            Err(_) if first => return Err(timed_out("no frame after connecting")),
            Err(_) => return Err(timed_out("idle")),
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
        }
        first = false;
        let len = u32::from_be_bytes(header) as usize;
        // A first frame is never allowed more than any frame: the budget
        // holds at least one largest frame, so a read always gets its bytes.
        let limit =
            if authenticated { max_frame_bytes } else { rules.limits.unauthenticated_frame_bytes.min(max_frame_bytes) };
        if len > limit {
            // A peer whose frame limit is larger than ours: what it sends
            // this way never arrives, so say so where an operator looks.
            tracing::warn!(peer = %from, bytes = len, limit, "stream frame over the frame limit; closing");
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("frame of {len} bytes over the limit of {limit}"),
            ));
        }
        let (payload, reserved) =
            match tokio::time::timeout(rules.limits.frame_timeout, read_body(&mut stream, len, budget)).await {
                Ok(read) => read?,
                Err(_) => return Err(timed_out("frame body too slow")),
            };
        let payload = match &rules.keys {
            None => Bytes::from(payload),
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
        authenticated = true;
        drop(reserved);
        if payload.is_empty() {
            // A sender's hello: it only proved its key.
            continue;
        }
        if frames.send((from, payload)).await.is_err() {
            return Ok(());
        }
    }
}

/// Reads a body of `len` bytes in pieces of at most [`READ_PIECE_BYTES`],
/// each reserved from `budget` before it is read (released when the
/// returned permit drops): a half-sent frame holds about what was sent, and
/// all frames being read together at most the budget. Pieces, not a
/// growing buffer: a buffer that grows is copied at each growth, and the
/// allocator may keep the old copies resident for a while. A frame of
/// several pieces is copied into one buffer once it is whole.
async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    len: usize,
    budget: &Arc<Semaphore>,
) -> std::io::Result<(Vec<u8>, Option<OwnedSemaphorePermit>)> {
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    let mut reserved: Option<OwnedSemaphorePermit> = None;
    let mut filled = 0;
    while filled < len {
        let size = (len - filled).min(READ_PIECE_BYTES);
        let permit = budget
            .clone()
            .acquire_many_owned(size as u32)
            .await
            .map_err(|_| std::io::Error::other("stream budget closed"))?;
        match reserved.as_mut() {
            Some(held) => held.merge(permit),
            None => reserved = Some(permit),
        }
        let mut piece = Vec::with_capacity(size);
        while piece.len() < size {
            // Reads into the spare capacity only (a Vec grows itself only when full).
            if stream.read_buf(&mut piece).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        filled += size;
        pieces.push(piece);
    }
    let body = match pieces.len() {
        0 => Vec::new(),
        1 => pieces.pop().unwrap_or_default(),
        _ => {
            let mut body = Vec::with_capacity(len);
            for piece in pieces {
                body.extend_from_slice(&piece);
            }
            body
        }
    };
    Ok((body, reserved))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(limits: StreamLimits) -> FrameRules {
        FrameRules {
            max_frame_bytes: 8 << 20,
            keys: None,
            auth_failures: Arc::default(),
            clock: Clock::start(),
            limits,
            stats: Arc::default(),
        }
    }

    async fn accepted_pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn half_sent_frames_hold_only_what_arrived_and_share_one_budget() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let budget = Arc::new(Semaphore::new(1 << 20));
        let (mut a, mut a_in) = accepted_pair(&listener).await;
        let (mut b, mut b_in) = accepted_pair(&listener).await;
        a.write_all(&vec![1u8; 1000 << 10]).await.unwrap();
        b.write_all(&vec![2u8; 900 << 10]).await.unwrap();
        let reading_a = {
            let budget = budget.clone();
            tokio::spawn(async move { read_body(&mut a_in, 8 << 20, &budget).await.map(|_| ()) })
        };
        // A frame announced as 8 MiB holds what arrived of it, within a
        // piece, and never more than the budget.
        eventually(|| budget.available_permits() == 0).await;
        let b_read = tokio::time::timeout(Duration::from_millis(200), read_body(&mut b_in, 8 << 20, &budget)).await;
        assert!(b_read.is_err(), "b waits for budget while a holds it");
        drop(a);
        assert!(reading_a.await.unwrap().is_err(), "a's sender went away mid-frame");
        assert_eq!(budget.available_permits(), 1 << 20, "a's reservation is released");
        b.write_all(&[3u8; 1000]).await.unwrap();
        let (body, _held) = read_body(&mut b_in, (900 << 10) + 1000, &budget).await.unwrap();
        assert_eq!(body.len(), (900 << 10) + 1000);
    }

    /// Without a cluster key every frame counts as authenticated, so a
    /// stranger may announce the largest frame and stall: each such
    /// connection holds one piece of the budget, and the cap's worth of
    /// them leaves room for a member's frame.
    #[tokio::test]
    async fn stalled_frames_each_hold_one_small_piece_of_the_budget() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let budget_bytes = 4 << 20;
        let budget = Arc::new(Semaphore::new(budget_bytes));
        let mut stalled = Vec::new();
        for _ in 0..32 {
            let (mut sender, mut receiver) = accepted_pair(&listener).await;
            sender.write_all(b"12345").await.unwrap();
            let budget = budget.clone();
            let reading = tokio::spawn(async move { read_body(&mut receiver, 64 << 20, &budget).await.map(|_| ()) });
            stalled.push((sender, reading));
        }
        eventually(|| budget.available_permits() <= budget_bytes - 32 * READ_PIECE_BYTES).await;
        let (mut member, mut member_in) = accepted_pair(&listener).await;
        member.write_all(&vec![7u8; 1 << 20]).await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(5), read_body(&mut member_in, 1 << 20, &budget)).await;
        let (body, held) = read.expect("the member's frame is not starved").unwrap();
        assert_eq!(body.len(), 1 << 20);
        assert_eq!(budget.available_permits(), budget_bytes - 32 * READ_PIECE_BYTES - (1 << 20));
        drop(held);
        for (sender, reading) in stalled {
            drop(sender);
            assert!(reading.await.unwrap().is_err());
        }
    }

    /// Waits up to 5 s for `check`: counters are bumped just after a
    /// connection closes, reservations as bytes are read.
    async fn eventually(check: impl Fn() -> bool) {
        let met = tokio::time::timeout(Duration::from_secs(5), async {
            while !check() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(met.is_ok(), "condition not met in 5 s");
    }

    #[tokio::test]
    async fn connections_are_capped_and_silent_ones_time_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = StreamLimits {
            max_inbound: 2,
            first_frame_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(300),
            ..StreamLimits::default()
        };
        let rules = rules(limits);
        let stats = rules.stats.clone();
        let (frames_tx, mut frames) = mpsc::channel(8);
        let acceptor = tokio::spawn(accept_frames(listener, rules, frames_tx));
        let mut talker = TcpStream::connect(addr).await.unwrap();
        let payload = b"\x02hello";
        write_frame(&mut talker, payload).await.unwrap();
        let (_, got) = frames.recv().await.unwrap();
        assert_eq!(&got[..], payload);
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut over = TcpStream::connect(addr).await.unwrap();
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), over.read(&mut byte)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the third connection is closed at once");
        eventually(|| stats.refused.load(Ordering::Relaxed) == 1).await;
        let closed = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut byte)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "a connection that sends nothing is closed");
        let closed = tokio::time::timeout(Duration::from_secs(5), talker.read(&mut byte)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "an idle one too");
        eventually(|| stats.timed_out.load(Ordering::Relaxed) == 2).await;
        acceptor.abort();
    }

    /// A frame's body must arrive within `frame_timeout` of its header,
    /// however steadily its bytes trickle in: a byte every 20 ms keeps the
    /// connection busy but the frame of 1000 bytes is closed at 200 ms,
    /// long before the first-frame and idle timeouts (30 s).
    #[tokio::test]
    async fn a_frame_body_trickled_in_is_closed_at_the_frame_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = StreamLimits {
            first_frame_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            frame_timeout: Duration::from_millis(200),
            ..StreamLimits::default()
        };
        let rules = rules(limits);
        let stats = rules.stats.clone();
        let (frames_tx, mut frames) = mpsc::channel(8);
        let acceptor = tokio::spawn(accept_frames(listener, rules, frames_tx));
        let (mut reader, mut writer) = TcpStream::connect(addr).await.unwrap().into_split();
        writer.write_all(&1000u32.to_be_bytes()).await.unwrap();
        let trickle = async {
            // 250 bytes at one per 20 ms: 5 s, never the whole body.
            for _ in 0..250 {
                if writer.write_all(b"x").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let mut byte = [0u8; 1];
        let closed = tokio::select! {
            read = reader.read(&mut byte) => matches!(read, Ok(0) | Err(_)),
            () = trickle => false,
        };
        assert!(closed, "a frame body trickled in for 5 s was not cut off");
        eventually(|| stats.timed_out.load(Ordering::Relaxed) == 1).await;
        assert!(frames.try_recv().is_err(), "no frame is delivered");
        acceptor.abort();
    }
}
