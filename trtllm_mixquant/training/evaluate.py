"""Held-out evaluation: bits per byte against gzip -9 on the same text, and agent-task accuracy.

Bits per byte = total NLL in bits over the text's tokens / UTF-8 bytes of the text. The text is cut into
non-overlapping windows of `seq_len` tokens, each led by `<|endoftext|>`, so every token is predicted once.
"""

from __future__ import annotations

import gzip
import math
from collections import defaultdict

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import PreTrainedModel

from trtllm_mixquant.agent_tasks import AgentTask, DecisionPoint, render_chat

IM_END = "<|im_end|>"
EOT = "<|endoftext|>"


def gzip_bits_per_byte(text: str) -> float:
    data = text.encode("utf-8")
    return 8 * len(gzip.compress(data, compresslevel=9, mtime=0)) / len(data)


@torch.no_grad()
def model_bits_per_byte(model: PreTrainedModel, tokenizer: Tokenizer, text: str, seq_len: int,
                        batch_size: int = 8) -> float:
    device = next(model.parameters()).device
    ids = torch.tensor(tokenizer.encode(text).ids, dtype=torch.long)
    body = seq_len - 1
    n = math.ceil(len(ids) / body)
    windows = torch.full((n, seq_len), tokenizer.token_to_id(EOT), dtype=torch.long)
    mask = torch.zeros(n, seq_len, dtype=torch.bool)
    for i in range(n):
        chunk = ids[i * body:(i + 1) * body]
        windows[i, 1:1 + len(chunk)] = chunk
        mask[i, 1:1 + len(chunk)] = True
    total_nats = 0.0
    for start in range(0, n, batch_size):
        batch = windows[start:start + batch_size].to(device)
        logits = model(input_ids=batch[:, :-1]).logits.float()  # [b, S - 1, V]
        nll = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten(), reduction="none")
        total_nats += nll[mask[start:start + batch_size, 1:].flatten().to(device)].double().sum().item()
    return total_nats / math.log(2) / len(text.encode("utf-8"))


@torch.no_grad()
def greedy_replies(model: PreTrainedModel, tokenizer: Tokenizer, prompts: list[str], max_new_tokens: int = 96,
                   batch_tokens: int = 65536) -> list[str]:
    """Greedy continuations of chat prompts, cut at `<|im_end|>` (which is not returned).

    Prompts are sorted by length and left-padded into batches of at most `batch_tokens` tokens.
    """
    device = next(model.parameters()).device
    im_end, pad = tokenizer.token_to_id(IM_END), tokenizer.token_to_id(EOT)
    encoded = [enc.ids for enc in tokenizer.encode_batch(prompts)]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    replies: list[str] = [""] * len(prompts)
    start = 0
    while start < len(order):
        size = 1
        while start + size < len(order) and (size + 1) * len(encoded[order[start + size]]) <= batch_tokens:
            size += 1
        batch = order[start:start + size]
        longest = len(encoded[batch[-1]])
        input_ids = torch.full((size, longest), pad, dtype=torch.long)
        attention = torch.zeros(size, longest, dtype=torch.long)
        for row, i in enumerate(batch):
            input_ids[row, longest - len(encoded[i]):] = torch.tensor(encoded[i])
            attention[row, longest - len(encoded[i]):] = 1
        out = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device), do_sample=False,
                             max_new_tokens=max_new_tokens, eos_token_id=im_end, pad_token_id=pad)
        for row, i in enumerate(batch):
            new = out[row, longest:].tolist()
            new = new[:new.index(im_end)] if im_end in new else new
            replies[i] = tokenizer.decode(new, skip_special_tokens=False)
        start += size
    return replies


def agent_accuracy(model: PreTrainedModel, tokenizer: Tokenizer, tasks: list[AgentTask], max_new_tokens: int = 96,
                   batch_tokens: int = 65536, show_failures: int = 0) -> dict[int, dict[str, float]]:
    """Per budget: task count, decision-point accuracy, whole-task accuracy and accuracy per kind.

    Each decision point is scored on its own, after the recorded (correct) conversation prefix.
    The first `show_failures` wrong replies are printed beside the expected ones.
    """
    points: list[tuple[AgentTask, DecisionPoint]] = [(t, dp) for t in tasks for dp in t.decision_points]
    prompts = [render_chat(dp.messages, task.tools, add_generation_prompt=True) for task, dp in points]
    replies = greedy_replies(model, tokenizer, prompts, max_new_tokens, batch_tokens)
    hits: dict[int, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    task_ok: dict[tuple[str, int], bool] = {}
    for (task, dp), reply in zip(points, replies):
        ok = dp.is_correct(reply)
        if not ok and show_failures > 0:
            show_failures -= 1
            print(f"[eval] {task.seed} @{task.budget}: expected {dp.target_text!r}, got {reply!r}", flush=True)
        hits[task.budget]["all"].append(ok)
        hits[task.budget][dp.kind].append(ok)
        key = (task.seed, task.budget)
        task_ok[key] = task_ok.get(key, True) and ok
    report = {}
    for budget, by_kind in sorted(hits.items()):
        keys = [(t.seed, t.budget) for t in tasks if t.budget == budget]
        families = sorted({t.family for t in tasks if t.budget == budget})
        report[budget] = {
            "tasks": len(keys),
            "decision_points": len(by_kind["all"]),
            "accuracy": sum(by_kind["all"]) / len(by_kind["all"]),
            "task_accuracy": sum(task_ok[k] for k in keys) / len(keys),
            **{f"{kind}_accuracy": sum(v) / len(v) for kind, v in by_kind.items() if kind != "all"},
            "family_task_accuracy": {f: sum(task_ok[t.seed, t.budget] for t in tasks if t.budget == budget and
                                            t.family == f) / sum(t.budget == budget and t.family == f for t in tasks)
                                     for f in families},
        }
    return report
