#!/usr/bin/env python3
"""redis-benchmark against one node of a 3-node rumor mesh and against
redis-server, side by side on this machine, alternating runs; prints the
median requests/s of each, their ratio, and the server CPU time per request
(user + system, from /proc), which machine noise moves far less than
throughput.

    cargo build --release && python3 bench/compare_redis.py [--runs 5] [--requests 200000]
    python3 bench/compare_redis.py --baseline /path/to/older/rumor   # before and after

With --baseline, an older rumor binary's mesh is measured in the same
alternating runs, so a change is judged against the build before it on the
same machine at the same time. Each run starts every mesh afresh.

Needs redis-server and redis-benchmark (apt-get install redis-server redis-tools).
Only loopback ports are used; every process started here is stopped at the end.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

from benchlib import RUMOR, redis_benchmark, wait_port

RUMOR_PORT, REDIS_PORT = 6380, 6399
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU time of process `pid` so far, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def start_mesh(binary):
    proc = subprocess.Popen([binary, "dev", "--nodes", "3"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    wait_port(RUMOR_PORT)
    time.sleep(1)  # let the mesh form (membership is not on the measured path)
    return proc


def measure(pid, port, test, pipeline, args):
    """Requests/s of one redis-benchmark test and the server's CPU µs per request."""
    before = cpu_seconds(pid)
    rate = redis_benchmark(port, (test,), args.requests, args.clients, pipeline)[test]
    return rate, (cpu_seconds(pid) - before) / args.requests * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--baseline", help="an older rumor binary, measured in the same runs")
    args = ap.parse_args()

    meshes = [("rumor", RUMOR)] + ([("baseline", args.baseline)] if args.baseline else [])
    redis = subprocess.Popen(["redis-server", "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rates, cpus = {}, {}
    try:
        wait_port(REDIS_PORT)
        for run in range(args.runs):
            targets = [(name, binary) for name, binary in meshes] + [("redis", None)]
            for name, binary in targets:
                proc = start_mesh(binary) if binary else redis
                try:
                    for pipeline in (1, 16):
                        for test in ("SET", "GET"):
                            port = RUMOR_PORT if binary else REDIS_PORT
                            rate, cpu = measure(proc.pid, port, test, pipeline, args)
                            rates.setdefault((name, pipeline, test), []).append(rate)
                            cpus.setdefault((name, pipeline, test), []).append(cpu)
                finally:
                    if binary:
                        stop(proc)
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    finally:
        stop(redis)

    names = [name for name, _ in meshes]
    print(f"redis-benchmark -t set,get -n {args.requests} -c {args.clients}, "
          f"median of {args.runs} alternating runs: requests/s (server CPU µs per request)")
    header = " | ".join(f"{n} (3-node mesh)" for n in names)
    print(f"| test | pipeline | {header} | redis-server | rumor / redis |")
    print("|---|---|" + "---|" * len(names) + "---|---|")
    for pipeline in (1, 16):
        for test in ("SET", "GET"):
            cells = []
            for name in names + ["redis"]:
                r = statistics.median(rates[(name, pipeline, test)])
                c = statistics.median(cpus[(name, pipeline, test)])
                cells.append(f"{r:,.0f} ({c:.2f} µs)")
            ratio = statistics.median(rates[("rumor", pipeline, test)]) / statistics.median(
                rates[("redis", pipeline, test)])
            print(f"| {test} | {pipeline} | {' | '.join(cells)} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
