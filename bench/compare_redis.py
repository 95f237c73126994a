#!/usr/bin/env python3
"""redis-benchmark against one node of a 3-node rumor mesh and against
redis-server, side by side on this machine, alternating runs; prints the
median requests/s of each and their ratio.

    cargo build --release && python3 bench/compare_redis.py [--runs 5] [--requests 200000]

Needs redis-server and redis-benchmark (apt-get install redis-server redis-tools).
Only loopback ports are used; every process started here is stopped at the end.
"""
import os
import signal
import statistics
import subprocess
import sys
import time

from benchlib import RUMOR, options, redis_benchmark, wait_port

RUMOR_PORT, REDIS_PORT = 6380, 6399


def bench(port, pipeline, requests, clients):
    rows = redis_benchmark(port, ("SET", "GET"), requests, clients, pipeline)
    return rows["SET"], rows["GET"]


def main():
    args = options(200000)

    procs = [
        subprocess.Popen([RUMOR, "dev", "--nodes", "3"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"}),
        subprocess.Popen(["redis-server", "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        wait_port(RUMOR_PORT)
        wait_port(REDIS_PORT)
        time.sleep(1)  # let the mesh form (membership is not on the measured path)
        results = {}
        for run in range(args.runs):
            for pipeline in (1, 16):
                for name, port in (("rumor", RUMOR_PORT), ("redis", REDIS_PORT)):
                    s, g = bench(port, pipeline, args.requests, args.clients)
                    results.setdefault((name, pipeline, "SET"), []).append(s)
                    results.setdefault((name, pipeline, "GET"), []).append(g)
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
        print(f"redis-benchmark -t set,get -n {args.requests} -c {args.clients}, "
              f"median of {args.runs} alternating runs (requests/s)")
        print("| test | pipeline | rumor (3-node mesh) | redis-server | ratio |")
        print("|---|---|---|---|---|")
        for pipeline in (1, 16):
            for test in ("SET", "GET"):
                r = statistics.median(results[("rumor", pipeline, test)])
                d = statistics.median(results[("redis", pipeline, test)])
                print(f"| {test} | {pipeline} | {r:,.0f} | {d:,.0f} | {r / d:.2f} |")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
