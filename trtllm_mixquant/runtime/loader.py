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
from trtllm_mixquant.runtime.parallel import TPGroup


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

    def get(self, name: str, part: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        """The tensor `name`, or only its slice `part` = (dim, start, stop, full): [start, stop) of a
        dimension that is `full` long in the unpacked weight, cut at the same fraction of a dimension
        stored packed or per block (an NVFP4 weight holds two values a byte, its scales one per 16).
        Only the slice is read from disk. Tensors without that dimension (scalars) are read whole."""
        if name not in self.where:
            raise CheckpointError(f"{self.folder} has no tensor {name!r}; is it a checkpoint of this model?")
        with safe_open(self.where[name], "pt") as handle:
            if part is None:
                return handle.get_tensor(name)
            stored = handle.get_slice(name)
            dim, start, stop, full = part
            shape = stored.get_shape()
            if len(shape) <= dim or all(n == 1 for n in shape):  # a per-tensor scale
                return handle.get_tensor(name)
            if (start * shape[dim]) % full or (stop * shape[dim]) % full:
                raise CheckpointError(f"{name}: a tensor-parallel shard [{start}, {stop}) of {full} does not fall on "
                                      f"the boundaries of its {shape[dim]} stored blocks; pick another "
                                      "--tensor-parallel-size")
            cut = slice(start * shape[dim] // full, stop * shape[dim] // full)
            return stored[(slice(None),) * dim + (cut,)]


def read_config(folder: str | Path) -> ModelConfig:
    return ModelConfig.from_hf(json.loads((Path(folder) / "config.json").read_text()))


def load_causal_lm(base_dir: str | Path, quantized_dir: str | Path | None = None,
                   dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "cpu",
                   quantized_kernel=None, precise: bool = True, tp: TPGroup = TPGroup()) -> CausalLM:
    """Build the model, or rank `tp.rank`'s shard of it, from `base_dir` (embeddings, norms, LM head
    and, if `precise`, the BF16 projections); `quantized_kernel(reader, prefixes, shard, dtype, device)`
    makes the quantized projections from `quantized_dir` (`prefixes` lists the checkpoint projections
    fused into one). A context worker loads only the quantized ones (base_dir = quantized_dir)."""
    cfg = read_config(base_dir)
    with torch.device(device):
        model = CausalLM(cfg, tp).to(dtype)
    base = TensorReader(Path(base_dir))
    quantized = TensorReader(Path(quantized_dir)) if quantized_dir else None
    for name, module in model.named_modules():
        if isinstance(module, Linear):
            parts = module.checkpoint_names(name)
            shard = module.shard
            if precise:
                weight = torch.cat([base.get(f"{p}.weight", shard.part(i)) for i, p in enumerate(parts)])
                bias = None
                if module.has_bias and shard.keeps_bias:
                    bias = torch.cat([base.get(f"{p}.bias", shard.part(i)) for i, p in enumerate(parts)])
                module.precise = DenseLinear(weight.to(device, dtype), None if bias is None else bias.to(device, dtype))
            if quantized is not None:
                module.quantized = quantized_kernel(quantized, parts, shard, dtype, device)
    for name, param in model.named_parameters():
        if ".precise." in name or ".quantized." in name:
            continue
        if name == "lm_head.weight" and name not in base:
            source = "model.embed_tokens.weight"  # tied embeddings
        else:
            source = name
        if name in ("model.embed_tokens.weight", "lm_head.weight"):  # this rank's rows, zero-padded
            vocab = model.model.embed_tokens if name.startswith("model.") else model.lm_head
            rows = base.get(source, (0, vocab.start, vocab.stop, cfg.vocab_size))
            tensor = torch.cat([rows, rows.new_zeros(param.shape[0] - rows.shape[0], *rows.shape[1:])])
        else:
            tensor = base.get(source)
        if tensor.shape != param.shape:
            raise CheckpointError(f"{name}: checkpoint has shape {tuple(tensor.shape)}, model expects {tuple(param.shape)}")
        with torch.no_grad():
            param.copy_(tensor)
    return model.eval()
