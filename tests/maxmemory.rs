//! `maxmemory`: a node over it refuses commands that add data with Redis's
//! `-OOM` error, while reads, deletes and its peers' writes go on; once
//! deletes bring it back under, writes are taken again.

#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Node, wait_for};

const OOM: &str = "-OOM command not allowed when used memory > 'maxmemory'.";
/// 1 MiB, as `--maxmemory 1mb` says.
const MAXMEMORY: u64 = 1 << 20;
const VALUE_BYTES: usize = 1_000;
/// More SETs than 1 MiB of 1,000-byte values could ever take.
const FILL_MAX: usize = 10_000;

/// A raw RESP connection: the error line exactly as the node sends it.
struct Raw(BufReader<TcpStream>);

impl Raw {
    fn connect(node: &Node) -> Raw {
        let stream = TcpStream::connect(node.client).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        Raw(BufReader::new(stream))
    }

    /// Sends one command; returns its reply's first line, without CRLF.
    fn command(&mut self, args: &[&[u8]]) -> String {
        let mut frame = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            frame.extend_from_slice(arg);
            frame.extend_from_slice(b"\r\n");
        }
        self.0.get_mut().write_all(&frame).expect("send");
        let mut line = String::new();
        self.0.read_line(&mut line).expect("reply");
        if let Some(len) = line.strip_prefix('$').and_then(|l| l.trim().parse::<usize>().ok()) {
            let mut body = vec![0; len + 2];
            std::io::Read::read_exact(&mut self.0, &mut body).expect("bulk");
        }
        line.trim_end().to_owned()
    }
}

fn used_memory(node: &Node) -> u64 {
    node.info_field("memory", "used_memory").parse().expect("used_memory is a number")
}

#[test]
fn over_maxmemory_writes_are_refused_while_reads_deletes_and_peers_writes_go_on() {
    let full = Node::start_with("full", &[], &["--maxmemory", "1mb"]);
    let peer = Node::start("peer", &[full.gossip]);
    let nodes = [full, peer];
    common::wait_all_alive(&nodes, Duration::from_secs(20));
    let [full, peer] = &nodes;
    let value = vec![b'v'; VALUE_BYTES];
    let mut raw = Raw::connect(full);

    let mut stored = 0;
    let refusal = loop {
        assert!(stored < FILL_MAX, "{FILL_MAX} SETs of {VALUE_BYTES} bytes were all taken under 1mb");
        let reply = raw.command(&[b"SET", format!("fill:{stored}").as_bytes(), &value]);
        if reply != "+OK" {
            break reply;
        }
        stored += 1;
    };
    assert_eq!(refusal, OOM);
    common::report(&format!("1mb took {stored} SETs of {VALUE_BYTES}-byte values"));
    assert!(stored > 500, "only {stored} values fit in 1 MiB");
    assert!(used_memory(full) > MAXMEMORY);
    assert_eq!(full.info_field("memory", "maxmemory"), MAXMEMORY.to_string());
    assert_eq!(full.info_field("memory", "maxmemory_human"), "1.00M");
    assert_eq!(full.info_field("memory", "maxmemory_policy"), "noeviction");
    let config: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxmemory").query(&mut full.connect()).unwrap();
    assert_eq!(config, ["maxmemory", &MAXMEMORY.to_string()]);

    // Every command that adds data is refused; reads and EXPIRE go on.
    assert_eq!(raw.command(&[b"MSET", b"a", b"1"]), OOM);
    assert_eq!(raw.command(&[b"SET", b"fill:0", b"smaller"]), OOM, "even an overwrite");
    assert_eq!(raw.command(&[b"GET", b"fill:0"]), format!("${VALUE_BYTES}"));
    assert_eq!(raw.command(&[b"EXISTS", b"fill:1"]), ":1");
    assert_eq!(raw.command(&[b"EXPIRE", b"fill:1", b"1000"]), ":1");

    // A peer's write still arrives: the full node stays a faithful replica.
    let mut peer_con = peer.connect();
    let () = redis::cmd("SET").arg("from-peer").arg(&value).query(&mut peer_con).unwrap();
    let mut con = full.connect();
    wait_for("the peer's write on the full node", Duration::from_secs(10), || {
        let got: Option<Vec<u8>> = redis::cmd("GET").arg("from-peer").query(&mut con).unwrap();
        got.filter(|v| *v == value)
    });

    // Deleting half the values brings it under: writes are taken again.
    for i in (0..stored).step_by(2) {
        assert_eq!(raw.command(&[b"DEL", format!("fill:{i}").as_bytes()]), ":1");
    }
    assert!(used_memory(full) < MAXMEMORY, "used_memory {} after the deletes", used_memory(full));
    assert_eq!(raw.command(&[b"SET", b"again", b"taken"]), "+OK");
    assert_eq!(raw.command(&[b"GET", b"again"]), "$5");
    // And the write reaches the peer, as every write does.
    wait_for("the full node's new write on the peer", Duration::from_secs(10), || {
        let got: Option<String> = redis::cmd("GET").arg("again").query(&mut peer_con).unwrap();
        got.filter(|v| v == "taken")
    });
}
