"""Load `CausalLM` weights from Hugging Face or engine folders (safetensors).

`precise_dir` gives every weight and the BF16 kernels of each projection; `quantized_dir`, a
ModelOpt NVFP4 or FP8 checkpoint of the same model, gives the quantized kernels.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from trtllm_mixquant.runtime.config import ModelConfig
from trtllm_mixquant.runtime.layers.linear import DenseLinear, Linear
from trtllm_mixquant.runtime.model import CausalLM


class CheckpointError(ValueError):
    """A checkpoint folder is missing tensors or does not fit the model."""


class TensorReader:
    """Lazy access to every tensor of a folder's *.safetensors shards."""

    def __init__(self, folder: Path):
        files = sorted(Path(folder).glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"{folder} has no *.safetensors weights.")
        self.folder = folder
        self.where = {}
        for f in files:
            with safe_open(f, "pt") as handle:
                self.where.update(dict.fromkeys(handle.keys(), f))

    def __contains__(self, name: str) -> bool:
        return name in self.where

    def get(self, name: str) -> torch.Tensor:
        if name not in self.where:
            raise CheckpointError(f"{self.folder} has no tensor {name!r}; is it a checkpoint of this model?")
        with safe_open(self.where[name], "pt") as handle:
            return handle.get_tensor(name)


def read_config(folder: str | Path) -> ModelConfig:
    return ModelConfig.from_hf(json.loads((Path(folder) / "config.json").read_text()))


def load_causal_lm(base_dir: str | Path, quantized_dir: str | Path | None = None,
                   dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "cpu",
                   quantized_kernel=None, precise: bool = True) -> CausalLM:
    """Build the model from `base_dir` (embeddings, norms, LM head and, if `precise`, the BF16
    projections); `quantized_kernel(reader, prefixes, dtype, device)` makes the quantized projections
    from `quantized_dir` (`prefixes` lists the checkpoint projections fused into one). A context worker loads only the quantized ones (base_dir = quantized_dir)."""
    cfg = read_config(base_dir)
    with torch.device(device):
        model = CausalLM(cfg).to(dtype)
    base = TensorReader(Path(base_dir))
    quantized = TensorReader(Path(quantized_dir)) if quantized_dir else None
    for name, module in model.named_modules():
        if isinstance(module, Linear):
            parts = module.checkpoint_names(name)
            if precise:
                weight = torch.cat([base.get(f"{p}.weight") for p in parts]).to(device, dtype)
                bias = torch.cat([base.get(f"{p}.bias") for p in parts]).to(device, dtype) if module.has_bias else None
                module.precise = DenseLinear(weight, bias)
            if quantized is not None:
                module.quantized = quantized_kernel(quantized, parts, dtype, device)
    for name, param in model.named_parameters():
        if ".precise." in name or ".quantized." in name:
            continue
        if name == "lm_head.weight" and name not in base:
            source = "model.embed_tokens.weight"  # tied embeddings
        else:
            source = name
        tensor = base.get(source)
        if tensor.shape != param.shape:
            raise CheckpointError(f"{name}: checkpoint has shape {tuple(tensor.shape)}, model expects {tuple(param.shape)}")
        with torch.no_grad():
            param.copy_(tensor)
    return model.eval()
