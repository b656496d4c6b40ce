"""Fixtures for the format tests: special-value tensors and tiny Qwen3 models exported by ModelOpt (CPU)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

def special_tensor(shape: tuple[int, ...], dtype: torch.dtype, dist: str, seed: int = 0) -> torch.Tensor:
    """A [..., K] tensor (K >= 32 for the planted blocks) of one distribution, cast to `dtype`.

    normal / student_t: Gaussian or heavy-tailed (Student-t, 3 degrees of freedom).

    zero_blocks: all-zero 16-blocks (scale 1.0 in ModelOpt, 0.125 in compressed-tensors).
    tiny_blocks: blocks ~1e-6 of the tensor amax, whose E4M3 scale would underflow without the 2^-9 clamp,
    and negative tiny values that must keep their sign bit (code 8).
    scale_boundaries: block amaxes within a few float32 ulps of E4M3 rounding midpoints of the block scale, so
    any change in the order of the scale arithmetic flips some block scales (float32 input only).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    if dist == "scale_boundaries":
        blocks = x.reshape(-1, 16).uniform_(-1.0, 1.0, generator=g)
        midpoints = torch.tensor([1 + (2 * k + 1) / 16 for k in range(8)] + [16.0 + 2 * k + 1 for k in range(8)])
        pick = torch.randint(0, 16, (blocks.shape[0],), generator=g)
        ulps = torch.randint(-8, 9, (blocks.shape[0],), generator=g, dtype=torch.int32)
        tensor_amax = torch.tensor(4.117172718048096)
        at_midpoint = midpoints[pick] * 6.0 / (2688.0 / tensor_amax)
        block_amax = (at_midpoint.view(torch.int32) + ulps).view(torch.float32)  # step by whole ulps
        blocks.mul_(block_amax.unsqueeze(-1))
        blocks[:, 0] = block_amax
        blocks.view(-1)[1] = tensor_amax
        return x.to(dtype)
    if dist == "student_t":
        chi2 = torch.randn((*shape, 3), generator=g).pow(2).mean(-1)
        x = x / chi2.sqrt()  # Student-t with 3 degrees of freedom: heavy tails, rare huge outliers
    elif dist == "zero_blocks":
        x[..., :16] = 0.0
        x.view(-1, shape[-1])[0] = 0.0
    elif dist == "tiny_blocks":
        x[..., 16:32] *= 1e-6
        x[..., :16] = -torch.rand(x[..., :16].shape, generator=g) * 1e-9
    return x.to(dtype)


@pytest.fixture(scope="session")
def make_tensor() -> Callable[..., torch.Tensor]:
    """Factory for `special_tensor`."""
    return special_tensor


@dataclass(frozen=True)
class ModelOptExport:
    """A ModelOpt HF export of a tiny Qwen3, with what was known before export.

    tensors: the exported safetensors; weights: each quantized Linear's weight before export (model dtype);
    weight_amax / input_amax: the quantizers' calibrated amaxes before export (None where dynamic).
    """

    tensors: dict[str, torch.Tensor]
    weights: dict[str, torch.Tensor]
    weight_amax: dict[str, torch.Tensor]
    input_amax: dict[str, torch.Tensor | None]
    quant_config: dict


def _tiny_qwen3(dtype: torch.dtype) -> torch.nn.Module:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    config = Qwen3Config(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, vocab_size=256, max_position_embeddings=128,
    )
    config.architectures = ["Qwen3ForCausalLM"]
    model = Qwen3ForCausalLM(config).to(dtype).eval()
    layer = model.model.layers[0]
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        q = layer.self_attn.q_proj.weight
        q[0, :16] = 0.0                                             # all-zero block
        q[1, 16:32] = 1e-8 * torch.randn(16, generator=g)           # E4M3 block scale would underflow
        q[2, 32:48] = -1e-9 * torch.rand(16, generator=g)           # negative values rounding to -0
        q[3, :] = 0.0                                               # an all-zero row
        gate = layer.mlp.gate_proj.weight
        t = torch.randn(8, 64, generator=g) / torch.randn(8, 64, 2, generator=g).pow(2).mean(-1).sqrt()
        gate[:8] = (0.02 * t).to(dtype)                             # heavy-tailed (Student-t, 2 dof) rows
        layer.mlp.down_proj.weight[5, 7] = 0.5                      # one outlier: small blocks elsewhere
    return model


def _export(cfg_name: str, dtype: torch.dtype, out_dir: Path) -> ModelOptExport:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ModelOpt warns about untested transformers versions and torch.jit
        import modelopt.torch.quantization as mtq
        from modelopt.torch.export import export_hf_checkpoint
    from safetensors.torch import load_file

    model = _tiny_qwen3(dtype)

    def forward_loop(m: torch.nn.Module) -> None:
        g = torch.Generator().manual_seed(2)
        for _ in range(3):
            m(torch.randint(0, 256, (2, 16), generator=g))

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        mtq.quantize(model, getattr(mtq, cfg_name), forward_loop)
        linears = {n: m for n, m in model.named_modules() if getattr(m, "weight_quantizer", None) is not None
                   and m.weight_quantizer.is_enabled}
        weights = {n: m.weight.detach().clone() for n, m in linears.items()}
        weight_amax = {n: m.weight_quantizer.amax.detach().clone() for n, m in linears.items()}
        input_amax = {n: None if m.input_quantizer.amax is None else m.input_quantizer.amax.detach().clone()
                      for n, m in linears.items()}
        export_hf_checkpoint(model, export_dir=out_dir)
    return ModelOptExport(
        tensors=load_file(str(out_dir / "model.safetensors")),
        weights=weights,
        weight_amax=weight_amax,
        input_amax=input_amax,
        quant_config=json.loads((out_dir / "hf_quant_config.json").read_text()),
    )


@pytest.fixture(scope="session")
def modelopt_export(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, torch.dtype], ModelOptExport]:
    """Factory: `modelopt_export(cfg_name, dtype)` quantizes + exports once per (config, dtype) per session."""
    pytest.importorskip("modelopt")
    pytest.importorskip("transformers")
    cache: dict[tuple[str, torch.dtype], ModelOptExport] = {}

    def get(cfg_name: str, dtype: torch.dtype) -> ModelOptExport:
        if (cfg_name, dtype) not in cache:
            out_dir = tmp_path_factory.mktemp(f"{cfg_name}_{str(dtype).split('.')[-1]}")
            cache[cfg_name, dtype] = _export(cfg_name, dtype, out_dir)
        return cache[cfg_name, dtype]

    return get
