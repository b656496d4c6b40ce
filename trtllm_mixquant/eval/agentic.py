"""Agentic exact-match: held-out synthetic tool-use tasks, scored at every decision point.

Each decision point is the recorded (correct) conversation so far; the model must produce exactly
the expected tool call or final answer. Tasks come from `trtllm_mixquant.agent_tasks` with seeds
the shipped model was never trained on (split "eval").
"""

from __future__ import annotations

from trtllm_mixquant.agent_tasks import AgentTask, generate_tasks
from trtllm_mixquant.engine.sampling import SamplingParams

EVAL_SPLIT = "eval"


def held_out_tasks(tokenizer, budgets: list[int], count: int, seed: int) -> list[AgentTask]:
    """`count` tasks per token budget, padded with distractors up to the budget (by `tokenizer`)."""
    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    return [t for b in budgets for t in generate_tasks(EVAL_SPLIT, seed, count, b, count_tokens)]


def agentic_accuracy(llm, tasks: list[AgentTask], modes: list[str], max_tokens: int = 96) -> list[dict]:
    """One record per (decision point, mode): {"length", "mode", "task", "kind", "correct"}."""
    points = [(task, dp) for task in tasks for dp in task.decision_points]
    prompts = [llm.tokens(llm.tokenizer.apply_chat_template(dp.messages, tools=task.tools, add_generation_prompt=True,
                                                            tokenize=False)) for task, dp in points]
    params = SamplingParams(max_tokens=max_tokens)
    records = []
    for mode in modes:
        for (task, dp), out in zip(points, llm.generate(prompts, params, mode=mode)):
            reply = llm.tokenizer.decode(out.content_ids, skip_special_tokens=False)
            records.append({"length": task.budget, "mode": mode, "task": task.seed, "kind": dp.kind,
                            "correct": float(dp.is_correct(reply))})
    return records
