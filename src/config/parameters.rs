//! The settings `CONFIG GET` answers that are fixed once the node runs,
//! under the config file's own names (`[table]` keys as `table.key`) and,
//! where Redis has a parameter clients and tools ask for, under Redis's
//! name too. The changeable ones (`maxmemory` and the client limits) are
//! read live by the command instead, since CONFIG SET moves them.
//!
//! No secret is ever a value here: the inline `requirepass` is not
//! answered at all, and the password and cluster key files are named by
//! path only.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::Settings;

/// Each fixed setting's name and value as `CONFIG GET` answers it, from
/// the settings in force (after the adjustments made at start: fitted
/// limits, datagrams less a cluster key's envelope) and with the
/// addresses the node actually bound.
pub fn fixed_parameters(s: &Settings) -> Vec<(&'static str, String)> {
    let node = &s.node;
    let swim = &node.swim;
    let auth = &s.auth_throttle;
    let streams = &s.streams;
    let tls = s.tls.as_ref();
    let mut bind: Vec<String> = Vec::new();
    for addr in [Some(s.listen).filter(|_| !tls.is_some_and(|t| t.only)), tls.map(|t| t.listen)].into_iter().flatten() {
        let ip = addr.ip().to_string();
        if !bind.contains(&ip) {
            bind.push(ip);
        }
    }
    vec![
        ("name", s.name.clone()),
        ("listen", s.listen.to_string()),
        ("gossip", s.gossip.to_string()),
        ("metrics", address(s.metrics)),
        ("seeds", node.seeds.iter().map(SocketAddr::to_string).collect::<Vec<_>>().join(" ")),
        ("requirepass_file", path(s.requirepass_file.as_deref())),
        ("aclfile", path(s.users.aclfile_path())),
        ("protected_mode", s.protected_mode.to_string()),
        ("log_format", lower(s.log_format)),
        ("max_clock_drift_ms", node.max_clock_drift_ms.to_string()),
        ("max_version_ahead_ms", node.max_version_ahead_ms.to_string()),
        ("data_dir", path(s.data_dir.as_deref())),
        ("fsync", s.fsync.to_string()),
        ("stale_data", lower(s.stale_data)),
        ("cluster_key_file", path(s.cluster_key_file.as_deref())),
        ("insecure_gossip", s.insecure_gossip.to_string()),
        ("membership.probe_interval_ms", ms(swim.probe_interval)),
        ("membership.probe_timeout_ms", ms(swim.probe_timeout)),
        ("membership.suspect_timeout_ms", ms(swim.suspect_timeout)),
        ("membership.gossip_interval_ms", ms(swim.gossip_interval)),
        ("membership.cluster_size_hint", swim.cluster_size_hint.to_string()),
        ("membership.rejoin_interval_ms", ms(node.rejoin_interval)),
        ("membership.join_retry_max_ms", ms(node.join_retry_max)),
        ("membership.stranger_packets_per_sec", node.strangers.packets_per_sec.to_string()),
        ("membership.stranger_sources_max", node.strangers.sources_max.to_string()),
        ("dissemination.fanout", node.fanout.to_string()),
        ("dissemination.max_hops", node.max_hops.to_string()),
        ("dissemination.max_datagram_bytes", node.max_datagram_bytes.to_string()),
        ("dissemination.direct_push_max", node.direct_push_max.to_string()),
        ("dissemination.wait_tracked_keys", node.wait_tracked_keys.to_string()),
        ("dissemination.write_batch_max", s.write_batch_max.to_string()),
        ("dissemination.write_queue", s.write_queue.to_string()),
        ("dissemination.write_queue_bytes", s.write_queue_bytes.to_string()),
        ("dissemination.socket_buffer_bytes", s.socket_buffer_bytes.to_string()),
        ("anti_entropy.sync_interval_ms", ms(node.sync_interval)),
        ("anti_entropy.sync_budget_bytes", node.sync_budget_bytes.to_string()),
        ("anti_entropy.tombstone_ttl_ms", ms(node.tombstone_ttl)),
        ("anti_entropy.member_gone_after_ms", ms(node.member_gone_after)),
        ("anti_entropy.loading", lower(node.loading)),
        ("anti_entropy.loading_wait_ms", ms(node.loading_wait)),
        ("anti_entropy.stop_handoff_ms", s.stop_handoff.map_or_else(|| "0".to_owned(), ms)),
        ("limits.max_inline_bytes", s.limits.max_inline_bytes.to_string()),
        ("limits.max_args", s.limits.max_args.to_string()),
        ("limits.max_key_bytes", s.limits.max_key_bytes.to_string()),
        ("limits.storage_open_files", s.storage_open_files.to_string()),
        ("gossip_streams.max_inbound", streams.max_inbound.to_string()),
        ("gossip_streams.first_frame_timeout_ms", ms(streams.first_frame_timeout)),
        ("gossip_streams.idle_timeout_ms", ms(streams.idle_timeout)),
        ("gossip_streams.frame_timeout_ms", ms(streams.frame_timeout)),
        ("gossip_streams.buffer_bytes", streams.buffer_bytes.to_string()),
        ("gossip_streams.unauthenticated_frame_bytes", streams.unauthenticated_frame_bytes.to_string()),
        ("tls.listen", address(tls.map(|t| t.listen))),
        ("tls.cert_file", path(tls.map(|t| t.files.cert.as_path()))),
        ("tls.key_file", path(tls.map(|t| t.files.key.as_path()))),
        ("tls.ca_cert_file", path(tls.and_then(|t| t.files.ca.as_deref()))),
        (
            "tls.handshake_timeout_ms",
            ms(tls.map_or(crate::server::tls::DEFAULT_HANDSHAKE_TIMEOUT, |t| t.handshake_timeout)),
        ),
        ("tls.only", tls.is_some_and(|t| t.only).to_string()),
        ("auth.failures_before_delay", auth.failures_before_delay.to_string()),
        ("auth.failure_delay_ms", ms(auth.delay)),
        ("auth.failure_delay_max_ms", ms(auth.delay_max)),
        ("auth.forget_failures_after_ms", ms(auth.forget_after)),
        ("auth.addresses_max", auth.addresses_max.to_string()),
        // Redis's names for what rumor has or is.
        ("bind", bind.join(" ")),
        ("tls-port", tls.map_or(0, |t| t.listen.port()).to_string()),
        ("tls-cert-file", path(tls.map(|t| t.files.cert.as_path()))),
        ("tls-key-file", path(tls.map(|t| t.files.key.as_path()))),
        ("tls-ca-cert-file", path(tls.and_then(|t| t.files.ca.as_deref()))),
        ("protected-mode", yes_no(s.protected_mode)),
        ("databases", "1".to_owned()),
        ("save", String::new()),
        ("appendonly", yes_no(s.data_dir.is_some())),
        ("appendfsync", s.fsync.to_string()),
        ("dir", path(s.data_dir.as_deref())),
        ("maxmemory-policy", "noeviction".to_owned()),
    ]
}

fn ms(duration: Duration) -> String {
    duration.as_millis().to_string()
}

fn address(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(String::new, |a| a.to_string())
}

fn path(path: Option<&Path>) -> String {
    path.map_or_else(String::new, |p| p.display().to_string())
}

fn yes_no(on: bool) -> String {
    (if on { "yes" } else { "no" }).to_owned()
}

/// A unit enum as the config file spells it (serde's `lowercase`).
fn lower(value: impl std::fmt::Debug) -> String {
    format!("{value:?}").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_key_is_answered_once_and_no_secret_is() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("cluster.key");
        let secret = crate::server::envelope::generate_key();
        std::fs::write(&key, &secret).unwrap();
        let text = format!("requirepass = \"sesame\"\ncluster_key_file = {key:?}\n");
        let file: crate::config::FileConfig = toml::from_str(&text).unwrap();
        let s = Settings::from_parts(file, &crate::config::ServeFlags::default()).unwrap();
        let parameters = fixed_parameters(&s);
        let mut names: Vec<&str> = parameters.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "a name twice");
        for (name, value) in &parameters {
            assert!(!value.contains("sesame") && !value.contains(secret.trim()), "{name} leaks a secret");
        }
        let get = |name| parameters.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("cluster_key_file"), Some(key.to_str().unwrap()));
        assert_eq!(get("requirepass"), None);
        assert_eq!(get("membership.probe_interval_ms"), Some("300"));
        assert_eq!(get("anti_entropy.loading"), Some("refuse"));
        assert_eq!(
            (get("appendonly"), get("appendfsync"), get("bind")),
            (Some("no"), Some("everysec"), Some("127.0.0.1"))
        );
    }
}
