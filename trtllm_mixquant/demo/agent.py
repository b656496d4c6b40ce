"""An agent loop over any `AsyncEngine`: the model answers a question by calling the toy world's
tools until it writes a final answer. Each model turn reports what its prompt cost: tokens reused
from the prefix cache, prefilled with the quantized weights, prefilled in BF16, and the time per mode.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from trtllm_mixquant.agent_tasks import SYSTEM_PROMPT, TOOLS
from trtllm_mixquant.demo.world import ToyWorld
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.frontend.async_engine import AsyncEngine, GenerateRequest
from trtllm_mixquant.frontend.generation import TextGeneration
from trtllm_mixquant.frontend.tool_parser import ReplyParser

MAX_REPLY_TOKENS = 160  # a tool call or an answer of the shipped model is far shorter


@dataclass
class Turn:
    """One model turn: a tool call (and its result) or the final answer."""

    answer: str | None  # the final answer, or None for a tool call
    call: dict | None  # {"name": ..., "arguments": {...}}
    result: str | None  # the tool's result
    prompt_tokens: int
    cached_tokens: int  # reused from the prefix cache
    quantized_tokens: int  # prefilled now with the quantized weights
    seconds: dict[str, float] = field(default_factory=dict)  # mode -> time for the whole turn

    @property
    def call_text(self) -> str:
        args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in self.call["arguments"].items())
        return f"{self.call['name']}({args})"


def new_conversation() -> list[dict]:
    return [{"role": "system", "content": SYSTEM_PROMPT}]


async def ask(engine: AsyncEngine, messages: list[dict], question: str, world: ToyWorld,
              modes: tuple[str, ...] = ("mixquant",), on_text: Callable[[str], None] | None = None,
              max_calls: int = 4) -> AsyncIterator[Turn]:
    """Add `question` to `messages` and run the agent until it answers (at most `max_calls` tool calls).

    The first mode's reply drives the conversation (its visible text goes to `on_text` as it comes);
    the other modes run the same prompt too, for their times only."""
    messages.append({"role": "user", "content": question})
    for _ in range(max_calls + 1):
        text = engine.codec.tokenizer.apply_chat_template(messages, tools=TOOLS, add_generation_prompt=True,
                                                          tokenize=False)
        ids = engine.codec.encode(text)
        turn, calls, content = None, [], ""
        for mode in modes:
            start = time.perf_counter()
            gen = await TextGeneration.start(engine, GenerateRequest(ids, SamplingParams(max_tokens=MAX_REPLY_TOKENS),
                                                                     mode=mode))
            parser, reply = ReplyParser(parse_tools=True), None
            async for piece in gen.pieces():
                delta = parser.feed(piece.text)
                if turn is None:
                    calls += delta.tool_calls
                    content += delta.content
                    if on_text and delta.content:
                        on_text(delta.content)
            reply = parser.finish()
            if turn is None:
                calls, content = calls + reply.tool_calls, content + reply.content
                cut = gen.stream.admission.quantized_until
                cached = gen.stream.num_cached_prompt
                turn = Turn(None, None, None, len(ids), cached, max(min(cut, len(ids)) - cached, 0))
            turn.seconds[mode] = time.perf_counter() - start
        if not calls:
            turn.answer = content.strip()
            messages.append({"role": "assistant", "content": turn.answer})
            yield turn
            return
        call = calls[0]
        arguments = _arguments(call.arguments)
        turn.call, turn.result = {"name": call.name, "arguments": arguments}, world.call(call.name, arguments)
        call_id = f"call_{len(messages)}"
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}]})
        messages.append({"role": "tool", "tool_call_id": call_id, "name": call.name, "content": turn.result})
        yield turn


def _arguments(text: str) -> dict:
    """A call's JSON arguments; anything else is passed on as no arguments (the tool then says so)."""
    try:
        arguments = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return arguments if isinstance(arguments, dict) else {}
