//! `--cluster-key-file` on real processes: nodes sharing a key form a mesh
//! and spread writes (datagrams and stream frames alike); a node with
//! another key, or none, cannot join it, and the mesh counts what it
//! refused; a key can be rotated without splitting the mesh.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Node, state_of, wait_all_alive, wait_for};

fn keygen() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rumor")).arg("keygen").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn key_file(dir: &Path, name: &str, keys: &[&str]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, keys.join("\n") + "\n").unwrap();
    path
}

fn keyed(name: &str, seeds: &[SocketAddr], key_file: Option<&Path>) -> Node {
    let path = key_file.map(|p| p.display().to_string());
    let extra: Vec<&str> = path.iter().flat_map(|p| ["--cluster-key-file", p.as_str()]).collect();
    Node::start_with(name, seeds, &extra)
}

fn auth_failures(node: &Node) -> u64 {
    let text: String = redis::cmd("INFO").arg("gossip").query(&mut node.connect()).unwrap();
    text.lines().find_map(|l| l.strip_prefix("auth_failures:")).unwrap().trim().parse().unwrap()
}

#[test]
fn a_keyed_mesh_spreads_writes_and_keeps_strangers_out() {
    let dir = tempfile::tempdir().unwrap();
    let mesh_key = key_file(dir.path(), "mesh.key", &[&keygen()]);
    let first = keyed("k1", &[], Some(&mesh_key));
    let seed = first.gossip;
    let nodes = vec![first, keyed("k2", &[seed], Some(&mesh_key)), keyed("k3", &[seed], Some(&mesh_key))];
    wait_all_alive(&nodes, Duration::from_secs(20));

    // A small value rides in datagrams, a big one in stream frames: both sealed.
    let mut con = nodes[0].connect();
    // Over the size sealed on a blocking thread.
    let big = vec![b'z'; 300_000];
    let () = redis::cmd("SET").arg("small").arg("v").query(&mut con).unwrap();
    let () = redis::cmd("SET").arg("big").arg(&big).query(&mut con).unwrap();
    for node in &nodes[1..] {
        let mut con = node.connect();
        wait_for("both values on every node", Duration::from_secs(5), || {
            let small: Option<String> = redis::cmd("GET").arg("small").query(&mut con).unwrap();
            let held: Option<Vec<u8>> = redis::cmd("GET").arg("big").query(&mut con).unwrap();
            (small.is_some() && held.as_deref() == Some(&big[..])).then_some(())
        });
    }
    assert!(nodes.iter().all(|n| auth_failures(n) == 0));

    // A node with another key, and one with none, announce to the mesh:
    // neither gets in, and the seed counts what it refused.
    let other_key = key_file(dir.path(), "other.key", &[&keygen()]);
    let strangers = [keyed("other-key", &[seed], Some(&other_key)), keyed("no-key", &[seed], None)];
    wait_for("the seed to refuse both strangers' packets", Duration::from_secs(10), || {
        (auth_failures(&nodes[0]) >= 2).then_some(())
    });
    // Their announces retry every few hundred ms; give them a few rounds.
    wait_for("more refused announces", Duration::from_secs(10), || (auth_failures(&nodes[0]) >= 6).then_some(()));
    for stranger in &strangers {
        for member in &nodes {
            assert_eq!(state_of(member, stranger.gossip), None, "{} let {} in", member.name, stranger.name);
            assert_eq!(state_of(stranger, member.gossip), None, "{} got into the mesh", stranger.name);
        }
        let con = &mut stranger.connect();
        let small: Option<String> = redis::cmd("GET").arg("small").query(con).unwrap();
        assert_eq!(small, None, "{} read the mesh's data", stranger.name);
    }
    assert!(nodes[0].log_text().contains("gossip datagram dropped"), "{}", nodes[0].log_text());
}

/// Rotation as the docs describe it: every node adds the new key second,
/// then puts it first, then drops the old one; the mesh never splits.
#[test]
fn a_key_is_rotated_without_splitting_the_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (keygen(), keygen());
    let stages = [vec![old.as_str()], vec![&old, &new], vec![&new, &old], vec![&new]];
    let files: Vec<PathBuf> =
        stages.iter().enumerate().map(|(s, keys)| key_file(dir.path(), &format!("stage{s}.key"), keys)).collect();
    let mut a = keyed("ra", &[], Some(&files[0]));
    let mut b = keyed("rb", &[a.gossip], Some(&files[0]));
    let see_each_other = |a: &Node, b: &Node, stage: usize| {
        for (observer, other) in [(a, b), (b, a)] {
            let what = format!("stage {stage}: {} to see {} alive", observer.name, other.name);
            wait_for(&what, Duration::from_secs(10), || {
                (state_of(observer, other.gossip).as_deref() == Some("alive")).then_some(())
            });
        }
    };
    see_each_other(&a, &b, 0);
    for (stage, file) in files.iter().enumerate().skip(1) {
        // One node at a time, restarted with the next key file: at every
        // step the two hold keys in common.
        for node in [&mut a, &mut b] {
            assert!(node.terminate().success());
            node.extra = vec!["--cluster-key-file".into(), file.display().to_string()];
            node.spawn();
        }
        see_each_other(&a, &b, stage);
    }
    assert_eq!(auth_failures(&a) + auth_failures(&b), 0);
}
