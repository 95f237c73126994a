//! The node's client connections as other connections see them: what
//! `CLIENT LIST` shows and what `CLIENT KILL` reaches.
//!
//! Each connection's [`Client`] is shared between its own session, which
//! is the only writer, and the [`Clients`] registry. What changes on every
//! command (the time, the command's slot) is two relaxed atomic stores;
//! what changes rarely (the name, the library, the user, the protocol) is
//! behind a mutex that only those commands and CLIENT LIST take. A kill is
//! a flag and a wake-up: the killed connection closes itself when it next
//! waits, so no connection ever touches another's socket. A wake-up alone
//! tells an idle connection that `timeout` changed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::reply::Protocol;

/// Every registered connection of a node, by id.
#[derive(Debug, Default)]
pub struct Clients {
    /// Shared with each [`Registration`], which outlives any borrow of the
    /// node's state.
    by_id: Arc<Mutex<ById>>,
}

type ById = BTreeMap<u64, Arc<Client>>;

/// One connection as the registry knows it.
#[derive(Debug)]
pub(crate) struct Client {
    /// `CLIENT ID`.
    pub(crate) id: u64,
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// Our end of the connection.
    pub(crate) local: SocketAddr,
    /// The socket's descriptor, -1 where there is none (the simulator).
    fd: i64,
    /// When the connection was registered, wall-clock ms.
    created_ms: AtomicU64,
    /// When its last command ran, wall-clock ms.
    active_ms: AtomicU64,
    /// Its last command (`cmd=` in CLIENT LIST): the command's slot in the
    /// high bits, its subcommand's index + 1 (0: none) in the low 8.
    last_command: AtomicUsize,
    described: Mutex<Described>,
    killed: AtomicBool,
    /// A kill, or a change of `timeout` for it to wait under.
    wake: Notify,
}

/// What a connection's own commands set and CLIENT LIST shows.
#[derive(Clone, Debug, Default)]
pub(crate) struct Described {
    /// `CLIENT SETNAME`.
    pub(crate) name: Vec<u8>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub(crate) lib_name: Vec<u8>,
    /// `CLIENT SETINFO LIB-VER`.
    pub(crate) lib_ver: Vec<u8>,
    /// The user commands run as.
    pub(crate) user: String,
    /// RESP2 or RESP3.
    pub(crate) protocol: Protocol,
}

/// Keeps a connection in the registry while it lives.
#[derive(Debug)]
pub(crate) struct Registration {
    by_id: Arc<Mutex<ById>>,
    id: u64,
}

/// What `CLIENT KILL`'s filters select (all given filters must match).
#[derive(Clone, Debug, Default)]
pub(crate) struct KillFilter {
    /// `ID id`.
    pub(crate) id: Option<u64>,
    /// `ADDR ip:port`.
    pub(crate) addr: Option<String>,
    /// `LADDR ip:port`.
    pub(crate) laddr: Option<String>,
    /// `USER name`.
    pub(crate) user: Option<String>,
    /// `MAXAGE seconds`: connections older than this.
    pub(crate) max_age_secs: Option<u64>,
    /// `TYPE master|replica|pubsub` selects nobody here: rumor has none.
    pub(crate) no_match: bool,
    /// `SKIPME yes` (the default): never the caller itself.
    pub(crate) skip_id: Option<u64>,
}

impl Clients {
    /// Adds `client` until the returned registration is dropped.
    pub(crate) fn register(&self, client: Arc<Client>, now_ms: u64) -> Registration {
        client.created_ms.store(now_ms, Ordering::Relaxed);
        client.active_ms.store(now_ms, Ordering::Relaxed);
        let id = client.id;
        self.lock().insert(id, client);
        Registration { by_id: Arc::clone(&self.by_id), id }
    }

    /// The connections, by id.
    pub(crate) fn snapshot(&self) -> Vec<Arc<Client>> {
        self.lock().values().cloned().collect()
    }

    /// Marks every connection `filter` selects as killed, wakes them, and
    /// returns how many.
    pub(crate) fn kill(&self, filter: &KillFilter, now_ms: u64) -> usize {
        if filter.no_match {
            return 0;
        }
        let mut killed = 0;
        for client in self.lock().values() {
            if filter.selects(client, now_ms) {
                client.kill();
                killed += 1;
            }
        }
        killed
    }

    /// Wakes every connection to wait out its idle time under the
    /// `timeout` now in force: Redis applies a new timeout to clients
    /// already idle, too.
    pub(crate) fn timeout_changed(&self) {
        for client in self.lock().values() {
            client.wake.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, ById> {
        lock(&self.by_id)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.by_id).remove(&self.id);
    }
}

fn lock(by_id: &Mutex<ById>) -> MutexGuard<'_, ById> {
    // A panic elsewhere while holding it leaves a map that is still whole.
    by_id.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl KillFilter {
    fn selects(&self, client: &Client, now_ms: u64) -> bool {
        if self.skip_id == Some(client.id) || self.id.is_some_and(|id| id != client.id) {
            return false;
        }
        if self.addr.as_deref().is_some_and(|addr| addr != client.peer.to_string()) {
            return false;
        }
        if self.laddr.as_deref().is_some_and(|addr| addr != client.local.to_string()) {
            return false;
        }
        if let Some(max_age_secs) = self.max_age_secs
            && client.age_secs(now_ms) <= max_age_secs
        {
            return false;
        }
        match &self.user {
            Some(user) => client.described().user == *user,
            None => true,
        }
    }
}

impl Client {
    /// A connection not yet registered; `fd` -1 when there is no socket.
    pub(crate) fn new(id: u64, peer: SocketAddr, local: SocketAddr, fd: i64) -> Self {
        Client {
            id,
            peer,
            local,
            fd,
            created_ms: AtomicU64::new(0),
            active_ms: AtomicU64::new(0),
            last_command: AtomicUsize::new(usize::MAX),
            described: Mutex::new(Described { user: "default".to_owned(), ..Described::default() }),
            killed: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    /// Records a command: its slot, its subcommand (0: none, else the
    /// index + 1), and when it ran.
    pub(crate) fn touch(&self, slot: usize, sub: usize, now_ms: u64) {
        debug_assert!(sub <= SUB_MASK);
        self.last_command.store(slot << SUB_BITS | (sub & SUB_MASK), Ordering::Relaxed);
        self.active_ms.store(now_ms, Ordering::Relaxed);
    }

    /// What the connection's commands have set.
    pub(crate) fn described(&self) -> MutexGuard<'_, Described> {
        self.described.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether CLIENT KILL selected this connection.
    pub(crate) fn killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    /// Completes at the next kill or change of `timeout` (at once if the
    /// connection is killed already).
    pub(crate) async fn woken(&self) {
        if !self.killed() {
            self.wake.notified().await;
        }
    }

    fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
        // A stored permit: a connection not waiting yet still wakes.
        self.wake.notify_one();
    }

    fn age_secs(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.created_ms.load(Ordering::Relaxed)) / 1000
    }

    /// The CLIENT LIST / CLIENT INFO line, ending in `\n`, in Redis 7.2's
    /// field order. Buffer and memory fields rumor does not track are 0;
    /// `command(slot, sub)` names a command (`client|list` style).
    pub(crate) fn line(&self, now_ms: u64, command: impl Fn(usize, usize) -> String, out: &mut String) {
        let described = self.described();
        let idle_secs = now_ms.saturating_sub(self.active_ms.load(Ordering::Relaxed)) / 1000;
        let last = self.last_command.load(Ordering::Relaxed);
        let cmd = if last == usize::MAX { "NULL".to_owned() } else { command(last >> SUB_BITS, last & SUB_MASK) };
        let _ = writeln!(
            out,
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 \
             multi=-1 watch=0 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 \
             tot-mem=0 events=r cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.peer,
            self.local,
            self.fd,
            String::from_utf8_lossy(&described.name),
            self.age_secs(now_ms),
            idle_secs,
            cmd,
            described.user,
            described.protocol.version(),
            String::from_utf8_lossy(&described.lib_name),
            String::from_utf8_lossy(&described.lib_ver),
        );
    }
}

/// Bits of `last_command` for the subcommand (a table has far fewer).
const SUB_BITS: usize = 8;
const SUB_MASK: usize = (1 << SUB_BITS) - 1;

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: u64, port: u16) -> Arc<Client> {
        Arc::new(Client::new(id, ([10, 0, 0, 1], port).into(), ([127, 0, 0, 1], 6379).into(), 9))
    }

    #[test]
    fn a_registration_lasts_as_long_as_its_connection() {
        let clients = Clients::default();
        let first = clients.register(client(1, 1000), 0);
        {
            let _second = clients.register(client(2, 1001), 0);
            assert_eq!(clients.snapshot().iter().map(|c| c.id).collect::<Vec<_>>(), [1, 2]);
        }
        assert_eq!(clients.snapshot().len(), 1);
        drop(first);
        assert!(clients.snapshot().is_empty());
    }

    #[test]
    fn kill_selects_by_every_filter_given() {
        let clients = Clients::default();
        let (a, b) = (client(1, 1000), client(2, 1001));
        let _ra = clients.register(Arc::clone(&a), 0);
        let _rb = clients.register(Arc::clone(&b), 5_000);
        b.described().user = "app".to_owned();
        let kill = |filter: KillFilter| clients.kill(&filter, 10_000);
        assert_eq!(kill(KillFilter { id: Some(3), ..KillFilter::default() }), 0);
        assert_eq!(kill(KillFilter { addr: Some("10.0.0.1:9".into()), ..KillFilter::default() }), 0);
        assert_eq!(kill(KillFilter { no_match: true, ..KillFilter::default() }), 0);
        assert_eq!(kill(KillFilter { user: Some("app".into()), skip_id: Some(2), ..KillFilter::default() }), 0);
        assert!(!a.killed() && !b.killed());
        assert_eq!(kill(KillFilter { max_age_secs: Some(6), ..KillFilter::default() }), 1, "only a is over 6 s old");
        assert!(a.killed() && !b.killed());
        assert_eq!(kill(KillFilter { addr: Some("10.0.0.1:1001".into()), ..KillFilter::default() }), 1);
        assert!(b.killed());
    }

    #[tokio::test]
    async fn a_kill_wakes_a_connection_waiting_or_not_yet() {
        let clients = Clients::default();
        let a = client(1, 1000);
        let _r = clients.register(Arc::clone(&a), 0);
        assert_eq!(clients.kill(&KillFilter { id: Some(1), ..KillFilter::default() }, 0), 1);
        tokio::time::timeout(std::time::Duration::from_secs(5), a.woken()).await.expect("woken");
    }

    #[test]
    fn the_line_has_redis_fields_in_order() {
        let a = client(4, 1000);
        let clients = Clients::default();
        let _r = clients.register(Arc::clone(&a), 1_000);
        a.touch(2, 1, 3_500);
        {
            let mut described = a.described();
            described.name = b"w1".to_vec();
            described.protocol = Protocol::Resp3;
            described.lib_name = b"redis-py".to_vec();
        }
        let mut line = String::new();
        a.line(9_000, |slot, sub| format!("{slot}|{sub}"), &mut line);
        assert!(
            line.starts_with("id=4 addr=10.0.0.1:1000 laddr=127.0.0.1:6379 fd=9 name=w1 age=8 idle=5 flags=N db=0")
        );
        assert!(line.ends_with(" cmd=2|1 user=default redir=-1 resp=3 lib-name=redis-py lib-ver=\n"), "{line}");
    }
}
