"""The toy world behind the shipped model's tools (`lookup`, `calculator`, `search`).

Facts are a function of the key or project name alone (seeded by it), so the same question always
gets the same answer, in chat as in the demo; pages hold the wanted row or passage among
distractors, as in the model's training data. A recorded task's own tool results come first, so
the demo replays held-out tasks exactly.
"""

from __future__ import annotations

import json
import random
import re

from trtllm_mixquant.agent_tasks import AgentTask, calculate
from trtllm_mixquant.agent_tasks.world import TABLES, format_passage, make_project, random_codename

PAGE_ROWS = 24  # rows on a lookup page
PASSAGES = 6  # passages a search returns


class ToyWorld:
    def __init__(self):
        self.recorded: dict[tuple[str, str], str] = {}  # (tool, canonical arguments) -> result

    def record(self, task: AgentTask) -> None:
        """Answer the calls of `task` with its own recorded results."""
        calls = {}
        for message in task.messages:
            for call in message.get("tool_calls") or []:
                calls[call["id"]] = (call["function"]["name"], _canonical(json.loads(call["function"]["arguments"])))
            if message["role"] == "tool":
                self.recorded[calls[message["tool_call_id"]]] = message["content"]

    def call(self, name: str, arguments: dict) -> str:
        recorded = self.recorded.get((name, _canonical(arguments)))
        if recorded is not None:
            return recorded
        try:
            if name == "lookup":
                return self.lookup(str(arguments["table"]), str(arguments["key"]))
            if name == "calculator":
                return calculate(str(arguments["expression"]))
            if name == "search":
                return self.search(str(arguments["query"]))
            if name == "order":
                lines = arguments["lines"]
                number = random.Random(f"order:{_canonical(arguments)}").randrange(10 ** 5)
                return f"Order ORD-{number:05d} accepted with {len(lines)} lines."
        except (KeyError, TypeError, ValueError, SyntaxError, ZeroDivisionError) as e:
            return f"error: {e}"
        return f"error: there is no tool named {name!r}"

    def row(self, table: str, key: str) -> dict[str, str]:
        return TABLES[table].make_row(random.Random(f"{table}:{key}"), key)

    def lookup(self, table_name: str, key: str) -> str:
        table = TABLES.get(table_name)
        if table is None:
            return f"error: no table {table_name!r} (tables: {', '.join(sorted(TABLES))})"
        if not re.fullmatch(re.escape(table.key_prefix) + r"\d{%d}" % table.key_digits, key):
            return f"error: {key!r} is not a {table_name} key (like {table.random_key(random.Random(0))})"
        rng = random.Random(f"page:{table_name}:{key}")
        keys = {key} | {table.random_key(rng) for _ in range(PAGE_ROWS - 1)}
        rows = [table.format_row(self.row(table_name, k)) for k in sorted(keys)]
        return "\n".join([f"{len(rows)} rows from the {table_name} page holding {key}:", *rows])

    def project(self, name: str) -> dict[str, str]:
        return make_project(random.Random(f"project:{name}"), name)

    def search(self, query: str) -> str:
        named = re.search(r"project ([\w-]+)", query)
        rng = random.Random(f"search:{query}")
        names = {random_codename(rng) for _ in range(PASSAGES)}
        if named:
            names = {named.group(1)} | set(list(names)[:PASSAGES - 1])
        passages = [format_passage(rng, self.project(n)) for n in sorted(names)]
        return "\n".join([f'{len(passages)} passages match "{query}":',
                          *(f"[{i}] {p}" for i, p in enumerate(passages, 1))])

    def examples(self) -> list[str]:
        """Questions of the shapes the model was trained on, about this world."""
        key = TABLES["inventory"].random_key(random.Random("example"))
        return [f"What is the unit price of {key} in the inventory table?",
                f"How much do 7 units of {key} from the inventory table cost in total?",
                "According to the project report, who led project " + random_codename(random.Random("example")) + "?"]


def _canonical(arguments: dict) -> str:
    return json.dumps(arguments, sort_keys=True)
