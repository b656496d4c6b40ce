"""NIXL KV transfer between two in-process agents (real UCX transport over host memory)."""

from __future__ import annotations

import gc
import json
import time
from dataclasses import replace

import pytest
import torch

from trtllm_mixquant.transfer.base import KVLayoutError, PeerInfo, block_runs
from trtllm_mixquant.transfer.nixl import NixlKVTransport
from trtllm_mixquant.manifest import KVCacheLayout
from trtllm_mixquant.runtime.kv_cache import KVCache

pytest.importorskip("nixl")
LAYOUT = KVCacheLayout(num_layers=3, num_kv_heads=2, head_dim=8, block_size=4)


def test_block_runs_coalesce_consecutive_pairs():
    assert block_runs([3, 4, 5, 9, 10], [7, 8, 2, 3, 4], 8) == [(3, 7, 2), (5, 2, 1), (9, 3, 2)]
    assert block_runs([0, 1, 2, 3, 4], [5, 6, 7, 8, 9], 2) == [(0, 5, 2), (2, 7, 2), (4, 9, 1)]


def test_block_runs_coalesce_recycled_blocks_handed_out_in_descending_order():
    """A block manager recycles a freed sequence's blocks tail first; the pairs must still coalesce."""
    assert block_runs([12, 11, 10, 3, 2], [40, 39, 38, 37, 36], 8) == [(2, 36, 2), (10, 38, 3)]


def wait(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = predicate()
        if result:
            return result
        time.sleep(0.001)
    raise TimeoutError


def test_blocks_land_in_the_reserved_blocks_only():
    src_kv = KVCache(LAYOUT, 12, torch.device("cpu"))
    dst_kv = KVCache(LAYOUT, 10, torch.device("cpu"))
    src_kv.k_blocks.normal_()
    src_kv.v_blocks.normal_()
    before = dst_kv.k_blocks.clone()
    sender, receiver = NixlKVTransport("tx", src_kv), NixlKVTransport("rx", dst_kv)
    sender.connect(receiver.info)
    receiver.connect(sender.info)
    src, dst = [2, 3, 4, 8], [6, 7, 1, 0]
    nbytes = sender.send("req-1", src, "rx", dst)
    sent, received = [], []

    def both_done():  # as in the workers, both sides poll (on host memory that is what progresses UCX)
        sent.extend(sender.poll_sent())
        received.extend(receiver.poll_received())
        return sent and received
    wait(both_done)
    assert sent == [("req-1", True)] and received == ["req-1"]
    assert nbytes == 2 * 3 * 4 * (4 * 2 * 8 * 2)
    for s, d in zip(src, dst):
        assert torch.equal(dst_kv.k_blocks[:, d], src_kv.k_blocks[:, s])
        assert torch.equal(dst_kv.v_blocks[:, d], src_kv.v_blocks[:, s])
    untouched = [b for b in range(10) if b not in dst]
    assert torch.equal(dst_kv.k_blocks[:, untouched], before[:, untouched])


@pytest.mark.parametrize("change, message", [
    ({"block_size": 8}, "block_size: 4 vs 8"),
    ({"num_kv_heads": 4}, "num_kv_heads: 2 vs 4"),
])
def test_mismatched_layouts_are_refused(change, message):
    a = NixlKVTransport("a", KVCache(LAYOUT, 4, torch.device("cpu")))
    other = replace(LAYOUT, **change)
    b = NixlKVTransport("b", KVCache(other, 4, torch.device("cpu")))
    with pytest.raises(KVLayoutError, match=message):
        a.connect(b.info)


def test_mismatched_dtypes_are_refused():
    a = NixlKVTransport("c", KVCache(LAYOUT, 4, torch.device("cpu")))
    b = NixlKVTransport("d", KVCache(replace(LAYOUT, dtype="float32"), 4, torch.device("cpu")))
    with pytest.raises(KVLayoutError, match="dtype: 'bfloat16' vs 'float32'"):
        a.connect(b.info)


def test_a_reader_pulls_held_blocks_and_the_holder_is_told():
    """Pull mode: only the reader knows the holder (from its wire-format `PeerInfo`, as Dynamo's
    request metadata carries it); the holder learns from the read's notification that it may free."""
    src_kv = KVCache(LAYOUT, 12, torch.device("cpu"))
    dst_kv = KVCache(LAYOUT, 10, torch.device("cpu"))
    src_kv.k_blocks.normal_()
    src_kv.v_blocks.normal_()
    holder, reader = NixlKVTransport("holder", src_kv), NixlKVTransport("reader", dst_kv)
    reader.connect(PeerInfo.from_wire(json.loads(json.dumps(holder.info.to_wire()))))
    src, dst = [5, 6, 7, 1], [0, 1, 2, 9]
    assert reader.fetch("req-9", "holder", src, dst) == 4 * LAYOUT.block_size * LAYOUT.bytes_per_token()
    fetched, read = [], []

    def both_done():
        fetched.extend(reader.poll_fetched())
        read.extend(holder.poll_read())
        return fetched and read
    wait(both_done)
    assert fetched == [("req-9", True)] and read == ["req-9"]
    assert holder.poll_received() == [] and reader.poll_received() == []  # a read is not a landed write
    for s, d in zip(src, dst):
        assert torch.equal(dst_kv.k_blocks[:, d], src_kv.k_blocks[:, s])
        assert torch.equal(dst_kv.v_blocks[:, d], src_kv.v_blocks[:, s])


def test_a_read_from_a_dead_holder_fails_cleanly():
    holder = NixlKVTransport("gone", KVCache(LAYOUT, 4, torch.device("cpu")))
    reader = NixlKVTransport("reader2", KVCache(LAYOUT, 4, torch.device("cpu")))
    reader.connect(holder.info)
    del holder
    gc.collect()
    try:
        reader.fetch("req-x", "gone", [0], [0])
    except RuntimeError:
        return  # refused at once
    assert wait(reader.poll_fetched) == [("req-x", False)]


def test_a_reader_can_release_held_kv_without_reading_it_whatever_its_layout():
    holder = NixlKVTransport("holder3", KVCache(LAYOUT, 4, torch.device("cpu")))
    reader = NixlKVTransport("reader3", KVCache(replace(LAYOUT, block_size=8), 4, torch.device("cpu")))
    reader.release("req-r", holder.info)
    read = []

    def released():  # the reader's own polling progresses its UCX worker, as in the workers' loop
        reader.poll_received()
        read.extend(holder.poll_read())
        return read
    assert wait(released) == ["req-r"]


@pytest.mark.parametrize("context_tp, generation_tp", [(1, 2), (2, 4), (2, 1), (4, 2)])
def test_heads_reach_the_ranks_that_hold_them_between_pools_of_different_sizes(context_tp, generation_tp):
    """Each receiving rank gets its heads of every block at the reserved blocks, token-major as its
    pool keeps them, whichever way the heads move: gathered into staging and written as whole rows
    where a receiving rank takes all its heads from one sending rank (1 -> 2, 2 -> 4), as head-major
    slabs that the receiver turns token-major where several senders fill each row (2 -> 1, 4 -> 2).
    Staging buffers are freed for reuse once the writes end."""
    from trtllm_mixquant.bench.transfer import connected

    layout = replace(LAYOUT, num_kv_heads=4)
    senders, receivers, receiving_group = connected(layout, context_tp, generation_tp, (12, 10), torch.device("cpu"))
    before = [r.kv.k_blocks.clone() for r in receivers]
    src, dst = [2, 3, 4, 8, 9], [7, 6, 5, 1, 0]  # recycled destination blocks come in descending order
    for r in receivers:
        r.expect("req-h", dst)
    for s in senders:
        s.send("req-h", src, receiving_group.name, dst)
    sent, received = [], []

    def all_done():
        for s in senders:
            sent.extend(s.poll_sent())
        for r in receivers:
            received.extend(r.poll_received())
        return len(sent) == context_tp and len(received) == generation_tp
    wait(all_done)
    assert all(ok for _, ok in sent)
    k = torch.cat([s.kv.k_blocks for s in senders], dim=3)  # [layers, blocks, block_size, all heads, D]
    v = torch.cat([s.kv.v_blocks for s in senders], dim=3)
    for r, untouched in zip(receivers, before):
        first, last = r.info.layout.kv_heads()
        for s_block, d_block in zip(src, dst):
            assert torch.equal(r.kv.k_blocks[:, d_block], k[:, s_block, :, first:last])
            assert torch.equal(r.kv.v_blocks[:, d_block], v[:, s_block, :, first:last])
        others = [b for b in range(10) if b not in dst]
        assert torch.equal(r.kv.k_blocks[:, others], untouched[:, others])
    staged = max(generation_tp // context_tp, 1)  # buffers: one for each receiving rank a sender writes to
    for s in senders:
        assert s.staging.held == {} and len(s.staging.spare) == staged
    assert all(r.expected == {} and r.slabbed == set() for r in receivers)
    buffers = {id(b.k) for b in senders[0].staging.spare}  # a second request reuses them: no new page faults
    senders[0].send("req-h2", src[:3], receiving_group.name, dst[:3])
    assert senders[0].staging.spare == [] and {id(b.k) for b in senders[0].staging.held["req-h2"]} == buffers


def test_bench_transfer_prints_a_row_per_pairing(capsys):
    from trtllm_mixquant.bench.transfer import main

    assert main(["--tokens", "64", "--pairs", "1:2,2:1", "--layers", "2", "--kv-heads", "4", "--head-dim", "8",
                 "--block-size", "4", "--reps", "1"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(r[0], r[1]) for r in rows] == [("64", "1:2"), ("64", "2:1")]
    assert all(float(r[5]) > 0 for r in rows)  # GB/s


@pytest.mark.parametrize("context_tp, generation_tp", [(1, 2), (2, 1)])
def test_without_memory_to_stage_whole_rows_go_a_token_at_a_time_and_slabs_fail_cleanly(
        monkeypatch, context_tp, generation_tp):
    """No GPU memory for a staging buffer: a receiving rank that one sender fills still gets its heads
    (a descriptor per token); where several senders fill each row the send fails with a message and
    leaves nothing in flight, since the receiver would turn blocks holding token-major heads."""
    from trtllm_mixquant.bench.transfer import connected
    from trtllm_mixquant.transfer.staging import Staging

    monkeypatch.setattr(Staging, "_take", lambda self, num_blocks, count: None)
    layout = replace(LAYOUT, num_kv_heads=4)
    senders, receivers, group = connected(layout, context_tp, generation_tp, (6, 6), torch.device("cpu"), "-oom")
    for r in receivers:
        r.expect("req-o", [3, 4])
    if context_tp > generation_tp:
        with pytest.raises(RuntimeError, match="no GPU memory to stage"):
            senders[0].send("req-o", [0, 1], group.name, [3, 4])
        assert senders[0].sending == {} and senders[0].staging.held == {}
        return
    senders[0].send("req-o", [0, 1], group.name, [3, 4])
    landed = []

    def done():
        senders[0].poll_sent()
        for r in receivers:
            landed.extend(r.poll_received())
        return len(landed) == generation_tp
    wait(done)
    for r in receivers:
        first, last = r.info.layout.kv_heads()
        assert torch.equal(r.kv.k_blocks[:, [3, 4]], senders[0].kv.k_blocks[:, [0, 1], :, first:last])
