"""Files shipped inside the package: the small trained model a newcomer's first command runs on.

`DEFAULT_MODEL_DIR` is a Hugging Face folder (config.json, sharded BF16 safetensors, tokenizer with a Qwen3
chat template, README.md model card) trained by `python -m trtllm_mixquant.training.recipe`.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).parent / "tiny-agent"
