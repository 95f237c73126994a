"""What the bench scripts share: where the release binary is, waiting for a
server's port to open, running redis-benchmark, and their common options."""
import argparse
import csv
import io
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUMOR = os.path.join(ROOT, "target", "release", "rumor")


def wait_port(port, deadline_s=20):
    """Returns once 127.0.0.1:port accepts connections; exits after deadline_s."""
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"port {port} never opened")


def redis_benchmark(port, tests, requests, clients, pipeline, extra=()):
    """Requests/s per test (e.g. {"SET": 81234.0}) from one redis-benchmark run."""
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", ",".join(t.lower() for t in tests), *extra,
         "-n", str(requests), "-c", str(clients), "-P", str(pipeline), "--csv"],
        check=True, capture_output=True, text=True).stdout
    return {r[0]: float(r[1]) for r in csv.reader(io.StringIO(out)) if r and r[0] in tests}


def options(requests):
    """--runs, --requests and --clients, as every script takes them."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=requests)
    ap.add_argument("--clients", type=int, default=50)
    return ap.parse_args()
