//! A mesh of real `rumor serve` processes on loopback, seen through a real
//! Redis client.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::time::{Duration, Instant};

use common::{Node, members, mesh, state_of, wait_all_alive, wait_for};
use redis::Commands;

#[test]
fn every_node_sees_every_other_alive() {
    let nodes = mesh(3);
    for node in &nodes {
        let seen = members(&mut node.connect());
        assert_eq!(seen.len(), 3, "{} sees {seen:?}", node.name);
        let names: Vec<_> = seen.iter().map(|(name, _, _)| name.as_str()).collect();
        for other in &nodes {
            assert!(names.contains(&other.name.as_str()), "{} misses {}", node.name, other.name);
        }
    }
}

#[test]
fn a_write_is_readable_on_every_other_node_within_a_second() {
    let nodes = mesh(3);
    let mut writer = nodes[0].connect();
    let mut readers: Vec<_> = nodes[1..].iter().map(Node::connect).collect();
    for i in 0..20 {
        let key = format!("key:{i}");
        let value = format!("value:{i}");
        let () = writer.set(&key, &value).unwrap();
        let start = Instant::now();
        for reader in &mut readers {
            wait_for(&format!("{key} to spread"), Duration::from_secs(1), || {
                let got: Option<String> = reader.get(&key).unwrap();
                (got.as_deref() == Some(value.as_str())).then_some(())
            });
        }
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}

#[test]
fn binary_keys_and_large_values_spread() {
    let nodes = mesh(3);
    let key: Vec<u8> = vec![0, 255, 13, 10, b' ', 1];
    // Far bigger than a datagram: travels over the gossip stream.
    let value: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let () = nodes[1].connect().set(&key, &value).unwrap();
    for node in &nodes {
        let mut con = node.connect();
        wait_for("large value to spread", Duration::from_secs(5), || {
            let got: Option<Vec<u8>> = con.get(&key).unwrap();
            (got.as_ref() == Some(&value)).then_some(())
        });
    }
}

#[test]
fn last_write_wins_on_conflicting_writes() {
    let nodes = mesh(3);
    let mut a = nodes[0].connect();
    let mut b = nodes[1].connect();
    // Sequential writes from two nodes: the later one wins everywhere. The
    // later write is issued after the first is acknowledged and after the
    // wall clock moved past its millisecond, so its version is greater.
    for round in 0..10 {
        let key = format!("conflict:{round}");
        let () = a.set(&key, "first").unwrap();
        let first_done = Instant::now();
        while first_done.elapsed() < Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        let () = b.set(&key, "second").unwrap();
        for node in &nodes {
            let mut con = node.connect();
            wait_for("the later write everywhere", Duration::from_secs(2), || {
                let got: Option<String> = con.get(&key).unwrap();
                (got.as_deref() == Some("second")).then_some(())
            });
        }
    }
    // Concurrent writes: whichever wins, every node agrees.
    let mut handles = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut con = node.connect();
        handles.push(std::thread::spawn(move || {
            for round in 0..50 {
                let () = con.set(format!("race:{round}"), format!("from-{i}")).unwrap();
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let mut cons: Vec<_> = nodes.iter().map(Node::connect).collect();
    for round in 0..50 {
        let key = format!("race:{round}");
        wait_for("all nodes to agree", Duration::from_secs(3), || {
            let values: Vec<Option<String>> = cons.iter_mut().map(|c| c.get(&key).unwrap()).collect();
            (values[0].is_some() && values.iter().all(|v| *v == values[0])).then_some(())
        });
    }
}

#[test]
fn deletes_and_expiry_spread() {
    let nodes = mesh(3);
    let mut a = nodes[0].connect();
    let mut cons: Vec<_> = nodes.iter().map(Node::connect).collect();
    let () = a.set("doomed", "v").unwrap();
    for con in &mut cons {
        wait_for("doomed to spread", Duration::from_secs(1), || {
            con.get::<_, Option<String>>("doomed").unwrap().map(|_| ())
        });
    }
    let deleted: i64 = cons[2].del("doomed").unwrap();
    assert_eq!(deleted, 1);
    for con in &mut cons {
        wait_for("the delete to spread", Duration::from_secs(1), || {
            con.get::<_, Option<String>>("doomed").unwrap().is_none().then_some(())
        });
    }

    // Long enough for a loaded debug build to spread the key before it dies.
    let () = redis::cmd("SET").arg("brief").arg("v").arg("PX").arg(3000).query(&mut a).unwrap();
    for con in &mut cons {
        let pttl: i64 = wait_for("the expiring key to spread", Duration::from_secs(2), || {
            let pttl: i64 = con.pttl("brief").unwrap();
            (pttl > 0).then_some(pttl)
        });
        assert!(pttl <= 3000);
    }
    for con in &mut cons {
        wait_for("the key to expire everywhere", Duration::from_secs(6), || {
            con.get::<_, Option<String>>("brief").unwrap().is_none().then_some(())
        });
    }
    let exists: i64 = cons[1].exists("brief").unwrap();
    assert_eq!(exists, 0);
}

#[test]
fn rename_and_copy_spread_with_their_deadline() {
    let nodes = mesh(3);
    let mut a = nodes[0].connect();
    let mut cons: Vec<_> = nodes.iter().map(Node::connect).collect();
    let () = redis::cmd("SET").arg("old").arg("v").arg("EX").arg(100).query(&mut a).unwrap();
    for con in &mut cons {
        wait_for("old to spread", Duration::from_secs(1), || con.get::<_, Option<String>>("old").unwrap().map(|_| ()));
    }
    let () = redis::cmd("RENAME").arg("old").arg("new").query(&mut cons[1]).unwrap();
    let copied: i64 = redis::cmd("COPY").arg("new").arg("copy").query(&mut cons[1]).unwrap();
    assert_eq!(copied, 1);
    for con in &mut cons {
        wait_for("the rename and the copy to spread", Duration::from_secs(1), || {
            let (old, new, copy): (Option<String>, Option<String>, Option<String>) =
                redis::cmd("MGET").arg("old").arg("new").arg("copy").query(con).unwrap();
            (old.is_none() && new.as_deref() == Some("v") && copy.as_deref() == Some("v")).then_some(())
        });
        for key in ["new", "copy"] {
            let ttl: i64 = con.ttl(key).unwrap();
            assert!((90..=100).contains(&ttl), "{key} kept the deadline: {ttl}");
        }
    }
}

#[test]
fn a_killed_node_is_marked_down_and_a_restart_rejoins() {
    let mut nodes = mesh(3);
    nodes[2].kill();
    let dead = nodes[2].gossip;
    for observer in &nodes[..2] {
        wait_for("the killed node to be down", Duration::from_secs(10), || {
            (state_of(observer, dead).as_deref() == Some("down")).then_some(())
        });
    }
    // Same addresses, new process: a greater life wins the address.
    nodes[2].spawn();
    wait_all_alive(&nodes, Duration::from_secs(15));
    // And it takes part in gossip again.
    let () = nodes[2].connect().set("after-restart", "yes").unwrap();
    let mut con = nodes[0].connect();
    wait_for("a write from the restarted node", Duration::from_secs(2), || {
        con.get::<_, Option<String>>("after-restart").unwrap().map(|_| ())
    });
}

#[test]
fn sigterm_leaves_cleanly() {
    let mut nodes = mesh(3);
    // A value too big for a datagram opens gossip streams, which leaving
    // must flush and close rather than wait on forever.
    let big = vec![b'x'; 100_000];
    let () = nodes[1].connect().set("big", &big).unwrap();
    let mut con = nodes[0].connect();
    wait_for("the big value to spread", Duration::from_secs(2), || {
        con.get::<_, Option<Vec<u8>>>("big").unwrap().map(|_| ())
    });
    let status = nodes[1].terminate();
    assert!(status.success(), "exit status {status:?}");
    let gone = nodes[1].gossip;
    // Seen as *left* by every other node: one the failure detector caught
    // (probe 300 ms + suspicion 1 s) would be listed as down.
    for observer in [&nodes[0], &nodes[2]] {
        wait_for("the leaver to be listed as left", Duration::from_secs(3), || {
            (state_of(observer, gone).as_deref() == Some("left")).then_some(())
        });
    }
    let leaver_log = nodes[1].log_text();
    assert!(leaver_log.contains("left the mesh"));
    assert!(!leaver_log.contains("declared this node down"), "a leave is not a failure:\n{leaver_log}");
    wait_for("the observer to log the leave", Duration::from_secs(3), || {
        nodes[0].log_text().contains("member left").then_some(())
    });
}

/// INFO on a live node has every section in Redis's format, and its numbers
/// describe the mesh: members, keys, gossip traffic.
#[test]
fn info_describes_the_running_mesh() {
    let nodes = mesh(3);
    let mut con = nodes[1].connect();
    let () = con.set("info:a", "1").unwrap();
    let () = redis::cmd("SET").arg("info:b").arg("2").arg("EX").arg(100).query(&mut con).unwrap();
    let text: String = redis::cmd("INFO").query(&mut con).unwrap();
    let titles: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# ")).collect();
    assert_eq!(
        titles,
        ["Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "Keyspace", "Membership", "Gossip"]
    );
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in INFO:\n{text}"))
            .trim()
            .to_owned()
    };
    assert_eq!(field("node_name"), "node2");
    assert_eq!(field("tcp_port"), nodes[1].client.port().to_string());
    assert_eq!(field("members_alive"), "3");
    assert_eq!(field("members_down"), "0");
    assert_eq!(field("joined"), "1");
    assert_eq!(field("gossip_addr"), nodes[1].gossip.to_string());
    assert_eq!(field("db0").split(',').take(2).collect::<Vec<_>>(), ["keys=2", "expires=1"]);
    assert_eq!(field("data_dir"), "", "memory only");
    assert!(field("connected_clients").parse::<u64>().unwrap() >= 1);
    assert!(field("packets_out").parse::<u64>().unwrap() > 0, "SWIM and pushes have gone out");
    assert!(field("used_memory").parse::<u64>().unwrap() > 0);
    // And the other nodes count the keys pushed to them.
    let mut other = nodes[2].connect();
    wait_for("the keys to reach node3", Duration::from_secs(2), || {
        let text: String = redis::cmd("INFO").arg("keyspace").query(&mut other).unwrap();
        text.contains("db0:keys=2,expires=1,").then_some(())
    });
}

/// `--log-format json`: one JSON object per line, membership changes at info.
#[test]
fn json_logs_are_one_object_per_line() {
    let first = Node::start_with("json1", &[], &["--log-format", "json"]);
    let second = Node::start_with("json2", &[first.gossip], &["--log-format", "json"]);
    let nodes = [first, second];
    wait_all_alive(&nodes, Duration::from_secs(10));
    let log = wait_for("the join in json2's log", Duration::from_secs(5), || {
        let log = nodes[1].log_text();
        log.contains("member up").then_some(log)
    });
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let up = lines.iter().find(|l| l["fields"]["message"] == "member up").expect("a member-up line");
    assert_eq!(up["level"], "INFO");
    assert_eq!(up["fields"]["name"], "json1");
    assert!(lines.iter().all(|l| l["timestamp"].is_string() && l["level"].is_string()));
}
