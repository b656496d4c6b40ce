"""A launcher of a test's own: workers run as threads of the test process and talk through plain
`queue.Queue`s, to show that the orchestrator needs no particular way of starting workers."""

from __future__ import annotations

import queue
import threading

from trtllm_mixquant.disagg.worker import Worker


class ThreadChannel:
    def __init__(self, inbox: queue.Queue, outbox: queue.Queue):
        self.inbox, self.outbox = inbox, outbox

    def recv(self, timeout):
        try:
            return self.inbox.get(timeout=timeout) if timeout else self.inbox.get_nowait()
        except queue.Empty:
            return None

    def send(self, message) -> None:
        self.outbox.put(message)

    def closed(self) -> bool:
        return False


class ThreadWorker:
    def __init__(self, spec, thread: threading.Thread, inbox: queue.Queue):
        self.spec, self.thread, self.inbox = spec, thread, inbox
        self.exitcode = None

    def send(self, message) -> None:
        self.inbox.put(message)

    def alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)


class ThreadLauncher:
    def __init__(self):
        self.outbox: queue.Queue = queue.Queue()
        self.launched: list[ThreadWorker] = []

    def launch(self, spec) -> ThreadWorker:
        inbox: queue.Queue = queue.Queue()
        channel = ThreadChannel(inbox, self.outbox)
        thread = threading.Thread(target=lambda: Worker(spec, channel).serve(), name=spec.id, daemon=True)
        thread.start()
        self.launched.append(ThreadWorker(spec, thread, inbox))
        return self.launched[-1]

    def receive(self, timeout: float):
        try:
            return self.outbox.get(timeout=timeout)
        except queue.Empty:
            return None
