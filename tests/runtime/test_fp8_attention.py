"""FP8 prefill attention: the Triton kernel against its PyTorch reference (the interpreter on CPU,
compiled on a GPU), and the reference against exact attention (how much FP8 costs)."""

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
    return [t.to(device) for t in (q, k, v, cu_q, cu_k)] + [max(q_lens)]


@pytest.mark.parametrize("q_lens, cached", [([40], [0]), ([17, 70], [0, 0]), ([9, 33], [50, 5])])
def test_kernel_equals_reference_under_the_interpreter(q_lens, cached):
    if torch.cuda.is_available():
        pytest.skip("the GPU test covers the compiled kernel")
    from trtllm_mixquant.runtime.kernels.fp8_prefill_attention import fp8_prefill_attention

    q, k, v, cu_q, cu_k, max_q = case("cpu", q_lens, cached)
    scale = 1 / math.sqrt(q.shape[-1])
    got = fp8_prefill_attention(q, k, v, cu_q, cu_k, max_q, scale, block_m=16, block_n=16)
    want = fp8_attention_reference(q, k, v, cu_q, cu_k, scale, quantize_p=False)  # see the kernel's docstring
    # The same FP8 Q, K, V and fp32 arithmetic in another order (online softmax over 16-key blocks).
    assert (got - want).abs().max() < 1e-5


def test_reference_error_against_exact_attention_is_fp8_sized():
    q, k, v, cu_q, cu_k, _ = case("cpu", [64, 32], [0, 96], heads=8, kv_heads=2, head_dim=128)
    scale = 1 / math.sqrt(q.shape[-1])
    err = fp8_attention_reference(q, k, v, cu_q, cu_k, scale) - exact(q, k, v, cu_q, cu_k, scale)
    rel = err.norm() / exact(q, k, v, cu_q, cu_k, scale).norm()
    assert 1e-3 < rel < 0.08  # E4M3 carries 3 mantissa bits: a few percent, not exact, not broken


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9),
                    reason="needs a GPU with FP8 tensor cores (sm_89+)")
@pytest.mark.parametrize("q_lens, cached, head_dim", [([1000], [0], 128), ([300, 513], [0, 700], 128),
                                                      ([257], [0], 64)])
def test_compiled_kernel_equals_reference_on_the_gpu(q_lens, cached, head_dim):
    from trtllm_mixquant.runtime.kernels.fp8_prefill_attention import fp8_prefill_attention

    q, k, v, cu_q, cu_k, max_q = case("cuda", q_lens, cached, heads=8, kv_heads=2, head_dim=head_dim)
    q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
    scale = 1 / math.sqrt(head_dim)
    got = fp8_prefill_attention(q, k, v, cu_q, cu_k, max_q, scale).float()
    want = fp8_attention_reference(q, k, v, cu_q, cu_k, scale).float()
    # The kernel quantizes P against running block maxima, the reference against the row maximum,
    # so P's E4M3 roundings (relative step 2^-3) fall on other values; the output's bf16 rounding adds
    # 2^-8 relative. Both stay well inside FP8's own error against exact attention (next test).
    assert (got - want).abs().max() < 0.05
