//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH, with Redis's
//! semantics and errors.
//!
//! After MULTI a connection's commands are checked as they arrive (an
//! unknown command, a wrong arity, a refused permission or `maxmemory`
//! answers its error and dooms the transaction, `EXECABORT` at EXEC) and
//! queued. EXEC runs the queue under the node's transaction gate, held
//! exclusively, so no other client's command on this node interleaves
//! (every other command holds the gate shared while it runs); its writes
//! reach dissemination as one batch. WATCH notes each key's versions (the
//! value's and the deadline's) and whether it is live; EXEC aborts if any
//! changed, whether a client of this node or a peer's write changed it, or
//! if a watched key expired.
//!
//! What a transaction does not give across nodes: another node may run
//! commands on the same keys at the same time, and its writes merge with
//! these by version afterwards, key by key; and a peer's write that
//! arrives while EXEC runs is merged at once (merges do not take the gate),
//! so WATCH catches only the changes that arrived before EXEC began.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::category::Flags;
use super::{Asked, CommandError, Ctx, Flow, Handler, Question, Spec, Sub, check, handle, lookup};
use crate::core::version::{Timestamp, Version};
use crate::resp::gate::Pass;
use crate::resp::parse::Args;
use crate::resp::reply;

/// The commands queued since MULTI.
#[derive(Debug, Default)]
pub(crate) struct Queued {
    /// Each command's arguments, copied out of the read buffer.
    commands: Vec<(Vec<u8>, Vec<Range<usize>>)>,
    /// Bytes held by `commands`, bounded by the output-buffer limit.
    bytes: usize,
    /// A command was refused while queueing: EXEC answers `EXECABORT`.
    doomed: bool,
}

/// A watched key and what it was when watched.
#[derive(Debug)]
pub(crate) struct Watched {
    key: Bytes,
    seen: Option<KeyState>,
}

/// What WATCH compares: a change to the value or the deadline gives new
/// versions; expiry changes liveness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct KeyState {
    version: Version,
    deadline_set_at: Timestamp,
    live: bool,
}

fn state_of(ctx: &Ctx<'_>, key: &[u8]) -> Option<KeyState> {
    let now_ms = ctx.now_ms();
    ctx.shared.store.entry(key).map(|entry| KeyState {
        version: entry.version,
        deadline_set_at: entry.deadline_set_at,
        live: entry.live_value(now_ms).is_some(),
    })
}

/// Whether a command runs at once inside MULTI rather than being queued.
pub(super) fn runs_at_once(handler: Handler) -> bool {
    matches!(
        handler,
        Handler::Exec | Handler::Discard | Handler::Multi | Handler::Watch | Handler::Quit | Handler::Reset
    )
}

/// Queues a command given inside MULTI, after the checks it would get if
/// it ran now; a refused one answers its error and dooms the transaction.
pub(super) fn queue(slot: usize, spec: &Spec, sub: Option<&Sub>, args: Args<'_>, ctx: &mut Ctx<'_>) -> Flow {
    let checked = check(slot, spec, sub, args, ctx);
    let Some(queued) = ctx.session.transaction.as_mut() else {
        return Flow::Continue;
    };
    let size: usize = args.iter_from(0).map(<[u8]>::len).sum();
    let refusal = match checked {
        Err(error) => Some(error),
        Ok(Some(flow)) => return flow,
        Ok(None) if spec.flags.contains(Flags::NO_MULTI) => {
            Some(CommandError::fixed("ERR Command not allowed inside a transaction"))
        }
        // The output-buffer limit bounds queued arguments too (0: no limit).
        Ok(None) if queued.bytes + size > transaction_limit(ctx.shared.limits.output_buffer_limit_bytes()) => {
            Some(CommandError::fixed("ERR transaction over the client output buffer limit"))
        }
        Ok(None) => None,
    };
    match refusal {
        Some(error) => {
            queued.doomed = true;
            error.write(ctx.out);
            ctx.session.tally.count(slot, true);
        }
        None => {
            let mut buf = Vec::with_capacity(size);
            let mut ranges = Vec::with_capacity(args.len());
            for arg in args.iter_from(0) {
                ranges.push(buf.len()..buf.len() + arg.len());
                buf.extend_from_slice(arg);
            }
            queued.bytes += size;
            queued.commands.push((buf, ranges));
            reply::simple(ctx.out, b"QUEUED");
        }
    }
    Flow::Continue
}

/// A command refused by its checks (arity, permissions…) that runs at once
/// even inside MULTI (EXEC, DISCARD, WATCH…): as in Redis, the refusal
/// dooms the transaction, and a refused EXEC, inside MULTI or not,
/// discards any transaction and watched keys and answers `EXECABORT` with
/// the refusal's text. Any other command's `error` is returned as is.
pub(super) fn refused(spec: &Spec, error: CommandError, ctx: &mut Ctx<'_>) -> CommandError {
    if spec.handler != Handler::Exec {
        if let Some(queued) = ctx.session.transaction.as_mut() {
            queued.doomed = true;
        }
        return error;
    }
    ctx.session.transaction = None;
    ctx.session.watched.clear();
    let mut written = BytesMut::new();
    error.write(&mut written);
    let text = written.strip_prefix(b"-").and_then(|text| text.strip_suffix(b"\r\n")).unwrap_or(&written);
    let text = text.strip_prefix(b"ERR ").unwrap_or(text);
    CommandError::echoing("EXECABORT Transaction discarded because of: ", text, "")
}

fn transaction_limit(output_buffer_limit_bytes: usize) -> usize {
    if output_buffer_limit_bytes == 0 { usize::MAX } else { output_buffer_limit_bytes }
}

/// `MULTI`.
pub(super) fn multi(ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    if ctx.session.transaction.is_some() {
        return Err(CommandError::fixed("ERR MULTI calls can not be nested"));
    }
    ctx.session.transaction = Some(Queued::default());
    reply::ok(ctx.out);
    Ok(())
}

/// `DISCARD`.
pub(super) fn discard(ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    if ctx.session.transaction.take().is_none() {
        return Err(CommandError::fixed("ERR DISCARD without MULTI"));
    }
    ctx.session.watched.clear();
    reply::ok(ctx.out);
    Ok(())
}

/// `WATCH key…`.
pub(super) fn watch(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    if ctx.session.transaction.is_some() {
        return Err(CommandError::fixed("ERR WATCH inside MULTI is not allowed"));
    }
    for key in args.iter_from(1) {
        ctx.key(key)?;
    }
    if ctx.session.watched.len() + args.len() - 1 > ctx.shared.limits.max_args {
        return Err(CommandError::fixed("ERR too many watched keys (max_args)"));
    }
    for key in args.iter_from(1) {
        let seen = state_of(ctx, key);
        ctx.session.watched.push(Watched { key: Bytes::copy_from_slice(key), seen });
    }
    reply::ok(ctx.out);
    Ok(())
}

/// `UNWATCH`.
pub(super) fn unwatch(ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    ctx.session.watched.clear();
    reply::ok(ctx.out);
    Ok(())
}

/// `EXEC`: the queued commands' replies as one array, or `EXECABORT`, or
/// the null array when a watched key changed.
pub(super) fn exec(ctx: &mut Ctx<'_>) -> Result<Flow, CommandError> {
    match &ctx.session.transaction {
        None => return Err(CommandError::fixed("ERR EXEC without MULTI")),
        Some(queued) if queued.doomed => {
            ctx.session.transaction = None;
            ctx.session.watched.clear();
            return Err(CommandError::fixed("EXECABORT Transaction discarded because of previous errors."));
        }
        Some(_) => {}
    }
    let shared = ctx.shared;
    match shared.transaction_gate.try_exclusive() {
        Some(pass) => run_exec(ctx, pass),
        // The connection waits for the gate, then calls `run_exec`.
        None => Ok(Flow::Ask(Asked { slot: 0, question: Question::Exec })),
    }
}

/// Runs the queued transaction, holding the gate alone.
pub(super) fn run_exec(ctx: &mut Ctx<'_>, _alone: Pass<'_>) -> Result<Flow, CommandError> {
    let Some(queued) = ctx.session.transaction.take() else {
        return Err(CommandError::fixed("ERR EXEC without MULTI"));
    };
    let watched = std::mem::take(&mut ctx.session.watched);
    if watched.iter().any(|w| state_of(ctx, &w.key) != w.seen) {
        reply::null_array(ctx.out);
        return Ok(Flow::Continue);
    }
    reply::array(ctx.out, queued.commands.len());
    let mut closing = false;
    for (buf, ranges) in &queued.commands {
        let args = Args::new(buf, ranges);
        let Some((slot, spec)) = lookup(args.arg(0)) else {
            continue;
        };
        let sub = spec.subcommand(args).map(|(_, sub)| sub);
        let outcome = match check(slot, spec, sub, args, ctx) {
            Ok(None) => handle(spec, args, ctx),
            Ok(Some(flow)) => Ok(flow),
            Err(error) => Err(error),
        };
        let failed = match outcome {
            Ok(Flow::Ask(_)) => {
                // It would wait on the driver, which EXEC cannot do while
                // it holds the node.
                let text = format!("ERR {} can not run inside MULTI on rumor", spec.name.to_uppercase());
                reply::error(ctx.out, text.as_bytes());
                true
            }
            Ok(Flow::Close) => {
                closing = true;
                false
            }
            Ok(_) => false,
            Err(error) => {
                error.write(ctx.out);
                true
            }
        };
        ctx.session.tally.count(slot, failed);
    }
    Ok(if closing { Flow::Close } else { Flow::Continue })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Harness;

    #[tokio::test]
    async fn a_refused_exec_discards_the_transaction_and_a_refused_discard_dooms_it() {
        let mut h = Harness::new();
        h.run(&["MULTI"]).await;
        assert_eq!(h.run(&["SET", "a", "1"]).await, "+QUEUED\r\n");
        assert_eq!(
            h.run(&["EXEC", "x"]).await,
            "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n"
        );
        assert_eq!(h.run(&["EXEC"]).await, "-ERR EXEC without MULTI\r\n");
        assert_eq!(h.run(&["EXISTS", "a"]).await, ":0\r\n");
        h.run(&["MULTI"]).await;
        assert_eq!(h.run(&["WATCH"]).await, "-ERR wrong number of arguments for 'watch' command\r\n");
        assert_eq!(h.run(&["EXEC"]).await, "-EXECABORT Transaction discarded because of previous errors.\r\n");
        h.run(&["MULTI"]).await;
        assert_eq!(h.run(&["DISCARD", "x"]).await, "-ERR wrong number of arguments for 'discard' command\r\n");
        assert_eq!(h.run(&["DISCARD"]).await, "+OK\r\n");
        h.run(&["MULTI"]).await;
        assert_eq!(h.run(&["OBJECT", "nope", "a"]).await, "-ERR unknown subcommand 'nope'. Try OBJECT HELP.\r\n");
        assert_eq!(h.run(&["EXEC"]).await, "-EXECABORT Transaction discarded because of previous errors.\r\n");
        // Outside MULTI too, as Redis answers a refused EXEC.
        assert_eq!(
            h.run(&["EXEC", "x"]).await,
            "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n"
        );
    }

    #[tokio::test]
    async fn multi_queues_and_exec_answers_every_reply() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["EXEC"]).await, "-ERR EXEC without MULTI\r\n");
        assert_eq!(h.run(&["DISCARD"]).await, "-ERR DISCARD without MULTI\r\n");
        assert_eq!(h.run(&["MULTI"]).await, "+OK\r\n");
        assert_eq!(h.run(&["MULTI"]).await, "-ERR MULTI calls can not be nested\r\n");
        assert_eq!(h.run(&["WATCH", "a"]).await, "-ERR WATCH inside MULTI is not allowed\r\n");
        assert_eq!(h.run(&["SET", "a", "x"]).await, "+QUEUED\r\n");
        assert_eq!(h.run(&["EXPIRE", "a", "nope"]).await, "+QUEUED\r\n");
        assert_eq!(h.run(&["GET", "a"]).await, "+QUEUED\r\n");
        assert!(h.replicated().is_empty(), "nothing runs before EXEC");
        assert_eq!(
            h.run(&["EXEC"]).await,
            "*3\r\n+OK\r\n-ERR value is not an integer or out of range\r\n$1\r\nx\r\n",
            "a command's own error is its reply; the others run"
        );
        assert_eq!(h.replicated(), [("a".to_owned(), false)]);
        assert_eq!(h.run(&["MULTI"]).await, "+OK\r\n");
        assert_eq!(h.run(&["EXEC"]).await, "*0\r\n");
        assert_eq!(h.run(&["MULTI"]).await, "+OK\r\n");
        assert_eq!(h.run(&["SET", "a", "y"]).await, "+QUEUED\r\n");
        assert_eq!(h.run(&["DISCARD"]).await, "+OK\r\n");
        assert_eq!(h.run(&["GET", "a"]).await, "$1\r\nx\r\n");
    }

    #[tokio::test]
    async fn a_queueing_error_aborts_exec() {
        let mut h = Harness::new();
        h.run(&["MULTI"]).await;
        assert_eq!(h.run(&["NOSUCH"]).await, "-ERR unknown command 'NOSUCH', with args beginning with: \r\n");
        assert_eq!(h.run(&["SET", "a"]).await, "-ERR wrong number of arguments for 'set' command\r\n");
        assert_eq!(h.run(&["SET", "b", "2"]).await, "+QUEUED\r\n");
        assert_eq!(h.run(&["EXEC"]).await, "-EXECABORT Transaction discarded because of previous errors.\r\n");
        assert_eq!(h.run(&["GET", "b"]).await, "$-1\r\n");
        assert_eq!(h.run(&["EXEC"]).await, "-ERR EXEC without MULTI\r\n", "the transaction is over");
    }

    #[tokio::test]
    async fn watch_aborts_on_any_change_even_our_own() {
        let mut h = Harness::new();
        h.run(&["SET", "a", "1"]).await;
        assert_eq!(h.run(&["WATCH", "a", "missing"]).await, "+OK\r\n");
        h.run(&["SET", "a", "2"]).await;
        h.run(&["MULTI"]).await;
        h.run(&["GET", "a"]).await;
        assert_eq!(h.run(&["EXEC"]).await, "*-1\r\n");
        // A deadline change is a change; UNWATCH forgets.
        h.run(&["WATCH", "a"]).await;
        h.run(&["EXPIRE", "a", "100"]).await;
        h.run(&["MULTI"]).await;
        assert_eq!(h.run(&["EXEC"]).await, "*-1\r\n");
        h.run(&["WATCH", "a"]).await;
        h.run(&["PERSIST", "a"]).await;
        assert_eq!(h.run(&["UNWATCH"]).await, "+OK\r\n");
        h.run(&["MULTI"]).await;
        h.run(&["GET", "a"]).await;
        assert_eq!(h.run(&["EXEC"]).await, "*1\r\n$1\r\n2\r\n");
        // A watched key created meanwhile, and the null in RESP3.
        h.run(&["HELLO", "3"]).await;
        h.run(&["WATCH", "new"]).await;
        h.run(&["SET", "new", "1"]).await;
        h.run(&["MULTI"]).await;
        assert_eq!(h.run(&["EXEC"]).await, "_\r\n");
    }

    #[tokio::test]
    async fn the_queue_is_bounded_by_the_output_buffer_limit() {
        let limits =
            crate::resp::shared::ClientLimits { output_buffer_limit_bytes: 64, ..super::super::testkit::limits() };
        let mut h = Harness::with_limits(limits);
        h.run(&["MULTI"]).await;
        let value = "v".repeat(40);
        assert_eq!(h.run(&["SET", "a", &value]).await, "+QUEUED\r\n");
        assert_eq!(h.run(&["SET", "b", &value]).await, "-ERR transaction over the client output buffer limit\r\n");
        assert_eq!(h.run(&["EXEC"]).await, "-EXECABORT Transaction discarded because of previous errors.\r\n");
        assert_eq!(super::transaction_limit(0), usize::MAX, "0 is no limit");
    }

    #[tokio::test]
    async fn reset_ends_a_transaction() {
        let mut h = Harness::new();
        h.run(&["WATCH", "a"]).await;
        h.run(&["MULTI"]).await;
        assert_eq!(h.run(&["SET", "a", "1"]).await, "+QUEUED\r\n");
        assert_eq!(h.run(&["RESET"]).await, "+RESET\r\n");
        assert_eq!(h.run(&["EXEC"]).await, "-ERR EXEC without MULTI\r\n");
        assert_eq!(h.run(&["GET", "a"]).await, "$-1\r\n");
    }
}
