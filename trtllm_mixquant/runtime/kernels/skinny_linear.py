"""Linear layers of a few token rows (decode): y = x W^T (+ b) streamed at the memory bandwidth.

With up to `MAX_ROWS` rows a projection only reads its weight, and cuBLAS's kernels for such shapes
leave bandwidth unused (split-K with a separate reduction kernel for the narrow o and down
projections). Here each program owns `BLOCK_N` output columns and reads their weight rows
[BLOCK_N, K] once, front to back, against all of x's rows (padded to 16 for `tl.dot`), in fp32 sums.

On an H200 (Qwen3-8B's projections, one row; F.linear -> this kernel): qkv 15.3 -> 14.8 us, o 9.8 ->
7.8, gate_up 49.4 -> 48.3, down 29.7 -> 26.1 (4.3 TB/s for o). In the engine's batch-1 decode step the
36 layers' projections took 3.60 ms against cuBLAS's 3.91 (its split-K reductions included). At 16
rows it still led (o 8.8 -> 7.9 us, down 28.4 -> 26.9); at 32 cuBLAS was as fast.

`skinny_linear` is a torch custom op, so compiled regions call it as one opaque kernel and CUDA
graphs capture it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from trtllm_mixquant.runtime.kernels import INTERPRETED
from trtllm_mixquant.runtime.kernels.common import half_dot

MAX_ROWS = 16  # rows of x the kernel takes; more go to cuBLAS, which has caught up by 32


@triton.jit
def _skinny_linear_kernel(x_ptr, w_ptr, b_ptr, y_ptr, M, N, K, stride_xm, stride_wn, stride_ym,
                          HAS_BIAS: tl.constexpr, EVEN_K: tl.constexpr, BLOCK_M: tl.constexpr,
                          BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, INTERPRETED: tl.constexpr):
    rm = tl.arange(0, BLOCK_M)
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    x_ptrs = x_ptr + rm[:, None] * stride_xm + rk[None, :]  # [BLOCK_M, BLOCK_K]
    w_ptrs = w_ptr + rn[:, None].to(tl.int64) * stride_wn + rk[None, :]  # [BLOCK_N, BLOCK_K]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        x_mask = rm[:, None] < M
        w_mask = rn[:, None] < N
        if not EVEN_K:
            x_mask &= (k0 + rk)[None, :] < K
            w_mask &= (k0 + rk)[None, :] < K
        x = tl.load(x_ptrs + k0, mask=x_mask, other=0.0)
        w = tl.load(w_ptrs + k0, mask=w_mask, other=0.0)
        acc += half_dot(x, tl.trans(w), INTERPRETED)
    if HAS_BIAS:
        acc += tl.load(b_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)[None, :]
    y_ptrs = y_ptr + rm[:, None] * stride_ym + rn[None, :]
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))


def launch_config(n: int) -> dict:
    """Tile and warps for a weight of n rows: the best of a sweep on an H200 (BLOCK_N 16-64, BLOCK_K
    128-1024, 2-8 warps, 2-5 stages; Qwen3-8B's projections at 1, 4 and 16 rows) or within 2% of it.
    Two warps per program keep many programs, and their loads, in flight on each SM; wide projections
    have programs enough with short K steps."""
    return {"BLOCK_N": 32, "BLOCK_K": 512 if n <= 8192 else 128, "num_warps": 2, "num_stages": 3}


@torch.library.custom_op("trtllm_mixquant::skinny_linear", mutates_args=())
def skinny_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x [M <= MAX_ROWS, K] @ weight [N, K]^T (+ bias [N]) -> [M, N] in x's dtype (bf16/fp16); weight
    rows contiguous."""
    m, k = x.shape
    n = weight.shape[0]
    if m > MAX_ROWS or weight.shape[1] != k or weight.stride(1) != 1:
        raise ValueError(f"skinny_linear takes x [<= {MAX_ROWS}, K] and a row-major weight [N, K]; got x "
                         f"{tuple(x.shape)}, weight {tuple(weight.shape)} with strides {weight.stride()}")
    x = x.contiguous()
    y = torch.empty(m, n, dtype=x.dtype, device=x.device)
    cfg = launch_config(n)
    block_n, block_k = cfg["BLOCK_N"], cfg["BLOCK_K"]
    _skinny_linear_kernel[(triton.cdiv(n, block_n),)](
        x, weight, bias if bias is not None else weight, y, m, n, k, x.stride(0), weight.stride(0), y.stride(0),
        HAS_BIAS=bias is not None, EVEN_K=k % block_k == 0, BLOCK_M=MAX_ROWS, BLOCK_N=block_n, BLOCK_K=block_k,
        INTERPRETED=INTERPRETED, num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    return y


@skinny_linear.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return x.new_empty(x.shape[0], weight.shape[0])
