"""Write the trained model as a standard Hugging Face folder: sharded BF16 safetensors, tokenizer, card."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import PreTrainedModel

from trtllm_mixquant.training.tokenizer import save_tokenizer

MAX_SHARD_SIZE = "14MB"  # every file stays under 15 MiB


def export_checkpoint(model: PreTrainedModel, tokenizer: Tokenizer, out_dir: Path, card: str) -> list[Path]:
    """Save a BF16 `model` with the tokenizer files and README.md; returns the files written."""
    if model.dtype != torch.bfloat16:
        raise ValueError(f"export a BF16 model, not {model.dtype}")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, max_shard_size=MAX_SHARD_SIZE)
    save_tokenizer(tokenizer, out_dir, model.config.max_position_embeddings)
    (out_dir / "README.md").write_text(card)
    files = sorted(p for p in out_dir.iterdir() if p.is_file())
    for path in files:
        path.chmod(0o644)  # safetensors are written private; package data must be world-readable
    return files
