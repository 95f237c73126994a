//! Raw RESP bytes against a real `rumor serve` process: both command forms,
//! pipelining, Redis's error wording, and bad input closing only its own
//! connection. (`src/resp/tests.rs` covers every command and limit in-process.)
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Node;

fn connect(node: &Node) -> TcpStream {
    let stream = TcpStream::connect(node.client).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
}

/// Reads until `expected.len()` bytes arrived, and compares.
fn expect(stream: &mut TcpStream, expected: &[u8]) {
    let mut got = vec![0u8; expected.len()];
    stream.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(expected));
}

fn expect_closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    // read_to_end returns once the server closed; a hang fails on the timeout.
    stream.read_to_end(&mut rest).unwrap();
}

#[test]
fn a_real_node_speaks_resp() {
    let node = Node::start("proto", &[]);
    let mut c = connect(&node);
    c.write_all(b"PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nGET k\r\n").unwrap();
    expect(&mut c, b"+PONG\r\n+OK\r\n$5\r\nhello\r\n");

    let mut batch = Vec::new();
    for i in 0..5_000 {
        batch.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n$7\r\nkey{i:04}\r\n$1\r\nv\r\n").as_bytes());
    }
    batch.extend_from_slice(b"DBSIZE\r\n");
    c.write_all(&batch).unwrap();
    let mut replies = vec![0u8; b"+OK\r\n".len() * 5_000];
    c.read_exact(&mut replies).unwrap();
    assert!(replies.chunks(5).all(|r| r == b"+OK\r\n"));
    expect(&mut c, b":5001\r\n");

    c.write_all(b"FOO bar\r\nGET\r\n").unwrap();
    expect(&mut c, b"-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n");
    expect(&mut c, b"-ERR wrong number of arguments for 'get' command\r\n");

    let mut other = connect(&node);
    c.write_all(b"*1\r\n$-5\r\n").unwrap();
    expect(&mut c, b"-ERR Protocol error: invalid bulk length\r\n");
    expect_closed(&mut c);
    other.write_all(b"PING\r\n").unwrap();
    expect(&mut other, b"+PONG\r\n");
}
