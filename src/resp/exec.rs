//! The command executor for callers without a connection — the simulator's
//! clients: RESP bytes in, the reply bytes and the acknowledged writes out,
//! at a time the caller gives. It runs the same parser and the same
//! dispatcher (`cmd::execute`) as `rumor serve`'s connections, so a command
//! or an option added there is one the simulator runs too.
//!
//! Nothing here waits or reads a clock: the writes a command queues come
//! back to the caller, who disseminates them its own way (the simulator
//! hands them to the node after its channel delay), instead of going to a
//! driver task; and the two commands that need the driver's answer (INFO,
//! MEMBERS) are refused with [`ExecError::NeedsDriver`].

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use tokio::sync::mpsc;

use super::acl::throttle::AuthThrottle;
use super::acl::{AuthThrottleLimits, UserSource, Users};
use super::clients::Registration;
use super::cmd::{self, Ctx, Flow, Session};
use super::output::Output;
use super::parse::{Parser, ProtocolError};
use super::shared::{ClientLimits, ClientStats, Shared};
use crate::core::store::{Entry, Store};
use crate::core::version::Timestamp;
use crate::server::clock::Clock;
use crate::server::control::Replicate;

/// One client session on one node, run command by command.
#[derive(Debug)]
pub struct Executor {
    shared: Shared,
    session: Session,
    parser: Parser,
    out: Output,
    pending: Replicate,
    /// The session in its node's registry, as a connection's is.
    _registration: Registration,
}

/// What one command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// The reply, exactly as a connection would send it.
    pub reply: Vec<u8>,
    /// The writes it made, in order, each with the entry (and version) the
    /// store gave it: what the reply acknowledges and what is to be
    /// disseminated.
    pub writes: Vec<(Bytes, Entry)>,
    /// A FLUSHALL it made: every entry written at or before this
    /// timestamp is gone; to be disseminated as well.
    pub flushed: Option<Timestamp>,
    /// `QUIT`: a connection would close now.
    pub closed: bool,
}

/// Why a command did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The bytes are not a well-formed request (a connection would reply
    /// `-ERR Protocol error: …` and close).
    #[error("Protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The bytes end before the command does.
    #[error("the command is incomplete")]
    Incomplete,
    /// Bytes follow the one command.
    #[error("{0} bytes follow the command")]
    Trailing(usize),
    /// INFO or MEMBERS (answered by the node's driver task, which an
    /// executor has not got), or an AUTH that must wait out a delay.
    #[error("the command needs the node's driver task")]
    NeedsDriver,
}

impl Executor {
    /// A session of client `id` on the node named `name` that holds `store`,
    /// under `limits`, with `requirepass` set to `password`.
    pub fn new(id: u64, name: &str, store: Arc<Store>, limits: ClientLimits, password: Option<String>) -> Self {
        // Never sent on: the writes come back to the caller, and questions
        // for the driver are refused before they are asked.
        let (writes, _) = crate::server::handover::channel(1, usize::MAX);
        let (control, _) = mpsc::channel(1);
        let shared = Shared {
            name: name.to_owned(),
            store,
            clock: Clock::start(),
            writes,
            control,
            limits: limits.into(),
            fixed_settings: Vec::new(),
            users: Users::new(UserSource::default_user(password.as_deref())),
            auth_throttle: AuthThrottle::new(AuthThrottleLimits::default()),
            protected_mode: false,
            stats: ClientStats::default(),
            metrics: None,
            storage: None,
            clients: Default::default(),
            transaction_gate: Default::default(),
            shutdown_requested: Default::default(),
        };
        let mut parser = Parser::new(&shared.limits.current());
        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 6379));
        let session = Session::new(id, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), local);
        parser.set_unauthenticated(session.auth_required(&shared));
        let registration = shared.clients.register(Arc::clone(&session.client), shared.clock.wall_ms());
        Executor {
            shared,
            session,
            parser,
            out: Output::default(),
            pending: Replicate::default(),
            _registration: registration,
        }
    }

    /// Runs the one command in `frame` (array or inline form) at wall-clock
    /// `now_ms`.
    pub fn run(&mut self, frame: &[u8], now_ms: u64) -> Result<Executed, ExecError> {
        let consumed = match self.parser.parse(frame) {
            Ok(Some(consumed)) => consumed,
            failed => {
                // The parser is part-way through what it was given: start
                // the next call afresh.
                self.parser = Parser::new(&self.shared.limits.current());
                self.parser.set_unauthenticated(self.session.auth_required(&self.shared));
                return Err(failed.err().map_or(ExecError::Incomplete, ExecError::Protocol));
            }
        };
        if consumed != frame.len() {
            return Err(ExecError::Trailing(frame.len() - consumed));
        }
        let args = self.parser.args(frame);
        let mut closed = false;
        if !args.is_empty() {
            let Executor { shared, session, out, pending, .. } = self;
            let mut ctx = Ctx { shared, session, out, pending, now_ms };
            match cmd::execute(args, &mut ctx) {
                Flow::Ask(_) => return Err(ExecError::NeedsDriver),
                Flow::Close => closed = true,
                Flow::Continue | Flow::HandOver => {}
            }
        }
        self.parser.set_unauthenticated(self.session.auth_required(&self.shared));
        // Counted by the caller, if at all; kept from growing without end.
        self.session.commands = 0;
        self.session.unsettled_writes = false;
        self.session.tally.take(|_, _, _| {});
        let mut reply = Vec::with_capacity(self.out.len());
        while self.out.has_remaining() {
            let chunk = self.out.chunk();
            reply.extend_from_slice(chunk);
            let len = chunk.len();
            self.out.advance(len);
        }
        let Replicate { writes, flushed, .. } = std::mem::take(&mut self.pending);
        Ok(Executed { reply, writes, flushed, closed })
    }
}

/// `args` as one RESP array frame, as clients send commands.
pub fn frame(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::version::NodeId;

    fn executor(password: Option<&str>) -> Executor {
        let store = Arc::new(Store::new(NodeId::from_random_bytes([3; 16]), 500));
        Executor::new(1, "exec-node", store, ClientLimits::default(), password.map(str::to_owned))
    }

    const NOW_MS: u64 = 1_700_000_000_000;

    #[test]
    fn runs_at_the_time_given_and_reports_the_writes_acknowledged() {
        let mut e = executor(None);
        let set = e.run(&frame(&[b"SET", b"k", b"v", b"PX", b"1000"]), NOW_MS).unwrap();
        assert_eq!(set.reply, b"+OK\r\n");
        let [(key, entry)] = &set.writes[..] else { panic!("one write: {:?}", set.writes) };
        assert_eq!(key.as_ref(), b"k");
        assert_eq!(entry.value.as_deref(), Some(&b"v"[..]));
        assert_eq!(entry.expires_at_ms, Some(NOW_MS + 1000));
        assert_eq!(entry.version.timestamp.physical_ms(), NOW_MS);
        assert_eq!(e.run(&frame(&[b"GET", b"k"]), NOW_MS + 999).unwrap().reply, b"$1\r\nv\r\n");
        let expired = e.run(&frame(&[b"GET", b"k"]), NOW_MS + 1000).unwrap();
        assert_eq!((expired.reply, expired.writes), (b"$-1\r\n".to_vec(), Vec::new()));
        let mset = e.run(&frame(&[b"MSET", b"a", b"1", b"b", b"2"]), NOW_MS).unwrap();
        assert_eq!(mset.reply, b"+OK\r\n");
        let keys: Vec<&[u8]> = mset.writes.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, [b"a", b"b"]);
        assert!(mset.writes[0].1.version < mset.writes[1].1.version);
        let del = e.run(&frame(&[b"DEL", b"a", b"missing"]), NOW_MS).unwrap();
        assert_eq!(del.reply, b":1\r\n");
        assert!(del.writes.len() == 1 && del.writes[0].1.value.is_none(), "one tombstone");
    }

    #[test]
    fn errors_are_replies_and_write_nothing() {
        let mut e = executor(Some("pw"));
        let refused = e.run(&frame(&[b"SET", b"k", b"v"]), NOW_MS).unwrap();
        assert_eq!(refused.reply, b"-NOAUTH Authentication required.\r\n");
        assert!(refused.writes.is_empty());
        assert_eq!(e.run(b"AUTH pw\r\n", NOW_MS).unwrap().reply, b"+OK\r\n", "inline form");
        let bad = e.run(&frame(&[b"SET", b"k", b"v", b"EX", b"0"]), NOW_MS).unwrap();
        assert_eq!(bad.reply, b"-ERR invalid expire time in 'set' command\r\n");
        assert!(bad.writes.is_empty());
        assert!(e.run(&frame(&[b"NOPE"]), NOW_MS).unwrap().reply.starts_with(b"-ERR unknown command 'NOPE'"));
        assert!(e.run(&frame(&[b"QUIT"]), NOW_MS).unwrap().closed);
    }

    #[test]
    fn what_is_not_one_command_is_refused() {
        let mut e = executor(None);
        assert_eq!(e.run(b"*1\r\n$4\r\nPI", NOW_MS), Err(ExecError::Incomplete));
        assert_eq!(e.run(b"*1\r\n$x\r\n", NOW_MS), Err(ExecError::Protocol(ProtocolError::InvalidBulkLength)));
        let two = [frame(&[b"PING"]), frame(&[b"PING"])].concat();
        assert_eq!(e.run(&two, NOW_MS), Err(ExecError::Trailing(14)));
        assert_eq!(e.run(&frame(&[b"MEMBERS"]), NOW_MS), Err(ExecError::NeedsDriver));
        assert_eq!(e.run(&frame(&[b"PING"]), NOW_MS).unwrap().reply, b"+PONG\r\n", "the session goes on");
    }

    #[test]
    fn the_session_keeps_its_protocol_between_commands() {
        let mut e = executor(None);
        assert!(e.run(&frame(&[b"HELLO", b"3"]), NOW_MS).unwrap().reply.starts_with(b"%7\r\n"));
        assert_eq!(e.run(&frame(&[b"GET", b"k"]), NOW_MS).unwrap().reply, b"_\r\n");
        let list = e.run(&frame(&[b"CLIENT", b"LIST"]), NOW_MS).unwrap().reply;
        assert!(
            list.starts_with(b"=") && list.windows(6).any(|w| w == b" resp="),
            "{:?}",
            String::from_utf8_lossy(&list)
        );
        assert_eq!(e.run(&frame(&[b"RESET"]), NOW_MS).unwrap().reply, b"+RESET\r\n");
        assert_eq!(e.run(&frame(&[b"GET", b"k"]), NOW_MS).unwrap().reply, b"$-1\r\n");
    }
}
