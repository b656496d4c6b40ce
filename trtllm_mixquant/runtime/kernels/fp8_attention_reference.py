"""FP8 attention for the context engine's prompt tokens, in plain PyTorch: the numerics the Triton
kernel (`fp8_prefill_attention`) implements, and what runs off CUDA (so a CPU eval measures them).

Q, K and V are quantized to FP8 E4M3 with one dynamic scale per head (amax / 448 over the step's
tokens); scores are the FP8 products rescaled in fp32; the softmax weights P (in (0, 1] after the
row max is subtracted) are quantized to E4M3 times `P_SCALE` for the P·V product, which is rescaled
by V's scale at the end. The KV cache itself stays BF16 (the generation engine reads it).
Shapes: q [Tq, H, D], k, v [Tk, Hkv, D] packed segment after segment (`cu_q`, `cu_k` [S + 1]); each
segment's queries are the last of its keys (causal, aligned bottom-right).
"""

from __future__ import annotations

import torch

E4M3_MAX = 448.0
P_SCALE = 256.0  # P in (0, 1] times this uses E4M3's normal range, not its subnormals


def head_scales(x: torch.Tensor) -> torch.Tensor:
    """x [T, heads, D] -> per-head scales [heads] (fp32) such that x / scale fits E4M3."""
    return (x.abs().amax(dim=(0, 2)).float() / E4M3_MAX).clamp_min(1e-12)


def to_fp8(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x [T, heads, D] / scale[heads] as float8_e4m3fn."""
    return (x.float() / scale[None, :, None]).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


def fp8_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_q: torch.Tensor,
                            cu_k: torch.Tensor, scale: float, quantize_p: bool = True) -> torch.Tensor:
    """[Tq, H, D] in q's dtype; quantize_p False keeps P in fp32 (what the interpreted kernel computes)."""
    sq, sk, sv = head_scales(q), head_scales(k), head_scales(v)
    qf, kf, vf = (to_fp8(t, s).float() for t, s in ((q, sq), (k, sk), (v, sv)))
    group = q.shape[1] // k.shape[1]
    out = torch.empty_like(q)
    for s in range(len(cu_q) - 1):
        q0, q1, k0, k1 = int(cu_q[s]), int(cu_q[s + 1]), int(cu_k[s]), int(cu_k[s + 1])
        qs = qf[q0:q1].transpose(0, 1)  # [H, n, D]
        ks = kf[k0:k1].repeat_interleave(group, dim=1).transpose(0, 1)  # [H, m, D]
        vs = vf[k0:k1].repeat_interleave(group, dim=1).transpose(0, 1)
        scores = qs @ ks.transpose(1, 2) * (sq[:, None, None] * sk.repeat_interleave(group)[:, None, None] * scale)
        n, m = q1 - q0, k1 - k0
        causal = torch.arange(m, device=q.device)[None, :] <= (m - n + torch.arange(n, device=q.device))[:, None]
        scores = scores.masked_fill(~causal, float("-inf"))
        p = torch.exp(scores - scores.amax(dim=-1, keepdim=True))  # [H, n, m] in (0, 1]
        p8 = (p * P_SCALE).to(torch.float8_e4m3fn).float() if quantize_p else p * P_SCALE
        o = (p8 @ vs) / (p.sum(-1, keepdim=True) * P_SCALE) * sv.repeat_interleave(group)[:, None, None]
        out[q0:q1] = o.transpose(0, 1).to(q.dtype)
    return out
