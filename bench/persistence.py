#!/usr/bin/env python3
"""SET throughput of one rumor node with a data dir against redis-server with
an append-only file, for each sync policy, side by side on this machine,
alternating runs; prints the median requests/s of each and their ratio.

    cargo build --release && python3 bench/persistence.py [--runs 5] [--requests 200000]

rumor `--fsync always|everysec` is compared with redis-server
`--appendonly yes --appendfsync always|everysec`; both also run memory-only
as a baseline. Each server writes to its own temporary directory, started
fresh for every run. Needs redis-server and redis-benchmark
(apt-get install redis-server redis-tools). Only loopback ports are used;
every process started here is stopped at the end of its run.
"""
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import RUMOR, options, redis_benchmark, wait_port

RUMOR_PORT, GOSSIP_PORT, REDIS_PORT = 6390, 7990, 6399
MODES = ("memory", "everysec", "always")


def start(server, mode, data_dir):
    if server == "rumor":
        cmd = [RUMOR, "serve", "--listen", f"127.0.0.1:{RUMOR_PORT}", "--gossip", f"127.0.0.1:{GOSSIP_PORT}"]
        if mode != "memory":
            cmd += ["--data-dir", data_dir, "--fsync", mode]
        port = RUMOR_PORT
    else:
        cmd = ["redis-server", "--port", str(REDIS_PORT), "--save", "", "--dir", data_dir]
        cmd += ["--appendonly", "no"] if mode == "memory" else ["--appendonly", "yes", "--appendfsync", mode]
        port = REDIS_PORT
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "RUST_LOG": "warn"})
    wait_port(port)
    return proc, port


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bench_set(port, pipeline, requests, clients):
    return redis_benchmark(port, ("SET",), requests, clients, pipeline, extra=("-r", "1000000"))["SET"]


def main():
    args = options(200000)

    results = {}
    for run in range(args.runs):
        for mode in MODES:
            for pipeline in (1, 16):
                for server in ("rumor", "redis"):
                    with tempfile.TemporaryDirectory(prefix=f"bench-{server}-") as data_dir:
                        proc, port = start(server, mode, data_dir)
                        try:
                            rate = bench_set(port, pipeline, args.requests, args.clients)
                        finally:
                            stop(proc)
                    results.setdefault((server, mode, pipeline), []).append(rate)
        print(f"run {run + 1}/{args.runs} done", file=sys.stderr)

    print(f"redis-benchmark -t set -r 1000000 -n {args.requests} -c {args.clients}, one server each, "
          f"median of {args.runs} alternating runs (requests/s)")
    print("| persistence (rumor / redis-server) | pipeline | rumor | redis-server | ratio |")
    print("|---|---|---|---|---|")
    names = {"memory": "none / none", "everysec": "`--fsync everysec` / `appendfsync everysec`",
             "always": "`--fsync always` / `appendfsync always`"}
    for mode in MODES:
        for pipeline in (1, 16):
            r = statistics.median(results[("rumor", mode, pipeline)])
            d = statistics.median(results[("redis", mode, pipeline)])
            print(f"| {names[mode]} | {pipeline} | {r:,.0f} | {d:,.0f} | {r / d:.2f} |")


if __name__ == "__main__":
    main()
