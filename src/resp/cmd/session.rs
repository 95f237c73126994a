//! A connection's own state and the commands that read or change it:
//! PING, ECHO, AUTH, HELLO, RESET, SELECT (CLIENT is in `client`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::transaction::{Queued, Watched};
use super::{CommandError, CommandTally, Ctx, is};
use crate::resp::acl::user::User;
use crate::resp::acl::{self, Users, WrongPass};
use crate::resp::clients::Client;
use crate::resp::num::parse_i64;
use crate::resp::parse::Args;
use crate::resp::reply::{self, Protocol, Reply};
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
    /// This connection has written at all: a WAIT waits for its writes.
    pub(crate) wrote: bool,
    /// RESP2 until a `HELLO 3`; the executor encodes every reply in it.
    pub(crate) protocol: Protocol,
    /// `CLIENT REPLY`.
    pub(crate) replies: Replies,
    /// This connection as CLIENT LIST and CLIENT KILL see it; it keeps the
    /// name and library CLIENT SETNAME and SETINFO set.
    pub(crate) client: Arc<Client>,
    /// The commands queued since MULTI, until EXEC or DISCARD.
    pub(crate) transaction: Option<Queued>,
    /// The keys WATCH noted, until EXEC, DISCARD or UNWATCH.
    pub(crate) watched: Vec<Watched>,
}

/// Which replies a connection is sent (`CLIENT REPLY`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Replies {
    /// Every reply.
    #[default]
    On,
    /// None, until `CLIENT REPLY ON`.
    Off,
    /// None for the next command, then every reply again.
    SkipNext,
}

impl Session {
    /// A fresh, unauthenticated session, on no socket.
    pub(crate) fn new(id: u64, peer: SocketAddr, local: SocketAddr) -> Self {
        Self::on_socket(id, peer, local, -1)
    }

    /// A fresh, unauthenticated session on the socket `fd`.
    pub(crate) fn on_socket(id: u64, peer: SocketAddr, local: SocketAddr, fd: i64) -> Self {
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
            wrote: false,
            protocol: Protocol::Resp2,
            replies: Replies::On,
            client: Arc::new(Client::new(id, peer, local, fd)),
            transaction: None,
            watched: Vec::new(),
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
        self.client.described().user.clone_from(&self.user_name);
        self.user = Some(user);
        self.user_generation = users.generation();
    }

    /// Encodes replies in `protocol` from now on.
    fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
        self.client.described().protocol = protocol;
    }

    /// RESET: back to a new connection's state — unauthenticated (which is
    /// `default` when that user needs no password), RESP2, no name, every
    /// reply sent. The library name and version stay, as in Redis.
    fn reset(&mut self) {
        self.authenticated = false;
        self.user_name = "default".to_owned();
        self.user = None;
        self.protocol = Protocol::Resp2;
        self.replies = Replies::On;
        self.transaction = None;
        self.watched.clear();
        let mut described = self.client.described();
        described.user = "default".to_owned();
        described.protocol = Protocol::Resp2;
        described.name.clear();
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
    log_in(ctx, name, given)?;
    reply::ok(ctx.out);
    Ok(())
}

/// Authenticates the session as `name` (AUTH and HELLO … AUTH): a failure
/// is counted, slows the next attempts from this address, and is Redis's
/// `-WRONGPASS`.
fn log_in(ctx: &mut Ctx<'_>, name: &[u8], given: &[u8]) -> Result<(), CommandError> {
    match acl::authenticate(&ctx.shared.users, name, given) {
        Ok(user) => {
            ctx.session.log_in(user, &ctx.shared.users);
            Ok(())
        }
        Err(WrongPass) => {
            ctx.shared.auth_throttle.failed(ctx.session.peer.ip(), ctx.now_ms);
            ctx.shared.stats.acl_denied_auth.fetch_add(1, Ordering::Relaxed);
            Err(CommandError::fixed("WRONGPASS invalid username-password pair or user is disabled."))
        }
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`, as
/// Redis 7.2 answers it: switches the protocol (its own reply is already
/// in the new one), authenticates, names the connection, and answers the
/// server's description as a map. It runs unauthenticated (like AUTH) but
/// refuses to do anything for a connection that needs a password and
/// brings none. An AUTH from an address that failed recently waits first,
/// as plain AUTH does ([`hello_auth_delay`]).
pub(super) fn hello(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let protocol = match args.get(1) {
        None => ctx.session.protocol,
        Some(version) => match parse_i64(version) {
            None => return Err(CommandError::fixed("ERR Protocol version is not an integer or out of range")),
            Some(2) => Protocol::Resp2,
            Some(3) => Protocol::Resp3,
            Some(_) => return Err(CommandError::fixed("NOPROTO unsupported protocol version")),
        },
    };
    let options = HelloOptions::parse(args)?;
    if let Some((name, password)) = options.auth {
        log_in(ctx, name, password)?;
    }
    if ctx.session.auth_required(ctx.shared) {
        return Err(CommandError::fixed(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> \
             AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol \
             version at the same time",
        ));
    }
    if let Some(name) = options.name {
        super::client::set_name(ctx, name)?;
    }
    ctx.session.set_protocol(protocol);
    ctx.out.protocol = protocol;
    let id = i64::try_from(ctx.session.id).unwrap_or(i64::MAX);
    Reply::Map(vec![
        (Reply::Bulk(b"server"), Reply::Bulk(SERVER_NAME.as_bytes())),
        (Reply::Bulk(b"version"), Reply::Bulk(super::info::REDIS_VERSION.as_bytes())),
        (Reply::Bulk(b"proto"), Reply::Integer(protocol.version())),
        (Reply::Bulk(b"id"), Reply::Integer(id)),
        (Reply::Bulk(b"mode"), Reply::Bulk(b"standalone")),
        (Reply::Bulk(b"role"), Reply::Bulk(b"master")),
        (Reply::Bulk(b"modules"), Reply::Array(Vec::new())),
    ])
    .encode(ctx.out);
    Ok(())
}

/// How long a HELLO waits before it runs: only one that carries AUTH, from
/// an address that failed recently (see `acl::throttle`).
pub(super) fn hello_auth_delay(args: Args<'_>, ctx: &Ctx<'_>) -> std::time::Duration {
    match HelloOptions::parse(args) {
        Ok(HelloOptions { auth: Some(_), .. }) => auth_delay(ctx),
        _ => std::time::Duration::ZERO,
    }
}

/// HELLO's options after the version.
struct HelloOptions<'a> {
    auth: Option<(&'a [u8], &'a [u8])>,
    name: Option<&'a [u8]>,
}

impl<'a> HelloOptions<'a> {
    fn parse(args: Args<'a>) -> Result<Self, CommandError> {
        let mut options = HelloOptions { auth: None, name: None };
        let mut at = 2;
        while at < args.len() {
            let option = args.arg(at);
            let left = args.len() - at - 1;
            if is(option, "AUTH") && left >= 2 {
                options.auth = Some((args.arg(at + 1), args.arg(at + 2)));
                at += 3;
            } else if is(option, "SETNAME") && left >= 1 {
                options.name = Some(args.arg(at + 1));
                at += 2;
            } else {
                let option = &option[..option.len().min(super::ECHOED_NAME_BYTES)];
                return Err(CommandError::echoing("ERR Syntax error in HELLO option '", option, "'"));
            }
        }
        Ok(options)
    }
}

/// HELLO's `server`: client libraries read `version`, not this (redis-py,
/// node-redis, ioredis and the `redis` crate were tested with it).
const SERVER_NAME: &str = "rumor";

/// `RESET`: the connection's state back to a new connection's; `+RESET`.
pub(super) fn reset(ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    ctx.session.reset();
    ctx.out.protocol = Protocol::Resp2;
    reply::simple(ctx.out, b"RESET");
    Ok(())
}

/// How long an AUTH from this client's address waits before it is
/// answered: zero unless the address failed recently.
pub(super) fn auth_delay(ctx: &Ctx<'_>) -> std::time::Duration {
    ctx.shared.auth_throttle.delay(ctx.session.peer.ip(), ctx.now_ms)
}

/// `SELECT 0`: there is one database.
pub(super) fn select(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    match db_index(args.arg(1))? {
        0 => {
            reply::ok(ctx.out);
            Ok(())
        }
        _ => Err(CommandError::fixed("ERR DB index is out of range")),
    }
}

/// A database index (SELECT, COPY … DB), read as Redis reads an `int`: an
/// integer beyond 32 bits gets Redis's range error before any DB check.
pub(super) fn db_index(arg: &[u8]) -> Result<i64, CommandError> {
    let index = parse_i64(arg).ok_or(CommandError::NotInteger)?;
    if i32::try_from(index).is_err() {
        return Err(CommandError::fixed("ERR value is out of range, value must between -2147483648 and 2147483647"));
    }
    Ok(index)
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
        assert_eq!(h.run(&["SELECT", "2147483647"]).await, "-ERR DB index is out of range\r\n");
        assert_eq!(
            h.run(&["SELECT", "2147483648"]).await,
            "-ERR value is out of range, value must between -2147483648 and 2147483647\r\n"
        );
    }

    /// HELLO's map for connection 7 in `proto`, in RESP2 or RESP3 framing.
    fn hello_reply(proto: u8) -> String {
        let head = if proto == 3 { "%7" } else { "*14" };
        format!(
            "{head}\r\n$6\r\nserver\r\n$5\r\nrumor\r\n$7\r\nversion\r\n$5\r\n7.2.0\r\n$5\r\nproto\r\n:{proto}\r\n\
             $2\r\nid\r\n:7\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n\
             $7\r\nmodules\r\n*0\r\n"
        )
    }

    #[tokio::test]
    async fn hello_switches_the_protocol_and_its_reply_is_in_the_new_one() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["GET", "k"]).await, "$-1\r\n");
        assert_eq!(h.run(&["HELLO"]).await, hello_reply(2), "no version: the current protocol");
        assert_eq!(h.run(&["HELLO", "3"]).await, hello_reply(3));
        assert_eq!(h.run(&["GET", "k"]).await, "_\r\n", "RESP3's null");
        assert_eq!(h.run(&["HELLO"]).await, hello_reply(3));
        assert_eq!(h.run(&["hello", "2"]).await, hello_reply(2));
        assert_eq!(h.run(&["GET", "k"]).await, "$-1\r\n");
    }

    #[tokio::test]
    async fn hello_errors_use_redis_7_wording() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["HELLO", "4"]).await, "-NOPROTO unsupported protocol version\r\n");
        assert_eq!(h.run(&["HELLO", "1"]).await, "-NOPROTO unsupported protocol version\r\n");
        assert_eq!(h.run(&["HELLO", "x"]).await, "-ERR Protocol version is not an integer or out of range\r\n");
        assert_eq!(h.run(&["HELLO", "3", "FOO"]).await, "-ERR Syntax error in HELLO option 'FOO'\r\n");
        assert_eq!(h.run(&["HELLO", "3", "AUTH", "a"]).await, "-ERR Syntax error in HELLO option 'AUTH'\r\n");
        assert_eq!(h.run(&["HELLO", "3", "SETNAME"]).await, "-ERR Syntax error in HELLO option 'SETNAME'\r\n");
        assert_eq!(
            h.run(&["HELLO", "3", "SETNAME", "a b"]).await,
            "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
        );
        assert_eq!(h.run(&["GET", "k"]).await, "$-1\r\n", "a refused HELLO leaves the protocol alone");
        assert_eq!(h.run(&["HELLO", "3", "SETNAME", "w1"]).await, hello_reply(3));
        assert_eq!(h.run(&["CLIENT", "GETNAME"]).await, "$2\r\nw1\r\n");
    }

    const NOAUTH_HELLO: &str = "-NOAUTH HELLO must be called with the client already authenticated, otherwise the \
        HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol \
        version at the same time\r\n";

    #[tokio::test]
    async fn hello_authenticates_through_the_acl() {
        let mut h = Harness::with_acl("user default on >secret ~* +@all\nuser app on >pw ~app:* +@all\n");
        assert_eq!(h.run(&["HELLO", "3"]).await, NOAUTH_HELLO);
        assert_eq!(h.run(&["HELLO"]).await, NOAUTH_HELLO);
        assert_eq!(h.run(&["GET", "k"]).await, "-NOAUTH Authentication required.\r\n", "still RESP2, still refused");
        assert_eq!(
            h.run(&["HELLO", "3", "AUTH", "app", "wrong"]).await,
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert_eq!(h.shared.stats.acl_denied_auth.load(std::sync::atomic::Ordering::Relaxed), 1, "counted as AUTH's");
        // Failures throttle the next attempts from this address, as AUTH's do.
        for _ in 0..4 {
            assert!(h.run(&["HELLO", "3", "AUTH", "app", "wrong"]).await.starts_with("-WRONGPASS"));
        }
        let started = h.shared.clock.mono();
        assert_eq!(h.run(&["HELLO", "3", "AUTH", "app", "pw", "SETNAME", "svc"]).await, hello_reply(3));
        let waited = h.shared.clock.mono() - started;
        assert!(waited >= std::time::Duration::from_millis(100), "waited {waited:?}");
        assert_eq!(h.run(&["ACL", "WHOAMI"]).await, "$3\r\napp\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "-NOPERM No permissions to access a key\r\n");
        assert_eq!(h.run(&["GET", "app:1"]).await, "_\r\n");
        let info = h.run(&["CLIENT", "INFO"]).await;
        assert!(info.starts_with("=") && info.contains(" name=svc ") && info.contains(" user=app "), "{info}");
        assert!(info.contains(" resp=3 "), "{info}");
        // Authenticated: HELLO alone is fine now.
        assert_eq!(h.run(&["HELLO", "2"]).await, hello_reply(2));
    }

    #[tokio::test]
    async fn hello_with_a_requirepass_password() {
        let mut h = Harness::with_password("sesame");
        assert_eq!(h.run(&["HELLO", "3"]).await, NOAUTH_HELLO);
        assert_eq!(h.run(&["HELLO", "3", "AUTH", "default", "sesame"]).await, hello_reply(3));
        assert_eq!(h.run(&["PING"]).await, "+PONG\r\n");
    }

    #[tokio::test]
    async fn reset_returns_to_a_new_connections_state() {
        let mut h = Harness::with_password("pw");
        assert_eq!(h.run(&["RESET"]).await, "+RESET\r\n", "RESET runs unauthenticated");
        assert_eq!(h.run(&["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "n"]).await, hello_reply(3));
        assert_eq!(h.run(&["CLIENT", "SETINFO", "LIB-NAME", "lib"]).await, "+OK\r\n");
        assert_eq!(h.run(&["CLIENT", "REPLY", "OFF"]).await, "");
        assert_eq!(h.run(&["RESET"]).await, "+RESET\r\n", "RESET turns replies back on, then answers");
        assert_eq!(h.run(&["GET", "k"]).await, "-NOAUTH Authentication required.\r\n", "logged out, RESP2, replies on");
        assert_eq!(h.run(&["AUTH", "pw"]).await, "+OK\r\n");
        assert_eq!(h.run(&["CLIENT", "GETNAME"]).await, "$-1\r\n");
        let info = h.run(&["CLIENT", "INFO"]).await;
        assert!(info.contains(" resp=2 lib-name=lib "), "the library stays: {info}");
        assert_eq!(h.run(&["RESET", "x"]).await, "-ERR wrong number of arguments for 'reset' command\r\n");
    }
}
