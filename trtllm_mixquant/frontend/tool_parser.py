"""Split an assistant reply, fed as streamed text, into content, reasoning and tool calls.

Qwen3/Hermes style: `<think>...</think>` is reasoning, `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`
is a call. A call is emitted whole once its closing tag arrives (or at the end of the reply); a block
that does not hold such a JSON object is returned as content, tags included. Whitespace next to a tag
is dropped (the newlines Qwen3 writes around its blocks); text without tags comes back unchanged.
Feeding the reply in any pieces gives the same result as feeding it at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from trtllm_mixquant.frontend.text_match import partial_match_len

THINK, END_THINK, CALL, END_CALL = "<think>", "</think>", "<tool_call>", "</tool_call>"
NEXT_STATE = {THINK: "reasoning", END_THINK: "content", CALL: "call"}


@dataclass
class ToolCall:
    name: str
    arguments: str  # JSON text, as OpenAI returns it


@dataclass
class ReplyDelta:
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)

    def __iadd__(self, other: ReplyDelta) -> ReplyDelta:
        self.content += other.content
        self.reasoning += other.reasoning
        self.tool_calls += other.tool_calls
        return self

    def __bool__(self) -> bool:
        return bool(self.content or self.reasoning or self.tool_calls)


def parse_call(body: str) -> ToolCall | None:
    """A `<tool_call>` body as a call, or None if it is not a JSON object with a string name."""
    try:
        obj = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    return ToolCall(obj["name"], args if isinstance(args, str) else json.dumps(args, ensure_ascii=False))


class ReplyParser:
    """Incremental parser; `parse_tools=False` leaves `<tool_call>` blocks in the content.

    in_reasoning: the prompt ended inside `<think>` (templates that open it for the model).
    """

    def __init__(self, parse_tools: bool, in_reasoning: bool = False):
        self.opening = (THINK, CALL) if parse_tools else (THINK,)
        self.state = "reasoning" if in_reasoning else "content"
        self.buf = ""  # text not decided yet
        self.pending_ws = ""  # trailing whitespace, dropped if a tag follows
        self.strip_leading = in_reasoning  # right after a tag: drop leading whitespace

    def feed(self, text: str) -> ReplyDelta:
        out = ReplyDelta()
        self.buf += text
        while self._step(out):
            pass
        return out

    def finish(self) -> ReplyDelta:
        """The end of the reply: flush held text; an unterminated call is parsed as it is."""
        out = ReplyDelta()
        if self.state == "call":
            self._end_call(self.buf, out, closed=False)
        else:
            self._text(self.buf, out)
        self._emit(self.pending_ws, out)
        self.buf = self.pending_ws = ""
        return out

    def _step(self, out: ReplyDelta) -> bool:
        """Consume what `buf` decides; True when a tag was consumed (there may be more to do)."""
        if self.state == "call":
            end = self.buf.find(END_CALL)
            if end < 0:
                return False
            self._end_call(self.buf[:end], out, closed=True)
            self.buf = self.buf[end + len(END_CALL):]
            return True
        tags = self.opening if self.state == "content" else (END_THINK,)
        found = [(i, tag) for tag in tags if (i := self.buf.find(tag)) >= 0]
        if not found:
            keep = partial_match_len(self.buf, tags)
            self._text(self.buf[:len(self.buf) - keep], out)
            self.buf = self.buf[len(self.buf) - keep:]
            return False
        i, tag = min(found)
        self._text(self.buf[:i], out)
        self.buf = self.buf[i + len(tag):]
        self.pending_ws, self.state, self.strip_leading = "", NEXT_STATE[tag], True
        return True

    def _end_call(self, body: str, out: ReplyDelta, closed: bool) -> None:
        self.state, self.strip_leading = "content", True
        call = parse_call(body.strip())
        if call is not None:
            out.tool_calls.append(call)
        else:
            self._emit(CALL + body + (END_CALL if closed else ""), out)

    def _text(self, text: str, out: ReplyDelta) -> None:
        """Text of the current state, with whitespace next to tags dropped."""
        if self.strip_leading:
            text = text.lstrip()
            self.strip_leading = not text
        body = text.rstrip()
        if body:
            self._emit(self.pending_ws + body, out)
            self.pending_ws = ""
        self.pending_ws += text[len(body):]

    def _emit(self, text: str, out: ReplyDelta) -> None:
        if self.state == "reasoning":
            out.reasoning += text
        else:
            out.content += text
