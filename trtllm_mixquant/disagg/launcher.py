"""Starting workers, separate from routing: `LocalLauncher` runs each as a child process of this
one (multiprocessing spawn) with a `ProcessChannel`; the orchestrator keeps only the `WorkerProcess`
handles (send, liveness, exit code) and one stream of messages from all of them."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from multiprocessing.connection import wait
from typing import Any

from trtllm_mixquant.disagg.channel import ProcessChannel
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
        self.readers: list = []  # one pipe end per launched worker
        self.lock = threading.Lock()
        self.pending: list[Any] = []

    def launch(self, spec: WorkerSpec) -> WorkerProcess:
        from trtllm_mixquant.disagg.worker import worker_main

        inbox = self.ctx.Queue()
        reader, writer = self.ctx.Pipe(duplex=False)
        process = self.ctx.Process(target=worker_main, args=(spec, ProcessChannel(inbox, writer)),
                                   name=spec.id, daemon=True)
        process.start()
        writer.close()  # the worker holds the only write end: its pipe ends when it dies
        with self.lock:
            self.readers.append(reader)
        return WorkerProcess(spec, process, inbox)

    def receive(self, timeout: float) -> Any | None:
        """The next message from any worker, or None after `timeout` seconds."""
        if not self.pending:
            with self.lock:
                readers = list(self.readers)
            if not readers:
                time.sleep(timeout)
            for reader in wait(readers, timeout) if readers else []:
                try:
                    self.pending.append(reader.recv())
                except (EOFError, OSError):  # the worker is gone (perhaps mid-message): drop its pipe
                    with self.lock:
                        self.readers.remove(reader)
        return self.pending.pop(0) if self.pending else None
