"""Bad input raises `FormatError` (a ValueError) whose message says what is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from trtllm_mixquant.formats import (
    FormatError,
    compressed_tensors_to_modelopt,
    dequantize_fp8,
    dequantize_nvfp4,
    fake_quantize_nvfp4,
    fp8_scale_from_amax,
    modelopt_to_compressed_tensors,
    nvfp4_per_tensor_scale,
    pack_e2m1,
    quantize_fp8_per_tensor,
    quantize_fp8_rowwise,
    quantize_nvfp4,
    unpack_e2m1,
    unswizzle_block_scales,
)

S = torch.tensor(0.01)
X = torch.randn(4, 32)
PACKED = torch.zeros(4, 16, dtype=torch.uint8)
SCALES = torch.ones(4, 2).to(torch.float8_e4m3fn)


def _with(t: torch.Tensor, index: tuple, value: float) -> torch.Tensor:
    t = t.clone()
    t[index] = value
    return t


CASES: list[tuple[str, Callable[[], object], str]] = [
    ("nan", lambda: quantize_nvfp4(_with(X, (1, 2), float("nan")), S), "NaN/Inf"),
    ("inf", lambda: quantize_nvfp4(_with(X, (0, 0), float("inf")), S), "NaN/Inf"),
    ("inf fake quant", lambda: fake_quantize_nvfp4(_with(X, (0, 0), float("-inf")), S), "NaN/Inf"),
    ("inf fp8", lambda: quantize_fp8_per_tensor(_with(X, (0, 0), float("inf")), S), "NaN/Inf"),
    ("nan fp8 rows", lambda: quantize_fp8_rowwise(_with(X, (0, 0), float("nan"))), "NaN/Inf"),
    ("K not multiple of 16", lambda: quantize_nvfp4(torch.randn(4, 40), S), "K=40"),
    ("K not multiple of 16 fake", lambda: fake_quantize_nvfp4(torch.randn(3, 8), S), "K=8"),
    ("integer input", lambda: quantize_nvfp4(torch.ones(4, 32, dtype=torch.int32), S), "torch.int32"),
    ("0-d input", lambda: quantize_fp8_per_tensor(torch.tensor(1.0), S), "0-d"),
    ("scale zero", lambda: quantize_nvfp4(X, torch.tensor(0.0)), "positive"),
    ("scale negative", lambda: dequantize_nvfp4(PACKED, SCALES, torch.tensor(-1.0)), "positive"),
    ("scale nan", lambda: quantize_fp8_per_tensor(X, torch.tensor(float("nan"))), "positive"),
    ("scale inf", lambda: fake_quantize_nvfp4(X, torch.tensor(float("inf"))), "positive"),
    ("scale bf16", lambda: quantize_nvfp4(X, torch.tensor(0.01, dtype=torch.bfloat16)), "torch.float32"),
    ("scale not scalar", lambda: quantize_nvfp4(X, torch.ones(2)), "exactly one value"),
    ("scale python float", lambda: quantize_nvfp4(X, 0.01), "torch.Tensor"),  # type: ignore[arg-type]
    ("packed dtype", lambda: dequantize_nvfp4(PACKED.to(torch.int8), SCALES, S), "uint8"),
    ("block scale dtype", lambda: dequantize_nvfp4(PACKED, SCALES.float(), S), "float8_e4m3fn"),
    ("shape mismatch K", lambda: dequantize_nvfp4(PACKED[:, :8], SCALES, S), "do not match"),
    ("shape mismatch rows", lambda: dequantize_nvfp4(PACKED, SCALES[:3], S), "do not match"),
    ("block scale nan", lambda: dequantize_nvfp4(PACKED, _with(SCALES.float(), (0, 0), float("nan")).to(
        torch.float8_e4m3fn), S), "non-negative"),
    ("block scale negative", lambda: dequantize_nvfp4(PACKED, (-SCALES.float()).to(torch.float8_e4m3fn), S),
     "non-negative"),
    ("fp8 data dtype", lambda: dequantize_fp8(X, S), "float8_e4m3fn"),
    ("fp8 scale shape", lambda: dequantize_fp8(X.to(torch.float8_e4m3fn), torch.ones(3, 1)), "does not fit"),
    ("fp8 scale zero", lambda: dequantize_fp8(X.to(torch.float8_e4m3fn), torch.zeros(4, 1)), "positive"),
    ("fp8 amax negative", lambda: fp8_scale_from_amax(torch.tensor(-1.0)), "non-negative"),
    ("nvfp4 amax nan", lambda: nvfp4_per_tensor_scale(torch.tensor(float("nan"))), "finite and non-negative"),
    ("nvfp4 amax negative", lambda: nvfp4_per_tensor_scale(torch.tensor(-2.0)), "such as -2.0"),
    ("nvfp4 amax vector", lambda: nvfp4_per_tensor_scale(torch.ones(3)), "x.abs().amax()"),
    ("convention", lambda: quantize_nvfp4(X, S, "vllm"), "'vllm'"),  # type: ignore[arg-type]
    ("pack odd", lambda: pack_e2m1(torch.zeros(3, dtype=torch.uint8)), "even"),
    ("unpack dtype", lambda: unpack_e2m1(torch.zeros(3, dtype=torch.int32)), "uint8"),
    ("unswizzle size", lambda: unswizzle_block_scales(torch.zeros(100, dtype=torch.uint8), 130, 7), "2048"),
    ("missing tensor", lambda: modelopt_to_compressed_tensors({"l.weight_scale_2": S, "l.weight": PACKED}),
     "l.weight_scale is missing"),
    ("checkpoint shapes", lambda: compressed_tensors_to_modelopt(
        {"l.weight_packed": PACKED, "l.weight_scale": SCALES[:, :1], "l.weight_global_scale": S.reshape(1)}),
     "do not form an NVFP4 Linear"),
]


@pytest.mark.parametrize(("case", "call", "needle"), CASES, ids=[c[0] for c in CASES])
def test_raises_format_error_with_message(case: str, call: Callable[[], object], needle: str) -> None:
    with pytest.raises(FormatError) as info:
        call()
    assert isinstance(info.value, ValueError)
    assert needle in str(info.value), f"{case}: {info.value}"


def test_messages_say_how_to_fix() -> None:
    with pytest.raises(FormatError, match=r"K=40; pad K to 48 or leave this layer unquantized"):
        quantize_nvfp4(torch.randn(4, 40), S)
    with pytest.raises(FormatError, match=r"holds 1 NaN/Inf value\(s\)"):
        quantize_nvfp4(_with(X, (1, 2), float("nan")), S)


def test_check_values_false_skips_only_value_scans() -> None:
    x = _with(X, (0, 0), float("nan"))
    out = fake_quantize_nvfp4(x, S, check_values=False)
    assert out[0, :16].isnan().all() and out[1:].isfinite().all()  # NaN stays inside its block
    with pytest.raises(FormatError, match="K=40"):
        fake_quantize_nvfp4(torch.randn(4, 40), S, check_values=False)
