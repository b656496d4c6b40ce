"""Deterministic synthetic agent tasks whose tool results are padded with distractors to a token budget.

Every task comes from `random.Random(seed)` alone. Families:
  lookup:  one `lookup`, answer a field of the row.
  compute: one or two `lookup`s, then `calculator` on the values found, answer the result.
  search:  one `search` over the project report, answer a fact from the right passage.
Long results hold the needed row or passage at a random place among near-miss and unrelated ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from trtllm_mixquant.agent_tasks.chat_format import Message, render_chat, to_json
from trtllm_mixquant.agent_tasks.task import AgentTask
from trtllm_mixquant.agent_tasks.tools import SYSTEM_PROMPT, TOOLS, calculate
from trtllm_mixquant.agent_tasks.world import (
    PROJECT_FIELDS, TABLES, Table, format_mention, format_passage, make_project, random_codename,
)

FAMILIES = ("lookup", "compute", "search", "chain", "order")
LONG_FAMILIES = ("chain", "order")  # whole-task success hangs on long exact output built on earlier steps
CHAIN_HOPS = (2, 6)  # stations a chain visits
ORDER_LINES = (2, 6)  # lines of an order
TokenCounter = Callable[[str], int]

LOOKUP_QUESTIONS = (
    "What is the {label} of {key} in the {table} table?",
    "Look up {key} in the {table} table and tell me its {label}.",
    "I need the {label} for {table} entry {key}.",
)
SEARCH_QUESTIONS = {
    "leader": "who led project {name}?",
    "year": "in what year did project {name} start?",
    "budget": "what was the budget of project {name}?",
    "site": "where was project {name} based?",
}
SEARCH_ANSWERS = {
    "leader": "Project {name} was led by {leader}.",
    "year": "Project {name} started in {year}.",
    "budget": "The budget of project {name} was {budget} credits.",
    "site": "Project {name} was based in {site}.",
}


def approx_token_count(text: str) -> int:
    """A tokenizer-free estimate (about 2.5 characters a token for our byte-level BPE on this text)."""
    return len(text) * 2 // 5 + 1


@dataclass(frozen=True)
class _Step:
    """One tool call and how to write its result from lines (the needed ones plus distractors)."""

    name: str
    arguments: dict
    targets: tuple[str, ...]
    distractor: Callable[[], str] | None  # None: a short result, never padded
    header: str = ""

    def result(self, lines: list[str]) -> str:
        if self.name == "search":
            lines = [f"[{i}] {line}" for i, line in enumerate(lines, 1)]
        return "\n".join([self.header.format(n=len(lines)), *lines] if self.header else lines)


def _lookup_step(rng: random.Random, table: Table, row: dict[str, str], avoid: set[str]) -> _Step:
    key = row[table.key_field]

    def distractor() -> str:
        other = table.near_key(rng, key) if rng.random() < 0.08 else table.random_key(rng)
        while other in avoid:
            other = table.random_key(rng)
        return table.format_row(table.make_row(rng, other))

    return _Step("lookup", {"table": table.name, "key": key}, (table.format_row(row),), distractor,
                 f"{{n}} rows from the {table.name} page holding {key}:")


def _calculator_step(expression: str) -> _Step:
    return _Step("calculator", {"expression": expression}, (calculate(expression),), None)


def _plan_lookup(rng: random.Random) -> tuple[str, list[_Step], str]:
    table = TABLES[rng.choice(sorted(TABLES))]
    field = rng.choice(sorted(table.makers))
    key = table.random_key(rng)
    row = table.make_row(rng, key)
    label = table.labels[field]
    question = rng.choice(LOOKUP_QUESTIONS).format(label=label, key=key, table=table.name)
    return question, [_lookup_step(rng, table, row, {key})], f"The {label} of {key} is {row[field]}."


def _plan_compute(rng: random.Random) -> tuple[str, list[_Step], str]:
    op = rng.choice(("cost", "sum", "difference"))
    if op == "cost":
        table = TABLES["inventory"]
        key, units = table.random_key(rng), rng.randrange(2, 25)
        row = table.make_row(rng, key)
        expression = f"{row['price']} * {units}"
        question = f"How much do {units} units of {key} from the inventory table cost in total?"
        steps = [_lookup_step(rng, table, row, {key}), _calculator_step(expression)]
        return question, steps, f"{units} units of {key} cost {calculate(expression)}."
    table = TABLES[rng.choice(sorted(TABLES))]
    field = rng.choice(table.numeric)
    label = table.labels[field]
    first = table.random_key(rng)
    second = table.random_key(rng)
    while second == first:
        second = table.random_key(rng)
    rows = [table.make_row(rng, first), table.make_row(rng, second)]
    sign = "+" if op == "sum" else "-"
    expression = f"{rows[0][field]} {sign} {rows[1][field]}"
    steps = [*(_lookup_step(rng, table, row, {first, second}) for row in rows), _calculator_step(expression)]
    result = calculate(expression)
    if op == "sum":
        question = f"What is the combined {label} of {first} and {second} in the {table.name} table?"
        return question, steps, f"The combined {label} of {first} and {second} is {result}."
    question = f"In the {table.name} table, what is the {label} of {first} minus the {label} of {second}?"
    return question, steps, f"The {label} of {first} minus that of {second} is {result}."


def _plan_search(rng: random.Random) -> tuple[str, list[_Step], str]:
    name = random_codename(rng)
    project = make_project(rng, name)
    field = rng.choice(sorted(PROJECT_FIELDS))

    def distractor() -> str:
        other = random_codename(rng)
        while other == name:
            other = random_codename(rng)
        if rng.random() < 0.1:
            return format_mention(rng, other, name)
        return format_passage(rng, make_project(rng, other))

    query = f"project {name} {field}"
    step = _Step("search", {"query": query}, (format_passage(rng, project),), distractor,
                 f'{{n}} passages match "{query}":')
    question = "According to the project report, " + SEARCH_QUESTIONS[field].format(name=name)
    return question, [step], SEARCH_ANSWERS[field].format(**project)


def _plan_chain(rng: random.Random) -> tuple[str, list[_Step], str, int]:
    """Follow `next` pointers through the routes table; the answer lists every station visited."""
    table = TABLES["routes"]
    hops = rng.randrange(CHAIN_HOPS[0], CHAIN_HOPS[1] + 1)
    keys: list[str] = []
    while len(keys) < hops:
        key = table.random_key(rng)
        if key not in keys:
            keys.append(key)
    rows = [table.make_row(rng, key) for key in keys]
    for row, following in zip(rows, keys[1:]):
        row["next"] = following
    times = "once" if hops == 2 else f"{hops - 1} times"
    question = (f"Start at station {keys[0]} in the routes table and follow the next station {times}. "
                "List every station on the way with its name.")
    steps = [_lookup_step(rng, table, row, set(keys)) for row in rows]
    answer = "The route is " + ", ".join(f"{row['station']} {row['name']}" for row in rows) + "."
    return question, steps, answer, hops


def _plan_order(rng: random.Random) -> tuple[str, list[_Step], str, int]:
    """Look up several SKUs, then place one order whose lines copy every unit price found."""
    table = TABLES["inventory"]
    count = rng.randrange(ORDER_LINES[0], ORDER_LINES[1] + 1)
    keys: list[str] = []
    while len(keys) < count:
        key = table.random_key(rng)
        if key not in keys:
            keys.append(key)
    rows = [table.make_row(rng, key) for key in keys]
    units = [rng.randrange(1, 40) for _ in keys]
    wanted = ", ".join(f"{u} units of {k}" for u, k in zip(units, keys))
    question = f"Order {wanted} at their unit prices in the inventory table."
    lines = [{"sku": row["sku"], "units": u, "unit_price": row["price"]} for row, u in zip(rows, units)]
    order_id = f"ORD-{rng.randrange(10 ** 5):05d}"
    steps = [*(_lookup_step(rng, table, row, set(keys)) for row in rows),
             _Step("order", {"lines": lines}, (f"Order {order_id} accepted with {count} lines.",), None)]
    answer = f"Order {order_id} is placed: " + ", ".join(f"{u} units of {k} at {row['price']}"
                                                         for u, k, row in zip(units, keys, rows)) + "."
    return question, steps, answer, count


_PLANNERS = {"lookup": _plan_lookup, "compute": _plan_compute, "search": _plan_search, "chain": _plan_chain,
             "order": _plan_order}


def _conversation(question: str, steps: list[_Step], results: list[str], answer: str) -> list[Message]:
    messages: list[Message] = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]
    for i, (step, result) in enumerate(zip(steps, results)):
        call = {"id": f"call_{i}", "type": "function",
                "function": {"name": step.name, "arguments": to_json(step.arguments)}}
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"call_{i}", "name": step.name, "content": result})
    messages.append({"role": "assistant", "content": answer})
    return messages


def generate_task(seed: str, budget: int, count_tokens: TokenCounter = approx_token_count,
                  family: str | None = None) -> AgentTask:
    """The task for `seed`, its rendered conversation at most `budget` tokens by `count_tokens`.

    A budget smaller than the task without distractors gives that bare task, over budget.
    """
    rng = random.Random(seed)
    family = family or rng.choice(FAMILIES)
    question, steps, answer, *size = _PLANNERS[family](rng)
    bare = _conversation(question, steps, [s.result(list(s.targets)) for s in steps], answer)
    spare = budget - count_tokens(render_chat(bare, TOOLS))
    weights = {i: rng.uniform(0.5, 1.0) for i, s in enumerate(steps) if s.distractor}
    lines: list[list[tuple[str, bool]]] = []
    for i, step in enumerate(steps):
        padding: list[tuple[str, bool]] = []
        share = spare * weights[i] / sum(weights.values()) if i in weights else 0
        while step.distractor and share > 0:
            line = step.distractor()
            share -= count_tokens(line + "\n")
            if share >= 0:
                padding.append((line, False))
        for target in step.targets:
            padding.insert(rng.randrange(len(padding) + 1), (target, True))
        lines.append(padding)

    def build() -> list[Message]:
        results = [s.result([text for text, _ in ls]) for s, ls in zip(steps, lines)]
        return _conversation(question, steps, results, answer)

    messages = build()
    while count_tokens(render_chat(messages, TOOLS)) > budget:
        padded = [ls for s, ls in zip(steps, lines) if len(ls) > len(s.targets)]
        if not padded:
            break
        longest = max(padded, key=len)
        longest.pop(max(j for j, (_, is_target) in enumerate(longest) if not is_target))
        messages = build()
    return AgentTask(seed, family, budget, TOOLS, messages, size[0] if size else 1)


def generate_tasks(split: str, seed: int, count: int, budget: int,
                   count_tokens: TokenCounter = approx_token_count, families: tuple[str, ...] | None = None) -> list[AgentTask]:
    """`count` tasks seeded "{split}:{seed}:{i}"; different splits or seeds give disjoint task streams.
    families: the families to draw from in turn (default: each task's seed picks one of all)."""
    return [generate_task(f"{split}:{seed}:{i}", budget, count_tokens, families[i % len(families)] if families else None)
            for i in range(count)]
