"""Find the engines an `LLM` runs: a build.py output folder, or a plain Hugging Face folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from trtllm_mixquant.manifest import MANIFEST_NAME, EngineManifest, check_engine_pair

MODES = ("mixquant", "bf16", "quantized")


@dataclass(frozen=True)
class EngineDirs:
    generation: Path  # BF16 weights, tokenizer
    context: Path | None  # quantized weights (None: BF16 only)
    max_seq_len: int
    block_size: int
    precision: str  # the context engine's precision, or "bf16"

    def default_kv_blocks(self) -> int:
        """KV blocks when none are asked for: room for four sequences of the maximum length."""
        return max(4 * -(-self.max_seq_len // self.block_size), 64)


def resolve_engine_dirs(path: str | Path, mode: str) -> EngineDirs:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
    path = Path(path)
    if (path / "generation" / MANIFEST_NAME).is_file():
        generation = EngineManifest.read(path / "generation")
        context = None
        if (path / "context" / MANIFEST_NAME).is_file():
            context = EngineManifest.read(path / "context")
            check_engine_pair(context, generation)
        if context is None and mode != "bf16":
            raise ValueError(f"{path} has no context engine; build it with `python build.py --phase context`, "
                             "or use mode='bf16'.")
        return EngineDirs(path / "generation", path / "context" if context else None,
                          min(generation.max_seq_len, context.max_seq_len if context else 1 << 30),
                          generation.kv_cache.block_size, context.precision if context else "bf16")
    if (path / "config.json").is_file():
        if mode != "bf16":
            raise ValueError(f"{path} is a Hugging Face folder, which only runs in mode='bf16'; build engines "
                             f"with `python build.py --model {path}` for {mode!r}.")
        max_len = json.loads((path / "config.json").read_text()).get("max_position_embeddings", 4096)
        return EngineDirs(path, None, max_len, 32, "bf16")
    raise ValueError(f"{path} is neither a build.py output folder (with generation/engine.json) nor a "
                     "Hugging Face model folder. Build engines with `python build.py --output DIR`.")
