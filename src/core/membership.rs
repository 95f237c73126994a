//! SWIM membership: one wrapper around foca with concrete types, plus the
//! member table that `MEMBERS` shows (foca forgets nothing we need, but it
//! keeps no names for down members and emits no event for suspicion).

use ::core::net::{IpAddr, SocketAddr}; // address values; the core opens no socket
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use foca::{
    AccumulatingRuntime, Codec, Foca, Member, Message, NoCustomBroadcast, OwnedNotification, PostcardCodec, State,
};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use super::io::{Event, Transmit, Transport};
use super::tag::TAG_SWIM;
use super::timer::TimerQueue;
use super::version::NodeId;

/// Who a member is, as SWIM sees it.
///
/// `life` grows with every process start (the driver uses start-up
/// wall-clock ms), so a node restarted on the same address wins foca's
/// address conflict against its old, possibly still "alive", identity.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Identity {
    /// The node's id; also the writer in its versions.
    pub id: NodeId,
    /// Its gossip address (UDP for SWIM and rumors, TCP for streams).
    pub addr: SocketAddr,
    /// Grows on every start and on every renewal after being declared down.
    /// Not SWIM's incarnation (that is [`MemberRecord::incarnation`], the
    /// count of refutations within one life).
    pub life: u64,
    /// Human-readable name for `MEMBERS` and logs. Shared, not owned:
    /// foca clones the identity of every update it applies.
    pub name: Arc<str>,
}

/// Equal when id, life and address are: the name is left out
/// because foca compares identities on every update it applies, and names
/// decoded from different packets are distinct `Arc`s, so comparing them
/// costs a `memcmp` each time. Leaving it out is sound: a process keeps its
/// name for its whole life and a new life starts with a greater `life`
/// (renewals bump it too), so two identities that agree on
/// (id, life, address) come from one life and carry one name.
impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.life == other.life && self.addr == other.addr
    }
}

impl Eq for Identity {}

/// foca's notion of "the same address", as plain integers.
///
/// foca looks an update's member up by address in a linear scan over every
/// member and compares addresses across its whole update backlog; a copied
/// `SocketAddr` is an enum that the compiler spills to the stack and
/// reloads on every step, and at 32 bytes it also fattens every backlog
/// entry. This key is 24 bytes of `u64`s compared word by word.
///
/// Equal exactly when the `SocketAddr`s are, except for the IPv6 flow
/// label, which it leaves out for room: no identity here ever carries one
/// (a bound socket's local address reports 0, and the wire format of
/// `SocketAddr` drops it). An IPv4 address is mapped into IPv6 space and
/// tagged as IPv4, so it never equals its IPv4-mapped IPv6 twin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrKey {
    ip_hi: u64,
    ip_lo: u64,
    /// Port in bits 0..16, IPv6 scope id in 16..48, IPv6 tag in bit 48.
    rest: u64,
}

impl From<SocketAddr> for AddrKey {
    fn from(addr: SocketAddr) -> Self {
        let (ip, rest) = match addr {
            SocketAddr::V4(v4) => (v4.ip().to_ipv6_mapped().to_bits(), u64::from(v4.port())),
            SocketAddr::V6(v6) => {
                (v6.ip().to_bits(), u64::from(v6.port()) | (u64::from(v6.scope_id()) << 16) | (1 << 48))
            }
        };
        AddrKey { ip_hi: (ip >> 64) as u64, ip_lo: ip as u64, rest }
    }
}

impl foca::Identity for Identity {
    type Addr = AddrKey;

    fn renew(&self) -> Option<Self> {
        Some(Identity { life: self.life + 1, ..self.clone() })
    }

    fn addr(&self) -> AddrKey {
        AddrKey::from(self.addr)
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.life, self.id) > (adversary.life, adversary.id)
    }
}

/// One member in a membership exchange: what the sender believes of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The member.
    pub identity: Identity,
    /// Its SWIM incarnation (refutation count) as the sender knows it.
    pub incarnation: u16,
    /// Declared down (failed or left); otherwise alive or suspect.
    pub down: bool,
}

/// A member's state as `MEMBERS` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Someone's probe failed; it has `suspect_timeout` to refute.
    Suspect,
    /// Declared failed.
    Down,
    /// Said it was leaving, then left: stopped on purpose, not failed.
    Left,
}

impl MemberState {
    /// Every state, in display order.
    pub const ALL: [MemberState; 4] = [MemberState::Alive, MemberState::Suspect, MemberState::Down, MemberState::Left];
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
            MemberState::Left => "left",
        })
    }
}

/// One line of `MEMBERS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    /// The member's identity.
    pub identity: Identity,
    /// What we think of it.
    pub state: MemberState,
}

impl fmt::Display for MemberView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.identity.name, self.identity.addr, self.state)
    }
}

/// SWIM timings and sizes.
#[derive(Clone, Debug)]
pub struct SwimConfig {
    /// How often each node probes one member.
    pub probe_interval: Duration,
    /// How long to wait for a direct ack before asking others to probe.
    pub probe_timeout: Duration,
    /// How long a suspect has to refute before it is declared down.
    pub suspect_timeout: Duration,
    /// How often membership updates are gossiped to a few members.
    pub gossip_interval: Duration,
    /// Largest SWIM payload, bytes (the tag byte comes on top).
    pub max_packet_bytes: NonZeroUsize,
    /// Expected mesh size; sets how often each update is retransmitted.
    pub cluster_size_hint: NonZeroU32,
    /// How long a down member stays listed in `MEMBERS`.
    pub forget_down_after: Duration,
}

impl SwimConfig {
    fn foca_config(&self) -> foca::Config {
        let mut config = foca::Config::new_lan(self.cluster_size_hint);
        config.probe_period = self.probe_interval;
        config.probe_rtt = self.probe_timeout;
        config.suspect_to_down_after = self.suspect_timeout;
        config.max_packet_size = self.max_packet_bytes;
        // new_lan's ⌊4·log10(n+1)⌋ is 2 at n = 3 and 7 at n = 64: too few to
        // beat loss. With 6, a graceful leave under 10-30% loss on 64 nodes
        // could miss an observer, which then only learned of it from its own
        // probe round (N × probe interval; sim seed 8 of the 64-node sweep).
        config.max_transmissions = config.max_transmissions.max(NonZeroU8::new(10).unwrap_or(NonZeroU8::MIN));
        if let Some(gossip) = config.periodic_gossip.as_mut() {
            gossip.frequency = self.gossip_interval;
        }
        // Re-forms a mesh split by a partition without waiting a minute.
        if let Some(down) = config.periodic_announce_to_down_members.as_mut() {
            down.frequency = Duration::from_secs(5);
        }
        // An announce's answer carries the answerer's view: every few
        // seconds (not new_lan's 30) so a node that missed a join hears of
        // it long before a full probe round of a large mesh.
        if let Some(announce) = config.periodic_announce.as_mut() {
            announce.frequency = Duration::from_secs(5);
        }
        config
    }
}

/// Counters for INFO.
#[derive(Clone, Copy, Debug, Default)]
pub struct MembershipStats {
    /// Times a member was seen turning suspect.
    pub suspicions: u64,
    /// Members declared down (failed; leaves are counted in `leaves`).
    pub downs: u64,
    /// SWIM payloads foca refused (junk, our own, too big).
    pub swim_rejected: u64,
    /// Renewals of our own identity after being declared down.
    pub renewals: u64,
    /// Members that said they were leaving.
    pub leaves: u64,
    /// Member records taken from a peer's list that gossip had not brought.
    pub members_repaired: u64,
    /// SWIM payloads refused for asking us to send to an address that is
    /// not a listed member's (`PingReq`, `IndirectAck`).
    pub swim_redirects_refused: u64,
    /// Announces foca would have sent to an identity we never saw up,
    /// listed as down only because a message said so.
    pub swim_announces_refused: u64,
}

/// The identity an announce to `addr` is addressed to: foca accepts one
/// addressed to any identity at its address, and we know none there yet.
fn announce_target(addr: SocketAddr) -> Identity {
    Identity { id: NodeId::from_random_bytes([0; 16]), addr, life: 0, name: Arc::from("") }
}

/// What one member adds to [`Membership::digest`]: its id and life.
fn identity_hash(identity: &Identity) -> u64 {
    let mut bytes = [0u8; 24];
    bytes[..16].copy_from_slice(identity.id.uuid().as_bytes());
    bytes[16..].copy_from_slice(&identity.life.to_le_bytes());
    xxh3_64(&bytes)
}

/// The timers the membership side asks for.
pub type SwimTimer = foca::Timer<Identity>;

type Swim = Foca<Identity, PostcardCodec, Xoshiro256PlusPlus, NoCustomBroadcast>;

#[derive(Debug)]
struct Known {
    identity: Identity,
    down_since: Option<Duration>,
    /// Since when (monotonic) foca has shown it as suspect.
    suspect_since: Option<Duration>,
    /// It told us it was leaving: its down is a leave.
    left: bool,
}

impl Known {
    fn up(identity: Identity) -> Self {
        Known { identity, down_since: None, suspect_since: None, left: false }
    }
}

/// foca plus the member table.
pub struct Membership {
    swim: Swim,
    runtime: AccumulatingRuntime<Identity>,
    known: BTreeMap<SocketAddr, Known>,
    /// Addresses in `known` whose `suspect_since` is set: checking
    /// suspicion walks these, not the whole table.
    suspected: BTreeSet<SocketAddr>,
    /// When the oldest listed down member is due to be forgotten.
    forget_due: Option<Duration>,
    active: bool,
    /// Set when foca went idle; the node takes it to re-announce at once.
    isolated: bool,
    /// We asked to leave: foca's Defunct that follows is ours, not the mesh's.
    leaving: bool,
    /// Gossip addresses of active members, rebuilt when membership changes
    /// (pushes pick from it on every write).
    live: Vec<SocketAddr>,
    /// Sum of [`identity_hash`] over foca's active members, rebuilt with
    /// `live`: the member digest, less our own identity, without a walk of
    /// every member per sync message. foca changes its active set only
    /// while applying an update, and then always notifies (MemberUp,
    /// MemberDown or Rename), so this is rebuilt whenever the set may have
    /// changed; a foca error (which may cut a notification short) forces a
    /// rebuild too.
    members_digest: u64,
    /// A foca call failed since the last drain: rebuild `members_digest`.
    recount: bool,
    /// When suspicion was last compared with foca's view.
    suspicion_checked_at: Option<Duration>,
    forget_down_after: Duration,
    suspect_timeout: Duration,
    stats: MembershipStats,
}

/// How often suspicion is compared with foca's view and old downs are
/// forgotten (both walk every member).
const SUSPICION_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// A suspicion this many suspect timeouts old has lost its timer.
const STUCK_SUSPICION_FACTOR: u32 = 3;

/// Where membership puts what it wants done.
pub struct Effects<'a, T> {
    /// Packets to send.
    pub transmits: &'a mut VecDeque<Transmit>,
    /// The node's timer queue.
    pub timers: &'a mut TimerQueue<T>,
    /// Events for the driver.
    pub events: &'a mut VecDeque<Event>,
}

impl Membership {
    /// A membership that knows only itself until it announces.
    pub fn new(identity: Identity, config: &SwimConfig, rng: Xoshiro256PlusPlus) -> Self {
        Membership {
            swim: Foca::new(identity, config.foca_config(), rng, PostcardCodec),
            runtime: AccumulatingRuntime::new(),
            known: BTreeMap::new(),
            suspected: BTreeSet::new(),
            forget_due: None,
            active: false,
            isolated: false,
            leaving: false,
            live: Vec::new(),
            members_digest: 0,
            recount: false,
            suspicion_checked_at: None,
            forget_down_after: config.forget_down_after,
            suspect_timeout: config.suspect_timeout,
            stats: MembershipStats::default(),
        }
    }

    /// Our current identity (renewed if the mesh ever declared us down).
    pub fn identity(&self) -> &Identity {
        self.swim.identity()
    }

    /// Whether at least one other member is active.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Whether some member is down without having said it was leaving:
    /// failed, or cut off from us by a partition.
    pub fn any_failed(&self) -> bool {
        self.known.values().any(|k| k.down_since.is_some() && !k.left)
    }

    /// Whether we lost every other member since the last call.
    pub fn take_isolated(&mut self) -> bool {
        std::mem::take(&mut self.isolated)
    }

    /// Counters.
    pub fn stats(&self) -> MembershipStats {
        self.stats
    }

    /// A SWIM payload (tag byte stripped) from the network, from UDP
    /// source `from`. foca answers the identity a packet names as its
    /// sender and takes that identity in as alive, so a packet whose named
    /// sender is not at its real source is refused: otherwise one forged
    /// packet would make us send to any host, or invent a member there.
    ///
    /// Every other answer foca gives goes to that sender, except two that
    /// go to an identity inside the message: `PingReq { target }` (an
    /// `IndirectPing` to `target`) and `IndirectAck { target }` (a
    /// `ForwardedAck` to it). Those are refused unless `target`'s address
    /// is a member we already list (down or not; checked before the
    /// packet's own updates are applied, so a packet cannot list its
    /// target first): indirect probes run between members, and a stranger
    /// (or a member) cannot aim our packets at any other host.
    pub fn handle_data<T: From<SwimTimer>>(
        &mut self,
        from: SocketAddr,
        data: &[u8],
        now: Duration,
        fx: Effects<'_, T>,
    ) {
        match Codec::<Identity>::decode_header(&mut PostcardCodec, data) {
            Ok(header) if header.src.addr != from => {
                self.stats.swim_rejected += 1;
                tracing::debug!(%from, named = %header.src.addr, "SWIM packet naming a sender not at its source");
                return;
            }
            Ok(foca::Header {
                message: Message::PingReq { target, .. } | Message::IndirectAck { target, .. }, ..
            }) if !self.is_known(target.addr) => {
                self.stats.swim_redirects_refused += 1;
                tracing::debug!(%from, named = %target.addr, "SWIM packet asking us to send to a non-member refused");
                return;
            }
            Ok(_) => {}
            Err(error) => {
                self.stats.swim_rejected += 1;
                tracing::debug!(%from, %error, "SWIM payload rejected");
                return;
            }
        }
        if let Err(error) = self.swim.handle_data(data, &mut self.runtime) {
            self.note_error(&error);
        }
        self.drain(now, fx);
    }

    /// A SWIM timer came due.
    pub fn handle_timer<T: From<SwimTimer>>(&mut self, timer: SwimTimer, now: Duration, fx: Effects<'_, T>) {
        if let Err(error) = self.swim.handle_timer(timer, &mut self.runtime) {
            self.note_error(&error);
        }
        if self.suspicion_checked_at.is_none_or(|at| now.saturating_sub(at) >= SUSPICION_CHECK_INTERVAL) {
            self.suspicion_checked_at = Some(now);
            self.refresh_suspicion(now);
            self.forget_old_downs(now);
        }
        self.drain(now, fx);
    }

    /// Asks whoever listens at `addr` to let us in.
    pub fn announce<T: From<SwimTimer>>(&mut self, addr: SocketAddr, now: Duration, fx: Effects<'_, T>) {
        // foca accepts an Announce addressed to any identity with its address.
        let target = announce_target(addr);
        if let Err(error) = self.swim.announce(target, &mut self.runtime) {
            self.note_error(&error);
        }
        self.drain(now, fx);
    }

    /// Leaves the mesh: gossips our own Down so others see a leave, not a failure.
    pub fn leave<T: From<SwimTimer>>(&mut self, now: Duration, fx: Effects<'_, T>) {
        self.leaving = true;
        if let Err(error) = self.swim.leave_cluster(&mut self.runtime) {
            self.note_error(&error);
        }
        self.drain(now, fx);
    }

    /// Takes `members` as known and alive without gossiping them: knowledge
    /// the mesh already shares (a member list from before a restart, or the
    /// simulator starting a formed mesh), not news.
    pub fn restore<T: From<SwimTimer>>(&mut self, members: &[Identity], now: Duration, fx: Effects<'_, T>) {
        let me = self.identity().addr;
        let others = members.iter().filter(|m| m.addr != me).cloned().map(Member::alive);
        if let Err(error) = self.swim.apply_many(others, false, &mut self.runtime) {
            self.note_error(&error);
        }
        self.drain(now, fx);
    }

    /// A digest of who we think is in the mesh — active members and
    /// ourselves, by identity — equal on two nodes that agree. Order-free
    /// (a sum), so no sorting; suspicion and refutations do not count,
    /// they are SWIM's to settle.
    pub fn digest(&self) -> u64 {
        debug_assert_eq!(
            self.members_digest,
            self.swim.iter_members().map(|m| identity_hash(m.id())).fold(0, u64::wrapping_add),
            "member digest out of step with foca"
        );
        identity_hash(self.identity()).wrapping_add(self.members_digest)
    }

    /// Everything we know of the mesh, ourselves first, for a peer whose
    /// digest differs from ours.
    pub fn records(&self) -> Vec<MemberRecord> {
        // foca does not tell our own refutation count; 0 only matters to a
        // peer that did not know us, and we refute any suspicion it has.
        let me = MemberRecord { identity: self.identity().clone(), incarnation: 0, down: false };
        let others = self.swim.iter_membership_state().map(|m| MemberRecord {
            identity: m.id().clone(),
            incarnation: m.incarnation(),
            down: m.state() == State::Down,
        });
        std::iter::once(me).chain(others).collect()
    }

    /// A peer's records: takes in the members we did not know and the downs
    /// we missed, without gossiping them (the digest exchange is a repair
    /// between two nodes; each other node repairs itself in its own
    /// rounds). SWIM's rules decide every conflict, as for gossip.
    pub fn apply_records<T: From<SwimTimer>>(&mut self, records: Vec<MemberRecord>, now: Duration, fx: Effects<'_, T>) {
        let me = self.identity().clone();
        let news = records.into_iter().filter(|r| {
            if r.identity.addr == me.addr {
                // Only a verdict on who we are now matters (SWIM renews us).
                return r.down && r.identity == me;
            }
            match self.known.get(&r.identity.addr) {
                // A down member we never knew is nothing to learn.
                None => !r.down,
                Some(known) if known.identity != r.identity => {
                    foca::Identity::win_addr_conflict(&r.identity, &known.identity)
                }
                Some(known) => r.down && known.down_since.is_none(),
            }
        });
        let state = |down| if down { State::Down } else { State::Alive };
        let members: Vec<Member<Identity>> =
            news.map(|r| Member::new(r.identity, r.incarnation, state(r.down))).collect();
        if members.is_empty() {
            return;
        }
        self.stats.members_repaired += members.len() as u64;
        if let Err(error) = self.swim.apply_many(members.into_iter(), false, &mut self.runtime) {
            self.note_error(&error);
        }
        self.drain(now, fx);
    }

    /// `identity` told us it is leaving: list it as left, and declare it
    /// down in SWIM at once — its own Down may be lost, and the mesh then
    /// hears of the leave from us too.
    pub fn note_leaving<T: From<SwimTimer>>(&mut self, identity: &Identity, now: Duration, fx: Effects<'_, T>) {
        let Some(known) = self.known.get_mut(&identity.addr).filter(|k| k.identity == *identity) else {
            return;
        };
        if !known.left {
            known.left = true;
            self.stats.leaves += 1;
            // Already down: a member that heard the goodbye before us passed
            // the Down on, and it overtook the goodbye. Told once more, as
            // the leave it was (the down is counted already).
            if known.down_since.is_some() {
                let (name, addr) = (identity.name.to_string(), identity.addr);
                fx.events.push_back(Event::MemberDown { name, addr, left: true });
            }
        }
        let member = self.swim.iter_membership_state().find(|m| m.id() == identity && m.state() != State::Down);
        if let Some(member) = member.cloned() {
            let down = Member::new(member.id().clone(), member.incarnation(), State::Down);
            if let Err(error) = self.swim.apply_many(std::iter::once(down), true, &mut self.runtime) {
                self.note_error(&error);
            }
        }
        self.drain(now, fx);
    }

    /// Whether `addr` is the gossip address of a current member (alive or
    /// suspect): who may push, sync and speak of membership.
    pub fn is_member(&self, addr: SocketAddr) -> bool {
        self.known.get(&addr).is_some_and(|k| k.down_since.is_none())
    }

    /// The identity of the member we list at `addr`, down or not.
    pub fn identity_at(&self, addr: SocketAddr) -> Option<&Identity> {
        self.known.get(&addr).map(|k| &k.identity)
    }

    /// Whether `addr` is the gossip address of a member we list, down or
    /// not.
    pub fn is_known(&self, addr: SocketAddr) -> bool {
        self.known.contains_key(&addr)
    }

    /// Whether some current member's gossip address is on `ip`: the most a
    /// stream frame that names no sender can be checked against.
    pub fn has_member_at(&self, ip: IpAddr) -> bool {
        let (low, high) = (SocketAddr::new(ip, 0), SocketAddr::new(ip, u16::MAX));
        self.known.range(low..=high).any(|(_, k)| k.down_since.is_none())
    }

    /// Gossip addresses of active members (alive or suspect), in a stable order.
    pub fn live_peers(&self) -> &[SocketAddr] {
        &self.live
    }

    /// Addresses of members we know as down.
    pub fn down_peers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.known.iter().filter(|(_, k)| k.down_since.is_some()).map(|(addr, _)| *addr)
    }

    /// Every known member, self first, then by address.
    pub fn members(&self) -> Vec<MemberView> {
        let mut views = vec![MemberView { identity: self.identity().clone(), state: MemberState::Alive }];
        views.extend(self.known.values().map(|k| MemberView {
            identity: k.identity.clone(),
            state: match (k.down_since, k.suspect_since.is_some()) {
                (Some(_), _) if k.left => MemberState::Left,
                (Some(_), _) => MemberState::Down,
                (None, true) => MemberState::Suspect,
                (None, false) => MemberState::Alive,
            },
        }));
        views
    }

    fn note_error(&mut self, error: &foca::Error) {
        self.recount = true;
        match error {
            foca::Error::Encode(_) => {
                // foca's docs: state may be inconsistent after an encode failure.
                tracing::error!(%error, "SWIM failed to encode a message");
            }
            foca::Error::Decode(_)
            | foca::Error::MalformedPacket
            | foca::Error::DataFromOurselves
            | foca::Error::DataTooBig => {
                self.stats.swim_rejected += 1;
                tracing::debug!(%error, "SWIM payload rejected");
            }
            other => tracing::debug!(error = %other, "SWIM"),
        }
    }

    /// foca has no Suspect notification: compare its view with ours and
    /// count each member's turn to suspect once.
    ///
    /// foca drops its pending suspect→down timers when it renews our
    /// identity (after we were declared down, e.g. across a partition), which
    /// can leave a member suspect for good: one that outlives its timeout
    /// several times over is declared down here instead, as the timer would
    /// have; if it is alive it hears so, renews and rejoins at once.
    fn refresh_suspicion(&mut self, now: Duration) {
        let mut suspected = BTreeSet::new();
        let mut overdue = Vec::new();
        for member in self.swim.iter_membership_state().filter(|m| m.state() == State::Suspect) {
            let addr = member.id().addr;
            let Some(known) = self.known.get_mut(&addr) else { continue };
            if known.identity != *member.id() || known.down_since.is_some() {
                continue;
            }
            suspected.insert(addr);
            match known.suspect_since {
                None => {
                    self.stats.suspicions += 1;
                    tracing::info!(member = %addr, name = %known.identity.name, "member suspected");
                    known.suspect_since = Some(now);
                }
                Some(since) if now.saturating_sub(since) > self.suspect_timeout * STUCK_SUSPICION_FACTOR => {
                    overdue.push(member.clone());
                    known.suspect_since = Some(now);
                }
                Some(_) => {}
            }
        }
        for addr in self.suspected.difference(&suspected) {
            if let Some(known) = self.known.get_mut(addr) {
                known.suspect_since = None;
            }
        }
        self.suspected = suspected;
        if overdue.is_empty() {
            return;
        }
        for member in &overdue {
            tracing::info!(member = %member.id().addr, "suspicion outlived its timeout; declaring the member down");
        }
        let downs = overdue.into_iter().map(|m| Member::new(m.id().clone(), m.incarnation(), State::Down));
        if let Err(error) = self.swim.apply_many(downs, true, &mut self.runtime) {
            self.note_error(&error);
        }
    }

    fn drain<T: From<SwimTimer>>(&mut self, now: Duration, fx: Effects<'_, T>) {
        while let Some((to, data)) = self.runtime.to_send() {
            if self.is_announce_to_a_stranger(&to, &data) {
                self.stats.swim_announces_refused += 1;
                tracing::debug!(to = %to.addr, "announce to a down identity we never saw up not sent");
                continue;
            }
            let mut payload = Vec::with_capacity(data.len() + 1);
            payload.push(TAG_SWIM);
            payload.extend_from_slice(&data);
            fx.transmits.push_back(Transmit { to: to.addr, transport: Transport::Datagram, payload: payload.into() });
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            fx.timers.schedule(now + after, T::from(timer));
        }
        let mut changed = false;
        while let Some(notification) = self.runtime.to_notify() {
            self.apply_notification(notification, now, fx.events);
            changed = true;
        }
        if changed {
            self.live = self.swim.iter_members().map(|m| m.id().addr).collect();
        }
        let recount = std::mem::take(&mut self.recount);
        if changed || recount {
            self.members_digest = self.swim.iter_members().map(|m| identity_hash(m.id())).fold(0, u64::wrapping_add);
        }
    }

    /// foca lists as down any identity a member's gossip names down, and on
    /// its own sends an Announce to a random down member every few seconds
    /// (how a mesh split by a partition finds itself again). Sent to an
    /// identity we never saw up, that would be a packet every few seconds,
    /// from every node the gossip reached, to an address only a message
    /// named. So foca's announces go only to the members we list (seen up,
    /// and not yet forgotten) and to the addresses we were asked to announce
    /// to ([`Membership::announce`]'s placeholder identity).
    fn is_announce_to_a_stranger(&self, to: &Identity, data: &[u8]) -> bool {
        if self.known.contains_key(&to.addr) || *to == announce_target(to.addr) {
            return false;
        }
        matches!(
            Codec::<Identity>::decode_header(&mut PostcardCodec, data),
            Ok(foca::Header { message: Message::Announce, .. })
        )
    }

    /// Drops down members listed longer than `forget_down_after`.
    fn forget_old_downs(&mut self, now: Duration) {
        if self.forget_due.is_none_or(|due| now < due) {
            return;
        }
        let forget_after = self.forget_down_after;
        self.known.retain(|_, k| k.down_since.is_none_or(|since| now.saturating_sub(since) < forget_after));
        self.forget_due = self.known.values().filter_map(|k| k.down_since).min().map(|since| since + forget_after);
    }

    /// Lists `known` as down from `now` on.
    fn mark_down(&mut self, known_addr: SocketAddr, now: Duration) {
        if let Some(known) = self.known.get_mut(&known_addr) {
            known.down_since = Some(now);
            known.suspect_since = None;
            let due = now + self.forget_down_after;
            self.forget_due = Some(self.forget_due.map_or(due, |d| d.min(due)));
        }
    }

    fn apply_notification(
        &mut self,
        notification: OwnedNotification<Identity>,
        now: Duration,
        events: &mut VecDeque<Event>,
    ) {
        match notification {
            OwnedNotification::MemberUp(identity) => {
                events.push_back(Event::MemberUp { name: identity.name.to_string(), addr: identity.addr });
                self.known.insert(identity.addr, Known::up(identity));
            }
            OwnedNotification::Rename(_, identity) => {
                // foca renames to a newer identity whatever its state: one
                // renewed and then left is renamed *down*.
                let down = self.swim.iter_membership_state().any(|m| *m.id() == identity && m.state() == State::Down);
                let event = if down {
                    Event::MemberDown { name: identity.name.to_string(), addr: identity.addr, left: false }
                } else {
                    Event::MemberUp { name: identity.name.to_string(), addr: identity.addr }
                };
                events.push_back(event);
                let addr = identity.addr;
                self.known.insert(addr, Known::up(identity));
                if down {
                    self.mark_down(addr, now);
                }
            }
            OwnedNotification::MemberDown(identity) => {
                let addr = identity.addr;
                let known = self.known.entry(addr).or_insert_with(|| Known::up(identity.clone()));
                let left = known.identity == identity && known.left;
                if !left {
                    self.stats.downs += 1;
                }
                events.push_back(Event::MemberDown { name: identity.name.to_string(), addr, left });
                // A newer identity on the same address may already be up.
                if known.identity == identity {
                    self.mark_down(addr, now);
                }
            }
            OwnedNotification::Active => {
                self.active = true;
                events.push_back(Event::Joined);
            }
            OwnedNotification::Idle => {
                self.active = false;
                self.isolated = true;
                events.push_back(Event::Isolated);
            }
            OwnedNotification::Defunct if self.leaving => {}
            OwnedNotification::Defunct => {
                events.push_back(Event::DeclaredDown);
            }
            OwnedNotification::Rejoin(identity) => {
                self.stats.renewals += 1;
                tracing::info!(life = identity.life, "rejoined with a renewed identity");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::core::net::{Ipv4Addr, SocketAddrV4, SocketAddrV6};

    fn key(addr: &str) -> AddrKey {
        AddrKey::from(addr.parse::<SocketAddr>().unwrap())
    }

    #[test]
    fn addr_key_is_as_distinct_as_the_address() {
        assert_eq!(key("10.0.0.1:7000"), key("10.0.0.1:7000"));
        assert_ne!(key("10.0.0.1:7000"), key("10.0.0.1:7001"));
        assert_ne!(key("10.0.0.1:7000"), key("10.0.0.2:7000"));
        // An IPv4 address and its IPv4-mapped IPv6 twin are different addresses.
        assert_ne!(key("10.0.0.1:7000"), key("[::ffff:10.0.0.1]:7000"));
        assert_ne!(key("0.0.0.0:0"), key("[::]:0"));
        assert_eq!(key("[fe80::1]:7000"), key("[fe80::1]:7000"));
        assert_ne!(key("[fe80::1]:7000"), key("[fe80::2]:7000"));
        assert_ne!(key("[1::]:7000"), key("[::1]:7000"));
        let scoped =
            |scope| AddrKey::from(SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 7000, 0, scope)));
        assert_ne!(scoped(1), scoped(2));
        assert_eq!(scoped(3), scoped(3));
        let extremes = |port| AddrKey::from(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, port)));
        assert_ne!(extremes(0), extremes(u16::MAX));
    }

    #[test]
    fn identity_equality_ignores_the_name() {
        let a = Identity {
            id: NodeId::from_random_bytes([1; 16]),
            addr: "10.0.0.1:7000".parse().unwrap(),
            life: 5,
            name: Arc::from("a"),
        };
        assert_eq!(a, Identity { name: Arc::from("b"), ..a.clone() });
        assert_ne!(a, Identity { life: 6, ..a.clone() });
        assert_ne!(a, Identity { addr: "10.0.0.1:7001".parse().unwrap(), ..a.clone() });
        assert_ne!(a, Identity { id: NodeId::from_random_bytes([2; 16]), ..a.clone() });
    }
}
