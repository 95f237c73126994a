//! `COMMAND`, `COMMAND COUNT|LIST|INFO|DOCS`: the command table as Redis 7
//! describes its own, so cluster-aware clients and tools find key
//! positions and flags where they look. Everything here is read from the
//! one table in `cmd/mod.rs`; nothing is listed that does not run.

use super::category::{Categories, Flags};
use super::{COMMANDS, CommandError, Ctx, KeyAccess, KeySpec, Spec, Sub, is, lookup, unknown_subcommand};
use crate::resp::glob;
use crate::resp::output::Output;
use crate::resp::parse::Args;
use crate::resp::reply;

/// `COMMAND` (every command's description), `COMMAND COUNT`, `COMMAND LIST
/// [FILTERBY ACLCAT category|PATTERN pattern]`, `COMMAND INFO [name …]`
/// (a null for an unknown name), `COMMAND DOCS [name …]` (an empty map:
/// rumor keeps no documentation text), `COMMAND HELP` (which the unknown
/// subcommand error points to).
pub(super) fn command(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let Some(sub) = args.get(1) else {
        reply::array(ctx.out, COMMANDS.len());
        COMMANDS.iter().for_each(|spec| info(spec, ctx));
        return Ok(());
    };
    if is(sub, "COUNT") {
        reply::count(ctx.out, COMMANDS.len());
    } else if is(sub, "LIST") {
        let names = listed(args)?;
        reply::array(ctx.out, names.len());
        for name in names {
            reply::bulk(ctx.out, name.as_bytes());
        }
    } else if is(sub, "DOCS") {
        reply::map(ctx.out, 0);
    } else if is(sub, "HELP") {
        reply::array(ctx.out, HELP.len());
        for line in HELP {
            reply::simple(ctx.out, line.as_bytes());
        }
    } else if is(sub, "INFO") {
        if args.len() == 2 {
            reply::array(ctx.out, COMMANDS.len());
            COMMANDS.iter().for_each(|spec| info(spec, ctx));
            return Ok(());
        }
        reply::array(ctx.out, args.len() - 2);
        for name in args.iter_from(2) {
            match described(name) {
                Some((spec, None)) => info(spec, ctx),
                Some((spec, Some(sub))) => sub_info(spec, sub, ctx.out),
                None => reply::null(ctx.out),
            }
        }
    } else {
        return Err(unknown_subcommand(args, "COMMAND"));
    }
    Ok(())
}

/// What this node's COMMAND does, in the layout of Redis's help replies.
const HELP: [&str; 13] = [
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all commands.",
    "COUNT",
    "    Return the total number of commands.",
    "LIST [FILTERBY (ACLCAT <category>|PATTERN <pattern>|MODULE <module>)]",
    "    Return a list of the command names, optionally filtered.",
    "INFO [<command-name> ...]",
    "    Return details about the given commands, or all of them.",
    "DOCS [<command-name> ...]",
    "    Return an empty map: this server keeps no documentation text.",
    "HELP",
    "    Print this help.",
];

/// The command, or `container|sub`'s container and subcommand, that
/// COMMAND INFO was asked about.
fn described(name: &[u8]) -> Option<(&'static Spec, Option<&'static Sub>)> {
    let Some(bar) = name.iter().position(|&b| b == b'|') else {
        return lookup(name).map(|(_, spec)| (spec, None));
    };
    let (_, spec) = lookup(&name[..bar])?;
    let sub = spec.subcommands.iter().find(|sub| name[bar + 1..].eq_ignore_ascii_case(sub.name.as_bytes()))?;
    Some((spec, Some(sub)))
}

/// The names `COMMAND LIST` answers, filtered as asked.
fn listed(args: Args<'_>) -> Result<Vec<&'static str>, CommandError> {
    let all = COMMANDS.iter().map(|spec| spec.name);
    match args.len() {
        2 => Ok(all.collect()),
        5 if is(args.arg(2), "FILTERBY") => {
            let (kind, value) = (args.arg(3), args.arg(4));
            if is(kind, "ACLCAT") {
                let Some(category) = Categories::named(value) else { return Ok(Vec::new()) };
                Ok(COMMANDS.iter().filter(|spec| spec.categories.contains(category)).map(|spec| spec.name).collect())
            } else if is(kind, "PATTERN") {
                Ok(all.filter(|name| glob::matches(value, name.as_bytes(), true)).collect())
            } else if is(kind, "MODULE") {
                Ok(Vec::new())
            } else {
                Err(CommandError::Syntax)
            }
        }
        _ => Err(CommandError::Syntax),
    }
}

/// One command's 10-element description, as Redis 7's COMMAND INFO: name,
/// arity, flags, first key, last key, step, ACL categories, tips, key
/// specifications, subcommands. A container that needs its subcommand
/// (CLIENT, CONFIG, ACL, OBJECT) is described as Redis describes one:
/// no flags, `@slow`, no keys; its subcommands carry them.
fn info(spec: &Spec, ctx: &mut Ctx<'_>) {
    let out = &mut *ctx.out;
    let container = CONTAINERS.contains(&spec.name);
    reply::array(out, 10);
    reply::bulk(out, spec.name.as_bytes());
    reply::integer(out, i64::from(spec.arity));
    let flags = if container { Vec::new() } else { flag_names(spec.name, spec.categories, spec.flags) };
    strings(out, &flags);
    let keys = if container { None } else { Some(spec.keys).filter(|keys| keys.first > 0) };
    positions(out, keys);
    let categories: Vec<String> = if container {
        vec!["@slow".to_owned()]
    } else {
        spec.categories.names().map(|name| format!("@{name}")).collect()
    };
    reply::set(out, categories.len());
    for name in &categories {
        reply::simple(out, name.as_bytes());
    }
    let extra = extra(spec.name);
    texts(out, extra.tips);
    key_specs(spec.name, keys, out);
    if spec.subcommands.is_empty() {
        reply::set(out, 0);
        return;
    }
    reply::array(out, spec.subcommands.len());
    for sub in spec.subcommands {
        sub_info(spec, sub, out);
    }
}

/// The commands Redis describes as mere containers of subcommands.
const CONTAINERS: [&str; 4] = ["acl", "client", "config", "object"];

/// A subcommand's description: its flags and tips as Redis gives them,
/// and its container's keys when its arity leaves room for them (OBJECT
/// ENCODING's, not OBJECT HELP's).
fn sub_info(spec: &Spec, sub: &Sub, out: &mut Output) {
    let full = format!("{}|{}", spec.name, sub.name);
    let extra = extra(&full);
    reply::array(out, 10);
    reply::bulk(out, full.as_bytes());
    reply::integer(out, i64::from(sub.arity));
    strings(out, extra.flags);
    let keys = Some(spec.keys).filter(|keys| keys.first > 0 && sub.arity.unsigned_abs() as usize > keys.first);
    positions(out, keys);
    let names: Vec<String> = sub.categories.names().map(|name| format!("@{name}")).collect();
    reply::set(out, names.len());
    for name in &names {
        reply::simple(out, name.as_bytes());
    }
    texts(out, extra.tips);
    key_specs(&full, keys, out);
    reply::set(out, 0);
}

/// A set of simple strings.
fn strings(out: &mut Output, items: &[&str]) {
    reply::set(out, items.len());
    for item in items {
        reply::simple(out, item.as_bytes());
    }
}

/// An array (a set in RESP3) of bulk strings, as Redis sends tips.
fn texts(out: &mut Output, items: &[&str]) {
    reply::set(out, items.len());
    for item in items {
        reply::bulk(out, item.as_bytes());
    }
}

/// First key, last key, step: Redis's legacy key positions.
fn positions(out: &mut Output, keys: Option<KeySpec>) {
    let (first, last, step) = keys.map_or((0, 0, 0), |keys| {
        (
            i64::try_from(keys.first).unwrap_or(0),
            i64::try_from(keys.last).unwrap_or(0),
            i64::try_from(keys.step).unwrap_or(0),
        )
    });
    reply::integer(out, first);
    reply::integer(out, last);
    reply::integer(out, step);
}

/// What Redis's COMMAND INFO says of a command (or `command|sub`) that the
/// dispatch table has no use for: the flags that concern scripts,
/// replicas and busy scripts (`noscript`, `stale`, `skip_slowlog`,
/// `allow_busy`, and a subcommand's whole set, which the table does not
/// keep), the tips for cluster clients, and key specifications finer than
/// the read/write ACL checks need.
#[derive(Default)]
struct Extra {
    flags: &'static [&'static str],
    tips: &'static [&'static str],
    key_specs: Option<&'static [KeySpecText]>,
}

/// One key specification: notes, flags, the index of its key (or first
/// key), its last key relative to that (-1: the last argument), the step.
type KeySpecText = (Option<&'static str>, &'static [&'static str], i64, i64, i64);

fn extra(name: &str) -> Extra {
    const MULTI_SHARD_SUM: &[&str] = &["request_policy:multi_shard", "response_policy:agg_sum"];
    const NONDETERMINISTIC: &[&str] = &["nondeterministic_output"];
    const ORDER: &[&str] = &["nondeterministic_output_order"];
    const SCRIPTLESS: &[&str] = &["noscript", "stale", "allow_busy"];
    const CONNECTION_SUB: &[&str] = &["noscript", "loading", "stale"];
    const ADMIN_SUB: &[&str] = &["admin", "noscript", "loading", "stale"];
    const HELP_SUB: &[&str] = &["loading", "stale"];
    const WRITE_ONLY: &[KeySpecText] = &[(None, &["OW", "update"], 1, 0, 1)];
    const INSERT_ONLY: &[KeySpecText] = &[(None, &["OW", "insert"], 1, 0, 1)];
    const DELETE: &[KeySpecText] = &[(None, &["RM", "delete"], 1, -1, 1)];
    const EXISTS_ONLY: &[KeySpecText] = &[(None, &["RO"], 1, 0, 1)];
    let none = Extra::default();
    match name {
        "auth" | "hello" | "quit" | "reset" | "discard" | "multi" | "unwatch" | "watch" => {
            Extra { flags: SCRIPTLESS, ..none }
        }
        "command" => Extra { flags: &["stale"], tips: ORDER, ..none },
        "debug" => Extra { flags: &["noscript", "stale"], ..none },
        "shutdown" => Extra { flags: SCRIPTLESS, ..none },
        "echo" | "select" => Extra { flags: &["stale"], ..none },
        "time" => Extra { flags: &["stale"], tips: NONDETERMINISTIC, ..none },
        "exec" => Extra { flags: &["noscript", "stale", "skip_slowlog"], ..none },
        "info" => Extra {
            flags: &["stale"],
            tips: &["nondeterministic_output", "request_policy:all_shards", "response_policy:special"],
            ..none
        },
        "dbsize" => Extra { tips: &["request_policy:all_shards", "response_policy:agg_sum"], ..none },
        "exists" => Extra { tips: MULTI_SHARD_SUM, ..none },
        "touch" => Extra { tips: MULTI_SHARD_SUM, key_specs: Some(&[(None, &["RO"], 1, -1, 1)]), ..none },
        "del" | "unlink" => Extra { tips: MULTI_SHARD_SUM, key_specs: Some(DELETE), ..none },
        "mget" => Extra { tips: &["request_policy:multi_shard"], ..none },
        "mset" => Extra {
            tips: &["request_policy:multi_shard", "response_policy:all_succeeded"],
            key_specs: Some(&[(None, &["OW", "update"], 1, -1, 2)]),
            ..none
        },
        "msetnx" => Extra {
            tips: &["request_policy:multi_shard", "response_policy:agg_min"],
            key_specs: Some(&[(None, &["OW", "insert"], 1, -1, 2)]),
            ..none
        },
        "keys" => Extra { tips: &["request_policy:all_shards", "nondeterministic_output_order"], ..none },
        "ping" => Extra { tips: &["request_policy:all_shards", "response_policy:all_succeeded"], ..none },
        "ttl" | "pttl" => Extra { tips: NONDETERMINISTIC, ..none },
        "randomkey" => Extra { tips: &["request_policy:all_shards", "nondeterministic_output"], ..none },
        "scan" => Extra { tips: &["nondeterministic_output", "request_policy:special"], ..none },
        "set" => Extra {
            key_specs: Some(&[(
                Some("RW and ACCESS due to the optional `GET` argument"),
                &["RW", "access", "update", "variable_flags"],
                1,
                0,
                1,
            )]),
            ..none
        },
        "getex" => Extra {
            key_specs: Some(&[(
                Some("RW and UPDATE because it changes the TTL"),
                &["RW", "access", "update"],
                1,
                0,
                1,
            )]),
            ..none
        },
        "setex" | "psetex" => Extra { key_specs: Some(WRITE_ONLY), ..none },
        "setnx" => Extra { key_specs: Some(INSERT_ONLY), ..none },
        "append" => Extra { key_specs: Some(&[(None, &["RW", "insert"], 1, 0, 1)]), ..none },
        "setrange" => Extra { key_specs: Some(&[(None, &["RW", "update"], 1, 0, 1)]), ..none },
        "getdel" => Extra { key_specs: Some(&[(None, &["RW", "access", "delete"], 1, 0, 1)]), ..none },
        "strlen" | "type" => Extra { key_specs: Some(EXISTS_ONLY), ..none },
        "bitop" => Extra {
            key_specs: Some(&[(None, &["OW", "update"], 2, 0, 1), (None, &["RO", "access"], 3, -1, 1)]),
            ..none
        },
        "dump" => Extra { tips: &["nondeterministic_output"], ..none },
        "restore" => Extra { key_specs: Some(&[(None, &["OW", "update"], 1, 0, 1)]), ..none },
        "copy" => {
            Extra { key_specs: Some(&[(None, &["RO", "access"], 1, 0, 1), (None, &["OW", "update"], 2, 0, 1)]), ..none }
        }
        "rename" => Extra {
            key_specs: Some(&[(None, &["RW", "access", "delete"], 1, 0, 1), (None, &["OW", "update"], 2, 0, 1)]),
            ..none
        },
        "renamenx" => Extra {
            key_specs: Some(&[(None, &["RW", "access", "delete"], 1, 0, 1), (None, &["OW", "insert"], 2, 0, 1)]),
            ..none
        },
        "acl|cat" | "acl|whoami" => Extra { flags: CONNECTION_SUB, ..none },
        "client|getname" | "client|id" | "client|reply" | "client|setname" | "client|setinfo" | "client|no-touch" => {
            Extra { flags: CONNECTION_SUB, ..none }
        }
        "client|info" => Extra { flags: CONNECTION_SUB, tips: NONDETERMINISTIC, ..none },
        "client|list" => Extra { flags: ADMIN_SUB, tips: NONDETERMINISTIC, ..none },
        "config|set" => {
            Extra { flags: ADMIN_SUB, tips: &["request_policy:all_nodes", "response_policy:all_succeeded"], ..none }
        }
        "acl|deluser" | "acl|getuser" | "acl|list" | "acl|load" | "acl|save" | "acl|setuser" | "acl|users"
        | "client|kill" | "client|no-evict" | "client|unpause" | "config|get" | "config|resetstat" => {
            Extra { flags: ADMIN_SUB, ..none }
        }
        "acl|help" | "client|help" | "object|help" | "config|help" | "command|count" | "command|help" => {
            Extra { flags: HELP_SUB, ..none }
        }
        "command|docs" | "command|info" | "command|list" => Extra { flags: HELP_SUB, tips: ORDER, ..none },
        "object|encoding" | "object|freq" | "object|idletime" | "object|refcount" => {
            Extra { flags: &["readonly"], tips: NONDETERMINISTIC, key_specs: Some(&[(None, &["RO"], 2, 0, 1)]) }
        }
        "debug|sleep" | "debug|help" => Extra { flags: &["admin", "noscript", "loading", "stale"], ..none },
        _ => none,
    }
}

/// Redis's flag names for what the table says of a command, with the
/// ones [`extra`] adds, in Redis's order.
fn flag_names(name: &str, categories: Categories, flags: Flags) -> Vec<&'static str> {
    let extra = extra(name).flags;
    let derived = [
        ("write", categories.contains(Categories::WRITE)),
        ("readonly", categories.contains(Categories::READ)),
        ("denyoom", flags.contains(Flags::DENY_OOM)),
        ("admin", categories.contains(Categories::ADMIN)),
        ("noscript", false),
        ("loading", flags.contains(Flags::LOADING)),
        ("stale", false),
        ("skip_slowlog", false),
        ("fast", categories.contains(Categories::FAST)),
        ("no_auth", flags.contains(Flags::NO_AUTH)),
        ("no_multi", flags.contains(Flags::NO_MULTI)),
        ("allow_busy", false),
    ];
    derived.into_iter().filter(|(flag, set)| *set || extra.contains(flag)).map(|(flag, _)| flag).collect()
}

/// The command's key specifications: [`extra`]'s, or else one range from
/// `first` flagged from what the command does with its keys; none
/// without keys.
fn key_specs(name: &str, keys: Option<KeySpec>, out: &mut Output) {
    let Some(keys) = keys else {
        reply::set(out, 0);
        return;
    };
    let derived: KeySpecText;
    let specs: &[KeySpecText] = match extra(name).key_specs {
        Some(specs) => specs,
        None => {
            let flags: &'static [&'static str] = match keys.access {
                KeyAccess::Read => &["RO", "access"],
                KeyAccess::Exists => &["RO"],
                KeyAccess::Write => &["RW", "update"],
                KeyAccess::WriteReadWithGet | KeyAccess::ReadWrite => &["RW", "access", "update"],
            };
            let first = i64::try_from(keys.first).unwrap_or(0);
            // Relative to the first key; negative counts from the end.
            let last = if keys.last < 0 {
                i64::try_from(keys.last).unwrap_or(-1)
            } else {
                i64::try_from(keys.last).unwrap_or(0) - first
            };
            derived = (None, flags, first, last, i64::try_from(keys.step).unwrap_or(1));
            std::slice::from_ref(&derived)
        }
    };
    reply::set(out, specs.len());
    for &(notes, flags, index, last, step) in specs {
        reply::map(out, if notes.is_some() { 4 } else { 3 });
        if let Some(notes) = notes {
            reply::bulk(out, b"notes");
            reply::bulk(out, notes.as_bytes());
        }
        reply::bulk(out, b"flags");
        strings(out, flags);
        reply::bulk(out, b"begin_search");
        reply::map(out, 2);
        reply::bulk(out, b"type");
        reply::bulk(out, b"index");
        reply::bulk(out, b"spec");
        reply::map(out, 1);
        reply::bulk(out, b"index");
        reply::integer(out, index);
        reply::bulk(out, b"find_keys");
        reply::map(out, 2);
        reply::bulk(out, b"type");
        reply::bulk(out, b"range");
        reply::bulk(out, b"spec");
        reply::map(out, 3);
        reply::bulk(out, b"lastkey");
        reply::integer(out, last);
        reply::bulk(out, b"keystep");
        reply::integer(out, step);
        reply::bulk(out, b"limit");
        reply::integer(out, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Harness;

    #[tokio::test]
    async fn command_count_list_and_docs_follow_the_table() {
        let mut h = Harness::new();
        let count = h.run(&["COMMAND", "COUNT"]).await;
        let count: usize = count.trim_start_matches(':').trim_end().parse().unwrap();
        assert_eq!(count, super::COMMANDS.len());
        let list = h.run(&["COMMAND", "LIST"]).await;
        assert!(list.starts_with(&format!("*{count}\r\n$3\r\nget\r\n")), "{list}");
        for name in ["hello", "reset", "time", "client"] {
            assert!(list.contains(&format!("\r\n{name}\r\n")), "{name} is listed");
        }
        assert_eq!(
            h.run(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "p*"]).await,
            "*7\r\n$4\r\nping\r\n$7\r\npexpire\r\n$9\r\npexpireat\r\n$4\r\npttl\r\n$7\r\npersist\r\n\
             $11\r\npexpiretime\r\n$6\r\npsetex\r\n"
        );
        assert_eq!(h.run(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "nosuch"]).await, "*0\r\n");
        let strings =
            super::COMMANDS.iter().filter(|c| c.categories.contains(crate::resp::cmd::Categories::STRING)).count();
        assert!(strings >= 16, "GET, SET, MSET, APPEND… are @string");
        let listed = h.run(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "string"]).await;
        assert!(listed.starts_with(&format!("*{strings}\r\n$3\r\nget\r\n")), "{listed}");
        assert_eq!(h.run(&["COMMAND", "LIST", "FILTERBY"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["COMMAND", "DOCS"]).await, "*0\r\n");
        assert_eq!(h.run(&["COMMAND", "DOCS", "get"]).await, "*0\r\n");
        assert_eq!(
            h.run(&["COMMAND", "COUNT", "x"]).await,
            "-ERR wrong number of arguments for 'command|count' command\r\n"
        );
        assert_eq!(h.run(&["COMMAND", "NOPE"]).await, "-ERR unknown subcommand 'NOPE'. Try COMMAND HELP.\r\n");
        let help = h.run(&["COMMAND", "HELP"]).await;
        assert!(
            help.starts_with("*13\r\n+COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n"),
            "{help}"
        );
        assert!(help.contains("\r\n+INFO [<command-name> ...]\r\n"), "{help}");
        assert_eq!(
            h.run(&["COMMAND", "HELP", "x"]).await,
            "-ERR wrong number of arguments for 'command|help' command\r\n"
        );
        assert_eq!(h.run(&["HELLO", "3"]).await.get(..2), Some("%7"));
        assert_eq!(h.run(&["COMMAND", "DOCS"]).await, "%0\r\n");
    }

    #[tokio::test]
    async fn command_info_describes_a_command_as_redis_7_does() {
        let mut h = Harness::new();
        let mget = "*10\r\n$4\r\nmget\r\n:-2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:-1\r\n:1\r\n\
            *3\r\n+@read\r\n+@string\r\n+@fast\r\n*1\r\n$26\r\nrequest_policy:multi_shard\r\n\
            *1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n\
            $12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n\
            $9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n\
            *6\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n";
        assert_eq!(h.run(&["COMMAND", "INFO", "nosuch", "MGET"]).await, format!("*2\r\n$-1\r\n{mget}"));
        let ping = h.run(&["COMMAND", "INFO", "ping"]).await;
        assert_eq!(
            ping,
            "*1\r\n*10\r\n$4\r\nping\r\n:-1\r\n*1\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@connection\r\n\
             *2\r\n$25\r\nrequest_policy:all_shards\r\n$29\r\nresponse_policy:all_succeeded\r\n*0\r\n*0\r\n"
        );
        // A container: no flags, @slow, no keys of its own; its subcommands
        // carry them, and COMMAND INFO finds them by their full name.
        assert_eq!(
            h.run(&["COMMAND", "INFO", "object"]).await.get(..66),
            Some("*1\r\n*10\r\n$6\r\nobject\r\n:-2\r\n*0\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@slow\r\n*0\r\n*0\r\n*5\r\n")
        );
        let encoding = h.run(&["COMMAND", "INFO", "OBJECT|ENCODING"]).await;
        assert!(
            encoding.starts_with(
                "*1\r\n*10\r\n$15\r\nobject|encoding\r\n:3\r\n*1\r\n+readonly\r\n:2\r\n:2\r\n:1\r\n\
                 *3\r\n+@keyspace\r\n+@read\r\n+@slow\r\n*1\r\n$23\r\nnondeterministic_output\r\n\
                 *1\r\n*6\r\n$5\r\nflags\r\n*1\r\n+RO\r\n$12\r\nbegin_search\r\n"
            ),
            "{encoding}"
        );
        assert_eq!(
            h.run(&["COMMAND", "INFO", "client|getname", "client|nosuch", "get|x"]).await,
            "*3\r\n*10\r\n$14\r\nclient|getname\r\n:2\r\n*3\r\n+noscript\r\n+loading\r\n+stale\r\n\
             :0\r\n:0\r\n:0\r\n*2\r\n+@slow\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n$-1\r\n$-1\r\n"
        );
        let rename = h.run(&["COMMAND", "INFO", "rename"]).await;
        assert!(rename.contains("*2\r\n*6\r\n$5\r\nflags\r\n*3\r\n+RW\r\n+access\r\n+delete\r\n"), "{rename}");
        assert!(rename.contains("*6\r\n$5\r\nflags\r\n*2\r\n+OW\r\n+update\r\n"), "two key specifications: {rename}");
        let client = h.run(&["COMMAND", "INFO", "client"]).await;
        assert!(client.contains("$14\r\nclient|setname\r\n:3\r\n"), "{client}");
        assert!(client.contains("$11\r\nclient|kill\r\n:-3\r\n"), "{client}");
        assert!(h.run(&["COMMAND"]).await.starts_with(&format!("*{}\r\n*10\r\n$3\r\nget\r\n", super::COMMANDS.len())));
        h.run(&["HELLO", "3"]).await;
        let mset = h.run(&["COMMAND", "INFO", "mset"]).await;
        assert!(
            mset.starts_with("*1\r\n*10\r\n$4\r\nmset\r\n:-3\r\n~2\r\n+write\r\n+denyoom\r\n:1\r\n:-1\r\n:2\r\n~3\r\n"),
            "{mset}"
        );
        assert!(mset.contains("~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+OW\r\n+update\r\n"), "{mset}");
        let set = h.run(&["COMMAND", "INFO", "set"]).await;
        assert!(
            set.contains("~1\r\n%4\r\n$5\r\nnotes\r\n$48\r\nRW and ACCESS due to the optional `GET` argument\r\n"),
            "{set}"
        );
        assert!(mset.contains("%3\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:2\r\n"), "{mset}");
        assert_eq!(h.run(&["COMMAND", "INFO", "nosuch"]).await, "*1\r\n_\r\n");
    }
}
