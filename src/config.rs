//! Configuration: a TOML file, overridden by flags, validated into typed
//! settings so that an invalid value cannot reach the node.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::core::loading::LoadingPolicy;
use crate::core::node::NodeConfig;
use crate::core::start::StaleData;
use crate::core::wire::SYNC_MESSAGE_OVERHEAD_BYTES;
use crate::resp::acl::{AuthThrottleLimits, UserSource};
use crate::resp::shared::ClientLimits;
use crate::server::envelope::{ClusterKeys, ENVELOPE_OVERHEAD};
use crate::server::storage::codec::MAX_STORED_KEY_BYTES;
use crate::server::storage::{Fsync, MIN_OPEN_FILES};
use crate::server::tls::{self, TlsError, TlsFiles};

mod parameters;
pub use parameters::fixed_parameters;

/// A configuration problem, worded to name the option at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for our schema (unknown key, wrong type).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which names the key.
        message: String,
    },
    /// Gossip would listen beyond this host with no key: anyone who can
    /// reach the port could join the mesh and write past `requirepass`.
    #[error(
        "gossip address {gossip} is not loopback and no cluster_key_file is set: anyone who can reach it could \
         join the mesh and read and write every key; set a key (`rumor keygen`) or pass --insecure-gossip \
         (insecure_gossip = true) if the network is trusted"
    )]
    OpenGossip {
        /// The gossip address.
        gossip: SocketAddr,
    },
    /// A value is out of range.
    #[error("invalid value for {option}: {reason}")]
    Invalid {
        /// The option, as written in the file.
        option: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The config file's schema. Every field is optional; defaults are in
/// `config/node.toml` and [`Settings::default`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Node name.
    pub name: Option<String>,
    /// Client address.
    pub listen: Option<SocketAddr>,
    /// Gossip address.
    pub gossip: Option<SocketAddr>,
    /// Prometheus metrics address.
    pub metrics: Option<SocketAddr>,
    /// Seeds to announce to.
    pub seeds: Option<Vec<SocketAddr>>,
    /// Client password.
    pub requirepass: Option<String>,
    /// File holding the client password.
    pub requirepass_file: Option<PathBuf>,
    /// ACL file (Redis's syntax) defining the users.
    pub aclfile: Option<PathBuf>,
    /// Refuse non-loopback clients while nothing needs a password.
    pub protected_mode: Option<bool>,
    /// Log format.
    pub log_format: Option<LogFormat>,
    /// Largest clock lead of a peer that may move our clock, ms.
    pub max_clock_drift_ms: Option<u64>,
    /// Largest lead over our wall clock of a version we accept, ms.
    pub max_version_ahead_ms: Option<u64>,
    /// Directory for durable storage; memory only without it.
    pub data_dir: Option<PathBuf>,
    /// When the data dir's journal is synced.
    pub fsync: Option<Fsync>,
    /// What to do with a data dir older than the tombstone TTL.
    pub stale_data: Option<StaleData>,
    /// File with the cluster key(s) that seal gossip.
    pub cluster_key_file: Option<PathBuf>,
    /// Gossip on a non-loopback address without a cluster key, knowingly.
    pub insecure_gossip: Option<bool>,
    /// `maxmemory`: bytes, or a string in Redis's units (`"64mb"`).
    pub maxmemory: Option<MemorySize>,
    /// `[membership]`.
    #[serde(default)]
    pub membership: MembershipFile,
    /// `[dissemination]`.
    #[serde(default)]
    pub dissemination: GossipFile,
    /// `[anti_entropy]`.
    #[serde(default)]
    pub anti_entropy: AntiEntropyFile,
    /// `[limits]`.
    #[serde(default)]
    pub limits: LimitsFile,
    /// `[gossip_streams]`.
    #[serde(default)]
    pub gossip_streams: StreamsFile,
    /// `[tls]`.
    #[serde(default)]
    pub tls: TlsFile,
    /// `[auth]`.
    #[serde(default)]
    pub auth: AuthFile,
}

/// `[tls]` table: a TLS client port.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// See [`TlsSettings::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`TlsFiles::cert`].
    pub cert_file: Option<PathBuf>,
    /// See [`TlsFiles::key`].
    pub key_file: Option<PathBuf>,
    /// See [`TlsFiles::ca`].
    pub ca_cert_file: Option<PathBuf>,
    /// See [`TlsSettings::handshake_timeout`].
    pub handshake_timeout_ms: Option<u64>,
    /// See [`TlsSettings::only`].
    pub only: Option<bool>,
}

/// `[auth]` table: how failed AUTHs are slowed down.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// See [`AuthThrottleLimits::failures_before_delay`].
    pub failures_before_delay: Option<u32>,
    /// See [`AuthThrottleLimits::delay`].
    pub failure_delay_ms: Option<u64>,
    /// See [`AuthThrottleLimits::delay_max`].
    pub failure_delay_max_ms: Option<u64>,
    /// See [`AuthThrottleLimits::forget_after`].
    pub forget_failures_after_ms: Option<u64>,
    /// See [`AuthThrottleLimits::addresses_max`].
    pub addresses_max: Option<usize>,
}

/// `[gossip_streams]` table: inbound TCP connections to the gossip port.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamsFile {
    /// See [`StreamLimits::max_inbound`].
    pub max_inbound: Option<usize>,
    /// See [`StreamLimits::first_frame_timeout`].
    pub first_frame_timeout_ms: Option<u64>,
    /// See [`StreamLimits::idle_timeout`].
    pub idle_timeout_ms: Option<u64>,
    /// See [`StreamLimits::frame_timeout`].
    pub frame_timeout_ms: Option<u64>,
    /// See [`StreamLimits::buffer_bytes`].
    pub buffer_bytes: Option<usize>,
    /// See [`StreamLimits::unauthenticated_frame_bytes`].
    pub unauthenticated_frame_bytes: Option<usize>,
}

/// `[anti_entropy]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AntiEntropyFile {
    /// See [`NodeConfig::sync_interval`].
    pub sync_interval_ms: Option<u64>,
    /// See [`NodeConfig::sync_budget_bytes`].
    pub sync_budget_bytes: Option<usize>,
    /// See [`NodeConfig::tombstone_ttl`].
    pub tombstone_ttl_ms: Option<u64>,
    /// See [`NodeConfig::member_gone_after`].
    pub member_gone_after_ms: Option<u64>,
    /// See [`NodeConfig::loading`].
    pub loading: Option<LoadingPolicy>,
    /// See [`NodeConfig::loading_wait`].
    pub loading_wait_ms: Option<u64>,
    /// See [`Settings::stop_handoff`]; 0 turns it off.
    pub stop_handoff_ms: Option<u64>,
}

/// `[membership]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipFile {
    /// See [`SwimConfig::probe_interval`].
    pub probe_interval_ms: Option<u64>,
    /// See [`SwimConfig::probe_timeout`].
    pub probe_timeout_ms: Option<u64>,
    /// See [`SwimConfig::suspect_timeout`].
    pub suspect_timeout_ms: Option<u64>,
    /// See [`SwimConfig::gossip_interval`].
    pub gossip_interval_ms: Option<u64>,
    /// See [`SwimConfig::cluster_size_hint`].
    pub cluster_size_hint: Option<u32>,
    /// See [`NodeConfig::rejoin_interval`].
    pub rejoin_interval_ms: Option<u64>,
    /// See [`NodeConfig::join_retry_max`].
    pub join_retry_max_ms: Option<u64>,
    /// See [`StrangerLimits::packets_per_sec`].
    pub stranger_packets_per_sec: Option<u32>,
    /// See [`StrangerLimits::sources_max`].
    pub stranger_sources_max: Option<usize>,
}

/// `[dissemination]` table: how writes are pushed to peers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GossipFile {
    /// See [`NodeConfig::fanout`].
    pub fanout: Option<usize>,
    /// See [`NodeConfig::max_hops`].
    pub max_hops: Option<u8>,
    /// See [`NodeConfig::max_datagram_bytes`].
    pub max_datagram_bytes: Option<usize>,
    /// See [`NodeConfig::direct_push_max`].
    pub direct_push_max: Option<usize>,
    /// See [`NodeConfig::wait_tracked_keys`].
    pub wait_tracked_keys: Option<usize>,
    /// Local writes handed to gossip per batch.
    pub write_batch_max: Option<usize>,
    /// Batches the hand-over from clients to gossip holds before writers wait.
    pub write_queue: Option<usize>,
    /// Bytes of keys and values the hand-over holds before writers wait.
    pub write_queue_bytes: Option<usize>,
    /// Gossip socket send and receive buffer size, bytes.
    pub socket_buffer_bytes: Option<usize>,
}

/// `[limits]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// See [`ClientLimits::max_clients`].
    pub max_clients: Option<usize>,
    /// See [`ClientLimits::max_inline_bytes`].
    pub max_inline_bytes: Option<usize>,
    /// See [`ClientLimits::max_bulk_bytes`].
    pub max_bulk_bytes: Option<usize>,
    /// See [`ClientLimits::max_args`].
    pub max_args: Option<usize>,
    /// See [`ClientLimits::max_key_bytes`].
    pub max_key_bytes: Option<usize>,
    /// Redis's `timeout`, seconds; 0: never. See [`ClientLimits::timeout`].
    pub timeout_s: Option<u64>,
    /// See [`ClientLimits::output_buffer_limit_bytes`]; 0: no limit.
    pub client_output_buffer_limit_bytes: Option<usize>,
    /// See [`Settings::storage_open_files`].
    pub storage_open_files: Option<usize>,
}

/// Flags of `rumor serve` that override the file.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeFlags {
    /// TOML config file (see config/node.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Node name shown in MEMBERS and logs.
    #[arg(long)]
    pub name: Option<String>,
    /// Gossip address: UDP for SWIM and rumors, TCP for streams.
    #[arg(long, value_name = "ADDR")]
    pub gossip: Option<SocketAddr>,
    /// Client (RESP) address.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics (default: no metrics endpoint).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Gossip address of a node to join through (repeatable).
    #[arg(long = "seed", value_name = "ADDR")]
    pub seeds: Vec<SocketAddr>,
    /// Log format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Keep the data in DIR and load it at start (default: memory only).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// When the data dir is synced to disk (as Redis's appendfsync).
    #[arg(long, value_enum)]
    pub fsync: Option<Fsync>,
    /// A data dir last in a mesh longer ago than the tombstone TTL: refuse to start, discard it, or keep it.
    #[arg(long, value_enum)]
    pub stale_data: Option<StaleData>,
    /// Encrypt and authenticate gossip with the key(s) in FILE (`rumor keygen` makes one).
    #[arg(long, value_name = "FILE")]
    pub cluster_key_file: Option<PathBuf>,
    /// Gossip on a non-loopback address without a cluster key: anyone who can reach the port can join the mesh.
    #[arg(long)]
    pub insecure_gossip: bool,
    /// Serve clients over TLS on ADDR too (needs --tls-cert-file and --tls-key-file).
    #[arg(long, value_name = "ADDR")]
    pub tls_listen: Option<SocketAddr>,
    /// The TLS certificate chain (PEM), reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The TLS certificate's private key (PEM), reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Require TLS clients to present a certificate signed by a CA in FILE (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_ca_cert_file: Option<PathBuf>,
    /// Serve clients over TLS only: no plain --listen port.
    #[arg(long)]
    pub tls_only: bool,
    /// The default user's password is the content of FILE (without its trailing newline).
    #[arg(long, value_name = "FILE")]
    pub requirepass_file: Option<PathBuf>,
    /// Users, passwords and permissions from FILE, in Redis's ACL file syntax.
    #[arg(long, value_name = "FILE")]
    pub aclfile: Option<PathBuf>,
    /// Refuse clients from beyond loopback while the default user needs no password (default yes).
    #[arg(long, value_name = "yes|no", value_parser = yes_no)]
    pub protected_mode: Option<bool>,
    /// Refuse commands that add data once the store holds this much (bytes, or 64mb, 1gb…; 0: no limit).
    #[arg(long, value_name = "BYTES", value_parser = parse_memory)]
    pub maxmemory: Option<u64>,
}

/// `yes`/`no` (and `true`/`false`), as Redis's boolean options.
fn yes_no(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("expected yes or no, not '{text}'")),
    }
}

/// A size in the config file: an integer of bytes or a string with one of
/// Redis's units.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum MemorySize {
    /// Plain bytes.
    Bytes(u64),
    /// `"100kb"`, `"64mb"`, `"1gb"`, …, as [`parse_memory`] reads it.
    Text(String),
}

/// A memory size as Redis's config reads one (`memtoll`): digits, then
/// optionally a unit, any case: `b`; `k`, `m`, `g` for powers of 1000;
/// `kb`, `mb`, `gb` for powers of 1024.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits);
    let multiplier: u64 = match unit {
        "" | "b" => 1,
        "k" => 1_000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return Err(format!("{text:?} is not a size (bytes, or a number with b, k, kb, m, mb, g or gb)")),
    };
    let number: u64 = number.parse().map_err(|_| format!("{text:?} does not start with a number of bytes"))?;
    number.checked_mul(multiplier).ok_or_else(|| format!("{text:?} is too large"))
}

/// Everything a node needs, validated.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Client address.
    pub listen: SocketAddr,
    /// Gossip address.
    pub gossip: SocketAddr,
    /// Where to serve Prometheus metrics (`/metrics`); `None`: nowhere.
    pub metrics: Option<SocketAddr>,
    /// Node name.
    pub name: String,
    /// The users clients authenticate as: `default` (with `requirepass`,
    /// or open) or the ACL file's.
    pub users: UserSource,
    /// Redis's protected mode.
    pub protected_mode: bool,
    /// How failed AUTHs are slowed down.
    pub auth_throttle: AuthThrottleLimits,
    /// Log format.
    pub log_format: LogFormat,
    /// Core settings.
    pub node: NodeConfig,
    /// Client limits.
    pub limits: ClientLimits,
    /// Local writes handed to gossip per batch.
    pub write_batch_max: NonZeroUsize,
    /// Batches the hand-over from clients to gossip holds before writers wait.
    pub write_queue: NonZeroUsize,
    /// Bytes of keys and values the hand-over holds before writers wait
    /// (one batch is always taken, however large).
    pub write_queue_bytes: usize,
    /// Gossip socket send and receive buffer size, bytes.
    pub socket_buffer_bytes: usize,
    /// Directory for durable storage; `None`: memory only.
    pub data_dir: Option<PathBuf>,
    /// When the data dir's journal is synced.
    pub fsync: Fsync,
    /// What to do with a data dir older than the tombstone TTL.
    pub stale_data: StaleData,
    /// Table and blob files the data dir keeps open; reserved, with what
    /// else the node opens, out of the descriptor limit before clients.
    pub storage_open_files: usize,
    /// Keys that seal gossip; `None`: gossip in the clear.
    pub cluster_keys: Option<ClusterKeys>,
    /// The file the cluster keys were read from: CONFIG GET shows where
    /// they are, never what they are.
    pub cluster_key_file: Option<PathBuf>,
    /// The file the default user's password was read from, kept only for
    /// CONFIG GET to name.
    pub requirepass_file: Option<PathBuf>,
    /// Gossip on a non-loopback address without a key was asked for.
    pub insecure_gossip: bool,
    /// Inbound gossip stream limits.
    pub streams: StreamLimits,
    /// A memory-only node stopping waits at most this long for a live peer
    /// to hold its last writes; `None`: it does not wait.
    pub stop_handoff: Option<Duration>,
    /// The TLS client port; `None`: none.
    pub tls: Option<TlsSettings>,
}

/// A TLS client port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// Where TLS clients connect.
    pub listen: SocketAddr,
    /// The certificate, key and (to require client certificates) CA files.
    pub files: TlsFiles,
    /// A client must finish its handshake within this.
    pub handshake_timeout: Duration,
    /// TLS clients only: the plain `listen` port is not opened.
    pub only: bool,
}

/// Limits on inbound TCP connections to the gossip port, which anyone who
/// can reach the port may open: none of them can use up descriptors or pin
/// memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// Inbound connections at once; more are closed as soon as accepted.
    pub max_inbound: usize,
    /// A new connection's first frame header must arrive within this.
    pub first_frame_timeout: Duration,
    /// A connection with no frame for this long is closed (outbound ones
    /// close themselves after half of it, so a peer's close never eats a
    /// frame).
    pub idle_timeout: Duration,
    /// A frame's body must arrive within this of its header.
    pub frame_timeout: Duration,
    /// Bytes of frames being read, over all inbound connections: reserved
    /// as bytes arrive, so a half-sent frame holds only what was sent, and
    /// all of them together at most this. At least one largest frame.
    pub buffer_bytes: usize,
    /// With a cluster key: the largest first frame of a connection (a
    /// frame opens only once whole, so a stranger's frame holds memory
    /// before its key is checked). Our senders open a connection with an
    /// empty sealed frame before a bigger one.
    pub unauthenticated_frame_bytes: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_inbound: 256,
            first_frame_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            frame_timeout: Duration::from_secs(30),
            buffer_bytes: 128 * 1024 * 1024,
            unauthenticated_frame_bytes: 64 * 1024,
        }
    }
}

/// A first frame must at least hold a sealed empty one.
const MIN_UNAUTHENTICATED_FRAME_BYTES: usize = ENVELOPE_OVERHEAD + 64;

/// Longest node name: it travels in every SWIM header.
pub const MAX_NAME_BYTES: usize = 64;

impl Default for Settings {
    fn default() -> Self {
        let limits = ClientLimits::default();
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 6380)),
            gossip: SocketAddr::from(([127, 0, 0, 1], 7946)),
            metrics: None,
            name: String::new(),
            users: UserSource::default_user(None),
            protected_mode: true,
            auth_throttle: AuthThrottleLimits::default(),
            log_format: LogFormat::Text,
            node: NodeConfig { max_stream_bytes: stream_limit(&limits), ..NodeConfig::default() },
            limits,
            write_batch_max: NonZeroUsize::new(512).unwrap_or(NonZeroUsize::MIN),
            write_queue: NonZeroUsize::new(65_536).unwrap_or(NonZeroUsize::MIN),
            write_queue_bytes: 64 * 1024 * 1024,
            socket_buffer_bytes: 4 * 1024 * 1024,
            data_dir: None,
            fsync: Fsync::default(),
            stale_data: StaleData::default(),
            storage_open_files: crate::server::storage::DEFAULT_OPEN_FILES,
            cluster_keys: None,
            cluster_key_file: None,
            requirepass_file: None,
            insecure_gossip: false,
            streams: StreamLimits::default(),
            tls: None,
            stop_handoff: Some(Duration::from_secs(5)),
        }
    }
}

/// A stream frame must hold the largest key and value a client may write.
fn stream_limit(limits: &ClientLimits) -> usize {
    limits.max_bulk_bytes + limits.max_key_bytes + 4096
}

impl Settings {
    /// Reads the file named by `flags.config` (if any) and applies flags.
    pub fn load(flags: &ServeFlags) -> Result<Settings, ConfigError> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Settings::from_parts(file, flags)
    }

    /// Builds settings from a parsed file and flags (flags win).
    pub fn from_parts(file: FileConfig, flags: &ServeFlags) -> Result<Settings, ConfigError> {
        let mut s = Settings::default();
        let users = users(&file, flags)?;
        s.listen = flags.listen.or(file.listen).unwrap_or(s.listen);
        s.gossip = flags.gossip.or(file.gossip).unwrap_or(s.gossip);
        s.metrics = flags.metrics.or(file.metrics).or(s.metrics);
        s.name = flags.name.clone().or(file.name).unwrap_or_else(|| format!("rumor-{}", s.gossip.port()));
        if s.name.is_empty() || s.name.len() > MAX_NAME_BYTES || s.name.contains(char::is_whitespace) {
            return Err(invalid("name", format!("must be 1 to {MAX_NAME_BYTES} bytes without spaces")));
        }
        s.users = users;
        s.requirepass_file = flags.requirepass_file.clone().or_else(|| file.requirepass_file.clone());
        s.node.seeds = if flags.seeds.is_empty() { file.seeds.unwrap_or_default() } else { flags.seeds.clone() };
        s.protected_mode = flags.protected_mode.or(file.protected_mode).unwrap_or(true);
        let au = &file.auth;
        let at = &mut s.auth_throttle;
        if let Some(n) = au.failures_before_delay {
            at.failures_before_delay = n;
        }
        set_ms(&mut at.delay, au.failure_delay_ms, "auth.failure_delay_ms")?;
        set_ms(&mut at.delay_max, au.failure_delay_max_ms, "auth.failure_delay_max_ms")?;
        set_ms(&mut at.forget_after, au.forget_failures_after_ms, "auth.forget_failures_after_ms")?;
        set_limit(&mut at.addresses_max, au.addresses_max, "auth.addresses_max")?;
        if at.delay_max < at.delay {
            return Err(invalid("auth.failure_delay_max_ms", "must be at least auth.failure_delay_ms".into()));
        }
        s.log_format = flags.log_format.or(file.log_format).unwrap_or_default();
        s.data_dir = flags.data_dir.clone().or(file.data_dir);
        if s.data_dir.as_ref().is_some_and(|dir| dir.as_os_str().is_empty()) {
            return Err(invalid("data_dir", "must not be empty".into()));
        }
        s.fsync = flags.fsync.or(file.fsync).unwrap_or_default();
        s.stale_data = flags.stale_data.or(file.stale_data).unwrap_or_default();
        if let Some(ms) = file.max_clock_drift_ms {
            s.node.max_clock_drift_ms = ms;
        }
        if let Some(ms) = file.max_version_ahead_ms {
            if ms < s.node.max_clock_drift_ms {
                return Err(invalid(
                    "max_version_ahead_ms",
                    format!("must be at least max_clock_drift_ms ({})", s.node.max_clock_drift_ms),
                ));
            }
            s.node.max_version_ahead_ms = ms;
        }

        let m = file.membership;
        let swim = &mut s.node.swim;
        set_ms(&mut swim.probe_interval, m.probe_interval_ms, "membership.probe_interval_ms")?;
        set_ms(&mut swim.probe_timeout, m.probe_timeout_ms, "membership.probe_timeout_ms")?;
        set_ms(&mut swim.suspect_timeout, m.suspect_timeout_ms, "membership.suspect_timeout_ms")?;
        set_ms(&mut swim.gossip_interval, m.gossip_interval_ms, "membership.gossip_interval_ms")?;
        if swim.probe_timeout >= swim.probe_interval {
            return Err(invalid("membership.probe_timeout_ms", "must be less than probe_interval_ms".into()));
        }
        if let Some(n) = m.cluster_size_hint {
            swim.cluster_size_hint = NonZeroU32::new(n)
                .ok_or_else(|| invalid("membership.cluster_size_hint", "must be at least 1".into()))?;
        }
        set_ms(&mut s.node.rejoin_interval, m.rejoin_interval_ms, "membership.rejoin_interval_ms")?;
        set_ms(&mut s.node.join_retry_max, m.join_retry_max_ms, "membership.join_retry_max_ms")?;
        if let Some(rate) = m.stranger_packets_per_sec {
            s.node.strangers.packets_per_sec = rate;
        }
        set_limit(&mut s.node.strangers.sources_max, m.stranger_sources_max, "membership.stranger_sources_max")?;

        let g = file.dissemination;
        if let Some(fanout) = g.fanout {
            if fanout == 0 {
                return Err(invalid("dissemination.fanout", "must be at least 1".into()));
            }
            s.node.fanout = fanout;
        }
        if let Some(hops) = g.max_hops {
            s.node.max_hops = hops;
        }
        if let Some(n) = g.direct_push_max {
            s.node.direct_push_max = n;
        }
        if let Some(n) = g.wait_tracked_keys {
            s.node.wait_tracked_keys = n;
        }
        if let Some(bytes) = g.max_datagram_bytes {
            if !(512..=65_000).contains(&bytes) {
                return Err(invalid("dissemination.max_datagram_bytes", "must be between 512 and 65000".into()));
            }
            s.node.max_datagram_bytes = bytes;
            s.node.swim.max_packet_bytes = NonZeroUsize::new(bytes - 1).unwrap_or(NonZeroUsize::MIN);
        }
        if let Some(n) = g.write_batch_max {
            s.write_batch_max = NonZeroUsize::new(n)
                .ok_or_else(|| invalid("dissemination.write_batch_max", "must be at least 1".into()))?;
        }
        if let Some(n) = g.write_queue {
            s.write_queue = NonZeroUsize::new(n)
                .ok_or_else(|| invalid("dissemination.write_queue", "must be at least 1".into()))?;
        }

        set_limit(&mut s.write_queue_bytes, g.write_queue_bytes, "dissemination.write_queue_bytes")?;
        set_limit(&mut s.socket_buffer_bytes, g.socket_buffer_bytes, "dissemination.socket_buffer_bytes")?;

        let a = file.anti_entropy;
        set_ms(&mut s.node.sync_interval, a.sync_interval_ms, "anti_entropy.sync_interval_ms")?;
        set_ms(&mut s.node.tombstone_ttl, a.tombstone_ttl_ms, "anti_entropy.tombstone_ttl_ms")?;
        set_ms(&mut s.node.member_gone_after, a.member_gone_after_ms, "anti_entropy.member_gone_after_ms")?;
        set_ms(&mut s.node.loading_wait, a.loading_wait_ms, "anti_entropy.loading_wait_ms")?;
        s.node.loading = a.loading.unwrap_or(s.node.loading);
        if let Some(ms) = a.stop_handoff_ms {
            s.stop_handoff = (ms > 0).then(|| Duration::from_millis(ms));
        }
        set_limit(&mut s.node.sync_budget_bytes, a.sync_budget_bytes, "anti_entropy.sync_budget_bytes")?;

        s.limits.maxmemory = match (flags.maxmemory, file.maxmemory) {
            (Some(bytes), _) | (None, Some(MemorySize::Bytes(bytes))) => bytes,
            (None, Some(MemorySize::Text(text))) => {
                parse_memory(&text).map_err(|reason| invalid("maxmemory", reason))?
            }
            (None, None) => 0,
        };
        let l = file.limits;
        set_limit(&mut s.limits.max_clients, l.max_clients, "limits.max_clients")?;
        set_limit(&mut s.limits.max_inline_bytes, l.max_inline_bytes, "limits.max_inline_bytes")?;
        set_limit(&mut s.limits.max_bulk_bytes, l.max_bulk_bytes, "limits.max_bulk_bytes")?;
        set_limit(&mut s.limits.max_args, l.max_args, "limits.max_args")?;
        set_limit(&mut s.limits.max_key_bytes, l.max_key_bytes, "limits.max_key_bytes")?;
        if s.data_dir.is_some() && s.limits.max_key_bytes > MAX_STORED_KEY_BYTES {
            if l.max_key_bytes.is_some() {
                let reason = format!("at most {MAX_STORED_KEY_BYTES} with data_dir (the longest key it can hold)");
                return Err(invalid("limits.max_key_bytes", reason));
            }
            s.limits.max_key_bytes = MAX_STORED_KEY_BYTES;
        }
        set_limit(&mut s.storage_open_files, l.storage_open_files, "limits.storage_open_files")?;
        if s.storage_open_files < MIN_OPEN_FILES {
            return Err(invalid("limits.storage_open_files", format!("must be at least {MIN_OPEN_FILES}")));
        }
        s.limits.timeout = l.timeout_s.filter(|&secs| secs > 0).map(Duration::from_secs);
        // One reply of the largest value must fit, or a GET of it could
        // never be answered.
        let one_value = s.limits.max_bulk_bytes + 64;
        match l.client_output_buffer_limit_bytes {
            Some(bytes) if bytes != 0 && bytes < one_value => {
                let reason =
                    format!("0 (no limit) or at least {one_value} (a reply of one limits.max_bulk_bytes value)");
                return Err(invalid("limits.client_output_buffer_limit_bytes", reason));
            }
            Some(bytes) => s.limits.output_buffer_limit_bytes = bytes,
            None => s.limits.output_buffer_limit_bytes = s.limits.output_buffer_limit_bytes.max(one_value),
        }
        s.node.max_stream_bytes = stream_limit(&s.limits);
        // Both sides derive the frame limit from the same client limits; a
        // sync chunk must fit it or the receiver drops it every round.
        let room = s.node.max_stream_bytes - SYNC_MESSAGE_OVERHEAD_BYTES;
        if s.node.sync_budget_bytes > room {
            if a.sync_budget_bytes.is_some() {
                let reason = format!(
                    "at most {room}: the stream frame limit (limits.max_bulk_bytes + limits.max_key_bytes + 4096) \
                     less {SYNC_MESSAGE_OVERHEAD_BYTES} bytes of a sync message's own"
                );
                return Err(invalid("anti_entropy.sync_budget_bytes", reason));
            }
            s.node.sync_budget_bytes = room;
        }

        let t = file.gossip_streams;
        let st = &mut s.streams;
        set_limit(&mut st.max_inbound, t.max_inbound, "gossip_streams.max_inbound")?;
        set_ms(&mut st.first_frame_timeout, t.first_frame_timeout_ms, "gossip_streams.first_frame_timeout_ms")?;
        set_ms(&mut st.idle_timeout, t.idle_timeout_ms, "gossip_streams.idle_timeout_ms")?;
        set_ms(&mut st.frame_timeout, t.frame_timeout_ms, "gossip_streams.frame_timeout_ms")?;
        set_limit(&mut st.buffer_bytes, t.buffer_bytes, "gossip_streams.buffer_bytes")?;
        let largest_frame = s.node.max_stream_bytes + ENVELOPE_OVERHEAD;
        if st.buffer_bytes < largest_frame {
            if t.buffer_bytes.is_some() {
                let reason = format!("at least {largest_frame} (the largest frame the [limits] allow)");
                return Err(invalid("gossip_streams.buffer_bytes", reason));
            }
            st.buffer_bytes = largest_frame;
        }
        set_limit(
            &mut st.unauthenticated_frame_bytes,
            t.unauthenticated_frame_bytes,
            "gossip_streams.unauthenticated_frame_bytes",
        )?;
        if st.unauthenticated_frame_bytes < MIN_UNAUTHENTICATED_FRAME_BYTES {
            let reason = format!("at least {MIN_UNAUTHENTICATED_FRAME_BYTES} (a sealed empty frame)");
            return Err(invalid("gossip_streams.unauthenticated_frame_bytes", reason));
        }

        if let Some(path) = flags.cluster_key_file.clone().or(file.cluster_key_file) {
            let keys = ClusterKeys::load(&path).map_err(|e| invalid("cluster_key_file", e.to_string()))?;
            s.cluster_keys = Some(keys);
            s.cluster_key_file = Some(path);
            // The envelope rides on every datagram: leave it room.
            s.node.max_datagram_bytes -= ENVELOPE_OVERHEAD;
            let swim = s.node.swim.max_packet_bytes.get() - ENVELOPE_OVERHEAD;
            s.node.swim.max_packet_bytes = NonZeroUsize::new(swim).unwrap_or(NonZeroUsize::MIN);
        }
        s.tls = tls_settings(file.tls, flags)?;
        s.insecure_gossip = flags.insecure_gossip || file.insecure_gossip.unwrap_or(false);
        if s.cluster_keys.is_none() && !s.gossip.ip().is_loopback() && !s.insecure_gossip {
            return Err(ConfigError::OpenGossip { gossip: s.gossip });
        }
        Ok(s)
    }
}

/// The `[tls]` table and the `--tls-*` flags (flags win), checked: the
/// files are loaded once here, so a bad one stops the start naming it.
fn tls_settings(file: TlsFile, flags: &ServeFlags) -> Result<Option<TlsSettings>, ConfigError> {
    let listen = flags.tls_listen.or(file.listen);
    let cert = flags.tls_cert_file.clone().or(file.cert_file);
    let key = flags.tls_key_file.clone().or(file.key_file);
    let ca = flags.tls_ca_cert_file.clone().or(file.ca_cert_file);
    let only = flags.tls_only || file.only.unwrap_or(false);
    let Some(listen) = listen else {
        if cert.is_some() || key.is_some() || ca.is_some() || only {
            return Err(invalid(
                "tls.listen",
                "TLS files or tls_only are set but no TLS address (--tls-listen)".into(),
            ));
        }
        return Ok(None);
    };
    let cert = cert.ok_or_else(|| invalid("tls.cert_file", "needed with tls.listen (--tls-cert-file)".into()))?;
    let key = key.ok_or_else(|| invalid("tls.key_file", "needed with tls.listen (--tls-key-file)".into()))?;
    let mut handshake_timeout = tls::DEFAULT_HANDSHAKE_TIMEOUT;
    set_ms(&mut handshake_timeout, file.handshake_timeout_ms, "tls.handshake_timeout_ms")?;
    let files = TlsFiles { cert, key, ca };
    tls::check(&files).map_err(|error| {
        let option = match &error {
            TlsError::File { what: "key file", .. } => "tls.key_file",
            TlsError::File { what: "CA file", .. } => "tls.ca_cert_file",
            TlsError::File { .. } | TlsError::Config { .. } => "tls.cert_file",
        };
        invalid(option, error.to_string())
    })?;
    Ok(Some(TlsSettings { listen, files, handshake_timeout, only }))
}

/// The users from `requirepass`, `requirepass_file` or `aclfile` (at
/// most one of them). Files are read now, so a bad one refuses start.
fn users(file: &FileConfig, flags: &ServeFlags) -> Result<UserSource, ConfigError> {
    let password = file.requirepass.clone().filter(|p| !p.is_empty());
    let password_file = flags.requirepass_file.clone().or_else(|| file.requirepass_file.clone());
    let aclfile = flags.aclfile.clone().or_else(|| file.aclfile.clone());
    if password.is_some() && password_file.is_some() {
        return Err(invalid("requirepass_file", "cannot be used with requirepass: give one of them".into()));
    }
    if let Some(path) = aclfile {
        if password.is_some() || password_file.is_some() {
            let option = if password.is_some() { "requirepass" } else { "requirepass_file" };
            let reason = "cannot be used with aclfile: give the default user its password in the ACL file \
                          (user default on >password ~* &* +@all)";
            return Err(invalid(option, reason.into()));
        }
        return UserSource::aclfile(&path).map_err(|e| invalid("aclfile", e.to_string()));
    }
    let password = match password_file {
        None => password,
        Some(path) => Some(read_password_file(&path)?),
    };
    Ok(UserSource::default_user(password.as_deref()))
}

/// A password file's content without its trailing newline (`\n` or `\r\n`).
fn read_password_file(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid("requirepass_file", format!("cannot read {}: {e}", path.display())))?;
    let password = text.strip_suffix('\n').map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
    if password.is_empty() {
        return Err(invalid("requirepass_file", format!("{} is empty: it must hold the password", path.display())));
    }
    Ok(password.to_owned())
}

/// Parses a config file, naming the file and the key on error.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    parse_file(path, &text)
}

/// Parses the text of the config file at `path`. On error, the message
/// quotes the line at fault: toml's message for a bad value (say, an
/// unparsable address) does not name the key, and the line does.
fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let place = e.span().map(|span| {
            let before = text.get(..span.start).unwrap_or(text);
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let line = text.get(line_start..).and_then(|rest| rest.lines().next()).unwrap_or_default().trim();
            let number = before.get(..line_start).unwrap_or_default().matches('\n').count() + 1;
            let line: String = line.chars().take(QUOTED_LINE_CHARS).collect();
            format!(" (line {number}: {line})")
        });
        ConfigError::Parse { path: path.into(), message: e.message().to_owned() + &place.unwrap_or_default() }
    })
}

/// The most of a faulty line an error message quotes.
const QUOTED_LINE_CHARS: usize = 80;

fn invalid(option: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { option, reason }
}

fn set_ms(target: &mut Duration, ms: Option<u64>, option: &'static str) -> Result<(), ConfigError> {
    match ms {
        Some(0) => Err(invalid(option, "must be greater than 0".into())),
        Some(ms) => {
            *target = Duration::from_millis(ms);
            Ok(())
        }
        None => Ok(()),
    }
}

fn set_limit(target: &mut usize, value: Option<usize>, option: &'static str) -> Result<(), ConfigError> {
    match value {
        Some(0) => Err(invalid(option, "must be greater than 0".into())),
        Some(v) => {
            *target = v;
            Ok(())
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        let file: FileConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: "t".into(), message: e.to_string() })?;
        Settings::from_parts(file, &ServeFlags::default())
    }

    #[test]
    fn maxmemory_reads_bytes_and_redis_units() {
        for (text, bytes) in [
            ("0", 0),
            ("1048576", 1 << 20),
            ("100kb", 100 << 10),
            ("64mb", 64 << 20),
            ("1GB", 1 << 30),
            ("2Mb", 2 << 20),
            ("5k", 5_000),
            ("3m", 3_000_000),
            ("1g", 1_000_000_000),
            ("7b", 7),
        ] {
            assert_eq!(parse_memory(text), Ok(bytes), "{text}");
        }
        for bad in ["", "mb", "-1mb", "1tb", "1.5gb", "99999999999999999999gb", "1 mb x"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
        assert_eq!(parse("maxmemory = \"64mb\"").unwrap().limits.maxmemory, 64 << 20);
        assert_eq!(parse("maxmemory = 1000").unwrap().limits.maxmemory, 1000);
        let err = parse("maxmemory = \"lots\"").unwrap_err().to_string();
        assert!(err.contains("maxmemory"), "{err}");
        let flags = ServeFlags { maxmemory: Some(5), ..ServeFlags::default() };
        let file: FileConfig = toml::from_str("maxmemory = \"1gb\"").unwrap();
        assert_eq!(Settings::from_parts(file, &flags).unwrap().limits.maxmemory, 5, "the flag wins");
    }

    #[test]
    fn example_config_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/node.toml");
        let file = read_file(&path).unwrap();
        let s = Settings::from_parts(file, &ServeFlags::default()).unwrap();
        let d = Settings::default();
        assert_eq!((s.listen, s.gossip, s.node.max_clock_drift_ms), (d.listen, d.gossip, d.node.max_clock_drift_ms));
        assert_eq!(s.metrics, d.metrics);
        assert_eq!(format!("{:?}", s.node), format!("{:?}", d.node));
        assert_eq!(format!("{:?}", s.limits), format!("{:?}", d.limits));
        assert_eq!((s.write_batch_max, s.write_queue), (d.write_batch_max, d.write_queue));
        assert_eq!(s.socket_buffer_bytes, d.socket_buffer_bytes);
        assert!(s.users.aclfile_path().is_none() && s.protected_mode);
        assert_eq!(s.auth_throttle, d.auth_throttle);
        assert_eq!((&s.data_dir, s.fsync, s.stale_data), (&d.data_dir, d.fsync, d.stale_data));
        assert_eq!((&s.streams, s.insecure_gossip), (&d.streams, d.insecure_gossip));
    }

    #[test]
    fn example_config_commented_out_options_are_valid_keys() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/node.toml");
        let text = std::fs::read_to_string(path).unwrap();
        // Options off by default are shown commented out, before any table.
        let top_level = text.split("\n[").next().unwrap();
        let examples: Vec<&str> =
            top_level.lines().filter_map(|l| l.strip_prefix("# ")).filter(|l| l.contains(" = ")).collect();
        assert!(examples.iter().any(|l| l.starts_with("metrics = ")), "{examples:?}");
        for line in examples {
            let file: FileConfig = toml::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            if file.cluster_key_file.is_some() {
                continue; // a valid key; the example path does not exist here
            }
            Settings::from_parts(file, &ServeFlags::default()).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    }

    #[test]
    fn local_cluster_configs_load() {
        for i in 1..=3 {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("config/node{i}.toml"));
            let s = Settings::from_parts(read_file(&path).unwrap(), &ServeFlags::default()).unwrap();
            assert_eq!(s.name, format!("node{i}"));
            assert_eq!(s.node.seeds.len(), 3);
        }
    }

    #[test]
    fn open_gossip_without_a_key_needs_to_be_asked_for() {
        let err = parse("gossip = \"0.0.0.0:7946\"").unwrap_err().to_string();
        assert!(err.contains("not loopback") && err.contains("--insecure-gossip") && !err.contains('\n'), "{err}");
        assert!(parse("gossip = \"0.0.0.0:7946\"\ninsecure_gossip = true").unwrap().insecure_gossip);
        let flags = ServeFlags { insecure_gossip: true, ..ServeFlags::default() };
        let file: FileConfig = toml::from_str("gossip = \"[::]:7946\"").unwrap();
        assert!(Settings::from_parts(file, &flags).is_ok());
        assert!(parse("gossip = \"[::1]:7946\"").is_ok(), "IPv6 loopback is loopback");
    }

    #[test]
    fn stream_limits_hold_at_least_one_largest_frame() {
        let s = parse("[limits]\nmax_bulk_bytes = 1000000000").unwrap();
        assert!(s.streams.buffer_bytes > 1_000_000_000, "raised to hold the largest frame");
        let err = parse("[gossip_streams]\nbuffer_bytes = 1000").unwrap_err().to_string();
        assert!(err.contains("gossip_streams.buffer_bytes"), "{err}");
        let err = parse("[gossip_streams]\nunauthenticated_frame_bytes = 10").unwrap_err().to_string();
        assert!(err.contains("gossip_streams.unauthenticated_frame_bytes"), "{err}");
        assert_eq!(parse("[gossip_streams]\nmax_inbound = 8").unwrap().streams.max_inbound, 8);
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = parse("nmae = \"x\"").unwrap_err().to_string();
        assert!(err.contains("nmae"), "{err}");
    }

    #[test]
    fn flags_override_the_file() {
        let file: FileConfig = toml::from_str("name = \"file\"\nlisten = \"127.0.0.1:1\"").unwrap();
        let flags = ServeFlags { name: Some("flag".into()), ..ServeFlags::default() };
        let s = Settings::from_parts(file, &flags).unwrap();
        assert_eq!(s.name, "flag");
        assert_eq!(s.listen.port(), 1);
    }

    #[test]
    fn metrics_are_off_unless_asked_for() {
        assert_eq!(parse("").unwrap().metrics, None);
        let s = parse("metrics = \"127.0.0.1:9180\"").unwrap();
        assert_eq!(s.metrics, Some(SocketAddr::from(([127, 0, 0, 1], 9180))));
        let flags = ServeFlags { metrics: Some(SocketAddr::from(([0, 0, 0, 0], 1))), ..ServeFlags::default() };
        let file: FileConfig = toml::from_str("metrics = \"127.0.0.1:9180\"").unwrap();
        assert_eq!(Settings::from_parts(file, &flags).unwrap().metrics, flags.metrics);
        let text = "name = \"a\"\nmetrics = \"nowhere\"\n";
        let err = parse_file(Path::new("node.toml"), text).unwrap_err().to_string();
        assert_eq!(err, "config file node.toml: invalid socket address syntax (line 2: metrics = \"nowhere\")");
    }

    #[test]
    fn the_sync_budget_fits_the_frame_limit_both_sides_derive() {
        let s = parse("").unwrap();
        assert_eq!(s.node.sync_budget_bytes, 4 * 1024 * 1024);
        assert_eq!(s.node.max_stream_bytes, 64 * 1024 * 1024 + 65_536 + 4096);
        // A smaller frame limit clamps the default budget...
        let s = parse("[limits]\nmax_bulk_bytes = 1048576").unwrap();
        assert_eq!(s.node.sync_budget_bytes, s.node.max_stream_bytes - SYNC_MESSAGE_OVERHEAD_BYTES);
        // ...and refuses one set explicitly over it, in one line.
        let err = parse("[limits]\nmax_bulk_bytes = 1048576\n[anti_entropy]\nsync_budget_bytes = 4194304")
            .unwrap_err()
            .to_string();
        assert!(err.contains("anti_entropy.sync_budget_bytes") && !err.contains('\n'), "{err}");
        assert!(parse("[limits]\nmax_bulk_bytes = 1048576\n[anti_entropy]\nsync_budget_bytes = 1000000").is_ok());
    }

    #[test]
    fn storage_is_off_unless_asked_for_and_fsync_defaults_to_everysec() {
        let s = parse("").unwrap();
        assert_eq!((s.data_dir, s.fsync), (None, Fsync::Everysec));
        let s = parse("data_dir = \"/var/lib/rumor\"\nfsync = \"always\"").unwrap();
        assert_eq!((s.data_dir, s.fsync), (Some(PathBuf::from("/var/lib/rumor")), Fsync::Always));
        let flags = ServeFlags { data_dir: Some("d".into()), fsync: Some(Fsync::No), ..ServeFlags::default() };
        let file: FileConfig = toml::from_str("data_dir = \"f\"\nfsync = \"always\"").unwrap();
        let s = Settings::from_parts(file, &flags).unwrap();
        assert_eq!((s.data_dir, s.fsync), (Some(PathBuf::from("d")), Fsync::No));
        let err = parse_file(Path::new("node.toml"), "fsync = \"sometimes\"\n").unwrap_err().to_string();
        assert!(err.contains("fsync = \"sometimes\""), "{err}");
        // Keys are capped at what the data dir can hold.
        assert_eq!(parse("data_dir = \"d\"").unwrap().limits.max_key_bytes, MAX_STORED_KEY_BYTES);
        assert_eq!(parse("").unwrap().limits.max_key_bytes, 65_536);
        let err = parse("data_dir = \"d\"\n[limits]\nmax_key_bytes = 70000").unwrap_err().to_string();
        assert!(err.contains("limits.max_key_bytes"), "{err}");
    }

    #[test]
    fn a_cluster_key_leaves_room_for_its_envelope_in_every_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.key");
        std::fs::write(&path, crate::server::envelope::generate_key()).unwrap();
        let plain = parse("").unwrap();
        assert!(plain.cluster_keys.is_none());
        let flags = ServeFlags { cluster_key_file: Some(path), ..ServeFlags::default() };
        let keyed = Settings::from_parts(FileConfig::default(), &flags).unwrap();
        assert!(keyed.cluster_keys.is_some());
        assert_eq!(keyed.node.max_datagram_bytes + ENVELOPE_OVERHEAD, plain.node.max_datagram_bytes);
        let swim = |s: &Settings| s.node.swim.max_packet_bytes.get();
        assert_eq!(swim(&keyed) + ENVELOPE_OVERHEAD, swim(&plain));
    }

    #[test]
    fn timeout_and_output_limit_follow_redis() {
        let s = parse("").unwrap();
        assert_eq!(s.limits.timeout, None);
        assert_eq!(s.limits.output_buffer_limit_bytes, 256 * 1024 * 1024);
        assert_eq!(parse("[limits]\ntimeout_s = 0").unwrap().limits.timeout, None);
        assert_eq!(parse("[limits]\ntimeout_s = 30").unwrap().limits.timeout, Some(Duration::from_secs(30)));
        let s = parse("[limits]\nclient_output_buffer_limit_bytes = 0").unwrap();
        assert_eq!(s.limits.output_buffer_limit_bytes, 0, "0 is no limit, as in Redis");
        let err = parse("[limits]\nclient_output_buffer_limit_bytes = 1000").unwrap_err().to_string();
        assert!(err.contains("limits.client_output_buffer_limit_bytes") && !err.contains('\n'), "{err}");
        // A raised value limit raises the default output limit with it.
        let s = parse("[limits]\nmax_bulk_bytes = 536870912").unwrap();
        assert!(s.limits.output_buffer_limit_bytes > 536_870_912);
    }

    #[test]
    fn tls_needs_its_address_and_readable_files() {
        assert!(parse("").unwrap().tls.is_none());
        let err = parse("[tls]\nlisten = \"127.0.0.1:6390\"").unwrap_err().to_string();
        assert!(err.contains("tls.cert_file"), "{err}");
        let err = parse("[tls]\ncert_file = \"c\"\nkey_file = \"k\"").unwrap_err().to_string();
        assert!(err.contains("tls.listen"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "not pem").unwrap();
        let text = format!("[tls]\nlisten = \"127.0.0.1:6390\"\ncert_file = {cert:?}\nkey_file = \"/nonexistent\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("tls.cert_file") && err.contains("cert.pem") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn out_of_range_values_name_the_option() {
        let err = parse("[membership]\nprobe_interval_ms = 100\nprobe_timeout_ms = 200").unwrap_err().to_string();
        assert!(err.contains("membership.probe_timeout_ms"), "{err}");
        let err = parse("[limits]\nmax_clients = 0").unwrap_err().to_string();
        assert!(err.contains("limits.max_clients"), "{err}");
    }
}
