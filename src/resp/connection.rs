//! One client connection's task: read, parse every complete frame in the
//! buffer, execute each, write all their replies with one write, repeat —
//! until the client leaves, sends QUIT or a malformed frame, or the node
//! shuts down.
//!
//! Memory per connection is bounded: the parser refuses anything over the
//! limits before it is buffered; replies are flushed early once a batch's
//! output passes [`OUTPUT_FLUSH_BYTES`], and no further command runs (and
//! nothing more is read) until they are written, so a client that pipelines
//! without reading stalls itself rather than growing our buffers; large
//! values are shared with the store rather than copied into replies
//! ([`Output`]); a command whose unsent replies pass
//! `client_output_buffer_limit` (Redis's hard limit for normal clients)
//! gets the connection closed; and buffers grown by one large request are
//! released afterwards. A client idle for `timeout` — nothing read from it
//! and nothing written to it — is closed, as Redis's `timeout` does, under
//! the value in force: `CONFIG SET timeout` wakes idle connections. A
//! client another one killed (`CLIENT KILL`) is closed when it next waits
//! for input, after its batch in hand is answered, or while its replies
//! wait for it to read them.
//!
//! The connection is generic over its byte stream, so a plain TCP client
//! and a TLS one run the same code, monomorphised: the plain path has no
//! indirection.

use std::io::{self, IoSlice};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::clients::{Client, Registration};
use super::cmd::{self, Ctx, Flow, Session};
use super::output::Output;
use super::parse::{Parser, ProtocolError};
use super::shared::Shared;
use super::shutdown::Shutdown;
use crate::server::control::Replicate;

/// A client connection and everything it owns.
pub(crate) struct Connection<S> {
    stream: S,
    shared: Arc<Shared>,
    shutdown: Shutdown,
    parser: Parser,
    session: Session,
    /// Received bytes; starts at the first byte of an unparsed frame.
    input: BytesMut,
    /// Replies not yet written.
    output: Output,
    /// Writes of this batch not yet handed to dissemination.
    pending: Replicate,
    /// In the node's registry while the connection lives.
    _registration: Registration,
}

/// Why a batch of buffered frames ended.
enum BatchEnd {
    /// Every complete frame ran: read more.
    NeedInput,
    /// QUIT: write the replies and close.
    Quit,
    /// A malformed frame: reply with the error and close.
    Protocol(ProtocolError),
    /// Writing failed: the client is gone (or stopped reading for longer
    /// than `timeout`).
    Io,
    /// The unsent replies passed `client_output_buffer_limit`: they are
    /// dropped and the connection closed, as Redis does.
    OutputLimit,
    /// The data dir can no longer be written: the batch's writes may not
    /// be durable, so its replies are not sent and the connection closes.
    StorageFailed,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// A connection over `stream`, stopping when `shutdown` fires.
    pub(crate) fn new(stream: S, shared: Arc<Shared>, shutdown: Shutdown, session: Session) -> Self {
        let mut parser = Parser::new(&shared.limits.current());
        parser.set_unauthenticated(session.auth_required(&shared));
        let registration = shared.clients.register(Arc::clone(&session.client), shared.clock.wall_ms());
        Connection {
            stream,
            shared,
            shutdown,
            parser,
            session,
            input: BytesMut::new(),
            output: Output::default(),
            pending: Replicate::default(),
            _registration: registration,
        }
    }

    /// Serves the client until it leaves, quits, breaks the protocol, or
    /// the node shuts down (after the batch in hand is answered).
    pub(crate) async fn run(mut self) {
        loop {
            let end = self.run_batch().await;
            let executed = std::mem::take(&mut self.session.commands);
            if executed > 0 {
                self.shared.stats.total_commands_processed.fetch_add(executed, Ordering::Relaxed);
            }
            match end {
                BatchEnd::NeedInput => {}
                BatchEnd::Quit => {
                    if self.flush().await.is_ok() {
                        let _ = self.stream.shutdown().await;
                    }
                    return;
                }
                BatchEnd::Protocol(error) => {
                    self.shared.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = %self.session.peer, %error, "protocol error; closing the connection");
                    error.write_reply(&mut self.output);
                    if self.flush().await.is_ok() {
                        self.linger().await;
                    }
                    return;
                }
                BatchEnd::OutputLimit => {
                    self.shared.stats.output_limit_disconnections.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        peer = %self.session.peer,
                        unsent = self.output.len(),
                        limit = self.shared.limits.output_buffer_limit_bytes(),
                        "closing a client over client_output_buffer_limit"
                    );
                    self.output.discard(RETAINED_BUFFER_BYTES);
                    return;
                }
                BatchEnd::Io | BatchEnd::StorageFailed => return,
            }
            if self.flush().await.is_err() || self.shutdown.fired() || self.session.client.killed() {
                return;
            }
            let wanted = self.parser.bytes_wanted(self.input.len());
            self.input.reserve(wanted.clamp(READ_CHUNK_BYTES, MAX_RESERVE_BYTES));
            let idle_since = self.shared.clock.mono();
            let mut idle_for = self.shared.limits.timeout();
            let read = loop {
                tokio::select! {
                    read = self.stream.read_buf(&mut self.input) => break read,
                    () = self.shutdown.wait() => return,
                    () = self.session.client.woken() => {
                        if self.session.client.killed() {
                            tracing::debug!(peer = %self.session.peer, "closing a client: CLIENT KILL");
                            return;
                        }
                        // `timeout` changed: what is left of the new one.
                        let idle = self.shared.clock.mono().saturating_sub(idle_since);
                        idle_for = self.shared.limits.timeout().map(|t| t.saturating_sub(idle));
                    }
                    () = idle_wait(idle_for) => {
                        tracing::debug!(peer = %self.session.peer, "closing an idle client (timeout)");
                        return;
                    }
                }
            };
            match read {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(peer = %self.session.peer, %error, "read failed");
                    return;
                }
            }
        }
    }

    /// Executes every complete frame in the input buffer, replies into the
    /// output buffer, then drops the consumed input.
    async fn run_batch(&mut self) -> BatchEnd {
        let Connection { stream, shared, shutdown, parser, session, input, output, pending, .. } = self;
        let shared: &Shared = shared;
        // Read once a batch: a CONFIG SET applies from the next batch on.
        let limit = shared.limits.output_buffer_limit_bytes();
        parser.set_max_bulk_bytes(shared.limits.max_bulk_bytes());
        let mut start = 0;
        // Commands read the time when they run, not when the batch was
        // read: a batch can stall (on a client that does not read its
        // replies, on the disk, on dissemination), and a `SET … PX` after
        // the stall must count its deadline from then. The clock is read
        // again after every wait and every `CLOCK_REFRESH_COMMANDS`
        // commands (a read per command was ~5% of a pipelined GET profile),
        // so a command runs on a time at most a few microseconds old.
        let mut now_ms = shared.clock.wall_ms();
        let mut since_clock_read = 0;
        // Timed per batch, not per command: a clock read per command was a
        // visible share of a pipelined profile, and the replies of a batch
        // are written together, so its time is what each command waited.
        let started = shared.metrics.as_ref().map(|_| shared.clock.mono());
        let end = loop {
            let frame = &input[start..];
            let consumed = match parser.parse(frame) {
                Ok(Some(consumed)) => consumed,
                Ok(None) => break BatchEnd::NeedInput,
                Err(error) => break BatchEnd::Protocol(error),
            };
            start += consumed;
            let args = parser.args(frame);
            if args.is_empty() {
                continue;
            }
            if since_clock_read == CLOCK_REFRESH_COMMANDS {
                now_ms = shared.clock.wall_ms();
                since_clock_read = 0;
            }
            since_clock_read += 1;
            let mut ctx = Ctx { shared, session, out: output, pending, now_ms };
            let mut flow = cmd::execute(args, &mut ctx);
            if let Flow::Ask(asked) = flow {
                flow = cmd::answer(asked, args, &mut ctx).await;
                // The driver's answer may have taken a while.
                now_ms = ctx.now_ms;
            }
            parser.set_unauthenticated(session.auth_required(shared));
            match flow {
                Flow::Close => break BatchEnd::Quit,
                Flow::HandOver => {
                    cmd::replicate(shared, pending).await;
                    // The hand-over may have waited on a full queue.
                    now_ms = shared.clock.wall_ms();
                    since_clock_read = 0;
                }
                Flow::Continue | Flow::Ask(_) => {}
            }
            if limit != 0 && output.len() > limit {
                break BatchEnd::OutputLimit;
            }
            if output.len() >= OUTPUT_FLUSH_BYTES {
                if cmd::settle(shared, session, pending).await.is_err() {
                    break BatchEnd::StorageFailed;
                }
                if flush(stream, output, shutdown, &session.client, shared).await.is_err() {
                    break BatchEnd::Io;
                }
                now_ms = shared.clock.wall_ms();
                since_clock_read = 0;
            }
        };
        // Before any reply of the batch is written: once a client has an
        // acknowledgement, its write is already in dissemination's hands
        // (and in the data dir's).
        let end = match cmd::settle(shared, session, pending).await {
            Ok(()) => end,
            Err(_) => BatchEnd::StorageFailed,
        };
        match (&shared.metrics, started) {
            (Some(metrics), Some(started)) => {
                let latency = shared.clock.mono().saturating_sub(started);
                session.tally.take(|slot, calls, errors| metrics.add(slot, calls, errors, latency));
            }
            _ => session.tally.take(|_, _, _| {}),
        }
        if start == input.len() && input.capacity() > RETAINED_BUFFER_BYTES {
            *input = BytesMut::new();
        } else {
            input.advance(start);
        }
        end
    }

    async fn flush(&mut self) -> io::Result<()> {
        flush(&mut self.stream, &mut self.output, &mut self.shutdown, &self.session.client, &self.shared).await
    }

    /// After a protocol error: sends FIN behind the error reply, then reads
    /// and discards what the client is still sending, for a bounded time.
    /// Closing with unread input would send a reset, and the client could
    /// lose the error before reading it.
    async fn linger(&mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        self.input.clear();
        let drain = async {
            let mut discarded = 0;
            while discarded < LINGER_MAX_BYTES {
                self.input.clear();
                self.input.reserve(READ_CHUNK_BYTES);
                match self.stream.read_buf(&mut self.input).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => discarded += n,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}

/// Writes `output` out. If the node starts shutting down meanwhile, a
/// client that does not read gets [`SHUTDOWN_WRITE_GRACE`] more, so it
/// cannot hold shutdown up; with an idle `timeout` (the one in force: a
/// change wakes the write), a client that takes none of it for that long is
/// given up on; a client killed meanwhile is closed without the rest.
/// Buffers grown past [`RETAINED_BUFFER_BYTES`] are released.
async fn flush<S: AsyncWrite + Unpin>(
    stream: &mut S,
    output: &mut Output,
    shutdown: &mut Shutdown,
    client: &Client,
    shared: &Shared,
) -> io::Result<()> {
    if output.is_empty() {
        return Ok(());
    }
    // `write_out` advances `output` as it goes: a new one resumes it.
    let written = loop {
        tokio::select! {
            biased;
            written = write_out(stream, output, shared.limits.timeout()) => break written,
            () = shutdown.wait() => {
                break tokio::time::timeout(SHUTDOWN_WRITE_GRACE, write_out(stream, output, shared.limits.timeout()))
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()));
            }
            () = client.woken() => {
                if client.killed() {
                    break Err(io::ErrorKind::ConnectionAborted.into());
                }
            }
        }
    };
    output.discard(RETAINED_BUFFER_BYTES);
    written
}

/// Writes all of `output`, a vectored write at a time (shared values are
/// pieces of their own); each write must make progress within `timeout`.
async fn write_out<S: AsyncWrite + Unpin>(
    stream: &mut S,
    output: &mut Output,
    timeout: Option<Duration>,
) -> io::Result<()> {
    while output.has_remaining() {
        let written = {
            let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
            let filled = output.chunks_vectored(&mut slices);
            let write = stream.write_vectored(&slices[..filled]);
            match timeout {
                Some(timeout) => tokio::time::timeout(timeout, write).await.map_err(|_| io::ErrorKind::TimedOut)??,
                None => write.await?,
            }
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        output.advance(written);
    }
    stream.flush().await
}

/// Completes after `timeout`; never without one.
async fn idle_wait(timeout: Option<Duration>) {
    match timeout {
        Some(timeout) => tokio::time::sleep(timeout).await,
        None => std::future::pending().await,
    }
}

/// Slots offered to one vectored write.
const WRITE_SLICES: usize = 64;

/// Commands run on one clock reading at most (see `run_batch`).
const CLOCK_REFRESH_COMMANDS: u32 = 32;

/// The least buffer room offered to each read.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// The most the input buffer grows ahead of a large bulk in one step (it
/// grows by doubling beyond that, as the bytes arrive).
const MAX_RESERVE_BYTES: usize = 8 << 20;

/// Replies buffered within one batch before they are written early.
const OUTPUT_FLUSH_BYTES: usize = 1 << 20;

/// Buffers larger than this are released once empty.
const RETAINED_BUFFER_BYTES: usize = 256 * 1024;

/// How long a closing connection keeps draining input after a protocol
/// error, and how much it drains.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_MAX_BYTES: usize = 1 << 20;

/// How long a reply may take to write once shutdown has begun.
const SHUTDOWN_WRITE_GRACE: Duration = Duration::from_secs(1);
