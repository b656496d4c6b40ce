"""FP8 attention for the context engine's prompt tokens, in plain PyTorch: the numerics the Triton
kernel (`fp8_prefill_attention`) implements, and what runs off CUDA (so a CPU eval measures them).

The 8-bit tensor-core formats are used where each is the more precise: Q K^T in int8, P V in FP8
E4M3 (SageAttention's split; Hopper runs both at the same rate). Q and K are first rotated along
head_dim by R = diag(signs) H (H the Sylvester Hadamard matrix of +-1, fixed random signs;
FlashAttention-3's "incoherent processing"): (q R)(k R)^T = D q k^T, so the scores are unchanged
once divided by D, but channels with outliers are spread over all D. Q R and K R are rounded to int8
with one dynamic scale per head (amax / 127 over the step's tokens; 7 bits against E4M3's 3 mantissa
bits), V to E4M3 per head (amax / 448); scores are the exact integer products rescaled in fp32; the
softmax weights P (in (0, 1] after the row max is subtracted) are quantized to E4M3 times `P_SCALE`
for the P V product, which is rescaled by V's scale at the end. On the shipped model in quantized
mode (`eval --tasks quant-error`, CPU) this adds 0.0006 nats/token of KL vs BF16 to the FP8 GEMMs'
0.0026; Q and K in E4M3 added 0.0032, most of it from the scores.
The KV cache itself stays BF16 (the generation engine reads it).
Shapes: q [Tq, H, D], k, v [Tk, Hkv, D] packed segment after segment (`cu_q`, `cu_k` [S + 1]); each
segment's queries are the last of its keys (causal, aligned bottom-right).
"""

from __future__ import annotations

import functools

import torch

from trtllm_mixquant.formats.fp8 import E4M3_MAX

INT8_MAX = 127.0
P_SCALE = 256.0  # P in (0, 1] times this uses E4M3's normal range, not its subnormals


@functools.cache
def rotation(head_dim: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """R = diag(signs) H [D, D], entries +-1 (exact in every float format): H the Sylvester Hadamard
    matrix (H H^T = D I), signs fixed by a seeded generator. D a power of two."""
    if head_dim & (head_dim - 1):
        raise ValueError(f"the Hadamard rotation needs a power-of-two head_dim (got {head_dim})")
    h = torch.ones(1, 1)
    while h.shape[0] < head_dim:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)])
    signs = torch.where(torch.rand(head_dim, generator=torch.Generator().manual_seed(0)) < 0.5, -1.0, 1.0)
    return (signs[:, None] * h).to(device, dtype)


def rotate(x: torch.Tensor) -> torch.Tensor:
    """x [T, heads, D] -> x R in fp32."""
    return x.float() @ rotation(x.shape[-1], x.device)


def head_scales(x: torch.Tensor, limit: float = E4M3_MAX) -> torch.Tensor:
    """x [T, heads, D] -> per-head scales [heads] (fp32) such that x / scale fits +-limit."""
    return (x.abs().amax(dim=(0, 2)).float() / limit).clamp_min(1e-12)


def to_int8(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x [T, heads, D] / scale[heads] rounded to nearest even, as int8."""
    return (x.float() / scale[None, :, None]).round().clamp(-INT8_MAX, INT8_MAX).to(torch.int8)


def to_fp8(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x [T, heads, D] / scale[heads] as float8_e4m3fn."""
    return (x.float() / scale[None, :, None]).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


def fp8_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor,
                            cu_k: torch.Tensor, scale: float, quantize_p: bool = True) -> torch.Tensor:
    """[Tq, H, D] in q's dtype; quantize_p False keeps P in fp32 (what the interpreted kernel computes)."""
    dtype = q.dtype
    q, k = rotate(q), rotate(k)
    sq, sk, sv = head_scales(q, INT8_MAX), head_scales(k, INT8_MAX), head_scales(v)
    qf, kf, vf = to_int8(q, sq).float(), to_int8(k, sk).float(), to_fp8(v, sv).float()  # exact in fp32
    group = q.shape[1] // k.shape[1]
    out = torch.empty(q.shape, dtype=dtype, device=q.device)
    for s in range(len(cu_q) - 1):
        q0, q1, k0, k1 = int(cu_q[s]), int(cu_q[s + 1]), int(cu_k[s]), int(cu_k[s + 1])
        qs = qf[q0:q1].transpose(0, 1)  # [H, n, D]
        ks = kf[k0:k1].repeat_interleave(group, dim=1).transpose(0, 1)  # [H, m, D]
        vs = vf[k0:k1].repeat_interleave(group, dim=1).transpose(0, 1)
        scores = qs @ ks.transpose(1, 2) * (sq[:, None, None] * sk.repeat_interleave(group)[:, None, None] * scale
                                            / q.shape[-1])  # R R^T = D I
        n, m = q1 - q0, k1 - k0
        causal = torch.arange(m, device=q.device)[None, :] <= (m - n + torch.arange(n, device=q.device))[:, None]
        scores = scores.masked_fill(~causal, float("-inf"))
        p = torch.exp(scores - scores.amax(dim=-1, keepdim=True))  # [H, n, m] in (0, 1]
        p8 = (p * P_SCALE).to(torch.float8_e4m3fn).float() if quantize_p else p * P_SCALE
        o = (p8 @ vs) / (p.sum(-1, keepdim=True) * P_SCALE) * sv.repeat_interleave(group)[:, None, None]
        out[q0:q1] = o.transpose(0, 1).to(dtype)
    return out
