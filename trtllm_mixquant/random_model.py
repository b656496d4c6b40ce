"""Randomly initialised Hugging Face checkpoints with real architecture shapes.

For tests (tiny shapes, seconds on CPU) and speed work (real shapes such as Qwen3-8B, where only
the shapes matter). The tokenizer is byte-level with no merges (256 byte tokens plus the chat
special tokens), so any text round-trips; the model's outputs are meaningless.
"""

from __future__ import annotations

from pathlib import Path

import torch

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TAG_TOKENS = ["<tool_call>", "</tool_call>", "<think>", "</think>"]  # added, not special, as in Qwen3 (kept in text)
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# family -> (transformers config class name, model class name, extra config kwargs)
FAMILIES = {
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 16}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
}
SHAPES = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=2048),
    "qwen3-8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, max_position_embeddings=40960),
}


def byte_tokenizer():
    """A byte-level BPE tokenizer without merges: ids 0..255 are bytes, then the special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(SPECIAL_TOKENS)
    core.add_tokens(TAG_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHAT_TEMPLATE
    )


def random_model(family: str = "qwen3", shape: str = "tiny", seed: int = 0, vocab_size: int = 320,
                 dtype: torch.dtype = torch.bfloat16):
    """A randomly initialised `*ForCausalLM` of `family` with `shape` (see FAMILIES, SHAPES)."""
    import transformers

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    config_cls, model_cls, extra = FAMILIES[family]
    kwargs = {**extra, **SHAPES[shape], "vocab_size": vocab_size, "tie_word_embeddings": False}
    if family != "qwen3":
        kwargs.pop("head_dim", None)
    config = getattr(transformers, config_cls)(**kwargs)
    config.architectures = [model_cls]
    torch.manual_seed(seed)
    return getattr(transformers, model_cls)(config).to(dtype)


def write_random_model(out: str | Path, family: str = "qwen3", shape: str = "tiny", seed: int = 0) -> Path:
    """Write a random checkpoint with a byte-level tokenizer to `out` as a Hugging Face folder."""
    out = Path(out)
    tokenizer = byte_tokenizer()
    vocab_size = -(-len(tokenizer) // 64) * 64  # round up to a multiple of 64
    random_model(family, shape, seed, vocab_size).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
