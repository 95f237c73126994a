//! `--data-dir` on real processes: what a client was told is written
//! survives `kill -9` and restarts, a restarted node keeps its id and
//! catches up on what it missed, and data older than the tombstone TTL is
//! not brought back into a mesh that has forgotten its deletes.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Node, mesh, wait_all_alive, wait_for};

fn data_dir_args(dir: &Path, fsync: &str) -> Vec<String> {
    vec!["--data-dir".into(), dir.display().to_string(), "--fsync".into(), fsync.into()]
}

fn start(name: &str, seeds: &[std::net::SocketAddr], extra: &[String]) -> Node {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    Node::start_with(name, seeds, &extra)
}

/// What writers were told: keys set (with their values) and keys deleted.
#[derive(Default)]
struct Acknowledged {
    set: Vec<(String, String)>,
    deleted: Vec<String>,
    /// Deletes sent but not answered when the node died: either outcome is right.
    maybe_deleted: Vec<String>,
}

/// Writers on four connections send pipelines of SETs and DELs as fast as
/// the node answers; the node is killed with SIGKILL while they are at it.
/// Every write acknowledged before the kill must be there after the restart.
#[test]
fn acknowledged_writes_survive_kill_9() {
    for fsync in ["always", "everysec", "no"] {
        let dir = tempfile::tempdir().unwrap();
        let args = data_dir_args(dir.path(), fsync);
        let mut node = start(&format!("kill9-{fsync}"), &[], &args);
        let acked = Arc::new(Mutex::new(Acknowledged::default()));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (mut con, acked) = (node.connect(), acked.clone());
                std::thread::spawn(move || {
                    // Bounded: 400 pipelines of 50 at most, or until the kill.
                    for round in 0..400 {
                        let mut pipe = redis::pipe();
                        let keys: Vec<String> = (0..50).map(|i| format!("w{w}:r{round}:k{i}")).collect();
                        for key in &keys {
                            pipe.set(key, format!("v-{key}")).ignore();
                        }
                        // Each round also deletes a key an earlier round set.
                        let deleted = (round > 0).then(|| format!("w{w}:r{}:k0", round - 1));
                        if let Some(key) = &deleted {
                            pipe.del(key).ignore();
                        }
                        if pipe.query::<()>(&mut con).is_err() {
                            acked.lock().unwrap().maybe_deleted.extend(deleted);
                            return;
                        }
                        let mut acked = acked.lock().unwrap();
                        acked.set.extend(keys.into_iter().map(|k| {
                            let v = format!("v-{k}");
                            (k, v)
                        }));
                        acked.deleted.extend(deleted);
                    }
                })
            })
            .collect();
        wait_for("a few thousand acknowledged writes", Duration::from_secs(30), || {
            (acked.lock().unwrap().set.len() >= 4_000).then_some(())
        });
        node.kill();
        for writer in writers {
            writer.join().unwrap();
        }
        let acked = std::mem::take(&mut *acked.lock().unwrap());

        node.spawn();
        let mut con = node.connect();
        let deleted: std::collections::HashSet<&String> = acked.deleted.iter().collect();
        let mut missing = Vec::new();
        for chunk in acked.set.chunks(1_000) {
            let keys: Vec<&String> = chunk.iter().map(|(k, _)| k).collect();
            let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut con).unwrap();
            for ((key, value), held) in chunk.iter().zip(values) {
                let expected = (!deleted.contains(key)).then(|| value.clone());
                if held != expected && !(held.is_none() && acked.maybe_deleted.contains(key)) {
                    missing.push(format!("{key}: expected {expected:?}, found {held:?}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "fsync {fsync}: {} of {} acknowledged writes lost, e.g. {:?}\n{}",
            missing.len(),
            acked.set.len(),
            &missing[..missing.len().min(5)],
            node.log_text()
        );
        common::report(&format!(
            "fsync {fsync}: {} SETs and {} DELs acknowledged before kill -9, all there after the restart ({} entries loaded)",
            acked.set.len(),
            acked.deleted.len(),
            node.info_field("persistence", "entries_loaded"),
        ));
    }
}

#[test]
fn a_restart_keeps_the_node_id_the_data_and_deadlines() {
    let dir = tempfile::tempdir().unwrap();
    let args = data_dir_args(dir.path(), "everysec");
    let mut node = start("restart", &[], &args);
    let mut con = node.connect();
    let () = redis::cmd("SET").arg("session").arg("alice").arg("PX").arg(600_000).query(&mut con).unwrap();
    let () = redis::cmd("SET").arg("config").arg(vec![0u8, 255, 10, 13]).query(&mut con).unwrap();
    let () = redis::cmd("SET").arg("short").arg("x").arg("PX").arg(300).query(&mut con).unwrap();
    // The empty key, and the longest key a data dir holds; one byte more is
    // refused at the client limit rather than breaking the storage thread.
    let longest = "k".repeat(65_534);
    let () = redis::cmd("SET").arg("").arg("empty").query(&mut con).unwrap();
    let () = redis::cmd("SET").arg(&longest).arg("long").query(&mut con).unwrap();
    let too_long: redis::RedisResult<()> = redis::cmd("SET").arg(format!("{longest}k")).arg("x").query(&mut con);
    assert!(too_long.is_err());
    let id = node.info_field("server", "node_id");
    assert_eq!(node.info_field("persistence", "data_dir"), dir.path().display().to_string());
    assert_eq!(node.info_field("persistence", "fsync"), "everysec");
    assert!(node.terminate().success());
    assert!(node.log_text().contains("data dir synced"));

    node.spawn();
    let mut con = node.connect();
    // Connections made while the dir loads are served once it is loaded.
    assert_eq!(node.info_field("server", "node_id"), id, "the node keeps its id");
    assert_eq!(node.info_field("persistence", "entries_loaded"), "5");
    let empty: Option<String> = redis::cmd("GET").arg("").query(&mut con).unwrap();
    let long: Option<String> = redis::cmd("GET").arg(&longest).query(&mut con).unwrap();
    assert_eq!((empty.as_deref(), long.as_deref()), (Some("empty"), Some("long")));
    let session: Option<String> = redis::cmd("GET").arg("session").query(&mut con).unwrap();
    assert_eq!(session.as_deref(), Some("alice"));
    let ttl: i64 = redis::cmd("PTTL").arg("session").query(&mut con).unwrap();
    assert!(ttl > 500_000 && ttl <= 600_000, "the deadline travels with the entry: {ttl}");
    let config: Vec<u8> = redis::cmd("GET").arg("config").query(&mut con).unwrap();
    assert_eq!(config, [0u8, 255, 10, 13]);
    wait_for("the short-lived key to expire", Duration::from_secs(5), || {
        redis::cmd("GET").arg("short").query::<Option<String>>(&mut con).unwrap().is_none().then_some(())
    });
    assert!(node.log_text().contains("loaded 5 entries"), "{}", node.log_text());
}

/// A client and a gossip address for a `rumor serve` started by hand: from
/// free_port, never port 0, which the kernel may pick from the ports handed
/// to a node of a parallel test that has not bound them yet.
fn spare_addresses() -> (String, String) {
    (format!("127.0.0.1:{}", common::free_port()), format!("127.0.0.1:{}", common::free_port()))
}

#[test]
fn a_second_node_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = start("owner", &[], &data_dir_args(dir.path(), "everysec"));
    let (listen, gossip) = spare_addresses();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rumor"))
        .args(["serve", "--listen", &listen, "--gossip", &gossip, "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("data dir {}", dir.path().display())), "{stderr}");
}

/// A node restarted from its data dir loads what it had and gets from its
/// peers what it missed while down — new keys, and deletes of keys it held.
#[test]
fn a_restarted_node_keeps_what_it_had_and_catches_up_on_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = mesh(2);
    let mut b = start("b", &[nodes[0].gossip], &data_dir_args(dir.path(), "everysec"));
    let mut a_con = nodes[0].connect();
    let mut pipe = redis::pipe();
    for i in 0..2_000 {
        pipe.set(format!("old{i}"), i).ignore();
    }
    pipe.query::<()>(&mut a_con).unwrap();
    wait_for("b to hold the first 2000 keys", Duration::from_secs(10), || {
        (redis::cmd("DBSIZE").query::<u64>(&mut b.connect()).unwrap() == 2_000).then_some(())
    });
    // Entries b took from gossip were acknowledged to no client: b writes
    // them to disk without holding anything up. Let it finish.
    wait_for("b to write them to its data dir", Duration::from_secs(10), || {
        let written: u64 = b.info_field("persistence", "changes_written").parse().unwrap();
        (written >= 2_000 && b.info_field("persistence", "changes_pending") == "0").then_some(())
    });
    b.kill();
    let mut pipe = redis::pipe();
    for i in 0..1_000 {
        pipe.set(format!("new{i}"), i).ignore();
        pipe.del(format!("old{i}")).ignore();
    }
    pipe.query::<()>(&mut a_con).unwrap();

    b.spawn();
    assert_eq!(b.info_field("persistence", "entries_loaded"), "2000");
    nodes.push(b);
    wait_all_alive(&nodes, Duration::from_secs(10));
    let b = &nodes[2];
    let mut b_con = b.connect();
    let probe = ["old0", "old999", "old1000", "old1999", "new0", "new999"];
    wait_for("b to catch up on the new keys and the deletes", Duration::from_secs(10), || {
        let held: Vec<Option<u64>> = redis::cmd("MGET").arg(&probe[..]).query(&mut b_con).unwrap();
        let size: u64 = redis::cmd("DBSIZE").query(&mut b_con).unwrap();
        (held == [None, None, Some(1_000), Some(1_999), Some(0), Some(999)] && size == 2_000).then_some(())
    });
}

/// A node away long enough to be treated as gone for good must not bring
/// back a key the mesh deleted and has since forgotten the tombstone of.
#[test]
fn data_older_than_the_tombstone_ttl_is_not_brought_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("short-ttl.toml");
    std::fs::write(&config, "[anti_entropy]\ntombstone_ttl_ms = 1500\nmember_gone_after_ms = 1500\n").unwrap();
    let ttl_args = ["--config".to_owned(), config.display().to_string()];
    let a = start("a", &[], &ttl_args);
    let data = dir.path().join("b-data");
    let mut b_args = data_dir_args(&data, "everysec");
    b_args.extend(ttl_args.iter().cloned());
    let mut b = start("b", &[a.gossip], &b_args);
    let mut a_con = a.connect();
    let () = redis::cmd("SET").arg("doomed").arg("old").query(&mut a_con).unwrap();
    let () = redis::cmd("SET").arg("kept").arg("yes").query(&mut a_con).unwrap();
    wait_for("b to hold both keys", Duration::from_secs(10), || {
        (redis::cmd("DBSIZE").query::<u64>(&mut b.connect()).unwrap() == 2).then_some(())
    });
    // Leaving, b notes on disk that it was in the mesh until then.
    assert!(b.terminate().success());
    let () = redis::cmd("DEL").arg("doomed").query(&mut a_con).unwrap();
    wait_for("a to forget the tombstone", Duration::from_secs(40), || {
        (a.info_field("gossip", "tombstones_forgotten").parse::<u64>().unwrap() >= 1).then_some(())
    });

    // By default a stale data dir is refused, with what to do about it.
    let (listen, gossip) = spare_addresses();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_rumor"))
        .args(["serve", "--listen", &listen, "--gossip", &gossip, "--seed", &a.gossip.to_string()])
        .args(&b_args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("longer than member_gone_after") && stderr.contains("--stale-data discard"), "{stderr}");

    b.extra.extend(["--stale-data".to_owned(), "discard".to_owned()]);
    b.spawn();
    wait_for("b to discard its stale entries", Duration::from_secs(10), || {
        b.log_text().contains("the data dir is stale: discarding its entries").then_some(())
    });
    let nodes = [a, b];
    wait_all_alive(&nodes, Duration::from_secs(10));
    let mut b_con = nodes[1].connect();
    wait_for("b to bootstrap the kept key", Duration::from_secs(10), || {
        redis::cmd("GET").arg("kept").query::<Option<String>>(&mut b_con).unwrap()
    });
    // Two more sync rounds on each side: had b kept the old key, they
    // would have brought it back.
    let rounds = |node: &Node| node.info_field("gossip", "sync_rounds").parse::<u64>().unwrap();
    let before = [rounds(&nodes[0]), rounds(&nodes[1])];
    wait_for("two more sync rounds on each node", Duration::from_secs(10), || {
        (rounds(&nodes[0]) >= before[0] + 2 && rounds(&nodes[1]) >= before[1] + 2).then_some(())
    });
    for node in &nodes {
        let doomed: Option<String> = redis::cmd("GET").arg("doomed").query(&mut node.connect()).unwrap();
        assert_eq!(doomed, None, "{} resurrected a deleted key", node.name);
    }
}
