"""NVFP4 against compressed-tensors 0.20 (NVFP4PackedCompressor, which runs its forward.quantize/dequantize).

Named differences between the libraries (asserted below, so a change in either library fails a test):
  1. all-zero block: compressed-tensors stores block scale 0.125 (its FP8 "eps"), ModelOpt and we store 1.0;
     both dequantize to 0.
  2. block whose E4M3 scale underflows: compressed-tensors casts it to 0, replaces it by 0.125 and so zeroes the
     block; ModelOpt and we clamp the scale to 2^-9 and keep the block's values.
Everything else (global scale, block scales, packed bytes, dequantized values) is bit-exact, including the sign
handling: a negative value that rounds to zero is code 8 ("-0") and a -0.0 input is code 0 in all three.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from trtllm_mixquant.formats import (
    compressed_tensors_to_modelopt,
    dequantize_nvfp4,
    modelopt_to_compressed_tensors,
    nvfp4_per_tensor_scale,
    quantize_nvfp4,
    unpack_e2m1,
)

pytest.importorskip("compressed_tensors")
from compressed_tensors.compressors.nvfp4.base import NVFP4PackedCompressor  # noqa: E402
from compressed_tensors.quantization import QuantizationScheme  # noqa: E402
from compressed_tensors.quantization.quant_scheme import NVFP4  # noqa: E402
from compressed_tensors.quantization.utils import calculate_qparams, generate_gparam  # noqa: E402

SCHEME = QuantizationScheme(targets=["Linear"], **NVFP4)
CT = "compressed_tensors"


def _ct_compress(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """compressed-tensors' weight path: global scale, fp8 block scales, then the packed compressor (fp32 amaxes)."""
    xf = x.float()
    global_scale = generate_gparam(xf.min(), xf.max())
    blocks = xf.unflatten(-1, (-1, 16))
    scale, _ = calculate_qparams(blocks.amin(-1), blocks.amax(-1), SCHEME.weights, global_scale=global_scale)
    state = {"weight": x, "weight_scale": scale, "weight_global_scale": global_scale}
    return NVFP4PackedCompressor.compress(state, SCHEME)


def _ct_decompress(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return NVFP4PackedCompressor.decompress(dict(state), SCHEME)["weight"]


def _same_bytes(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise bit equality of two 1-byte tensors (uint8 / float8) of one shape."""
    return a.view(torch.uint8) == b.view(torch.uint8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(1, 48), (48, 64), (64, 256)])
@pytest.mark.parametrize("dist", ["normal", "student_t", "zero_blocks", "tiny_blocks", "scale_boundaries"])
def test_quantize_matches_compressed_tensors(dist: str, shape: tuple[int, int], dtype: torch.dtype,
                                             make_tensor: Callable[..., torch.Tensor]) -> None:
    x = make_tensor(shape, dtype, dist)
    ct = _ct_compress(x)
    gs = nvfp4_per_tensor_scale(x.float().abs().amax(), CT)
    assert torch.equal(gs.reshape(1), ct["weight_global_scale"])
    packed, block_scales = quantize_nvfp4(x, gs, CT)

    ct_scales = ct["weight_scale"].float()
    zero = x.float().unflatten(-1, (-1, 16)).abs().amax(-1) == 0
    underflow = ~zero & (ct_scales == 0.125) & (block_scales.float() == 2.0**-9)
    normal = ~zero & ~underflow
    assert (ct_scales[zero] == 0.125).all() and (block_scales.float()[zero] == 1.0).all()  # difference 1
    assert zero.any() == (dist == "zero_blocks" or dtype == torch.float16 and dist == "tiny_blocks")
    assert underflow.any() == (dist == "tiny_blocks")                                         # difference 2
    ct_codes = unpack_e2m1(ct["weight_packed"]).unflatten(-1, (-1, 16))
    assert ct_codes[underflow].remainder(8).eq(0).all()  # compressed-tensors zeroes underflowing blocks

    same_packed = _same_bytes(packed, ct["weight_packed"]).unflatten(-1, (-1, 8)).all(-1)
    assert same_packed[normal | zero].all()
    assert _same_bytes(block_scales, ct["weight_scale"])[normal].all()

    ours = dequantize_nvfp4(packed, block_scales, gs, torch.bfloat16, CT).unflatten(-1, (-1, 16))
    theirs = _ct_decompress(ct).unflatten(-1, (-1, 16))
    assert torch.equal(ours[~underflow], theirs[~underflow])
    if dist == "tiny_blocks":
        assert (theirs[underflow] == 0).all() and (ours[underflow] != 0).any()


@pytest.mark.parametrize("dist", ["normal", "zero_blocks", "tiny_blocks"])
def test_dequantize_reads_compressed_tensors_checkpoints(dist: str, make_tensor: Callable[..., torch.Tensor]) -> None:
    ct = _ct_compress(make_tensor((32, 128), torch.bfloat16, dist))  # its own 0.125 scales included
    ours = dequantize_nvfp4(ct["weight_packed"], ct["weight_scale"], ct["weight_global_scale"], torch.bfloat16, CT)
    assert torch.equal(ours, _ct_decompress(ct))


def test_signs_of_zero_agree() -> None:
    x = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))
    x[0, 3] = -0.0
    x[0, 4] = -1e-3 * x.abs().max()  # rounds to zero
    ct = _ct_compress(x)
    packed, _ = quantize_nvfp4(x, nvfp4_per_tensor_scale(x.abs().amax(), CT), CT)
    assert unpack_e2m1(ct["weight_packed"])[0, 3:5].tolist() == [0, 8]
    assert torch.equal(packed, ct["weight_packed"])


def test_checkpoint_conversion_round_trip(modelopt_export: Callable) -> None:
    export = modelopt_export("NVFP4_DEFAULT_CFG", torch.bfloat16)
    modelopt = export.tensors
    ct = modelopt_to_compressed_tensors(modelopt)
    for name in export.weights:
        assert f"{name}.weight" not in ct and f"{name}.weight_scale_2" not in ct and f"{name}.input_scale" not in ct
        assert torch.equal(ct[f"{name}.weight_packed"], modelopt[f"{name}.weight"])
        assert _same_bytes(ct[f"{name}.weight_scale"], modelopt[f"{name}.weight_scale"]).all()
        for ct_name, mo_name in (("weight_global_scale", "weight_scale_2"), ("input_global_scale", "input_scale")):
            assert ct[f"{name}.{ct_name}"].shape == (1,) and ct[f"{name}.{ct_name}"].dtype == torch.float32
            assert ct[f"{name}.{ct_name}"].item() == (1.0 / modelopt[f"{name}.{mo_name}"]).item()
        # compressed-tensors reads the converted Linear; our CT-convention dequantize is bit-exact with it and
        # within 2 float32 ulps of the ModelOpt-convention dequantize (s / (1/w2) vs s * w2).
        state = {k: ct[f"{name}.{k}"] for k in ("weight_packed", "weight_scale", "weight_global_scale")}
        ours_ct = dequantize_nvfp4(*state.values(), dtype=torch.bfloat16, convention=CT)
        assert torch.equal(_ct_decompress(state), ours_ct)
        ct32 = dequantize_nvfp4(*state.values(), dtype=torch.float32, convention=CT)
        mo32 = dequantize_nvfp4(modelopt[f"{name}.weight"], modelopt[f"{name}.weight_scale"],
                                modelopt[f"{name}.weight_scale_2"], torch.float32)
        assert torch.allclose(ct32, mo32, rtol=2**-22, atol=0)
    for key in ("lm_head.weight", "model.embed_tokens.weight", "model.norm.weight"):
        assert ct[key] is modelopt[key]

    back = compressed_tensors_to_modelopt(ct)
    assert back.keys() == modelopt.keys()
    for key, original in modelopt.items():
        restored = back[key]
        assert restored.dtype == original.dtype and restored.shape == original.shape
        if key.endswith(("weight_scale_2", "input_scale")):
            ulp = torch.nextafter(original, torch.tensor(1.0)) - original
            assert (restored - original).abs() <= ulp  # 1/(1/s) is s up to one float32 ulp
        else:
            assert torch.equal(restored.reshape(-1).view(torch.uint8), original.reshape(-1).view(torch.uint8))
