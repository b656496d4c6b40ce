"""Workers under MPI: `MpiLauncher` starts each worker as its own MPI job,
`mpirun -n TP python -m trtllm_mixquant.disagg.mpi_launcher SPEC ADDRESS`, the way TensorRT-LLM
launches its multi-GPU workers. mpi4py gives each process its rank; rank 0 picks the rendezvous
of the group's torch.distributed ranks and broadcasts it over MPI, then runs the worker and dials
back to the orchestrator (a `multiprocessing.connection` over TCP, authenticated with a key passed
in the environment); ranks 1..n-1 follow it (`engine.ranks`).

A rank that dies takes its job down: MPI's launcher (Hydra, for the MPICH wheel on PyPI) ends the
other ranks and exits, and the orchestrator sees one dead worker (and replaces it).
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import replace
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from trtllm_mixquant.disagg.config import WorkerSpec
from trtllm_mixquant.disagg.launcher import Inboxes
from trtllm_mixquant.engine.rank_plan import RankPlan
from trtllm_mixquant.ports import free_port

log = logging.getLogger(__name__)
AUTHKEY_ENV = "TRTLLM_MIXQUANT_AUTHKEY"
RANK_HOST_ENV = "TRTLLM_MIXQUANT_RANK_HOST"  # where rank 0 listens for its ranks (default: loopback, one host)


def find_mpirun() -> str:
    """mpirun on PATH, or the one beside this Python (`pip install mpich` puts it there)."""
    found = shutil.which("mpirun") or shutil.which("mpirun", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("the mpi launcher needs mpirun: `pip install mpich` (or install Open MPI)")
    return found


class ConnectionChannel:
    """A worker's channel over one duplex `multiprocessing` connection to the orchestrator."""

    def __init__(self, conn: Connection):
        self.conn, self.gone = conn, False

    def recv(self, timeout: float | None) -> Any | None:
        try:
            if self.conn.poll(timeout or 0):
                return self.conn.recv()
        except (EOFError, OSError):
            self.gone = True
        return None

    def send(self, message: Any) -> None:
        self.conn.send(message)

    def closed(self) -> bool:
        return self.gone


class MpiWorker:
    """The orchestrator's handle on one worker's MPI job (the `mpirun` process)."""

    def __init__(self, spec: WorkerSpec, job: subprocess.Popen, spec_file: Path):
        self.spec, self.job, self.spec_file = spec, job, spec_file
        self.conn: Connection | None = None
        self.unsent: list[Any] = []  # messages sent before rank 0 dialled back
        self.lock = threading.Lock()

    def attach(self, conn: Connection) -> None:
        with self.lock:
            self.conn = conn
            for message in self.unsent:
                conn.send(message)
            self.unsent = []

    def send(self, message: Any) -> None:
        with self.lock:
            if self.conn is None:
                self.unsent.append(message)
                return
            try:
                self.conn.send(message)
            except OSError:  # the job is gone; the supervisor sees it
                pass

    def alive(self) -> bool:
        return self.job.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self.job.returncode

    def join(self, timeout: float) -> None:
        try:
            self.job.wait(timeout)
        except subprocess.TimeoutExpired:
            self.job.terminate()  # mpirun passes it on to its ranks
            try:
                self.job.wait(5)
            except subprocess.TimeoutExpired:
                self.job.kill()
                self.job.wait()
        self.spec_file.unlink(missing_ok=True)


class MpiLauncher:
    def __init__(self, mpirun: str | None = None):
        self.mpirun = mpirun or find_mpirun()
        self.authkey = os.urandom(16)
        self.inboxes = Inboxes()

    def launch(self, spec: WorkerSpec) -> MpiWorker:
        if spec.ranks and spec.ranks[0].world_size != spec.ranks[0].tp_size:
            raise ValueError("the mpi launcher starts each worker as an MPI job of its own, which cannot join the "
                             "one torch.distributed world the torch KV transport needs; use --kv-transport nixl")
        listener = Listener(("127.0.0.1", 0), authkey=self.authkey)
        with tempfile.NamedTemporaryFile("wb", prefix=f"{spec.id}-", suffix=".spec", delete=False) as f:
            pickle.dump(replace(spec, ranks=()), f)  # the ranks are planned inside the job
        host, port = listener.address
        command = [self.mpirun, "-n", str(spec.tp_size), sys.executable, "-m", __name__, f.name, f"{host}:{port}"]
        # its own session: Ctrl-C in a terminal reaches the orchestrator, which stops the job cleanly
        job = subprocess.Popen(command, env={**os.environ, AUTHKEY_ENV: self.authkey.hex()}, start_new_session=True)
        worker = MpiWorker(spec, job, Path(f.name))
        threading.Thread(target=self._accept, args=(listener, worker), name=f"accept-{spec.id}", daemon=True).start()
        return worker

    def _accept(self, listener: Listener, worker: MpiWorker) -> None:
        try:
            conn = listener.accept()
        except Exception as err:  # a stranger with the wrong key, or the listener closed
            log.error("worker %s could not connect: %s", worker.spec.id, err)
            return
        finally:
            listener.close()
        worker.attach(conn)
        self.inboxes.add(conn)

    def receive(self, timeout: float) -> Any | None:
        return self.inboxes.receive(timeout)


def main(spec_file: str, address: str) -> None:
    """One MPI rank of a worker's job."""
    from mpi4py import MPI

    from trtllm_mixquant.disagg.worker import rank_main, worker_main

    comm = MPI.COMM_WORLD
    with open(spec_file, "rb") as f:
        spec: WorkerSpec = pickle.load(f)
    n = comm.Get_size()
    if n != spec.tp_size:
        raise SystemExit(f"{spec.id} needs {spec.tp_size} ranks and mpirun started {n}")
    if n > 1:
        host = os.environ.get(RANK_HOST_ENV, "127.0.0.1")
        port = comm.bcast(free_port(host) if comm.Get_rank() == 0 else None, root=0)
        ranks = tuple(range(n))
        spec = replace(spec, ranks=tuple(RankPlan(r, n, r, n, ranks, host, port) for r in ranks))
    if comm.Get_rank() == 0:
        host, _, port = address.rpartition(":")
        worker_main(spec, ConnectionChannel(Client((host, int(port)), authkey=bytes.fromhex(os.environ[AUTHKEY_ENV]))))
    else:
        rank_main(spec, comm.Get_rank())


if __name__ == "__main__":
    main(*sys.argv[1:])
