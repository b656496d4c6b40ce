"""Token streams for training: encoded Python files and agent transcripts, packed into fixed windows.

Every token carries a loss class (`LossClass`) that the trainer turns into a loss weight, so assistant
turns can count more than the long tool results they copy from.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
from dataclasses import dataclass
from enum import IntEnum
from functools import partial

import numpy as np
from tokenizers import Tokenizer

from trtllm_mixquant.agent_tasks import AgentTask, generate_task, render_parts


class LossClass(IntEnum):
    IGNORED = 0  # padding
    CONTEXT = 1  # agent transcript text the assistant did not write
    CODE = 2  # Python source
    ASSISTANT = 3  # assistant replies, `<|im_end|>` included


@dataclass(frozen=True)
class Document:
    """One encoded document: token ids [n] and their loss classes [n]."""

    ids: np.ndarray
    classes: np.ndarray


@dataclass(frozen=True)
class PackedData:
    """Training windows: token ids [N, seq_len + 1] (int32) and loss classes [N, seq_len + 1] (uint8)."""

    ids: np.ndarray
    classes: np.ndarray
    transcripts: int  # transcripts packed (those longer than a window are dropped)

    def count(self, loss_class: LossClass) -> int:
        return int((self.classes == loss_class).sum())


Parts = list[tuple[str, LossClass]]  # a document before encoding: text pieces and their loss class
_worker_tokenizer: Tokenizer | None = None


def render_for_training(task: AgentTask) -> Parts:
    """The transcript as pieces: ASSISTANT for what the assistant wrote, CONTEXT for the rest.

    Pieces meet at special tokens or newlines, where the pre-tokenizer splits anyway, so encoding them
    one by one gives the tokens of the whole text.
    """
    return [(text, LossClass.ASSISTANT if mine else LossClass.CONTEXT)
            for text, mine in render_parts(task.messages, task.tools)]


def _transcript(index: int, seed: int, budgets: tuple[int, int], chars_per_token: float) -> Parts:
    lo, hi = budgets
    budget = lo + round((hi - lo) * math.sqrt(random.Random(f"budget:{seed}:{index}").random()))  # density ~ length
    task = generate_task(f"train:{seed}:{index}", budget, lambda text: int(len(text) / chars_per_token) + 1)
    return render_for_training(task)


def generate_transcripts(seed: int, count: int, budgets: tuple[int, int], chars_per_token: float,
                         workers: int) -> list[Parts]:
    """`count` training transcripts (seeds "train:{seed}:{i}"; token budgets in `budgets`, long ones likelier).

    Budgets are counted as characters / `chars_per_token`, as the tokenizer does not exist yet.
    """
    make = partial(_transcript, seed=seed, budgets=budgets, chars_per_token=chars_per_token)
    if workers <= 1:
        return [make(i) for i in range(count)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.map(make, range(count), chunksize=256)


def _init_worker(tokenizer_json: str) -> None:
    global _worker_tokenizer
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per worker process
    _worker_tokenizer = Tokenizer.from_str(tokenizer_json)


def _encode_chunk(docs: list[Parts], eot_id: int, tokenizer: Tokenizer | None = None) -> list[Document]:
    tokenizer = tokenizer or _worker_tokenizer
    assert tokenizer is not None
    encodings = iter(tokenizer.encode_batch_fast([text for parts in docs for text, _ in parts]))
    out = []
    for parts in docs:
        pieces = [(np.asarray(next(encodings).ids, dtype=np.int32), cls) for _, cls in parts]
        ids = np.concatenate([p for p, _ in pieces] + [np.array([eot_id], np.int32)])
        classes = np.concatenate([np.full(len(p), cls, np.uint8) for p, cls in pieces]
                                 + [np.array([pieces[-1][1]], np.uint8)])
        out.append(Document(ids, classes))
    return out


def encode_documents(tokenizer: Tokenizer, docs: list[Parts], eot_id: int, workers: int,
                     chunk: int = 256) -> list[Document]:
    """Encode documents in `workers` processes; each ends with `<|endoftext|>` (in its last piece's class)."""
    chunks = [docs[i:i + chunk] for i in range(0, len(docs), chunk)]
    if workers <= 1:
        return [d for c in chunks for d in _encode_chunk(c, eot_id, tokenizer)]
    encode = partial(_encode_chunk, eot_id=eot_id)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(tokenizer.to_str(),)) as pool:
        return [d for c in pool.map(encode, chunks) for d in c]


def pack(code: np.ndarray, transcripts: list[Document], seq_len: int, seed: int) -> PackedData:
    """Windows of seq_len + 1 tokens.

    Transcripts are never cut: they are packed whole, in a seeded order, and the space left in their
    windows is filled from the code stream; the rest of the code stream is cut into windows of its own.
    Transcripts longer than a window are dropped.
    """
    width = seq_len + 1
    order = [d for d in transcripts if len(d.ids) <= width]
    random.Random(seed).shuffle(order)
    ids: list[np.ndarray] = []
    classes: list[np.ndarray] = []
    pos = 0

    def close(window: list[Document], used: int) -> None:
        nonlocal pos
        fill = code[pos:pos + width - used]
        pos += len(fill)
        pad = width - used - len(fill)
        ids.append(np.concatenate([*(d.ids for d in window), fill, np.zeros(pad, np.int32)])[None])
        classes.append(np.concatenate([*(d.classes for d in window), np.full(len(fill), LossClass.CODE, np.uint8),
                                       np.full(pad, LossClass.IGNORED, np.uint8)])[None])

    window: list[Document] = []
    used = 0
    for doc in order:
        if used + len(doc.ids) > width:
            close(window, used)
            window, used = [], 0
        window.append(doc)
        used += len(doc.ids)
    if window:
        close(window, used)
    n = (len(code) - pos) // width
    ids.append(code[pos:pos + n * width].reshape(n, width))
    classes.append(np.full((n, width), LossClass.CODE, np.uint8))
    return PackedData(np.vstack(ids), np.vstack(classes), len(order))
