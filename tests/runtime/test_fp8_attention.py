"""FP8 prefill attention (int8 Q.K^T, FP8 P.V): the Triton kernel against its PyTorch reference (the
interpreter on CPU, compiled on a GPU), and the reference against exact attention (how much 8 bits cost)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trtllm_mixquant.runtime.kernels.fp8_attention_reference import fp8_attention_reference

triton = pytest.importorskip("triton")


def exact(q, k, v, cu_q, cu_k, scale):
    out = torch.empty_like(q, dtype=torch.float32)
    group = q.shape[1] // k.shape[1]
    for s in range(len(cu_q) - 1):
        q0, q1, k0, k1 = (int(x) for x in (cu_q[s], cu_q[s + 1], cu_k[s], cu_k[s + 1]))
        n, m = q1 - q0, k1 - k0
        mask = torch.arange(m)[None, :].to(q.device) <= (m - n + torch.arange(n).to(q.device))[:, None]
        o = F.scaled_dot_product_attention(q[q0:q1].transpose(0, 1).float(),
                                           k[k0:k1].repeat_interleave(group, 1).transpose(0, 1).float(),
                                           v[k0:k1].repeat_interleave(group, 1).transpose(0, 1).float(),
                                           attn_mask=mask, scale=scale)
        out[q0:q1] = o.transpose(0, 1)
    return out


def case(device, q_lens, cached, heads=4, kv_heads=2, head_dim=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    k_lens = [n + c for n, c in zip(q_lens, cached)]
    q = torch.randn(sum(q_lens), heads, head_dim, generator=g)
    k = torch.randn(sum(k_lens), kv_heads, head_dim, generator=g)
    v = torch.randn(sum(k_lens), kv_heads, head_dim, generator=g)
    cu_q = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    cu_k = torch.tensor([0, *torch.tensor(k_lens).cumsum(0).tolist()], dtype=torch.int32)
    return [t.to(device) for t in (q, k, v, cu_q, cu_k)] + [max(q_lens), max(k_lens)]


def in_cache(k, v, seed=1):
    """k, v [Tk, Hkv, D] scattered into caches of 3 * Tk slots: (k_cache, v_cache, rows [Tk])."""
    rows = torch.randperm(3 * k.shape[0], generator=torch.Generator().manual_seed(seed))[:k.shape[0]].to(k.device)
    k_cache = torch.randn(3 * k.shape[0], *k.shape[1:], dtype=k.dtype, device=k.device)
    v_cache = torch.randn_like(k_cache)
    k_cache[rows], v_cache[rows] = k, v
    return k_cache, v_cache, rows


@pytest.mark.parametrize("q_lens, cached, from_cache", [([40], [0], False), ([17, 70], [0, 0], False),
                                                        ([9, 33], [50, 5], False), ([9, 33], [50, 5], True)])
def test_kernel_equals_reference_under_the_interpreter(q_lens, cached, from_cache):
    if torch.cuda.is_available():
        pytest.skip("the GPU test covers the compiled kernel")
    from trtllm_mixquant.runtime.kernels.fp8_prefill_attention import fp8_prefill_attention

    q, k, v, cu_q, cu_k, max_q, max_k = case("cpu", q_lens, cached)
    scale = 1 / math.sqrt(q.shape[-1])
    keys, values, rows = in_cache(k, v) if from_cache else (k, v, None)
    got = fp8_prefill_attention(q, keys, values, cu_q, cu_k, max_q, max_k, scale, rows, block_m=16, block_n=16)
    want = fp8_attention_reference(q, k, v, cu_q, cu_k, scale, quantize_p=False)  # see the kernel's docstring
    # The same FP8 Q, K, V and fp32 arithmetic in another order (online softmax over 16-key blocks).
    assert (got - want).abs().max() < 1e-5


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("from_cache, span", [(False, 512), (True, 512), (True, 64)])
def test_head_quantization_equals_the_reference(device, from_cache, span, monkeypatch):
    """The Triton prologue's int8 Q R and K R, FP8 V^T and scales against `rotate`, `head_scales`,
    `to_int8` and `to_fp8` (the interpreter on CPU, with its E4M3 rounding done on the bits; the
    hardware's cast on a GPU); span 64: several programs per segment and head."""
    if (device == "cuda") != torch.cuda.is_available():
        pytest.skip("the interpreter on CPU, compiled on a GPU")
    from trtllm_mixquant.runtime.kernels import fp8_head_quantize
    from trtllm_mixquant.runtime.kernels.fp8_attention_reference import (INT8_MAX, head_scales, rotate, to_fp8,
                                                                         to_int8)
    from trtllm_mixquant.runtime.kernels.fp8_head_quantize import quantize_heads

    monkeypatch.setattr(fp8_head_quantize, "SPAN", span)
    q, k, v, cu_q, cu_k, max_q, max_k = case(device, [70, 9], [27, 14], heads=4, kv_heads=2, head_dim=64)
    q, k, v = q.to(torch.bfloat16) * 3, k.to(torch.bfloat16) / 50, v.to(torch.bfloat16) / 50  # V: E4M3's subnormals
    keys, values, rows = in_cache(k, v) if from_cache else (k, v, None)
    x = quantize_heads(q, keys, values, cu_q, cu_k, max_q, max_k, rows)
    # V is not rotated: bit-exact. Q R and K R are exact products summed in fp32 in another order than
    # torch's (ulp-sized differences), so their scales agree to fp32 rounding and an int8 value may
    # sit one step over where a quotient fell on a rounding boundary: not one in a thousand.
    assert torch.equal(x.v_scale, head_scales(v))
    for got, want in ((x.q_scale, head_scales(rotate(q), INT8_MAX)), (x.k_scale, head_scales(rotate(k), INT8_MAX))):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    for got, want in ((x.q8, to_int8(rotate(q), x.q_scale)), (x.k8, to_int8(rotate(k), x.k_scale))):
        assert got.dtype == torch.int8
        off = (got.int() - want.int()).abs()
        assert (off <= 1).all() and (off > 0).float().mean() < 1e-3
    assert x.cu_vt.tolist() == [0, 112, 144]  # 97 and 23 keys, each segment from a multiple of 16
    vt = to_fp8(v, x.v_scale).permute(1, 2, 0).float()
    assert torch.equal(x.vt8[:, :, :97].float(), vt[:, :, :97])
    assert torch.equal(x.vt8[:, :, 112:135].float(), vt[:, :, 97:])
    assert not x.vt8[:, :, 97:112].float().any() and not x.vt8[:, :, 135:].float().any()


def test_rotation_is_a_scaled_orthogonal_sign_matrix():
    from trtllm_mixquant.runtime.kernels.fp8_attention_reference import rotation

    r = rotation(128)
    assert set(r.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(r @ r.T, 128 * torch.eye(128))
    with pytest.raises(ValueError, match="power-of-two"):
        rotation(96)


def test_reference_error_against_exact_attention_is_fp8_sized():
    q, k, v, cu_q, cu_k, *_ = case("cpu", [64, 32], [0, 96], heads=8, kv_heads=2, head_dim=128)
    scale = 1 / math.sqrt(q.shape[-1])
    err = fp8_attention_reference(q, k, v, cu_q, cu_k, scale) - exact(q, k, v, cu_q, cu_k, scale)
    rel = err.norm() / exact(q, k, v, cu_q, cu_k, scale).norm()
    # int8 Q and K keep 7 bits, E4M3's V and P 3 mantissa bits: a few percent, not exact, not broken
    assert 1e-3 < rel < 0.08


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() < (9, 0),
                    reason="needs a GPU with FP8 tensor cores (sm_90+)")
@pytest.mark.parametrize("q_lens, cached, head_dim, from_cache", [
    ([1000], [0], 128, False), ([300, 513], [0, 700], 128, False), ([300, 513], [0, 700], 128, True),
    ([257], [0], 64, False)])
def test_compiled_kernel_equals_reference_on_the_gpu(q_lens, cached, head_dim, from_cache):
    from trtllm_mixquant.runtime.kernels.fp8_prefill_attention import fp8_prefill_attention

    q, k, v, cu_q, cu_k, max_q, max_k = case("cuda", q_lens, cached, heads=8, kv_heads=2, head_dim=head_dim)
    q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
    scale = 1 / math.sqrt(head_dim)
    keys, values, rows = in_cache(k, v) if from_cache else (k, v, None)
    got = fp8_prefill_attention(q, keys, values, cu_q, cu_k, max_q, max_k, scale, rows).float()
    want = fp8_attention_reference(q, k, v, cu_q, cu_k, scale).float()
    # The kernel quantizes P against running block maxima, the reference against the row maximum,
    # so P's E4M3 roundings (relative step 2^-3) fall on other values; the output's bf16 rounding adds
    # 2^-8 relative. Both stay well inside FP8's own error against exact attention (next test).
    assert (got - want).abs().max() < 0.05


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() < (9, 0),
                    reason="needs a GPU with TMA (sm_90+)")
def test_engine_dispatch_runs_the_kernel_on_cached_keys_and_keeps_precise_rows_bf16():
    """A mixed step as the engine builds it: a quantized turn of 300 tokens over 700 cached, then one
    precise decode row over 39 cached. The quantized rows attend in FP8 through the kernel reading the
    paged cache at its slots (the reference's numerics over the same keys); the precise row in BF16."""
    from trtllm_mixquant.runtime.attention import pack_kv, paged_attention
    from trtllm_mixquant.runtime.batch import StepBatch

    bs, heads, kv_heads, d = 32, 8, 2, 128
    g = torch.Generator(device="cuda").manual_seed(0)
    k_cache, v_cache = (torch.randn(64 * bs, kv_heads, d, device="cuda", generator=g, dtype=torch.bfloat16)
                        for _ in range(2))
    tables = torch.tensor([list(range(32)), [40, 41] + [0] * 30], device="cuda")
    positions = torch.cat([torch.arange(700, 1000), torch.tensor([39])]).cuda()
    slots = torch.cat([tables[0, positions[:300] // bs] * bs + positions[:300] % bs,
                       tables[1, 39 // bs:39 // bs + 1] * bs + 39 % bs])
    batch = StepBatch(positions, positions, slots, 300, torch.tensor([0, 300, 301], device="cuda"),
                      torch.tensor([1000, 40], device="cuda"), tables, 300, 1000, torch.tensor([299, 300], device="cuda"),
                      1040, num_quantized_segments=1, fp8_attention=True)
    batch = pack_kv(batch, bs, torch.bfloat16)
    q = torch.randn(301, heads, d, device="cuda", generator=g, dtype=torch.bfloat16)
    scale = 1 / math.sqrt(d)
    got = paged_attention(q, k_cache[slots], v_cache[slots], k_cache, v_cache, batch, bs, scale).float()

    keys0 = tables[0, torch.arange(1000, device="cuda") // bs] * bs + torch.arange(1000, device="cuda") % bs
    cu = torch.tensor([0, 300], dtype=torch.int32, device="cuda")
    want = fp8_attention_reference(q[:300], k_cache[keys0], v_cache[keys0], cu, torch.tensor([0, 1000], dtype=torch.int32,
                                   device="cuda"), scale).float()
    assert (got[:300] - want).abs().max() < 0.05  # as in the kernel's own GPU test
    keys1 = tables[1, torch.arange(40, device="cuda") // bs] * bs + torch.arange(40, device="cuda") % bs
    exact1 = exact(q[300:], k_cache[keys1], v_cache[keys1], torch.tensor([0, 1]), torch.tensor([0, 40]), scale)
    assert (got[300:] - exact1).abs().max() < 2e-2  # BF16 flash against fp32: bf16 roundings only


@pytest.mark.parametrize("capability, head_dim, ok", [((9, 0), 128, True), ((10, 0), 64, True),
                                                      ((8, 9), 128, False), ((9, 0), 96, False)])
def test_fp8_attention_is_refused_where_its_kernel_cannot_run(capability, head_dim, ok, monkeypatch):
    """The engine checks at start (`check_fp8_attention`): TMA needs sm_90+, the kernel head_dim 64 or
    128; the message says how to go on. A CPU always has the reference."""
    from trtllm_mixquant.runtime.attention import check_fp8_attention

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    check_fp8_attention(16, torch.device("cpu"))
    if ok:
        check_fp8_attention(head_dim, torch.device("cuda"))
    else:
        with pytest.raises(ValueError, match="run with --fp8-attention off"):
            check_fp8_attention(head_dim, torch.device("cuda"))
