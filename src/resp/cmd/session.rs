//! A connection's own state and the commands that read or change it:
//! PING, ECHO, AUTH, SELECT, CLIENT.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{CommandError, CommandTally, Ctx, is, subcommand_arity, unknown_subcommand};
use crate::resp::acl::user::User;
use crate::resp::acl::{self, Users, WrongPass};
use crate::resp::num::parse_i64;
use crate::resp::parse::Args;
use crate::resp::reply;
use crate::resp::shared::Shared;

/// What one connection remembers between commands.
#[derive(Debug)]
pub(crate) struct Session {
    /// `CLIENT ID`: unique among this node's connections.
    pub(crate) id: u64,
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// Our end of the connection.
    pub(crate) local: SocketAddr,
    /// Passed `AUTH`. Without it, commands run as `default` while that
    /// user needs no password.
    authenticated: bool,
    /// The user commands run as: `default` until an AUTH.
    user_name: String,
    /// That user as of `user_generation` of the node's users; looked up
    /// again when ACL LOAD has moved the generation on.
    user: Option<Arc<User>>,
    user_generation: u64,
    /// Commands executed and not yet added to the node's counter; the
    /// connection adds them once per batch instead of once per command.
    pub(crate) commands: u64,
    /// Every command answered (refused ones too) and not yet added to the
    /// node's metrics, per command; the connection takes it once per batch.
    pub(crate) tally: CommandTally,
    /// This batch wrote something that storage has not yet confirmed: its
    /// replies wait for the data dir (with `--data-dir`).
    pub(crate) unsettled_writes: bool,
    name: Vec<u8>,
    lib_name: Vec<u8>,
    lib_ver: Vec<u8>,
}

impl Session {
    /// A fresh, unauthenticated session.
    pub(crate) fn new(id: u64, peer: SocketAddr, local: SocketAddr) -> Self {
        Session {
            id,
            peer,
            local,
            authenticated: false,
            user_name: "default".to_owned(),
            user: None,
            user_generation: 0,
            commands: 0,
            tally: CommandTally::default(),
            unsettled_writes: false,
            name: Vec::new(),
            lib_name: Vec::new(),
            lib_ver: Vec::new(),
        }
    }

    /// Whether commands other than AUTH and QUIT are refused (Redis's
    /// rule, read on every command: the default user needs a password, or
    /// is off, and this session has not authenticated).
    pub(crate) fn auth_required(&self, shared: &Shared) -> bool {
        !self.authenticated && !shared.users.default_is_open()
    }

    /// The user commands run as now, or `None` if it was deleted or
    /// disabled (by ACL LOAD) since.
    pub(crate) fn user(&mut self, users: &Users) -> Option<&User> {
        let generation = users.generation();
        if self.user.is_none() || self.user_generation != generation {
            self.user = users.get(&self.user_name);
            self.user_generation = generation;
        }
        self.user.as_deref().filter(|user| user.enabled())
    }

    /// The user's name (ACL WHOAMI).
    pub(crate) fn user_name(&self) -> &str {
        &self.user_name
    }

    /// From now on, commands run as `user`.
    fn log_in(&mut self, user: Arc<User>, users: &Users) {
        self.authenticated = true;
        self.user_name = user.name().to_owned();
        self.user = Some(user);
        self.user_generation = users.generation();
    }
}

/// `PING [message]`.
pub(super) fn ping(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    match args.len() {
        1 => reply::simple(ctx.out, b"PONG"),
        2 => reply::bulk(ctx.out, args.arg(1)),
        _ => return Err(CommandError::Arity("ping")),
    }
    Ok(())
}

/// `ECHO message`.
pub(super) fn echo(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    reply::bulk(ctx.out, args.arg(1));
    Ok(())
}

/// `AUTH [username] password`, against the node's users. `AUTH password`
/// is for `default`; while that user is `nopass` it is an error, as in
/// Redis. From an address with recent failures, the caller waits
/// [`auth_delay`] first (see `acl::throttle`).
pub(super) fn auth(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    if args.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let (name, given) = if args.len() == 2 {
        if ctx.shared.users.default_is_nopass() {
            return Err(CommandError::fixed(
                "ERR AUTH <password> called without any password configured for the default \
                 user. Are you sure your configuration is correct?",
            ));
        }
        (&b"default"[..], args.arg(1))
    } else {
        (args.arg(1), args.arg(2))
    };
    let address = ctx.session.peer.ip();
    match acl::authenticate(&ctx.shared.users, name, given) {
        Ok(user) => {
            ctx.session.log_in(user, &ctx.shared.users);
            reply::ok(ctx.out);
            Ok(())
        }
        Err(WrongPass) => {
            ctx.shared.auth_throttle.failed(address, ctx.now_ms);
            ctx.shared.stats.acl_denied_auth.fetch_add(1, Ordering::Relaxed);
            Err(CommandError::fixed("WRONGPASS invalid username-password pair or user is disabled."))
        }
    }
}

/// How long an AUTH from this client's address waits before it is
/// answered: zero unless the address failed recently.
pub(super) fn auth_delay(ctx: &Ctx<'_>) -> std::time::Duration {
    ctx.shared.auth_throttle.delay(ctx.session.peer.ip(), ctx.now_ms)
}

/// `SELECT 0`: there is one database.
pub(super) fn select(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    match parse_i64(args.arg(1)) {
        None => Err(CommandError::NotInteger),
        Some(0) => {
            reply::ok(ctx.out);
            Ok(())
        }
        Some(_) => Err(CommandError::fixed("ERR DB index is out of range")),
    }
}

/// `CLIENT SETNAME|GETNAME|ID|INFO|SETINFO|NO-EVICT|NO-TOUCH`.
pub(super) fn client(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let sub = args.arg(1);
    if is(sub, "SETNAME") {
        subcommand_arity(args, 3, "client|setname")?;
        let name = args.arg(2);
        if !printable(name) {
            return Err(CommandError::fixed("ERR Client names cannot contain spaces, newlines or special characters."));
        }
        ctx.session.name = name.to_vec();
        reply::ok(ctx.out);
    } else if is(sub, "GETNAME") {
        subcommand_arity(args, 2, "client|getname")?;
        let name = &ctx.session.name;
        reply::optional_bulk(ctx.out, (!name.is_empty()).then_some(name.as_slice()));
    } else if is(sub, "ID") {
        subcommand_arity(args, 2, "client|id")?;
        reply::integer(ctx.out, i64::try_from(ctx.session.id).unwrap_or(i64::MAX));
    } else if is(sub, "INFO") {
        subcommand_arity(args, 2, "client|info")?;
        let line = describe(ctx.session);
        reply::bulk(ctx.out, line.as_bytes());
    } else if is(sub, "SETINFO") {
        subcommand_arity(args, 4, "client|setinfo")?;
        let (attribute, value) = (args.arg(2), args.arg(3));
        let slot = if is(attribute, "LIB-NAME") {
            &mut ctx.session.lib_name
        } else if is(attribute, "LIB-VER") {
            &mut ctx.session.lib_ver
        } else {
            let attribute = String::from_utf8_lossy(attribute);
            return Err(CommandError::Message(format!("ERR Unrecognized option '{attribute}'").into()));
        };
        if !printable(value) {
            let attribute = String::from_utf8_lossy(attribute);
            return Err(CommandError::Message(
                format!("ERR {attribute} cannot contain spaces, newlines or special characters.").into(),
            ));
        }
        *slot = value.to_vec();
        reply::ok(ctx.out);
    } else if is(sub, "NO-EVICT") || is(sub, "NO-TOUCH") {
        let full_name = if is(sub, "NO-EVICT") { "client|no-evict" } else { "client|no-touch" };
        subcommand_arity(args, 3, full_name)?;
        if !is(args.arg(2), "ON") && !is(args.arg(2), "OFF") {
            return Err(CommandError::Syntax);
        }
        // Nothing is evicted and access times are not kept: both are no-ops.
        reply::ok(ctx.out);
    } else {
        return Err(unknown_subcommand(args, "CLIENT"));
    }
    Ok(())
}

/// `CLIENT INFO`'s line, in Redis's `field=value` format.
fn describe(session: &Session) -> String {
    let mut line = String::new();
    let _ = writeln!(
        line,
        "id={} addr={} laddr={} name={} db=0 lib-name={} lib-ver={}",
        session.id,
        session.peer,
        session.local,
        String::from_utf8_lossy(&session.name),
        String::from_utf8_lossy(&session.lib_name),
        String::from_utf8_lossy(&session.lib_ver),
    );
    line
}

/// Redis's rule for names shown in `CLIENT INFO`: printable ASCII, no
/// spaces, so the line stays splittable.
fn printable(text: &[u8]) -> bool {
    text.iter().all(|b| (b'!'..=b'~').contains(b))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Harness;

    #[tokio::test]
    async fn ping_and_echo() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["PING"]).await, "+PONG\r\n");
        assert_eq!(h.run(&["PING", "hello world"]).await, "$11\r\nhello world\r\n");
        assert_eq!(h.run(&["ECHO", ""]).await, "$0\r\n\r\n");
        assert_eq!(h.run_bytes(&[b"ECHO", b"\x00\xff\r\n"]).await, b"$4\r\n\x00\xff\r\n\r\n");
    }

    #[tokio::test]
    async fn auth_without_a_password_configured() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["AUTH", "x"]).await,
            "-ERR AUTH <password> called without any password configured for the default \
             user. Are you sure your configuration is correct?\r\n"
        );
        assert_eq!(h.run(&["AUTH", "default", "anything"]).await, "+OK\r\n");
        assert_eq!(
            h.run(&["AUTH", "alice", "x"]).await,
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert_eq!(h.run(&["AUTH", "a", "b", "c"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["AUTH"]).await, "-ERR wrong number of arguments for 'auth' command\r\n");
    }

    #[tokio::test]
    async fn auth_with_a_password() {
        let mut h = Harness::with_password("sesame");
        assert_eq!(
            h.run(&["AUTH", "default", "nope"]).await,
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert_eq!(
            h.run(&["AUTH", "other", "sesame"]).await,
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert_eq!(h.run(&["AUTH", "default", "sesame"]).await, "+OK\r\n");
        assert_eq!(h.run(&["PING"]).await, "+PONG\r\n");
        // A later failure does not log the client out.
        assert!(h.run(&["AUTH", "bad"]).await.starts_with("-WRONGPASS"));
        assert_eq!(h.run(&["PING"]).await, "+PONG\r\n");
    }

    #[tokio::test]
    async fn select_only_db_zero() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SELECT", "0"]).await, "+OK\r\n");
        assert_eq!(h.run(&["SELECT", "1"]).await, "-ERR DB index is out of range\r\n");
        assert_eq!(h.run(&["SELECT", "-1"]).await, "-ERR DB index is out of range\r\n");
        assert_eq!(h.run(&["SELECT", "zero"]).await, "-ERR value is not an integer or out of range\r\n");
    }

    #[tokio::test]
    async fn client_subcommands() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["CLIENT", "GETNAME"]).await, "$-1\r\n");
        assert_eq!(h.run(&["CLIENT", "SETNAME", "worker-1"]).await, "+OK\r\n");
        assert_eq!(h.run(&["client", "getname"]).await, "$8\r\nworker-1\r\n");
        assert_eq!(
            h.run(&["CLIENT", "SETNAME", "a b"]).await,
            "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
        );
        assert_eq!(h.run(&["CLIENT", "SETNAME", ""]).await, "+OK\r\n");
        assert_eq!(h.run(&["CLIENT", "GETNAME"]).await, "$-1\r\n");
        assert_eq!(h.run(&["CLIENT", "ID"]).await, ":7\r\n");
        assert_eq!(h.run(&["CLIENT", "SETINFO", "LIB-NAME", "redis-rs"]).await, "+OK\r\n");
        assert_eq!(h.run(&["CLIENT", "SETINFO", "lib-ver", "1.0.0"]).await, "+OK\r\n");
        assert_eq!(h.run(&["CLIENT", "SETINFO", "colour", "x"]).await, "-ERR Unrecognized option 'colour'\r\n");
        assert_eq!(
            h.run(&["CLIENT", "SETINFO", "lib-ver", "1 0"]).await,
            "-ERR lib-ver cannot contain spaces, newlines or special characters.\r\n"
        );
        let info = h.run(&["CLIENT", "INFO"]).await;
        assert!(info.contains("id=7 addr=127.0.0.1:40000 laddr=127.0.0.1:6380"), "{info}");
        assert!(info.contains("lib-name=redis-rs lib-ver=1.0.0\n"), "{info}");
        assert_eq!(h.run(&["CLIENT", "NO-EVICT", "on"]).await, "+OK\r\n");
        assert_eq!(h.run(&["CLIENT", "NO-TOUCH", "maybe"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["CLIENT", "KILL", "x"]).await, "-ERR unknown subcommand 'KILL'. Try CLIENT HELP.\r\n");
        assert_eq!(
            h.run(&["CLIENT", "SETINFO", "x"]).await,
            "-ERR wrong number of arguments for 'client|setinfo' command\r\n"
        );
    }
}
