"""Find the engines a folder holds: a build.py output folder, or a plain Hugging Face folder.

The KV layout is read here, once, from the engines' `engine.json` (or derived from a Hugging Face
`config.json`); everything downstream takes it from `EngineDirs.layout`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from trtllm_mixquant.manifest import MANIFEST_NAME, EngineManifest, KVCacheLayout, check_engine_pair


@dataclass(frozen=True)
class EngineDirs:
    generation: Path  # BF16 weights, tokenizer
    context: Path | None  # quantized weights (None: BF16 only)
    max_seq_len: int
    layout: KVCacheLayout  # as built (dtype bfloat16); a running pool takes the dtype it runs in
    precision: str  # the context engine's precision, or "bf16"

    def default_kv_blocks(self) -> int:
        """KV blocks when none are asked for: room for four sequences of the maximum length."""
        return max(4 * self.layout.blocks_for(self.max_seq_len), 64)

    def require_context(self, what: str) -> Path:
        if self.context is None:
            raise ValueError(f"{what} needs a context engine, which {self.generation.parent} does not have; "
                             "build it with `python build.py --phase context`")
        return self.context


def resolve_engine_dirs(path: str | Path) -> EngineDirs:
    path = Path(path)
    if (path / "generation" / MANIFEST_NAME).is_file():
        generation = EngineManifest.read(path / "generation")
        context = None
        if (path / "context" / MANIFEST_NAME).is_file():
            context = EngineManifest.read(path / "context")
            check_engine_pair(context, generation)
        return EngineDirs(path / "generation", path / "context" if context else None,
                          min(generation.max_seq_len, context.max_seq_len if context else 1 << 30),
                          generation.kv_cache, context.precision if context else "bf16")
    if (path / "config.json").is_file():
        config = json.loads((path / "config.json").read_text())
        return EngineDirs(path, None, config.get("max_position_embeddings", 4096),
                          KVCacheLayout.from_hf_config(config), "bf16")
    raise ValueError(f"{path} is neither a build.py output folder (with generation/engine.json) nor a "
                     "Hugging Face model folder. Build engines with `python build.py --output DIR`.")
