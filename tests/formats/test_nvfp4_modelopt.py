"""NVFP4 bit-exact against NVIDIA ModelOpt 0.47: its NVFP4QTensor functions and its HF checkpoint export.

What ModelOpt's export does (read from modelopt/torch/export, checked below on a tiny Qwen3):
  - `weight_scale_2 = weight_quantizer.amax / (6 * 448)` and `input_scale = input_quantizer.amax / (6 * 448)`,
    fp32 0-d tensors; the weight amax is the weight's absolute maximum (max calibration).
  - Linears that read the same input (q/k/v; gate/up) are fused first: each gets the group's max weight amax and
    max input amax, so they share one `weight_scale_2` and one `input_scale`. o_proj and down_proj stand alone.
  - `weight_scale` = E4M3 of `block_amax / (6 * weight_scale_2)`, zero blocks set to 1.0, clamped to [2^-9, 448];
    `weight` = packed E2M1 of `w / (float(weight_scale) * weight_scale_2)` (fp32, round half to even).
  - lm_head and the embedding are excluded (kept in the model dtype).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from trtllm_mixquant.formats import dequantize_nvfp4, nvfp4_per_tensor_scale, quantize_nvfp4, unpack_e2m1

nvfp4_tensor = pytest.importorskip("modelopt.torch.quantization.qtensor.nvfp4_tensor")
NVFP4QTensor = nvfp4_tensor.NVFP4QTensor

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
FUSED_GROUPS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def _modelopt_quantize(x: torch.Tensor, wsf2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    qtensor, block_scales, _ = NVFP4QTensor.quantize(x.clone(), 16, weights_scaling_factor_2=wsf2)
    return qtensor._quantized_data, block_scales


def _modelopt_dequantize(packed: torch.Tensor, block_scales: torch.Tensor, wsf2: torch.Tensor,
                         shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    qtensor = NVFP4QTensor(shape, dtype, packed)
    return qtensor.dequantize(dtype=dtype, scale=block_scales, double_scale=wsf2, block_sizes={-1: 16})


def _assert_same_bytes(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))


CASES = [(dist, shape) for dist in ("normal", "student_t", "zero_blocks", "tiny_blocks", "scale_boundaries")
         for shape in [(1, 16), (5, 48), (3, 4, 64), (128, 256)] if shape[-1] >= 32 or dist in ("normal", "student_t")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("dist", "shape"), CASES)
def test_quantize_matches_nvfp4qtensor(dist: str, shape: tuple[int, ...], dtype: torch.dtype,
                                       make_tensor: Callable[..., torch.Tensor]) -> None:
    x = make_tensor(shape, dtype, dist)
    wsf2 = NVFP4QTensor.get_weights_scaling_factor_2(x)
    scale = nvfp4_per_tensor_scale(x.abs().amax())
    _assert_same_bytes(scale, wsf2)
    packed, block_scales = quantize_nvfp4(x, scale)
    ref_packed, ref_scales = _modelopt_quantize(x, wsf2)
    _assert_same_bytes(packed, ref_packed)
    _assert_same_bytes(block_scales, ref_scales)
    ref_deq = _modelopt_dequantize(ref_packed, ref_scales, wsf2, x.shape, dtype)
    _assert_same_bytes(dequantize_nvfp4(packed, block_scales, scale, dtype), ref_deq)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_and_saturation_match_nvfp4qtensor(dtype: torch.dtype) -> None:
    # weight_scale_2 = 2^-10 and block amax 6 * 2^-10 give block scale exactly 1.0 (8.0 for the third row),
    # so every scaled value lands exactly on an E2M1 tie; the last row's block scale 3000/6 saturates at 448.
    ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0])
    ties = torch.cat([ties, -ties])
    x = torch.stack([ties, ties.flip(0), 8 * ties, torch.full((16,), 3000.0)]).mul(2.0**-10).to(dtype)
    wsf2 = torch.tensor(2.0**-10)
    packed, block_scales = quantize_nvfp4(x, wsf2)
    ref_packed, ref_scales = _modelopt_quantize(x, wsf2)
    _assert_same_bytes(packed, ref_packed)
    _assert_same_bytes(block_scales, ref_scales)
    assert unpack_e2m1(packed)[0].tolist() == [0, 2, 2, 4, 4, 6, 6, 7, 8, 10, 10, 12, 12, 14, 14, 15]
    assert block_scales[3].float().item() == 448.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_matches_modelopt_hf_export(dtype: torch.dtype, modelopt_export: Callable) -> None:
    export = modelopt_export("NVFP4_DEFAULT_CFG", dtype)
    t = export.tensors
    assert export.quant_config["quantization"]["quant_algo"] == "NVFP4"
    assert export.quant_config["quantization"]["group_size"] == 16
    assert len(export.weights) == 14  # 2 layers x (q, k, v, o, gate, up, down); lm_head is excluded
    assert t["lm_head.weight"].dtype == dtype
    for name, w in export.weights.items():
        packed, block_scales, wsf2 = t[f"{name}.weight"], t[f"{name}.weight_scale"], t[f"{name}.weight_scale_2"]
        assert wsf2.dtype == torch.float32 and wsf2.dim() == 0
        ours_packed, ours_scales = quantize_nvfp4(w, wsf2)
        _assert_same_bytes(ours_packed, packed)
        _assert_same_bytes(ours_scales, block_scales)
        ref_deq = _modelopt_dequantize(packed, block_scales, wsf2, w.shape, dtype)
        _assert_same_bytes(dequantize_nvfp4(packed, block_scales, wsf2, dtype), ref_deq)
    q0 = "model.layers.0.self_attn.q_proj"
    bs = t[f"{q0}.weight_scale"].float()
    assert bs[0, 0] == 1.0 and bs[3].eq(1.0).all()        # planted zero block / zero row
    assert bs[1, 1] == 2.0**-9 and bs[2, 2] == 2.0**-9     # planted underflowing / negative tiny blocks
    assert (unpack_e2m1(t[f"{q0}.weight"])[2, 32:48] == 8).all()


def _fused_group(name: str) -> list[str]:
    prefix, leaf = name.rsplit(".", 1)
    group = next((g for g in FUSED_GROUPS if leaf in g), (leaf,))
    return [f"{prefix}.{member}" for member in group]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_per_tensor_scales_from_calibrated_amax(dtype: torch.dtype, modelopt_export: Callable) -> None:
    export = modelopt_export("NVFP4_DEFAULT_CFG", dtype)
    t = export.tensors
    shared_strictly = 0
    for name, w in export.weights.items():
        assert torch.equal(export.weight_amax[name].float(), w.float().abs().amax())  # max calibration
        group = _fused_group(name)
        weight_amax = torch.stack([export.weight_amax[m] for m in group]).max()
        input_amax = torch.stack([export.input_amax[m] for m in group]).max()
        _assert_same_bytes(nvfp4_per_tensor_scale(weight_amax), t[f"{name}.weight_scale_2"])
        _assert_same_bytes(nvfp4_per_tensor_scale(input_amax), t[f"{name}.input_scale"])
        shared_strictly += int(export.weight_amax[name] < weight_amax)
    assert shared_strictly >= 4  # fusion really replaced some layers' own amax by the group max
