//! The whole client path in-process: [`serve`] on `127.0.0.1:0` over a real
//! store, raw RESP bytes in, exact bytes out, and a real Redis client.
//! Every wait has a deadline; conditions are awaited, never slept on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::cmd::testkit::{self, frame};
use super::serve;
use crate::resp::shared::{ClientLimits, Shared};
use crate::server::handover;

/// A running `serve`.
struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    /// Writes the dissemination stand-in has taken off the channel.
    replicated: Arc<AtomicUsize>,
}

impl Server {
    async fn start() -> Self {
        Self::start_with(testkit::limits(), None).await
    }

    async fn start_with(limits: ClientLimits, password: Option<&str>) -> Self {
        let (shared, writes) = testkit::shared(limits, password);
        let server = Self::start_on(shared).await;
        let replicated = Arc::clone(&server.replicated);
        tokio::spawn(drain(writes, replicated));
        server
    }

    /// Serves `shared`; nothing drains its writes channel.
    async fn start_on(shared: Arc<Shared>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, Arc::clone(&shared), async {
            let _ = stopped.await;
        }));
        Server { addr, shared, stop: Some(stop), task, replicated: Arc::new(AtomicUsize::new(0)) }
    }

    async fn connect(&self) -> TcpStream {
        timeout(DEADLINE, TcpStream::connect(self.addr)).await.expect("connect timed out").unwrap()
    }

    fn stat(&self, pick: impl Fn(&crate::resp::shared::ClientStats) -> &std::sync::atomic::AtomicU64) -> u64 {
        pick(&self.shared.stats).load(Ordering::Relaxed)
    }

    /// Signals shutdown and waits for `serve` to return.
    async fn shut_down(mut self) {
        let _ = self.stop.take().unwrap().send(());
        timeout(DEADLINE, self.task).await.expect("serve did not return").unwrap();
    }
}

async fn drain(writes: handover::Receiver, count: Arc<AtomicUsize>) {
    while let Some(batch) = writes.recv().await {
        count.fetch_add(batch.writes.len(), Ordering::Relaxed);
    }
}

/// Waits until `condition` holds, polling, for at most [`DEADLINE`].
async fn until(what: &str, condition: impl Fn() -> bool) {
    let waited = timeout(DEADLINE, async {
        while !condition() {
            tokio::time::sleep(POLL).await;
        }
    });
    waited.await.unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Reads until `expected.len()` bytes arrived and compares them exactly.
async fn expect(stream: &mut TcpStream, expected: &[u8]) {
    let mut got = Vec::with_capacity(expected.len());
    let read = timeout(DEADLINE, async {
        while got.len() < expected.len() {
            match stream.read_buf(&mut got).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    let timed_out = read.await.is_err();
    assert!(
        got == expected,
        "expected {:?}, got {:?}{}",
        short(expected),
        short(&got),
        if timed_out { " (timed out)" } else { "" }
    );
}

/// Asserts the server closes the connection, sending nothing more.
async fn expect_closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    let read = timeout(DEADLINE, stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection stayed open");
    assert!(rest.is_empty(), "unexpected bytes before close: {:?}", short(&rest));
}

async fn roundtrip(stream: &mut TcpStream, request: &[u8], reply: &[u8]) {
    stream.write_all(request).await.unwrap();
    expect(stream, reply).await;
}

fn short(bytes: &[u8]) -> String {
    let text = bytes.escape_ascii().to_string();
    if text.len() > 300 { format!("{}… ({} bytes)", &text[..300], bytes.len()) } else { text }
}

#[tokio::test]
async fn array_and_inline_forms() {
    let server = Server::start().await;
    let mut c = server.connect().await;
    roundtrip(&mut c, b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n").await;
    roundtrip(&mut c, b"PING\r\n", b"+PONG\r\n").await;
    roundtrip(&mut c, b"ping\n", b"+PONG\r\n").await;
    roundtrip(&mut c, b"SET k \"hello world\"\r\n", b"+OK\r\n").await;
    roundtrip(&mut c, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"$11\r\nhello world\r\n").await;
    // Blank lines and empty arrays are skipped silently.
    roundtrip(&mut c, b"\r\n*0\r\n*-1\r\nECHO 'a b'\r\n", b"$3\r\na b\r\n").await;
    // A frame split across writes.
    c.write_all(b"*2\r\n$4\r\nECHO\r\n$5\r\nhel").await.unwrap();
    c.flush().await.unwrap();
    tokio::task::yield_now().await;
    roundtrip(&mut c, b"lo\r\n", b"$5\r\nhello\r\n").await;
    // Binary values survive exactly.
    let value: Vec<u8> = (0..=255).collect();
    roundtrip(&mut c, &frame(&[b"SET", b"bin", &value]), b"+OK\r\n").await;
    let mut reply = b"$256\r\n".to_vec();
    reply.extend_from_slice(&value);
    reply.extend_from_slice(b"\r\n");
    roundtrip(&mut c, &frame(&[b"GET", b"bin"]), &reply).await;
    server.shut_down().await;
}

#[tokio::test]
async fn ten_thousand_pipelined_commands_in_one_write() {
    let server = Server::start().await;
    let c = server.connect().await;
    let (mut reader, mut writer) = c.into_split();
    const N: usize = 10_000;
    let mut request = b"*1\r\n$4\r\nPING\r\n".repeat(N);
    for i in 0..N {
        request.extend_from_slice(&frame(&[b"SET", format!("key:{i}").as_bytes(), b"value"]));
    }
    request.extend_from_slice(b"DBSIZE\r\n");
    // Write while reading: the replies must not wait for the whole request.
    let writing = tokio::spawn(async move {
        writer.write_all(&request).await.unwrap();
        writer
    });
    let mut expected = b"+PONG\r\n".repeat(N);
    expected.extend_from_slice(&b"+OK\r\n".repeat(N));
    expected.extend_from_slice(b":10000\r\n");
    let mut got = Vec::with_capacity(expected.len());
    timeout(DEADLINE, async {
        while got.len() < expected.len() {
            if reader.read_buf(&mut got).await.unwrap() == 0 {
                break;
            }
        }
    })
    .await
    .expect("replies timed out");
    assert!(got == expected, "replies differ: {:?}", short(&got));
    drop(writing.await.unwrap());
    let replicated = Arc::clone(&server.replicated);
    until("10k writes to reach dissemination", || replicated.load(Ordering::Relaxed) == N).await;
    assert_eq!(server.stat(|s| &s.total_commands_processed), 2 * N as u64 + 1);
    server.shut_down().await;
}

#[tokio::test]
async fn config_resetstat_zeroes_the_counters() {
    let server = Server::start().await;
    let mut c = server.connect().await;
    roundtrip(&mut c, b"SET a 1\r\n", b"+OK\r\n").await;
    roundtrip(&mut c, b"GET a\r\n", b"$1\r\n1\r\n").await;
    until("the commands to be counted", || server.stat(|s| &s.total_commands_processed) >= 2).await;
    roundtrip(&mut c, b"CONFIG RESETSTAT\r\n", b"+OK\r\n").await;
    // RESETSTAT itself may be counted after it ran; nothing before it is.
    until("RESETSTAT to be counted", || server.stat(|s| &s.total_commands_processed) <= 1).await;
    assert_eq!(server.stat(|s| &s.total_connections_received), 0);
    assert_eq!(server.stat(|s| &s.connected_clients), 1, "the open connection is still counted");
    server.shut_down().await;
}

#[tokio::test]
async fn large_values_arrive_in_pieces() {
    let server = Server::start().await;
    let mut c = server.connect().await;
    let value = vec![b'v'; 900 * 1024];
    let request = frame(&[b"SET", b"big", &value]);
    for chunk in request.chunks(7_000) {
        c.write_all(chunk).await.unwrap();
    }
    expect(&mut c, b"+OK\r\n").await;
    let mut reply = format!("${}\r\n", value.len()).into_bytes();
    reply.extend_from_slice(&value);
    reply.extend_from_slice(b"\r\n");
    roundtrip(&mut c, b"GET big\r\n", &reply).await;
    roundtrip(&mut c, b"STRLEN big\r\n", format!(":{}\r\n", value.len()).as_bytes()).await;
    server.shut_down().await;
}

#[tokio::test]
async fn errors_use_redis_wording() {
    let server = Server::start().await;
    let mut c = server.connect().await;
    roundtrip(&mut c, b"GET\r\n", b"-ERR wrong number of arguments for 'get' command\r\n").await;
    roundtrip(&mut c, b"FOO a b\r\n", b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n").await;
    roundtrip(&mut c, b"HELLO 4\r\n", b"-NOPROTO unsupported protocol version\r\n").await;
    roundtrip(&mut c, b"SET k v EX 0\r\n", b"-ERR invalid expire time in 'set' command\r\n").await;
    roundtrip(&mut c, b"EXPIRE k x\r\n", b"-ERR value is not an integer or out of range\r\n").await;
    roundtrip(&mut c, b"SET k v NX XX\r\n", b"-ERR syntax error\r\n").await;
    roundtrip(&mut c, b"SELECT 1\r\n", b"-ERR DB index is out of range\r\n").await;
    // The connection survives all of them.
    roundtrip(&mut c, b"PING\r\n", b"+PONG\r\n").await;
    server.shut_down().await;
}

#[tokio::test]
async fn hello_3_switches_this_connection_only() {
    let server = Server::start().await;
    let mut resp3 = server.connect().await;
    let mut resp2 = server.connect().await;
    let mut hello = Vec::new();
    resp3.write_all(b"HELLO 3\r\n").await.unwrap();
    timeout(DEADLINE, async {
        while !hello.ends_with(b"$7\r\nmodules\r\n*0\r\n") {
            assert!(resp3.read_buf(&mut hello).await.unwrap() > 0, "closed");
        }
    })
    .await
    .expect("HELLO's reply");
    assert!(hello.starts_with(b"%7\r\n$6\r\nserver\r\n"), "{:?}", String::from_utf8_lossy(&hello));
    roundtrip(&mut resp3, b"GET nothing\r\n", b"_\r\n").await;
    roundtrip(&mut resp2, b"GET nothing\r\n", b"$-1\r\n").await;
    server.shut_down().await;
}

#[tokio::test]
async fn client_kill_closes_the_other_connection() {
    let server = Server::start().await;
    let mut killer = server.connect().await;
    let mut victim = server.connect().await;
    roundtrip(&mut victim, b"CLIENT SETNAME victim\r\n", b"+OK\r\n").await;
    killer.write_all(b"CLIENT LIST\r\n").await.unwrap();
    let mut list = Vec::new();
    timeout(DEADLINE, async {
        while list.iter().filter(|&&b| b == b'\n').count() < 3 {
            assert!(killer.read_buf(&mut list).await.unwrap() > 0, "closed");
        }
    })
    .await
    .expect("CLIENT LIST's reply");
    let list = String::from_utf8_lossy(&list).into_owned();
    let victim_line = list.lines().find(|line| line.contains(" name=victim ")).unwrap_or_else(|| panic!("{list}"));
    let addr = victim_line.split(' ').find_map(|field| field.strip_prefix("addr=")).unwrap();
    let kill = format!("CLIENT KILL ADDR {addr}\r\n");
    roundtrip(&mut killer, kill.as_bytes(), b":1\r\n").await;
    let mut rest = Vec::new();
    let closed = timeout(DEADLINE, victim.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the victim is disconnected: {closed:?}");
    roundtrip(&mut killer, kill.as_bytes(), b":0\r\n").await;
    server.shut_down().await;
}

#[tokio::test]
async fn protocol_errors_close_only_that_connection() {
    let server = Server::start().await;
    let mut bystander = server.connect().await;
    roundtrip(&mut bystander, b"SET k v\r\n", b"+OK\r\n").await;
    let endless_line = vec![b'a'; 200 * 1024];
    let mut endless_count = b"*".to_vec();
    endless_count.extend(std::iter::repeat_n(b'1', 200 * 1024));
    let mut endless_bulk_header = b"*1\r\n$".to_vec();
    endless_bulk_header.extend(std::iter::repeat_n(b'9', 200 * 1024));
    let cases: [(&[u8], &[u8]); 11] = [
        (b"*1\r\n$-5\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*1\r\n$99999999999\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*1\r\n$2000000\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*1\r\n$3\r\nabcXY", b"-ERR Protocol error: bulk data not followed by CRLF\r\n"),
        (b"*\x07\xfe garbage\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*99999\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\nX\r\n", b"-ERR Protocol error: expected '$', got 'X'\r\n"),
        (b"SET \"k v\r\n", b"-ERR Protocol error: unbalanced quotes in request\r\n"),
        (&endless_line, b"-ERR Protocol error: too big inline request\r\n"),
        (&endless_count, b"-ERR Protocol error: too big mbulk count string\r\n"),
        (&endless_bulk_header, b"-ERR Protocol error: too big bulk count string\r\n"),
    ];
    for (i, (input, reply)) in cases.iter().enumerate() {
        let c = server.connect().await;
        let (mut reader, mut writer) = c.into_split();
        let input = input.to_vec();
        // The server may close before it has read everything: ignore
        // write errors.
        let writing = tokio::spawn(async move {
            let _ = writer.write_all(&input).await;
            writer
        });
        let mut got = Vec::new();
        let closed = timeout(DEADLINE, reader.read_to_end(&mut got)).await;
        assert!(closed.is_ok(), "case {i}: the connection stayed open");
        assert!(got == *reply, "case {i}: got {:?}", short(&got));
        drop(writing.await.unwrap());
        roundtrip(&mut bystander, b"GET k\r\n", b"$1\r\nv\r\n").await;
        assert_eq!(server.stat(|s| &s.protocol_errors), i as u64 + 1);
    }
    server.shut_down().await;
}

#[tokio::test]
async fn replies_before_a_protocol_error_are_sent() {
    let server = Server::start().await;
    let mut c = server.connect().await;
    c.write_all(b"PING\r\nSET a 1\r\n*1\r\n$-5\r\nPING\r\n").await.unwrap();
    expect(&mut c, b"+PONG\r\n+OK\r\n-ERR Protocol error: invalid bulk length\r\n").await;
    expect_closed(&mut c).await;
    server.shut_down().await;
}

#[tokio::test]
async fn quit_answers_then_closes() {
    let server = Server::start().await;
    let mut c = server.connect().await;
    c.write_all(b"PING\r\nQUIT\r\nPING\r\n").await.unwrap();
    expect(&mut c, b"+PONG\r\n+OK\r\n").await;
    expect_closed(&mut c).await;
    server.shut_down().await;
}

#[tokio::test]
async fn password_is_required_when_set() {
    let server = Server::start_with(testkit::limits(), Some("sesame")).await;
    let mut c = server.connect().await;
    roundtrip(&mut c, b"GET k\r\n", b"-NOAUTH Authentication required.\r\n").await;
    roundtrip(&mut c, b"AUTH nope\r\n", b"-WRONGPASS invalid username-password pair or user is disabled.\r\n").await;
    roundtrip(&mut c, b"AUTH sesame\r\nGET k\r\n", b"+OK\r\n$-1\r\n").await;
    // Before AUTH, Redis's tight bounds hold: at most 10 arguments.
    let mut other = server.connect().await;
    roundtrip(&mut other, b"*11\r\n", b"-ERR Protocol error: unauthenticated multibulk length\r\n").await;
    expect_closed(&mut other).await;
    server.shut_down().await;
}

#[tokio::test]
async fn max_clients_is_enforced() {
    let limits = ClientLimits { max_clients: 2, ..testkit::limits() };
    let server = Server::start_with(limits, None).await;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    roundtrip(&mut first, b"PING\r\n", b"+PONG\r\n").await;
    roundtrip(&mut second, b"PING\r\n", b"+PONG\r\n").await;
    let mut third = server.connect().await;
    third.write_all(b"PING\r\n").await.unwrap();
    expect(&mut third, b"-ERR max number of clients reached\r\n").await;
    expect_closed(&mut third).await;
    assert_eq!(server.stat(|s| &s.rejected_connections), 1);
    assert_eq!(server.stat(|s| &s.connected_clients), 2);
    drop(first);
    let shared = Arc::clone(&server.shared);
    until("a slot to free up", || shared.stats.connected_clients.load(Ordering::Relaxed) == 1).await;
    let mut fourth = server.connect().await;
    roundtrip(&mut fourth, b"PING\r\n", b"+PONG\r\n").await;
    assert_eq!(server.stat(|s| &s.total_connections_received), 3);
    server.shut_down().await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_stops_accepting() {
    let server = Server::start().await;
    let addr = server.addr;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    roundtrip(&mut a, b"PING\r\n", b"+PONG\r\n").await;
    roundtrip(&mut b, b"PING\r\n", b"+PONG\r\n").await;
    let shared = Arc::clone(&server.shared);
    server.shut_down().await;
    expect_closed(&mut a).await;
    expect_closed(&mut b).await;
    assert_eq!(shared.stats.connected_clients.load(Ordering::Relaxed), 0);
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
}

#[tokio::test]
async fn shutdown_lets_a_running_command_finish() {
    // A writes channel of one that nobody drains yet: the first SET fills
    // it, the second waits on dissemination (backpressure) mid-batch.
    let (shared, writes) = testkit::shared_with_capacity(testkit::limits(), None, 1);
    let server = Server::start_on(shared).await;
    let mut c = server.connect().await;
    c.write_all(b"SET a 1\r\n").await.unwrap();
    expect(&mut c, b"+OK\r\n").await;
    c.write_all(b"SET b 2\r\n").await.unwrap();
    let shared = Arc::clone(&server.shared);
    // The second SET has been applied and now waits to hand its write over.
    until("the second write to wait on the full channel", || {
        shared.writes.capacity() == 0 && shared.store.get(b"b", shared.clock.wall_ms()).is_some()
    })
    .await;
    let stop = server.stop;
    let task = server.task;
    let _ = stop.unwrap().send(());
    tokio::task::yield_now().await;
    assert!(!task.is_finished(), "serve waits for the command in flight");
    let first = timeout(DEADLINE, writes.recv()).await.unwrap().unwrap();
    assert_eq!(first.writes[0].0, "a");
    let second = timeout(DEADLINE, writes.recv()).await.unwrap().unwrap();
    assert_eq!(second.writes[0].0, "b");
    expect(&mut c, b"+OK\r\n").await;
    expect_closed(&mut c).await;
    timeout(DEADLINE, task).await.expect("serve did not return").unwrap();
}

#[tokio::test]
async fn info_and_members_over_the_wire() {
    let server = Server::start().await;
    let mut c = server.connect().await;
    c.write_all(b"MEMBERS\r\n").await.unwrap();
    let mut expected = b"*2\r\n".to_vec();
    for member in testkit::MEMBERS {
        expected.extend_from_slice(format!("${}\r\n{member}\r\n", member.len()).as_bytes());
    }
    expect(&mut c, &expected).await;
    c.write_all(b"INFO clients\r\n").await.unwrap();
    let body = "# Clients\r\nconnected_clients:1\r\nmaxclients:64\r\nblocked_clients:0\r\n";
    expect(&mut c, format!("${}\r\n{body}\r\n", body.len()).as_bytes()).await;
    server.shut_down().await;
}

#[tokio::test]
async fn a_real_redis_client_works() {
    let server = Server::start_with(testkit::limits(), Some("pw")).await;
    let url = format!("redis://:pw@{}/0", server.addr);
    let checks = tokio::task::spawn_blocking(move || -> redis::RedisResult<()> {
        let client = redis::Client::open(url)?;
        let mut con = client.get_connection()?;
        con.set_read_timeout(Some(DEADLINE))?;
        let pong: String = redis::cmd("PING").query(&mut con)?;
        assert_eq!(pong, "PONG");
        redis::cmd("SET").arg("greeting").arg("hello").query::<()>(&mut con)?;
        let value: Option<String> = redis::cmd("GET").arg("greeting").query(&mut con)?;
        assert_eq!(value.as_deref(), Some("hello"));
        let missing: Option<String> = redis::cmd("GET").arg("nothing").query(&mut con)?;
        assert_eq!(missing, None);
        let binary = vec![0u8, 255, 13, 10];
        redis::cmd("SET").arg(b"bin").arg(&binary).query::<()>(&mut con)?;
        let back: Vec<u8> = redis::cmd("GET").arg(b"bin").query(&mut con)?;
        assert_eq!(back, binary);
        let (a, b, ttl): (i64, Vec<Option<String>>, i64) = redis::pipe()
            .cmd("EXPIRE")
            .arg("greeting")
            .arg(100)
            .cmd("MGET")
            .arg("greeting")
            .arg("nothing")
            .cmd("TTL")
            .arg("greeting")
            .query(&mut con)?;
        assert_eq!((a, b, ttl), (1, vec![Some("hello".to_owned()), None], 100));
        let size: i64 = redis::cmd("DBSIZE").query(&mut con)?;
        assert_eq!(size, 2);
        let error = redis::cmd("GET").query::<String>(&mut con).unwrap_err();
        assert_eq!(error.code(), Some("ERR"));
        let name: Option<String> = redis::cmd("CLIENT").arg("GETNAME").query(&mut con)?;
        assert_eq!(name, None);
        let (cursor, keys): (u64, Vec<String>) = redis::cmd("SCAN").arg(0).arg("COUNT").arg(100_000).query(&mut con)?;
        assert_eq!(cursor, 0);
        assert_eq!(keys.len(), 2);
        Ok(())
    });
    timeout(DEADLINE, checks).await.expect("the client timed out").unwrap().unwrap();
    server.shut_down().await;
}

/// The longest any one step of a test may take.
const DEADLINE: Duration = Duration::from_secs(10);

/// How often [`until`] checks its condition.
const POLL: Duration = Duration::from_millis(5);

#[tokio::test]
async fn replies_over_the_output_limit_close_the_connection_unsent() {
    let limits = ClientLimits { output_buffer_limit_bytes: 200 * 1024, ..testkit::limits() };
    let server = Server::start_with(limits, None).await;
    let value: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let mut writer = server.connect().await;
    roundtrip(&mut writer, &frame(&[b"SET", b"v", &value]), b"+OK\r\n").await;

    // Shared values under the limit go out whole, byte for byte.
    let mut bulk = format!("${}\r\n", value.len()).into_bytes();
    bulk.extend_from_slice(&value);
    bulk.extend_from_slice(b"\r\n");
    let mut expected = b"+PONG\r\n*2\r\n".to_vec();
    expected.extend_from_slice(&bulk);
    expected.extend_from_slice(&bulk);
    expected.extend_from_slice(b"+PONG\r\n");
    let mut request = b"PING\r\n".to_vec();
    request.extend_from_slice(&frame(&[b"MGET", b"v", b"v"]));
    request.extend_from_slice(b"PING\r\n");
    roundtrip(&mut writer, &request, &expected).await;

    // Four of them pass 200 KiB: nothing of the batch is sent.
    let mut greedy = server.connect().await;
    let mut request = b"PING\r\n".to_vec();
    request.extend_from_slice(&frame(&[b"MGET", b"v", b"v", b"v", b"v"]));
    greedy.write_all(&request).await.unwrap();
    expect_closed(&mut greedy).await;
    assert_eq!(server.stat(|s| &s.output_limit_disconnections), 1);
    roundtrip(&mut writer, b"PING\r\n", b"+PONG\r\n").await;
    server.shut_down().await;
}
