"""Starting workers, separate from routing: `LocalLauncher` runs each as a child process of this
one (`processes.child_processes`: forked from a server with torch imported) with a
`ProcessChannel`, or a tensor-parallel worker as one process per rank (rank 0 holds the channel);
the orchestrator keeps only the `WorkerProcess` handles (send, liveness, exit code) and one stream
of messages from all of them."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from multiprocessing.connection import wait
from typing import Any

from trtllm_mixquant.disagg.channel import ProcessChannel
from trtllm_mixquant.disagg.config import WorkerSpec
from trtllm_mixquant.processes import child_processes


class WorkerProcess:
    """The orchestrator's handle on one launched worker: its process, or its ranks' processes (rank 0 first)."""

    def __init__(self, spec: WorkerSpec, processes: list[mp.process.BaseProcess], inbox):
        self.spec, self.processes, self.inbox = spec, processes, inbox

    def send(self, message: Any) -> None:
        self.inbox.put(message)

    def alive(self) -> bool:
        """A worker lives while all its ranks do; once one has died the others are killed (a group
        cannot run short of a rank), so the supervisor sees one dead worker."""
        if all(p.is_alive() for p in self.processes):
            return True
        for p in self.processes:
            if p.is_alive():
                p.kill()
        return False

    @property
    def exitcode(self) -> int | None:
        """The first rank's that failed (rank 0's when none did)."""
        codes = [p.exitcode for p in self.processes]
        return next((c for c in codes if c not in (None, 0, -9)), codes[0])

    def join(self, timeout: float) -> None:
        for p in self.processes:
            p.join(timeout)
        for p in self.processes:
            if p.is_alive():
                p.kill()
                p.join(5)


class Inboxes:
    """One stream of messages from many connections (a pipe end or socket per worker): a launcher's
    `receive`. A connection that ends (its worker died, perhaps mid-message) is dropped."""

    def __init__(self):
        self.readers: list = []
        self.lock = threading.Lock()
        self.pending: list[Any] = []

    def add(self, reader) -> None:
        with self.lock:
            self.readers.append(reader)

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
                except (EOFError, OSError):
                    with self.lock:
                        self.readers.remove(reader)
        return self.pending.pop(0) if self.pending else None


class LocalLauncher:
    def __init__(self):
        self.ctx = child_processes()
        self.inboxes = Inboxes()  # one pipe end per launched worker

    def launch(self, spec: WorkerSpec) -> WorkerProcess:
        from trtllm_mixquant.disagg.worker import rank_main, worker_main

        inbox = self.ctx.Queue()
        reader, writer = self.ctx.Pipe(duplex=False)
        processes = [self.ctx.Process(target=worker_main, args=(spec, ProcessChannel(inbox, writer)),
                                      name=spec.id, daemon=True)]
        processes += [self.ctx.Process(target=rank_main, args=(spec, rank), name=f"{spec.id}.r{rank}", daemon=True)
                      for rank in range(1, len(spec.ranks))]
        for process in processes:
            process.start()
        writer.close()  # the worker holds the only write end: its pipe ends when it dies
        self.inboxes.add(reader)
        return WorkerProcess(spec, processes, inbox)

    def receive(self, timeout: float) -> Any | None:
        return self.inboxes.receive(timeout)


def make_launcher(kind: str):
    """`OrchestratorConfig.launcher`: "local" (child processes) or "mpi" (`mpi_launcher.MpiLauncher`)."""
    if kind == "mpi":
        from trtllm_mixquant.disagg.mpi_launcher import MpiLauncher

        return MpiLauncher()
    return LocalLauncher()
