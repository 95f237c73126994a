//! The node's Prometheus metrics: one explicit [`Registry`] per node (no
//! globals: several nodes share a process under `rumor dev` and in tests),
//! its metric families, and what one scrape encodes.
//!
//! Two kinds of numbers, so that nothing is counted twice:
//!
//! - The per-command families are live metrics in the registry. Connection
//!   tasks add to them once per batch through [`CommandMetrics`].
//! - Everything else already has one owner — the client counters in
//!   [`ClientStats`], the core's counters, member table and store behind the
//!   driver task — and is read from there at scrape time: a scrape asks the
//!   driver for a [`NodeSnapshot`] over the control channel and encodes it,
//!   with the client counters, as constant metrics (a [`Collector`]). One
//!   source of truth, nothing stale between scrapes, and the sans-IO core
//!   knows nothing of Prometheus.
//!
//! Names follow Prometheus conventions: `rumor_` prefix, base units
//! (seconds, bytes) in the name, `_total` on counters (added by the
//! OpenMetrics encoder).

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::{mpsc, oneshot};

use crate::core::membership::{Identity, MembershipStats};
use crate::core::node::{ConfirmStats, GossipStats};
use crate::core::version::Timestamp;
use crate::server::control::Control;

/// The prefix of every metric name.
const PREFIX: &str = "rumor";

/// How long a scrape waits for the driver task before answering 503.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// One node's registry and the handles the client path updates.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    commands: CommandMetrics,
}

/// The label set of the per-command families: `cmd="get"`.
type CmdLabel = [(&'static str, &'static str); 1];

impl Metrics {
    /// A registry with the per-command families, one series per command
    /// label (the client side's commands, then `unknown`), created up front
    /// so that every series is exported from the first scrape, at zero.
    pub fn new(command_labels: &[&'static str]) -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let calls = Family::<CmdLabel, Counter>::default();
        let errors = Family::<CmdLabel, Counter>::default();
        let latency = Family::<CmdLabel, LatencyHistogram>::default();
        registry.register(
            "commands",
            "Commands answered, by lower-case command name, refused ones included; \
             names rumor does not know are counted as cmd=unknown",
            calls.clone(),
        );
        registry.register("command_errors", "Commands answered with an error reply, by command", errors.clone());
        registry.register_with_unit(
            "command_duration",
            "Time from reading a command to its reply being ready, by command. Pipelined \
             commands are answered together, so each command of a batch is observed with the \
             time of its whole batch",
            Unit::Seconds,
            latency.clone(),
        );
        let label = |cmd| [("cmd", cmd)];
        let commands = CommandMetrics {
            calls: command_labels.iter().map(|&cmd| calls.get_or_create_owned(&label(cmd))).collect(),
            errors: command_labels.iter().map(|&cmd| errors.get_or_create_owned(&label(cmd))).collect(),
            latency: command_labels.iter().map(|&cmd| latency.get_or_create_owned(&label(cmd))).collect(),
        };
        Metrics { registry, commands }
    }

    /// The handles connection tasks update.
    pub fn commands(&self) -> &CommandMetrics {
        &self.commands
    }

    /// The whole exposition in OpenMetrics text: the live families, then
    /// the client and node numbers of this scrape, then `# EOF`.
    pub fn encode(&self, clients: ClientSnapshot, node: NodeSnapshot) -> Result<String, fmt::Error> {
        let mut text = String::new();
        encode_registry(&mut text, &self.registry)?;
        // A registry per scrape: the snapshot is owned by it, so concurrent
        // scrapes never share mutable state.
        let mut scrape = Registry::with_prefix(PREFIX);
        scrape.register_collector(Box::new(ScrapeCollector { clients, node }));
        encode_registry(&mut text, &scrape)?;
        encode_eof(&mut text)?;
        Ok(text)
    }
}

/// Why a scrape has no metrics to show.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The driver task did not answer within the scrape timeout (it is
    /// stopping, or stuck).
    #[error("the node is not answering")]
    NodeUnavailable,
    /// The encoder failed (a bug: writing to a `String` cannot fail).
    #[error("cannot encode the metrics")]
    Encode(#[from] fmt::Error),
}

/// Answers one scrape: asks the driver task for the node's numbers, and
/// encodes them with the client side's `clients` and `metrics`.
pub async fn scrape(
    metrics: &Metrics,
    clients: ClientSnapshot,
    control: &mpsc::Sender<Control>,
) -> Result<String, ScrapeError> {
    let node = node_snapshot(control, SCRAPE_TIMEOUT).await.ok_or(ScrapeError::NodeUnavailable)?;
    Ok(metrics.encode(clients, node)?)
}

/// Asks the driver task for the node's numbers; `None` if it does not
/// answer within `timeout` (it has stopped, is stopping, or is stuck).
pub async fn node_snapshot(control: &mpsc::Sender<Control>, timeout: Duration) -> Option<NodeSnapshot> {
    let (answer, receiver) = oneshot::channel();
    let asked = tokio::time::timeout(timeout, async {
        control.send(Control::Snapshot(answer)).await.ok()?;
        receiver.await.ok()
    });
    asked.await.ok().flatten()
}

/// The per-command series, indexed by the command slots of
/// `resp::cmd` (one per command, `unknown` last).
#[derive(Clone, Debug)]
pub struct CommandMetrics {
    calls: Vec<Counter>,
    errors: Vec<Counter>,
    latency: Vec<LatencyHistogram>,
}

impl CommandMetrics {
    /// Adds `calls` commands of `slot`, `errors` of them answered with an
    /// error, each observed with `latency`.
    pub(crate) fn add(&self, slot: usize, calls: u64, errors: u64, latency: Duration) {
        if let Some(counter) = self.calls.get(slot) {
            counter.inc_by(calls);
        }
        if errors > 0
            && let Some(counter) = self.errors.get(slot)
        {
            counter.inc_by(errors);
        }
        if let Some(histogram) = self.latency.get(slot) {
            histogram.observe_n(latency, calls);
        }
    }
}

/// A latency histogram with lock-free, weighted observations: buckets from
/// 10 µs doubling up to about 1.3 s, then `+Inf`.
///
/// prometheus-client's `Histogram` takes a mutex per observation and cannot
/// record one value n times; a connection records a pipelined batch of n
/// commands at once, so this keeps atomic buckets instead and encodes
/// through the crate's [`EncodeMetric`] like any other metric. The count is
/// derived from the buckets, so `_count` always equals the `+Inf` bucket;
/// `_sum` may lag the buckets by the observation in flight.
#[derive(Clone, Debug, Default)]
pub struct LatencyHistogram {
    inner: Arc<LatencyInner>,
}

#[derive(Debug, Default)]
struct LatencyInner {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS + 1],
    sum_ns: AtomicU64,
}

/// Finite buckets of [`LatencyHistogram`].
const LATENCY_BUCKETS: usize = 18;

/// Upper bound of the first bucket; each next bucket doubles it.
const FIRST_BUCKET_NS: u64 = 10_000;
// The last finite bucket reaches past a second.
const _: () = assert!(FIRST_BUCKET_NS << (LATENCY_BUCKETS - 1) > 1_000_000_000);

impl LatencyHistogram {
    /// Records `n` observations of `latency`.
    pub fn observe_n(&self, latency: Duration, n: u64) {
        if n == 0 {
            return;
        }
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let bucket = (0..LATENCY_BUCKETS).find(|&i| ns <= FIRST_BUCKET_NS << i).unwrap_or(LATENCY_BUCKETS);
        if let Some(count) = self.inner.buckets.get(bucket) {
            count.fetch_add(n, Ordering::Relaxed);
        }
        self.inner.sum_ns.fetch_add(ns.saturating_mul(n), Ordering::Relaxed);
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .inner
            .buckets
            .iter()
            .enumerate()
            .map(|(i, count)| {
                let bound = if i < LATENCY_BUCKETS { (FIRST_BUCKET_NS << i) as f64 / 1e9 } else { f64::INFINITY };
                (bound, count.load(Ordering::Relaxed))
            })
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.inner.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// The client counters at one scrape.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientSnapshot {
    /// Connections open now.
    pub connected: u64,
    /// Connections accepted since start.
    pub received: u64,
    /// Connections refused at `max_clients`.
    pub rejected: u64,
    /// Connections closed for a protocol error.
    pub protocol_errors: u64,
    /// Connections closed over the output-buffer limit.
    pub output_limit_disconnections: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: u64,
    /// AUTHs refused.
    pub acl_denied_auth: u64,
    /// Commands refused by a user's command rules.
    pub acl_denied_cmd: u64,
    /// Commands refused by a user's key patterns.
    pub acl_denied_key: u64,
    /// Connections refused by protected mode.
    pub protected_mode_refusals: u64,
    /// What the store counts as used, bytes (INFO's `used_memory`).
    pub used_memory: u64,
    /// `maxmemory`, bytes (0: no limit).
    pub maxmemory: u64,
    /// The data dir's counters, with `--data-dir`.
    pub storage: Option<StorageSnapshot>,
}

/// The data dir's counters at one scrape.
#[derive(Clone, Copy, Debug, Default)]
pub struct StorageSnapshot {
    /// Entries loaded at start.
    pub loaded: u64,
    /// Changes written since start.
    pub written: u64,
    /// Changes queued now.
    pub pending: u64,
    /// Batches committed.
    pub batches: u64,
    /// Journal syncs.
    pub syncs: u64,
}

/// Membership change events the driver has seen (foca's member-up and
/// member-down notifications, renames included).
#[derive(Clone, Copy, Debug, Default)]
pub struct MemberChanges {
    /// Members that came up.
    pub up: u64,
    /// Members that went down (failed).
    pub down: u64,
    /// Members that left on purpose.
    pub left: u64,
}

/// The node-side numbers at one reading, as the driver task reads them
/// from their owners: the one account of a node that INFO's Membership and
/// Gossip sections, a metrics scrape and `rumor dev`'s status line render.
#[derive(Clone, Debug, Default)]
pub struct NodeSnapshot {
    /// Who this node is in the mesh (absent only in tests' stand-ins).
    pub identity: Option<Identity>,
    /// The hybrid logical clock's last reading.
    pub hlc: Timestamp,
    /// The core's gossip, sync and sweep counters.
    pub gossip: GossipStats,
    /// The core's membership counters.
    pub membership: MembershipStats,
    /// Local write batches and their confirmations (WAIT).
    pub confirm: ConfirmStats,
    /// Known members (self included) per state, by the state's `Display`
    /// name; states with no member are listed at zero.
    pub members: BTreeMap<String, u64>,
    /// Member up/down events.
    pub member_changes: MemberChanges,
    /// Whether another member is active (we are part of a mesh).
    pub joined: bool,
    /// Whether the node is still catching up from its peers (INFO's
    /// `loading` or `async_loading`).
    pub catching_up: bool,
    /// Gossip datagrams the socket failed to send.
    pub send_errors: u64,
    /// Gossip payloads refused for not being sealed with our cluster key.
    pub auth_failures: u64,
    /// Stream frames dropped (queue full or connection failed).
    pub stream_frames_dropped: u64,
    /// Inbound stream connections closed at once over the cap.
    pub stream_connections_refused: u64,
    /// Inbound stream connections closed for a timeout.
    pub stream_timeouts: u64,
    /// Keys holding a value (expired ones not yet swept included).
    pub keys: u64,
    /// Entries that are tombstones.
    pub tombstones: u64,
    /// Remote versions too far ahead to move our clock.
    pub clock_drift_rejections: u64,
    /// Largest drift beyond the bound seen, ms.
    pub max_clock_drift_seen_ms: u64,
    /// Entries refused as stamped beyond `max_version_ahead_ms`.
    pub future_versions_refused: u64,
}

/// One scrape's constant metrics.
#[derive(Debug)]
struct ScrapeCollector {
    clients: ClientSnapshot,
    node: NodeSnapshot,
}

impl Collector for ScrapeCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), fmt::Error> {
        let c = &self.clients;
        gauge(&mut e, "connected_clients", "Client connections open now", c.connected)?;
        counter(&mut e, "connections_received", "Client connections accepted", None, c.received)?;
        counter(&mut e, "connections_rejected", "Client connections refused at max_clients", None, c.rejected)?;
        counter(
            &mut e,
            "client_protocol_errors",
            "Client connections closed for a protocol error",
            None,
            c.protocol_errors,
        )?;
        counter(
            &mut e,
            "client_output_buffer_limit_disconnections",
            "Client connections closed for unsent replies over client_output_buffer_limit",
            None,
            c.output_limit_disconnections,
        )?;
        counter(
            &mut e,
            "tls_handshake_failures",
            "TLS client connections that failed or timed out in the handshake",
            None,
            c.tls_handshake_failures,
        )?;
        counter(
            &mut e,
            "acl_access_denied_auth",
            "AUTHs refused (wrong password, unknown or disabled user)",
            None,
            c.acl_denied_auth,
        )?;
        counter(
            &mut e,
            "acl_access_denied_cmd",
            "Commands refused by the user's command rules",
            None,
            c.acl_denied_cmd,
        )?;
        counter(
            &mut e,
            "acl_access_denied_key",
            "Commands refused by the user's key patterns",
            None,
            c.acl_denied_key,
        )?;
        counter(
            &mut e,
            "protected_mode_refusals",
            "Client connections from beyond loopback refused by protected mode",
            None,
            c.protected_mode_refusals,
        )?;
        gauge(&mut e, "used_memory_bytes", "What the store counts as used, as maxmemory compares it", c.used_memory)?;
        gauge(&mut e, "maxmemory_bytes", "Store size above which writes get -OOM; 0: no limit", c.maxmemory)?;

        if let Some(s) = self.clients.storage {
            gauge(&mut e, "storage_entries_loaded", "Entries loaded from the data dir at start", s.loaded)?;
            counter(&mut e, "storage_changes_written", "Store changes written to the data dir", None, s.written)?;
            gauge(&mut e, "storage_changes_pending", "Store changes queued for the storage thread", s.pending)?;
            counter(&mut e, "storage_batches", "Batches committed to the data dir", None, s.batches)?;
            counter(&mut e, "storage_fsyncs", "Journal syncs (fdatasync) of the data dir", None, s.syncs)?;
        }

        let n = &self.node;
        let g = &n.gossip;
        counter(&mut e, "gossip_packets_received", "Gossip datagrams and stream frames received", None, g.packets_in)?;
        counter(
            &mut e,
            "gossip_packets_sent",
            "Datagrams (SWIM included) and stream frames sent on the gossip port",
            None,
            g.packets_out,
        )?;
        counter(&mut e, "gossip_received", "Gossip bytes received", Some(&Unit::Bytes), g.bytes_in)?;
        counter(&mut e, "gossip_sent", "Bytes sent on the gossip port", Some(&Unit::Bytes), g.bytes_out)?;
        counter(&mut e, "gossip_entries_sent", "Entries sent in pushes, once per peer", None, g.entries_sent)?;
        counter(&mut e, "gossip_entries_received", "Entries received in pushes", None, g.entries_received)?;
        counter(
            &mut e,
            "gossip_entries_applied",
            "Pushed entries that were new to this node",
            None,
            g.entries_applied,
        )?;
        counter(&mut e, "gossip_decode_errors", "Gossip payloads that did not decode", None, g.decode_errors)?;
        counter(
            &mut e,
            "gossip_sync_refused",
            "Sync messages refused for their shape before anything acted on them",
            None,
            g.sync_refused,
        )?;
        counter(
            &mut e,
            "gossip_sync_oversized",
            "Sync messages not sent because they came out over the stream frame limit",
            None,
            g.sync_oversized,
        )?;
        counter(&mut e, "gossip_send_errors", "Gossip datagrams the socket failed to send", None, n.send_errors)?;
        counter(
            &mut e,
            "gossip_auth_failures",
            "Gossip payloads refused for not being sealed with this mesh's cluster key",
            None,
            n.auth_failures,
        )?;
        counter(
            &mut e,
            "gossip_stream_frames_dropped",
            "Gossip stream frames dropped (queue full or connection failed)",
            None,
            n.stream_frames_dropped,
        )?;
        counter(
            &mut e,
            "gossip_strangers_refused",
            "Gossip messages refused: their sender is not a current member at the packet's source",
            None,
            g.strangers_refused,
        )?;
        counter(
            &mut e,
            "gossip_strangers_limited",
            "SWIM packets from non-members dropped over their per-source rate limit",
            None,
            g.strangers_limited,
        )?;
        counter(
            &mut e,
            "gossip_stranger_answers_dropped",
            "Answers to non-members dropped: over three times the size of their request",
            None,
            g.stranger_answers_dropped,
        )?;
        counter(
            &mut e,
            "gossip_stream_connections_refused",
            "Inbound gossip stream connections closed at once: the cap was reached",
            None,
            n.stream_connections_refused,
        )?;
        counter(
            &mut e,
            "gossip_stream_timeouts",
            "Inbound gossip stream connections closed for a timeout (first frame, idle, slow frame)",
            None,
            n.stream_timeouts,
        )?;

        counter(&mut e, "sync_rounds", "Anti-entropy rounds started", None, g.sync_rounds)?;
        counter(&mut e, "flushes_applied", "FLUSHALLs taken from peers", None, g.flushes_applied)?;
        let c = &n.confirm;
        counter(&mut e, "write_batches", "Local write batches handed to gossip", None, c.batches_written)?;
        gauge(
            &mut e,
            "write_batches_unconfirmed",
            "Local write batches some live peer has not confirmed holding (WAIT)",
            c.batches_written - c.batches_confirmed_by_all,
        )?;
        counter(&mut e, "sync_in_step", "Anti-entropy comparisons that found the digests equal", None, g.sync_in_step)?;
        counter(&mut e, "sync_entries_sent", "Entries sent in anti-entropy messages", None, g.sync_entries_sent)?;
        counter(
            &mut e,
            "sync_entries_applied",
            "Entries received by anti-entropy that were new to this node",
            None,
            g.sync_entries_applied,
        )?;
        counter(&mut e, "sync_sent", "Anti-entropy bytes sent", Some(&Unit::Bytes), g.sync_bytes_out)?;

        let mut members =
            e.encode_descriptor("members", "Known members, this node included, by state.", None, MetricType::Gauge)?;
        for (state, count) in &n.members {
            ConstGauge::new(*count).encode(members.encode_family(&[("state", state.as_str())])?)?;
        }
        let mut changes = e.encode_descriptor(
            "membership_changes",
            "Members coming up, going down (failed) and leaving (on purpose).",
            None,
            MetricType::Counter,
        )?;
        let c = n.member_changes;
        for (change, count) in [("up", c.up), ("down", c.down), ("left", c.left)] {
            ConstCounter::new(count).encode(changes.encode_family(&[("change", change)])?)?;
        }
        let m = &n.membership;
        counter(&mut e, "suspicions", "Times a member was seen turning suspect", None, m.suspicions)?;
        counter(&mut e, "members_declared_down", "Members declared down (failed, not left)", None, m.downs)?;
        counter(&mut e, "members_seen_leaving", "Members that said they were leaving", None, m.leaves)?;
        counter(
            &mut e,
            "members_repaired",
            "Member records taken from a peer's member list that gossip had not brought",
            None,
            m.members_repaired,
        )?;
        counter(
            &mut e,
            "identity_renewals",
            "Renewals of this node's identity after being declared down",
            None,
            m.renewals,
        )?;
        counter(&mut e, "swim_rejected", "SWIM payloads refused (junk, our own, too big)", None, m.swim_rejected)?;
        counter(
            &mut e,
            "swim_redirects_refused",
            "SWIM payloads refused for asking this node to send to an address that is not a listed member's",
            None,
            m.swim_redirects_refused,
        )?;
        counter(
            &mut e,
            "swim_announces_refused",
            "SWIM announces not sent to a down identity this node never saw up",
            None,
            m.swim_announces_refused,
        )?;
        gauge(&mut e, "joined", "1 while another member is active, 0 while this node is alone", u64::from(n.joined))?;
        gauge(
            &mut e,
            "catching_up",
            "1 while this node catches up from its peers after starting empty",
            u64::from(n.catching_up),
        )?;

        gauge(&mut e, "keys", "Keys holding a value", n.keys)?;
        gauge(
            &mut e,
            "tombstones",
            "Deleted or expired keys remembered until every member that may come back holds them",
            n.tombstones,
        )?;
        counter(&mut e, "expired_swept", "Expired values turned into tombstones by the sweep", None, g.expired_swept)?;
        counter(
            &mut e,
            "tombstones_forgotten",
            "Tombstones forgotten once past the tombstone TTL and held by every member that may come back",
            None,
            g.tombstones_forgotten,
        )?;
        counter(
            &mut e,
            "stale_state_discarded",
            "Times this node came back after being gone for good and dropped its entries older than the tombstone TTL",
            None,
            g.stale_state_discarded,
        )?;
        counter(&mut e, "stale_entries_dropped", "Entries dropped on those returns", None, g.stale_entries_dropped)?;
        counter(
            &mut e,
            "members_gone",
            "Members treated as gone for good after being away longer than member_gone_after",
            None,
            g.members_gone,
        )?;
        counter(
            &mut e,
            "clock_drift_rejections",
            "Remote versions too far ahead of the local clock to move it",
            None,
            n.clock_drift_rejections,
        )?;
        counter(
            &mut e,
            "future_versions_refused",
            "Entries refused as stamped more than max_version_ahead_ms ahead of the local clock",
            None,
            n.future_versions_refused,
        )?;
        let drift = ConstGauge::new(n.max_clock_drift_seen_ms as f64 / 1e3);
        drift.encode(e.encode_descriptor(
            "max_clock_drift_seen",
            "Largest lead beyond max_clock_drift_ms seen in a remote version.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}

/// Encodes one unlabelled counter (`help` without its final full stop, as
/// [`Registry::register`] takes it).
fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, unit: Option<&Unit>, value: u64) -> fmt::Result {
    ConstCounter::new(value).encode(e.encode_descriptor(name, &format!("{help}."), unit, MetricType::Counter)?)
}

/// Encodes one unlabelled gauge.
fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    ConstGauge::new(value).encode(e.encode_descriptor(name, &format!("{help}."), None, MetricType::Gauge)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(text: &str) -> Vec<prometheus_parse::Sample> {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        prometheus_parse::Scrape::parse(lines).unwrap().samples
    }

    fn value(samples: &[prometheus_parse::Sample], name: &str, label: Option<(&str, &str)>) -> f64 {
        let sample = samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("no {name} {label:?}"));
        match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn latency_buckets_double_from_10_us_and_count_weights() {
        let h = LatencyHistogram::default();
        h.observe_n(Duration::from_micros(10), 3);
        h.observe_n(Duration::from_micros(11), 1);
        h.observe_n(Duration::from_secs(5), 2);
        h.observe_n(Duration::from_secs(5), 0);
        let counts: Vec<u64> = h.inner.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        assert_eq!(counts[0], 3, "10 µs is within the first bucket");
        assert_eq!(counts[1], 1);
        assert_eq!(counts[LATENCY_BUCKETS], 2, "beyond the last bound: +Inf");
        assert_eq!(counts.iter().sum::<u64>(), 6);
        assert_eq!(h.inner.sum_ns.load(Ordering::Relaxed), 3 * 10_000 + 11_000 + 2 * 5_000_000_000);
    }

    /// Command labels as the client side passes them: commands, then `unknown`.
    const LABELS: &[&str] = &["get", "set", "unknown"];

    #[test]
    fn exposition_is_openmetrics_that_a_parser_reads() {
        let metrics = Metrics::new(LABELS);
        let get = LABELS.iter().position(|c| *c == "get").unwrap();
        metrics.commands().add(get, 5, 1, Duration::from_micros(30));
        let unknown = LABELS.len() - 1;
        metrics.commands().add(unknown, 2, 2, Duration::from_micros(5));
        let node = NodeSnapshot {
            members: [("alive".to_owned(), 2), ("suspect".to_owned(), 0)].into(),
            member_changes: MemberChanges { up: 3, down: 1, left: 2 },
            keys: 7,
            catching_up: true,
            max_clock_drift_seen_ms: 1500,
            future_versions_refused: 4,
            ..NodeSnapshot::default()
        };
        let storage = StorageSnapshot { loaded: 10, written: 42, pending: 3, batches: 6, syncs: 2 };
        let clients = ClientSnapshot {
            connected: 4,
            used_memory: 1234,
            maxmemory: 4096,
            storage: Some(storage),
            ..ClientSnapshot::default()
        };
        let text = metrics.encode(clients, node).unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");

        let s = samples(&text);
        assert_eq!(value(&s, "rumor_commands_total", Some(("cmd", "get"))), 5.0);
        assert_eq!(value(&s, "rumor_commands_total", Some(("cmd", "set"))), 0.0, "every command from the start");
        assert_eq!(value(&s, "rumor_commands_total", Some(("cmd", "unknown"))), 2.0);
        assert_eq!(value(&s, "rumor_command_errors_total", Some(("cmd", "get"))), 1.0);
        assert_eq!(value(&s, "rumor_command_duration_seconds_count", Some(("cmd", "get"))), 5.0);
        let histogram = s
            .iter()
            .find(|s| s.metric == "rumor_command_duration_seconds" && s.labels.get("cmd") == Some("get"))
            .unwrap();
        let prometheus_parse::Value::Histogram(buckets) = &histogram.value else { panic!("{histogram:?}") };
        assert_eq!(buckets.len(), LATENCY_BUCKETS + 1);
        let le_40us = buckets.iter().find(|b| (b.less_than - 40e-6).abs() < 1e-12).unwrap();
        assert_eq!((le_40us.count, buckets.last().unwrap().count), (5.0, 5.0));
        assert_eq!(value(&s, "rumor_connected_clients", None), 4.0);
        assert_eq!(value(&s, "rumor_used_memory_bytes", None), 1234.0);
        assert_eq!(value(&s, "rumor_maxmemory_bytes", None), 4096.0);
        assert_eq!(value(&s, "rumor_members", Some(("state", "alive"))), 2.0);
        assert_eq!(value(&s, "rumor_members", Some(("state", "suspect"))), 0.0);
        assert_eq!(value(&s, "rumor_membership_changes_total", Some(("change", "up"))), 3.0);
        assert_eq!(value(&s, "rumor_keys", None), 7.0);
        assert_eq!(value(&s, "rumor_catching_up", None), 1.0);
        assert_eq!(value(&s, "rumor_max_clock_drift_seen_seconds", None), 1.5);
        assert_eq!(value(&s, "rumor_future_versions_refused_total", None), 4.0);
        assert_eq!(value(&s, "rumor_gossip_sent_bytes_total", None), 0.0);
        assert_eq!(value(&s, "rumor_storage_changes_written_total", None), 42.0);
        assert_eq!(value(&s, "rumor_storage_changes_pending", None), 3.0);
        assert_eq!(value(&s, "rumor_storage_fsyncs_total", None), 2.0);
        let memory_only = Metrics::new(LABELS).encode(ClientSnapshot::default(), NodeSnapshot::default()).unwrap();
        assert!(!memory_only.contains("rumor_storage_"), "no storage series without a data dir");
    }

    #[test]
    fn every_family_has_help_and_a_type() {
        let text = Metrics::new(LABELS).encode(ClientSnapshot::default(), NodeSnapshot::default()).unwrap();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let typed = text.lines().filter(|l| l.starts_with("# TYPE rumor_")).count();
        assert_eq!(scrape.docs.len(), typed, "{text}");
        assert!(typed >= 35, "{typed} families");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("rumor_"), "{line}");
        }
    }
}
