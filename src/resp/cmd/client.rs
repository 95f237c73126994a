//! `CLIENT …`: the connection's name and library, its id, how it is
//! answered (`REPLY`), and the node's other connections (`LIST`, `KILL`),
//! through the registry in `resp::clients`.

use super::session::Replies;
use super::{CommandError, Ctx, Flow, is, unknown_subcommand};
use crate::resp::clients::KillFilter;
use crate::resp::num::parse_i64;
use crate::resp::parse::Args;
use crate::resp::reply;

/// `CLIENT ID|INFO|LIST|KILL|SETNAME|GETNAME|SETINFO|REPLY|NO-EVICT|
/// NO-TOUCH|UNPAUSE|HELP`.
pub(super) fn client(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<Flow, CommandError> {
    let sub = args.arg(1);
    if is(sub, "SETNAME") {
        set_name(ctx, args.arg(2))?;
        reply::ok(ctx.out);
    } else if is(sub, "GETNAME") {
        let name = ctx.session.client.described().name.clone();
        reply::optional_bulk(ctx.out, (!name.is_empty()).then_some(name.as_slice()));
    } else if is(sub, "ID") {
        reply::integer(ctx.out, i64::try_from(ctx.session.id).unwrap_or(i64::MAX));
    } else if is(sub, "INFO") {
        let mut line = String::new();
        ctx.session.client.line(ctx.now_ms, super::full_name, &mut line);
        reply::verbatim(ctx.out, b"txt", line.as_bytes());
    } else if is(sub, "LIST") {
        list(args, ctx)?;
    } else if is(sub, "KILL") {
        return kill(args, ctx);
    } else if is(sub, "SETINFO") {
        set_info(ctx, args.arg(2), args.arg(3))?;
        reply::ok(ctx.out);
    } else if is(sub, "REPLY") {
        let mode = args.arg(2);
        if is(mode, "ON") {
            ctx.session.replies = Replies::On;
            reply::ok(ctx.out);
        } else if is(mode, "OFF") {
            ctx.session.replies = Replies::Off;
        } else if is(mode, "SKIP") {
            // The executor drops this command's reply (there is none) and
            // the next one's.
            ctx.session.replies = Replies::SkipNext;
        } else {
            return Err(CommandError::Syntax);
        }
    } else if is(sub, "NO-EVICT") || is(sub, "NO-TOUCH") {
        if !is(args.arg(2), "ON") && !is(args.arg(2), "OFF") {
            return Err(CommandError::Syntax);
        }
        // Nothing is evicted and access times are not kept: both are no-ops.
        reply::ok(ctx.out);
    } else if is(sub, "UNPAUSE") {
        // Clients are never paused (there is no CLIENT PAUSE).
        reply::ok(ctx.out);
    } else if is(sub, "HELP") {
        reply::array(ctx.out, HELP.len());
        for line in HELP {
            reply::simple(ctx.out, line.as_bytes());
        }
    } else {
        return Err(unknown_subcommand(args, "CLIENT"));
    }
    Ok(Flow::Continue)
}

/// Names the connection (CLIENT SETNAME, HELLO SETNAME); an empty name
/// removes it.
pub(super) fn set_name(ctx: &mut Ctx<'_>, name: &[u8]) -> Result<(), CommandError> {
    if !printable(name) {
        return Err(CommandError::fixed("ERR Client names cannot contain spaces, newlines or special characters."));
    }
    ctx.session.client.described().name = name.to_vec();
    Ok(())
}

fn set_info(ctx: &mut Ctx<'_>, attribute: &[u8], value: &[u8]) -> Result<(), CommandError> {
    let lib_name = if is(attribute, "LIB-NAME") {
        true
    } else if is(attribute, "LIB-VER") {
        false
    } else {
        return Err(CommandError::echoing("ERR Unrecognized option '", attribute, "'"));
    };
    if !printable(value) {
        let attribute = String::from_utf8_lossy(attribute);
        return Err(CommandError::Message(
            format!("ERR {attribute} cannot contain spaces, newlines or special characters.").into(),
        ));
    }
    let mut described = ctx.session.client.described();
    let slot = if lib_name { &mut described.lib_name } else { &mut described.lib_ver };
    *slot = value.to_vec();
    Ok(())
}

/// `CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id …]`.
fn list(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let mut ids: Option<Vec<u64>> = None;
    let mut none = false;
    let mut at = 2;
    while at < args.len() {
        let option = args.arg(at);
        if is(option, "TYPE") && at + 1 < args.len() {
            none |= !client_type(args.arg(at + 1))?;
            at += 2;
        } else if is(option, "ID") && at + 1 < args.len() {
            let mut wanted = Vec::new();
            for id in args.iter_from(at + 1) {
                match parse_i64(id).and_then(|id| u64::try_from(id).ok()).filter(|&id| id > 0) {
                    Some(id) => wanted.push(id),
                    None => return Err(CommandError::fixed("ERR Invalid client ID")),
                }
            }
            ids = Some(wanted);
            at = args.len();
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let mut text = String::new();
    if !none {
        for client in ctx.shared.clients.snapshot() {
            if ids.as_ref().is_none_or(|ids| ids.contains(&client.id)) {
                client.line(ctx.now_ms, super::full_name, &mut text);
            }
        }
    }
    reply::verbatim(ctx.out, b"txt", text.as_bytes());
    Ok(())
}

/// `CLIENT KILL ip:port` (Redis's old form: `+OK` or an error), or
/// `CLIENT KILL <filter> <value> …` with `ID`, `ADDR`, `LADDR`, `USER`,
/// `TYPE`, `MAXAGE`, `SKIPME` (the number killed). A killed connection
/// closes when it next waits; this one, if it killed itself, after this
/// reply.
fn kill(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<Flow, CommandError> {
    let own_id = ctx.session.id;
    let (filter, old_form) = if args.len() == 3 {
        let addr = String::from_utf8_lossy(args.arg(2)).into_owned();
        (KillFilter { addr: Some(addr), ..KillFilter::default() }, true)
    } else {
        (kill_filter(args, ctx, own_id)?, false)
    };
    let killed = ctx.shared.clients.kill(&filter, ctx.now_ms);
    if old_form {
        if killed == 0 {
            return Err(CommandError::fixed("ERR No such client"));
        }
        reply::ok(ctx.out);
    } else {
        reply::count(ctx.out, killed);
    }
    Ok(if ctx.session.client.killed() { Flow::Close } else { Flow::Continue })
}

fn kill_filter(args: Args<'_>, ctx: &Ctx<'_>, own_id: u64) -> Result<KillFilter, CommandError> {
    let mut filter = KillFilter { skip_id: Some(own_id), ..KillFilter::default() };
    let mut at = 2;
    while at < args.len() {
        let (name, Some(value)) = (args.arg(at), args.get(at + 1)) else {
            return Err(CommandError::Syntax);
        };
        if is(name, "ID") {
            let id = parse_i64(value).and_then(|id| u64::try_from(id).ok()).filter(|&id| id > 0);
            filter.id = Some(id.ok_or(CommandError::fixed("ERR client-id should be greater than 0"))?);
        } else if is(name, "ADDR") {
            filter.addr = Some(String::from_utf8_lossy(value).into_owned());
        } else if is(name, "LADDR") {
            filter.laddr = Some(String::from_utf8_lossy(value).into_owned());
        } else if is(name, "USER") {
            let user = String::from_utf8_lossy(value).into_owned();
            if ctx.shared.users.get(&user).is_none() {
                return Err(CommandError::Message(format!("ERR No such user '{user}'").into()));
            }
            filter.user = Some(user);
        } else if is(name, "TYPE") {
            filter.no_match |= !client_type(value)?;
        } else if is(name, "MAXAGE") {
            let age = parse_i64(value).and_then(|age| u64::try_from(age).ok());
            filter.max_age_secs = Some(age.ok_or(CommandError::NotInteger)?);
        } else if is(name, "SKIPME") {
            if is(value, "YES") {
                filter.skip_id = Some(own_id);
            } else if is(value, "NO") {
                filter.skip_id = None;
            } else {
                return Err(CommandError::Syntax);
            }
        } else {
            return Err(CommandError::Syntax);
        }
        at += 2;
    }
    Ok(filter)
}

/// Whether a `TYPE` filter selects rumor's connections, all of which are
/// `normal`; an unknown type is Redis's error.
fn client_type(name: &[u8]) -> Result<bool, CommandError> {
    if is(name, "NORMAL") {
        Ok(true)
    } else if is(name, "MASTER") || is(name, "REPLICA") || is(name, "SLAVE") || is(name, "PUBSUB") {
        Ok(false)
    } else {
        Err(CommandError::echoing("ERR Unknown client type '", name, "'"))
    }
}

/// Redis's rule for names shown in `CLIENT INFO`: printable ASCII, no
/// spaces, so the line stays splittable.
fn printable(text: &[u8]) -> bool {
    text.iter().all(|b| (b'!'..=b'~').contains(b))
}

const HELP: [&str; 14] = [
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "ID",
    "INFO",
    "KILL <ip:port>",
    "KILL <option> <value> [<option> <value> [...]]: ID, ADDR, LADDR, USER, TYPE, MAXAGE, SKIPME",
    "LIST [TYPE <normal|master|replica|pubsub>] [ID <id> [<id> ...]]",
    "NO-EVICT (ON|OFF)",
    "NO-TOUCH (ON|OFF)",
    "REPLY (ON|OFF|SKIP)",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "SETNAME <name>",
    "UNPAUSE",
    "HELP",
];

#[cfg(test)]
mod tests {
    use super::super::testkit::Harness;
    use crate::resp::clients::Client;
    use std::sync::Arc;

    #[tokio::test]
    async fn client_names_ids_and_libraries() {
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
        assert!(info.starts_with('$'), "a bulk string in RESP2: {info}");
        assert!(
            info.contains("id=7 addr=127.0.0.1:40000 laddr=127.0.0.1:6380 fd=-1 name= age=0 idle=0 flags=N db=0"),
            "{info}"
        );
        assert!(
            info.contains(" cmd=client|info user=default redir=-1 resp=2 lib-name=redis-rs lib-ver=1.0.0\n"),
            "{info}"
        );
        assert_eq!(h.run(&["CLIENT", "NO-EVICT", "on"]).await, "+OK\r\n");
        assert_eq!(h.run(&["CLIENT", "NO-TOUCH", "OFF"]).await, "+OK\r\n");
        assert_eq!(h.run(&["CLIENT", "NO-TOUCH", "maybe"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["CLIENT", "UNPAUSE"]).await, "+OK\r\n");
        assert!(h.run(&["CLIENT", "HELP"]).await.starts_with("*14\r\n+CLIENT <subcommand>"));
        assert_eq!(h.run(&["CLIENT", "PAUSE", "10"]).await, "-ERR unknown subcommand 'PAUSE'. Try CLIENT HELP.\r\n");
        assert_eq!(
            h.run(&["CLIENT", "SETINFO", "x"]).await,
            "-ERR wrong number of arguments for 'client|setinfo' command\r\n"
        );
        h.run(&["HELLO", "3"]).await;
        let info = h.run(&["CLIENT", "INFO"]).await;
        let (len, body) = info[1..].split_once("\r\n").unwrap();
        assert!(info.starts_with('=') && body.starts_with("txt:id=7 "), "a verbatim string in RESP3: {info}");
        assert_eq!(len.parse::<usize>().unwrap(), body.len() - 2, "{info}");
        assert!(info.contains(" resp=3 "), "{info}");
    }

    #[tokio::test]
    async fn client_reply_off_and_skip_silence_replies() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["CLIENT", "REPLY", "OFF"]).await, "");
        assert_eq!(h.run(&["SET", "k", "v"]).await, "");
        assert_eq!(h.run(&["NOSUCH"]).await, "", "errors too");
        assert_eq!(h.run(&["CLIENT", "REPLY", "ON"]).await, "+OK\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "$1\r\nv\r\n", "the silenced SET ran");
        assert_eq!(h.run(&["CLIENT", "REPLY", "SKIP"]).await, "");
        assert_eq!(h.run(&["PING"]).await, "");
        assert_eq!(h.run(&["PING"]).await, "+PONG\r\n");
        assert_eq!(h.run(&["CLIENT", "REPLY", "MAYBE"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["CLIENT", "REPLY", "OFF"]).await, "");
        assert_eq!(h.run(&["INFO", "server"]).await, "", "a command the driver answers is silenced too");
        assert_eq!(h.run(&["CLIENT", "REPLY", "ON"]).await, "+OK\r\n");
    }

    fn other(h: &Harness, id: u64, port: u16) -> (Arc<Client>, crate::resp::clients::Registration) {
        let client = Arc::new(Client::new(id, ([10, 1, 1, 1], port).into(), ([127, 0, 0, 1], 6380).into(), 12));
        let registration = h.shared.clients.register(Arc::clone(&client), h.now_ms());
        (client, registration)
    }

    #[tokio::test]
    async fn client_list_shows_every_connection() {
        let mut h = Harness::new();
        let (_a, _ra) = other(&h, 3, 5000);
        let (b, _rb) = other(&h, 9, 5001);
        b.described().name = b"bee".to_vec();
        let list = h.run(&["CLIENT", "LIST"]).await;
        let lines: Vec<&str> = list.lines().skip(1).filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 3, "{list}");
        assert!(lines[0].starts_with("id=3 addr=10.1.1.1:5000 laddr=127.0.0.1:6380 fd=12 name= "), "{list}");
        assert!(lines[1].starts_with("id=7 addr=127.0.0.1:40000 "), "{list}");
        assert!(lines[1].contains(" cmd=client|list "), "{list}");
        assert!(lines[2].starts_with("id=9 addr=10.1.1.1:5001 laddr=127.0.0.1:6380 fd=12 name=bee "), "{list}");
        assert!(lines[2].contains(" cmd=NULL "), "{list}");
        let one = h.run(&["CLIENT", "LIST", "ID", "9", "4"]).await;
        assert_eq!(one.matches("id=").count(), 1, "{one}");
        assert_eq!(h.run(&["CLIENT", "LIST", "TYPE", "pubsub"]).await, "$0\r\n\r\n");
        assert_eq!(h.run(&["CLIENT", "LIST", "TYPE", "normal"]).await.matches("id=").count(), 3);
        assert_eq!(h.run(&["CLIENT", "LIST", "TYPE", "foo"]).await, "-ERR Unknown client type 'foo'\r\n");
        assert_eq!(h.run(&["CLIENT", "LIST", "ID", "x"]).await, "-ERR Invalid client ID\r\n");
        assert_eq!(h.run(&["CLIENT", "LIST", "FOO"]).await, "-ERR syntax error\r\n");
    }

    #[tokio::test]
    async fn client_kill_by_filter_and_by_address() {
        let mut h = Harness::new();
        let (a, _ra) = other(&h, 3, 5000);
        let (b, _rb) = other(&h, 9, 5001);
        assert_eq!(h.run(&["CLIENT", "KILL", "ID", "4"]).await, ":0\r\n");
        assert_eq!(h.run(&["CLIENT", "KILL", "ID", "3"]).await, ":1\r\n");
        assert!(a.killed() && !b.killed());
        assert_eq!(h.run(&["CLIENT", "KILL", "10.9.9.9:1"]).await, "-ERR No such client\r\n");
        assert_eq!(h.run(&["CLIENT", "KILL", "10.1.1.1:5001"]).await, "+OK\r\n");
        assert!(b.killed());
        assert_eq!(
            h.run(&["CLIENT", "KILL", "ADDR", "10.1.1.1:5001", "ID", "3"]).await,
            ":0\r\n",
            "every filter must match"
        );
        assert_eq!(h.run(&["CLIENT", "KILL", "ID", "x"]).await, "-ERR client-id should be greater than 0\r\n");
        assert_eq!(h.run(&["CLIENT", "KILL", "ID", "0"]).await, "-ERR client-id should be greater than 0\r\n");
        assert_eq!(h.run(&["CLIENT", "KILL", "FOO", "bar"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["CLIENT", "KILL", "ID", "3", "SKIPME"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["CLIENT", "KILL", "ID", "3", "SKIPME", "maybe"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["CLIENT", "KILL", "TYPE", "foo"]).await, "-ERR Unknown client type 'foo'\r\n");
        assert_eq!(h.run(&["CLIENT", "KILL", "TYPE", "master"]).await, ":0\r\n");
        assert_eq!(h.run(&["CLIENT", "KILL", "USER", "nosuch"]).await, "-ERR No such user 'nosuch'\r\n");
        assert_eq!(h.run(&["CLIENT", "KILL"]).await, "-ERR wrong number of arguments for 'client|kill' command\r\n");
        // SKIPME yes is the default: a kill by this connection's own id spares it.
        assert_eq!(h.run_flow(&["CLIENT", "KILL", "ID", "7"]).await, (":0\r\n".to_owned(), super::Flow::Continue));
        assert_eq!(
            h.run_flow(&["CLIENT", "KILL", "ID", "7", "SKIPME", "no"]).await,
            (":1\r\n".to_owned(), super::Flow::Close),
            "killing itself, it closes after the reply"
        );
    }
}
