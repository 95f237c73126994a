#!/usr/bin/env python3
"""Memory under a load of large writes that arrive small: CONNS clients
each pipeline 50 `RESTORE key 0 payload REPLACE` of a 12 KB payload whose
LZF stream legitimately expands 88 times, to a 1 MiB value, on a node with
one peer. Prints the node's peak resident set, its replies, the slowest
PING during the load, and how the peer saw it.

    cargo build --release
    python3 bench/restore_load.py target/release/rumor 16
"""

import socket
import struct
import subprocess
import sys
import threading
import time

PER_CONNECTION = 50


def crc64(data):
    """CRC-64/Jones, reflected, as Redis's DUMP payloads carry it."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x95AC9329AC4BC9B5 if c & 1 else c >> 1
        table.append(c)
    crc = 0
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def length(n):
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    return b"\x80" + n.to_bytes(4, "big")


def max_expansion_payload(value_len):
    """A string of `value_len` a's: one literal, then back-references of
    264 bytes at distance 1 (3 bytes each), the most LZF expands."""
    stream = bytearray(b"\x00a")
    left = value_len - 1
    while left >= 264:
        stream += b"\xe0\xff\x00"
        left -= 264
    while left > 0:
        stream += b"\x00a"
        left -= 1
    body = b"\x00\xc3" + length(len(stream)) + length(value_len) + bytes(stream) + struct.pack("<H", 9)
    return body + struct.pack("<Q", crc64(body))


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += [b"$%d\r\n" % len(a), a, b"\r\n"]
    return b"".join(out)


def replies(sock, count):
    """Reads `count` simple replies (+OK or -ERR …) or integers."""
    buf, lines = b"", []
    while len(lines) < count:
        data = sock.recv(1 << 16)
        if not data:
            break
        buf += data
        *done, buf = buf.split(b"\r\n")
        lines += done
    return lines


def call(port, *args):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(command(*args))
        return s.recv(1 << 16)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    binary, conns = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 16
    ports = [free_port() for _ in range(4)]
    node = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{ports[0]}", "--gossip", f"127.0.0.1:{ports[1]}"],
                            stderr=subprocess.DEVNULL)
    peer = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{ports[2]}", "--gossip", f"127.0.0.1:{ports[3]}",
                             "--seed", f"127.0.0.1:{ports[1]}"], stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if call(ports[2], "MEMBERS").count(b" alive") == 2:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        payload = max_expansion_payload(88 * 12_000)
        print(f"payload {len(payload)} B -> value {88 * 12_000} B; {conns} clients x {PER_CONNECTION} RESTOREs")
        seen, pings, peaks, done = {}, [], [0], threading.Event()

        def watch():
            with socket.create_connection(("127.0.0.1", ports[2]), timeout=30) as s:
                while not done.is_set():
                    s.sendall(command("MEMBERS"))
                    text = s.recv(1 << 16)
                    for state in (b"alive", b"suspect", b"down"):
                        if f"127.0.0.1:{ports[1]} ".encode() + state in text:
                            seen[state.decode()] = seen.get(state.decode(), 0) + 1
                    with open(f"/proc/{node.pid}/status") as status:
                        for line in status:
                            if line.startswith("VmHWM"):
                                peaks[0] = int(line.split()[1])
                    started = time.time()
                    call(ports[0], "PING")
                    pings.append(time.time() - started)
                    time.sleep(0.02)

        results = []

        def client(i):
            with socket.create_connection(("127.0.0.1", ports[0]), timeout=120) as s:
                s.sendall(command("RESTORE", f"k{i}", 0, payload, "REPLACE") * PER_CONNECTION)
                results.extend(replies(s, PER_CONNECTION))

        watcher = threading.Thread(target=watch)
        watcher.start()
        started = time.time()
        clients = [threading.Thread(target=client, args=(i,)) for i in range(conns)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(180)
        took = time.time() - started
        time.sleep(0.5)
        done.set()
        watcher.join(30)
        alive = node.poll() is None
        ok = sum(1 for r in results if r == b"+OK")
        print(f"{took:.2f} s: {ok} OK of {conns * PER_CONNECTION}; node {'up' if alive else 'gone'}; "
              f"peak RSS {peaks[0] // 1024} MiB; slowest PING {max(pings, default=0) * 1000:.0f} ms; "
              f"the peer saw it {seen}")
    finally:
        for p in (node, peer):
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
