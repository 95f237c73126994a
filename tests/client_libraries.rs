//! Real client libraries at their default settings against a real
//! two-node mesh: redis-py 8 and node-redis 6 (both open with `HELLO 3`),
//! ioredis 5 (RESP2, an INFO ready check), and the `redis` crate over RESP2
//! and RESP3. The Python and Node.js checks are scripts under
//! `tests/clients/`; each must print its last line and exit 0.
//!
//! A library that is not installed skips its test with a message, unless
//! `RUMOR_REQUIRE_CLIENTS=1` (set by `.ci/run`, which installs them), when
//! it fails.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Node, mesh, wait_for};

/// The scripts' directory.
fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Whether the library is there; if not, a skip (or a failure under
/// `RUMOR_REQUIRE_CLIENTS=1`) with `install` as the hint.
fn available(name: &str, probe: &mut Command, install: &str) -> bool {
    let found = probe.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if found {
        return true;
    }
    let required = std::env::var("RUMOR_REQUIRE_CLIENTS").is_ok_and(|v| v == "1");
    assert!(!required, "{name} is required (RUMOR_REQUIRE_CLIENTS=1) but not installed: {install}");
    common::report(&format!("SKIPPED: {name} is not installed ({install})"));
    false
}

/// Runs a client script against the first two nodes and fails with its
/// output unless it succeeds within [`SCRIPT_DEADLINE`].
fn run_script(program: &str, script: &Path, nodes: &[Node]) {
    let started = Instant::now();
    let mut child = Command::new(program)
        .arg(script)
        .args([nodes[0].client.to_string(), nodes[1].client.to_string()])
        .current_dir(script.parent().expect("the script's directory"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let status = wait_for(&format!("{} to finish", script.display()), SCRIPT_DEADLINE, || {
        child.try_wait().expect("wait for the script")
    });
    let output = child.wait_with_output().expect("the script's output");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(status.success(), "{} failed ({status}):\n{text}", script.display());
    assert!(text.contains("all checks passed"), "{} stopped early:\n{text}", script.display());
    common::report(&format!("{}: passed in {:?}", script.display(), started.elapsed()));
}

/// A script that never finishes (a client retrying forever) fails after this.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn redis_py_8_at_default_settings() {
    let probe = "import redis, sys; sys.exit(0 if redis.__version__.startswith('8.') else 1)";
    if !available("redis-py 8", Command::new("python3").args(["-c", probe]), "pip install 'redis>=8,<9'") {
        return;
    }
    let nodes = mesh(2);
    run_script("python3", &clients_dir().join("python/redis_py.py"), &nodes);
}

/// Whether `tests/clients/node` has its packages (`npm ci` there).
fn node_package(name: &str) -> bool {
    let dir = clients_dir().join("node");
    let probe = format!("require.resolve('{name}/package.json')");
    available(
        &format!("node package {name}"),
        Command::new("node").args(["-e", &probe]).current_dir(&dir),
        "npm ci in tests/clients/node",
    )
}

#[test]
fn node_redis_6_at_default_settings() {
    if !node_package("redis") {
        return;
    }
    let nodes = mesh(2);
    run_script("node", &clients_dir().join("node/node_redis.mjs"), &nodes);
}

#[test]
fn ioredis_5_at_default_settings() {
    if !node_package("ioredis") {
        return;
    }
    let nodes = mesh(2);
    run_script("node", &clients_dir().join("node/ioredis.mjs"), &nodes);
}

#[test]
fn the_redis_crate_over_resp2_and_resp3() {
    use redis::{Commands, Value};
    let nodes = mesh(2);
    for (protocol, query) in [("resp2", ""), ("resp3", "?protocol=resp3")] {
        let url = |node: &Node| format!("redis://{}/{query}", node.client);
        let mut one = redis::Client::open(url(&nodes[0])).unwrap().get_connection().unwrap();
        let mut other = redis::Client::open(url(&nodes[1])).unwrap().get_connection().unwrap();
        let key = format!("crate:{protocol}");
        let () = one.set(&key, "value").unwrap();
        let got: Option<String> = one.get(&key).unwrap();
        assert_eq!(got.as_deref(), Some("value"), "{protocol}");
        let missing: Value = redis::cmd("GET").arg("crate:missing").query(&mut one).unwrap();
        assert_eq!(missing, Value::Nil, "{protocol}");
        wait_for(&format!("{key} on the other node"), Duration::from_secs(10), || {
            (other.get::<_, Option<String>>(&key).unwrap().as_deref() == Some("value")).then_some(())
        });
        let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut one).unwrap();
        let resp = if protocol == "resp3" { "resp=3" } else { "resp=2" };
        assert!(info.contains(resp), "{protocol}: {info}");
        assert!(info.contains("lib-name=redis-rs"), "the crate's CLIENT SETINFO arrived: {info}");
        let config: Value = redis::cmd("CONFIG").arg("GET").arg("maxclients").query(&mut one).unwrap();
        match (protocol, &config) {
            ("resp3", Value::Map(pairs)) => assert_eq!(pairs.len(), 1),
            ("resp2", Value::Array(items)) => assert_eq!(items.len(), 2),
            _ => panic!("{protocol}: CONFIG GET answered {config:?}"),
        }
        let mut pipe = redis::pipe();
        for i in 0..50 {
            pipe.set(format!("crate:{protocol}:{i}"), i).ignore();
        }
        pipe.get(format!("crate:{protocol}:49"));
        let (last,): (i64,) = pipe.query(&mut one).unwrap();
        assert_eq!(last, 49, "{protocol}");
    }
}
