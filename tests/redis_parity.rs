//! Differential check against a real redis-server 7: every case's command
//! sequence is sent as raw RESP to both servers, in RESP2 and after
//! `HELLO 3`, and the raw replies must match byte for byte (or, for the few
//! replies that cannot, in shape). Replies that differ by design are listed
//! in [`KNOWN_DIFFERENCES`], each with the reply rumor must send, so a
//! difference that silently disappears or changes fails the test too.
//!
//! Skips when `redis-server` is not installed, unless
//! `RUMOR_REQUIRE_REDIS=1` (set by `.ci/run`, which installs it).
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Node, free_port, wait_for};

/// A redis-server on loopback with no persistence, in its own directory
/// (so that it never loads a `dump.rdb` it happens to find); killed when
/// dropped.
struct Redis {
    addr: SocketAddr,
    dir: PathBuf,
    child: Child,
}

impl Redis {
    /// Starts one with `proto-max-bulk-len` at `max_bulk` (rumor's is
    /// smaller than Redis's default, and sets the bounds of SETRANGE,
    /// APPEND and the bit offsets), or `None` when `redis-server` is not
    /// installed.
    fn start(max_bulk: &str) -> Option<Redis> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("rumor-parity-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", dir.to_str().expect("utf-8 temp dir"), "--proto-max-bulk-len", max_bulk])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("start redis-server: {e}"),
        };
        let redis = Redis { addr: SocketAddr::from(([127, 0, 0, 1], port)), dir, child };
        wait_for("redis-server to answer PING", Duration::from_secs(20), || {
            let mut con = Con::open(redis.addr).ok()?;
            (con.call(&["PING"]).ok()? == b"+PONG\r\n").then_some(())
        });
        Some(redis)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One raw RESP connection.
struct Con {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Con {
    fn open(addr: SocketAddr) -> std::io::Result<Con> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_nodelay(true)?;
        Ok(Con { writer: stream.try_clone()?, reader: BufReader::new(stream) })
    }

    /// Sends one command as an array of bulk strings.
    fn send(&mut self, args: &[impl AsRef<[u8]>]) -> std::io::Result<()> {
        let mut frame = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            let arg = arg.as_ref();
            frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            frame.extend_from_slice(arg);
            frame.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&frame)
    }

    /// Sends one command and reads its whole reply, raw.
    fn call(&mut self, args: &[impl AsRef<[u8]>]) -> std::io::Result<Vec<u8>> {
        self.send(args)?;
        let mut raw = Vec::new();
        read_frame(&mut self.reader, &mut raw)?;
        Ok(raw)
    }
}

/// Reads one complete RESP2 or RESP3 frame into `raw`, byte for byte.
fn read_frame(reader: &mut impl BufRead, raw: &mut Vec<u8>) -> std::io::Result<()> {
    let start = raw.len();
    reader.read_until(b'\n', raw)?;
    let line = &raw[start..];
    if line.len() < 3 || !line.ends_with(b"\r\n") {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated frame"));
    }
    let kind = line[0];
    let number = || -> std::io::Result<i64> {
        std::str::from_utf8(&line[1..line.len() - 2])
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad length"))
    };
    match kind {
        b'$' | b'=' | b'!' => {
            let len = number()?;
            if len >= 0 {
                let mut body = vec![0; len as usize + 2];
                reader.read_exact(&mut body)?;
                raw.extend_from_slice(&body);
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let count = number()?;
            let items = if matches!(kind, b'%' | b'|') { count * 2 } else { count };
            for _ in 0..items.max(0) {
                read_frame(reader, raw)?;
            }
            // An attribute comes before the reply it annotates.
            if kind == b'|' {
                read_frame(reader, raw)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A parsed reply, for the comparisons that are not byte for byte.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    /// A one-line reply (`+ - : _ , # (`): its type byte and text.
    Line(u8, Vec<u8>),
    /// A bulk or verbatim string, or a null one.
    Bulk(u8, Option<Vec<u8>>),
    /// An aggregate: its type byte and items (a map's keys and values in turn).
    Agg(u8, Vec<Value>),
}

fn parse(raw: &[u8]) -> Value {
    fn one(raw: &[u8], at: &mut usize) -> Value {
        let end = *at + raw[*at..].windows(2).position(|w| w == b"\r\n").expect("CRLF");
        let (kind, text) = (raw[*at], raw[*at + 1..end].to_vec());
        *at = end + 2;
        let n = || std::str::from_utf8(&text).unwrap().parse::<i64>().unwrap();
        match kind {
            b'$' | b'=' | b'!' if n() < 0 => Value::Bulk(kind, None),
            b'$' | b'=' | b'!' => {
                let body = raw[*at..*at + n() as usize].to_vec();
                *at += n() as usize + 2;
                Value::Bulk(kind, Some(body))
            }
            b'*' | b'~' | b'>' | b'%' if n() < 0 => Value::Agg(kind, Vec::new()),
            b'*' | b'~' | b'>' | b'%' => {
                let items = if kind == b'%' { n() * 2 } else { n() };
                Value::Agg(kind, (0..items).map(|_| one(raw, at)).collect())
            }
            _ => Value::Line(kind, text),
        }
    }
    let mut at = 0;
    let value = one(raw, &mut at);
    assert_eq!(at, raw.len(), "one frame");
    value
}

/// The reply with every scalar's content blanked: its types and sizes.
fn shape(value: &Value) -> Value {
    match value {
        Value::Line(kind, _) => Value::Line(*kind, Vec::new()),
        Value::Bulk(kind, body) => Value::Bulk(*kind, body.as_ref().map(|_| Vec::new())),
        Value::Agg(kind, items) => Value::Agg(*kind, items.iter().map(shape).collect()),
    }
}

/// How one step's replies are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    /// Byte for byte.
    Exact,
    /// An array whose order is unspecified (KEYS): compared sorted.
    Sorted,
    /// Types and sizes only (TIME).
    Shape,
    /// A map whose values differ by design (HELLO): its keys, in order.
    MapKeys,
    /// An integer that moves with the clock (PTTL): within 100 of each other
    /// ([`agree`]).
    Near,
    /// `SCAN 0 …` run to the end (cursor 0): the sorted set of keys seen.
    ScanAll,
    /// A command that sends no reply (`CLIENT REPLY OFF`): nothing is read.
    NoReply,
    /// COMMAND INFO: each description's subcommands sorted by name (Redis
    /// lists them in its hash table's order).
    CommandInfo,
}

/// One command of a case, split at spaces: `{}` in it becomes the case's
/// key prefix, `''` is an empty argument, `\\xHH` a byte, `\\s` a space,
/// `\\\\` a backslash; a leading `sorted:`, `shape:`, `mapkeys:`, `near:`,
/// `scanall:` or `noreply:` picks the comparison.
fn step(text: &str, prefix: &str) -> (Cmp, Vec<Vec<u8>>) {
    let modes = [
        ("sorted:", Cmp::Sorted),
        ("shape:", Cmp::Shape),
        ("mapkeys:", Cmp::MapKeys),
        ("near:", Cmp::Near),
        ("scanall:", Cmp::ScanAll),
        ("noreply:", Cmp::NoReply),
        ("cmdinfo:", Cmp::CommandInfo),
    ];
    let (cmp, text) = modes
        .iter()
        .find_map(|(tag, cmp)| text.strip_prefix(tag).map(|rest| (*cmp, rest)))
        .unwrap_or((Cmp::Exact, text));
    let args = text
        .split_whitespace()
        .map(|word| if word == "''" { Vec::new() } else { unescape(&word.replace("{}", prefix)) })
        .collect();
    (cmp, args)
}

fn unescape(word: &str) -> Vec<u8> {
    let (mut out, bytes, mut i) = (Vec::new(), word.as_bytes(), 0);
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'\\', Some(b'x')) => {
                out.push(u8::from_str_radix(&word[i + 2..i + 4], 16).expect("\\xHH"));
                i += 4;
            }
            (b'\\', Some(b's')) => {
                out.push(b' ');
                i += 2;
            }
            (b'\\', Some(b'\\')) => {
                out.push(b'\\');
                i += 2;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// Runs one step on one connection and returns what is compared.
fn run(con: &mut Con, cmp: Cmp, args: &[Vec<u8>]) -> Result<Value, String> {
    let io = |e: std::io::Error| format!("{e}");
    match cmp {
        Cmp::NoReply => {
            con.send(args).map_err(io)?;
            Ok(Value::Line(b'+', b"(no reply)".to_vec()))
        }
        Cmp::ScanAll => {
            let mut args = args.to_vec();
            let mut keys = Vec::new();
            for _ in 0..1000 {
                let reply = parse(&con.call(&args).map_err(io)?);
                let Value::Agg(b'*', parts) = &reply else { return Ok(reply) };
                let [Value::Bulk(_, Some(cursor)), Value::Agg(_, batch)] = parts.as_slice() else {
                    return Ok(reply);
                };
                keys.extend(batch.iter().cloned());
                if cursor == b"0" {
                    keys.sort();
                    keys.dedup();
                    return Ok(Value::Agg(b'*', keys));
                }
                args[1] = cursor.clone();
            }
            Err("SCAN did not finish in 1000 calls".into())
        }
        _ => {
            let raw = con.call(args).map_err(io)?;
            let value = parse(&raw);
            Ok(match (cmp, value) {
                (Cmp::Exact, _) => Value::Bulk(b'r', Some(raw)),
                (Cmp::Sorted, Value::Agg(kind, mut items)) => {
                    items.sort();
                    Value::Agg(kind, items)
                }
                (Cmp::Shape, value) => shape(&value),
                (Cmp::CommandInfo, Value::Agg(kind, entries)) => {
                    let sorted = entries.into_iter().map(|entry| match entry {
                        Value::Agg(kind, mut fields) if fields.len() == 10 => {
                            if let Value::Agg(_, subs) = &mut fields[9] {
                                subs.sort();
                            }
                            Value::Agg(kind, fields)
                        }
                        other => other,
                    });
                    Value::Agg(kind, sorted.collect())
                }
                (Cmp::MapKeys, Value::Agg(kind, items)) if kind == b'%' || kind == b'*' => {
                    Value::Agg(kind, items.into_iter().step_by(2).collect())
                }
                (_, value) => value,
            })
        }
    }
}

/// Whether two replies compared as `cmp` agree.
fn agree(cmp: Cmp, x: &Value, y: &Value) -> bool {
    let number = |v: &Value| match v {
        Value::Line(b':', n) => std::str::from_utf8(n).ok()?.parse::<i64>().ok(),
        _ => None,
    };
    match (cmp, number(x), number(y)) {
        (Cmp::Near, Some(x), Some(y)) => (x - y).abs() <= 100,
        _ => x == y,
    }
}

/// A reply for a failure message, cut short.
fn show(value: &Value) -> String {
    let text = match value {
        Value::Bulk(b'r', Some(raw)) => format!("{:?}", String::from_utf8_lossy(raw)),
        other => format!("{other:?}"),
    };
    match text.char_indices().nth(2000) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// A connection to each server in the given protocol, with HELLO's reply
/// compared by its keys.
fn pair(redis: &Redis, rumor: &Node, protocol: u8) -> (Con, Con) {
    let mut a = Con::open(redis.addr).expect("connect redis");
    let mut b = Con::open(rumor.client).expect("connect rumor");
    if protocol == 3 {
        let (x, y) = (
            run(&mut a, Cmp::MapKeys, &[b"HELLO".to_vec(), b"3".to_vec()]).unwrap(),
            run(&mut b, Cmp::MapKeys, &[b"HELLO".to_vec(), b"3".to_vec()]).unwrap(),
        );
        assert_eq!(x, y, "HELLO 3's keys");
    }
    (a, b)
}

/// Sequences whose every reply must be the same from both servers, in both
/// protocols. Each runs on fresh connections, with `{}` a key prefix of
/// its own: the keyspaces stay identical because both servers get the
/// same commands.
const CASES: &[(&str, &[&str])] = &[
    (
        "get_set",
        &[
            "GET {}a",
            "SET {}a v1",
            "GET {}a",
            "SET {}a v2",
            "GET {}a",
            "SET {}e ''",
            "GET {}e",
            "STRLEN {}e",
            "GET",
            "SET {}a",
            "GET {}a b",
        ],
    ),
    (
        "set_nx_xx",
        &[
            "SET {}a 1 XX",
            "GET {}a",
            "SET {}a 1 NX",
            "SET {}a 2 NX",
            "GET {}a",
            "SET {}a 3 XX",
            "GET {}a",
            "SET {}a 4 NX XX",
            "SET {}a 4 XX NX",
            "SET {}a 4 nx",
            "SET {}a 4 xx",
        ],
    ),
    (
        "set_get_option",
        &[
            "SET {}a 1 GET",
            "SET {}a 2 GET",
            "GET {}a",
            "SET {}a 3 NX GET",
            "SET {}a 4 XX GET",
            "SET {}b 5 XX GET",
            "SET {}c 6 NX GET",
            "GET {}c",
            "SET {}a 7 GET GET",
        ],
    ),
    (
        "set_expiry",
        &[
            "SET {}a v EX 100",
            "TTL {}a",
            "near:PTTL {}a",
            "SET {}a v PX 100000",
            "TTL {}a",
            "SET {}a v",
            "TTL {}a",
            "SET {}a v EXAT 4102444800",
            "EXPIRETIME {}a",
            "PEXPIRETIME {}a",
            "SET {}a v PXAT 4102444800123",
            "PEXPIRETIME {}a",
            "EXPIRETIME {}a",
            "SET {}a w KEEPTTL",
            "PEXPIRETIME {}a",
            "GET {}a",
            "SET {}a w",
            "TTL {}a",
        ],
    ),
    (
        "set_expiry_errors",
        &[
            "SET {}a v EX 0",
            "SET {}a v EX -1",
            "SET {}a v PX 0",
            "SET {}a v EXAT 0",
            "SET {}a v PXAT 0",
            "SET {}a v EX abc",
            "SET {}a v EX",
            "SET {}a v EX 1.5",
            "SET {}a v EX 9223372036854775807",
            "SET {}a v PX 9223372036854775807",
            "SET {}a v EX 9223372036854775",
            "SET {}a v EX 10 PX 100",
            "SET {}a v EX 10 EX 10",
            "SET {}a v EX 10 KEEPTTL",
            "SET {}a v KEEPTTL PX 10",
            "SET {}a v KEEPTTL KEEPTTL",
            "SET {}a v EXAT 10 PXAT 10",
            "SET {}a v FOO",
            "SET {}a v NX FOO",
            "EXISTS {}a",
        ],
    ),
    (
        "mget_mset",
        &[
            "MSET {}a 1 {}b 2",
            "MGET {}a {}b {}c",
            "MSET {}a",
            "MSET {}a 1 {}b",
            "MGET",
            "MSET {}a 3 {}a 4",
            "GET {}a",
            "MSETNX {}c 1 {}d 2",
            "MSETNX {}c 1 {}e 2",
            "MGET {}c {}d {}e",
            "MSETNX {}f",
            "MSETNX {}f 1 {}g",
            "MSETNX {}h 1 {}h 2",
            "GET {}h",
        ],
    ),
    (
        "setnx_setex",
        &[
            "SETNX {}a 1",
            "SETNX {}a 2",
            "GET {}a",
            "SETNX {}a",
            "SETEX {}b 100 v",
            "TTL {}b",
            "SETEX {}b 0 v",
            "SETEX {}b -5 v",
            "SETEX {}b abc v",
            "SETEX {}b 100",
            "PSETEX {}c 100000 v",
            "TTL {}c",
            "PSETEX {}c 0 v",
            "PSETEX {}c x v",
            "SETEX {}b 9223372036854775807 v",
            "PSETEX {}c 9223372036854775807 v",
        ],
    ),
    (
        "getset_getdel",
        &[
            "GETSET {}a 1",
            "GETSET {}a 2",
            "GET {}a",
            "SET {}b v EX 100",
            "GETSET {}b w",
            "TTL {}b",
            "GETDEL {}b",
            "GETDEL {}b",
            "EXISTS {}b",
            "GETSET {}a",
            "GETDEL",
            "GETDEL {}a {}b",
        ],
    ),
    (
        "getex",
        &[
            "GETEX {}a",
            "SET {}a v",
            "GETEX {}a",
            "GETEX {}a EX 100",
            "TTL {}a",
            "GETEX {}a PERSIST",
            "TTL {}a",
            "GETEX {}a PX 100000",
            "TTL {}a",
            "GETEX {}a EXAT 4102444800",
            "EXPIRETIME {}a",
            "GETEX {}a PXAT 4102444800123",
            "PEXPIRETIME {}a",
            "GETEX {}a EX 0",
            "GETEX {}a EX -1",
            "GETEX {}a EX x",
            "GETEX {}a EX",
            "GETEX {}a EX 10 PX 10",
            "GETEX {}a PERSIST EX 10",
            "GETEX {}a FOO",
            "GETEX {}a KEEPTTL",
            "GETEX {}b EX 10",
            "GETEX {}a EX 9223372036854775807",
            "PEXPIRETIME {}a",
        ],
    ),
    (
        "append_strlen",
        &[
            "APPEND {}a hello",
            "APPEND {}a \\s",
            "APPEND {}a world",
            "GET {}a",
            "STRLEN {}a",
            "STRLEN {}b",
            "APPEND {}a",
            "STRLEN",
            "APPEND {}c ''",
            "EXISTS {}c",
            "GET {}c",
        ],
    ),
    (
        "getrange",
        &[
            "SET {}a This_is_a_string",
            "GETRANGE {}a 0 3",
            "GETRANGE {}a -3 -1",
            "GETRANGE {}a 0 -1",
            "GETRANGE {}a 10 100",
            "GETRANGE {}a 5 3",
            "GETRANGE {}a -100 2",
            "GETRANGE {}a 100 200",
            "GETRANGE {}a -1 -100",
            "GETRANGE {}b 0 10",
            "GETRANGE {}a x 1",
            "GETRANGE {}a 0",
            "SUBSTR {}a 0 3",
            "SUBSTR {}a -3 -1",
            "GETRANGE {}a 0 9223372036854775807",
            "GETRANGE {}a -9223372036854775808 0",
            "SET {}e ''",
            "GETRANGE {}e 0 -1",
            "GETRANGE {}e 0 0",
            "GETRANGE {}e -1 0",
        ],
    ),
    (
        "setrange",
        &[
            "SETRANGE {}a 0 hello",
            "GET {}a",
            "SETRANGE {}a 6 world",
            "GET {}a",
            "STRLEN {}a",
            "SETRANGE {}a 1 ''",
            "SETRANGE {}b 3 ''",
            "EXISTS {}b",
            "SETRANGE {}b 2 x",
            "GET {}b",
            "SETRANGE {}a -1 x",
            "SETRANGE {}a x x",
            "SETRANGE {}a 536870912 x",
            "SETRANGE {}a 536870911 ''",
            "SETRANGE {}c 536870912 ''",
            "SETRANGE {}a 0",
            "EXISTS {}c",
        ],
    ),
    (
        "lcs",
        &[
            "MSET {}a ohmytext {}b mynewtext",
            "LCS {}a {}b",
            "LCS {}a {}b LEN",
            "LCS {}a {}b IDX",
            "LCS {}a {}b IDX MINMATCHLEN 4",
            "LCS {}a {}b IDX WITHMATCHLEN",
            "LCS {}a {}b IDX MINMATCHLEN 4 WITHMATCHLEN",
            "LCS {}a {}b LEN IDX",
            "LCS {}a {}b FOO",
            "LCS {}a {}b IDX MINMATCHLEN",
            "LCS {}a {}b IDX MINMATCHLEN x",
            "LCS {}a {}b IDX MINMATCHLEN -1",
            "LCS {}a {}c",
            "LCS {}c {}d LEN",
            "LCS {}c {}d IDX",
            "LCS {}a",
            "LCS {}a {}b MINMATCHLEN 2",
            "LCS {}a {}b WITHMATCHLEN",
        ],
    ),
    (
        "bits",
        &[
            "SETBIT {}a 7 1",
            "GET {}a",
            "GETBIT {}a 7",
            "GETBIT {}a 6",
            "GETBIT {}a 100",
            "GETBIT {}b 0",
            "SETBIT {}a 7 0",
            "SETBIT {}a 7 2",
            "SETBIT {}a -1 1",
            "SETBIT {}a x 1",
            "SETBIT {}a 4294967296 1",
            "SETBIT {}a 4294967295 0",
            "GETBIT {}a 4294967295",
            "GETBIT {}a 536870912",
            "SETBIT {}a 536870912 2",
            "GETBIT {}a -1",
            "GETBIT {}a x",
            "SETBIT {}a 100 1",
            "STRLEN {}a",
            "SETBIT {}a 1",
            "GETBIT {}a",
        ],
    ),
    (
        "bitcount",
        &[
            "SET {}a foobar",
            "BITCOUNT {}a",
            "BITCOUNT {}a 0 0",
            "BITCOUNT {}a 1 1",
            "BITCOUNT {}a 1 1 BYTE",
            "BITCOUNT {}a 5 30 BIT",
            "BITCOUNT {}a -2 -1",
            "BITCOUNT {}a 0",
            "BITCOUNT {}a 0 1 FOO",
            "BITCOUNT {}a x 1",
            "BITCOUNT {}b",
            "BITCOUNT {}b 0 1",
            "BITCOUNT {}a 10 5",
            "BITCOUNT {}a -100 100 BIT",
            "BITCOUNT {}a 0 1 bit",
            "BITCOUNT {}a 0 1 BYTE x",
        ],
    ),
    (
        "bitpos",
        &[
            "SET {}b \\xff\\xf0\\x00",
            "BITPOS {}b 0",
            "BITPOS {}b 1",
            "BITPOS {}b 1 1",
            "BITPOS {}b 1 0 0 BIT",
            "BITPOS {}b 0 2 -1 BIT",
            "BITPOS {}b 1 -1",
            "BITPOS {}c 0",
            "BITPOS {}c 1",
            "BITPOS {}b 2",
            "BITPOS {}b x",
            "BITPOS {}b 1 x",
            "BITPOS {}b 1 0 1 FOO",
            "BITPOS {}b 1 0 1 BYTE x",
            "SETBIT {}d 0 1",
            "SETBIT {}d 1 1",
            "SETBIT {}d 2 1",
            "SETBIT {}d 3 1",
            "SETBIT {}d 4 1",
            "SETBIT {}d 5 1",
            "SETBIT {}d 6 1",
            "SETBIT {}d 7 1",
            "BITPOS {}d 0",
            "BITPOS {}d 0 0",
            "BITPOS {}d 0 0 0",
            "BITPOS {}d 0 0 -1 BIT",
            "BITPOS {}d 1 5 1",
        ],
    ),
    (
        "bitop",
        &[
            "MSET {}a abc {}b xyz1",
            "BITOP AND {}d {}a {}b",
            "GET {}d",
            "BITOP OR {}d {}a {}b",
            "GET {}d",
            "BITOP XOR {}d {}a {}b",
            "GET {}d",
            "BITOP NOT {}d {}a",
            "GET {}d",
            "BITOP NOT {}d {}a {}b",
            "BITOP FOO {}d {}a",
            "BITOP AND {}d",
            "BITOP AND {}d {}x {}y",
            "EXISTS {}d",
            "BITOP or {}d {}a",
            "GET {}d",
        ],
    ),
    (
        "del_exists",
        &[
            "MSET {}a 1 {}b 2 {}c 3",
            "EXISTS {}a {}b {}z",
            "EXISTS {}a {}a {}a",
            "DEL {}a {}z",
            "DEL {}a",
            "UNLINK {}b {}b",
            "EXISTS {}a {}b {}c",
            "TOUCH {}c {}c {}z",
            "DEL",
            "EXISTS",
            "UNLINK",
            "TOUCH",
        ],
    ),
    ("type", &["SET {}a v", "TYPE {}a", "TYPE {}b", "TYPE", "TYPE {}a {}b"]),
    (
        "rename",
        &[
            "SET {}a 1",
            "RENAME {}a {}b",
            "GET {}a",
            "GET {}b",
            "RENAME {}a {}b",
            "RENAME {}b {}b",
            "SET {}c 2",
            "RENAMENX {}b {}c",
            "RENAMENX {}b {}d",
            "GET {}d",
            "RENAMENX {}z {}e",
            "RENAMENX {}d {}d",
            "SET {}t v EX 100",
            "RENAME {}t {}u",
            "TTL {}u",
            "RENAME {}u",
            "RENAMENX {}u",
        ],
    ),
    (
        "copy",
        &[
            "SET {}a 1 EX 100",
            "COPY {}a {}b",
            "GET {}b",
            "TTL {}b",
            "COPY {}a {}b",
            "COPY {}a {}b REPLACE",
            "COPY {}z {}b",
            "COPY {}a {}a",
            "COPY {}a {}b DB 0",
            "COPY {}a {}b FOO",
            "COPY {}a {}b DB",
            "COPY {}a {}b DB x",
            "COPY {}a",
            "COPY {}a {}c replace",
            "GET {}c",
        ],
    ),
    (
        "expire",
        &[
            "EXPIRE {}a 100",
            "SET {}a v",
            "EXPIRE {}a 100",
            "TTL {}a",
            "EXPIRE {}a 200 NX",
            "EXPIRE {}a 200 XX",
            "TTL {}a",
            "EXPIRE {}a 100 GT",
            "EXPIRE {}a 300 GT",
            "TTL {}a",
            "EXPIRE {}a 400 LT",
            "EXPIRE {}a 250 LT",
            "TTL {}a",
            "PERSIST {}a",
            "PERSIST {}a",
            "EXPIRE {}a 100 XX",
            "EXPIRE {}a 100 GT",
            "EXPIRE {}a 100 LT",
            "TTL {}a",
            "PERSIST {}a",
            "EXPIRE {}a 100 NX XX",
            "EXPIRE {}a 100 GT LT",
            "EXPIRE {}a 100 NX GT",
            "EXPIRE {}a 100 FOO",
            "EXPIRE {}a x",
            "EXPIRE {}a 1.5",
            "EXPIRE {}a",
            "EXPIRE {}a 9223372036854775807",
            "PEXPIRE {}a 9223372036854775807",
            "EXPIRE {}a 9223372036854775",
            "TTL {}a",
            "EXPIRE {}a 100 nx",
            "TTL {}a",
        ],
    ),
    (
        "expire_past",
        &[
            "SET {}a v",
            "EXPIRE {}a -1",
            "EXISTS {}a",
            "SET {}a v",
            "EXPIRE {}a 0",
            "GET {}a",
            "SET {}a v",
            "PEXPIRE {}a -100",
            "EXISTS {}a",
            "SET {}a v",
            "EXPIREAT {}a 1",
            "EXISTS {}a",
            "SET {}a v",
            "PEXPIREAT {}a 1000",
            "EXISTS {}a",
            "SET {}a v",
            "EXPIREAT {}a -5",
            "EXISTS {}a",
        ],
    ),
    (
        "expireat",
        &[
            "SET {}a v",
            "EXPIREAT {}a 4102444800",
            "EXPIRETIME {}a",
            "PEXPIRETIME {}a",
            "PEXPIREAT {}a 4102444800555",
            "PEXPIRETIME {}a",
            "EXPIRETIME {}a",
            "EXPIREAT {}a 4102444801 LT",
            "EXPIREAT {}a 4102444801 GT",
            "EXPIRETIME {}a",
            "PEXPIREAT {}a 4102444800000 NX",
            "EXPIREAT {}b 4102444800",
            "EXPIREAT {}a x",
            "PEXPIREAT {}a 9223372036854775807",
            "EXPIREAT {}a 9223372036854775807",
            "EXPIRETIME {}b",
            "PEXPIRETIME {}b",
            "SET {}c v",
            "EXPIRETIME {}c",
            "PEXPIRETIME {}c",
            "TTL {}c",
            "PTTL {}c",
            "TTL {}b",
            "PTTL {}b",
            "EXPIRETIME",
            "TTL",
        ],
    ),
    (
        "object",
        &[
            "SET {}a hello",
            "OBJECT ENCODING {}a",
            "SET {}b 12345",
            "OBJECT ENCODING {}b",
            "OBJECT REFCOUNT {}a",
            "OBJECT ENCODING {}z",
            "OBJECT REFCOUNT {}z",
            "OBJECT FOO",
            "OBJECT",
            "OBJECT ENCODING",
            "OBJECT ENCODING {}a {}b",
            "SET {}c 0123456789012345678901234567890123456789012345678901234567890123456789",
            "OBJECT ENCODING {}c",
            "SET {}d -12",
            "OBJECT ENCODING {}d",
            "SET {}e 012",
            "OBJECT ENCODING {}e",
            "APPEND {}f abc",
            "OBJECT ENCODING {}f",
        ],
    ),
    (
        "dbsize_keys",
        &[
            "MSET {}a 1 {}b 2 {}cc 3 {}x\\y 4",
            "sorted:KEYS {}*",
            "sorted:KEYS {}?",
            "sorted:KEYS {}[ab]",
            "sorted:KEYS {}[^a]",
            "sorted:KEYS {}c*",
            "KEYS {}nothing*",
            "KEYS",
            "KEYS {}* x",
            "DBSIZE",
            "DBSIZE x",
        ],
    ),
    (
        "scan",
        &[
            "MSET {}a 1 {}b 2 {}c 3 {}d 4 {}e 5",
            "scanall:SCAN 0 MATCH {}* COUNT 2",
            "scanall:SCAN 0 MATCH {}[ab] COUNT 1",
            "scanall:SCAN 0 MATCH {}* TYPE string COUNT 3",
            "scanall:SCAN 0 MATCH {}* TYPE list",
            "scanall:SCAN 0 MATCH {}* TYPE STRING",
            "SCAN 0 COUNT 0",
            "SCAN 0 COUNT -1",
            "SCAN 0 COUNT x",
            "SCAN 0 MATCH",
            "SCAN 0 FOO",
            "SCAN x",
            "SCAN 18446744073709551616",
            "SCAN",
            "SCAN 0 TYPE",
        ],
    ),
    (
        "transaction",
        &[
            "MULTI",
            "SET {}a 1",
            "GET {}a",
            "EXEC",
            "MULTI",
            "SET {}a 2",
            "DISCARD",
            "GET {}a",
            "EXEC",
            "DISCARD",
            "MULTI",
            "MULTI",
            "EXEC",
            "MULTI",
            "EXEC",
        ],
    ),
    (
        "execabort",
        &[
            "MULTI",
            "SET {}a 1",
            "SET {}a",
            "FOO x",
            "EXEC",
            "GET {}a",
            "MULTI",
            "SET {}a 1",
            "GET {}a x",
            "DISCARD",
            "GET {}a",
        ],
    ),
    ("exec_runtime_error", &["MULTI", "SET {}a 1", "SET {}a 1 EX 0", "SET {}b 2 NX XX", "GET {}a", "EXEC"]),
    (
        "watch",
        &[
            "SET {}a 1",
            "WATCH {}a",
            "SET {}a 2",
            "MULTI",
            "GET {}a",
            "EXEC",
            "WATCH {}a",
            "MULTI",
            "GET {}a",
            "EXEC",
            "WATCH {}a {}b",
            "UNWATCH",
            "SET {}a 3",
            "MULTI",
            "GET {}a",
            "EXEC",
            "MULTI",
            "WATCH {}a",
            "GET {}a",
            "EXEC",
            "WATCH",
            "UNWATCH x",
            "MULTI x",
        ],
    ),
    (
        "watch_missing",
        &[
            "WATCH {}z",
            "MULTI",
            "SET {}z 1",
            "EXEC",
            "WATCH {}z",
            "DEL {}z",
            "MULTI",
            "GET {}z",
            "EXEC",
            "WATCH {}y",
            "SET {}y 1 EX 100",
            "MULTI",
            "PING",
            "EXEC",
        ],
    ),
    ("multi_connection", &["MULTI", "PING", "ECHO hi", "PING hello", "SELECT 0", "EXEC"]),
    (
        "arity",
        &[
            "GET {}x {}x",
            "GET",
            "SET {}x",
            "MGET",
            "MSET {}x",
            "MSETNX {}x",
            "DEL",
            "EXISTS",
            "EXPIRE {}x",
            "PEXPIRE {}x",
            "EXPIREAT {}x",
            "PEXPIREAT {}x",
            "TTL {}x {}x",
            "TTL",
            "PTTL {}x {}x",
            "PTTL",
            "PERSIST {}x {}x",
            "PERSIST",
            "EXPIRETIME {}x {}x",
            "EXPIRETIME",
            "PEXPIRETIME {}x {}x",
            "PEXPIRETIME",
            "TYPE {}x {}x",
            "TYPE",
            "UNLINK",
            "RENAME {}x {}x {}x",
            "RENAME {}x",
            "RENAMENX {}x {}x {}x",
            "RENAMENX {}x",
            "COPY {}x",
            "TOUCH",
            "SETNX {}x {}x {}x",
            "SETNX {}x",
            "SETEX {}x {}x {}x {}x",
            "SETEX {}x {}x",
            "PSETEX {}x {}x {}x {}x",
            "PSETEX {}x {}x",
            "GETSET {}x {}x {}x",
            "GETSET {}x",
            "GETDEL {}x {}x",
            "GETDEL",
            "GETEX",
            "APPEND {}x {}x {}x",
            "APPEND {}x",
            "SETRANGE {}x {}x {}x {}x",
            "SETRANGE {}x {}x",
            "STRLEN {}x {}x",
            "STRLEN",
            "GETRANGE {}x {}x {}x {}x",
            "GETRANGE {}x {}x",
            "SUBSTR {}x {}x {}x {}x",
            "SUBSTR {}x {}x",
            "ECHO {}x {}x",
            "ECHO",
            "DBSIZE {}x",
            "SCAN",
            "KEYS {}x {}x",
            "KEYS",
            "SELECT {}x {}x",
            "SELECT",
            "SETBIT {}x {}x {}x {}x",
            "SETBIT {}x {}x",
            "GETBIT {}x {}x {}x",
            "GETBIT {}x",
            "BITCOUNT",
            "LCS {}x",
            "BITPOS {}x",
            "BITOP {}x {}x",
            "RANDOMKEY {}x",
            "WATCH",
            "UNWATCH {}x",
            "TIME {}x",
        ],
    ),
    (
        "ttl_rounding",
        &[
            "PSETEX {}a 1700 v",
            "TTL {}a",
            "PSETEX {}b 1200 v",
            "TTL {}b",
            "PEXPIREAT {}b 4102444800600",
            "EXPIRETIME {}b",
            "PEXPIREAT {}b 4102444800400",
            "EXPIRETIME {}b",
        ],
    ),
    (
        "object_integers",
        &[
            "SET {}a -0",
            "OBJECT ENCODING {}a",
            "SET {}a +1",
            "OBJECT ENCODING {}a",
            "SET {}a 9223372036854775808",
            "OBJECT ENCODING {}a",
            "SET {}a -9223372036854775808",
            "OBJECT ENCODING {}a",
            "SET {}a 00",
            "OBJECT ENCODING {}a",
            "SET {}a 0",
            "OBJECT ENCODING {}a",
            "OBJECT REFCOUNT {}a",
            "SET {}a 9999",
            "OBJECT REFCOUNT {}a",
            "SET {}a 10000",
            "OBJECT REFCOUNT {}a",
            "SET {}a -1",
            "OBJECT REFCOUNT {}a",
            "SET {}a 12345678901234567890123456789012345678901234",
            "OBJECT ENCODING {}a",
            "SET {}a 123456789012345678901234567890123456789012345",
            "OBJECT ENCODING {}a",
            "SET {}a \\s1",
            "OBJECT ENCODING {}a",
            "COPY {}a {}b",
            "OBJECT ENCODING {}b",
            "RENAME {}b {}c",
            "OBJECT ENCODING {}c",
        ],
    ),
    (
        "setrange_limits",
        &[
            "SETRANGE {}a 9223372036854775807 x",
            "SETRANGE {}a 67108864 x",
            "SETRANGE {}a 67108863 ''",
            "EXISTS {}a",
            "SETRANGE {}a -9223372036854775808 x",
        ],
    ),
    (
        "copy_db",
        &[
            "SET {}a 1",
            "COPY {}a {}b DB -1",
            "COPY {}a {}b DB 99999999999",
            "COPY {}a {}b DB 2147483648",
            "COPY {}a {}b DB -2147483649",
            "COPY {}a {}b REPLACE REPLACE",
            "COPY {}a {}a DB 0",
            "COPY {}z {}z",
            "RENAME {}z {}z",
            "RENAMENX {}z {}z",
        ],
    ),
    (
        "lcs_edges",
        &[
            "SET {}e1 ''",
            "SET {}e2 ''",
            "LCS {}e1 {}e2 IDX",
            "LCS {}e1 {}e2 IDX WITHMATCHLEN",
            "LCS {}e1 {}e2",
            "LCS {}e1 {}e2 LEN",
            "MSET {}a abcdef {}b acdxf",
            "LCS {}a {}b IDX MINMATCHLEN 0",
            "LCS {}a {}b IDX MINMATCHLEN 9223372036854775808",
            "LCS {}a {}b IDX WITHMATCHLEN MINMATCHLEN 2",
            "LCS {}a {}b LEN LEN",
            "LCS {}a {}b IDX IDX",
            "LCS {}a {}b idx len",
            "LCS {}a {}e1",
        ],
    ),
    (
        "bit_ranges",
        &[
            "SET {}a abcdefghijabcdefghij",
            "BITCOUNT {}a -9223372036854775808 9223372036854775807",
            "BITCOUNT {}a -9223372036854775808 9223372036854775807 BIT",
            "BITCOUNT {}a 0 -1 BIT",
            "BITCOUNT {}a 9223372036854775808 1",
            "BITPOS {}a 1 -9223372036854775808 9223372036854775807 BIT",
            "BITPOS {}a 0 9223372036854775807",
            "BITPOS {}a 0 0 -100",
            "BITPOS {}a 1 2 1",
            "SET {}e ''",
            "BITPOS {}e 0",
            "BITPOS {}e 1",
            "BITCOUNT {}e",
            "BITCOUNT {}e 0 -1 BIT",
            "GETBIT {}e 0",
        ],
    ),
    (
        "scan_edges",
        &[
            "MSET {}a 1 {}b 2",
            "scanall:SCAN 0 MATCH {}* TYPE foo",
            "scanall:SCAN 0 COUNT 9223372036854775807 MATCH {}nomatch",
            "scanall:SCAN 0 MATCH nomatch MATCH {}*",
            "scanall:SCAN 0 COUNT 1 COUNT 2 MATCH {}a",
            "SCAN 0 COUNT 9223372036854775808",
            "SCAN 0 TYPE string TYPE",
            "scanall:SCAN 0 TYPE none MATCH {}*",
        ],
    ),
    (
        "key_patterns",
        &[
            "MSET {}a 1 {}b 2 {}[ 3 {}\\\\ 4 {}* 5",
            "sorted:KEYS {}[",
            "sorted:KEYS {}\\\\",
            "sorted:KEYS {}\\\\*",
            "sorted:KEYS {}[a-]",
            "sorted:KEYS {}[!a]",
            "sorted:KEYS {}[\\\\[]",
            "sorted:KEYS {}\\\\[",
            "sorted:KEYS {}?",
        ],
    ),
    (
        "option_repeats",
        &[
            "SET {}a v",
            "EXPIRE {}a 100 GT GT",
            "EXPIRE {}a 100 XX XX",
            "TTL {}a",
            "GETEX {}a PERSIST PERSIST",
            "GETEX {}a EX 10 EX 20",
            "TTL {}a",
            "GETEX {}a EX 0 EX 30",
            "TTL {}a",
            "GETEX {}a EX x EX 40",
            "TTL {}a",
            "GETEX {}a EX 10 PERSIST",
            "GETEX {}a PERSIST EX 10",
            "GETEX {}a EX 10 PX 10 EX 10",
            "SET {}a v EX 0 EX 20",
            "TTL {}a",
            "SET {}a w GET KEEPTTL",
            "TTL {}a",
            "SET {}a v NX NX",
            "SET {}a v XX XX GET GET KEEPTTL KEEPTTL",
            "SET {}a v PX 10 PX 20000 PX 30000",
            "near:PTTL {}a",
        ],
    ),
    (
        "expire_extremes",
        &[
            "SET {}a v PXAT 9223372036854775807",
            "SET {}a v EXAT 9223372036854775807",
            "SET {}a v EXAT 9223372036854775",
            "SET {}a v EXAT 9223372036854",
            "SETEX {}a 9223372036854776 v",
            "PSETEX {}a -1 v",
            "GETEX {}a PXAT 0",
            "GETEX {}a EXAT -1",
            "EXPIREAT {}a 9223372036854775",
            "EXISTS {}a",
            "SET {}a 1",
            "PEXPIREAT {}a -9223372036854775808",
            "EXISTS {}a",
            "SET {}a 1",
            "EXPIRE {}a -9223372036854775808",
            "EXISTS {}a",
            "PEXPIRE {}a -9223372036854775808",
            "EXISTS {}a",
            "SET {}a 1",
            "PEXPIRE {}a 9223372036854775000",
            "EXPIRE {}a 9223372036854775 GT",
            "PERSIST {}a",
            "SET {}a 1 PX 9223372036854770000",
            "GETEX {}a PX 9223372036854770000",
            "EXPIRE {}a 100 GT",
            "EXPIRE {}a 100 LT",
            "TTL {}a",
        ],
    ),
    (
        "select_range",
        &["SELECT 2147483648", "SELECT 99999999999", "SELECT -2147483649", "SELECT 1.0", "SELECT ''", "SELECT 00"],
    ),
    (
        "client_misc",
        &[
            "CLIENT KILL ID abc",
            "CLIENT KILL ID 0",
            "CLIENT KILL ID 99999",
            "CLIENT KILL FOO bar",
            "CLIENT KILL 1.2.3.4:5",
            "CLIENT KILL ADDR 1.2.3.4:5 SKIPME",
            "CLIENT KILL ADDR 1.2.3.4:5 SKIPME yes",
            "CLIENT KILL ADDR 1.2.3.4:5 SKIPME maybe",
            "CLIENT KILL TYPE foo",
            "CLIENT KILL USER nosuchuser",
            "CLIENT LIST x",
            "CLIENT LIST TYPE foo",
            "CLIENT LIST ID x",
            "CLIENT INFO x",
            "CLIENT ID x",
            "CLIENT UNPAUSE",
            "CLIENT UNPAUSE x",
            "CLIENT HELP x",
            "OBJECT HELP x",
            "CLIENT GETNAME x",
            "CLIENT REPLY ON x",
        ],
    ),
    (
        "auth_nopass",
        &[
            "AUTH x",
            "AUTH default x",
            "AUTH nosuchuser x",
            "AUTH a b c",
            "mapkeys:HELLO 2 AUTH default anything",
            "HELLO 2 AUTH nosuchuser x",
            "HELLO 2 AUTH default",
            "HELLO 2 SETNAME",
            "HELLO 2 SETNAME a AUTH",
            "ACL WHOAMI",
            "ACL WHOAMI x",
        ],
    ),
    (
        "reset",
        &["CLIENT SETNAME someone", "MULTI", "SET {}a 1", "RESET", "GET {}a", "CLIENT GETNAME", "EXEC", "RESET x"],
    ),
    (
        "multi_errors",
        &[
            "EXEC x",
            "WATCH {}a",
            "SET {}a 1",
            "EXEC x",
            "MULTI",
            "EXEC",
            "MULTI",
            "EXEC x",
            "EXEC",
            "MULTI",
            "DISCARD x",
            "DISCARD",
            "MULTI",
            "GET {}a",
            "WATCH {}a",
            "UNWATCH",
            "EXEC",
            "MULTI",
            "PING",
            "MULTI",
            "EXEC",
            "MULTI",
            "SET {}a 1 EX -1",
            "GETEX {}a EX 0",
            "COPY {}a {}a",
            "SETRANGE {}a -1 x",
            "LCS {}a {}b FOO",
            "EXEC",
            "MULTI",
            "OBJECT foo {}a",
            "CLIENT nosuch",
            "COMMAND nosuch",
            "EXEC",
            "MULTI",
            "WATCH",
            "EXEC",
            "MULTI",
            "SET {}a 1",
            "DISCARD x",
            "EXEC",
            "GET {}a",
        ],
    ),
    (
        "binary",
        &[
            "SET {}\\x00\\xff \\x00\\r\\n\\xff",
            "GET {}\\x00\\xff",
            "STRLEN {}\\x00\\xff",
            "sorted:KEYS {}\\x00*",
            "ECHO \\r\\n",
            "PING \\x00",
            "GET \\x01",
            "FOO \\r\\n",
        ],
    ),
    // Every command both servers know, and every subcommand (MEMBERS is
    // rumor's; CLIENT, CONFIG, ACL and COMMAND hold subcommands that one
    // of the two lacks, and are compared subcommand by subcommand).
    (
        "command_info_each",
        &[
            "cmdinfo:COMMAND INFO get",
            "cmdinfo:COMMAND INFO set",
            "cmdinfo:COMMAND INFO mget",
            "cmdinfo:COMMAND INFO mset",
            "cmdinfo:COMMAND INFO msetnx",
            "cmdinfo:COMMAND INFO del",
            "cmdinfo:COMMAND INFO exists",
            "cmdinfo:COMMAND INFO ping",
            "cmdinfo:COMMAND INFO expire",
            "cmdinfo:COMMAND INFO pexpire",
            "cmdinfo:COMMAND INFO expireat",
            "cmdinfo:COMMAND INFO pexpireat",
            "cmdinfo:COMMAND INFO ttl",
            "cmdinfo:COMMAND INFO pttl",
            "cmdinfo:COMMAND INFO persist",
            "cmdinfo:COMMAND INFO expiretime",
            "cmdinfo:COMMAND INFO pexpiretime",
            "cmdinfo:COMMAND INFO type",
            "cmdinfo:COMMAND INFO unlink",
            "cmdinfo:COMMAND INFO rename",
            "cmdinfo:COMMAND INFO renamenx",
            "cmdinfo:COMMAND INFO copy",
            "cmdinfo:COMMAND INFO touch",
            "cmdinfo:COMMAND INFO setnx",
            "cmdinfo:COMMAND INFO setex",
            "cmdinfo:COMMAND INFO psetex",
            "cmdinfo:COMMAND INFO getset",
            "cmdinfo:COMMAND INFO getdel",
            "cmdinfo:COMMAND INFO getex",
            "cmdinfo:COMMAND INFO append",
            "cmdinfo:COMMAND INFO setrange",
            "cmdinfo:COMMAND INFO strlen",
            "cmdinfo:COMMAND INFO getrange",
            "cmdinfo:COMMAND INFO substr",
            "cmdinfo:COMMAND INFO echo",
            "cmdinfo:COMMAND INFO dbsize",
            "cmdinfo:COMMAND INFO scan",
            "cmdinfo:COMMAND INFO keys",
            "cmdinfo:COMMAND INFO info",
            "cmdinfo:COMMAND INFO auth",
            "cmdinfo:COMMAND INFO hello",
            "cmdinfo:COMMAND INFO select",
            "cmdinfo:COMMAND INFO setbit",
            "cmdinfo:COMMAND INFO getbit",
            "cmdinfo:COMMAND INFO bitcount",
            "cmdinfo:COMMAND INFO lcs",
            "cmdinfo:COMMAND INFO bitpos",
            "cmdinfo:COMMAND INFO bitop",
            "cmdinfo:COMMAND INFO object",
            "cmdinfo:COMMAND INFO randomkey",
            "cmdinfo:COMMAND INFO multi",
            "cmdinfo:COMMAND INFO exec",
            "cmdinfo:COMMAND INFO discard",
            "cmdinfo:COMMAND INFO watch",
            "cmdinfo:COMMAND INFO unwatch",
            "cmdinfo:COMMAND INFO reset",
            "cmdinfo:COMMAND INFO time",
            "cmdinfo:COMMAND INFO quit",
            "cmdinfo:COMMAND INFO client|setname",
            "cmdinfo:COMMAND INFO client|getname",
            "cmdinfo:COMMAND INFO client|id",
            "cmdinfo:COMMAND INFO client|info",
            "cmdinfo:COMMAND INFO client|list",
            "cmdinfo:COMMAND INFO client|kill",
            "cmdinfo:COMMAND INFO client|reply",
            "cmdinfo:COMMAND INFO client|no-evict",
            "cmdinfo:COMMAND INFO client|unpause",
            "cmdinfo:COMMAND INFO client|help",
            "cmdinfo:COMMAND INFO object|encoding",
            "cmdinfo:COMMAND INFO object|refcount",
            "cmdinfo:COMMAND INFO object|idletime",
            "cmdinfo:COMMAND INFO object|freq",
            "cmdinfo:COMMAND INFO object|help",
            "cmdinfo:COMMAND INFO command|count",
            "cmdinfo:COMMAND INFO command|list",
            "cmdinfo:COMMAND INFO command|docs",
            "cmdinfo:COMMAND INFO command|info",
            "cmdinfo:COMMAND INFO command|help",
            "cmdinfo:COMMAND INFO config|get",
            "cmdinfo:COMMAND INFO config|set",
            "cmdinfo:COMMAND INFO config|resetstat",
            "cmdinfo:COMMAND INFO acl|cat",
            "cmdinfo:COMMAND INFO acl|whoami",
            "cmdinfo:COMMAND INFO acl|help",
            "cmdinfo:COMMAND INFO acl|list",
            "cmdinfo:COMMAND INFO acl|users",
            "cmdinfo:COMMAND INFO acl|getuser",
            "cmdinfo:COMMAND INFO acl|load",
            "cmdinfo:COMMAND INFO acl|setuser",
            "cmdinfo:COMMAND INFO acl|deluser",
            "cmdinfo:COMMAND INFO acl|save",
            "cmdinfo:COMMAND INFO get CLIENT|GETNAME nosuch client|nosuch get|x",
        ],
    ),
    (
        "acl_arity",
        &[
            "ACL SAVE x",
            "ACL DELUSER",
            "ACL SETUSER",
            "ACL GETUSER",
            "ACL WHOAMI x",
            "ACL LIST x",
            "ACL USERS x",
            "ACL LOAD x",
            "ACL HELP x",
            "ACL FOO",
        ],
    ),
    (
        "echoed_bytes",
        &[
            "SET {}a v",
            "EXPIRE {}a 10 \\xff",
            "CLIENT \\xff",
            "CLIENT LIST TYPE \\xfe",
            "HELLO 3 \\xff",
            "ACL CAT \\xff",
            "MULTI",
            "EXEC \\xff",
            "COMMAND \\xff\\xfe",
        ],
    ),
    // LCS's table of (4101 x 4101) u32 passes a proto-max-bulk-len of 64 MiB.
    (
        "lcs_memory",
        &[
            "SETRANGE {}a 4100 x",
            "SETRANGE {}b 4100 y",
            "LCS {}a {}b",
            "LCS {}a {}b LEN",
            "LCS {}a {}b IDX",
            "SETRANGE {}c 10 x",
            "LCS {}a {}c LEN",
        ],
    ),
    ("ping_echo", &["PING", "PING hello", "PING a b", "ECHO hello", "ECHO ''", "ECHO", "ECHO a b"]),
    (
        "select",
        &["SELECT 0", "SELECT x", "SELECT -1", "SELECT 16", "SELECT", "SELECT 0 1", "SELECT 9999999999999999999"],
    ),
    (
        "hello",
        &[
            "mapkeys:HELLO",
            "mapkeys:HELLO 2",
            "HELLO 4",
            "HELLO x",
            "HELLO 1",
            "HELLO 3 FOO",
            "HELLO 3 AUTH default",
            "mapkeys:HELLO 2 SETNAME myname",
            "CLIENT GETNAME",
            "HELLO 2 SETNAME bad\\sname",
            "mapkeys:HELLO 3",
            "mapkeys:HELLO 2",
            "mapkeys:HELLO 2 AUTH default wrong",
        ],
    ),
    (
        "client_name",
        &[
            "CLIENT GETNAME",
            "CLIENT SETNAME myname",
            "CLIENT GETNAME",
            "CLIENT SETNAME ''",
            "CLIENT GETNAME",
            "CLIENT SETNAME a\\x01",
            "CLIENT SETNAME",
            "CLIENT SETNAME a b",
            "CLIENT GETNAME x",
            "CLIENT FOO",
            "CLIENT",
        ],
    ),
    (
        "client_reply",
        &[
            "noreply:CLIENT REPLY OFF",
            "noreply:SET {}a 1",
            "noreply:GET {}a",
            "CLIENT REPLY ON",
            "GET {}a",
            "noreply:CLIENT REPLY SKIP",
            "noreply:GET {}a",
            "PING",
            "CLIENT REPLY FOO",
            "CLIENT REPLY",
            "CLIENT REPLY on",
        ],
    ),
    (
        "client_no_evict",
        &["CLIENT NO-EVICT ON", "CLIENT NO-EVICT OFF", "CLIENT NO-EVICT FOO", "CLIENT NO-EVICT", "CLIENT NO-EVICT on"],
    ),
    ("time", &["shape:TIME", "TIME x"]),
    (
        "command_info",
        &[
            "COMMAND INFO get",
            "COMMAND INFO nosuchcommand",
            "COMMAND INFO GET",
            "COMMAND INFO get nosuchcommand get",
            "COMMAND FOO",
            "COMMAND COUNT x",
            "shape:COMMAND COUNT",
            "COMMAND LIST FILTERBY",
            "COMMAND LIST FILTERBY FOO x",
            "COMMAND LIST FILTERBY ACLCAT nosuchcategory",
            "COMMAND HELP x",
        ],
    ),
    ("unknown", &["FOO", "FOO a b", "foo a b c d e f g h", "SET{}", "GETT {}a", "CLIENT FOO bar"]),
    // Only the refusals: a SHUTDOWN that works would stop either server.
    (
        "shutdown_refusals",
        &[
            "SHUTDOWN ABORT",
            "SHUTDOWN NOSAVE SAVE",
            "SHUTDOWN SAVE NOSAVE NOW",
            "SHUTDOWN ABORT NOW",
            "SHUTDOWN now now abort",
            "SHUTDOWN bogus",
            "MULTI",
            "SHUTDOWN",
            "EXEC",
            "cmdinfo:COMMAND INFO shutdown",
        ],
    ),
    // Payloads redis-server 7.0 answered to DUMP: "hello", 123 (an integer
    // encoding) and 40 a's (LZF). Each server's own DUMP output is
    // compared in `dump_payloads_restore_across_rumor_and_redis`.
    (
        "restore",
        &[
            "RESTORE {}a 0 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a",
            "GET {}a",
            "TTL {}a",
            "RESTORE {}a 0 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a",
            "RESTORE {}a 0 \\x00\\xc0\\x7b\\x0a\\x00H\\xe2S\\xe1\\x00zg\\xb9 REPLACE",
            "GET {}a",
            "RESTORE {}b 0 \\x00\\xc3\\x09\\x28\\x01aa\\xe0\\x1b\\x00\\x01aa\\x0a\\x00\\xcf\\x09\\x2f\\xaa\\xae\\x25\\x83\\x1d",
            "GET {}b",
            "RESTORE {}c 100000 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a",
            "near:PTTL {}c",
            "RESTORE {}d 1 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a ABSTTL",
            "EXISTS {}d",
            "RESTORE {}a 1 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a ABSTTL REPLACE",
            "EXISTS {}a",
            "DUMP {}missing",
            "RESTORE {}e -1 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a",
            "RESTORE {}e x \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a",
            "RESTORE {}e 0 abc",
            "RESTORE {}e 0 hello\\smoto\\smoto\\sblah\\sblah",
            "RESTORE {}e 0 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a IDLETIME 1 FREQ 2",
            "RESTORE {}e 0 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a FREQ 2 IDLETIME 1",
            "RESTORE {}e 0 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a FREQ 300",
            "RESTORE {}e 0 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a FREQ -1",
            "RESTORE {}e 0 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a IDLETIME -1",
            "RESTORE {}e 0 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a IDLETIME x",
            "RESTORE {}e 0 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a IDLETIME",
            "RESTORE {}e 0 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a bogus",
            "RESTORE {}e 0 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a REPLACE ABSTTL IDLETIME 5",
            "GET {}e",
            "SET {}f v",
            "RESTORE {}f -1 abc",
            "RESTORE {}f 0 abc REPLACE",
            "RESTORE {}f 0 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a REPLACE FREQ 3",
            "GET {}f",
            "RESTORE {}g",
            "DUMP",
            "RESTORE {}h 9223372036854775807 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a",
            "EXISTS {}h",
            "RESTORE {}h 9223372036854775807 \\x00\\x05hello\\x0a\\x00cr\\xdfve4\\s\\x0a ABSTTL",
            "PEXPIRETIME {}h",
            "cmdinfo:COMMAND INFO dump restore",
        ],
    ),
];

/// Replies that differ by design: (name, setup commands that agree, the
/// command, rumor's reply in RESP2, in RESP3, why). A reply `contains:…`
/// is asserted to contain the text rather than to equal it. Each must
/// still differ from Redis's: one that comes to agree belongs in [`CASES`].
type KnownDifference = (&'static str, &'static [&'static str], &'static str, &'static str, &'static str, &'static str);
const KNOWN_DIFFERENCES: &[KnownDifference] = &[
    (
        "kd_select",
        &[],
        "SELECT 1",
        "-ERR DB index is out of range\r\n",
        "-ERR DB index is out of range\r\n",
        "one database: the mesh replicates one keyspace",
    ),
    (
        "kd_copy_db",
        &["SET {}a 1"],
        "COPY {}a {}b DB 1",
        "-ERR DB index is out of range\r\n",
        "-ERR DB index is out of range\r\n",
        "one database, as SELECT",
    ),
    (
        "kd_client_kill_maxage",
        &[],
        "CLIENT KILL MAXAGE 999999",
        ":0\r\n",
        ":0\r\n",
        "a filter of Redis 7.4's CLIENT KILL, a syntax error to redis-server 7.0",
    ),
    (
        "kd_incr",
        &["SET {}n 1"],
        "INCR {}n",
        "-ERR unknown command 'INCR', with args beginning with: '{}n' \r\n",
        "-ERR unknown command 'INCR', with args beginning with: '{}n' \r\n",
        "no counters yet: a merge of concurrent increments needs its own type",
    ),
    (
        "kd_hash",
        &[],
        "HSET {}h f v",
        "-ERR unknown command 'HSET', with args beginning with: '{}h' 'f' 'v' \r\n",
        "-ERR unknown command 'HSET', with args beginning with: '{}h' 'f' 'v' \r\n",
        "values are strings only: no hashes, lists, sets or sorted sets",
    ),
    (
        "kd_encoding_in_place",
        &["SETRANGE {}g 0 abc"],
        "OBJECT ENCODING {}g",
        "$6\r\nembstr\r\n",
        "$6\r\nembstr\r\n",
        "an entry keeps no record of how its value was built (it is what travels between nodes), so \
         OBJECT ENCODING answers what Redis answers for a SET value; Redis says raw after APPEND, SETRANGE, \
         SETBIT or BITOP",
    ),
    (
        "kd_refcount_after_copy",
        &["SET {}a 7", "COPY {}a {}b"],
        "OBJECT REFCOUNT {}b",
        ":2147483647\r\n",
        ":2147483647\r\n",
        "as OBJECT ENCODING: the answer is Redis's for a SET of the value; Redis's COPY duplicates a shared \
         integer into an object of its own",
    ),
    (
        "kd_client_info_fields",
        &[],
        "CLIENT INFO",
        "contains: multi=-1 watch=0 qbuf=",
        "contains: multi=-1 watch=0 qbuf=",
        "Redis 7.2's fields (watch, lib-name, lib-ver), which redis-server 7.0 lacks",
    ),
    (
        "kd_object_help",
        &[],
        "OBJECT HELP",
        "contains:+    Return the seconds since the <key> was last written (rumor keeps no read times).\r\n",
        "contains:+    Return the seconds since the <key> was last written (rumor keeps no read times).\r\n",
        "OBJECT IDLETIME counts from the last write, not the last access: reads do not write",
    ),
    (
        "kd_command_help",
        &[],
        "COMMAND HELP",
        "contains:+    Return an empty map: this server keeps no documentation text.\r\n",
        "contains:+    Return an empty map: this server keeps no documentation text.\r\n",
        "the help lists what this server's COMMAND does",
    ),
    ("kd_command_docs", &[], "COMMAND DOCS get", "*0\r\n", "%0\r\n", "no documentation text is kept"),
    (
        "kd_info",
        &[],
        "INFO server",
        "contains:redis_version:7.2.0\r\n",
        "contains:redis_version:7.2.0\r\n",
        "INFO describes this node (and rumor's Membership and Gossip sections); the version is fixed",
    ),
    (
        "kd_client_no_touch",
        &[],
        "CLIENT NO-TOUCH ON",
        "+OK\r\n",
        "+OK\r\n",
        "a Redis 7.2 subcommand (rumor answers as 7.2.0), unknown to redis-server 7.0",
    ),
    (
        "kd_client_setinfo",
        &[],
        "CLIENT SETINFO lib-name parity",
        "+OK\r\n",
        "+OK\r\n",
        "a Redis 7.2 subcommand, unknown to redis-server 7.0",
    ),
    (
        "kd_bitcount_missing_key",
        &[],
        "BITCOUNT {}z 0",
        "-ERR syntax error\r\n",
        "-ERR syntax error\r\n",
        "Redis 7.2 checks the arguments before looking up the key (redis#11734); 7.0 answers 0 for a missing key",
    ),
    (
        "kd_bitpos_missing_key",
        &[],
        "BITPOS {}z 1 x",
        "-ERR value is not an integer or out of range\r\n",
        "-ERR value is not an integer or out of range\r\n",
        "as BITCOUNT: Redis 7.2 checks the arguments first; 7.0 answers -1 for a missing key",
    ),
    (
        "kd_scan_negative_cursor",
        &[],
        "SCAN -1",
        "-ERR invalid cursor\r\n",
        "-ERR invalid cursor\r\n",
        "rumor's cursors are its own and never negative; Redis 7.0 reads -1 with strtoul, as 2^64-1",
    ),
    (
        "kd_command_info_debug",
        &[],
        "COMMAND INFO debug",
        "contains:$11\r\ndebug|sleep\r\n",
        "contains:$11\r\ndebug|sleep\r\n",
        "DEBUG knows SLEEP only, listed as its subcommand; Redis lists none",
    ),
    (
        "kd_command_getkeys",
        &[],
        "COMMAND GETKEYS get {}a",
        "-ERR unknown subcommand 'GETKEYS'. Try COMMAND HELP.\r\n",
        "-ERR unknown subcommand 'GETKEYS'. Try COMMAND HELP.\r\n",
        "not implemented: the key positions are in COMMAND INFO",
    ),
    (
        "kd_members",
        &[],
        "COMMAND LIST FILTERBY PATTERN members",
        "*1\r\n$7\r\nmembers\r\n",
        "*1\r\n$7\r\nmembers\r\n",
        "MEMBERS is rumor's own: the mesh's membership as this node sees it",
    ),
];

/// Raw request bytes, inline and array forms, protocol errors included,
/// whose whole output must be the same from both servers: every reply, and
/// whether the connection is closed after them. Each is followed by an
/// inline `ECHO end-of-raw` (see [`raw_exchange`]), so each must leave the
/// parser between requests.
const RAW_CASES: &[&[u8]] = &[
    b"PING\r\n",
    b"PING\n",
    b"  PING  \r\n",
    b"\r\n\r\nPING\r\n",
    b"*0\r\nPING\r\n",
    b"*-1\r\nPING\r\n",
    b"ECHO \"a b\"\r\n",
    b"ECHO 'a\\'b'\r\n",
    b"ECHO \"a\\x41\\n\\t\\\\\"\r\n",
    b"ECHO a\"b c\"\r\n",
    b"ECHO \"\"\r\n",
    b"\"PING\"\r\n",
    b"SET raw:k \"a\\nb\"\r\nGET raw:k\r\n",
    b"$3\r\nfoo\r\n",
    b"+PING\r\n",
    b":1\r\n",
    b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n",
    b"*1\r\n$-5\r\n",
    b"*1\r\n$x\r\n",
    b"*x\r\n",
    b"*01\r\n$4\r\nPING\r\n",
    b"*+1\r\n$4\r\nPING\r\n",
    b"*1 \r\n$4\r\nPING\r\n",
    b"*1\r\n$01\r\nx\r\n",
    b"*1\r\n$+4\r\nPING\r\n",
    b"*1\r\n:1\r\n",
    b"*1\r\n+PING\r\n",
    b"*3000000000\r\n",
    b"*1\r\n$3000000000\r\n",
    b"*1\r\n$4\r\nPING\r\n*1\r\n$-1\r\n",
    b"ECHO \"unterminated\r\n",
    b"ECHO \"a\"b\r\n",
];

/// Raw requests answered differently by design: (bytes, rumor's whole
/// output, why).
const RAW_KNOWN_DIFFERENCES: &[(&[u8], &[u8], &str)] = &[(
    b"*1\r\n$4\r\nPINGxx",
    b"-ERR Protocol error: bulk data not followed by CRLF\r\n<closed>",
    "rumor checks the CRLF after a bulk's bytes; Redis skips two bytes unread",
)];

/// Sends `bytes` then an inline `ECHO end-of-raw`, and reads until that
/// echo's reply or the server closing (marked `<closed>`), within the
/// read timeout.
fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let sentinel = b"$10\r\nend-of-raw\r\n";
    let mut sent = bytes.to_vec();
    sent.extend_from_slice(b"ECHO end-of-raw\r\n");
    // The server may close before reading everything (a protocol error).
    let _ = stream.write_all(&sent);
    let mut out = Vec::new();
    let mut buf = [0; 4096];
    while !out.ends_with(sentinel) {
        match std::io::Read::read(&mut stream, &mut buf) {
            Ok(0) => {
                out.extend_from_slice(b"<closed>");
                break;
            }
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                out.extend_from_slice(b"<closed>");
                break;
            }
            Err(e) => panic!("reading from {addr} after {:?}: {e}", String::from_utf8_lossy(&out)),
        }
    }
    out
}

/// rumor's `proto-max-bulk-len`, for the Redis it is compared with.
fn max_bulk(rumor: &Node) -> String {
    let mut con = Con::open(rumor.client).unwrap();
    let raw = con.call(&["CONFIG", "GET", "proto-max-bulk-len"]).unwrap();
    let Value::Agg(_, items) = parse(&raw) else { panic!("CONFIG GET: {raw:?}") };
    let [_, Value::Bulk(_, Some(value))] = items.as_slice() else { panic!("CONFIG GET: {raw:?}") };
    String::from_utf8(value.clone()).unwrap()
}

/// Each server restores the other's DUMP of the same values, and reads
/// back the value: text, integers in each encoding and past them, binary,
/// compressible values (Redis compresses those past 20 bytes with LZF),
/// and large ones.
#[test]
fn dump_payloads_restore_across_rumor_and_redis() {
    let rumor = Node::start("dump", &[]);
    let Some(redis) = Redis::start(&max_bulk(&rumor)) else {
        assert!(!redis_required(), "redis-server is not installed and RUMOR_REQUIRE_REDIS=1");
        common::report("SKIPPED dump/restore against redis: redis-server is not installed");
        return;
    };
    let mut noisy = Vec::with_capacity(300_000);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    while noisy.len() < 300_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        noisy.push(if seed.is_multiple_of(3) { b'x' } else { seed as u8 });
    }
    let values: Vec<Vec<u8>> = [
        &b"hello"[..],
        b"",
        b"0",
        b"-128",
        b"127",
        b"-32768",
        b"65535",
        b"-2147483648",
        b"2147483648",
        b"007",
        b"+1",
        b"1.5",
        b"a\r\nb\x00c",
        &[b'a'; 40],
        &[0u8; 20_000],
        b"the quick brown fox jumps over the lazy dog, the quick brown fox jumps over the lazy dog",
        &noisy,
    ]
    .into_iter()
    .map(<[u8]>::to_vec)
    .collect();
    let (mut r, mut m) = (Con::open(redis.addr).unwrap(), Con::open(rumor.client).unwrap());
    let bulk = |raw: Vec<u8>| -> Vec<u8> {
        let Value::Bulk(_, Some(bytes)) = parse(&raw) else {
            panic!("not a bulk: {:?}", String::from_utf8_lossy(&raw))
        };
        bytes
    };
    for (i, value) in values.iter().enumerate() {
        let key = format!("dump:{i}");
        let copy = format!("dump:{i}:copy");
        for con in [&mut r, &mut m] {
            assert_eq!(con.call(&[b"SET", key.as_bytes(), value]).unwrap(), b"+OK\r\n");
        }
        let from_redis = bulk(r.call(&["DUMP", &key]).unwrap());
        let from_rumor = bulk(m.call(&["DUMP", &key]).unwrap());
        for (con, payload, who) in
            [(&mut m, &from_redis, "rumor restores Redis's"), (&mut r, &from_rumor, "Redis restores rumor's")]
        {
            let restored = con.call(&[b"RESTORE", copy.as_bytes(), b"0", payload]).unwrap();
            assert_eq!(restored, b"+OK\r\n", "{who} DUMP of value {i}: {}", String::from_utf8_lossy(&restored));
            assert_eq!(&bulk(con.call(&["GET", &copy]).unwrap()), value, "{who} DUMP of value {i}");
        }
    }
}

fn redis_required() -> bool {
    std::env::var("RUMOR_REQUIRE_REDIS").is_ok_and(|v| v == "1")
}

#[test]
fn replies_match_redis_7() {
    let rumor = Node::start("parity", &[]);
    let Some(redis) = Redis::start(&max_bulk(&rumor)) else {
        assert!(!redis_required(), "redis-server is not installed and RUMOR_REQUIRE_REDIS=1");
        common::report("SKIPPED redis_parity: redis-server is not installed (apt-get install redis-server)");
        return;
    };
    let version = {
        let mut con = Con::open(redis.addr).unwrap();
        String::from_utf8_lossy(&con.call(&["INFO", "server"]).unwrap()).to_string()
    };
    assert!(version.contains("redis_version:7."), "a Redis 7 server:\n{version}");

    let mut names = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for (name, steps) in CASES {
        assert!(names.insert(*name), "case names are unique: {name}");
        for protocol in [2, 3] {
            let prefix = format!("{name}:{protocol}:");
            let (mut a, mut b) = pair(&redis, &rumor, protocol);
            for text in steps.iter().copied().chain(["ECHO end-of-case"]) {
                let (cmp, args) = step(text, &prefix);
                let x = run(&mut a, cmp, &args).unwrap_or_else(|e| panic!("redis, {name}, `{text}`: {e}"));
                let y = run(&mut b, cmp, &args).unwrap_or_else(|e| panic!("rumor, {name}, `{text}`: {e}"));
                if !agree(cmp, &x, &y) {
                    failures.push(format!(
                        "{name} RESP{protocol} `{text}`:\n    redis: {}\n    rumor: {}",
                        show(&x),
                        show(&y)
                    ));
                }
            }
        }
    }
    for bytes in RAW_CASES {
        let (x, y) = (raw_exchange(redis.addr, bytes), raw_exchange(rumor.client, bytes));
        if x != y {
            failures.push(format!(
                "raw {:?}:\n    redis: {:?}\n    rumor: {:?}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(&x),
                String::from_utf8_lossy(&y)
            ));
        }
    }
    for (bytes, expected, reason) in RAW_KNOWN_DIFFERENCES {
        let (x, y) = (raw_exchange(redis.addr, bytes), raw_exchange(rumor.client, bytes));
        if y != *expected || x == y {
            failures.push(format!(
                "known raw difference {:?} ({reason}): expected rumor {:?}, got {:?}; redis {:?}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(expected),
                String::from_utf8_lossy(&y),
                String::from_utf8_lossy(&x)
            ));
        }
    }
    for (name, setup, command, resp2, resp3, reason) in KNOWN_DIFFERENCES {
        assert!(names.insert(*name), "case names are unique: {name}");
        for (protocol, expected) in [(2, resp2), (3, resp3)] {
            let prefix = format!("{name}:{protocol}:");
            let (mut a, mut b) = pair(&redis, &rumor, protocol);
            for text in setup.iter() {
                let (cmp, args) = step(text, &prefix);
                let x = run(&mut a, cmp, &args).unwrap();
                let y = run(&mut b, cmp, &args).unwrap();
                assert_eq!(x, y, "{name}: setup `{text}` agrees");
            }
            let (_, args) = step(command, &prefix);
            let x = a.call(&args).unwrap();
            let y = b.call(&args).unwrap();
            let expected = expected.replace("{}", &prefix);
            let as_expected = match expected.strip_prefix("contains:") {
                Some(part) => y.windows(part.len()).any(|w| w == part.as_bytes()),
                None => y == expected.as_bytes(),
            };
            if !as_expected {
                failures.push(format!(
                    "known difference {name} RESP{protocol} `{command}` ({reason}) changed:\n    expected rumor: {expected:?}\n    rumor: {:?}",
                    String::from_utf8_lossy(&y)
                ));
            } else if x == y {
                failures.push(format!(
                    "known difference {name} RESP{protocol} `{command}` ({reason}) now agrees with redis: move it to CASES"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} divergences from redis-server:\n{}", failures.len(), failures.join("\n"));
}
