"""redis-py 8 against a two-node rumor mesh, at the library's default
settings (RESP3, a connection pool). Usage: redis_py.py HOST:PORT HOST:PORT.

Exits non-zero with a message on the first failed check; prints one line
per check passed. Run by tests/client_libraries.rs.
"""

import sys
import time

import redis


def check(what, condition, detail=""):
    if not condition:
        sys.exit(f"FAILED: {what} {detail}")
    print(f"ok: {what}")


def wait_for(what, deadline_s, probe):
    """Polls probe() until it is truthy or deadline_s pass."""
    give_up = time.monotonic() + deadline_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > give_up:
            sys.exit(f"FAILED: timed out after {deadline_s}s waiting for {what}")
        time.sleep(0.01)


def main():
    (host_a, port_a), (host_b, port_b) = (addr.rsplit(":", 1) for addr in sys.argv[1:3])
    major = int(redis.__version__.split(".")[0])
    check("redis-py is version 8", major == 8, redis.__version__)

    # Defaults: no protocol= given. redis-py 8 speaks RESP3 by default.
    a = redis.Redis(host=host_a, port=int(port_a))
    b = redis.Redis(host=host_b, port=int(port_b), decode_responses=True)

    check("PING", a.ping() is True)
    info = a.client_info()
    check("the connection negotiated RESP3 (HELLO 3)", str(info.get("resp")) == "3", repr(info))
    check("CLIENT SETINFO reached the server", info.get("lib-name") == "redis-py", repr(info))

    check("SET", a.set("py:greeting", "hello") is True)
    check("GET", a.get("py:greeting") == b"hello")
    check("GET of a missing key is None (RESP3 null)", a.get("py:missing") is None)
    check("SET EX", a.set("py:ttl", "v", ex=100) is True)
    ttl = a.ttl("py:ttl")
    check("TTL", 0 < ttl <= 100, repr(ttl))

    # The write on node A reaches node B.
    wait_for("py:greeting on the other node", 10, lambda: b.get("py:greeting") == "hello")
    check("a write on one node is read on the other", True)

    # The pool: many threads' worth of connections, reused.
    pool = redis.ConnectionPool(host=host_a, port=int(port_a), max_connections=4)
    pooled = redis.Redis(connection_pool=pool)
    for i in range(50):
        pooled.set(f"py:pool:{i}", i)
    check("pooled writes", pooled.get("py:pool:49") == b"49")
    connections = [pool.get_connection() for _ in range(3)]
    ids = set()
    for connection in connections:
        connection.send_command("CLIENT", "ID")
        ids.add(connection.read_response())
    for connection in connections:
        pool.release(connection)
    check("the pool holds distinct connections", len(ids) == 3, repr(ids))
    pool.disconnect()

    # A transaction (redis-py's default pipeline: MULTI … EXEC), and WATCH.
    tx = a.pipeline()
    tx.set("py:tx:a", "1").set("py:tx:b", "2").mget("py:tx:a", "py:tx:b")
    check("pipeline() runs as MULTI/EXEC", tx.execute() == [True, True, [b"1", b"2"]])
    with a.pipeline() as watched:
        watched.watch("py:tx:a")
        b.set("py:tx:a", "changed")  # another connection, another node
        wait_for("the other node's write", 10, lambda: a.get("py:tx:a") == b"changed")
        watched.multi()
        watched.set("py:tx:a", "mine")
        try:
            watched.execute()
            aborted = False
        except redis.WatchError:
            aborted = True
    check("WATCH aborts on another node's write", aborted and a.get("py:tx:a") == b"changed")

    # A plain pipeline (transaction=False).
    pipe = a.pipeline(transaction=False)
    for i in range(100):
        pipe.set(f"py:pipe:{i}", i)
    pipe.get("py:pipe:99")
    pipe.mget("py:pipe:0", "py:pipe:1", "py:missing")
    pipe.exists("py:pipe:0", "py:pipe:1", "py:missing")
    pipe.delete("py:pipe:0")
    results = pipe.execute()
    check("pipeline(transaction=False) runs every command", len(results) == 104, repr(len(results)))
    check("pipeline replies are in order", results[100] == b"99" and results[101] == [b"0", b"1", None], repr(results[100:]))
    check("pipeline EXISTS and DEL", results[102] == 2 and results[103] == 1, repr(results[102:]))

    # scan_iter walks the whole keyspace through SCAN's cursor.
    found = set(a.scan_iter(match="py:pipe:*", count=7))
    check("scan_iter finds every key", len(found) == 99, repr(len(found)))

    # INFO parsed into a dict (a verbatim string in RESP3).
    info = a.info()
    check("info() parses", "redis_version" in info and "connected_clients" in info, repr(sorted(info)[:10]))
    check("info('server')", "rumor_version" in a.info("server"))
    check("CONFIG GET is a dict", isinstance(a.config_get("maxclients"), dict) and "maxclients" in a.config_get("maxclients"))
    check("TIME", isinstance(a.time(), tuple) and a.time()[0] > 1_600_000_000)
    check("CLIENT SETNAME/GETNAME", a.client_setname("py-client") and a.client_getname() in ("py-client", b"py-client"))
    listed = b.client_list()
    check("CLIENT LIST parses", all("id" in entry and "addr" in entry for entry in listed) and listed, repr(listed))
    check("COMMAND COUNT", a.command_count() > 10)
    check("DBSIZE", a.dbsize() >= 150)

    # RESP2 still works when asked for.
    old = redis.Redis(host=host_a, port=int(port_a), protocol=2)
    check("protocol=2 GET", old.get("py:greeting") == b"hello" and old.get("py:missing") is None)
    check("protocol=2 connection is RESP2", str(old.client_info().get("resp")) == "2")

    print("redis-py: all checks passed")


if __name__ == "__main__":
    main()
