"""The skinny-linear kernel (decode-size GEMMs) against an fp32 reference, and its place in `DenseLinear`.

Without a GPU the kernel runs in the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1);
with one, the compiled kernel.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

ON_GPU = torch.cuda.is_available()
# Interpreters before triton 3.7 call int() on 1-element arrays, which numpy >= 2.4 rejects.
pytest.importorskip("triton", minversion=None if ON_GPU else "3.7")

from trtllm_mixquant.runtime.kernels.skinny_linear import MAX_ROWS, launch_config, skinny_linear  # noqa: E402
from trtllm_mixquant.runtime.layers.linear import DenseLinear  # noqa: E402

DEVICE = torch.device("cuda" if ON_GPU else "cpu")


def one_ulp(reference: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The tolerance: one unit in the last place of `dtype` at each reference value. Rounding the fp32
    sum to `dtype` costs half of one, and the kernel's summation order (another than the reference's)
    can move a value across a rounding boundary: one ulp in all. The floor covers values near zero,
    where the ulp is below fp32's own summation error (K products of magnitude ~1)."""
    return torch.finfo(dtype).eps * reference.abs() + 1e-4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("rows, n, k, bias", [
    (1, 40, 1024, False),  # a partial column tile; K a whole number of BLOCK_K steps
    (5, 100, 700, True),  # K not a multiple of BLOCK_K (masked last step), with bias
    (MAX_ROWS, 9000, 256, False),  # every row the kernel takes; n past the wide-projection threshold
])
def test_matches_fp32_reference(dtype, rows, n, k, bias):
    gen = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, k, generator=gen).to(dtype).to(DEVICE)
    w = (torch.randn(n, k, generator=gen) * k ** -0.5).to(dtype).to(DEVICE)
    b = torch.randn(n, generator=gen).to(dtype).to(DEVICE) if bias else None
    out = skinny_linear(x, w, b)
    ref = x.double() @ w.double().T + (0 if b is None else b.double())
    assert out.dtype == dtype and out.shape == (rows, n)
    assert ((out.double() - ref).abs() <= one_ulp(ref, dtype)).all()


def test_refuses_what_it_does_not_take():
    w = torch.randn(32, 64, dtype=torch.bfloat16, device=DEVICE)
    with pytest.raises(ValueError, match="skinny_linear takes"):
        skinny_linear(torch.randn(MAX_ROWS + 1, 64, dtype=torch.bfloat16, device=DEVICE), w)
    with pytest.raises(ValueError, match="row-major"):
        skinny_linear(torch.randn(2, 32, dtype=torch.bfloat16, device=DEVICE), w.T)


def test_launch_config_tiles_divide_the_model_shapes():
    """BLOCK_K divides Qwen3-8B's K (4096, 12288), so its projections' loops run unmasked."""
    for n, k in ((6144, 4096), (4096, 4096), (24576, 4096), (4096, 12288)):
        assert k % launch_config(n)["BLOCK_K"] == 0


@pytest.mark.skipif(not ON_GPU, reason="DenseLinear takes the kernel only for CUDA weights")
def test_dense_linear_takes_the_kernel_up_to_max_rows():
    w = torch.randn(256, 512, dtype=torch.bfloat16, device=DEVICE)
    layer = DenseLinear(w, None)
    assert layer.max_skinny_rows == MAX_ROWS
    for rows in (1, MAX_ROWS, MAX_ROWS + 1):
        x = torch.randn(rows, 512, dtype=torch.bfloat16, device=DEVICE)
        ref = x.double() @ w.double().T
        assert ((layer(x).double() - ref).abs() <= one_ulp(ref, torch.bfloat16)).all()


def test_dense_linear_on_cpu_is_f_linear():
    w = torch.randn(8, 16)
    layer = DenseLinear(w, None)
    x = torch.randn(1, 16)
    assert layer.skinny is None and torch.equal(layer(x), F.linear(x, w))
