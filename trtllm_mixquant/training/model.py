"""The model: a small Qwen3ForCausalLM built from a few dimensions."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import Qwen3Config, Qwen3ForCausalLM


@dataclass(frozen=True)
class ModelDims:
    """Sizes of the Qwen3 model; hidden and intermediate sizes should be multiples of 64."""

    hidden_size: int = 512
    intermediate_size: int = 1024
    num_layers: int = 6
    num_heads: int = 8
    num_kv_heads: int = 4
    head_dim: int = 64
    max_position_embeddings: int = 4096
    rope_theta: float = 100_000.0


def qwen3_config(dims: ModelDims, vocab_size: int, eos_token_id: int, pad_token_id: int) -> Qwen3Config:
    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=dims.hidden_size,
        intermediate_size=dims.intermediate_size,
        num_hidden_layers=dims.num_layers,
        num_attention_heads=dims.num_heads,
        num_key_value_heads=dims.num_kv_heads,
        head_dim=dims.head_dim,
        max_position_embeddings=dims.max_position_embeddings,
        rope_theta=dims.rope_theta,
        tie_word_embeddings=True,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        bos_token_id=None,
    )


def build_model(dims: ModelDims, vocab_size: int, eos_token_id: int, pad_token_id: int) -> Qwen3ForCausalLM:
    """A freshly initialised fp32 model (seed torch first for a reproducible init)."""
    model = Qwen3ForCausalLM(qwen3_config(dims, vocab_size, eos_token_id, pad_token_id))
    model.generation_config.eos_token_id = eos_token_id
    model.generation_config.pad_token_id = pad_token_id
    return model
