"""The tokenizer and end-of-sequence ids an engine folder carries."""

from __future__ import annotations

from pathlib import Path


def load_tokenizer_and_eos(folder: str | Path):
    """(tokenizer, EOS ids): the tokenizer's EOS and generation_config.json's `eos_token_id`s."""
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(folder)
    eos_ids = {tokenizer.eos_token_id}
    try:
        eos = GenerationConfig.from_pretrained(folder).eos_token_id
        eos_ids |= set(eos if isinstance(eos, list) else [eos])
    except OSError:
        pass
    eos_ids.discard(None)
    return tokenizer, eos_ids
