//! `CONFIG GET|SET|RESETSTAT|HELP|REWRITE`, in Redis 7's shapes and words.
//!
//! Every setting is gettable under the config file's name (`table.key`),
//! and under Redis's name where clients and tools ask for one. A few can
//! change while the node runs — `maxmemory` and the client limits every
//! connection reads from [`crate::resp::limits::LiveLimits`]; the rest were
//! built into the node at start and answer Redis's "immutable config".
//! A change lasts until the node stops: the config file is the user's,
//! never rewritten.

use std::borrow::Cow;

use super::{CommandError, Ctx, is, unknown_subcommand};
use crate::config::parse_memory;
use crate::resp::glob;
use crate::resp::num::parse_i64;
use crate::resp::parse::Args;
use crate::resp::reply;
use crate::resp::shared::ClientLimits;

/// A setting CONFIG SET may change; two parameters may name one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setting {
    Maxmemory,
    MaxClients,
    Timeout,
    MaxBulk,
    OutputLimit,
}

/// How a parameter's value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// Bytes, or Redis's units (`100mb`).
    Memory,
    /// A plain integer.
    Integer,
    /// Redis's `client-output-buffer-limit`: `<class> <hard> <soft> <seconds>`…
    Classes,
}

/// The changeable parameters: Redis's name, then the config file's.
const LIVE: [(&str, Setting, Form); 9] = [
    ("maxmemory", Setting::Maxmemory, Form::Memory),
    ("maxclients", Setting::MaxClients, Form::Integer),
    ("limits.max_clients", Setting::MaxClients, Form::Integer),
    ("timeout", Setting::Timeout, Form::Integer),
    ("limits.timeout_s", Setting::Timeout, Form::Integer),
    ("proto-max-bulk-len", Setting::MaxBulk, Form::Memory),
    ("limits.max_bulk_bytes", Setting::MaxBulk, Form::Memory),
    ("client-output-buffer-limit", Setting::OutputLimit, Form::Classes),
    ("limits.client_output_buffer_limit_bytes", Setting::OutputLimit, Form::Memory),
];

/// Known but never answered by CONFIG GET, so never sent over the wire:
/// a password. (Redis answers `requirepass` in clear; rumor does not.)
const HIDDEN: [&str; 1] = ["requirepass"];

/// The least `proto-max-bulk-len` Redis accepts: 1 MiB.
const MIN_BULK_BYTES: usize = 1 << 20;

/// What one reply of the longest value needs beyond the value (see
/// `limits.client_output_buffer_limit_bytes` in the config).
const REPLY_OVERHEAD_BYTES: usize = 64;

pub(super) fn config(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let sub = args.arg(1);
    if is(sub, "GET") {
        get(args, ctx);
    } else if is(sub, "SET") {
        set(args, ctx)?;
        reply::ok(ctx.out);
    } else if is(sub, "RESETSTAT") {
        ctx.shared.stats.reset();
        reply::ok(ctx.out);
    } else if is(sub, "HELP") {
        reply::array(ctx.out, HELP.len());
        for line in HELP {
            reply::simple(ctx.out, line.as_bytes());
        }
    } else if is(sub, "REWRITE") {
        return Err(CommandError::fixed(
            "ERR CONFIG REWRITE is not supported: rumor never rewrites its config file, which is yours; a CONFIG \
             SET lasts until the node stops, so write the value into the config file to keep it",
        ));
    } else {
        return Err(unknown_subcommand(args, "CONFIG"));
    }
    Ok(())
}

const HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern> [<pattern> ...]",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value> [<directive> <value> ...]",
    "    Set the configuration <directive> to <value>, all or none, until the node stops.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Refused: rumor never rewrites its config file.",
    "HELP",
    "    Prints this help.",
];

/// Every parameter whose name one of the patterns matches, once each.
fn get(args: Args<'_>, ctx: &mut Ctx<'_>) {
    let limits = ctx.shared.limits.current();
    let port = ctx.session.local.port().to_string();
    let live = LIVE.iter().map(|&(name, setting, form)| (name, Cow::Owned(value(&limits, setting, form))));
    let port = std::iter::once(("port", Cow::Owned(port)));
    let fixed = ctx.shared.fixed_settings.iter().map(|(name, value)| (*name, Cow::Borrowed(value.as_str())));
    let matching: Vec<(&str, Cow<'_, str>)> = live
        .chain(port)
        .chain(fixed)
        .filter(|(name, _)| args.iter_from(2).any(|pattern| glob::matches(pattern, name.as_bytes(), true)))
        .collect();
    reply::map(ctx.out, matching.len());
    for (name, value) in matching {
        reply::bulk(ctx.out, name.as_bytes());
        reply::bulk(ctx.out, value.as_bytes());
    }
}

fn value(limits: &ClientLimits, setting: Setting, form: Form) -> String {
    match (setting, form) {
        (Setting::OutputLimit, Form::Classes) => format!("normal {} 0 0", limits.output_buffer_limit_bytes),
        (Setting::Maxmemory, _) => limits.maxmemory.to_string(),
        (Setting::MaxClients, _) => limits.max_clients.to_string(),
        (Setting::Timeout, _) => limits.timeout.map_or(0, |t| t.as_secs()).to_string(),
        (Setting::MaxBulk, _) => limits.max_bulk_bytes.to_string(),
        (Setting::OutputLimit, _) => limits.output_buffer_limit_bytes.to_string(),
    }
}

/// Why CONFIG SET refused, in Redis 7's words.
#[derive(Debug, thiserror::Error)]
enum SetError {
    #[error("ERR syntax error")]
    OddArguments,
    #[error("ERR Unknown option or number of arguments for CONFIG SET - '{0}'")]
    Unknown(String),
    #[error("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")]
    Failed { name: String, reason: Cow<'static, str> },
}

fn failed(name: &[u8], reason: impl Into<Cow<'static, str>>) -> SetError {
    SetError::Failed { name: echo(name), reason: reason.into() }
}

fn echo(name: &[u8]) -> String {
    String::from_utf8_lossy(&name[..name.len().min(super::ECHOED_NAME_BYTES)]).into_owned()
}

/// `CONFIG SET name value [name value …]`: every name is checked first
/// (unknown, immutable, named twice), then every value, and only if all
/// of them are good do they go in force together.
fn set(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    set_all(args, ctx).map_err(|error| CommandError::Message(error.to_string().into()))
}

fn set_all(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), SetError> {
    if !args.len().is_multiple_of(2) {
        return Err(SetError::OddArguments);
    }
    let pairs: Vec<(&[u8], &[u8])> = (2..args.len()).step_by(2).map(|i| (args.arg(i), args.arg(i + 1))).collect();
    let mut changes: Vec<(&[u8], Setting, Form, &[u8])> = Vec::with_capacity(pairs.len());
    for &(name, text) in &pairs {
        let Some(&(_, setting, form)) = LIVE.iter().find(|(live, ..)| is(name, live)) else {
            let known = is(name, "port")
                || HIDDEN.iter().any(|hidden| is(name, hidden))
                || ctx.shared.fixed_settings.iter().any(|(fixed, _)| is(name, fixed));
            return Err(match known {
                true => failed(name, "can't set immutable config"),
                false => SetError::Unknown(echo(name)),
            });
        };
        if changes.iter().any(|&(_, earlier, ..)| earlier == setting) {
            return Err(failed(name, "duplicate parameter"));
        }
        changes.push((name, setting, form, text));
    }
    let timeout_before = ctx.shared.limits.timeout();
    ctx.shared.limits.change(|limits| {
        let at_start = ctx.shared.limits.at_start();
        for &(name, setting, form, text) in &changes {
            apply(limits, at_start, setting, form, text).map_err(|reason| failed(name, reason))?;
        }
        let one_value = limits.max_bulk_bytes.saturating_add(REPLY_OVERHEAD_BYTES);
        if limits.output_buffer_limit_bytes != 0 && limits.output_buffer_limit_bytes < one_value {
            let named = |wanted| changes.iter().find(|&&(_, s, ..)| s == wanted).map(|&(name, ..)| name);
            let name = named(Setting::OutputLimit).or_else(|| named(Setting::MaxBulk)).unwrap_or_default();
            return Err(failed(
                name,
                format!(
                    "the output buffer limit must be 0 (no limit) or at least {one_value}, one reply of a \
                     proto-max-bulk-len value"
                ),
            ));
        }
        Ok(())
    })?;
    if ctx.shared.limits.timeout() != timeout_before {
        ctx.shared.clients.timeout_changed();
    }
    Ok(())
}

/// Puts one parameter's value into `limits`, or says why it is refused.
fn apply(
    limits: &mut ClientLimits,
    at_start: &ClientLimits,
    setting: Setting,
    form: Form,
    text: &[u8],
) -> Result<(), Cow<'static, str>> {
    let text = std::str::from_utf8(text).map_err(|_| "argument must be valid text")?;
    match (setting, form) {
        (Setting::OutputLimit, Form::Classes) => limits.output_buffer_limit_bytes = normal_hard_limit(text)?,
        (Setting::Maxmemory, _) => limits.maxmemory = memory(text)?,
        (Setting::MaxClients, _) => {
            let clients = integer(text, 1, u32::MAX.into())?;
            let most = at_start.max_clients;
            if clients > most as u64 {
                return Err(format!(
                    "at most {most}: the file descriptors were shared out at start for that many clients \
                     (raise limits.max_clients in the config file and restart for more)"
                )
                .into());
            }
            limits.max_clients = usize::try_from(clients).unwrap_or(most);
        }
        (Setting::Timeout, _) => {
            let secs = integer(text, 0, i32::MAX.unsigned_abs().into())?;
            limits.timeout = (secs > 0).then(|| std::time::Duration::from_secs(secs));
        }
        (Setting::MaxBulk, _) => {
            let bytes = usize::try_from(memory(text)?).unwrap_or(usize::MAX);
            // Raising it past the start value would let clients write
            // values the gossip frames, sized at start, cannot carry.
            let most = at_start.max_bulk_bytes;
            let least = MIN_BULK_BYTES.min(most);
            if !(least..=most).contains(&bytes) {
                return Err(format!("argument must be between {least} and {most} inclusive").into());
            }
            limits.max_bulk_bytes = bytes;
        }
        (Setting::OutputLimit, _) => {
            limits.output_buffer_limit_bytes = usize::try_from(memory(text)?).unwrap_or(usize::MAX);
        }
    }
    Ok(())
}

fn memory(text: &str) -> Result<u64, &'static str> {
    parse_memory(text).map_err(|_| "argument must be a memory value")
}

fn integer(text: &str, least: u64, most: u64) -> Result<u64, Cow<'static, str>> {
    let n = parse_i64(text.as_bytes()).ok_or("argument couldn't be parsed into an integer")?;
    u64::try_from(n)
        .ok()
        .filter(|n| (least..=most).contains(n))
        .ok_or_else(|| format!("argument must be between {least} and {most} inclusive").into())
}

/// The normal class's hard limit from Redis's `client-output-buffer-limit`
/// value. rumor has only normal clients and only a hard limit, so other
/// classes and soft limits are refused rather than silently ignored.
fn normal_hard_limit(text: &str) -> Result<usize, Cow<'static, str>> {
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    if words.is_empty() || !words.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    let mut hard = 0;
    for class in words.chunks_exact(4) {
        let (name, hard_text, soft_text, seconds_text) = (class[0], class[1], class[2], class[3]);
        if !["normal", "replica", "slave", "pubsub"].iter().any(|known| name.eq_ignore_ascii_case(known)) {
            return Err("Invalid client class specified in buffer limit configuration.".into());
        }
        let bad = "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
        let limit = parse_memory(hard_text).map_err(|_| bad)?;
        let soft = parse_memory(soft_text).map_err(|_| bad)?;
        let seconds = parse_i64(seconds_text.as_bytes()).filter(|s| *s >= 0).ok_or(bad)?;
        if !name.eq_ignore_ascii_case("normal") {
            return Err("rumor has no replica or pubsub clients: only the normal class can be set".into());
        }
        if soft != 0 || seconds != 0 {
            return Err("rumor has no soft limit: the normal class's soft limit and seconds must be 0".into());
        }
        hard = usize::try_from(limit).unwrap_or(usize::MAX);
    }
    Ok(hard)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Harness;

    /// The `CONFIG GET` reply for one parameter, RESP2.
    fn pair(name: &str, value: &str) -> String {
        format!("*2\r\n${}\r\n{name}\r\n${}\r\n{value}\r\n", name.len(), value.len())
    }

    fn failed(name: &str, reason: &str) -> String {
        format!("-ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}\r\n")
    }

    #[tokio::test]
    async fn get_matches_names_case_insensitively_each_once() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["CONFIG", "GET", "save"]).await, pair("save", ""));
        assert_eq!(h.run(&["CONFIG", "GET", "APPENDONLY"]).await, pair("appendonly", "no"));
        assert_eq!(h.run(&["CONFIG", "GET", "proto-max-*"]).await, pair("proto-max-bulk-len", "1048576"));
        assert_eq!(h.run(&["CONFIG", "GET", "port"]).await, pair("port", "6380"));
        let both = h.run(&["config", "get", "maxclients", "databases"]).await;
        assert_eq!(both, "*4\r\n$10\r\nmaxclients\r\n$2\r\n64\r\n$9\r\ndatabases\r\n$1\r\n1\r\n");
        let twice = h.run(&["CONFIG", "GET", "maxmemory", "maxmem*", "MAXMEMORY"]).await;
        assert_eq!(twice.matches("\r\nmaxmemory\r\n").count(), 1, "{twice}");
        assert_eq!(h.run(&["CONFIG", "GET", "limits.timeout_s"]).await, pair("limits.timeout_s", "0"));
        assert_eq!(
            h.run(&["CONFIG", "GET", "membership.probe_interval_ms"]).await,
            pair("membership.probe_interval_ms", "300")
        );
        let limits = h.run(&["CONFIG", "GET", "limits.*"]).await;
        assert!(limits.starts_with("*16\r\n"), "eight [limits] keys: {limits}");
        assert_eq!(h.run(&["CONFIG", "GET", "nothing"]).await, "*0\r\n");
        assert_eq!(h.run(&["CONFIG", "GET", "requirepass"]).await, "*0\r\n", "a password is never answered");
        assert_eq!(h.run(&["CONFIG", "GET"]).await, "-ERR wrong number of arguments for 'config|get' command\r\n");
        h.run(&["HELLO", "3"]).await;
        assert_eq!(h.run(&["CONFIG", "GET", "save"]).await, "%1\r\n$4\r\nsave\r\n$0\r\n\r\n", "a map in RESP3");
        assert_eq!(h.run(&["CONFIG", "GET", "nothing"]).await, "%0\r\n");
    }

    #[tokio::test]
    async fn every_config_file_key_is_gettable() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/node.toml");
        let text = std::fs::read_to_string(path).unwrap();
        // The keys set and the ones shown commented out (`# key = …`).
        let mut table = String::new();
        let mut keys = Vec::new();
        for line in text.lines().map(|l| l.trim_start_matches("# ").trim()) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                table = format!("{name}.");
            } else if let Some((key, _)) = line.split_once(" = ")
                && !key.contains(' ')
            {
                keys.push(format!("{table}{key}"));
            }
        }
        assert!(keys.len() > 40, "{keys:?}");
        let mut h = Harness::new();
        for key in keys.iter().filter(|k| k.as_str() != "requirepass") {
            let reply = h.run(&["CONFIG", "GET", key]).await;
            assert!(reply.starts_with(&format!("*2\r\n${}\r\n{key}\r\n", key.len())), "{key}: {reply}");
        }
    }

    #[tokio::test]
    async fn set_changes_what_connections_read() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["CONFIG", "SET", "maxmemory", "100mb"]).await, "+OK\r\n");
        assert_eq!(h.shared.limits.maxmemory(), 100 << 20);
        assert_eq!(h.run(&["CONFIG", "GET", "maxmemory"]).await, pair("maxmemory", "104857600"));
        let all = ["MAXCLIENTS", "10", "timeout", "30", "proto-max-bulk-len", "1mb", "maxmemory", "1g"];
        assert_eq!(h.run(&[&["CONFIG", "SET"][..], &all[..]].concat()).await, "+OK\r\n");
        let limits = &h.shared.limits;
        assert_eq!(
            (limits.max_clients(), limits.timeout(), limits.maxmemory()),
            (10, Some(std::time::Duration::from_secs(30)), 1_000_000_000)
        );
        assert_eq!(h.run(&["CONFIG", "GET", "limits.max_clients"]).await, pair("limits.max_clients", "10"));
        assert_eq!(h.run(&["CONFIG", "SET", "limits.timeout_s", "0"]).await, "+OK\r\n");
        assert_eq!(h.shared.limits.timeout(), None);
        let set = h.run(&["CONFIG", "SET", "client-output-buffer-limit", "normal 2mb 0 0"]).await;
        assert_eq!(set, "+OK\r\n");
        assert_eq!(
            h.run(&["CONFIG", "GET", "client-output-buffer-limit"]).await,
            pair("client-output-buffer-limit", "normal 2097152 0 0")
        );
        assert_eq!(h.run(&["CONFIG", "SET", "limits.client_output_buffer_limit_bytes", "0"]).await, "+OK\r\n");
        assert_eq!(h.shared.limits.output_buffer_limit_bytes(), 0);
    }

    #[tokio::test]
    async fn set_is_all_or_nothing_in_redis_words() {
        let mut h = Harness::new();
        let before = h.run(&["CONFIG", "GET", "*"]).await;
        for (args, error) in [
            (&["maxmemory", "abc"][..], failed("maxmemory", "argument must be a memory value")),
            (
                &["maxmemory", "1mb", "maxclients", "x"],
                failed("maxclients", "argument couldn't be parsed into an integer"),
            ),
            (&["maxclients", "0"], failed("maxclients", "argument must be between 1 and 4294967295 inclusive")),
            (&["timeout", "-1"], failed("timeout", "argument must be between 0 and 2147483647 inclusive")),
            (&["maxmemory", "1mb", "MAXMEMORY", "2mb"], failed("MAXMEMORY", "duplicate parameter")),
            (&["maxclients", "5", "limits.max_clients", "6"], failed("limits.max_clients", "duplicate parameter")),
            (&["maxmemory", "1mb", "port", "1"], failed("port", "can't set immutable config")),
            (&["dissemination.fanout", "1"], failed("dissemination.fanout", "can't set immutable config")),
            (&["requirepass", "x"], failed("requirepass", "can't set immutable config")),
            (
                &["maxmemory", "1", "nope", "1"],
                "-ERR Unknown option or number of arguments for CONFIG SET - 'nope'\r\n".into(),
            ),
            (&["maxmemory", "1", "timeout"], "-ERR syntax error\r\n".into()),
            (
                &["proto-max-bulk-len", "2mb"],
                failed("proto-max-bulk-len", "argument must be between 1048576 and 1048576 inclusive"),
            ),
            (
                &["client-output-buffer-limit", "normal 1 2"],
                failed("client-output-buffer-limit", "Wrong number of arguments in buffer limit configuration."),
            ),
            (
                &["client-output-buffer-limit", "bogus 1 2 3"],
                failed("client-output-buffer-limit", "Invalid client class specified in buffer limit configuration."),
            ),
            (
                &["client-output-buffer-limit", "normal 1mb 2mb -3"],
                failed(
                    "client-output-buffer-limit",
                    "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
                ),
            ),
        ] {
            let reply = h.run(&[&["CONFIG", "SET"][..], args].concat()).await;
            assert_eq!(reply, error, "{args:?}");
        }
        assert!(
            h.run(&["CONFIG", "SET", "maxclients", "65"])
                .await
                .starts_with("-ERR CONFIG SET failed (possibly related to argument 'maxclients') - at most 64:")
        );
        assert!(
            h.run(&["CONFIG", "SET", "client-output-buffer-limit", "normal 1mb 0 0"])
                .await
                .contains("at least 1048640")
        );
        assert!(
            h.run(&["CONFIG", "SET", "client-output-buffer-limit", "pubsub 0 0 0"])
                .await
                .contains("only the normal class")
        );
        assert!(
            h.run(&["CONFIG", "SET", "client-output-buffer-limit", "normal 0 1mb 60"]).await.contains("no soft limit")
        );
        assert_eq!(h.run(&["CONFIG", "GET", "*"]).await, before, "nothing changed");
        assert_eq!(h.run(&["CONFIG", "SET", "x"]).await, "-ERR wrong number of arguments for 'config|set' command\r\n");
    }

    #[tokio::test]
    async fn help_rewrite_and_resetstat() {
        let mut h = Harness::new();
        let help = h.run(&["CONFIG", "HELP"]).await;
        assert!(
            help.starts_with("*11\r\n+CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n"),
            "{help}"
        );
        assert!(
            h.run(&["CONFIG", "REWRITE"])
                .await
                .starts_with("-ERR CONFIG REWRITE is not supported: rumor never rewrites")
        );
        assert_eq!(h.run(&["CONFIG", "RESETSTAT"]).await, "+OK\r\n");
        assert_eq!(
            h.run(&["CONFIG", "RESETSTAT", "x"]).await,
            "-ERR wrong number of arguments for 'config|resetstat' command\r\n"
        );
        assert_eq!(h.run(&["CONFIG", "NOPE"]).await, "-ERR unknown subcommand 'NOPE'. Try CONFIG HELP.\r\n");
    }
}
