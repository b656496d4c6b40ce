"""How the orchestrator and a worker talk: the `WorkerChannel` interface (worker side) and its
one-host implementation over a multiprocessing queue and a pipe.

Worker code sees only `recv`, `send` and `closed`, so workers that live in other processes started
by someone else (Dynamo, Kubernetes pods) can get another channel without changing them.
"""

from __future__ import annotations

import os
import queue
from typing import Any, Protocol


class WorkerChannel(Protocol):
    def recv(self, timeout: float | None) -> Any | None:
        """The next message, waiting at most `timeout` seconds (0: don't wait); None if none came."""

    def send(self, message: Any) -> None: ...

    def closed(self) -> bool:
        """The orchestrator is gone: the worker should exit."""


class ProcessChannel:
    """A worker's end on one host: its inbox (a multiprocessing queue only the orchestrator writes)
    and its own outbound pipe. Each worker writes to a pipe of its own, so a worker killed in the
    middle of a message spoils only its own pipe, never the messages of the others.

    Made by the orchestrator's process; a worker whose parent is no longer that process (it died and
    the worker was re-parented) treats the channel as closed."""

    def __init__(self, inbox, outbox):
        self.inbox, self.outbox = inbox, outbox
        self.parent = os.getpid()

    def recv(self, timeout: float | None) -> Any | None:
        try:
            return self.inbox.get(timeout=timeout) if timeout else self.inbox.get_nowait()
        except queue.Empty:
            return None

    def send(self, message: Any) -> None:
        self.outbox.send(message)

    def closed(self) -> bool:
        return os.getppid() != self.parent
