"""What the bench scripts share: where the release binary is, and waiting
for a server's port to open."""
import os
import socket
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
