"""Agentic exact match on held-out synthetic tool-use tasks, at every decision point and per whole task.

Each decision point is the recorded (correct) conversation so far; the model must produce exactly
the expected tool call or final answer. A whole task counts only when every one of its decision
points is right. Tasks come from `trtllm_mixquant.agent_tasks` with seeds the shipped model was
never trained on (split "eval"); the `chain` and `order` families hang on long exact output built
on earlier steps (every station visited, every order line copied), `size` stations or lines long.

A task's decision points run one after another and its modes quantized, mixquant, bf16 in that
order, so the prefix cache serves each prompt's shared part once per precision (mixquant reuses
the quantized blocks of every full prompt block): a 4K-token task costs about two prefills, not one
per decision point and mode.
"""

from __future__ import annotations

from trtllm_mixquant.agent_tasks import AgentTask, generate_tasks
from trtllm_mixquant.engine.sampling import SamplingParams

EVAL_SPLIT = "eval"
MODE_ORDER = ("quantized", "mixquant", "bf16")  # cache-friendly: mixquant reuses quantized blocks


def held_out_tasks(tokenizer, budgets: list[int], count: int, seed: int,
                   families: tuple[str, ...] | None = None) -> list[AgentTask]:
    """`count` tasks per token budget, padded with distractors up to the budget (by `tokenizer`)."""
    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    return [t for b in budgets for t in generate_tasks(EVAL_SPLIT, seed, count, b, count_tokens, families)]


def agentic_accuracy(llm, tasks: list[AgentTask], modes: list[str], max_tokens: int = 320) -> list[dict]:
    """Records per (decision point, mode) {"length", "mode", "task", "family", "size", "kind", "correct"} and
    per (task, mode) {..., "task_correct", "output_tokens"}."""
    records = []
    for task in tasks:
        for mode in sorted(modes, key=lambda m: MODE_ORDER.index(m)):
            base = {"length": task.budget, "mode": mode, "task": task.seed, "family": task.family, "size": task.size}
            right, output_tokens = [], 0
            for dp in task.decision_points:
                prompt = llm.tokens(llm.tokenizer.apply_chat_template(dp.messages, tools=task.tools,
                                                                      add_generation_prompt=True, tokenize=False))
                room = llm.rules.max_seq_len - len(prompt)  # a reply cut here is wrong anyway
                out = llm.generate(prompt, SamplingParams(max_tokens=min(max_tokens, room)), mode=mode)[0]
                reply = llm.tokenizer.decode(out.content_ids, skip_special_tokens=False)
                right.append(dp.is_correct(reply))
                output_tokens += len(llm.tokens(dp.target_text)) + 1  # the reply and its end token
                records.append({**base, "kind": dp.kind, "correct": float(right[-1])})
            records.append({**base, "task_correct": float(all(right)), "output_tokens": output_tokens})
    return records
