"""The multiprocessing context of the engine's child processes: disaggregated workers
(`disagg.launcher`) and tensor-parallel ranks (`engine.ranks`)."""

from __future__ import annotations

import multiprocessing as mp

# Imported once, in the fork server, before any child is forked from it.
PRELOAD = ["torch", "trtllm_mixquant.disagg.worker"]


def child_processes():
    """The "forkserver" context, with torch and the worker's modules preloaded in the server.

    Each child is a fork of that server: a clean process that has imported them but started no
    CUDA context and no threads, unlike this one, so nothing of this process's state is inherited (as
    with "spawn"), and a child skips the import of torch that a spawned one pays (~3 s on a 2-core
    machine). Children see the environment the server started with, and their arguments are pickled
    as with "spawn".
    """
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx
