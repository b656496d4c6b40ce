"""The Hugging Face weights an engine is built from: validation, KV layout and fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from trtllm_mixquant.manifest import KVCacheLayout

# Architectures the embedded runtime executes (config.json "architectures"[0] -> model_type).
SUPPORTED_ARCHITECTURES = {
    "Qwen3ForCausalLM": "qwen3",
    "Qwen2ForCausalLM": "qwen2",
    "LlamaForCausalLM": "llama",
}
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)


class SourceModelError(ValueError):
    """The model folder given to build.py cannot be built."""


@dataclass(frozen=True)
class SourceModel:
    """A validated Hugging Face model folder."""

    path: Path
    config: dict
    architecture: str
    weight_files: tuple[Path, ...]

    @property
    def model_type(self) -> str:
        return SUPPORTED_ARCHITECTURES[self.architecture]

    @property
    def max_position_embeddings(self) -> int:
        return int(self.config.get("max_position_embeddings", 4096))

    def kv_layout(self, block_size: int) -> KVCacheLayout:
        return KVCacheLayout.from_hf_config(self.config, block_size)

    def tokenizer_files(self) -> list[Path]:
        return [self.path / name for name in TOKENIZER_FILES if (self.path / name).is_file()]


def open_source_model(path: str | Path) -> SourceModel:
    """Check that `path` is a Hugging Face folder of a supported architecture."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise SourceModelError(
            f"model folder {path} does not exist. Pass --model with a local Hugging Face folder "
            "(config.json, *.safetensors, tokenizer files), or leave --model out to use the shipped model."
        )
    config_file = path / "config.json"
    if not config_file.is_file():
        raise SourceModelError(f"{path} has no config.json: it is not a Hugging Face model folder.")
    config = json.loads(config_file.read_text())
    if "quantization_config" in config:
        method = config["quantization_config"].get("quant_method", "?")
        raise SourceModelError(
            f"{path} is already quantized ({method}); build.py needs the original BF16/FP16/FP32 weights."
        )
    architectures = config.get("architectures") or []
    architecture = architectures[0] if architectures else None
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise SourceModelError(
            f"{path} is a {architecture or 'model without an architectures entry'}; supported architectures are "
            f"{', '.join(SUPPORTED_ARCHITECTURES)}."
        )
    weight_files = tuple(sorted(f for pattern in WEIGHT_PATTERNS for f in path.glob(pattern)))
    if not weight_files:
        raise SourceModelError(f"{path} has no weights (*.safetensors or pytorch_model*.bin).")
    return SourceModel(path=path, config=config, architecture=architecture, weight_files=weight_files)


def fingerprint(source: SourceModel, chunk_bytes: int = 1 << 24) -> str:
    """SHA-256 over config.json and every weight file's bytes, as `sha256:<hex>`."""
    digest = hashlib.sha256()
    digest.update(json.dumps(source.config, sort_keys=True).encode())
    total = sum(f.stat().st_size for f in source.weight_files)
    with tqdm(total=total, unit="B", unit_scale=True, desc="fingerprint weights", leave=False) as bar:
        for weight_file in source.weight_files:
            digest.update(weight_file.name.encode())
            with open(weight_file, "rb") as fh:
                while chunk := fh.read(chunk_bytes):
                    digest.update(chunk)
                    bar.update(len(chunk))
    return "sha256:" + digest.hexdigest()
