//! Test helpers: a [`Shared`] around a real store, a stand-in for the
//! driver task that answers control questions, and a harness that runs
//! commands through the real parser and dispatcher.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Buf;
use tokio::sync::mpsc;

use super::{Ctx, Flow, Session, execute};
use crate::core::store::Store;
use crate::core::version::NodeId;
use crate::resp::acl::throttle::AuthThrottle;
use crate::resp::acl::{AuthThrottleLimits, UserSource, Users};
use crate::resp::output::Output;
use crate::resp::parse::Parser;
use crate::resp::shared::{ClientLimits, ClientStats, Shared};
use crate::server::clock::Clock;
use crate::server::control::{Control, Replicate};
use crate::server::handover;
use crate::server::metrics::NodeSnapshot;

/// Small limits, so tests can reach them.
pub(crate) fn limits() -> ClientLimits {
    ClientLimits {
        max_clients: 64,
        max_inline_bytes: 1024,
        max_bulk_bytes: 1 << 20,
        max_args: 1024,
        max_key_bytes: 32,
        ..ClientLimits::default()
    }
}

/// The members the stand-in driver reports.
pub(crate) const MEMBERS: [&str; 2] = ["test-node 127.0.0.1:7946 alive", "other 127.0.0.1:7947 suspect"];

/// A `Shared` with a real store; a task answers control questions while
/// the `Shared` lives. Returns the receiving end of the writes channel.
pub(crate) fn shared(limits: ClientLimits, password: Option<&str>) -> (Arc<Shared>, handover::Receiver) {
    shared_with_capacity(limits, password, WRITES_CAPACITY)
}

/// [`shared`] with a writes channel of `writes_capacity`.
pub(crate) fn shared_with_capacity(
    limits: ClientLimits,
    password: Option<&str>,
    writes_capacity: usize,
) -> (Arc<Shared>, handover::Receiver) {
    let (control, mut questions) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(question) = questions.recv().await {
            match question {
                Control::Members(answer) => {
                    let _ = answer.send(MEMBERS.iter().map(|m| (*m).to_owned()).collect());
                }
                Control::Snapshot(answer) => {
                    let members = [("alive".to_owned(), 1), ("suspect".to_owned(), 1)].into();
                    let _ = answer.send(NodeSnapshot { members, ..NodeSnapshot::default() });
                }
                // A test driver with two peers that hold everything.
                Control::Wait { answer, .. } => {
                    let _ = answer.send(2);
                }
            }
        }
    });
    shared_with_control(limits, password, control, writes_capacity)
}

/// A `Shared` whose control questions go to `control`.
fn shared_with_control(
    limits: ClientLimits,
    password: Option<&str>,
    control: mpsc::Sender<Control>,
    writes_capacity: usize,
) -> (Arc<Shared>, handover::Receiver) {
    let (writes, replicated) = handover::channel(writes_capacity, usize::MAX);
    let shared = Shared {
        name: "test-node".to_owned(),
        store: Arc::new(Store::new(NodeId::from_random_bytes([1; 16]), 500)),
        clock: Clock::start(),
        writes,
        control,
        limits: limits.into(),
        fixed_settings: crate::config::fixed_parameters(&crate::config::Settings::default()),
        users: Users::new(UserSource::default_user(password)),
        auth_throttle: AuthThrottle::new(AuthThrottleLimits::default()),
        protected_mode: true,
        stats: ClientStats::default(),
        metrics: None,
        storage: None,
        clients: Default::default(),
        transaction_gate: Default::default(),
        shutdown_requested: Default::default(),
    };
    (Arc::new(shared), replicated)
}

/// Runs commands as one connection would.
pub(crate) struct Harness {
    /// The node state the commands run on.
    pub(crate) shared: Arc<Shared>,
    /// Writes handed to dissemination.
    pub(crate) replicated: handover::Receiver,
    session: Session,
    parser: Parser,
    /// Keeps the session in the node's registry, as a connection is.
    _registration: crate::resp::clients::Registration,
}

/// A command's context on the harness's node and session, at the clock's time.
fn context<'a>(
    shared: &'a Shared,
    session: &'a mut Session,
    out: &'a mut Output,
    pending: &'a mut Replicate,
) -> Ctx<'a> {
    Ctx { shared, session, out, pending, now_ms: shared.clock.wall_ms() }
}

impl Harness {
    /// A harness with test limits and no password.
    pub(crate) fn new() -> Self {
        Self::from_parts(shared(limits(), None))
    }

    /// A harness whose node requires `password`.
    pub(crate) fn with_password(password: &str) -> Self {
        Self::from_parts(shared(limits(), Some(password)))
    }

    /// A harness whose node's users are those of the ACL file `text`.
    pub(crate) fn with_acl(text: &str) -> Self {
        let (shared, replicated) = shared(limits(), None);
        let mut shared = Arc::into_inner(shared).unwrap_or_else(|| unreachable!("just made"));
        shared.users = Users::new(UserSource::from_text(text));
        Self::from_parts((Arc::new(shared), replicated))
    }

    /// A harness with `limits`.
    pub(crate) fn with_limits(limits: ClientLimits) -> Self {
        Self::from_parts(shared(limits, None))
    }

    /// A harness whose driver never answers (its control channel is closed).
    pub(crate) fn without_driver() -> Self {
        let (control, _) = mpsc::channel(1);
        Self::from_parts(shared_with_control(limits(), None, control, WRITES_CAPACITY))
    }

    fn from_parts((shared, replicated): (Arc<Shared>, handover::Receiver)) -> Self {
        let peer: SocketAddr = ([127, 0, 0, 1], 40_000).into();
        let local: SocketAddr = ([127, 0, 0, 1], 6380).into();
        let session = Session::new(7, peer, local);
        let registration = shared.clients.register(Arc::clone(&session.client), shared.clock.wall_ms());
        Harness {
            parser: Parser::new(&shared.limits.current()),
            shared,
            replicated,
            session,
            _registration: registration,
        }
    }

    /// The session as a client from `peer` would have it.
    pub(crate) fn connect_from(&mut self, peer: SocketAddr) {
        self.session.peer = peer;
    }

    /// Runs one command; returns its reply as text (lossy).
    pub(crate) async fn run(&mut self, args: &[&str]) -> String {
        self.run_flow(args).await.0
    }

    /// Runs one command; returns its reply and what the connection does next.
    pub(crate) async fn run_flow(&mut self, args: &[&str]) -> (String, Flow) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let (reply, flow) = self.run_raw(&args).await;
        (String::from_utf8_lossy(&reply).into_owned(), flow)
    }

    /// Runs one binary command; returns the exact reply bytes.
    pub(crate) async fn run_bytes(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.run_raw(args).await.0
    }

    /// `args` as a parsed request frame.
    fn frame(&mut self, args: &[&[u8]]) -> Vec<u8> {
        let mut frame = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            frame.extend_from_slice(arg);
            frame.extend_from_slice(b"\r\n");
        }
        assert_eq!(self.parser.parse(&frame), Ok(Some(frame.len())));
        frame
    }

    /// Whether the command would run off the client workers.
    pub(crate) fn runs_long(&mut self, args: &[&str]) -> bool {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let frame = self.frame(&args);
        let (mut out, mut pending) = (Output::default(), Replicate::default());
        let ctx = context(&self.shared, &mut self.session, &mut out, &mut pending);
        let args = self.parser.args(&frame);
        let (_, spec) = super::lookup(args.arg(0)).expect("a known command");
        super::runs_long(spec.handler, args, &ctx)
    }

    async fn run_raw(&mut self, args: &[&[u8]]) -> (Vec<u8>, Flow) {
        let frame = self.frame(args);
        let (mut out, mut pending) = (Output::default(), Replicate::default());
        let mut ctx = context(&self.shared, &mut self.session, &mut out, &mut pending);
        let args = self.parser.args(&frame);
        let mut flow = execute(args, &mut ctx);
        if let Flow::Ask(asked) = flow {
            flow = super::answer(asked, args, &mut ctx).await;
        }
        super::replicate(&self.shared, &mut pending).await;
        let mut bytes = Vec::with_capacity(out.len());
        while out.has_remaining() {
            bytes.extend_from_slice(out.chunk());
            out.advance(out.chunk().len());
        }
        (bytes, flow)
    }

    /// Keys of the writes handed to dissemination since the last call,
    /// with whether each is a delete.
    pub(crate) fn replicated(&mut self) -> Vec<(String, bool)> {
        let mut writes = Vec::new();
        while let Some(batch) = self.replicated.try_recv() {
            for (key, entry) in batch.writes {
                writes.push((String::from_utf8_lossy(&key).into_owned(), entry.value.is_none()));
            }
        }
        writes
    }

    /// Commands executed so far.
    pub(crate) fn commands(&self) -> u64 {
        self.session.commands
    }

    /// What the session has tallied for metrics since the last take.
    pub(crate) fn tally(&mut self) -> &mut super::CommandTally {
        &mut self.session.tally
    }

    /// The wall clock the commands read.
    pub(crate) fn now_ms(&self) -> u64 {
        self.shared.clock.wall_ms()
    }
}

/// Room in the writes channel before a test must drain it.
const WRITES_CAPACITY: usize = 4096;

pub(crate) use crate::resp::exec::frame;
