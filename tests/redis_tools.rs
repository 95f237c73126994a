//! redis-cli and redis-benchmark against a node of a real mesh. Skipped
//! (with a message) where redis-tools is not installed; CI installs it.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::process::Command;

use common::mesh;

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

fn run(tool: &str, args: &[String]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("{tool}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{tool} {args:?} failed: {text}");
    text
}

#[test]
fn redis_cli_and_redis_benchmark_work_against_a_node() {
    if !have("redis-cli") || !have("redis-benchmark") {
        eprintln!("SKIPPED: redis-cli/redis-benchmark not installed (apt-get install redis-tools)");
        return;
    }
    let nodes = mesh(3);
    let port = |i: usize| nodes[i].client.port().to_string();
    let cli = |i: usize, args: &[&str]| {
        let mut all = vec!["-p".to_string(), port(i)];
        all.extend(args.iter().map(|s| s.to_string()));
        run("redis-cli", &all).trim().to_string()
    };
    assert_eq!(cli(0, &["PING"]), "PONG");
    assert_eq!(cli(0, &["SET", "greeting", "hello"]), "OK");
    common::wait_for("greeting on node3", std::time::Duration::from_secs(1), || {
        (cli(2, &["GET", "greeting"]) == "hello").then_some(())
    });
    assert!(cli(1, &["INFO", "server"]).contains("# Server"));
    assert_eq!(cli(1, &["MEMBERS"]).lines().count(), 3);
    assert!(cli(0, &["NOSUCH"]).contains("unknown command"));

    for pipeline in ["1", "16"] {
        let args: Vec<String> = ["-p", &port(0), "-t", "set,get", "-n", "20000", "-c", "20", "-P", pipeline, "-q"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = run("redis-benchmark", &args);
        assert!(out.contains("SET:") && out.contains("GET:"), "{out}");
        assert!(!out.contains("ERR"), "{out}");
    }
}
