//! Client authentication on real nodes: a password file, ACL users from an
//! ACL file (read-only, key-limited, disabled), ACL LOAD after an edit, the
//! ACL introspection replies, the failed-AUTH counter and its delay, and
//! protected mode refusing a client from a network namespace.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::Lab;
use common::{Node, free_port, wait_for};

const DEADLINE: Duration = Duration::from_secs(20);

/// A RESP connection that shows replies as text, exactly as sent
/// (`-NOPERM …`, `$2 ok`, arrays as `[a, b]`).
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        Client { reader: BufReader::new(stream) }
    }

    fn send(&mut self, args: &[&str]) {
        let mut frame = format!("*{}\r\n", args.len());
        for arg in args {
            frame.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.reader.get_mut().write_all(frame.as_bytes()).expect("send");
    }

    fn call(&mut self, args: &[&str]) -> String {
        self.send(args);
        self.reply()
    }

    /// One reply; "EOF" if the connection closed.
    fn reply(&mut self) -> String {
        let mut line = String::new();
        if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
            return "EOF".to_owned();
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1);
        match kind {
            "$" if rest == "-1" => "(nil)".to_owned(),
            "$" => {
                let len: usize = rest.parse().expect("bulk length");
                let mut data = vec![0; len + 2];
                self.reader.read_exact(&mut data).expect("bulk");
                String::from_utf8_lossy(&data[..len]).into_owned()
            }
            "*" => {
                let n: usize = rest.parse().expect("array length");
                let items: Vec<String> = (0..n).map(|_| self.reply()).collect();
                format!("[{}]", items.join(", "))
            }
            _ => line.to_owned(),
        }
    }
}

/// A directory for this test's files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("rumor-auth-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `rumor serve` with `args` expecting it to refuse to start; returns
/// its stderr.
fn refused_start(args: &[&str]) -> String {
    let client = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let gossip = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_rumor"))
        .arg("serve")
        .args(["--listen", &client.to_string(), "--gossip", &gossip.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rumor");
    let status = wait_for("rumor to refuse to start", DEADLINE, || child.try_wait().expect("wait"));
    assert!(!status.success(), "rumor started with {args:?}");
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("stderr");
    stderr
}

#[test]
fn a_password_file_gives_noauth_and_wrongpass() {
    let scratch = Scratch::new("password");
    let password = scratch.file("password", "sesame\n");
    let node = Node::start_with("pw", &[], &["--requirepass-file", &password]);
    let mut c = Client::connect(node.client);
    assert_eq!(c.call(&["GET", "k"]), "-NOAUTH Authentication required.");
    assert_eq!(c.call(&["SET", "k", "v"]), "-NOAUTH Authentication required.");
    assert_eq!(c.call(&["AUTH", "sesame\n"]), "-WRONGPASS invalid username-password pair or user is disabled.");
    assert_eq!(c.call(&["AUTH", "wrong"]), "-WRONGPASS invalid username-password pair or user is disabled.");
    assert_eq!(c.call(&["AUTH", "sesame"]), "+OK");
    assert_eq!(c.call(&["SET", "k", "v"]), "+OK");
    assert_eq!(c.call(&["ACL", "WHOAMI"]), "default");
    let mut other = Client::connect(node.client);
    assert_eq!(other.call(&["AUTH", "default", "sesame"]), "+OK");
    assert_eq!(other.call(&["GET", "k"]), "v");
    assert_eq!(node.info_field_authenticated("sesame", "stats", "acl_access_denied_auth"), "2");
}

#[test]
fn bad_password_and_acl_settings_refuse_start() {
    let scratch = Scratch::new("refusals");
    let empty = scratch.file("empty", "\n");
    let err = refused_start(&["--requirepass-file", &empty]);
    assert!(err.contains("requirepass_file") && err.contains("is empty"), "{err}");
    let missing = scratch.0.join("missing").display().to_string();
    let err = refused_start(&["--requirepass-file", &missing]);
    assert!(err.contains("requirepass_file") && err.contains("cannot read"), "{err}");
    let config = scratch.file("node.toml", "requirepass = \"x\"\n");
    let password = scratch.file("password", "y\n");
    let err = refused_start(&["--config", &config, "--requirepass-file", &password]);
    assert!(err.contains("cannot be used with requirepass"), "{err}");
    let acl = scratch.file("users.acl", "user alice on >pw ~* +@all\nuser bob on +nosuch\nuser carol bogus\n");
    let err = refused_start(&["--aclfile", &acl]);
    assert!(
        err.contains(&format!("{acl}:2: Unknown command or category name in ACL. {acl}:3: Syntax error.")),
        "{err}"
    );
    let good = scratch.file("good.acl", "user alice on >pw ~* +@all\n");
    let err = refused_start(&["--config", &config, "--aclfile", &good]);
    assert!(err.contains("requirepass") && err.contains("cannot be used with aclfile"), "{err}");
}

const USERS: &str = "user default on >adminpw ~* &* +@all
user reader on >pw ~* +@read
user app on >pw ~app:* +@all -@dangerous
user gone off >pw ~* +@all
";

#[test]
fn acl_users_read_only_key_limited_and_disabled() {
    let scratch = Scratch::new("users");
    let acl = scratch.file("users.acl", USERS);
    let node = Node::start_with("acl", &[], &["--aclfile", &acl]);
    let mut admin = Client::connect(node.client);
    assert_eq!(admin.call(&["GET", "k"]), "-NOAUTH Authentication required.");
    assert_eq!(admin.call(&["AUTH", "adminpw"]), "+OK");
    assert_eq!(admin.call(&["SET", "k", "v"]), "+OK");

    // A read-only user reads and cannot write.
    let mut reader = Client::connect(node.client);
    assert_eq!(
        reader.call(&["AUTH", "reader", "nope"]),
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(reader.call(&["AUTH", "reader", "pw"]), "+OK");
    assert_eq!(reader.call(&["GET", "k"]), "v");
    assert_eq!(reader.call(&["MGET", "k", "x"]), "[v, (nil)]");
    assert_eq!(reader.call(&["SET", "k", "w"]), "-NOPERM User reader has no permissions to run the 'set' command");
    assert_eq!(reader.call(&["DEL", "k"]), "-NOPERM User reader has no permissions to run the 'del' command");
    assert_eq!(
        reader.call(&["ACL", "WHOAMI"]),
        "-NOPERM User reader has no permissions to run the 'acl|whoami' command"
    );
    assert_eq!(reader.call(&["GET", "k"]), "v", "nothing was written");

    // A user limited to app:* keys.
    let mut app = Client::connect(node.client);
    assert_eq!(app.call(&["AUTH", "app", "pw"]), "+OK");
    assert_eq!(app.call(&["SET", "app:1", "x"]), "+OK");
    assert_eq!(app.call(&["MSET", "app:2", "y", "app:3", "z"]), "+OK");
    assert_eq!(app.call(&["GET", "k"]), "-NOPERM No permissions to access a key");
    assert_eq!(app.call(&["MSET", "app:4", "y", "k", "z"]), "-NOPERM No permissions to access a key");
    assert_eq!(app.call(&["KEYS", "*"]), "-NOPERM User app has no permissions to run the 'keys' command");
    assert_eq!(app.call(&["ACL", "WHOAMI"]), "app", "acl|whoami is not @dangerous");
    assert_eq!(app.call(&["ACL", "LIST"]), "-NOPERM User app has no permissions to run the 'acl|list' command");
    assert_eq!(admin.call(&["GET", "app:4"]), "(nil)", "the refused MSET wrote nothing");

    // A disabled user cannot log in, whatever the password.
    let mut gone = Client::connect(node.client);
    assert_eq!(gone.call(&["AUTH", "gone", "pw"]), "-WRONGPASS invalid username-password pair or user is disabled.");
    assert_eq!(gone.call(&["GET", "k"]), "-NOAUTH Authentication required.");

    // redis-cli logs in as a user too.
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &node.client.port().to_string(), "--user", "reader", "--pass", "pw"])
        .args(["--no-auth-warning", "GET", "k"])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v");

    let mut stats = |field| admin_info(&mut admin, "stats", field);
    assert_eq!(stats("acl_access_denied_auth"), "2");
    assert_eq!(stats("acl_access_denied_cmd"), "5");
    assert_eq!(stats("acl_access_denied_key"), "2");
}

/// HELLO's AUTH option on a real node, the way a RESP3 client logs in: the
/// `redis` crate sends `HELLO 3 AUTH user pass` for a RESP3 URL with a user.
#[test]
fn hello_authenticates_acl_users_and_refuses_others() {
    let scratch = Scratch::new("hello");
    let acl = scratch.file("users.acl", USERS);
    let node = Node::start_with("hello", &[], &["--aclfile", &acl]);
    let mut raw = Client::connect(node.client);
    assert_eq!(
        raw.call(&["HELLO", "3"]),
        "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH \
         <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the \
         same time"
    );
    assert_eq!(
        raw.call(&["HELLO", "3", "AUTH", "app", "wrong"]),
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        raw.call(&["HELLO", "3", "AUTH", "gone", "pw"]),
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(raw.call(&["GET", "app:k"]), "-NOAUTH Authentication required.", "still logged out, still RESP2");

    let url = |password: &str| format!("redis://app:{password}@{}/?protocol=resp3", node.client);
    let refused = redis::Client::open(url("wrong")).unwrap().get_connection().map(|_| ());
    let error = refused.expect_err("a wrong password is refused");
    assert_eq!(error.code(), Some("WRONGPASS"), "{error}");
    let mut app = redis::Client::open(url("pw")).unwrap().get_connection().expect("HELLO 3 AUTH app pw");
    let () = redis::cmd("SET").arg("app:k").arg("v").query(&mut app).unwrap();
    let missing: redis::Value = redis::cmd("GET").arg("app:missing").query(&mut app).unwrap();
    assert_eq!(missing, redis::Value::Nil);
    let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut app).unwrap();
    assert!(info.contains(" user=app ") && info.contains(" resp=3 "), "{info}");
    let denied: redis::RedisResult<()> = redis::cmd("SET").arg("other").arg("v").query(&mut app);
    assert_eq!(denied.unwrap_err().code(), Some("NOPERM"), "the user's key patterns apply");
    assert_eq!(admin_info(&mut raw_admin(&node), "stats", "acl_access_denied_auth"), "3", "counted as AUTH failures");
}

fn raw_admin(node: &Node) -> Client {
    let mut admin = Client::connect(node.client);
    assert_eq!(admin.call(&["AUTH", "adminpw"]), "+OK");
    admin
}

#[test]
fn acl_introspection_replies() {
    let scratch = Scratch::new("introspection");
    let acl = scratch.file("users.acl", USERS);
    let node = Node::start_with("acl", &[], &["--aclfile", &acl]);
    let mut c = Client::connect(node.client);
    assert_eq!(c.call(&["AUTH", "default", "adminpw"]), "+OK");
    assert_eq!(c.call(&["ACL", "WHOAMI"]), "default");
    assert_eq!(c.call(&["ACL", "USERS"]), "[app, default, gone, reader]");
    let cat = c.call(&["ACL", "CAT"]);
    assert!(cat.starts_with("[keyspace, read, write, set, sortedset") && cat.contains("dangerous"), "{cat}");
    let read = c.call(&["ACL", "CAT", "read"]);
    assert!(read.contains("get") && read.contains("mget") && !read.contains("set,"), "{read}");
    let dangerous = c.call(&["ACL", "CAT", "DANGEROUS"]);
    assert!(dangerous.contains("acl|list") && !dangerous.contains("acl|whoami"), "{dangerous}");
    assert_eq!(c.call(&["ACL", "CAT", "nosuch"]), "-ERR Unknown category 'nosuch'");
    let reader_hash = sha256_hex("pw");
    assert_eq!(
        c.call(&["ACL", "GETUSER", "reader"]),
        format!(
            "[flags, [on], passwords, [{reader_hash}], commands, -@all +@read, keys, ~*, channels, , selectors, []]"
        )
    );
    assert_eq!(c.call(&["ACL", "GETUSER", "nobody"]), "(nil)");
    let list = c.call(&["ACL", "LIST"]);
    assert!(list.contains(&format!("user reader on #{reader_hash} ~* resetchannels -@all +@read")), "{list}");
    assert!(list.contains("user gone off #"), "{list}");
    let refused = c.call(&["ACL", "SETUSER", "x", "on"]);
    assert!(refused.starts_with("-ERR users are defined in the aclfile"), "{refused}");
    assert_eq!(c.call(&["ACL", "NOSUCH"]), "-ERR unknown subcommand 'NOSUCH'. Try ACL HELP.");
    assert!(c.call(&["ACL", "HELP"]).contains("WHOAMI"));
    assert_eq!(c.call(&["ACL", "GETUSER"]), "-ERR wrong number of arguments for 'acl|getuser' command");
}

#[test]
fn acl_load_applies_an_edited_file_to_open_sessions() {
    let scratch = Scratch::new("load");
    let acl = scratch.file("users.acl", USERS);
    let node = Node::start_with("acl", &[], &["--aclfile", &acl]);
    let mut admin = Client::connect(node.client);
    assert_eq!(admin.call(&["AUTH", "adminpw"]), "+OK");
    let mut reader = Client::connect(node.client);
    assert_eq!(reader.call(&["AUTH", "reader", "pw"]), "+OK");
    let mut app = Client::connect(node.client);
    assert_eq!(app.call(&["AUTH", "app", "pw"]), "+OK");
    assert_eq!(reader.call(&["SET", "k", "v"]), "-NOPERM User reader has no permissions to run the 'set' command");

    // A faulty edit: ACL LOAD says where, and the users stay.
    std::fs::write(&acl, "user default on >adminpw ~* &* +@all\nuser reader on >pw ~* +@read +@nosuch\n").unwrap();
    assert_eq!(admin.call(&["ACL", "LOAD"]), format!("-ERR {acl}:2: Unknown command or category name in ACL."));
    assert_eq!(app.call(&["SET", "app:1", "x"]), "+OK");

    // The reader may now write; app is gone.
    std::fs::write(&acl, "user default on >adminpw ~* &* +@all\nuser reader on >pw ~* +@read +@write\n").unwrap();
    assert_eq!(admin.call(&["ACL", "LOAD"]), "+OK");
    assert_eq!(reader.call(&["SET", "k", "v"]), "+OK", "the changed user applies from the next command");
    let refused = app.call(&["GET", "app:1"]);
    assert!(refused.starts_with("-ERR user 'app' was deleted or disabled"), "{refused}");
    assert_eq!(app.reply(), "EOF", "the deleted user's session is closed");
    let mut again = Client::connect(node.client);
    assert_eq!(again.call(&["AUTH", "app", "pw"]), "-WRONGPASS invalid username-password pair or user is disabled.");
    assert_eq!(admin.call(&["ACL", "USERS"]), "[default, reader]");
}

#[test]
fn failed_auths_are_counted_and_delayed_without_blocking_others() {
    let scratch = Scratch::new("throttle");
    let config = scratch
        .file("node.toml", "[auth]\nfailures_before_delay = 2\nfailure_delay_ms = 400\nfailure_delay_max_ms = 800\n");
    let password = scratch.file("password", "sesame");
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let node = Node::start_with(
        "throttle",
        &[],
        &["--config", &config, "--requirepass-file", &password, "--metrics", &metrics.to_string()],
    );
    let mut c = Client::connect(node.client);
    let mut took = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        assert_eq!(c.call(&["AUTH", "wrong"]), "-WRONGPASS invalid username-password pair or user is disabled.");
        took.push(start.elapsed());
    }
    let ms: Vec<u128> = took.iter().map(Duration::as_millis).collect();
    assert!(ms[0] < 400 && ms[1] < 400, "the first failures are free: {ms:?}");
    assert!((400..2000).contains(&ms[2]), "then 400 ms: {ms:?}");
    assert!((800..2400).contains(&ms[3]) && (800..2400).contains(&ms[4]), "doubled, capped at 800 ms: {ms:?}");

    // While one client's AUTH waits, another client is served at once.
    let mut slow = Client::connect(node.client);
    let mut quick = Client::connect(node.client);
    slow.send(&["AUTH", "sesame"]);
    std::thread::sleep(Duration::from_millis(20));
    let start = Instant::now();
    assert_eq!(quick.call(&["PING"]), "-NOAUTH Authentication required.");
    // The waiting AUTH takes 800 ms.
    assert!(start.elapsed() < Duration::from_millis(700), "another client waited {:?}", start.elapsed());
    assert_eq!(slow.reply(), "+OK", "a right password after the delay works");

    assert_eq!(node.info_field_authenticated("sesame", "stats", "acl_access_denied_auth"), "5");
    let text = http_get(metrics);
    assert!(text.lines().any(|l| l == "rumor_acl_access_denied_auth_total 5"), "{text}");
}

#[test]
fn protected_mode_refuses_a_client_from_another_host() {
    let Some(mut lab) = Lab::new(1) else { return };
    let scratch = Scratch::new("protected");
    // No password: the client (this process, on the lab's bridge) is not
    // loopback, so the node refuses it.
    lab.node_args(&["--protected-mode", "yes"]);
    lab.start(0, &[]);
    let mut c = Client::connect(lab.client(0));
    let refused = c.call(&["PING"]);
    assert!(refused.starts_with("-DENIED rumor is running in protected mode"), "{refused}");
    for way_out in ["requirepass_file", "aclfile", "protected_mode = false", "--protected-mode no", "loopback"] {
        assert!(refused.contains(way_out), "{way_out} not named: {refused}");
    }
    assert_eq!(c.reply(), "EOF");
    lab.kill(0);

    // With a password, the same client is served.
    let password = scratch.file("password", "sesame\n");
    lab.node_args(&["--protected-mode", "yes", "--requirepass-file", &password]);
    lab.start(0, &[]);
    let mut c = Client::connect(lab.client(0));
    assert_eq!(c.call(&["PING"]), "-NOAUTH Authentication required.");
    assert_eq!(c.call(&["AUTH", "sesame"]), "+OK");
    assert_eq!(c.call(&["PING"]), "+PONG");
    lab.kill(0);

    // Protected mode off: served without a password.
    lab.node_args(&["--protected-mode", "no"]);
    lab.start(0, &[]);
    let mut c = Client::connect(lab.client(0));
    assert_eq!(c.call(&["PING"]), "+PONG");
    lab.kill(0);
}

/// One INFO field, read on a fresh connection that authenticates first.
trait InfoAuthenticated {
    fn info_field_authenticated(&self, password: &str, section: &str, field: &str) -> String;
}

impl InfoAuthenticated for Node {
    fn info_field_authenticated(&self, password: &str, section: &str, field: &str) -> String {
        let mut c = Client::connect(self.client);
        assert_eq!(c.call(&["AUTH", password]), "+OK");
        admin_info(&mut c, section, field)
    }
}

fn admin_info(c: &mut Client, section: &str, field: &str) -> String {
    let text = c.call(&["INFO", section]);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}:\n{text}"))
        .trim()
        .to_owned()
}

fn http_get(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to metrics");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// SHA-256 in hex, by the system's `sha256sum`: the test does not share
/// the node's code for it.
fn sha256_hex(text: &str) -> String {
    let mut child = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("sha256sum");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("a hash").to_owned()
}
