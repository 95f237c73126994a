//! `INFO [section…]`: Redis's text format — `# Title` then `field:value`
//! lines, CRLF-terminated, sections separated by a blank line, all in one
//! bulk string (a verbatim string in RESP3, as Redis 7 sends it) — with
//! the client side's sections (Server, Clients, Memory, Persistence, Stats,
//! Replication, Keyspace) followed by the node's own (Membership, Gossip), rendered from
//! the driver's [`NodeSnapshot`] — the one account of a node that a metrics
//! scrape and `rumor dev` read too.
//!
//! `redis_version` (and HELLO's `version`) says 7.2.0 because client
//! libraries gate features on it; `rumor_version` is the truth.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::{CommandError, Ctx};
use crate::core::loading::CatchUpState;
use crate::core::membership::Identity;
use crate::resp::parse::Args;
use crate::resp::reply;
use crate::server::control::Control;
use crate::server::metrics::NodeSnapshot;
use crate::server::storage::ChangeQueue;

/// `INFO [section…]`: no section, `all`, `everything` or `default` give
/// every section; otherwise the named ones, case-insensitively. Unknown
/// names give nothing, as in Redis.
pub(super) async fn info(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let everything = args.len() == 1
        || args
            .iter_from(1)
            .any(|s| ["all", "everything", "default"].iter().any(|a| s.eq_ignore_ascii_case(a.as_bytes())));
    let wanted = |title: &str| everything || args.iter_from(1).any(|s| s.eq_ignore_ascii_case(title.as_bytes()));

    let mut sections = local_sections(ctx);
    sections.retain(|section| wanted(&section.title));
    let local_titles = ["Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "Keyspace"];
    let node_wanted =
        everything || args.iter_from(1).any(|s| !local_titles.iter().any(|t| s.eq_ignore_ascii_case(t.as_bytes())));
    if node_wanted {
        // Without an answer the node's sections are left out, not waited for.
        if let Some(node) = ctx.ask(Control::Snapshot).await {
            sections.extend(node_sections(&node).into_iter().filter(|section| wanted(&section.title)));
        }
    }

    let mut text = String::new();
    for (i, section) in sections.iter().enumerate() {
        if i > 0 {
            text.push_str("\r\n");
        }
        let _ = write!(text, "# {}\r\n", section.title);
        for (field, value) in &section.fields {
            let _ = write!(text, "{field}:{value}\r\n");
        }
    }
    reply::verbatim(ctx.out, b"txt", text.as_bytes());
    Ok(())
}

/// One INFO section: its title and its `field:value` lines.
#[derive(Clone, Debug, Default)]
struct InfoSection {
    /// Title without the `# ` prefix, e.g. `Membership`.
    title: String,
    /// Fields in display order.
    fields: Vec<(String, String)>,
}

/// The node's own sections, from the driver's snapshot.
fn node_sections(node: &NodeSnapshot) -> [InfoSection; 2] {
    let members = |state: &str| node.members.get(state).copied().unwrap_or(0).to_string();
    let (m, g) = (&node.membership, &node.gossip);
    let identity = node.identity.as_ref();
    let shown = |f: fn(&Identity) -> String| identity.map(f).unwrap_or_default();
    [
        section(
            "Membership",
            [
                ("node_id", shown(|i| i.id.to_string())),
                ("node_name", shown(|i| i.name.to_string())),
                ("gossip_addr", shown(|i| i.addr.to_string())),
                ("life", shown(|i| i.life.to_string())),
                ("joined", u8::from(node.joined).to_string()),
                ("members_alive", members("alive")),
                ("members_suspect", members("suspect")),
                ("members_down", members("down")),
                ("members_left", members("left")),
                ("suspicions", m.suspicions.to_string()),
                ("members_declared_down", m.downs.to_string()),
                ("members_seen_leaving", m.leaves.to_string()),
                ("members_repaired", m.members_repaired.to_string()),
                ("identity_renewals", m.renewals.to_string()),
                ("swim_rejected", m.swim_rejected.to_string()),
                ("swim_redirects_refused", m.swim_redirects_refused.to_string()),
                ("swim_announces_refused", m.swim_announces_refused.to_string()),
            ],
        ),
        section(
            "Gossip",
            [
                ("packets_in", g.packets_in.to_string()),
                ("packets_out", g.packets_out.to_string()),
                ("bytes_in", g.bytes_in.to_string()),
                ("bytes_out", g.bytes_out.to_string()),
                ("entries_sent", g.entries_sent.to_string()),
                ("entries_received", g.entries_received.to_string()),
                ("entries_applied", g.entries_applied.to_string()),
                ("decode_errors", g.decode_errors.to_string()),
                ("sync_refused", g.sync_refused.to_string()),
                ("sync_oversized", g.sync_oversized.to_string()),
                ("send_errors", node.send_errors.to_string()),
                ("auth_failures", node.auth_failures.to_string()),
                ("stream_frames_dropped", node.stream_frames_dropped.to_string()),
                ("strangers_refused", g.strangers_refused.to_string()),
                ("strangers_limited", g.strangers_limited.to_string()),
                ("stranger_answers_dropped", g.stranger_answers_dropped.to_string()),
                ("stream_connections_refused", node.stream_connections_refused.to_string()),
                ("stream_timeouts", node.stream_timeouts.to_string()),
                ("sync_rounds", g.sync_rounds.to_string()),
                ("flushes_applied", g.flushes_applied.to_string()),
                ("write_batches", node.confirm.batches_written.to_string()),
                ("write_batches_confirmed", node.confirm.batches_confirmed_by_all.to_string()),
                (
                    "write_batches_unconfirmed",
                    (node.confirm.batches_written - node.confirm.batches_confirmed_by_all).to_string(),
                ),
                ("confirm_rounds", node.confirm.rounds_sent.to_string()),
                ("sync_in_step", g.sync_in_step.to_string()),
                ("sync_entries_sent", g.sync_entries_sent.to_string()),
                ("sync_entries_applied", g.sync_entries_applied.to_string()),
                ("sync_bytes_out", g.sync_bytes_out.to_string()),
                ("expired_swept", g.expired_swept.to_string()),
                ("tombstones_forgotten", g.tombstones_forgotten.to_string()),
                ("stale_state_discarded", g.stale_state_discarded.to_string()),
                ("stale_entries_dropped", g.stale_entries_dropped.to_string()),
                ("members_gone", g.members_gone.to_string()),
                ("tombstones", node.tombstones.to_string()),
                ("hlc", node.hlc.to_string()),
                ("clock_drift_rejections", node.clock_drift_rejections.to_string()),
                ("max_clock_drift_seen_ms", node.max_clock_drift_seen_ms.to_string()),
                ("future_versions_refused", node.future_versions_refused.to_string()),
            ],
        ),
    ]
}

fn local_sections(ctx: &Ctx<'_>) -> Vec<InfoSection> {
    let shared = ctx.shared;
    let stats = &shared.stats;
    let uptime_s = shared.clock.mono().as_secs();
    let rss = resident_bytes();
    let used = shared.store.used_bytes() as u64;
    let maxmemory = shared.limits.maxmemory();
    let keyspace = shared.store.keyspace(shared.clock.wall_ms());
    vec![
        section(
            "Server",
            [
                ("redis_version", REDIS_VERSION.to_owned()),
                ("redis_mode", "standalone".to_owned()),
                ("rumor_version", env!("CARGO_PKG_VERSION").to_owned()),
                ("os", std::env::consts::OS.to_owned()),
                ("arch_bits", (usize::BITS).to_string()),
                ("process_id", std::process::id().to_string()),
                ("run_id", shared.store.writer().uuid().simple().to_string()),
                ("tcp_port", ctx.session.local.port().to_string()),
                ("uptime_in_seconds", uptime_s.to_string()),
                ("uptime_in_days", (uptime_s / 86_400).to_string()),
                ("node_name", shared.name.clone()),
                ("node_id", shared.store.writer().to_string()),
            ],
        ),
        section(
            "Clients",
            [
                ("connected_clients", load(&stats.connected_clients)),
                ("maxclients", shared.limits.max_clients().to_string()),
                ("blocked_clients", "0".to_owned()),
            ],
        ),
        section(
            "Memory",
            [
                ("used_memory", used.to_string()),
                ("used_memory_human", human_bytes(used)),
                ("used_memory_rss", rss.to_string()),
                ("used_memory_rss_human", human_bytes(rss)),
                ("maxmemory", maxmemory.to_string()),
                ("maxmemory_human", human_bytes(maxmemory)),
                ("maxmemory_policy", "noeviction".to_owned()),
            ],
        ),
        persistence(shared.storage.as_deref(), shared.store.catch_up()),
        section(
            "Stats",
            [
                ("total_connections_received", load(&stats.total_connections_received)),
                ("total_commands_processed", load(&stats.total_commands_processed)),
                ("rejected_connections", load(&stats.rejected_connections)),
                ("protocol_errors", load(&stats.protocol_errors)),
                ("client_output_buffer_limit_disconnections", load(&stats.output_limit_disconnections)),
                ("tls_handshake_failures", load(&stats.tls_handshake_failures)),
                ("acl_access_denied_auth", load(&stats.acl_denied_auth)),
                ("acl_access_denied_cmd", load(&stats.acl_denied_cmd)),
                ("acl_access_denied_key", load(&stats.acl_denied_key)),
                ("acl_access_denied_channel", "0".to_owned()),
                ("protected_mode_refusals", load(&stats.protected_mode_refusals)),
            ],
        ),
        // What Redis shows with no replicas: every node is a primary (there
        // is no replication in Redis's sense; see Membership and Gossip).
        section(
            "Replication",
            [
                ("role", "master".to_owned()),
                ("connected_slaves", "0".to_owned()),
                ("master_failover_state", "no-failover".to_owned()),
                ("master_replid", format!("{}00000000", shared.store.writer().uuid().simple())),
                ("master_replid2", "0".repeat(40)),
                ("master_repl_offset", "0".to_owned()),
                ("second_repl_offset", "-1".to_owned()),
                ("repl_backlog_active", "0".to_owned()),
                ("repl_backlog_size", "0".to_owned()),
                ("repl_backlog_first_byte_offset", "0".to_owned()),
                ("repl_backlog_histlen", "0".to_owned()),
            ],
        ),
        section(
            "Keyspace",
            [("db0", format!("keys={},expires={},avg_ttl={}", keyspace.keys, keyspace.expires, keyspace.avg_ttl_ms))],
        ),
    ]
}

/// The data dir's state; memory-only nodes say so with an empty `data_dir`.
/// `loading:1` while the node catches up from its peers and refuses keys
/// (Redis's field while it loads), `async_loading:1` while it catches up
/// and serves what it has (Redis's, for serving old data while loading).
fn persistence(storage: Option<&ChangeQueue>, catch_up: CatchUpState) -> InfoSection {
    let loading = u8::from(catch_up == CatchUpState::Refusing).to_string();
    let async_loading = u8::from(catch_up == CatchUpState::Serving).to_string();
    let Some(storage) = storage else {
        return section(
            "Persistence",
            [("loading", loading), ("async_loading", async_loading), ("data_dir", String::new())],
        );
    };
    let stats = storage.stats();
    let status = if storage.has_failed() { "err" } else { "ok" };
    section(
        "Persistence",
        [
            ("loading", loading),
            ("async_loading", async_loading),
            ("data_dir", storage.dir().display().to_string()),
            ("fsync", storage.fsync().to_string()),
            ("entries_loaded", load(&stats.loaded)),
            ("changes_written", load(&stats.changes_written)),
            ("changes_pending", storage.backlog().to_string()),
            ("batches_written", load(&stats.batches)),
            ("fsyncs", load(&stats.syncs)),
            ("last_write_status", status.to_owned()),
        ],
    )
}

fn section<const N: usize>(title: &str, fields: [(&str, String); N]) -> InfoSection {
    InfoSection {
        title: title.to_owned(),
        fields: fields.into_iter().map(|(field, value)| (field.to_owned(), value)).collect(),
    }
}

fn load(counter: &std::sync::atomic::AtomicU64) -> String {
    counter.load(Ordering::Relaxed).to_string()
}

/// The process's resident set size, from `/proc/self/status` (0 where
/// there is no procfs): INFO's `used_memory_rss`. `used_memory`, which
/// `maxmemory` compares against, is the store's own count instead: it
/// falls as soon as keys are deleted, where the allocator may keep freed
/// pages resident. The read is a few hundred bytes from procfs.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// Redis's `used_memory_human` style: `1.50M`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)];
    for (suffix, size) in UNITS {
        if bytes >= size {
            return format!("{:.2}{suffix}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes}B")
}

/// What `redis_version` claims.
pub(super) const REDIS_VERSION: &str = "7.2.0";

#[cfg(test)]
mod tests {
    use super::super::testkit::Harness;

    /// The bulk string's text.
    fn body(reply: &str) -> &str {
        let (header, rest) = reply.split_once("\r\n").unwrap();
        let len: usize = header.trim_start_matches('$').parse().unwrap();
        assert_eq!(rest.len(), len + 2, "the length header is exact");
        &rest[..len]
    }

    fn titles(text: &str) -> Vec<&str> {
        text.lines().filter_map(|l| l.strip_prefix("# ")).map(str::trim_end).collect()
    }

    #[tokio::test]
    async fn info_has_every_section_in_redis_format() {
        let mut h = Harness::new();
        h.run(&["MSET", "a", "1", "b", "2"]).await;
        let reply = h.run(&["INFO"]).await;
        let text = body(&reply);
        assert_eq!(
            titles(text),
            ["Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "Keyspace", "Membership", "Gossip"]
        );
        assert!(text.starts_with("# Server\r\nredis_version:7.2.0\r\n"), "{text}");
        assert!(text.contains("\r\nrumor_version:"));
        assert!(text.contains("\r\ntcp_port:6380\r\n"));
        assert!(text.contains("\r\nnode_name:test-node\r\n"));
        assert!(text.contains(&format!("\r\nprocess_id:{}\r\n", std::process::id())));
        assert!(text.contains("\r\n\r\n# Clients\r\n"), "sections are separated by a blank line");
        assert!(text.contains("\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n"));
        assert!(text.contains("\r\n# Membership\r\nnode_id:"), "the node's sections from its snapshot");
        assert!(text.contains("\r\n# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"));
        assert!(text.contains("\r\nmembers_alive:1\r\nmembers_suspect:1\r\nmembers_down:0\r\n"));
        assert!(text.ends_with("\r\nfuture_versions_refused:0\r\n"));
        assert!(!text.contains("\r\n\r\n\r\n"));
        for line in text.split("\r\n").filter(|l| !l.is_empty() && !l.starts_with('#')) {
            assert!(line.contains(':'), "{line:?}");
        }
        let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).unwrap().trim();
        let per_key = 1 + 1 + crate::core::store::ENTRY_OVERHEAD_BYTES;
        assert_eq!(field("used_memory"), (2 * per_key).to_string(), "the store's count of a and b");
        assert_eq!(
            (field("maxmemory"), field("maxmemory_human"), field("maxmemory_policy")),
            ("0", "0B", "noeviction")
        );
        if cfg!(target_os = "linux") {
            assert!(field("used_memory_rss").parse::<u64>().unwrap() > 0);
        }
        for word in ["all", "everything", "DEFAULT"] {
            assert_eq!(titles(body(&h.run(&["INFO", word]).await)).len(), 9, "{word}");
        }
    }

    #[tokio::test]
    async fn info_filters_sections_case_insensitively() {
        let mut h = Harness::new();
        let reply = h.run(&["INFO", "keyspace"]).await;
        assert_eq!(body(&reply), "# Keyspace\r\ndb0:keys=0,expires=0,avg_ttl=0\r\n");
        let reply = h.run(&["INFO", "SERVER", "membership"]).await;
        assert_eq!(titles(body(&reply)), ["Server", "Membership"]);
        assert_eq!(h.run(&["INFO", "nothing"]).await, "$0\r\n\r\n");
    }

    /// `db0:keys=3,expires=2,avg_ttl=…`: the average time left of the two
    /// keys with a deadline (100 s and 200 s), counting down from 150 s.
    #[tokio::test]
    async fn keyspace_counts_keys_with_a_ttl_and_their_average_ttl() {
        let mut h = Harness::new();
        h.run(&["SET", "plain", "v"]).await;
        h.run(&["SET", "short", "v", "EX", "100"]).await;
        h.run(&["SET", "long", "v", "PX", "200000"]).await;
        let reply = h.run(&["INFO", "keyspace"]).await;
        let line = body(&reply).lines().find_map(|l| l.strip_prefix("db0:")).unwrap().trim_end();
        let fields: Vec<(&str, u64)> = line
            .split(',')
            .map(|f| {
                let (name, value) = f.split_once('=').unwrap();
                (name, value.parse().unwrap())
            })
            .collect();
        assert_eq!(fields[..2], [("keys", 3), ("expires", 2)], "{line}");
        let (name, avg_ttl) = fields[2];
        assert_eq!(name, "avg_ttl");
        assert!((140_000..=150_000).contains(&avg_ttl), "{line}");

        h.run(&["PERSIST", "short"]).await;
        h.run(&["DEL", "long"]).await;
        assert_eq!(body(&h.run(&["INFO", "keyspace"]).await), "# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n");
    }

    #[tokio::test]
    async fn info_without_a_driver_still_answers() {
        let mut h = Harness::without_driver();
        let reply = h.run(&["INFO"]).await;
        assert_eq!(
            titles(body(&reply)),
            ["Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "Keyspace"]
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(super::human_bytes(512), "512B");
        assert_eq!(super::human_bytes(1536), "1.50K");
        assert_eq!(super::human_bytes(3 << 20), "3.00M");
    }
}
