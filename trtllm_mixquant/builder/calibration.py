"""Calibration text for post-training quantization: a built-in mix, or the user's own file.

The built-in set mixes prose, logs, tables, JSON tool output, multilingual text, chat
conversations (rendered with the model's own chat template) and Python source from the standard
library, so that activation ranges cover what agents send. `--calib-file` replaces it.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch

BUILTIN_FILE = Path(__file__).with_name("calibration_texts.json")
# Standard-library modules whose source is used as calibration code (present in every Python).
STDLIB_MODULES = ("json.decoder", "textwrap", "heapq", "fractions", "string", "shlex")


class CalibrationError(ValueError):
    """The calibration data cannot be read or is empty."""


def builtin_texts(tokenizer) -> list[str]:
    """The built-in calibration texts, with conversations rendered by `tokenizer`'s chat template."""
    data = json.loads(BUILTIN_FILE.read_text())
    texts = list(data["prose"])
    for messages in data["conversations"]:
        texts.append(render_conversation(tokenizer, messages))
    for name in STDLIB_MODULES:
        module = __import__(name, fromlist=["_"])
        texts.append(inspect.getsource(module))
    return texts


def render_conversation(tokenizer, messages: list[dict]) -> str:
    """Render with the tokenizer's chat template, or as plain `role: content` lines without one."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def read_calibration_file(path: str | Path) -> list[str]:
    """Texts from a .txt (paragraphs split on blank lines), .jsonl or .json file.

    JSON records may be strings or objects with a "text" field.
    """
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} does not exist.")
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".txt":
        texts = [block.strip() for block in raw.split("\n\n")]
    elif path.suffix in (".jsonl", ".json"):
        try:
            records = [json.loads(line) for line in raw.splitlines() if line.strip()] if path.suffix == ".jsonl" else json.loads(raw)
        except json.JSONDecodeError as err:
            raise CalibrationError(f"{path} is not valid JSON ({err}).") from err
        texts = [r if isinstance(r, str) else r.get("text", "") for r in records]
    else:
        raise CalibrationError(f"calibration file {path} must end in .txt, .jsonl or .json.")
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise CalibrationError(f"calibration file {path} holds no text.")
    return texts


def calibration_batches(texts: list[str], tokenizer, num_samples: int, seq_len: int) -> list[torch.Tensor]:
    """Token batches for calibration: `num_samples` tensors of shape [1, seq_len].

    The texts are tokenized, joined with the EOS token into one stream, and cut into consecutive
    windows; the stream is repeated when it is shorter than `num_samples * seq_len` tokens.
    """
    if num_samples < 1 or seq_len < 1:
        raise CalibrationError("--calib-samples and the calibration sequence length must be at least 1.")
    separator = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stream: list[int] = []
    for text in texts:
        stream += tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"] + separator
    needed = num_samples * seq_len
    stream = (stream * (needed // len(stream) + 1))[:needed]
    return list(torch.tensor(stream, dtype=torch.long).view(num_samples, 1, seq_len))
