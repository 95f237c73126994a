//! TLS for clients, on real processes and real tools: `redis-cli --tls`
//! sets and gets, a plain client on the TLS port is refused while the node
//! goes on, a CA file makes client certificates required, and SIGHUP swaps
//! the certificate for new handshakes while an open connection carries on
//! (and a bad file on reload keeps the one in use). Certificates are made
//! in each test with the `openssl` CLI.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use common::{Node, free_port, wait_for};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`NAME.crt`, `NAME.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A certificate `NAME.crt` / `NAME.key` signed by the CA `ca`, for a
/// server on 127.0.0.1 or (with `client`) for a client.
fn make_cert(dir: &Path, ca: &str, name: &str, client: bool) -> (PathBuf, PathBuf) {
    let (crt, key, csr, ext) =
        (format!("{name}.crt"), format!("{name}.key"), format!("{name}.csr"), format!("{name}.ext"));
    let usage = if client { "clientAuth" } else { "serverAuth" };
    std::fs::write(dir.join(&ext), format!("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n"))
        .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &crt,
            "-extfile",
            &ext,
        ],
    );
    (dir.join(crt), dir.join(key))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `redis-cli --tls` against `port`, trusting `ca`; `client` is a
/// certificate and key to present. Returns stdout, or stderr on failure.
fn redis_cli(port: u16, ca: &Path, client: Option<(&Path, &Path)>, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["--tls", "--cacert", path(ca), "-h", "127.0.0.1", "-p", &port.to_string()]);
    if let Some((cert, key)) = client {
        cmd.args(["--cert", path(cert), "--key", path(key)]);
    }
    let out = cmd.args(args).stdin(Stdio::null()).output().expect("redis-cli");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    // redis-cli exits 0 even when it cannot connect; it says so on stderr
    // or in its output.
    if out.status.success() && !stdout.contains("Could not connect") && !stdout.is_empty() {
        Ok(stdout)
    } else {
        Err(format!("{stdout} {stderr}"))
    }
}

/// A node serving TLS on a fresh port with `cert`/`key`, beside plain.
fn tls_node(name: &str, cert: &Path, key: &Path, extra: &[&str]) -> (Node, u16) {
    let port = free_port();
    let tls = SocketAddr::from(([127, 0, 0, 1], port)).to_string();
    let mut args = vec!["--tls-listen", &tls, "--tls-cert-file", path(cert), "--tls-key-file", path(key)];
    args.extend_from_slice(extra);
    (Node::start_with(name, &[], &args), port)
}

#[test]
fn redis_cli_over_tls_sets_and_gets() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "ca");
    let (cert, key) = make_cert(dir.path(), "ca", "server", false);
    let (node, port) = tls_node("tls", &cert, &key, &[]);
    let ca = dir.path().join("ca.crt");
    assert_eq!(redis_cli(port, &ca, None, &["SET", "greeting", "hello over tls"]).unwrap(), "OK");
    assert_eq!(redis_cli(port, &ca, None, &["GET", "greeting"]).unwrap(), "hello over tls");
    // Both ports serve the same store.
    let plain: String = redis::cmd("GET").arg("greeting").query(&mut node.connect()).unwrap();
    assert_eq!(plain, "hello over tls");
    // A client that does not trust the node's CA refuses it.
    make_ca(dir.path(), "other");
    assert!(redis_cli(port, &dir.path().join("other.crt"), None, &["PING"]).is_err());
}

#[test]
fn a_plain_client_on_the_tls_port_is_refused_and_the_node_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "ca");
    let (cert, key) = make_cert(dir.path(), "ca", "server", false);
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "[tls]\nhandshake_timeout_ms = 500\n").unwrap();
    let (node, port) = tls_node("tls-plain", &cert, &key, &["--config", path(&config)]);
    let ca = dir.path().join("ca.crt");

    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    plain.write_all(b"PING\r\n").unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("PONG"), "a plain client is not served: {got:?}");

    // A client that connects and says nothing is closed at the deadline.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = std::time::Instant::now();
    let mut sink = [0u8; 64];
    assert!(matches!(silent.read(&mut sink), Ok(0) | Err(_)));
    assert!(started.elapsed() < Duration::from_secs(4), "closed at the 500 ms handshake timeout");

    assert_eq!(redis_cli(port, &ca, None, &["PING"]).unwrap(), "PONG");
    let failures: u64 = node.info_field("stats", "tls_handshake_failures").parse().unwrap();
    assert_eq!(failures, 2);
}

#[test]
fn a_ca_file_makes_client_certificates_required() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "ca");
    make_ca(dir.path(), "stranger");
    let (cert, key) = make_cert(dir.path(), "ca", "server", false);
    let (client_cert, client_key) = make_cert(dir.path(), "ca", "client", true);
    let (stranger_cert, stranger_key) = make_cert(dir.path(), "stranger", "intruder", true);
    let ca = dir.path().join("ca.crt");
    let (_node, port) = tls_node("mtls", &cert, &key, &["--tls-ca-cert-file", path(&ca)]);

    assert!(redis_cli(port, &ca, None, &["PING"]).is_err(), "no client certificate");
    assert!(redis_cli(port, &ca, Some((&stranger_cert, &stranger_key)), &["PING"]).is_err(), "another CA's");
    assert_eq!(redis_cli(port, &ca, Some((&client_cert, &client_key)), &["SET", "k", "v"]).unwrap(), "OK");
    assert_eq!(redis_cli(port, &ca, Some((&client_cert, &client_key)), &["GET", "k"]).unwrap(), "v");
}

/// An `openssl s_client` session to `port`: one TLS connection kept open.
struct Session {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Session {
    fn open(port: u16, ca: &Path) -> Session {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-verify_return_error", "-CAfile", path(ca)])
            .args(["-connect", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client");
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        Session { child, input, output }
    }

    /// Sends an inline command and reads one reply line.
    fn command(&mut self, line: &str) -> String {
        self.input.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        self.input.flush().unwrap();
        self.line()
    }

    /// Reads one reply line.
    fn line(&mut self) -> String {
        let mut reply = String::new();
        self.output.read_line(&mut reply).unwrap();
        reply.trim_end().to_owned()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "old-ca");
    make_ca(dir.path(), "new-ca");
    let (old_cert, old_key) = make_cert(dir.path(), "old-ca", "old", false);
    let (new_cert, new_key) = make_cert(dir.path(), "new-ca", "new", false);
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    std::fs::copy(&old_cert, &cert).unwrap();
    std::fs::copy(&old_key, &key).unwrap();
    let (node, port) = tls_node("reload", &cert, &key, &[]);
    let (old_ca, new_ca) = (dir.path().join("old-ca.crt"), dir.path().join("new-ca.crt"));

    let mut open = Session::open(port, &old_ca);
    assert_eq!(open.command("SET before reload"), "+OK");
    assert!(redis_cli(port, &new_ca, None, &["PING"]).is_err(), "the new CA is not trusted for the old cert");

    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    node.signal("HUP");
    wait_for("new handshakes to get the new certificate", Duration::from_secs(10), || {
        redis_cli(port, &new_ca, None, &["PING"]).ok().filter(|reply| reply == "PONG")
    });
    assert!(redis_cli(port, &old_ca, None, &["PING"]).is_err(), "the old certificate is no longer served");
    assert_eq!(open.command("GET before"), "$6");
    assert_eq!(open.line(), "reload");
    assert_eq!(open.command("PING"), "+PONG", "the connection opened before the reload still works");

    // A bad file on reload keeps the certificate in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    node.signal("HUP");
    wait_for("the failed reload to be logged", Duration::from_secs(10), || {
        node.log_text().contains("TLS reload failed").then_some(())
    });
    assert_eq!(redis_cli(port, &new_ca, None, &["PING"]).unwrap(), "PONG");
    assert_eq!(open.command("PING"), "+PONG");
}

#[test]
fn tls_only_opens_no_plain_port() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "ca");
    let (cert, key) = make_cert(dir.path(), "ca", "server", false);
    let (plain, tls, gossip) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_rumor"))
        .args(["serve", "--listen", &format!("127.0.0.1:{plain}"), "--gossip", &format!("127.0.0.1:{gossip}")])
        .args(["--tls-listen", &format!("127.0.0.1:{tls}"), "--tls-only"])
        .args(["--tls-cert-file", path(&cert), "--tls-key-file", path(&key)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rumor");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(child);
    let ca = dir.path().join("ca.crt");
    wait_for("the TLS port to answer", Duration::from_secs(20), || {
        redis_cli(tls, &ca, None, &["PING"]).ok().filter(|reply| reply == "PONG")
    });
    assert!(TcpStream::connect(("127.0.0.1", plain)).is_err(), "no plain port with --tls-only");
}

#[test]
fn a_handshake_under_way_does_not_hold_shutdown_up() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "ca");
    let (cert, key) = make_cert(dir.path(), "ca", "server", false);
    let (mut node, port) = tls_node("tls-stop", &cert, &key, &[]);
    let ca = dir.path().join("ca.crt");
    assert_eq!(redis_cli(port, &ca, None, &["PING"]).unwrap(), "PONG");
    // Connected, silent: its handshake would wait 10 s for it.
    let _silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    wait_for("the silent client to be counted", Duration::from_secs(5), || {
        let connected: u64 = node.info_field("clients", "connected_clients").parse().unwrap();
        (connected >= 2).then_some(())
    });
    let started = std::time::Instant::now();
    assert!(node.terminate().success());
    assert!(started.elapsed() < Duration::from_secs(5), "stopped in {:?}", started.elapsed());
}

#[test]
fn max_clients_counts_both_ports_and_refuses_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "ca");
    let (cert, key) = make_cert(dir.path(), "ca", "server", false);
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "[limits]\nmax_clients = 2\n").unwrap();
    let (node, port) = tls_node("tls-full", &cert, &key, &["--config", path(&config)]);
    let ca = dir.path().join("ca.crt");
    let mut session = Session::open(port, &ca);
    assert_eq!(session.command("PING"), "+PONG");
    // The start-up probe's slot frees as its connection task ends.
    let _plain = wait_for("a plain client slot", Duration::from_secs(5), || {
        let client = redis::Client::open(format!("redis://{}/", node.client)).ok()?;
        let mut con = client.get_connection_with_timeout(Duration::from_secs(1)).ok()?;
        redis::cmd("PING").query::<String>(&mut con).ok().filter(|pong| pong == "PONG").map(|_| con)
    });
    // One TLS and one plain client: the third, over TLS, is told why.
    let refused = redis_cli(port, &ca, None, &["PING"]).unwrap_or_else(|e| e);
    assert!(refused.contains("max number of clients reached"), "{refused}");
    assert_eq!(session.command("PING"), "+PONG");
}
