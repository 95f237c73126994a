//! `--metrics ADDR`: two real nodes serve Prometheus text at `/metrics`,
//! read here over plain HTTP/1.1 and parsed with `prometheus-parse`.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{Node, free_port, wait_all_alive, wait_for};
use prometheus_parse::{Sample, Scrape, Value};
use redis::Commands;

/// Keys written (and read back) through node 1.
const N: usize = 200;

const DEADLINE: Duration = Duration::from_secs(20);

#[test]
fn metrics_endpoint_serves_parseable_prometheus_text() {
    let (m1, m2) = (metrics_addr(), metrics_addr());
    let node1 = Node::start_with("node1", &[], &["--metrics", &m1.to_string()]);
    let node2 = Node::start_with("node2", &[node1.gossip], &["--metrics", &m2.to_string()]);
    let mut nodes = [node1, node2];
    wait_all_alive(&nodes, DEADLINE);

    let mut con = nodes[0].connect();
    for i in 0..N {
        let () = con.set(format!("key:{i}"), i).unwrap();
    }
    for i in 0..N {
        let value: usize = con.get(format!("key:{i}")).unwrap();
        assert_eq!(value, i);
    }
    let refused: redis::RedisResult<()> = redis::cmd("NO-SUCH-COMMAND").arg("x").query(&mut con);
    assert!(refused.is_err());

    let (status, content_type, samples) = scrape(m1);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let n = N as f64;
    assert_eq!(value(&samples, "rumor_commands_total", &[("cmd", "set")]), n);
    assert_eq!(value(&samples, "rumor_commands_total", &[("cmd", "get")]), n);
    assert_eq!(value(&samples, "rumor_command_errors_total", &[("cmd", "set")]), 0.0);
    // An unknown name is counted under one bounded label, never as sent.
    assert_eq!(value(&samples, "rumor_commands_total", &[("cmd", "unknown")]), 1.0);
    assert_eq!(value(&samples, "rumor_command_errors_total", &[("cmd", "unknown")]), 1.0);
    assert!(!samples.iter().any(|s| s.labels.values().any(|v| v.contains("NO-SUCH"))));

    let histogram = samples
        .iter()
        .find(|s| s.metric == "rumor_command_duration_seconds" && s.labels.get("cmd") == Some("set"))
        .expect("a latency histogram for SET");
    let Value::Histogram(buckets) = &histogram.value else { panic!("not a histogram: {histogram:?}") };
    let last = buckets.last().expect("buckets");
    assert!(last.less_than.is_infinite() && last.count >= n, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count), "cumulative: {buckets:?}");
    assert!(value(&samples, "rumor_command_duration_seconds_count", &[("cmd", "set")]) >= n);
    assert!(value(&samples, "rumor_command_duration_seconds_sum", &[("cmd", "set")]) > 0.0);

    assert!(value(&samples, "rumor_connected_clients", &[]) >= 1.0);
    assert!(value(&samples, "rumor_connections_received_total", &[]) >= 1.0);
    assert_eq!(value(&samples, "rumor_keys", &[]), n);
    assert_eq!(value(&samples, "rumor_members", &[("state", "alive")]), 2.0);
    assert_eq!(value(&samples, "rumor_members", &[("state", "down")]), 0.0);
    assert!(value(&samples, "rumor_membership_changes_total", &[("change", "up")]) >= 1.0);
    assert!(value(&samples, "rumor_gossip_packets_sent_total", &[]) > 0.0);
    assert!(value(&samples, "rumor_gossip_entries_sent_total", &[]) >= n);
    assert_eq!(value(&samples, "rumor_joined", &[]), 1.0);

    // Node 2 learns the keys by gossip; its own numbers say so.
    let samples = wait_for("node 2 to count every key", DEADLINE, || {
        let (_, _, samples) = scrape(m2);
        (value(&samples, "rumor_keys", &[]) == n).then_some(samples)
    });
    assert!(
        value(&samples, "rumor_gossip_entries_applied_total", &[])
            + value(&samples, "rumor_sync_entries_applied_total", &[])
            >= n
    );
    assert_eq!(value(&samples, "rumor_members", &[("state", "alive")]), 2.0);
    assert_eq!(value(&samples, "rumor_commands_total", &[("cmd", "set")]), 0.0);

    // Other paths, other methods and junk get errors; the endpoint survives.
    assert_eq!(status_line(&request(m1, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")), "HTTP/1.1 404 Not Found");
    assert_eq!(status_line(&request(m1, b"POST /metrics HTTP/1.1\r\n\r\n")), "HTTP/1.1 405 Method Not Allowed");
    let junk = request(m1, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n");
    assert_eq!(status_line(&junk), "HTTP/1.1 400 Bad Request");
    let oversized = [b"GET /metrics HTTP/1.1\r\nX-Junk: ".as_slice(), &[b'z'; 16 * 1024]].concat();
    let _ = request(m1, &oversized);
    drop(TcpStream::connect(m1).expect("connect"));
    let (status, _, samples) = scrape(m1);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(value(&samples, "rumor_keys", &[]), n);

    // The endpoint stops with the node, an idle scraper notwithstanding.
    let _idle = TcpStream::connect(m1).expect("connect");
    drop(con);
    assert!(nodes[0].terminate().success());
    assert!(TcpStream::connect(m1).is_err(), "the metrics port is closed");
}

/// A free loopback address for a metrics endpoint.
fn metrics_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Sends `bytes` and reads the whole answer (the server closes).
fn request(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    // The server may answer (and stop reading) before all of an oversized
    // request is written.
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

fn status_line(answer: &[u8]) -> String {
    String::from_utf8_lossy(answer).lines().next().unwrap_or_default().to_owned()
}

/// `GET /metrics`: the status line, the content type and the parsed samples.
fn scrape(addr: SocketAddr) -> (String, String, Vec<Sample>) {
    let answer = request(addr, format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n").as_bytes());
    let answer = String::from_utf8(answer).expect("utf-8");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let content_type = head.lines().find_map(|l| l.strip_prefix("Content-Type: ")).expect("a content type").to_owned();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|l| l.parse().ok())
        .expect("a content length");
    assert_eq!(length, body.len());
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF: {body}");
    let parsed = Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text");
    (status_line(head.as_bytes()), content_type, parsed.samples)
}

/// The value of the sample `name` with exactly `labels`. prometheus-parse
/// reads OpenMetrics counters (`…_total`) as untyped, so any scalar goes.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = samples
        .iter()
        .find(|s| {
            s.metric == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"));
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{name}{labels:?} is not a scalar: {other:?}"),
    }
}
