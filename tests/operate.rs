//! What an operator meets first: `rumor dev`, the example configs, and
//! errors for bad flags and config values.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{members, wait_for};
use redis::Commands;

fn rumor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rumor"))
}

/// Runs rumor to completion (it must fail fast) and returns (code, stderr).
fn run_failing(args: &[&str]) -> (Option<i32>, String) {
    let out = rumor().args(args).stdin(Stdio::null()).output().expect("run rumor");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_flags_and_config_values_exit_2_naming_them() {
    let (code, err) = run_failing(&["serve", "--listen", "nowhere"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--listen"), "{err}");
    let (code, err) = run_failing(&["serve", "--metrics", "nowhere"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--metrics"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "nmae = \"x\"\n").unwrap();
    let (code, err) = run_failing(&["serve", "--config", typo.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("nmae") && err.contains("typo.toml"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let bad_metrics = dir.path().join("metrics.toml");
    std::fs::write(&bad_metrics, "metrics = \"localhost\"\n").unwrap();
    let (code, err) = run_failing(&["serve", "--config", bad_metrics.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("metrics = \"localhost\""), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let zero = dir.path().join("zero.toml");
    std::fs::write(&zero, "[membership]\nsuspect_timeout_ms = 0\n").unwrap();
    let (code, err) = run_failing(&["serve", "--config", zero.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("membership.suspect_timeout_ms"), "{err}");

    let (code, err) = run_failing(&["serve", "--fsync", "sometimes"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--fsync"), "{err}");
    let bad_key = dir.path().join("bad.key");
    std::fs::write(
        &bad_key,
        "# a comment
not base64!
",
    )
    .unwrap();
    let (code, err) = run_failing(&["serve", "--cluster-key-file", bad_key.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cluster_key_file") && err.contains("bad.key line 2"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_three_alive(port: u16) {
    let url = format!("redis://127.0.0.1:{port}/");
    wait_for("three members alive", Duration::from_secs(20), || {
        let mut con =
            redis::Client::open(url.as_str()).ok()?.get_connection_with_timeout(Duration::from_secs(1)).ok()?;
        let seen = members(&mut con);
        (seen.len() == 3 && seen.iter().all(|(_, _, s)| s == "alive")).then_some(())
    });
}

/// The lines `output` prints, as they come, from a thread that reads it to
/// the end (so the process never blocks on a full pipe).
fn lines_of(output: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits up to 20 s for a line accepted by `wanted`, keeping every line read in `printed`.
fn wait_line(lines: &mpsc::Receiver<String>, printed: &mut Vec<String>, what: &str, wanted: impl Fn(&str) -> bool) {
    wait_for(what, Duration::from_secs(20), || {
        let line = lines.try_recv().ok()?;
        printed.push(line.clone());
        wanted(&line).then_some(())
    });
}

fn connect(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap()
}

/// Both use the documented fixed ports (6380.., 7946..), so they run one
/// after the other in one test.
#[test]
fn dev_and_the_example_configs_start_working_meshes() {
    let mut dev = rumor().args(["dev", "--nodes", "3"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let stdout = lines_of(dev.stdout.take().unwrap());
    let mut running = Running(vec![dev]);
    let mut printed = Vec::new();
    // Not a terminal: the status comes as plain lines, and shows the mesh whole.
    let full = "mesh: 3/3 nodes up · members alive everywhere · keys 0 everywhere · ";
    wait_line(&stdout, &mut printed, "the status to show the whole mesh", |l| l.starts_with(full));
    assert!(printed.iter().any(|l| l == "node3: redis-cli -p 6382   (gossip 127.0.0.1:7948)"), "{printed:?}");
    wait_three_alive(6380);
    let () = connect(6380).set("hello", "mesh").unwrap();
    wait_for("the write on node 3", Duration::from_secs(2), || {
        connect(6382).get::<_, Option<String>>("hello").unwrap().map(|_| ())
    });
    wait_line(&stdout, &mut printed, "the status to show the key everywhere", |l| {
        l.contains(" · keys 1 everywhere · ")
    });
    let pid = running.0[0].id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = wait_for("dev to stop on Ctrl-C", Duration::from_secs(20), || running.0[0].try_wait().unwrap());
    assert!(status.success(), "{status:?}");
    running.0.clear();
    printed.extend(stdout.iter());
    assert!(printed.iter().all(|l| !l.contains(['\x1b', '\r'])), "no escape codes off a terminal: {printed:?}");

    let root = env!("CARGO_MANIFEST_DIR");
    for i in 1..=3 {
        let config = format!("{root}/config/node{i}.toml");
        let child = rumor().args(["serve", "--config", &config]).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        running.0.push(child.unwrap());
    }
    wait_three_alive(6381);
}
