"""The Triton paged decode kernel against its PyTorch reference.

Without a GPU the kernel runs in the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1
before anything imports triton); with one, every test runs the compiled kernel.
"""

from __future__ import annotations

import itertools

import pytest
import torch

ON_GPU = torch.cuda.is_available()
# Interpreters before triton 3.7 call int() on 1-element arrays, which numpy >= 2.4 rejects.
pytest.importorskip("triton", minversion=None if ON_GPU else "3.7")

from trtllm_mixquant.runtime.kernels.paged_decode import choose_num_splits, paged_decode_attention  # noqa: E402
from trtllm_mixquant.runtime.kernels.paged_decode_reference import paged_decode_attention_reference  # noqa: E402

DEVICE = torch.device("cuda" if ON_GPU else "cpu")
CONTEXT_LENS = (1, 37, 100)  # plus block_size itself: one token, non-multiples, long-ish
# 1: the single-kernel path; 2, 3: uneven ranges; 8: more splits than most sequences have blocks
# (and, at block 32, than the block table has columns), so many splits are empty.
NUM_SPLITS = (1, 2, 3, 8)


def make_case(context_lens, num_kv_heads: int, group: int, head_dim: int, block_size: int,
              dtype: torch.dtype, cache_dtype: torch.dtype | None = None, index_dtype=torch.int64, seed: int = 0):
    """Random q [B, H, D] and caches [num_slots, Hkv, D] with shuffled block tables [B, max_blocks].

    Every cache slot that no valid token owns is NaN, including a whole block that all padded
    block-table entries point to: a read of anything past a sequence's length poisons its output.
    """
    gen = torch.Generator().manual_seed(seed)
    blocks_needed = [-(-n // block_size) for n in context_lens]
    num_blocks = sum(blocks_needed) + 2  # one spare, one NaN block for padding entries
    pad_block, *order = torch.randperm(num_blocks, generator=gen).tolist()
    block_tables = torch.full((len(context_lens), max(blocks_needed) + 1), pad_block, dtype=torch.int64)
    cache_shape = (num_blocks * block_size, num_kv_heads, head_dim)
    k_cache = torch.full(cache_shape, float("nan"), dtype=cache_dtype or dtype)
    v_cache = torch.full(cache_shape, float("nan"), dtype=cache_dtype or dtype)
    for b, (n, nb) in enumerate(zip(context_lens, blocks_needed)):
        block_tables[b, :nb] = torch.tensor(order[:nb])
        order = order[nb:]
        pos = torch.arange(n)
        slots = block_tables[b, pos // block_size] * block_size + pos % block_size
        k_cache[slots] = torch.randn(n, num_kv_heads, head_dim, generator=gen).to(k_cache.dtype)
        v_cache[slots] = torch.randn(n, num_kv_heads, head_dim, generator=gen).to(v_cache.dtype)
    q = torch.randn(len(context_lens), num_kv_heads * group, head_dim, generator=gen).to(dtype)
    tensors = (q, k_cache, v_cache, block_tables.to(index_dtype), torch.tensor(context_lens, dtype=index_dtype))
    return tuple(t.to(DEVICE) for t in tensors)


def reference_cases() -> list[tuple]:
    """(dtype, head_dim, block_size, group, num_splits): the whole grid on a GPU; under the interpreter
    (~1 s a case) a covering subset: every split count with both dtypes, and every group with every
    block size and head size (the kernel's code paths are the same; the grid multiplies them)."""
    dtypes, heads, blocks, groups = (torch.float32, torch.bfloat16), (16, 64), (16, 32), (1, 2, 4)
    if ON_GPU:
        return list(itertools.product(dtypes, heads, blocks, groups, NUM_SPLITS))
    splits = [(d, 64, 16, 4, n) for d in dtypes for n in NUM_SPLITS]
    shapes = [(dtypes[i % 2], h, b, g, NUM_SPLITS[(i % 3) + 1])
              for i, (h, b, g) in enumerate(itertools.product(heads, blocks, groups))]
    return splits + shapes


@pytest.mark.parametrize("dtype, head_dim, block_size, group, num_splits", reference_cases())
def test_matches_reference(dtype, head_dim, block_size, group, num_splits):
    q, k_cache, v_cache, block_tables, context_lens = make_case(
        (*CONTEXT_LENS, block_size), num_kv_heads=2, group=group, head_dim=head_dim, block_size=block_size,
        dtype=dtype)
    scale = head_dim ** -0.5
    out = paged_decode_attention(q, k_cache, v_cache, block_tables, context_lens, block_size, scale,
                                 num_splits=num_splits)
    ref = paged_decode_attention_reference(q.float(), k_cache.float(), v_cache.float(), block_tables,
                                           context_lens, block_size, scale)
    assert out.dtype == dtype and out.shape == q.shape
    assert not out.isnan().any(), "read a slot past a sequence's length"
    err = (out.float() - ref).abs().max().item()
    if dtype == torch.float32:
        # Same fp32 math on the same inputs; only the summation order differs (~1e-6 here).
        assert err < 1e-5
    else:
        # Same exact products of the bf16 inputs with fp32 sums; the kernel also rounds the softmax
        # probabilities to bf16 before p.v (2^-9 relative each, of random sign, averaging out over the
        # keys, as flash attention does) and its output to bf16 (at most 2^-8 relative). One bf16 ulp
        # of max |out|, 2^-7 of it, bounds both (measured at most 2^-8.6 under the interpreter).
        assert err <= 2 ** -7 * ref.abs().max().item()


@pytest.mark.parametrize("num_splits", NUM_SPLITS)
@pytest.mark.parametrize("q_dtype, cache_dtype", [(torch.float32, torch.bfloat16), (torch.float16, torch.float16)])
def test_cache_dtypes_int32_indices_and_out(q_dtype, cache_dtype, num_splits):
    q, k_cache, v_cache, block_tables, context_lens = make_case(
        (5, 64, 40), num_kv_heads=1, group=2, head_dim=32, block_size=64, dtype=q_dtype, cache_dtype=cache_dtype,
        index_dtype=torch.int32, seed=1)
    out = torch.empty_like(q)
    result = paged_decode_attention(q, k_cache, v_cache, block_tables, context_lens, 64, 0.2, out=out,
                                    num_splits=num_splits)
    ref = paged_decode_attention_reference(q.float(), k_cache.float(), v_cache.float(), block_tables,
                                           context_lens, 64, 0.2)
    assert result is out
    # fp32 q: identical fp32 math (bf16 cache values are exact in fp32); fp16 rounds the output
    # (11 significant bits: at most 2^-11 relative), so 2^-10 of max |out| bounds it.
    tol = 1e-5 if q_dtype == torch.float32 else 2 ** -10 * ref.abs().max().item()
    assert (out.float() - ref).abs().max().item() <= tol


@pytest.mark.parametrize("num_splits", NUM_SPLITS)
def test_zero_context_len_gives_zeros(num_splits):
    """A CUDA-graph padding row (context_len 0) reads nothing and outputs zeros: with splits, all
    of its splits are empty and their combine must not divide 0 by 0 or subtract -inf from -inf."""
    q, k_cache, v_cache, block_tables, context_lens = make_case(
        (3, 20), num_kv_heads=2, group=2, head_dim=16, block_size=16, dtype=torch.float32)
    context_lens[1] = 0
    out = paged_decode_attention(q, k_cache, v_cache, block_tables, context_lens, 16, 0.25, num_splits=num_splits)
    ref = paged_decode_attention_reference(q, k_cache, v_cache, block_tables, context_lens, 16, 0.25)
    assert torch.equal(out[1], torch.zeros_like(out[1])) and torch.equal(ref[1], out[1])
    assert (out[0] - ref[0]).abs().max().item() < 1e-5


@pytest.mark.parametrize("num_splits", [2, 3, 8])
def test_splits_rescale_far_apart_maxima(num_splits):
    """Scores of std ~30 (block maxima 37-94 here; exp overflows fp32 past 88.7): split maxima
    differ by tens, so a combine that skipped the exp(m_s - max) rescaling, or did not subtract
    the max, fails."""
    q, k_cache, v_cache, block_tables, context_lens = make_case(
        (100, 61), num_kv_heads=1, group=2, head_dim=16, block_size=16, dtype=torch.float32, seed=3)
    out = paged_decode_attention(q, k_cache, v_cache, block_tables, context_lens, 16, 8.0, num_splits=num_splits)
    ref = paged_decode_attention_reference(q, k_cache, v_cache, block_tables, context_lens, 16, 8.0)
    # Measured 2.4e-7; tf32x3 score errors (~1e-7 relative at |score| ~90) pass into exp().
    assert (out - ref).abs().max().item() < 1e-5


def test_default_num_splits_follows_the_rule():
    """num_splits=None launches `choose_num_splits` of the shapes (132 SMs off CUDA), bit for bit."""
    q, k_cache, v_cache, block_tables, context_lens = make_case(
        (1, 37, 100), num_kv_heads=2, group=2, head_dim=16, block_size=16, dtype=torch.float32)
    num_sms = torch.cuda.get_device_properties(DEVICE).multi_processor_count if ON_GPU else 132
    chosen = choose_num_splits(3, 2, block_tables.shape[1], num_sms)
    assert chosen == min(8, -(-2 * num_sms // 6))  # 8 block-table columns cap it on CPU
    auto = paged_decode_attention(q, k_cache, v_cache, block_tables, context_lens, 16, 0.25)
    forced = paged_decode_attention(q, k_cache, v_cache, block_tables, context_lens, 16, 0.25, num_splits=chosen)
    assert torch.equal(auto, forced)


@pytest.mark.parametrize("batch, num_kv_heads, max_blocks, num_sms, expected", [
    (1, 8, 1024, 132, 33),  # Qwen3-8B, one 32K-token sequence at block 32: 264 programs
    (16, 8, 1024, 132, 3),  # 128 programs -> 384
    (32, 8, 1024, 132, 3),  # 256 programs fill the GPU: ~4 per SM
    (64, 8, 1024, 132, 2),
    (67, 8, 1024, 132, 1),  # already 536 programs: no split, no workspace
    (1, 8, 4, 132, 4),  # never more splits than block-table columns
    (1, 1, 4096, 132, 264),
    (2, 8, 0, 132, 1),  # an empty block table still launches one split
])
def test_choose_num_splits(batch, num_kv_heads, max_blocks, num_sms, expected):
    assert choose_num_splits(batch, num_kv_heads, max_blocks, num_sms) == expected


def _bad(**changes):
    """Valid arguments (B=2, H=4, Hkv=2, D=16, block_size=16) with `changes` applied."""
    args = dict(q=torch.zeros(2, 4, 16), k_cache=torch.zeros(64, 2, 16), v_cache=torch.zeros(64, 2, 16),
                block_tables=torch.zeros(2, 3, dtype=torch.int64), context_lens=torch.ones(2, dtype=torch.int64),
                block_size=16, scale=0.25)
    return {**args, **changes}


@pytest.mark.parametrize("fn", [paged_decode_attention, paged_decode_attention_reference])
@pytest.mark.parametrize("args, message", [
    (_bad(q=torch.zeros(4, 16)), r"q must be \[B, H, D\]"),
    (_bad(k_cache=torch.zeros(4, 16, 2, 16)), r"k_cache must be \[num_slots, Hkv, D\]"),
    (_bad(v_cache=torch.zeros(64, 1, 16)), "v_cache shape"),
    (_bad(q=torch.zeros(2, 3, 16)), "multiple of KV heads"),
    (_bad(q=torch.zeros(2, 4, 32)), "head dim mismatch"),
    (_bad(q=torch.zeros(2, 4, 24), k_cache=torch.zeros(64, 2, 24), v_cache=torch.zeros(64, 2, 24)), "power of two"),
    (_bad(block_size=24), "block_size=24"),
    (_bad(block_size=8), "block_size=8 must be a power of two >= 16"),
    (_bad(block_size=128), "whole number of blocks"),
    (_bad(block_tables=torch.zeros(3, 3, dtype=torch.int64)), r"block_tables must be \[B=2"),
    (_bad(context_lens=torch.ones(2, 1, dtype=torch.int64)), r"context_lens must be \[B=2\]"),
    (_bad(block_tables=torch.zeros(2, 3)), "int32/int64"),
    (_bad(q=torch.zeros(2, 4, 16, dtype=torch.int32)), "fp32/fp16/bf16"),
    (_bad(out=torch.zeros(2, 4, 16, dtype=torch.bfloat16)), "out must be"),
    (_bad(num_splits=0), "num_splits must be"),
    (_bad(num_splits=1025), "num_splits must be"),
    (_bad(num_splits=2.0), "num_splits must be"),
    (_bad(num_splits=True), "num_splits must be"),
])
def test_bad_arguments_raise(fn, args, message):
    with pytest.raises(ValueError, match=message):
        fn(**args)


@pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU for the compiled kernel")
@pytest.mark.parametrize("num_splits", [1, 5, None])  # None: the SM-count rule (6 on 132 SMs)
def test_compiled_kernel_large_and_in_cuda_graph(num_splits):
    """Llama-like shapes (D=128, GQA 4, block 64) against the reference, then the same launch
    captured in a CUDA graph and replayed after the block tables and lengths change in place
    (with splits, the workspace is allocated inside the capture, from the graph's pool)."""
    lens = (1, 64, 300, 1000, 777, 2048)
    q, k_cache, v_cache, block_tables, context_lens = make_case(
        lens, num_kv_heads=8, group=4, head_dim=128, block_size=64, dtype=torch.bfloat16, seed=2)
    scale = 128 ** -0.5

    def check(out):
        ref = paged_decode_attention_reference(q.float(), k_cache.float(), v_cache.float(), block_tables,
                                               context_lens, 64, scale)
        assert (out.float() - ref).abs().max().item() <= 2 ** -7 * ref.abs().max().item()  # as test_matches_reference

    check(paged_decode_attention(q, k_cache, v_cache, block_tables, context_lens, 64, scale, num_splits=num_splits))
    out = torch.empty_like(q)
    paged_decode_attention(q, k_cache, v_cache, block_tables, context_lens, 64, scale, out=out,
                           num_splits=num_splits)  # compile first
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        paged_decode_attention(q, k_cache, v_cache, block_tables, context_lens, 64, scale, out=out,
                               num_splits=num_splits)
    context_lens.copy_(context_lens.flip(0))  # sequences swap rows: a new batch, same shapes
    block_tables.copy_(block_tables.flip(0))
    q.copy_(torch.randn_like(q))
    graph.replay()
    check(out)
