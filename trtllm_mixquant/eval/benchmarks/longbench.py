"""Reader for LongBench v2 (THUDM/LongBench-v2): long-context multiple choice, with the official
zero-shot prompt and middle truncation of the context to the engine's budget.

Fields: _id, domain, sub_domain, difficulty, length, question, choice_A..choice_D, answer (a
letter), context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtllm_mixquant.eval.benchmarks.core import BenchmarkItem, DatasetError, Message
from trtllm_mixquant.eval.benchmarks.files import pick, read_records

SCHEMA = "LongBench v2 fields (_id, question, choice_A..choice_D, answer: a letter, context)"
# The official 0-shot template (LongBench/prompts/0shot.txt).
TEMPLATE = """Please read the following text and answer the question below.

<text>
{context}
</text>

What is the correct answer to this question: {question}
Choices:
(A) {A}
(B) {B}
(C) {C}
(D) {D}

Format your response as follows: "The correct answer is (insert answer here)"."""
LETTERS = "ABCD"


@dataclass(frozen=True)
class TokenCodec:
    """Text <-> token ids, for counting and cutting the context (a tokenizer without special tokens)."""

    encode: Callable[[str], list[int]]
    decode: Callable[[list[int]], str]

    @classmethod
    def from_hf(cls, tokenizer: Any) -> TokenCodec:
        """Wrap a Hugging Face tokenizer."""
        return cls(lambda text: tokenizer.encode(text, add_special_tokens=False),
                   lambda ids: tokenizer.decode(ids, skip_special_tokens=True))


def truncate_middle(text: str, max_tokens: int, codec: TokenCodec) -> str:
    """Keep the first and last max_tokens/2 tokens of text, as the LongBench scripts do.

    The result re-encodes to at most max_tokens tokens (the cut is retried shorter if a token
    boundary merges differently after decoding).
    """
    ids = codec.encode(text)
    if len(ids) <= max_tokens:
        return text
    budget = max_tokens
    while budget > 0:
        head = budget // 2
        cut = codec.decode(ids[:head] + ids[len(ids) - (budget - head):])
        overflow = len(codec.encode(cut)) - max_tokens
        if overflow <= 0:
            return cut
        budget -= overflow
    return ""


def longbench_messages(record: dict[str, Any], where: str, codec: TokenCodec | None = None,
                       max_prompt_tokens: int | None = None) -> list[Message]:
    """The user turn for one record; the context is cut in the middle so the prompt fits max_prompt_tokens."""
    fields = {letter: pick(record, (f"choice_{letter}",), where) for letter in LETTERS}
    fields["question"] = pick(record, ("question",), where)
    context = str(pick(record, ("context",), where))
    if max_prompt_tokens is not None:
        if codec is None:
            raise ValueError("truncating LongBench v2 contexts to max_prompt_tokens needs a token codec")
        budget = max_prompt_tokens - len(codec.encode(TEMPLATE.format(context="", **fields)))
        if budget <= 0:
            raise ValueError(f"{where}: the question and choices alone exceed {max_prompt_tokens} tokens")
        context = truncate_middle(context, budget, codec)
    return [{"role": "user", "content": TEMPLATE.format(context=context.strip(), **fields)}]


def read_longbench_v2(path: str | Path, codec: TokenCodec | None = None,
                      max_prompt_tokens: int | None = None) -> list[BenchmarkItem]:
    """LongBench v2 items; with max_prompt_tokens (engine context minus generation and chat-template
    room) and a codec, each context is truncated in the middle to fit."""
    items = []
    for i, rec in enumerate(read_records(path, SCHEMA)):
        where = f"{path} record {i} ({SCHEMA})"
        answer = str(pick(rec, ("answer",), where)).strip().upper()
        if answer not in LETTERS:
            raise DatasetError(f"{where}: the answer {answer!r} is not one of {', '.join(LETTERS)}")
        meta = {key: rec[key] for key in ("domain", "sub_domain", "difficulty", "length") if key in rec}
        items.append(BenchmarkItem(str(pick(rec, ("_id", "id"), where, default=f"longbench-{i}")), "choice",
                                   longbench_messages(rec, where, codec, max_prompt_tokens), answer, meta=meta))
    return items
