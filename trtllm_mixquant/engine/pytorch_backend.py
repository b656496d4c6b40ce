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
from trtllm_mixquant.engine.ranks import rank_device
from trtllm_mixquant.runtime.loader import load_causal_lm
from trtllm_mixquant.runtime.parallel import TPGroup
from trtllm_mixquant.runtime.quantized import make_quantized_kernel

log = logging.getLogger(__name__)


def build_pytorch_backend(config: EngineConfig, dirs: EngineDirs, role: str, tp: TPGroup | None = None) -> EngineCore:
    """tp: this rank's tensor-parallel group (None: one rank); rank r runs on the r-th GPU."""
    tp = tp or TPGroup()
    device = rank_device(config.device, tp.rank) if tp.size > 1 else resolve_device(config.device)
    dtype_name = resolve_dtype(config.dtype, device)
    dtype = getattr(torch, dtype_name)
    if role == "context":
        context = dirs.require_context("a context worker")
        model = load_causal_lm(context, context, dtype, device, make_quantized_kernel, precise=False, tp=tp)
    else:
        quantized = dirs.context if role == "colocated" and config.mode != "bf16" else None
        model = load_causal_lm(dirs.generation, quantized, dtype, device, make_quantized_kernel, tp=tp)
    tokenizer, eos_ids = load_tokenizer_and_eos(dirs.generation)
    num_blocks = config.kv_cache_blocks or dirs.default_kv_blocks()
    layout = replace(dirs.layout, dtype=dtype_name, tp_size=tp.size, tp_rank=tp.rank)
    if tp.rank == 0:
        log.info("%s engine %s: context precision %s, device %s, %s, %d KV blocks of %d tokens%s", role,
                 config.engine_dir, dirs.precision, device, dtype_name, num_blocks, layout.block_size,
                 f", tensor parallel over {tp.size} ranks" if tp.size > 1 else "")
    return EngineCore(model, layout, dirs.max_seq_len, eos_ids, num_blocks, config, tokenizer)
