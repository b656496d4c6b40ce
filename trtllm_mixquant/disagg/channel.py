"""How a worker talks to whoever drives it: the `WorkerChannel` interface (worker side), its
one-host implementation for the orchestrator's worker processes (a multiprocessing queue and a
pipe), and one for a worker running in a thread of a server's own process (a Dynamo worker).

Worker code sees only `recv`, `send` and `closed`, so workers started by someone else (Dynamo,
Kubernetes pods) get another channel without any change to them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import threading
from collections.abc import Callable
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

    Made by the orchestrator's process for a child of it (`processes.child_processes`); once that
    process is gone (multiprocessing's parent sentinel, which a forked-from-a-server child has too,
    though its OS parent is the server), the worker treats the channel as closed."""

    def __init__(self, inbox, outbox):
        self.inbox, self.outbox = inbox, outbox

    def recv(self, timeout: float | None) -> Any | None:
        try:
            return self.inbox.get(timeout=timeout) if timeout else self.inbox.get_nowait()
        except queue.Empty:
            return None

    def send(self, message: Any) -> None:
        self.outbox.send(message)

    def closed(self) -> bool:
        parent = multiprocessing.parent_process()
        return parent is None or not parent.is_alive()


class ThreadChannel:
    """A worker stepping in a thread of an asyncio server: the server `put`s messages in its inbox,
    and each message the worker sends is handed to `deliver` on the server's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Callable[[Any], None]):
        self.loop, self.deliver = loop, deliver
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.stopped = threading.Event()

    def put(self, message: Any) -> None:
        self.inbox.put(message)

    def recv(self, timeout: float | None) -> Any | None:
        try:
            return self.inbox.get(timeout=timeout) if timeout else self.inbox.get_nowait()
        except queue.Empty:
            return None

    def send(self, message: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.deliver, message)
        except RuntimeError:  # the loop is closed: the server has gone
            self.stopped.set()

    def closed(self) -> bool:
        return self.stopped.is_set()
