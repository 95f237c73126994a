//! Command dispatch: finds a command by name (case-insensitively, without
//! allocating), checks its arity, then the client's authentication, in
//! that order as Redis does, and runs it. Each command writes its reply
//! straight into the connection's output buffer.
//!
//! One file per family of commands: `string` (GET, SET, MGET, MSET),
//! `keys` (DEL, EXISTS, DBSIZE, SCAN, KEYS), `expire` (EXPIRE and friends,
//! TTL, PTTL, PERSIST), `session` (PING, ECHO, AUTH, HELLO, RESET,
//! SELECT), `client` (CLIENT), `config_cmd` (CONFIG), `server` (DEBUG,
//! MEMBERS, TIME), `command` (COMMAND, from this file's table) and `info`
//! (INFO).
//!
//! The executor encodes every reply in the session's protocol (RESP2 until
//! `HELLO 3`) and drops the replies `CLIENT REPLY OFF|SKIP` asked not to
//! be sent.

mod acl_cmd;
mod bits;
pub(crate) mod category;
mod client;
mod command;
mod config_cmd;
mod dump;
mod expire;
mod info;
mod keys;
mod lcs;
mod object;
mod server;
mod session;
mod string;
mod string_update;
mod transaction;

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use self::category::{Categories, Flags};
use self::session::Replies;
pub(crate) use self::session::Session;
use super::acl::entries as acl_entries;
use super::output::Output;
use super::parse::Args;
use super::reply;
use crate::core::loading::CatchUpState;
use crate::core::store::{Entry, WriteError};
use crate::resp::shared::Shared;
use crate::server::control::{Control, Replicate};
use crate::server::storage::StorageFailed;

/// What the caller does after a command: [`execute`] never waits, so
/// whatever must wait is the caller's to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Go on with the next command.
    Continue,
    /// Go on, after handing the pending writes to dissemination: they have
    /// reached [`PENDING_WRITES_MAX`] or [`PENDING_BYTES_MAX`], and that hand-over's wait on a full
    /// queue is the backpressure that bounds them.
    HandOver,
    /// Send what is written and close (`QUIT`).
    Close,
    /// The command needs the driver task's answer: nothing is written yet;
    /// the caller runs [`answer`], which waits for it.
    Ask(Asked),
}

/// A command that [`execute`] checked and that needs the driver to
/// answer: its metrics slot and which question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Asked {
    slot: usize,
    question: Question,
}

/// The commands that wait: MEMBERS and INFO ask the driver; an AUTH from
/// an address that failed recently waits out its delay first; a command
/// that finds the transaction gate closed, or an EXEC that finds it held,
/// waits for it (see [`crate::resp::gate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Question {
    /// Run the command once the gate lets it pass shared.
    Gate,
    /// Run the EXEC once the gate lets it pass alone.
    Exec,
    Members,
    Info,
    /// AUTH after this wait.
    Auth(std::time::Duration),
    /// HELLO … AUTH after this wait.
    Hello(std::time::Duration),
    /// DEBUG SLEEP: `OK` after this wait.
    Sleep(std::time::Duration),
    /// WAIT numpeers timeout (`None`: no limit).
    Wait(usize, Option<std::time::Duration>),
}

/// What a command runs with.
pub(crate) struct Ctx<'a> {
    /// The node's shared state.
    pub(crate) shared: &'a Shared,
    /// This connection's state.
    pub(crate) session: &'a mut Session,
    /// Where the reply goes: the `reply` encoders write to it as to a
    /// buffer; large values are shared into it ([`Output::bulk_shared`]).
    pub(crate) out: &'a mut Output,
    /// Writes to hand to dissemination when the batch ends.
    pub(crate) pending: &'a mut Replicate,
    /// Wall-clock ms, read at most a few commands ago and again after any
    /// wait (see the connection's batch loop); commands that wait update it.
    pub(crate) now_ms: u64,
}

/// The command executor: runs one command (`args` is not empty), writes
/// its reply, queues its writes in `ctx.pending`, and counts it in the
/// session's [`CommandTally`]. Synchronous: the connection's task and the
/// simulator both call it, and do any waiting it asks for ([`Flow`]).
pub(crate) fn execute(args: Args<'_>, ctx: &mut Ctx<'_>) -> Flow {
    ctx.out.protocol = ctx.session.protocol;
    let replies = ctx.session.replies;
    if replies == Replies::On {
        return dispatch(args, ctx);
    }
    let mark = ctx.out.len();
    let flow = dispatch(args, ctx);
    if !matches!(flow, Flow::Ask(_)) {
        silence(ctx, replies, mark);
    }
    flow
}

/// Under `CLIENT REPLY OFF` (unless this command turned replies back on)
/// or for the command after `CLIENT REPLY SKIP`, drops what the command
/// wrote since `mark`.
fn silence(ctx: &mut Ctx<'_>, before: Replies, mark: usize) {
    match before {
        Replies::On => {}
        Replies::Off => {
            if ctx.session.replies == Replies::Off {
                ctx.out.truncate(mark);
            }
        }
        Replies::SkipNext => {
            ctx.out.truncate(mark);
            if ctx.session.replies == Replies::SkipNext {
                ctx.session.replies = Replies::On;
            }
        }
    }
}

/// Finds the command, runs it, counts it.
fn dispatch(args: Args<'_>, ctx: &mut Ctx<'_>) -> Flow {
    let Some((slot, spec)) = lookup(args.arg(0)) else {
        unknown_command(args, ctx.out);
        ctx.session.tally.count(UNKNOWN_SLOT, true);
        return Flow::Continue;
    };
    let sub = spec.subcommand(args);
    ctx.session.client.touch(slot, sub.map_or(0, |(index, _)| index + 1), ctx.now_ms);
    if ctx.session.transaction.is_some() && !transaction::runs_at_once(spec.handler) {
        return transaction::queue(slot, spec, sub.map(|(_, sub)| sub), args, ctx);
    }
    // Shared while a command runs; EXEC holds it alone instead.
    let shared = ctx.shared;
    let _pass = match spec.handler {
        Handler::Exec => None,
        _ => match shared.transaction_gate.try_shared() {
            Some(pass) => Some(pass),
            None => return Flow::Ask(Asked { slot, question: Question::Gate }),
        },
    };
    run_counted(slot, spec, sub.map(|(_, sub)| sub), args, ctx)
}

/// Runs a known command, counts it, and asks for a hand-over once enough
/// writes are queued.
fn run_counted(slot: usize, spec: &Spec, sub: Option<&Sub>, args: Args<'_>, ctx: &mut Ctx<'_>) -> Flow {
    let (flow, failed) = match run(slot, spec, sub, args, ctx) {
        // Counted once answered.
        Ok(Flow::Ask(question)) => return Flow::Ask(Asked { slot, ..question }),
        Ok(flow) => (flow, false),
        Err(error) => {
            error.write(ctx.out);
            (Flow::Continue, true)
        }
    };
    ctx.session.tally.count(slot, failed);
    let full = ctx.pending.writes.len() >= PENDING_WRITES_MAX || ctx.pending.bytes >= PENDING_BYTES_MAX;
    if flow == Flow::Continue && full { Flow::HandOver } else { flow }
}

/// Answers a command [`execute`] left to the driver ([`Flow::Ask`]):
/// waits for the driver, writes the reply and counts it.
pub(crate) async fn answer(asked: Asked, args: Args<'_>, ctx: &mut Ctx<'_>) -> Flow {
    let (replies, mark) = (ctx.session.replies, ctx.out.len());
    let answered = match asked.question {
        Question::Gate => {
            let flow = {
                let _pass = ctx.shared.transaction_gate.shared().await;
                ctx.now_ms = ctx.shared.clock.wall_ms();
                match lookup(args.arg(0)) {
                    Some((slot, spec)) => run_counted(slot, spec, spec.subcommand(args).map(|(_, sub)| sub), args, ctx),
                    None => Flow::Continue,
                }
            };
            return match flow {
                // It waits on something else too (INFO asks the driver).
                Flow::Ask(then) => Box::pin(answer(then, args, ctx)).await,
                flow => {
                    silence(ctx, replies, mark);
                    flow
                }
            };
        }
        Question::Exec => {
            let pass = ctx.shared.transaction_gate.exclusive().await;
            ctx.now_ms = ctx.shared.clock.wall_ms();
            match crate::resp::blocking::off_workers(|| transaction::run_exec(ctx, pass)) {
                Ok(flow) => {
                    ctx.session.tally.count(asked.slot, false);
                    silence(ctx, replies, mark);
                    return flow;
                }
                Err(error) => Err(error),
            }
        }
        Question::Members => server::members(ctx).await,
        Question::Info => info::info(args, ctx).await,
        Question::Auth(delay) => {
            tokio::time::sleep(delay).await;
            ctx.now_ms = ctx.shared.clock.wall_ms();
            session::auth(args, ctx)
        }
        Question::Sleep(delay) => {
            tokio::time::sleep(delay).await;
            ctx.now_ms = ctx.shared.clock.wall_ms();
            reply::ok(ctx.out);
            Ok(())
        }
        Question::Wait(numpeers, timeout) => server::wait(numpeers, timeout, ctx).await,
        Question::Hello(delay) => {
            tokio::time::sleep(delay).await;
            ctx.now_ms = ctx.shared.clock.wall_ms();
            session::hello(args, ctx)
        }
    };
    if let Err(error) = &answered {
        error.write(ctx.out);
    }
    ctx.session.tally.count(asked.slot, answered.is_err());
    silence(ctx, replies, mark);
    Flow::Continue
}

/// [`check`]s a known command and runs it.
fn run(slot: usize, spec: &Spec, sub: Option<&Sub>, args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<Flow, CommandError> {
    match check(slot, spec, sub, args, ctx) {
        Ok(Some(flow)) => Ok(flow),
        Ok(None) => handle(spec, args, ctx),
        Err(error) => Err(transaction::refused(spec, error, ctx)),
    }
}

/// Checks a known command's subcommand and arity, then the client's
/// authentication, then its user's permissions (command, then keys), then
/// (for a command that adds data) `maxmemory`, in that order as Redis 7
/// does: `None` when it may run, a flow when the check answered for it.
fn check(
    slot: usize,
    spec: &Spec,
    sub: Option<&Sub>,
    args: Args<'_>,
    ctx: &mut Ctx<'_>,
) -> Result<Option<Flow>, CommandError> {
    // A container's unknown subcommand first, as Redis finds it when it
    // looks the command up: so it is refused inside MULTI, not queued.
    if !spec.subcommands.is_empty() && sub.is_none() && args.len() > 1 {
        return Err(unknown_subcommand(args, &spec.name.to_ascii_uppercase()));
    }
    if !spec.arity_fits(args.len()) {
        return Err(CommandError::Arity(spec.name));
    }
    // A known subcommand's arity, from the table, before authentication as
    // in Redis; an unknown one is its command's to refuse.
    if let Some(sub) = sub
        && !arity_fits(sub.arity, args.len())
    {
        let text = format!("ERR wrong number of arguments for '{}|{}' command", spec.name, sub.name);
        return Err(CommandError::Message(text.into()));
    }
    // AUTH and QUIT run whoever asks, as Redis's `no-auth` commands.
    if !spec.flags.contains(Flags::NO_AUTH) {
        if ctx.session.auth_required(ctx.shared) {
            return Err(CommandError::NoAuth);
        }
        match permitted(slot, spec, args, ctx) {
            Ok(()) => {}
            Err(Refusal::Denied(error)) => return Err(error),
            Err(Refusal::UserGone) => {
                let name = ctx.session.user_name();
                let text = format!("ERR user '{name}' was deleted or disabled by ACL LOAD; the connection closes");
                reply::error(ctx.out, text.as_bytes());
                return Ok(Some(Flow::Close));
            }
        }
    }
    if spec.flags.contains(Flags::DENY_OOM) && ctx.shared.over_maxmemory() {
        return Err(CommandError::fixed("OOM command not allowed when used memory > 'maxmemory'."));
    }
    if !spec.flags.contains(Flags::LOADING) && ctx.shared.store.catch_up() == CatchUpState::Refusing {
        return Err(CommandError::Message(LOADING_ERROR.into()));
    }
    Ok(None)
}

/// Keys past which a command runs off the workers.
const LONG_KEY_COUNT: usize = 256;

/// Bytes of a value past which a command that walks or copies it runs off
/// the workers (BITCOUNT in BIT units steps through 64 MiB in ~0.9 s).
const LONG_VALUE_BYTES: usize = 1 << 20;

/// Whether a command may take long enough (milliseconds, or seconds over
/// millions of keys) to run off the client workers, where the node's driver
/// runs (see [`crate::resp::blocking`]): the keyspace walks, the string
/// algorithms over whole values, commands that walk or copy a large value,
/// commands with many keys, and EXEC. SCAN bounds
/// its own work, and goes off the workers when its COUNT asks for much.
fn runs_long(handler: Handler, args: Args<'_>, ctx: &Ctx<'_>) -> bool {
    match handler {
        // EXEC: its queue's work has no bound short of running it (256
        // BITCOUNTs over 1 MiB values take a second).
        Handler::Keys | Handler::Flush | Handler::Bitop | Handler::Lcs | Handler::Exec => true,
        // What its payload may decompress to.
        Handler::Restore => args.arg(3).len().saturating_mul(dump::LZF_MAX_EXPANSION) > LONG_VALUE_BYTES,
        Handler::Mget | Handler::Mset | Handler::Msetnx | Handler::Del | Handler::Exists | Handler::Watch => {
            args.len() > LONG_KEY_COUNT
        }
        Handler::Bitcount | Handler::Bitpos | Handler::Setbit | Handler::Setrange | Handler::Append | Handler::Dump => {
            let stored = ctx.shared.store.get(args.arg(1), ctx.now_ms).map_or(0, |value| value.len());
            // Growth past max_bulk_bytes is refused at once.
            let grown = Some(grown_len(handler, args, stored)).filter(|&n| n <= ctx.shared.limits.max_bulk_bytes());
            stored.max(grown.unwrap_or(0)) > LONG_VALUE_BYTES
        }
        _ => false,
    }
}

/// The length a value of `stored` bytes would have after a command that
/// grows it: growing a small value to 64 MiB zeroes or copies all of it,
/// however small it was. Arguments that do not parse as the command reads
/// them count as no growth (it refuses them at once).
fn grown_len(handler: Handler, args: Args<'_>, stored: usize) -> usize {
    let number = |arg: &[u8]| crate::resp::num::parse_i64(arg).and_then(|n| usize::try_from(n).ok());
    match handler {
        Handler::Setbit => number(args.arg(2)).map_or(0, |bit| bit / 8 + 1),
        Handler::Setrange if !args.arg(3).is_empty() => {
            number(args.arg(2)).map_or(0, |offset| offset.saturating_add(args.arg(3).len()))
        }
        Handler::Append => stored.saturating_add(args.arg(2).len()),
        _ => 0,
    }
}

/// Runs a checked command.
fn handle(spec: &Spec, args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<Flow, CommandError> {
    ctx.session.commands += 1;
    if runs_long(spec.handler, args, ctx) {
        crate::resp::blocking::off_workers(|| run_handler(spec, args, ctx))
    } else {
        run_handler(spec, args, ctx)
    }
}

/// Calls the command's function.
fn run_handler(spec: &Spec, args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<Flow, CommandError> {
    match spec.handler {
        Handler::Get => string::get(args, ctx),
        Handler::Set => string::set(args, ctx),
        Handler::Mget => string::mget(args, ctx),
        Handler::Mset => string::mset(args, ctx),
        Handler::Msetnx => string::msetnx(args, ctx),
        Handler::Del => keys::del(args, ctx),
        Handler::Exists => keys::exists(args, ctx),
        Handler::Dbsize => keys::dbsize(ctx),
        Handler::Flush => keys::flush(args, ctx),
        Handler::Scan => keys::scan(args, ctx),
        Handler::Keys => keys::keys(args, ctx),
        Handler::Expire(how) => expire::expire(args, ctx, how),
        Handler::Ttl(unit) => expire::ttl(args, ctx, unit),
        Handler::Persist => expire::persist(args, ctx),
        Handler::ExpireTime(unit) => expire::expire_time(args, ctx, unit),
        Handler::Type => keys::key_type(args, ctx),
        Handler::Setbit => bits::setbit(args, ctx),
        Handler::Getbit => bits::getbit(args, ctx),
        Handler::Bitcount => bits::bitcount(args, ctx),
        Handler::Bitop => bits::bitop(args, ctx),
        Handler::Bitpos => bits::bitpos(args, ctx),
        Handler::Lcs => lcs::lcs(args, ctx),
        Handler::Debug => {
            if let Some(delay) = server::debug(args, ctx)? {
                return Ok(Flow::Ask(Asked { slot: UNKNOWN_SLOT, question: Question::Sleep(delay) }));
            }
            Ok(())
        }
        Handler::Object => object::object(args, ctx),
        Handler::Randomkey => object::randomkey(ctx),
        Handler::Multi => transaction::multi(ctx),
        Handler::Exec => return transaction::exec(ctx),
        Handler::Discard => transaction::discard(ctx),
        Handler::Watch => transaction::watch(args, ctx),
        Handler::Unwatch => transaction::unwatch(ctx),
        Handler::Rename { nx } => keys::rename(args, ctx, nx),
        Handler::Copy => keys::copy(args, ctx),
        Handler::Dump => dump::dump(args, ctx),
        Handler::Restore => dump::restore(args, ctx),
        Handler::Setnx => string_update::setnx(args, ctx),
        Handler::Setex(unit) => string_update::setex(args, ctx, unit),
        Handler::Getset => string_update::getset(args, ctx),
        Handler::Getdel => string_update::getdel(args, ctx),
        Handler::Getex => string_update::getex(args, ctx),
        Handler::Append => string_update::append(args, ctx),
        Handler::Setrange => string_update::setrange(args, ctx),
        Handler::Strlen => string_update::strlen(args, ctx),
        Handler::Getrange => string_update::getrange(args, ctx),
        Handler::Ping => session::ping(args, ctx),
        Handler::Echo => session::echo(args, ctx),
        Handler::Auth
            if let delay = session::auth_delay(ctx)
                && !delay.is_zero() =>
        {
            return Ok(Flow::Ask(Asked { slot: UNKNOWN_SLOT, question: Question::Auth(delay) }));
        }
        Handler::Auth => session::auth(args, ctx),
        Handler::Hello
            if let delay = session::hello_auth_delay(args, ctx)
                && !delay.is_zero() =>
        {
            return Ok(Flow::Ask(Asked { slot: UNKNOWN_SLOT, question: Question::Hello(delay) }));
        }
        Handler::Hello => session::hello(args, ctx),
        Handler::Reset => session::reset(ctx),
        Handler::Select => session::select(args, ctx),
        Handler::Client => return client::client(args, ctx),
        Handler::Time => server::time(ctx),
        Handler::Quit => {
            reply::ok(ctx.out);
            return Ok(Flow::Close);
        }
        Handler::Shutdown => return server::shutdown(args, ctx),
        Handler::Command => command::command(args, ctx),
        Handler::Config => config_cmd::config(args, ctx),
        Handler::Members => return Ok(Flow::Ask(Asked { slot: UNKNOWN_SLOT, question: Question::Members })),
        Handler::Info => return Ok(Flow::Ask(Asked { slot: UNKNOWN_SLOT, question: Question::Info })),
        Handler::Wait => {
            let (numpeers, timeout) = server::wait_args(args)?;
            return Ok(Flow::Ask(Asked { slot: UNKNOWN_SLOT, question: Question::Wait(numpeers, timeout) }));
        }
        Handler::Acl => acl_cmd::acl(args, ctx),
    }
    .map(|()| Flow::Continue)
}

/// Why a command may not run.
enum Refusal {
    /// `-NOPERM …`.
    Denied(CommandError),
    /// The session's user no longer exists or is off: the connection ends,
    /// as Redis disconnects a deleted user's clients.
    UserGone,
}

/// Checks the session's user's command rules, then its key patterns on
/// every key argument, counting refusals for INFO.
fn permitted(slot: usize, spec: &Spec, args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), Refusal> {
    let shared = ctx.shared;
    let stats = &shared.stats;
    let user = ctx.session.user(&shared.users).ok_or(Refusal::UserGone)?;
    let entry = acl_entries::for_call(slot, args.get(1));
    if !user.may_run(entry, args.get(1)) {
        stats.acl_denied_cmd.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let text =
            format!("NOPERM User {} has no permissions to run the '{}' command", user.name(), acl_entries::name(entry));
        return Err(Refusal::Denied(CommandError::Message(text.into())));
    }
    if user.all_keys() {
        return Ok(());
    }
    let (read, write) = match spec.keys.access {
        KeyAccess::Read => (true, false),
        KeyAccess::Exists => (false, false),
        KeyAccess::Write => (false, true),
        KeyAccess::WriteReadWithGet => (args.iter_from(3).any(|arg| is(arg, "GET")), true),
        KeyAccess::ReadWrite => (true, true),
    };
    for position in spec.keys.positions(args.len()) {
        if !user.may_use_key(args.arg(position), read, write) {
            stats.acl_denied_key.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(Refusal::Denied(CommandError::fixed("NOPERM No permissions to access a key")));
        }
    }
    Ok(())
}

/// Redis's reply while it loads its dataset (clients retry on `LOADING`),
/// for a node catching up from its peers after starting empty.
const LOADING_ERROR: &str = "LOADING rumor is loading the dataset from its peers";

/// Slots of the per-command metrics: one per command in the table, in
/// table order, then [`UNKNOWN_SLOT`]. A fixed set, so the metrics' label
/// set stays bounded whatever names clients send.
pub(crate) const COMMAND_SLOTS: usize = COMMANDS.len() + 1;

/// The slot every name not in the table is counted under.
pub(crate) const UNKNOWN_SLOT: usize = COMMANDS.len();

/// The metrics label of each slot, in slot order: the lower-case command
/// name, and `unknown` last.
pub(crate) fn slot_labels() -> impl Iterator<Item = &'static str> {
    COMMANDS.iter().map(|spec| spec.name).chain(std::iter::once("unknown"))
}

/// What one connection answered since the tally was last taken, per
/// command slot. Plain integers in the connection's own session: the hot
/// path touches no shared cache line, and the connection adds the tally to
/// the node's metrics once per batch.
#[derive(Debug)]
pub(crate) struct CommandTally {
    calls: [u64; COMMAND_SLOTS],
    errors: [u64; COMMAND_SLOTS],
}

impl Default for CommandTally {
    fn default() -> Self {
        CommandTally { calls: [0; COMMAND_SLOTS], errors: [0; COMMAND_SLOTS] }
    }
}

impl CommandTally {
    fn count(&mut self, slot: usize, failed: bool) {
        debug_assert!(slot < COMMAND_SLOTS);
        if let Some(calls) = self.calls.get_mut(slot) {
            *calls += 1;
        }
        if failed && let Some(errors) = self.errors.get_mut(slot) {
            *errors += 1;
        }
    }

    /// Calls `each(slot, calls, errors)` for every slot with calls, and
    /// starts over from zero.
    pub(crate) fn take(&mut self, mut each: impl FnMut(usize, u64, u64)) {
        for (slot, (calls, errors)) in self.calls.iter_mut().zip(&mut self.errors).enumerate() {
            if *calls > 0 {
                each(slot, *calls, *errors);
                *calls = 0;
                *errors = 0;
            }
        }
    }
}

/// A command's failure, written as a Redis error reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CommandError {
    /// `-ERR wrong number of arguments for '<name>' command`.
    Arity(&'static str),
    /// `-ERR syntax error`.
    Syntax,
    /// `-ERR value is not an integer or out of range`.
    NotInteger,
    /// `-ERR invalid expire time in '<name>' command`.
    InvalidExpireTime(&'static str),
    /// A key over `max_key_bytes`.
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `-NOAUTH Authentication required.`
    NoAuth,
    /// Any other error, its code included (`ERR …`, `WRONGPASS …`).
    Message(Cow<'static, str>),
    /// An error that echoes a client's argument: its bytes as they came,
    /// as Redis sends them (`ERR Unsupported option \xff`).
    Echoing(Vec<u8>),
}

impl CommandError {
    /// Writes the error reply.
    pub(crate) fn write(&self, out: &mut BytesMut) {
        let text: Cow<'_, str> = match self {
            CommandError::Arity(name) => format!("ERR wrong number of arguments for '{name}' command").into(),
            CommandError::Syntax => "ERR syntax error".into(),
            CommandError::NotInteger => "ERR value is not an integer or out of range".into(),
            CommandError::InvalidExpireTime(name) => format!("ERR invalid expire time in '{name}' command").into(),
            CommandError::KeyTooLong { len, max } => {
                format!("ERR key is {len} bytes, longer than max_key_bytes ({max})").into()
            }
            CommandError::NoAuth => "NOAUTH Authentication required.".into(),
            CommandError::Message(text) => Cow::Borrowed(text.as_ref()),
            CommandError::Echoing(text) => return reply::error(out, text),
        };
        reply::error(out, text.as_bytes());
    }

    /// `before`, the client's `arg` as it came, then `after`.
    pub(crate) fn echoing(before: &str, arg: &[u8], after: &str) -> Self {
        CommandError::Echoing([before.as_bytes(), arg, after.as_bytes()].concat())
    }

    /// An error with a fixed text.
    pub(crate) const fn fixed(text: &'static str) -> Self {
        CommandError::Message(Cow::Borrowed(text))
    }
}

impl From<WriteError> for CommandError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::VersionExhausted => CommandError::fixed(
                "ERR the key's version cannot be advanced (a version at the end of the clock's range is held); nothing was written",
            ),
            // Redis's word for a refusal to retry shortly; clients that
            // retry on it (cluster clients do) need nothing new.
            WriteError::ClockAtLease => CommandError::fixed(
                "TRYAGAIN the clock is at the end of the lease kept in the data dir (the wall clock jumped ahead?) and the next is not on disk yet; nothing was written, retry shortly",
            ),
        }
    }
}

impl Ctx<'_> {
    /// Wall-clock now, as of this command (within a few microseconds).
    fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// `key`, if it is within `max_key_bytes`.
    fn key<'k>(&self, key: &'k [u8]) -> Result<&'k [u8], CommandError> {
        let max = self.shared.limits.max_key_bytes;
        if key.len() > max {
            return Err(CommandError::KeyTooLong { len: key.len(), max });
        }
        Ok(key)
    }

    /// Queues a local write for dissemination with the rest of its batch;
    /// once the batch reaches [`PENDING_WRITES_MAX`], [`execute`] asks for
    /// it to be handed over after this command ([`Flow::HandOver`]).
    fn replicate(&mut self, key: Bytes, written: Option<Entry>) {
        let Some(entry) = written else { return };
        self.session.unsettled_writes = true;
        self.session.wrote = true;
        self.pending.bytes += key.len() + entry.value.as_ref().map_or(0, Bytes::len);
        self.pending.writes.push((key, entry));
    }

    /// Asks the driver task a question, giving up after [`CONTROL_TIMEOUT`]
    /// (the driver is gone or stuck: the client gets an error, not a hang).
    async fn ask<T>(&mut self, question: impl FnOnce(oneshot::Sender<T>) -> Control) -> Option<T> {
        let (answer, receiver) = oneshot::channel();
        let control = &self.shared.control;
        let asked = tokio::time::timeout(CONTROL_TIMEOUT, async {
            control.send(question(answer)).await.ok()?;
            receiver.await.ok()
        });
        let answer = asked.await.ok().flatten();
        // The answer may have taken up to the timeout.
        self.now_ms = self.shared.clock.wall_ms();
        answer
    }
}

/// Writes one connection may queue before handing them to dissemination
/// (one command's writes may take it past this: MSET's are queued whole).
pub(crate) const PENDING_WRITES_MAX: usize = 1024;

/// Bytes of keys and values a batch holds before they are handed over:
/// a pipeline of large values (or RESTOREs, which may expand 88 times)
/// holds no more than this beyond its last value.
pub(crate) const PENDING_BYTES_MAX: usize = 1 << 20;

/// Hands queued writes to dissemination. Waits while the queue is full:
/// that wait is the backpressure that bounds its memory.
pub(crate) async fn replicate(shared: &Shared, pending: &mut Replicate) {
    if pending.is_empty() {
        return;
    }
    if shared.writes.send(std::mem::take(pending)).await.is_err() {
        tracing::debug!("dissemination has stopped; the writes stay local");
    }
}

/// Hands the batch's writes to dissemination and, with a data dir, waits
/// until storage has them: called before any reply of the batch is
/// written, so that an acknowledged write is both on its way to the peers
/// and on disk. Errors when storage has failed: the replies must not go.
pub(crate) async fn settle(
    shared: &Shared,
    session: &mut Session,
    pending: &mut Replicate,
) -> Result<(), StorageFailed> {
    replicate(shared, pending).await;
    if std::mem::take(&mut session.unsettled_writes)
        && let Some(storage) = &shared.storage
    {
        storage.wait_written().await?;
    }
    Ok(())
}

/// Whether `arg` is `name`, ignoring ASCII case; `name` is upper case.
fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

/// `-ERR unknown subcommand 'x'. Try CLIENT HELP.`
fn unknown_subcommand(args: Args<'_>, container: &str) -> CommandError {
    let sub = args.arg(1);
    CommandError::echoing(
        "ERR unknown subcommand '",
        &sub[..sub.len().min(ECHOED_NAME_BYTES)],
        &format!("'. Try {container} HELP."),
    )
}

/// Which function runs a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handler {
    Get,
    Set,
    Shutdown,
    Dump,
    Restore,
    Mget,
    Mset,
    Msetnx,
    Del,
    Exists,
    Dbsize,
    Flush,
    Wait,
    Scan,
    Keys,
    Expire(expire::How),
    Ttl(expire::Unit),
    Persist,
    ExpireTime(expire::Unit),
    Type,
    Setbit,
    Getbit,
    Bitcount,
    Bitop,
    Bitpos,
    Lcs,
    Debug,
    Object,
    Randomkey,
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
    Rename { nx: bool },
    Copy,
    Setnx,
    Setex(expire::Unit),
    Getset,
    Getdel,
    Getex,
    Append,
    Setrange,
    Strlen,
    Getrange,
    Ping,
    Echo,
    Auth,
    Hello,
    Reset,
    Select,
    Client,
    Time,
    Quit,
    Command,
    Config,
    Members,
    Info,
    Acl,
}

/// A command's entry in the table.
pub(crate) struct Spec {
    /// Lower-case name, as Redis's error messages show it.
    pub(crate) name: &'static str,
    /// Redis's arity: `n` exactly n arguments (name included), `-n` at
    /// least n.
    arity: i32,
    /// Its ACL categories, as Redis lists them.
    pub(crate) categories: Categories,
    /// What else decides where it may run.
    pub(crate) flags: Flags,
    /// What runs it.
    handler: Handler,
    /// Which arguments are keys, for ACL key patterns.
    pub(crate) keys: KeySpec,
    /// Its subcommands, which ACL rules can name (`+config|get`), each
    /// with its own arity and categories as Redis gives them.
    pub(crate) subcommands: &'static [Sub],
}

/// A subcommand's entry in its command's [`Spec`].
pub(crate) struct Sub {
    /// Lower-case name, without the command's (`get` of `config|get`).
    pub(crate) name: &'static str,
    /// Redis's arity, the command's name and the subcommand's included.
    pub(crate) arity: i32,
    /// Its ACL categories.
    pub(crate) categories: Categories,
}

const fn sub(name: &'static str, arity: i32, categories: Categories) -> Sub {
    Sub { name, arity, categories }
}

/// Redis's legacy key positions of a command (first key, last key — negative
/// counts from the end —, step) and how it uses its keys: what ACL key
/// patterns (`%R~`, `%W~`, `~`) are checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeySpec {
    /// Index of the first key; 0: the command takes no keys.
    pub(crate) first: usize,
    /// Index of the last key; -1 is the last argument.
    pub(crate) last: isize,
    /// Distance between keys (2 for MSET's key-value pairs).
    pub(crate) step: usize,
    /// What the command does with them.
    pub(crate) access: KeyAccess,
}

/// What a command does with its keys (Redis's key-spec flags, reduced to
/// what ACL checks read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyAccess {
    /// Reads values (GET): needs a read pattern.
    Read,
    /// Looks at existence only (EXISTS): any pattern matching the key will do.
    Exists,
    /// Changes or deletes (SET, DEL, EXPIRE): needs a write pattern.
    Write,
    /// SET: a write, and a read too with its `GET` option.
    WriteReadWithGet,
    /// Reads and changes (GETSET, GETDEL, APPEND): needs both patterns, as
    /// Redis's `RW` keys do.
    ReadWrite,
}

impl KeySpec {
    const NONE: KeySpec = KeySpec { first: 0, last: 0, step: 0, access: KeyAccess::Exists };

    /// The indices of the key arguments among `argc` arguments.
    pub(crate) fn positions(self, argc: usize) -> impl Iterator<Item = usize> {
        let last = if self.first == 0 {
            0
        } else if self.last < 0 {
            argc.saturating_sub(self.last.unsigned_abs())
        } else {
            self.last.unsigned_abs().min(argc.saturating_sub(1))
        };
        let first = self.first.max(1);
        (first..=last).step_by(self.step.max(1))
    }
}

impl Spec {
    fn arity_fits(&self, argc: usize) -> bool {
        arity_fits(self.arity, argc)
    }

    /// The subcommand `args` names, with its index, if the command has it.
    fn subcommand(&self, args: Args<'_>) -> Option<(usize, &'static Sub)> {
        if self.subcommands.is_empty() {
            return None;
        }
        let name = args.get(1)?;
        self.subcommands.iter().enumerate().find(|(_, sub)| name.eq_ignore_ascii_case(sub.name.as_bytes()))
    }
}

/// A command's name as CLIENT LIST's `cmd=` shows it: `get`,
/// `client|list`; `sub` is 0 for none, else the subcommand's index + 1.
pub(crate) fn full_name(slot: usize, sub: usize) -> String {
    let Some(spec) = COMMANDS.get(slot) else { return "NULL".to_owned() };
    match sub.checked_sub(1).and_then(|index| spec.subcommands.get(index)) {
        Some(sub) => format!("{}|{}", spec.name, sub.name),
        None => spec.name.to_owned(),
    }
}

fn arity_fits(arity: i32, argc: usize) -> bool {
    let argc = i64::try_from(argc).unwrap_or(i64::MAX);
    let arity = i64::from(arity);
    if arity >= 0 { argc == arity } else { argc >= -arity }
}

const fn spec(name: &'static str, arity: i32, categories: Categories, flags: Flags, handler: Handler) -> Spec {
    Spec { name, arity, categories, flags, handler, keys: KeySpec::NONE, subcommands: &[] }
}

impl Spec {
    /// With keys from `first` to `last` every `step`, used as `access` says.
    const fn keys(mut self, first: usize, last: isize, step: usize, access: KeyAccess) -> Spec {
        self.keys = KeySpec { first, last, step, access };
        self
    }

    /// With subcommands.
    const fn subcommands(mut self, subcommands: &'static [Sub]) -> Spec {
        self.subcommands = subcommands;
        self
    }
}

/// Shorthands for the table.
const KEYSPACE: Categories = Categories::KEYSPACE;
const READ: Categories = Categories::READ;
const WRITE: Categories = Categories::WRITE;
const STRING: Categories = Categories::STRING;
const BITMAP: Categories = Categories::BITMAP;
const ADMIN: Categories = Categories::ADMIN;
const FAST: Categories = Categories::FAST;
const SLOW: Categories = Categories::SLOW;
const DANGEROUS: Categories = Categories::DANGEROUS;
const CONNECTION: Categories = Categories::CONNECTION;
const TRANSACTION: Categories = Categories::TRANSACTION;
const DENY_OOM: Flags = Flags::DENY_OOM;
const NO_AUTH: Flags = Flags::NO_AUTH;
const LOADING: Flags = Flags::LOADING;
const NONE: Flags = Flags::NONE;
const R: KeyAccess = KeyAccess::Read;
const W: KeyAccess = KeyAccess::Write;

/// Every command, the hottest first (lookup is a scan that compares lengths
/// before bytes).
pub(crate) const COMMANDS: &[Spec] = &[
    spec("get", 2, READ.with(STRING).with(FAST), NONE, Handler::Get).keys(1, 1, 1, R),
    spec("set", -3, WRITE.with(STRING).with(SLOW), DENY_OOM, Handler::Set).keys(1, 1, 1, KeyAccess::WriteReadWithGet),
    spec("mget", -2, READ.with(STRING).with(FAST), NONE, Handler::Mget).keys(1, -1, 1, R),
    spec("mset", -3, WRITE.with(STRING).with(SLOW), DENY_OOM, Handler::Mset).keys(1, -1, 2, W),
    spec("msetnx", -3, WRITE.with(STRING).with(SLOW), DENY_OOM, Handler::Msetnx).keys(1, -1, 2, W),
    spec("del", -2, KEYSPACE.with(WRITE).with(SLOW), NONE, Handler::Del).keys(1, -1, 1, W),
    spec("exists", -2, KEYSPACE.with(READ).with(FAST), NONE, Handler::Exists).keys(1, -1, 1, KeyAccess::Exists),
    spec("ping", -1, FAST.with(CONNECTION), NONE, Handler::Ping),
    spec("expire", -3, KEYSPACE.with(WRITE).with(FAST), NONE, Handler::Expire(expire::How::EXPIRE)).keys(1, 1, 1, W),
    spec("pexpire", -3, KEYSPACE.with(WRITE).with(FAST), NONE, Handler::Expire(expire::How::PEXPIRE)).keys(1, 1, 1, W),
    spec("expireat", -3, KEYSPACE.with(WRITE).with(FAST), NONE, Handler::Expire(expire::How::EXPIREAT))
        .keys(1, 1, 1, W),
    spec("pexpireat", -3, KEYSPACE.with(WRITE).with(FAST), NONE, Handler::Expire(expire::How::PEXPIREAT))
        .keys(1, 1, 1, W),
    spec("ttl", 2, KEYSPACE.with(READ).with(FAST), NONE, Handler::Ttl(expire::Unit::Seconds)).keys(1, 1, 1, R),
    spec("pttl", 2, KEYSPACE.with(READ).with(FAST), NONE, Handler::Ttl(expire::Unit::Milliseconds)).keys(1, 1, 1, R),
    spec("persist", 2, KEYSPACE.with(WRITE).with(FAST), NONE, Handler::Persist).keys(1, 1, 1, W),
    spec("expiretime", 2, KEYSPACE.with(READ).with(FAST), NONE, Handler::ExpireTime(expire::Unit::Seconds))
        .keys(1, 1, 1, R),
    spec("pexpiretime", 2, KEYSPACE.with(READ).with(FAST), NONE, Handler::ExpireTime(expire::Unit::Milliseconds))
        .keys(1, 1, 1, R),
    spec("type", 2, KEYSPACE.with(READ).with(FAST), NONE, Handler::Type).keys(1, 1, 1, R),
    spec("unlink", -2, KEYSPACE.with(WRITE).with(FAST), NONE, Handler::Del).keys(1, -1, 1, W),
    spec("rename", 3, KEYSPACE.with(WRITE).with(SLOW), NONE, Handler::Rename { nx: false }).keys(
        1,
        2,
        1,
        KeyAccess::ReadWrite,
    ),
    spec("renamenx", 3, KEYSPACE.with(WRITE).with(FAST), NONE, Handler::Rename { nx: true }).keys(
        1,
        2,
        1,
        KeyAccess::ReadWrite,
    ),
    spec("copy", -3, KEYSPACE.with(WRITE).with(SLOW), DENY_OOM, Handler::Copy).keys(1, 2, 1, KeyAccess::ReadWrite),
    spec("dump", 2, KEYSPACE.with(READ).with(SLOW), NONE, Handler::Dump).keys(1, 1, 1, R),
    spec("restore", -4, KEYSPACE.with(WRITE).with(SLOW).with(DANGEROUS), DENY_OOM, Handler::Restore).keys(1, 1, 1, W),
    spec("touch", -2, KEYSPACE.with(READ).with(FAST), NONE, Handler::Exists).keys(1, -1, 1, R),
    spec("setnx", 3, WRITE.with(STRING).with(FAST), DENY_OOM, Handler::Setnx).keys(1, 1, 1, W),
    spec("setex", 4, WRITE.with(STRING).with(SLOW), DENY_OOM, Handler::Setex(expire::Unit::Seconds)).keys(1, 1, 1, W),
    spec("psetex", 4, WRITE.with(STRING).with(SLOW), DENY_OOM, Handler::Setex(expire::Unit::Milliseconds))
        .keys(1, 1, 1, W),
    spec("getset", 3, WRITE.with(STRING).with(FAST), DENY_OOM, Handler::Getset).keys(1, 1, 1, KeyAccess::ReadWrite),
    spec("getdel", 2, WRITE.with(STRING).with(FAST), NONE, Handler::Getdel).keys(1, 1, 1, KeyAccess::ReadWrite),
    spec("getex", -2, WRITE.with(STRING).with(FAST), NONE, Handler::Getex).keys(1, 1, 1, KeyAccess::ReadWrite),
    spec("append", 3, WRITE.with(STRING).with(FAST), DENY_OOM, Handler::Append).keys(1, 1, 1, KeyAccess::ReadWrite),
    spec("setrange", 4, WRITE.with(STRING).with(SLOW), DENY_OOM, Handler::Setrange).keys(1, 1, 1, KeyAccess::ReadWrite),
    spec("strlen", 2, READ.with(STRING).with(FAST), NONE, Handler::Strlen).keys(1, 1, 1, R),
    spec("getrange", 4, READ.with(STRING).with(SLOW), NONE, Handler::Getrange).keys(1, 1, 1, R),
    spec("substr", 4, READ.with(STRING).with(SLOW), NONE, Handler::Getrange).keys(1, 1, 1, R),
    spec("echo", 2, FAST.with(CONNECTION), LOADING, Handler::Echo),
    spec("dbsize", 1, KEYSPACE.with(READ).with(FAST), NONE, Handler::Dbsize),
    spec("flushall", -1, KEYSPACE.with(WRITE).with(SLOW).with(DANGEROUS), NONE, Handler::Flush),
    spec("flushdb", -1, KEYSPACE.with(WRITE).with(SLOW).with(DANGEROUS), NONE, Handler::Flush),
    spec("wait", 3, SLOW.with(CONNECTION).with(Categories::BLOCKING), NONE, Handler::Wait),
    // KEYS and SCAN name patterns, not keys: ACL key patterns do not filter them.
    spec("scan", -2, KEYSPACE.with(READ).with(SLOW), NONE, Handler::Scan),
    spec("keys", 2, KEYSPACE.with(READ).with(SLOW).with(DANGEROUS), NONE, Handler::Keys),
    spec("info", -1, SLOW.with(DANGEROUS), LOADING, Handler::Info),
    spec("members", 1, SLOW, LOADING, Handler::Members),
    spec("auth", -2, FAST.with(CONNECTION), NO_AUTH.with(LOADING), Handler::Auth),
    spec("hello", -1, FAST.with(CONNECTION), NO_AUTH.with(LOADING), Handler::Hello),
    spec("select", 2, FAST.with(CONNECTION), LOADING, Handler::Select),
    spec("client", -2, SLOW.with(CONNECTION), LOADING, Handler::Client).subcommands(&[
        sub("setname", 3, SLOW.with(CONNECTION)),
        sub("getname", 2, SLOW.with(CONNECTION)),
        sub("id", 2, SLOW.with(CONNECTION)),
        sub("info", 2, SLOW.with(CONNECTION)),
        sub("list", -2, ADMIN.with(SLOW).with(DANGEROUS).with(CONNECTION)),
        sub("kill", -3, ADMIN.with(SLOW).with(DANGEROUS).with(CONNECTION)),
        sub("setinfo", 4, SLOW.with(CONNECTION)),
        sub("reply", 3, SLOW.with(CONNECTION)),
        sub("no-evict", 3, ADMIN.with(SLOW).with(DANGEROUS).with(CONNECTION)),
        sub("no-touch", 3, SLOW.with(CONNECTION)),
        sub("unpause", 2, ADMIN.with(SLOW).with(DANGEROUS).with(CONNECTION)),
        sub("help", 2, SLOW.with(CONNECTION)),
    ]),
    spec("setbit", 4, WRITE.with(BITMAP).with(SLOW), DENY_OOM, Handler::Setbit).keys(1, 1, 1, KeyAccess::ReadWrite),
    spec("getbit", 3, READ.with(BITMAP).with(FAST), NONE, Handler::Getbit).keys(1, 1, 1, R),
    spec("bitcount", -2, READ.with(BITMAP).with(SLOW), NONE, Handler::Bitcount).keys(1, 1, 1, R),
    spec("lcs", -3, READ.with(STRING).with(SLOW), NONE, Handler::Lcs).keys(1, 2, 1, R),
    spec("bitpos", -3, READ.with(BITMAP).with(SLOW), NONE, Handler::Bitpos).keys(1, 1, 1, R),
    spec("bitop", -4, WRITE.with(BITMAP).with(SLOW), DENY_OOM, Handler::Bitop).keys(2, -1, 1, KeyAccess::ReadWrite),
    spec("object", -2, SLOW, NONE, Handler::Object)
        .subcommands(&[
            sub("encoding", 3, KEYSPACE.with(READ).with(SLOW)),
            sub("refcount", 3, KEYSPACE.with(READ).with(SLOW)),
            sub("idletime", 3, KEYSPACE.with(READ).with(SLOW)),
            sub("freq", 3, KEYSPACE.with(READ).with(SLOW)),
            sub("help", 2, KEYSPACE.with(SLOW)),
        ])
        .keys(2, 2, 1, R),
    spec("randomkey", 1, KEYSPACE.with(READ).with(SLOW), NONE, Handler::Randomkey),
    spec("multi", 1, FAST.with(TRANSACTION), LOADING, Handler::Multi),
    spec("exec", 1, SLOW.with(TRANSACTION), LOADING, Handler::Exec),
    spec("discard", 1, FAST.with(TRANSACTION), LOADING, Handler::Discard),
    spec("watch", -2, FAST.with(TRANSACTION), LOADING, Handler::Watch).keys(1, -1, 1, KeyAccess::Exists),
    spec("unwatch", 1, FAST.with(TRANSACTION), LOADING, Handler::Unwatch),
    spec("reset", 1, FAST.with(CONNECTION), NO_AUTH.with(LOADING), Handler::Reset),
    spec("time", 1, FAST, LOADING, Handler::Time),
    spec("quit", -1, FAST.with(CONNECTION), NO_AUTH.with(LOADING), Handler::Quit),
    spec("command", -1, SLOW.with(CONNECTION), LOADING, Handler::Command).subcommands(&[
        sub("count", 2, SLOW.with(CONNECTION)),
        sub("list", -2, SLOW.with(CONNECTION)),
        sub("docs", -2, SLOW.with(CONNECTION)),
        sub("info", -2, SLOW.with(CONNECTION)),
        sub("help", 2, SLOW.with(CONNECTION)),
    ]),
    spec("shutdown", -1, ADMIN.with(SLOW).with(DANGEROUS), LOADING.with(Flags::NO_MULTI), Handler::Shutdown),
    spec("debug", -2, ADMIN.with(SLOW).with(DANGEROUS), LOADING, Handler::Debug).subcommands(&[
        sub("sleep", 3, ADMIN.with(SLOW).with(DANGEROUS)),
        sub("help", 2, ADMIN.with(SLOW).with(DANGEROUS)),
    ]),
    spec("config", -2, ADMIN.with(SLOW).with(DANGEROUS), LOADING, Handler::Config).subcommands(&[
        sub("get", -3, ADMIN.with(SLOW).with(DANGEROUS)),
        sub("set", -4, ADMIN.with(SLOW).with(DANGEROUS)),
        sub("resetstat", 2, ADMIN.with(SLOW).with(DANGEROUS)),
        sub("rewrite", 2, ADMIN.with(SLOW).with(DANGEROUS)),
        sub("help", 2, SLOW),
    ]),
    spec("acl", -2, ADMIN.with(SLOW).with(DANGEROUS), LOADING, Handler::Acl).subcommands(&[
        sub("cat", -2, SLOW),
        sub("whoami", 2, SLOW),
        sub("help", 2, SLOW),
        sub("list", 2, ADMIN.with(SLOW).with(DANGEROUS)),
        sub("users", 2, ADMIN.with(SLOW).with(DANGEROUS)),
        sub("getuser", 3, ADMIN.with(SLOW).with(DANGEROUS)),
        sub("load", 2, ADMIN.with(SLOW).with(DANGEROUS)),
        sub("setuser", -3, ADMIN.with(SLOW).with(DANGEROUS)),
        sub("deluser", -3, ADMIN.with(SLOW).with(DANGEROUS)),
        sub("save", 2, ADMIN.with(SLOW).with(DANGEROUS)),
    ]),
];

/// The command named `name` and its metrics slot.
fn lookup(name: &[u8]) -> Option<(usize, &'static Spec)> {
    COMMANDS.iter().enumerate().find(|(_, spec)| name.eq_ignore_ascii_case(spec.name.as_bytes()))
}

/// Redis 7's `-ERR unknown command 'foo', with args beginning with: 'a' 'b' `
/// — the name cut at 128 bytes, arguments quoted until 128 bytes of them.
fn unknown_command(args: Args<'_>, out: &mut BytesMut) {
    let name = args.arg(0);
    let mut message = Vec::with_capacity(64 + name.len().min(ECHOED_NAME_BYTES) + ECHOED_ARGS_BYTES);
    message.extend_from_slice(b"ERR unknown command '");
    message.extend_from_slice(&name[..name.len().min(ECHOED_NAME_BYTES)]);
    message.extend_from_slice(b"', with args beginning with: ");
    let mut echoed = 0;
    for arg in args.iter_from(1) {
        if echoed >= ECHOED_ARGS_BYTES {
            break;
        }
        let arg = &arg[..arg.len().min(ECHOED_ARGS_BYTES - echoed)];
        message.push(b'\'');
        message.extend_from_slice(arg);
        message.extend_from_slice(b"' ");
        echoed += arg.len() + 3;
    }
    reply::error(out, &message);
}

/// Longest command name echoed back in an error (Redis's `%.128s`).
const ECHOED_NAME_BYTES: usize = 128;

/// Bytes of arguments echoed back in an unknown-command error.
const ECHOED_ARGS_BYTES: usize = 128;

/// How long MEMBERS and INFO wait for the driver task.
pub(super) const CONTROL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(test)]
pub(crate) mod testkit;

#[cfg(test)]
mod tests {
    use super::testkit::Harness;

    #[tokio::test]
    async fn commands_that_grow_a_value_past_a_mebibyte_run_off_the_workers() {
        let limits = super::testkit::limits();
        let mut h = Harness::with_limits(crate::resp::shared::ClientLimits { max_bulk_bytes: 4 << 20, ..limits });
        let big = (2usize << 20).to_string();
        let bits = (16usize << 20).to_string();
        let mib = "x".repeat((1 << 20) + 1);
        assert!(!h.runs_long(&["SETRANGE", "k", "10", "x"]));
        assert!(h.runs_long(&["SETRANGE", "k", &big, "x"]), "zeroes 2 MiB though nothing is stored");
        assert!(!h.runs_long(&["SETRANGE", "k", &big, ""]), "an empty value writes nothing");
        assert!(!h.runs_long(&["SETBIT", "k", "10", "1"]));
        assert!(h.runs_long(&["SETBIT", "k", &bits, "1"]));
        assert!(!h.runs_long(&["SETBIT", "k", "nonsense", "1"]));
        assert!(!h.runs_long(&["SETBIT", "k", &format!("+{bits}"), "1"]), "refused as SETBIT reads it");
        let past_limit = (8usize << 20).to_string();
        assert!(!h.runs_long(&["SETRANGE", "k", &past_limit, "x"]), "past max_bulk_bytes: refused at once");
        assert!(!h.runs_long(&["APPEND", "k", "x"]));
        assert_eq!(h.run(&["SET", "k", &mib]).await, "+OK\r\n");
        assert!(h.runs_long(&["APPEND", "k", "x"]), "copies the MiB held");
        assert!(h.runs_long(&["BITCOUNT", "k"]));
        assert!(h.runs_long(&["DUMP", "k"]), "a checksum over the MiB");
        assert!(!h.runs_long(&["DUMP", "other"]));
        assert!(!h.runs_long(&["RESTORE", "r", "0", "small"]));
        assert!(h.runs_long(&["RESTORE", "r", "0", &"x".repeat(12_000)]), "may decompress past 1 MiB");
        assert!(!h.runs_long(&["BITCOUNT", "other"]));
    }

    #[tokio::test]
    async fn names_are_case_insensitive() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["ping"]).await, "+PONG\r\n");
        assert_eq!(h.run(&["PiNg"]).await, "+PONG\r\n");
        assert_eq!(h.run(&["sEt", "k", "v"]).await, "+OK\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "$1\r\nv\r\n");
    }

    #[tokio::test]
    async fn unknown_commands_use_redis_7_wording() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["foo", "a", "b"]).await,
            "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"
        );
        assert_eq!(h.run(&["foo"]).await, "-ERR unknown command 'foo', with args beginning with: \r\n");
        assert_eq!(
            h.run(&["x\r\ny", "a\nb"]).await,
            "-ERR unknown command 'x  y', with args beginning with: 'a b' \r\n"
        );
        let long = "z".repeat(300);
        let reply = h.run(&["nope", &long, "more"]).await;
        assert_eq!(reply, format!("-ERR unknown command 'nope', with args beginning with: '{}' \r\n", "z".repeat(128)));
        let many = ["a"; 60];
        let reply = h.run(&[&["nope"][..], &many].concat()).await;
        // Redis stops once 128 bytes of quoted arguments are written.
        assert_eq!(reply.matches("'a' ").count(), 32);
    }

    #[tokio::test]
    async fn wrong_arity_names_the_command_in_lower_case() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["GET"]).await, "-ERR wrong number of arguments for 'get' command\r\n");
        assert_eq!(h.run(&["GET", "a", "b"]).await, "-ERR wrong number of arguments for 'get' command\r\n");
        for (args, name) in [
            (&["SET", "k"][..], "set"),
            (&["DEL"][..], "del"),
            (&["EXISTS"][..], "exists"),
            (&["MGET"][..], "mget"),
            (&["MSET", "a"][..], "mset"),
            (&["MSET", "a", "1", "b"][..], "mset"),
            (&["EXPIRE", "k"][..], "expire"),
            (&["TTL"][..], "ttl"),
            (&["DBSIZE", "x"][..], "dbsize"),
            (&["SCAN"][..], "scan"),
            (&["KEYS"][..], "keys"),
            (&["ECHO"][..], "echo"),
            (&["PING", "a", "b"][..], "ping"),
            (&["SELECT"][..], "select"),
            (&["MEMBERS", "x"][..], "members"),
            (&["CONFIG"][..], "config"),
            (&["CONFIG", "GET"][..], "config|get"),
            (&["CLIENT"][..], "client"),
            (&["CLIENT", "SETNAME"][..], "client|setname"),
            (&["client", "kill"][..], "client|kill"),
            (&["CLIENT", "ID", "x"][..], "client|id"),
            (&["COMMAND", "COUNT", "x"][..], "command|count"),
            (&["ACL", "GETUSER"][..], "acl|getuser"),
            (&["ACL", "SETUSER"][..], "acl|setuser"),
            (&["ACL", "DELUSER"][..], "acl|deluser"),
            (&["ACL", "SAVE", "x"][..], "acl|save"),
            (&["TIME", "x"][..], "time"),
            (&["RESET", "x"][..], "reset"),
        ] {
            assert_eq!(
                h.run(args).await,
                format!("-ERR wrong number of arguments for '{name}' command\r\n"),
                "{args:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_write_past_the_clock_lease_gets_tryagain_and_stores_nothing() {
        let mut h = Harness::new();
        let lease = crate::core::version::Timestamp::end_of_ms(h.now_ms() - 10_000);
        let ceiling = h.shared.store.hlc().limit_to(lease);
        h.shared.store.hlc().raise_to(lease);
        let reply = h.run(&["SET", "k", "v"]).await;
        assert!(
            reply.starts_with("-TRYAGAIN the clock is at the end of the lease") && reply.ends_with("retry shortly\r\n"),
            "{reply}"
        );
        assert_eq!(h.run(&["EXISTS", "k"]).await, ":0\r\n");
        ceiling.raise_to(crate::core::version::Timestamp::end_of_ms(h.now_ms() + 60_000));
        assert_eq!(h.run(&["SET", "k", "v"]).await, "+OK\r\n");
    }

    #[tokio::test]
    async fn unauthenticated_clients_get_noauth() {
        let mut h = Harness::with_password("sesame");
        assert_eq!(h.run(&["GET", "k"]).await, "-NOAUTH Authentication required.\r\n");
        assert_eq!(h.run(&["PING"]).await, "-NOAUTH Authentication required.\r\n");
        // Unknown command and arity errors come first, as in Redis.
        assert!(h.run(&["HELLO", "3"]).await.starts_with("-NOAUTH HELLO must be called"));
        assert!(h.run(&["GET"]).await.starts_with("-ERR wrong number"));
        assert_eq!(
            h.run(&["CLIENT", "SETNAME"]).await,
            "-ERR wrong number of arguments for 'client|setname' command\r\n",
            "a subcommand's arity, from the table, comes before authentication too"
        );
        assert_eq!(h.run(&["CLIENT", "SETNAME", "x"]).await, "-NOAUTH Authentication required.\r\n");
        assert_eq!(
            h.run(&["AUTH", "wrong"]).await,
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert_eq!(h.run(&["GET", "k"]).await, "-NOAUTH Authentication required.\r\n");
        assert_eq!(h.run(&["AUTH", "sesame"]).await, "+OK\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "$-1\r\n");
        // HELLO (which refused itself), both AUTHs and the last GET ran;
        // refused and unknown commands did not.
        assert_eq!(h.commands(), 4);
    }

    const USERS: &str = "user default off\n\
        user reader on >pw ~* +@read\n\
        user app on >pw ~app:* %R~ro:* %W~wo:* +@all -@dangerous\n\
        user admin on >pw ~* +@all\n";

    #[tokio::test]
    async fn acl_refusals_come_after_unknown_arity_and_noauth() {
        let mut h = Harness::with_acl(USERS);
        assert!(h.run(&["NOSUCH"]).await.starts_with("-ERR unknown command"));
        assert!(h.run(&["SET", "k"]).await.starts_with("-ERR wrong number"));
        assert_eq!(h.run(&["SET", "k", "v"]).await, "-NOAUTH Authentication required.\r\n");
        assert_eq!(h.run(&["AUTH", "reader", "pw"]).await, "+OK\r\n");
        assert!(h.run(&["SET", "k"]).await.starts_with("-ERR wrong number"));
        assert_eq!(
            h.run(&["SET", "k", "v"]).await,
            "-NOPERM User reader has no permissions to run the 'set' command\r\n"
        );
        assert_eq!(h.run(&["GET", "k"]).await, "$-1\r\n");
        assert_eq!(
            h.run(&["CONFIG", "GET", "port"]).await,
            "-NOPERM User reader has no permissions to run the 'config|get' command\r\n"
        );
        assert_eq!(h.run(&["PING"]).await, "-NOPERM User reader has no permissions to run the 'ping' command\r\n");
        let stats = &h.shared.stats;
        assert_eq!(stats.acl_denied_cmd.load(std::sync::atomic::Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn key_patterns_are_checked_on_every_key_argument() {
        let mut h = Harness::with_acl(USERS);
        assert_eq!(h.run(&["AUTH", "app", "pw"]).await, "+OK\r\n");
        let denied = "-NOPERM No permissions to access a key\r\n";
        assert_eq!(h.run(&["SET", "app:1", "v"]).await, "+OK\r\n");
        assert_eq!(h.run(&["SET", "other", "v"]).await, denied);
        assert_eq!(h.run(&["GET", "other"]).await, denied);
        assert_eq!(h.run(&["MGET", "app:1", "app:2", "other"]).await, denied);
        // MSET's keys are every other argument: a value may look like anything.
        assert_eq!(h.run(&["MSET", "app:1", "other", "app:2", "other"]).await, "+OK\r\n");
        assert_eq!(h.run(&["MSET", "app:1", "x", "other", "y"]).await, denied);
        assert_eq!(h.run(&["DEL", "app:1", "other"]).await, denied);
        // Read-only and write-only patterns.
        assert_eq!(h.run(&["GET", "ro:1"]).await, "$-1\r\n");
        assert_eq!(h.run(&["SET", "ro:1", "v"]).await, denied);
        assert_eq!(h.run(&["SET", "wo:1", "v"]).await, "+OK\r\n");
        assert_eq!(h.run(&["GET", "wo:1"]).await, denied);
        assert_eq!(h.run(&["SET", "wo:1", "v", "GET"]).await, denied, "SET … GET reads too");
        assert_eq!(h.run(&["EXISTS", "wo:1"]).await, ":1\r\n", "existence needs any pattern");
        assert_eq!(h.run(&["TTL", "wo:1"]).await, denied);
        // KEYS and SCAN take patterns, not keys.
        assert!(h.run(&["KEYS", "*"]).await.starts_with("-NOPERM User app has no permissions to run the 'keys'"));
        assert!(h.run(&["SCAN", "0"]).await.starts_with("*2\r\n"));
        assert_eq!(h.shared.stats.acl_denied_key.load(std::sync::atomic::Ordering::Relaxed), 9);
    }

    #[tokio::test]
    async fn a_disabled_default_user_means_everyone_authenticates() {
        let mut h = Harness::with_acl(USERS);
        assert_eq!(
            h.run(&["AUTH", "default", ""]).await,
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert_eq!(h.run(&["ACL", "WHOAMI"]).await, "-NOAUTH Authentication required.\r\n");
        assert_eq!(h.run(&["AUTH", "admin", "pw"]).await, "+OK\r\n");
        assert_eq!(h.run(&["ACL", "WHOAMI"]).await, "$5\r\nadmin\r\n");
        assert_eq!(h.shared.stats.acl_denied_auth.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn every_answer_is_tallied_under_its_command_or_unknown() {
        let mut h = Harness::with_password("pw");
        h.run(&["GET", "k"]).await; // refused: NOAUTH
        h.run(&["AUTH", "pw"]).await;
        h.run(&["get", "k"]).await;
        h.run(&["GET"]).await; // refused: arity
        h.run(&["NoSuch", "x"]).await;
        h.run(&["OtherJunk"]).await;
        let labels: Vec<&str> = super::slot_labels().collect();
        assert_eq!(labels.len(), super::COMMAND_SLOTS);
        assert_eq!(labels[super::UNKNOWN_SLOT], "unknown");
        let mut seen = Vec::new();
        h.tally().take(|slot, calls, errors| seen.push((labels[slot], calls, errors)));
        assert_eq!(seen, [("get", 3, 2), ("auth", 1, 0), ("unknown", 2, 2)]);
        let mut again = 0;
        h.tally().take(|_, _, _| again += 1);
        assert_eq!(again, 0, "taking the tally empties it");
    }

    #[test]
    fn every_command_is_either_fast_or_slow_and_writes_are_not_reads() {
        use super::category::Categories;
        for spec in super::COMMANDS {
            let fast = spec.categories.contains(Categories::FAST);
            let slow = spec.categories.contains(Categories::SLOW);
            assert!(fast != slow, "{} must be exactly one of @fast and @slow", spec.name);
            assert!(
                !(spec.categories.contains(Categories::READ) && spec.categories.contains(Categories::WRITE)),
                "{} is both @read and @write",
                spec.name
            );
            if spec.flags.contains(super::Flags::DENY_OOM) {
                assert!(spec.categories.contains(Categories::WRITE), "{} adds data but is not @write", spec.name);
            }
        }
    }

    #[tokio::test]
    async fn the_executor_asks_for_a_hand_over_once_the_writes_reach_the_bound() {
        use super::{Ctx, Flow, PENDING_BYTES_MAX, PENDING_WRITES_MAX, Session, execute};
        use crate::resp::output::Output;
        use crate::resp::parse::Parser;
        let (shared, _writes) = super::testkit::shared(super::testkit::limits(), None);
        let mut session = Session::new(1, ([127, 0, 0, 1], 1).into(), ([127, 0, 0, 1], 2).into());
        let mut parser = Parser::new(&shared.limits.current());
        let (mut out, mut pending) = (Output::default(), crate::server::control::Replicate::default());
        let mut run = |args: &[&[u8]], pending: &mut crate::server::control::Replicate| {
            let frame = super::testkit::frame(args);
            assert_eq!(parser.parse(&frame), Ok(Some(frame.len())));
            let mut ctx = Ctx { shared: &shared, session: &mut session, out: &mut out, pending, now_ms: 1 };
            execute(parser.args(&frame), &mut ctx)
        };
        for i in 1..PENDING_WRITES_MAX {
            assert_eq!(run(&[b"SET", format!("k{i}").as_bytes(), b"v"], &mut pending), Flow::Continue);
        }
        assert_eq!(run(&[b"GET", b"k1"], &mut pending), Flow::Continue, "a read adds nothing");
        assert_eq!(run(&[b"SET", b"last", b"v"], &mut pending), Flow::HandOver);
        assert_eq!(pending.writes.len(), PENDING_WRITES_MAX, "the executor leaves the hand-over to its caller");
        pending = Default::default();
        // Or once their bytes do: large values are handed over a few at a time.
        let large = vec![b'x'; PENDING_BYTES_MAX / 2 + 1];
        assert_eq!(run(&[b"SET", b"big1", &large], &mut pending), Flow::Continue);
        assert_eq!(run(&[b"SET", b"big2", &large], &mut pending), Flow::HandOver);
        assert_eq!(pending.bytes, 2 * (4 + large.len()));
        pending = Default::default();
        assert_eq!(run(&[b"MSET", b"a", b"1", b"b", b"2"], &mut pending), Flow::Continue);
        assert!(matches!(run(&[b"MEMBERS"], &mut pending), Flow::Ask(_)), "the driver's to answer");
        assert_eq!(run(&[b"QUIT"], &mut pending), Flow::Close);
    }

    #[tokio::test]
    async fn over_maxmemory_only_commands_that_add_data_are_refused() {
        use crate::core::store::{DEAD_ENTRY_OVERHEAD_BYTES, ENTRY_OVERHEAD_BYTES};
        // Two 1-byte keys with 100-byte values fit; a third would not.
        let maxmemory = 2 * (1 + 100 + ENTRY_OVERHEAD_BYTES) - 1;
        let mut h = Harness::with_limits(crate::resp::shared::ClientLimits {
            maxmemory: maxmemory as u64,
            ..super::testkit::limits()
        });
        let value = "v".repeat(100);
        let oom = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
        assert_eq!(h.run(&["SET", "a", &value]).await, "+OK\r\n");
        assert_eq!(h.run(&["SET", "b", &value]).await, "+OK\r\n", "under the limit until a write takes it over");
        assert_eq!(h.run(&["SET", "c", &value]).await, oom);
        assert_eq!(h.run(&["MSET", "c", "1"]).await, oom);
        assert_eq!(h.run(&["SET", "a", "x"]).await, oom, "an overwrite adds data too");
        assert_eq!(h.run(&["GET", "a"]).await, format!("$100\r\n{value}\r\n"));
        assert_eq!(h.run(&["EXPIRE", "a", "100"]).await, ":1\r\n");
        assert_eq!(h.run(&["PERSIST", "a"]).await, ":1\r\n");
        assert_eq!(h.run(&["DEL", "a"]).await, ":1\r\n");
        assert_eq!(h.run(&["SET", "c", &value]).await, "+OK\r\n", "a's value is freed");
        assert_eq!(h.run(&["DEL", "b"]).await, ":1\r\n");
        // Two tombstones and c: the tombstones still count their keys.
        assert_eq!(h.shared.store.used_bytes(), 2 * (1 + DEAD_ENTRY_OVERHEAD_BYTES) + 1 + 100 + ENTRY_OVERHEAD_BYTES);
        assert_eq!(h.run(&["SET", "d", "1"]).await, "+OK\r\n", "a dead key costs less than a live one");
        assert_eq!(h.run(&["SET", "e", "1"]).await, oom);
    }

    #[tokio::test]
    async fn quit_replies_ok_and_closes() {
        let mut h = Harness::with_password("pw");
        assert_eq!(h.run_flow(&["QUIT"]).await, ("+OK\r\n".to_owned(), super::Flow::Close));
    }

    #[tokio::test]
    async fn long_keys_are_refused_naming_the_limit() {
        let mut h = Harness::new();
        let long = "k".repeat(33);
        let expected = "-ERR key is 33 bytes, longer than max_key_bytes (32)\r\n";
        assert_eq!(h.run(&["SET", &long, "v"]).await, expected);
        assert_eq!(h.run(&["GET", &long]).await, expected);
        assert_eq!(h.run(&["MSET", "a", "1", &long, "2"]).await, expected);
        assert_eq!(h.run(&["GET", "a"]).await, "$-1\r\n", "MSET checks every key first");
        assert_eq!(h.run(&["SET", &"k".repeat(32), "v"]).await, "+OK\r\n");
    }
}
