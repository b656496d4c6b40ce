"""Starting workers, separate from routing: `LocalLauncher` runs each as a child process of this
one (multiprocessing spawn) with a `QueueChannel`; the orchestrator keeps only the `WorkerProcess`
handles (send, liveness, exit code) and one stream of messages from all of them."""

from __future__ import annotations

import multiprocessing as mp
import queue
from typing import Any

from trtllm_mixquant.disagg.channel import QueueChannel
from trtllm_mixquant.disagg.config import WorkerSpec


class WorkerProcess:
    """The orchestrator's handle on one launched worker."""

    def __init__(self, spec: WorkerSpec, process: mp.process.BaseProcess, inbox):
        self.spec, self.process, self.inbox = spec, process, inbox

    def send(self, message: Any) -> None:
        self.inbox.put(message)

    def alive(self) -> bool:
        return self.process.is_alive()

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode

    def join(self, timeout: float) -> None:
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


class LocalLauncher:
    def __init__(self):
        self.ctx = mp.get_context("spawn")
        self.outbox = self.ctx.Queue()

    def launch(self, spec: WorkerSpec) -> WorkerProcess:
        from trtllm_mixquant.disagg.worker import worker_main

        inbox = self.ctx.Queue()
        process = self.ctx.Process(target=worker_main, args=(spec, QueueChannel(inbox, self.outbox)),
                                   name=spec.id, daemon=True)
        process.start()
        return WorkerProcess(spec, process, inbox)

    def receive(self, timeout: float) -> Any | None:
        """The next message from any worker, or None after `timeout` seconds."""
        try:
            return self.outbox.get(timeout=timeout)
        except (queue.Empty, OSError, ValueError):  # empty, or the queue closed at shutdown
            return None
