"""Model hyper-parameters read from a Hugging Face `config.json`."""

from __future__ import annotations

from dataclasses import dataclass

# model_type -> (q/k RMSNorm per head, q/k/v projections carry a bias)
FAMILY_TRAITS = {"qwen3": (True, False), "qwen2": (False, True), "llama": (False, False)}


@dataclass(frozen=True)
class ModelConfig:
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: dict | None
    max_position_embeddings: int
    tie_word_embeddings: bool
    qk_norm: bool
    qkv_bias: bool

    @classmethod
    def from_hf(cls, cfg: dict) -> ModelConfig:
        model_type = cfg["model_type"]
        if model_type not in FAMILY_TRAITS:
            raise ValueError(f"model_type {model_type!r} is not supported; supported: {', '.join(FAMILY_TRAITS)}")
        qk_norm, qkv_bias = FAMILY_TRAITS[model_type]
        rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
        rope_theta = cfg.get("rope_theta", rope.get("rope_theta", 10000.0))
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        return cls(
            model_type=model_type,
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            intermediate_size=cfg["intermediate_size"],
            num_layers=cfg["num_hidden_layers"],
            num_heads=cfg["num_attention_heads"],
            num_kv_heads=cfg.get("num_key_value_heads") or cfg["num_attention_heads"],
            head_dim=cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"],
            rms_norm_eps=cfg.get("rms_norm_eps", 1e-6),
            rope_theta=float(rope_theta),
            rope_scaling=rope if rope_type not in ("default", None) else None,
            max_position_embeddings=cfg.get("max_position_embeddings", 4096),
            tie_word_embeddings=cfg.get("tie_word_embeddings", False),
            qk_norm=qk_norm,
            qkv_bias=qkv_bias or bool(cfg.get("attention_bias", False)),
        )
