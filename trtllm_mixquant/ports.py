"""Free TCP ports, for servers and rendezvous points started on this host."""

from __future__ import annotations

import random
import socket


def free_port(host: str = "127.0.0.1", below: int | None = None) -> int:
    """A port no one listens on now (another process may take it before we bind). The OS picks it,
    or with `below`, one under that bound is tried at random (Dynamo's system port must fit an i16)."""
    for _ in range(200):
        with socket.socket() as sock:
            try:
                sock.bind((host, random.randrange(20000, below) if below else 0))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError(f"no free port on {host}" + (f" below {below}" if below else ""))
