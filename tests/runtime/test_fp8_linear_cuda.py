"""`Fp8Linear` on a GPU (`torch._scaled_mm`, eager and inside a compiled region) against exact math."""

from __future__ import annotations

import pytest
import torch

from trtllm_mixquant.formats import fp8_scale_from_amax, quantize_fp8_per_tensor
from trtllm_mixquant.runtime.compile import compile_exact
from trtllm_mixquant.runtime.quantized import Fp8Linear, fused_fp8_quantizer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9),
                                reason="needs a GPU with FP8 tensor cores (sm_89+)")


@pytest.mark.parametrize("row_wise", [False, True], ids=["per-tensor", "fused-parts-row-wise"])
def test_scaled_mm_matches_exact_math(row_wise):
    """Three fused projections (q, k, v) with their own weight scales when `row_wise`. Reference: the
    FP8 values dequantized exactly in fp64 and multiplied there; the GPU accumulates in fp32 and rounds
    its output to bf16 (half an ulp), so 2 bf16 ulps of the output scale bound the error. A wrong
    row-wise scale puts whole rows off by the ratio of two scales."""
    g = torch.Generator(device="cuda").manual_seed(0)
    k, parts, t = 256, [128, 64, 64], 96
    x = torch.randn(t, k, device="cuda", generator=g).to(torch.bfloat16)
    weights = [torch.randn(n, k, device="cuda", generator=g).to(torch.bfloat16) * (4.0 ** i if row_wise else 1.0)
               for i, n in enumerate(parts)]
    scales = [fp8_scale_from_amax(w.abs().amax().float()) for w in weights]
    if not row_wise:
        scales = [scales[0].clone() for _ in scales]
    wq = torch.cat([quantize_fp8_per_tensor(w, s) for w, s in zip(weights, scales)])
    w_scale = torch.cat([s.expand(n) for s, n in zip(scales, parts)]) if row_wise else scales[0]
    x_scale = fp8_scale_from_amax(x.abs().amax().float())
    bias = torch.randn(sum(parts), device="cuda", generator=g).to(torch.bfloat16)
    layer = Fp8Linear(wq, w_scale, x_scale, bias, torch.bfloat16)
    assert layer.native

    xq = quantize_fp8_per_tensor(x, x_scale).double() * x_scale.double()
    row_scale = (w_scale.reshape(-1, 1) if row_wise else w_scale).double()
    ref = xq @ (wq.double() * row_scale).T + bias.double()
    bound = 2 * 2 ** -8 * ref.abs().max()
    with torch.inference_mode():
        eager = layer(x)
        compiled = compile_exact(layer)(x)
    assert (eager.double() - ref).abs().max() < bound
    assert (compiled.double() - ref).abs().max() < bound


def test_compiled_activation_quantizer_gives_the_reference_codes():
    """Inductor's default would round (x / s) once, straight to FP8; ModelOpt and our reference round
    to bf16 first. Without `emulate_precision_casts` ~3% of these codes differed on an H100."""
    x = torch.randn(4096, 1024, device="cuda", generator=torch.Generator(device="cuda").manual_seed(1))
    x = x.to(torch.bfloat16)
    scale = fp8_scale_from_amax(x.abs().amax().float())
    reference = quantize_fp8_per_tensor(x, scale).view(torch.uint8)
    assert torch.equal(fused_fp8_quantizer()(x, scale).view(torch.uint8), reference)
