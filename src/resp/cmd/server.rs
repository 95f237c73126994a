//! Server state that clients ask about, and the mesh view: DEBUG SLEEP,
//! TIME, MEMBERS.

use super::{CommandError, Ctx, Flow, is, unknown_subcommand};
use crate::resp::num::parse_i64;
use crate::resp::parse::Args;
use crate::resp::reply;
use crate::server::control::Control;

/// Redis 7's refusal of DEBUG from beyond loopback (its default
/// `enable-debug-command` is `no`; rumor behaves as `local`).
const DEBUG_NOT_LOCAL: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", \
    you can run it from a local connection, otherwise you need to set this option in the configuration file, and \
    then restart the server.";

/// `DEBUG SLEEP seconds` (fractions allowed): how long this connection
/// waits before its `OK` (None: `DEBUG HELP`, answered here). Only from
/// loopback clients. Unlike Redis, only this connection waits, not the
/// whole node.
pub(super) fn debug(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<Option<std::time::Duration>, CommandError> {
    if !ctx.session.peer.ip().is_loopback() {
        return Err(CommandError::fixed(DEBUG_NOT_LOCAL));
    }
    if is(args.arg(1), "HELP") && args.len() == 2 {
        reply::array(ctx.out, DEBUG_HELP.len());
        for line in DEBUG_HELP {
            reply::simple(ctx.out, line.as_bytes());
        }
        return Ok(None);
    }
    if !is(args.arg(1), "SLEEP") || args.len() != 3 {
        return Err(unknown_subcommand(args, "DEBUG"));
    }
    let seconds: f64 = std::str::from_utf8(args.arg(2))
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
        .ok_or(CommandError::fixed("ERR value is not a valid float"))?;
    let delay = std::time::Duration::try_from_secs_f64(seconds)
        .map_err(|_| CommandError::fixed("ERR value is not a valid float"))?;
    Ok(Some(delay))
}

/// What `DEBUG HELP` answers: the subcommands rumor has, in Redis's shape.
const DEBUG_HELP: &[&str] = &[
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "SLEEP <seconds>",
    "    Delay this connection's reply for <seconds> (decimals allowed); other clients are served meanwhile.",
    "HELP",
    "    Prints this help.",
];

/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]`: the node leaves the
/// mesh and stops as on SIGTERM (with a data dir, synced whatever the
/// options say), and this connection closes without a reply, as Redis's
/// does. A stop once asked for is not waiting on anything a client could
/// abort, so ABORT finds none in progress.
pub(super) fn shutdown(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<Flow, CommandError> {
    let (mut save, mut nosave, mut abort, mut other) = (false, false, false, false);
    for option in args.iter_from(1) {
        if is(option, "SAVE") {
            save = true;
        } else if is(option, "NOSAVE") {
            nosave = true;
        } else if is(option, "NOW") || is(option, "FORCE") {
            other = true;
        } else if is(option, "ABORT") {
            abort = true;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if (save && nosave) || (abort && (save || nosave || other)) {
        return Err(CommandError::Syntax);
    }
    if abort {
        return Err(CommandError::fixed("ERR No shutdown in progress."));
    }
    tracing::warn!(peer = %ctx.session.peer, "SHUTDOWN from a client");
    ctx.shared.shutdown_requested.notify_one();
    Ok(Flow::Close)
}

/// `TIME`: the node's wall clock as Redis answers it, seconds and
/// microseconds, each a bulk string. The executor's clock is read in
/// milliseconds, so the microseconds are a multiple of 1000.
pub(super) fn time(ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let now_ms = ctx.now_ms;
    reply::array(ctx.out, 2);
    reply::bulk_u64(ctx.out, now_ms / 1000);
    reply::bulk_u64(ctx.out, (now_ms % 1000) * 1000);
    Ok(())
}

/// `WAIT numpeers timeout`'s arguments, as Redis reads them: a negative
/// `numpeers` wants none; timeout 0 is no limit.
pub(super) fn wait_args(args: Args<'_>) -> Result<(usize, Option<std::time::Duration>), CommandError> {
    let numpeers = parse_i64(args.arg(1)).ok_or(CommandError::NotInteger)?;
    let timeout_ms =
        parse_i64(args.arg(2)).ok_or(CommandError::fixed("ERR timeout is not an integer or out of range"))?;
    if timeout_ms < 0 {
        return Err(CommandError::fixed("ERR timeout is negative"));
    }
    let timeout = (timeout_ms > 0).then(|| std::time::Duration::from_millis(timeout_ms as u64));
    Ok((usize::try_from(numpeers).unwrap_or(0), timeout))
}

/// `WAIT`: hands the batch's writes over, then waits for the driver to
/// count the live peers that hold every write this connection made (see
/// `core::node::confirm`), up to the timeout.
pub(super) async fn wait(
    numpeers: usize,
    timeout: Option<std::time::Duration>,
    ctx: &mut Ctx<'_>,
) -> Result<(), CommandError> {
    super::replicate(ctx.shared, ctx.pending).await;
    let (answer, receiver) = tokio::sync::oneshot::channel();
    let wrote = ctx.session.wrote;
    let asked = ctx.shared.control.send(Control::Wait { numpeers, timeout, wrote, answer }).await.is_ok();
    // The driver answers at the timeout itself; past it by this much, it
    // is gone or stuck.
    let count = match (asked, timeout) {
        (false, _) => None,
        (true, Some(timeout)) => {
            tokio::time::timeout(timeout + super::CONTROL_TIMEOUT, receiver).await.ok().and_then(Result::ok)
        }
        (true, None) => receiver.await.ok(),
    };
    ctx.now_ms = ctx.shared.clock.wall_ms();
    let count = count.ok_or(CommandError::fixed("ERR WAIT is unavailable: the node is not answering"))?;
    reply::count(ctx.out, count);
    Ok(())
}

/// `MEMBERS`: one bulk string per known member, self included,
/// `<name> <gossip-addr> <alive|suspect|down>`, as the driver reports them.
pub(super) async fn members(ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let members = ctx
        .ask(Control::Members)
        .await
        .ok_or(CommandError::fixed("ERR membership is unavailable: the node is not answering"))?;
    reply::array(ctx.out, members.len());
    for member in members {
        reply::bulk(ctx.out, member.as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{Harness, MEMBERS};

    #[tokio::test]
    async fn shutdown_asks_the_node_to_stop_and_closes_without_a_reply() {
        let mut h = Harness::new();
        let asked = h.shared.shutdown_requested.clone();
        assert_eq!(h.run(&["SHUTDOWN", "ABORT"]).await, "-ERR No shutdown in progress.\r\n");
        for conflicting in [&["SHUTDOWN", "SAVE", "NOSAVE"][..], &["SHUTDOWN", "ABORT", "NOW"], &["SHUTDOWN", "x"]] {
            assert_eq!(h.run(conflicting).await, "-ERR syntax error\r\n", "{conflicting:?}");
        }
        assert_eq!(h.run(&["MULTI"]).await, "+OK\r\n");
        assert_eq!(h.run(&["SHUTDOWN"]).await, "-ERR Command not allowed inside a transaction\r\n");
        assert_eq!(h.run(&["EXEC"]).await, "-EXECABORT Transaction discarded because of previous errors.\r\n");
        let not_yet = tokio::time::timeout(std::time::Duration::from_millis(10), asked.notified()).await;
        assert!(not_yet.is_err(), "no stop asked for yet");
        let (reply, flow) = h.run_flow(&["SHUTDOWN", "NOSAVE", "NOW"]).await;
        assert_eq!((reply.as_str(), flow), ("", super::super::Flow::Close));
        tokio::time::timeout(std::time::Duration::from_secs(1), asked.notified()).await.expect("asked to stop");
    }

    #[tokio::test]
    async fn debug_sleep_waits_this_connection_only_from_loopback() {
        let mut h = Harness::new();
        let started = h.shared.clock.mono();
        assert_eq!(h.run(&["DEBUG", "SLEEP", "0.05"]).await, "+OK\r\n");
        assert!(h.shared.clock.mono() - started >= std::time::Duration::from_millis(50));
        assert_eq!(h.run(&["DEBUG", "SLEEP", "0"]).await, "+OK\r\n");
        for bad in ["x", "-1", "inf", "NaN", "1e300"] {
            assert_eq!(h.run(&["DEBUG", "SLEEP", bad]).await, "-ERR value is not a valid float\r\n", "{bad}");
        }
        assert_eq!(h.run(&["DEBUG", "NOPE"]).await, "-ERR unknown subcommand 'NOPE'. Try DEBUG HELP.\r\n");
        let help = h.run(&["DEBUG", "HELP"]).await;
        assert!(help.starts_with("*5\r\n+DEBUG <subcommand>") && help.contains("+SLEEP <seconds>\r\n"), "{help}");
        h.connect_from(([10, 0, 0, 1], 5000).into());
        assert!(h.run(&["DEBUG", "SLEEP", "0"]).await.starts_with("-ERR DEBUG command not allowed."));
    }

    #[tokio::test]
    async fn time_is_seconds_and_microseconds() {
        let mut h = Harness::new();
        let before_ms = h.now_ms();
        let reply = h.run(&["TIME"]).await;
        let after_ms = h.now_ms();
        let parts: Vec<&str> = reply.split("\r\n").collect();
        assert_eq!((parts[0], parts.len()), ("*2", 6), "{reply}");
        let (secs, micros): (u64, u64) = (parts[2].parse().unwrap(), parts[4].parse().unwrap());
        let ms = secs * 1000 + micros / 1000;
        assert!((before_ms..=after_ms).contains(&ms), "{ms} within {before_ms}..={after_ms}");
        assert!(micros < 1_000_000);
        assert_eq!(h.run(&["TIME", "x"]).await, "-ERR wrong number of arguments for 'time' command\r\n");
    }

    #[tokio::test]
    async fn members_lists_what_the_driver_reports() {
        let mut h = Harness::new();
        let expected =
            format!("*2\r\n${}\r\n{}\r\n${}\r\n{}\r\n", MEMBERS[0].len(), MEMBERS[0], MEMBERS[1].len(), MEMBERS[1]);
        assert_eq!(h.run(&["MEMBERS"]).await, expected);
        assert_eq!(h.run(&["members"]).await, expected);
    }

    #[tokio::test]
    async fn members_without_a_driver_is_an_error() {
        let mut h = Harness::without_driver();
        assert_eq!(h.run(&["MEMBERS"]).await, "-ERR membership is unavailable: the node is not answering\r\n");
    }
}
