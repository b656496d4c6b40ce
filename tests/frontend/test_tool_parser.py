"""The reply parser: content, reasoning and tool calls, the same however the text is split."""

from __future__ import annotations

import json
import random

import pytest

from trtllm_mixquant.frontend.tool_parser import ReplyDelta, ReplyParser, ToolCall

WEATHER = '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "°C"}}'
WEATHER_CALL = ToolCall("get_weather", '{"city": "Paris", "unit": "°C"}')
BAD = "<tool_call>\n{not json}\n</tool_call>"
CASES = [
    # (reply, parse_tools, in_reasoning) -> (content, reasoning, calls)
    (("Hello <b>there</b>,\n  a < b and 3<4 \n", True, False), ("Hello <b>there</b>,\n  a < b and 3<4 \n", "", [])),
    (("<think>\nLet me think.\n</think>\n\nThe answer is 4.", True, False), ("The answer is 4.", "Let me think.", [])),
    (("I'll check.\n<tool_call>\n" + WEATHER + "\n</tool_call>\n<tool_call>\n{\"name\": \"now\", \"arguments\": {}}"
      "\n</tool_call>\n", True, False),
     ("I'll check.", "", [WEATHER_CALL, ToolCall("now", "{}")])),
    (("<think>hm</think><tool_call>" + WEATHER + "</tool_call>", True, False),
     ("", "hm", [WEATHER_CALL])),
    ((BAD + " after", True, False), (BAD + "after", "", [])),
    (("<tool_call>" + WEATHER + "</tool_call>", False, False), ("<tool_call>" + WEATHER + "</tool_call>", "", [])),
    (("<tool_call>\n" + WEATHER + "\n", True, False), ("", "", [WEATHER_CALL])),
    (("<tool_call>\n{\"name\": \"get_wea", True, False), ("<tool_call>\n{\"name\": \"get_wea", "", [])),
    (("still thinking\n</think>\nDone <thin", True, True), ("Done <thin", "still thinking", [])),
    (("<think>never closed ", True, False), ("", "never closed ", [])),
]


def parse(pieces: list[str], parse_tools: bool, in_reasoning: bool) -> ReplyDelta:
    parser = ReplyParser(parse_tools, in_reasoning)
    out = ReplyDelta()
    for piece in pieces:
        out += parser.feed(piece)
    out += parser.finish()
    return out


def splits(text: str, seed: int) -> list[list[str]]:
    """The text in one piece, one character at a time, cut at every single point, and at random points."""
    out = [[text], list(text)] + [[text[:i], text[i:]] for i in range(1, len(text))]
    rng = random.Random(seed)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 8))))
        out.append([text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])])
    return out


@pytest.mark.parametrize("case", range(len(CASES)))
def test_reply_parsing_does_not_depend_on_where_the_text_is_split(case):
    (text, parse_tools, in_reasoning), (content, reasoning, calls) = CASES[case]
    for pieces in splits(text, case):
        got = parse(pieces, parse_tools, in_reasoning)
        assert (got.content, got.reasoning, got.tool_calls) == (content, reasoning, calls), pieces


def test_arguments_come_back_as_json_text():
    got = parse(['<tool_call>{"name": "f", "arguments": "{\\"x\\": 1}"}</tool_call>'], True, False)
    assert got.tool_calls == [ToolCall("f", '{"x": 1}')] and json.loads(got.tool_calls[0].arguments) == {"x": 1}
