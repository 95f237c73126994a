//! A node that starts empty with peers answers `-LOADING` until it has
//! caught up with a peer once, never nil for a key the mesh holds, and
//! never lets `SET NX` succeed on one; a node alone serves at once, and one
//! with no caught-up peer to be found serves after `loading_wait_ms`.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Node, free_port, wait_for};

const KEYS: u32 = 30_000;

fn value_of(i: u32) -> String {
    format!("value:{i}:{}", "x".repeat(64))
}

fn config_file(dir: &std::path::Path, body: &str) -> String {
    let path = dir.join("loading.toml");
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

fn persistence_field(con: &mut redis::Connection, field: &str) -> String {
    let text: String = redis::cmd("INFO").arg("persistence").query(con).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO persistence:\n{text}"))
        .trim()
        .to_owned()
}

fn is_loading(error: &redis::RedisError) -> bool {
    error.code() == Some("LOADING")
}

/// `redis-cli` against `node`, its output as text.
fn redis_cli(node: &Node, args: &[&str]) -> String {
    let port = node.client.port().to_string();
    let out = Command::new("redis-cli").args(["-h", "127.0.0.1", "-p", &port]).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A node holding many keys, a fresh node joining it, and a client polling
/// the fresh node from the moment it accepts connections: every GET is the
/// value or `-LOADING`, every `SET NX` on a held key is refused or not
/// applied, and once it serves it holds every key and never goes back.
#[test]
fn a_node_catching_up_answers_the_value_or_loading_never_nil() {
    let a = Node::start("a", &[]);
    let mut a_con = a.connect();
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(1_000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            pipe.set(format!("key:{i}"), value_of(i)).ignore();
        }
        let () = pipe.query(&mut a_con).unwrap();
    }

    let b = Node::start_loading("b", &[a.gossip], &[]);
    let mut con = b.connect();
    let start = Instant::now();
    let (mut refused, mut served) = (0u32, 0u32);
    let mut probe = 0u32;
    while served < 300 {
        assert!(start.elapsed() < Duration::from_secs(60), "b never served ({refused} LOADING replies)");
        probe += 1;
        let i = probe.wrapping_mul(7_919) % KEYS;
        let key = format!("key:{i}");
        match redis::cmd("GET").arg(&key).query::<Option<String>>(&mut con) {
            Ok(Some(value)) => {
                assert_eq!(value, value_of(i), "{key}");
                if served == 0 {
                    // It held what `a` holds when it started serving.
                    let keys: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
                    assert_eq!(keys, u64::from(KEYS), "DBSIZE when b first served");
                    assert_eq!(persistence_field(&mut con, "loading"), "0");
                }
                served += 1;
            }
            Ok(None) => panic!("b answered nil for {key}, which the mesh holds ({refused} LOADING before)"),
            Err(e) if is_loading(&e) => {
                assert_eq!(served, 0, "b went back to LOADING after serving: {e}");
                refused += 1;
                if refused == 1 {
                    assert_eq!(persistence_field(&mut con, "loading"), "1");
                }
            }
            Err(e) => panic!("GET {key}: {e}"),
        }
        match redis::cmd("SET").arg(&key).arg("other").arg("NX").query::<Option<String>>(&mut con) {
            Ok(None) => {}
            Ok(Some(ok)) => panic!("SET NX {key} succeeded ({ok}) on a key the mesh holds"),
            Err(e) if is_loading(&e) => assert_eq!(served, 0, "SET NX refused after b served: {e}"),
            Err(e) => panic!("SET NX {key}: {e}"),
        }
    }
    assert!(refused > 0, "b's first replies were LOADING (it cannot have caught up before it accepted clients)");
    common::report(&format!(
        "fresh node: {refused} LOADING replies, then served {KEYS} keys, {:?} after it accepted clients",
        start.elapsed()
    ));
    let a_value: String = redis::cmd("GET").arg("key:0").query(&mut a_con).unwrap();
    assert_eq!(a_value, value_of(0), "no SET NX reached a");
}

/// A node with no seeds is the whole mesh: it serves from its first reply.
#[test]
fn a_lone_node_serves_at_once() {
    let alone = Node::start_loading("alone", &[], &[]);
    let mut con = alone.connect();
    let missing: Option<String> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(missing, None);
    assert_eq!(persistence_field(&mut con, "loading"), "0");
    assert_eq!(persistence_field(&mut con, "async_loading"), "0");
}

/// Seeded to an address nobody answers on, a fresh node refuses keys in
/// Redis's wording (INFO and MEMBERS still answer) until no caught-up peer
/// has answered for `loading_wait_ms`, then serves.
#[test]
fn with_no_peer_to_catch_up_from_a_node_serves_after_loading_wait() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "[anti_entropy]\nloading_wait_ms = 5000\n");
    let nobody = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let started = Instant::now();
    let node = Node::start_loading("lonely", &[nobody], &["--config", &config]);
    assert_eq!(redis_cli(&node, &["GET", "k"]), "LOADING rumor is loading the dataset from its peers");
    assert_eq!(redis_cli(&node, &["SET", "k", "v"]), "LOADING rumor is loading the dataset from its peers");
    assert_eq!(redis_cli(&node, &["PING"]), "LOADING rumor is loading the dataset from its peers");
    let mut con = node.connect();
    assert_eq!(persistence_field(&mut con, "loading"), "1");
    assert!(!common::members(&mut con).is_empty(), "MEMBERS answers while loading");
    wait_for("the node to stop loading", Duration::from_secs(15), || {
        (persistence_field(&mut con, "loading") == "0").then_some(())
    });
    assert!(started.elapsed() >= Duration::from_millis(4_900), "served after {:?}", started.elapsed());
    assert_eq!(redis_cli(&node, &["GET", "k"]), "");
    assert_eq!(redis_cli(&node, &["SET", "k", "v"]), "OK");
    assert!(node.log_text().contains("no caught-up peer answered within loading_wait_ms"), "{}", node.log_text());
}

/// `loading = "serve"`: partial data at once, shown as `async_loading:1`.
#[test]
fn loading_serve_answers_at_once_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "[anti_entropy]\nloading = \"serve\"\nloading_wait_ms = 5000\n");
    let nobody = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let node = Node::start_loading("partial", &[nobody], &["--config", &config]);
    let mut con = node.connect();
    let missing: Option<String> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(missing, None);
    assert_eq!(persistence_field(&mut con, "loading"), "0");
    assert_eq!(persistence_field(&mut con, "async_loading"), "1");
    wait_for("the node to give up catching up", Duration::from_secs(15), || {
        (persistence_field(&mut con, "async_loading") == "0").then_some(())
    });
}
