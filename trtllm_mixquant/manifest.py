"""`engine.json`: what an engine folder holds, and the check that two engines can share a KV cache.

Every engine folder written by `build.py` carries a manifest. The runtime, the orchestrator and the
KV-cache transport read it to refuse pairs of engines that could not hand a request's KV cache to
each other: a different KV layout, or weights that came from different sources.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

MANIFEST_NAME = "engine.json"
MANIFEST_VERSION = 1

Phase = Literal["context", "generation"]
Precision = Literal["nvfp4", "fp8", "bf16"]


class ManifestError(ValueError):
    """An engine folder is missing its manifest or the manifest is malformed."""


class EnginePairError(ValueError):
    """A context engine and a generation engine cannot be paired."""


DEFAULT_BLOCK_SIZE = 32  # tokens per KV-cache block
ITEMSIZE = {"bfloat16": 2, "float16": 2, "float32": 4, "float8_e4m3fn": 1}


@dataclass(frozen=True)
class KVCacheLayout:
    """Shape of the paged KV cache both engines read and write, and all token <-> block arithmetic.

    One block holds `block_size` tokens of keys and values for every layer:
    K and V are each [num_layers, num_blocks, block_size, kv heads, head_dim] in `dtype`.
    `engine.json` records the layout the engines were built for (dtype bfloat16, one rank); a running
    engine's pool has the dtype it runs in, and under tensor parallelism each of its `tp_size` ranks
    holds the KV heads `kv_heads()` of rank `tp_rank` (an equal share, or one head replicated when
    there are fewer heads than ranks).
    """

    num_layers: int
    num_kv_heads: int  # of the model (all ranks together)
    head_dim: int
    dtype: str = "bfloat16"
    block_size: int = DEFAULT_BLOCK_SIZE
    tp_size: int = 1
    tp_rank: int = 0

    def kv_heads(self, tp_rank: int | None = None) -> tuple[int, int]:
        """The KV heads [start, stop) a rank's pool holds (this one's by default)."""
        rank = self.tp_rank if tp_rank is None else tp_rank
        if self.num_kv_heads >= self.tp_size:
            share = self.num_kv_heads // self.tp_size
            return rank * share, (rank + 1) * share
        head = rank // (self.tp_size // self.num_kv_heads)
        return head, head + 1

    @property
    def local_kv_heads(self) -> int:
        start, stop = self.kv_heads()
        return stop - start

    @classmethod
    def from_hf_config(cls, cfg: dict, block_size: int = DEFAULT_BLOCK_SIZE) -> KVCacheLayout:
        """The layout of a Hugging Face `config.json` (a dict)."""
        head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        return cls(num_layers=int(cfg["num_hidden_layers"]),
                   num_kv_heads=int(cfg.get("num_key_value_heads") or cfg["num_attention_heads"]),
                   head_dim=int(head_dim), block_size=block_size)

    def blocks_for(self, num_tokens: int) -> int:
        """Blocks that hold `num_tokens` tokens."""
        return -(-num_tokens // self.block_size)

    def bytes_per_token(self) -> int:
        """Of one rank's pool."""
        return 2 * self.num_layers * self.local_kv_heads * self.head_dim * ITEMSIZE[self.dtype]

    def mismatches(self, other: KVCacheLayout) -> list[str]:
        """Human-readable differences between two layouts that keep KV from moving between them
        (empty when none do). Different tensor-parallel splits do not: heads move rank to rank."""
        return [
            f"{name}: {getattr(self, name)!r} vs {getattr(other, name)!r}"
            for name in self.__dataclass_fields__
            if name not in ("tp_size", "tp_rank") and getattr(self, name) != getattr(other, name)
        ]


@dataclass(frozen=True)
class EngineManifest:
    """Contents of one `engine.json`."""

    phase: Phase
    precision: Precision
    architecture: str
    model_type: str
    checkpoint_format: Literal["hf", "modelopt_hf"]
    kv_cache: KVCacheLayout
    max_seq_len: int
    source_fingerprint: str
    source_path: str
    tools: dict[str, str]
    quantization: dict[str, Any] | None = None
    created: str = ""
    version: int = MANIFEST_VERSION

    def write(self, engine_dir: Path) -> Path:
        path = Path(engine_dir) / MANIFEST_NAME
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, engine_dir: str | Path) -> EngineManifest:
        path = Path(engine_dir) / MANIFEST_NAME
        if not path.is_file():
            raise ManifestError(
                f"{engine_dir} has no {MANIFEST_NAME}: it is not an engine folder written by build.py. "
                f"Build one with `python build.py --model HF_FOLDER --output engines/NAME`."
            )
        try:
            data = json.loads(path.read_text())
            if data.get("version") != MANIFEST_VERSION:
                raise ManifestError(
                    f"{path} has manifest version {data.get('version')!r}; this trtllm_mixquant reads "
                    f"version {MANIFEST_VERSION}. Rebuild the engine with this version of build.py."
                )
            data["kv_cache"] = KVCacheLayout(**data["kv_cache"])
            return cls(**data)
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ManifestError(f"{path} is malformed ({err}). Rebuild the engine with build.py.") from err


def check_engine_pair(context: EngineManifest, generation: EngineManifest) -> None:
    """Raise `EnginePairError` unless `context` can prefill for `generation` to decode."""
    if context.phase != "context" or generation.phase != "generation":
        raise EnginePairError(
            f"expected a context engine and a generation engine, got {context.phase!r} and {generation.phase!r}"
        )
    problems = []
    if context.source_fingerprint != generation.source_fingerprint:
        problems.append(
            f"they were built from different weights ({context.source_path} "
            f"[{context.source_fingerprint[:19]}] vs {generation.source_path} [{generation.source_fingerprint[:19]}])"
        )
    if context.architecture != generation.architecture:
        problems.append(f"architectures differ ({context.architecture} vs {generation.architecture})")
    layout = context.kv_cache.mismatches(generation.kv_cache)
    if layout:
        problems.append("their KV-cache layouts differ (" + "; ".join(layout) + ")")
    if problems:
        raise EnginePairError(
            "the context and generation engines cannot share a KV cache: "
            + "; ".join(problems)
            + ". Rebuild both from the same weights with `python build.py --phase both`."
        )
