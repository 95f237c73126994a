//! `CONFIG SET` on a running node: the new limits hold for the clients
//! already connected and for those that come after, without a restart.

#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Node, wait_for};

const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
const MAX_CLIENTS: &str = "-ERR max number of clients reached";

fn config_set(con: &mut redis::Connection, name: &str, value: &str) {
    let () = redis::cmd("CONFIG").arg("SET").arg(name).arg(value).query(con).unwrap();
}

fn config_get(con: &mut redis::Connection, name: &str) -> String {
    let pair: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query(con).unwrap();
    assert_eq!(pair.len(), 2, "{name}: {pair:?}");
    pair[1].clone()
}

/// The clients the node counts as connected, asked on `con`.
fn connected(con: &mut redis::Connection) -> u64 {
    let text: String = redis::cmd("INFO").arg("clients").query(con).unwrap();
    text.lines().find_map(|l| l.strip_prefix("connected_clients:")).expect("connected_clients").trim().parse().unwrap()
}

/// A raw connection's first line from the node, if it sends one
/// unasked (a refusal) within 5 s; `None` if it waits for a command.
fn greeting(stream: &TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut line = String::new();
    match BufReader::new(stream).read_line(&mut line) {
        Ok(n) if n > 0 => Some(line.trim_end().to_owned()),
        _ => None,
    }
}

fn ping(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

#[test]
fn lowering_and_raising_maxmemory_refuses_then_takes_writes() {
    let node = Node::start_with("config-maxmemory", &[], &[]);
    let mut con = node.connect();
    let value = vec![b'v'; 1000];
    for i in 0..200 {
        let () = redis::cmd("SET").arg(format!("k{i}")).arg(&value).query(&mut con).unwrap();
    }
    assert_eq!(config_get(&mut con, "maxmemory"), "0");

    config_set(&mut con, "maxmemory", "100kb");
    assert_eq!(config_get(&mut con, "maxmemory"), "102400");
    assert_eq!(node.info_field("memory", "maxmemory"), "102400");
    let refused = redis::cmd("SET").arg("more").arg(&value).query::<()>(&mut con).unwrap_err();
    assert_eq!(refused.code(), Some("OOM"), "{refused}");
    assert!(refused.to_string().contains(&OOM["OOM ".len()..]), "{refused}");
    let got: Option<Vec<u8>> = redis::cmd("GET").arg("k0").query(&mut con).unwrap();
    assert_eq!(got.as_deref(), Some(&value[..]), "reads go on");

    config_set(&mut con, "maxmemory", "1gb");
    let () = redis::cmd("SET").arg("more").arg(&value).query(&mut con).unwrap();
    config_set(&mut con, "maxmemory", "0");
    assert_eq!(node.info_field("memory", "maxmemory"), "0");
}

#[test]
fn maxclients_moves_the_limit_new_connections_meet() {
    let node = Node::start_with("config-maxclients", &[], &[]);
    let mut admin = node.connect();
    // Connections made while starting may still be closing.
    wait_for("only the admin connection", Duration::from_secs(10), || (connected(&mut admin) == 1).then_some(()));

    config_set(&mut admin, "maxclients", "2");
    assert_eq!(config_get(&mut admin, "maxclients"), "2");
    assert_eq!(config_get(&mut admin, "limits.max_clients"), "2");
    let mut second = TcpStream::connect(node.client).unwrap();
    assert_eq!(ping(&mut second), "+PONG");
    let third = TcpStream::connect(node.client).unwrap();
    assert_eq!(greeting(&third).as_deref(), Some(MAX_CLIENTS));

    // Lowered under what is connected: those connected stay.
    config_set(&mut admin, "maxclients", "1");
    assert_eq!(ping(&mut second), "+PONG");

    config_set(&mut admin, "maxclients", "3");
    let mut third = TcpStream::connect(node.client).unwrap();
    assert_eq!(ping(&mut third), "+PONG");
    let fourth = TcpStream::connect(node.client).unwrap();
    assert_eq!(greeting(&fourth).as_deref(), Some(MAX_CLIENTS));

    // Never past the start value, for which descriptors were reserved.
    let over = u32::MAX.to_string();
    let refused = redis::cmd("CONFIG").arg("SET").arg("maxclients").arg(&over).query::<()>(&mut admin).unwrap_err();
    assert!(refused.to_string().contains("at most"), "{refused}");
}

#[test]
fn a_lowered_timeout_closes_idle_clients() {
    let node = Node::start_with("config-timeout", &[], &[]);
    let mut admin = node.connect();
    config_set(&mut admin, "timeout", "1");
    drop(admin); // it would be closed too
    let mut idle = TcpStream::connect(node.client).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    // The node closes it: the read ends with EOF rather than timing out.
    let read = idle.read(&mut buf);
    assert!(matches!(read, Ok(0)), "{read:?}");
    let mut admin = node.connect();
    config_set(&mut admin, "timeout", "0");
    assert_eq!(config_get(&mut admin, "timeout"), "0");
}
