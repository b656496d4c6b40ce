"""FP8 E4M3: round-trip error bounds and bit-exactness with ModelOpt 0.47's FP8 HF exports.

ModelOpt's FP8 export (checked below): `weight_scale = amax / 448` (fp32 0-d for FP8_DEFAULT_CFG, fp32 [N] for
FP8_PER_CHANNEL_PER_TOKEN_CFG), `input_scale = input amax / 448`; unlike NVFP4, q/k/v and gate/up are NOT fused,
each Linear keeps its own scales. The per-tensor weight is `(w / weight_scale).to(float8)` computed in the model
dtype, i.e. the quotient is rounded to bfloat16 before the float8 cast.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from trtllm_mixquant.formats import dequantize_fp8, fp8_scale_from_amax, quantize_fp8_per_tensor, quantize_fp8_rowwise

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# E4M3 has 3 mantissa bits: relative spacing 2^-3 between normals, so round-to-nearest errs by at most half of
# it, 1/16 of |x|. Values below the smallest normal (2^-6 * scale) have an absolute half-step of 2^-10 * scale.
# The output dtype adds its own rounding (bfloat16: 2^-9 relative).
REL = 1 / 16 + 2**-8


def _check_bound(x: torch.Tensor, deq: torch.Tensor, scale: torch.Tensor) -> None:
    err = (deq.float() - x.float()).abs()
    assert (err <= REL * x.float().abs() + 2**-10 * scale).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(16,), (7, 33), (2, 3, 64)])
def test_per_tensor_round_trip(shape: tuple[int, ...], dtype: torch.dtype, make_tensor: Callable) -> None:
    x = make_tensor(shape, dtype, "student_t")
    scale = fp8_scale_from_amax(x.abs().amax())
    q = quantize_fp8_per_tensor(x, scale)
    assert q.dtype == torch.float8_e4m3fn and q.shape == x.shape
    assert q.float().abs().max() == 448.0  # the amax element maps to the top of the range
    deq = dequantize_fp8(q, scale, dtype)
    assert deq.dtype == dtype
    _check_bound(x, deq, scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 16), (9, 40), (2, 5, 64)])
def test_rowwise_round_trip(shape: tuple[int, ...], dtype: torch.dtype, make_tensor: Callable) -> None:
    x = make_tensor(shape, dtype, "student_t")
    x[..., 0, :] = 0.0  # an all-zero row (a padding token)
    q, scales = quantize_fp8_rowwise(x)
    assert scales.shape == (*shape[:-1], 1) and scales.dtype == torch.float32
    assert torch.equal(scales, fp8_scale_from_amax(x.abs().amax(-1, keepdim=True)))
    assert (scales[..., 0, :] == 1.0).all() and (q[..., 0, :].float() == 0).all()
    deq = dequantize_fp8(q, scales, dtype)
    _check_bound(x, deq, scales)
    # each row's amax maps exactly to 448, so it comes back up to float rounding of 448 * (amax / 448)
    assert torch.allclose(deq[..., 1:, :].float().abs().amax(-1), x[..., 1:, :].float().abs().amax(-1), rtol=2**-7)
    assert (q[..., 1:, :].float().abs().amax(-1) == 448).all()


def test_static_scale_saturates_instead_of_nan() -> None:
    x = torch.tensor([[1000.0, -1000.0, 1.0]])
    q = quantize_fp8_per_tensor(x, torch.tensor(1.0))
    assert q.float().tolist() == [[448.0, -448.0, 1.0]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_per_tensor_matches_modelopt_export(dtype: torch.dtype, modelopt_export: Callable) -> None:
    export = modelopt_export("FP8_DEFAULT_CFG", dtype)
    t = export.tensors
    assert export.quant_config["quantization"]["quant_algo"] == "FP8"
    single_rounding_differs = 0
    for name, w in export.weights.items():
        weight_scale = t[f"{name}.weight_scale"]
        assert weight_scale.dtype == torch.float32 and weight_scale.dim() == 0
        assert torch.equal(fp8_scale_from_amax(export.weight_amax[name]), weight_scale)  # own amax, no fusion
        assert torch.equal(fp8_scale_from_amax(export.input_amax[name]), t[f"{name}.input_scale"])
        q = quantize_fp8_per_tensor(w, weight_scale)
        assert torch.equal(q.view(torch.uint8), t[f"{name}.weight"].view(torch.uint8))
        direct = (w.float() / weight_scale).to(torch.float8_e4m3fn)
        single_rounding_differs += int((direct.view(torch.uint8) != q.view(torch.uint8)).sum())
    # The bfloat16 export's double rounding is real: casting the fp32 quotient directly would not match.
    assert (single_rounding_differs > 0) == (dtype == torch.bfloat16)


def test_per_channel_matches_modelopt_export(modelopt_export: Callable) -> None:
    export = modelopt_export("FP8_PER_CHANNEL_PER_TOKEN_CFG", torch.bfloat16)
    t = export.tensors
    for name, w in export.weights.items():
        q, scales = quantize_fp8_rowwise(w)
        assert t[f"{name}.weight_scale"].shape == (w.shape[0],)
        assert torch.equal(scales.squeeze(-1), t[f"{name}.weight_scale"])
        assert torch.equal(q.view(torch.uint8), t[f"{name}.weight"].view(torch.uint8))
        assert f"{name}.input_scale" not in t  # per-token activation scales are dynamic
