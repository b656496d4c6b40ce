"""Pull mode (what Dynamo workers use): a context worker holds prefilled KV, a generation worker
reads it over NIXL, and the holder frees it once read, or after `hold_seconds` if nobody comes."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import replace

import pytest

from trtllm_mixquant.disagg import messages as m
from trtllm_mixquant.disagg.config import WorkerSpec
from trtllm_mixquant.disagg.worker import Worker
from trtllm_mixquant.engine.config import EngineConfig
from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.phase import quantized_until
from trtllm_mixquant.transfer import TRANSPORTS

from .test_orchestrator import GREEDY, OPTIONS, PROMPTS
from .thread_launcher import ThreadChannel

pytest.importorskip("nixl")
NIXL = TRANSPORTS.target("nixl")


class Running:
    """A worker stepping in a thread; `expect` waits for its next message of a type."""

    def __init__(self, spec: WorkerSpec):
        self.inbox, self.outbox = queue.Queue(), queue.Queue()
        self.worker = Worker(spec, ThreadChannel(self.inbox, self.outbox))
        self.thread = threading.Thread(target=self.worker.serve, daemon=True)
        self.thread.start()
        self.peer = self.expect(m.Ready).peer

    def send(self, msg) -> None:
        self.inbox.put(msg)

    def expect(self, kind, timeout: float = 30.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            msg = self.outbox.get(timeout=end - time.monotonic())
            if isinstance(msg, (kind, m.Failed)):
                return msg
        raise TimeoutError(kind)

    def stop(self) -> None:
        self.send(m.Shutdown())
        self.thread.join(30)


@pytest.fixture(scope="module")
def engine_dir(tiny_engines):
    return tiny_engines("qwen3", "nvfp4")


def spec(engine_dir, role: str, name: str, **kw) -> WorkerSpec:
    return WorkerSpec(role, name, EngineConfig(engine_dir, **OPTIONS),
                      NIXL, **kw)


def generate(ctx: Running, gen: Running, request_id: str, tokens: list[int], k: int = 1):
    cut = quantized_until("mixquant", len(tokens), k)
    if cut == 0:  # nothing to prefill quantized (the Dynamo context worker answers at once)
        gen.send(m.Admit(request_id, tokens, GREEDY, 0, 0))
    else:
        ctx.send(m.Prefill(request_id, tokens[:cut]))
        done = ctx.expect(m.Prefilled)
        assert isinstance(done, m.Prefilled), done
        gen.send(m.Admit(request_id, tokens, GREEDY, cut, cut, m.KVSource(ctx.peer, done.blocks, 30.0)))
    ids = []
    while True:
        msg = gen.expect(m.Tokens)
        if isinstance(msg, m.Failed):
            return msg
        ids += msg.token_ids
        if msg.finish_reason:
            return ids


def held_blocks(worker: Running) -> int:
    return worker.worker.backend.block_usage().used


def wait_for(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_generation_reads_held_kv_and_serves_the_llms_tokens(engine_dir):
    llm = LLM(engine_dir, mode="mixquant", **OPTIONS)
    ctx, gen = Running(spec(engine_dir, "context", "ctx-a")), Running(spec(engine_dir, "generation", "gen-a"))
    try:
        for i, prompt in enumerate(PROMPTS):
            tokens = llm.tokens(prompt)
            assert generate(ctx, gen, f"r{i}", tokens) == llm.generate([tokens], GREEDY)[0].token_ids
        wait_for(lambda: held_blocks(ctx) == 0)  # every read was notified, every hold freed
        gen.send(m.CheckBlocks())
        assert gen.expect(m.BlocksChecked).error is None
    finally:
        ctx.stop()
        gen.stop()


def test_kv_nobody_reads_is_freed_after_hold_seconds(engine_dir):
    ctx = Running(spec(engine_dir, "context", "ctx-b", hold_seconds=0.3))
    try:
        ctx.send(m.Prefill("lonely", list(range(3, 60))))
        assert isinstance(ctx.expect(m.Prefilled), m.Prefilled)
        assert held_blocks(ctx) > 0
        wait_for(lambda: held_blocks(ctx) == 0, timeout=5)
    finally:
        ctx.stop()


def test_a_read_from_a_context_worker_that_died_fails_only_that_request(engine_dir):
    ctx, gen = Running(spec(engine_dir, "context", "ctx-c")), Running(spec(engine_dir, "generation", "gen-c"))
    try:
        tokens = list(range(3, 40))
        ctx.send(m.Prefill("doomed", tokens[:-1]))
        done = ctx.expect(m.Prefilled)
        ctx.stop()
        del ctx.worker  # its NIXL agent goes with it
        gen.send(m.Admit("doomed", tokens, GREEDY, len(tokens) - 1, len(tokens) - 1,
                         m.KVSource(ctx.peer, done.blocks, 30.0)))
        failed = gen.expect(m.Tokens)
        assert isinstance(failed, m.Failed) and "gone" in failed.message
        gen.send(m.Admit("fine", tokens, GREEDY, 0, 0))  # the generation worker still serves
        assert isinstance(gen.expect(m.Tokens), m.Tokens)
        wait_for(lambda: gen.worker.backend.block_usage().reserved == 0)
    finally:
        gen.stop()


def test_kv_from_a_pool_of_another_layout_is_refused_clearly(engine_dir):
    ctx, gen = Running(spec(engine_dir, "context", "ctx-d")), Running(spec(engine_dir, "generation", "gen-d"))
    try:
        tokens = list(range(3, 40))
        ctx.send(m.Prefill("odd", tokens[:-1]))
        done = ctx.expect(m.Prefilled)
        size = ctx.peer.layout.block_size
        other = replace(ctx.peer, layout=replace(ctx.peer.layout, block_size=2 * size))
        gen.send(m.Admit("odd", tokens, GREEDY, len(tokens) - 1, len(tokens) - 1, m.KVSource(other, done.blocks, 30.0)))
        failed = gen.expect(m.Tokens)
        assert isinstance(failed, m.Failed) and f"block_size: {size} vs {2 * size}" in failed.message
        assert gen.worker.backend.block_usage().reserved == 0 and gen.worker.backend.block_usage().used == 0
    finally:
        ctx.stop()
        gen.stop()
