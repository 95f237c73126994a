#!/usr/bin/env python3
"""Anti-entropy figures on real processes (release build, loopback only):

1. bytes per sync round between two nodes with identical stores of N keys;
2. time for an empty node to bootstrap N keys of 100 bytes from the mesh;
3. time to converge after a heal: one node of a 3- and a 10-node mesh is
   frozen (SIGSTOP) until the others mark it down, writes go on elsewhere,
   then it is thawed (SIGCONT); time from the thaw until it holds every write.

    cargo build --release && python3 bench/anti_entropy.py [--keys 100000 1000000]

Every process started here is stopped at the end; every loop has a deadline.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUMOR = os.path.join(ROOT, "target", "release", "rumor")
procs = []


def free_port():
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            u.close()
            return port
        except OSError:
            u.close()


def start(name, seed=None):
    client, gossip = free_port(), free_port()
    args = [RUMOR, "serve", "--name", name, "--listen", f"127.0.0.1:{client}",
            "--gossip", f"127.0.0.1:{gossip}"]
    if seed:
        args += ["--seed", seed]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env={**os.environ, "RUST_LOG": "warn"})
    procs.append(p)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", client), timeout=0.2).close()
            return p, client, f"127.0.0.1:{gossip}"
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{name} never opened its port")


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], check=True,
                          capture_output=True, text=True).stdout.strip()


def info(port, field):
    for line in cli(port, "INFO", "gossip").splitlines():
        if line.startswith(field + ":"):
            return int(line.split(":", 1)[1])
    raise KeyError(field)


def dbsize(port):
    return int(cli(port, "DBSIZE"))


def load(port, n, start_at=0, tag="v"):
    """n SETs of 100-byte values through redis-cli --pipe."""
    p = subprocess.Popen(["redis-cli", "-p", str(port), "--pipe"], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL)
    chunk = []
    for i in range(start_at, start_at + n):
        key = f"key:{i:09d}"
        value = (f"{tag}:{i}:" + "x" * 100)[:100]
        chunk.append(f"*3\r\n$3\r\nSET\r\n${len(key)}\r\n{key}\r\n${len(value)}\r\n{value}\r\n")
        if len(chunk) == 10000:
            p.stdin.write("".join(chunk).encode())
            chunk = []
    p.stdin.write("".join(chunk).encode())
    p.stdin.close()
    p.wait()


def wait(what, cond, deadline_s):
    start = time.time()
    while time.time() - start < deadline_s:
        if cond():
            return time.time() - start
        time.sleep(0.05)
    sys.exit(f"timed out waiting for {what}")


def bench_keys(n):
    _, a, a_gossip = start("a")
    _, b, _ = start("b", a_gossip)
    time.sleep(1)
    t0 = time.time()
    load(a, n)
    wait("b to hold every key", lambda: dbsize(b) == n, 120)
    print(f"  loaded {n} keys on a, all on b after {time.time() - t0:.1f} s", file=sys.stderr)
    time.sleep(2)
    bytes0 = info(a, "sync_bytes_out") + info(b, "sync_bytes_out")
    rounds0 = info(a, "sync_rounds") + info(b, "sync_rounds")
    time.sleep(10)
    bytes1 = info(a, "sync_bytes_out") + info(b, "sync_bytes_out")
    rounds1 = info(a, "sync_rounds") + info(b, "sync_rounds")
    per_round = (bytes1 - bytes0) / max(1, rounds1 - rounds0)
    _, c, _ = start("c", a_gossip)
    took = wait("c to bootstrap", lambda: dbsize(c) == n, 300)
    return per_round, rounds1 - rounds0, took


def bench_heal(size, writes=20000):
    procs_here = []
    first, port0, seed = start("n1")
    nodes = [(first, port0)]
    for i in range(2, size + 1):
        p, port, _ = start(f"n{i}", seed)
        nodes.append((p, port))
    wait("mesh", lambda: all(len(cli(port, "MEMBERS").splitlines()) == size for _, port in nodes), 30)
    frozen, frozen_port = nodes[-1]
    frozen.send_signal(signal.SIGSTOP)
    # Write only once the others see it down, so no push is sent to it (a
    # frozen process's socket would buffer them): only anti-entropy helps.
    wait("the frozen node to be marked down",
         lambda: all(" down" in line for line in cli(port0, "MEMBERS").splitlines() if line.startswith(f"n{size} ")), 30)
    load(port0, writes, tag="during")
    wait("writer", lambda: dbsize(port0) == writes, 30)
    frozen.send_signal(signal.SIGCONT)
    took = wait("the thawed node to hold every write", lambda: dbsize(frozen_port) == writes, 60)
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, nargs="+", default=[100000, 1000000])
    args = ap.parse_args()
    try:
        print("| keys | bytes per sync round (identical stores) | rounds measured | empty node bootstrap |")
        print("|---|---|---|---|")
        for n in args.keys:
            per_round, rounds, took = bench_keys(n)
            print(f"| {n:,} | {per_round:.0f} | {rounds} | {took:.1f} s |", flush=True)
            for p in procs:
                p.kill()
            procs.clear()
        print()
        print("| mesh | writes while frozen | converge after thaw |")
        print("|---|---|---|")
        for size in (3, 10):
            took = bench_heal(size)
            print(f"| {size} nodes | 20,000 | {took:.2f} s |", flush=True)
            for p in procs:
                p.kill()
            procs.clear()
    finally:
        for p in procs:
            try:
                p.send_signal(signal.SIGCONT)
            except ProcessLookupError:
                pass
            p.kill()


if __name__ == "__main__":
    main()
