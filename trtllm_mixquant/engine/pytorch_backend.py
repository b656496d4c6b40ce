"""Build the PyTorch backend (`EngineCore`) for one role from an `EngineConfig`.

Roles and the weights they load: `context` the quantized weights only (it prefills), `generation`
the BF16 weights only (it decodes), `colocated` both (the BF16 ones only in mode "bf16").
"""

from __future__ import annotations

import logging
from dataclasses import replace

import torch

from trtllm_mixquant.devices import resolve_device, resolve_dtype
from trtllm_mixquant.engine.config import EngineConfig
from trtllm_mixquant.engine.core import EngineCore
from trtllm_mixquant.engine.engine_dirs import EngineDirs
from trtllm_mixquant.engine.tokenizer import load_tokenizer_and_eos
from trtllm_mixquant.runtime.loader import load_causal_lm
from trtllm_mixquant.runtime.quantized import make_quantized_kernel

log = logging.getLogger(__name__)


def build_pytorch_backend(config: EngineConfig, dirs: EngineDirs, role: str) -> EngineCore:
    device = resolve_device(config.device)
    dtype_name = resolve_dtype(config.dtype, device)
    dtype = getattr(torch, dtype_name)
    if role == "context":
        context = dirs.require_context("a context worker")
        model = load_causal_lm(context, context, dtype, device, make_quantized_kernel, precise=False)
    else:
        quantized = dirs.context if role == "colocated" and config.mode != "bf16" else None
        model = load_causal_lm(dirs.generation, quantized, dtype, device, make_quantized_kernel)
    tokenizer, eos_ids = load_tokenizer_and_eos(dirs.generation)
    num_blocks = config.kv_cache_blocks or dirs.default_kv_blocks()
    layout = replace(dirs.layout, dtype=dtype_name)
    log.info("%s engine %s: context precision %s, device %s, %s, %d KV blocks of %d tokens", role, config.engine_dir,
             dirs.precision, device, dtype_name, num_blocks, layout.block_size)
    return EngineCore(model, layout, dirs.max_seq_len, eos_ids, num_blocks, config, tokenizer)
