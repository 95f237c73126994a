//! `COMMAND`, `COMMAND COUNT|LIST|INFO|DOCS`: the command table as Redis 7
//! describes its own, so cluster-aware clients and tools find key
//! positions and flags where they look. Everything here is read from the
//! one table in `cmd/mod.rs`; nothing is listed that does not run.

use super::category::{Categories, Flags};
use super::{COMMANDS, CommandError, Ctx, KeyAccess, Spec, is, lookup, unknown_subcommand};
use crate::resp::glob;
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
            match lookup(name) {
                Some((_, spec)) => info(spec, ctx),
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
/// specifications, subcommands.
fn info(spec: &Spec, ctx: &mut Ctx<'_>) {
    let out = &mut *ctx.out;
    reply::array(out, 10);
    reply::bulk(out, spec.name.as_bytes());
    reply::integer(out, i64::from(spec.arity));
    let flags = flag_names(spec);
    reply::set(out, flags.len());
    for flag in &flags {
        reply::simple(out, flag.as_bytes());
    }
    let keys = spec.keys;
    reply::integer(out, i64::try_from(keys.first).unwrap_or(0));
    reply::integer(out, i64::try_from(keys.last).unwrap_or(0));
    reply::integer(out, i64::try_from(keys.step).unwrap_or(0));
    let categories: Vec<&str> = spec.categories.names().collect();
    reply::set(out, categories.len());
    for name in categories {
        reply::simple(out, format!("@{name}").as_bytes());
    }
    reply::set(out, 0);
    key_specs(spec, out);
    if spec.subcommands.is_empty() {
        reply::set(out, 0);
        return;
    }
    reply::array(out, spec.subcommands.len());
    for sub in spec.subcommands {
        let categories = sub.categories;
        reply::array(out, 10);
        reply::bulk(out, format!("{}|{}", spec.name, sub.name).as_bytes());
        reply::integer(out, i64::from(sub.arity));
        reply::set(out, 0);
        for _ in 0..3 {
            reply::integer(out, 0);
        }
        let names: Vec<&str> = categories.names().collect();
        reply::set(out, names.len());
        for name in names {
            reply::simple(out, format!("@{name}").as_bytes());
        }
        reply::set(out, 0);
        reply::set(out, 0);
        reply::set(out, 0);
    }
}

/// Redis's flag names for what the table says of a command.
fn flag_names(spec: &Spec) -> Vec<&'static str> {
    let mut flags = Vec::new();
    let categories = spec.categories;
    if categories.contains(Categories::WRITE) {
        flags.push("write");
    }
    if categories.contains(Categories::READ) {
        flags.push("readonly");
    }
    if spec.flags.contains(Flags::DENY_OOM) {
        flags.push("denyoom");
    }
    if categories.contains(Categories::ADMIN) {
        flags.push("admin");
    }
    if spec.flags.contains(Flags::LOADING) {
        flags.push("loading");
    }
    if categories.contains(Categories::FAST) {
        flags.push("fast");
    }
    if spec.flags.contains(Flags::NO_AUTH) {
        flags.push("no_auth");
    }
    flags
}

/// The command's one key specification (a range from `first`), or none.
fn key_specs(spec: &Spec, out: &mut crate::resp::output::Output) {
    let keys = spec.keys;
    if keys.first == 0 {
        reply::set(out, 0);
        return;
    }
    reply::set(out, 1);
    reply::map(out, 3);
    reply::bulk(out, b"flags");
    let flags: &[&str] = match keys.access {
        KeyAccess::Read => &["RO", "access"],
        KeyAccess::Exists => &["RO"],
        KeyAccess::Write => &["RW", "update"],
        KeyAccess::WriteReadWithGet | KeyAccess::ReadWrite => &["RW", "access", "update"],
    };
    reply::set(out, flags.len());
    for flag in flags {
        reply::simple(out, flag.as_bytes());
    }
    reply::bulk(out, b"begin_search");
    reply::map(out, 2);
    reply::bulk(out, b"type");
    reply::bulk(out, b"index");
    reply::bulk(out, b"spec");
    reply::map(out, 1);
    reply::bulk(out, b"index");
    reply::integer(out, i64::try_from(keys.first).unwrap_or(0));
    reply::bulk(out, b"find_keys");
    reply::map(out, 2);
    reply::bulk(out, b"type");
    reply::bulk(out, b"range");
    reply::bulk(out, b"spec");
    reply::map(out, 3);
    reply::bulk(out, b"lastkey");
    // Relative to the first key; negative counts from the end.
    let last = if keys.last < 0 {
        i64::try_from(keys.last).unwrap_or(-1)
    } else {
        i64::try_from(keys.last).unwrap_or(0) - i64::try_from(keys.first).unwrap_or(0)
    };
    reply::integer(out, last);
    reply::bulk(out, b"keystep");
    reply::integer(out, i64::try_from(keys.step).unwrap_or(1));
    reply::bulk(out, b"limit");
    reply::integer(out, 0);
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
            *3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n\
            *1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n\
            $12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n\
            $9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n\
            *6\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n";
        assert_eq!(h.run(&["COMMAND", "INFO", "nosuch", "MGET"]).await, format!("*2\r\n$-1\r\n{mget}"));
        let ping = h.run(&["COMMAND", "INFO", "ping"]).await;
        assert_eq!(
            ping,
            "*1\r\n*10\r\n$4\r\nping\r\n:-1\r\n*1\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@fast\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n"
        );
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
        assert!(mset.contains("~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+RW\r\n+update\r\n"), "{mset}");
        assert!(mset.contains("%3\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:2\r\n"), "{mset}");
        assert_eq!(h.run(&["COMMAND", "INFO", "nosuch"]).await, "*1\r\n_\r\n");
    }
}
