from __future__ import annotations

from trtllm_mixquant.agent_tasks import generate_task, parse_assistant_text, render_chat, render_parts


def test_render_layout():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "search", "arguments": '{"query": "x"}'}}]},
        {"role": "tool", "content": "r1"},
        {"role": "assistant", "content": "done"},
    ]
    text = render_chat(messages, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "search", "arguments": {"query": "x"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\nr1\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\ndone<|im_end|>\n<|im_start|>assistant\n"
    )


def test_assistant_parts_are_the_replies():
    task = generate_task("parts:0", 1500)
    parts = render_parts(task.messages, task.tools)
    assert "".join(t for t, _ in parts) == render_chat(task.messages, task.tools)
    written = [t for t, mine in parts if mine]
    assert written == [dp.target_text + "<|im_end|>" for dp in task.decision_points]


def test_parse_assistant_text():
    assert parse_assistant_text("The answer is 4.") == ("The answer is 4.", [])
    text = '<tool_call>\n{"name": "lookup", "arguments": {"key": "A"}}\n</tool_call>'
    assert parse_assistant_text(text) == ("", [{"name": "lookup", "arguments": {"key": "A"}}])
    assert parse_assistant_text("<tool_call>\n{not json}\n</tool_call>")[1] is None
    assert parse_assistant_text('<tool_call>\n{"name": "x"}\n</tool_call>')[1] is None


def test_decision_points_score_exactly():
    task = generate_task("score:3", 1500, family="lookup")
    call, answer = task.decision_points
    assert call.is_correct(call.target_text)
    assert call.is_correct(call.target_text.replace('", "', '","'))  # same JSON, other spacing
    assert not call.is_correct(call.target_text.replace("lookup", "search"))
    assert not call.is_correct(call.target_text[:-3])
    assert not call.is_correct("Sure. " + call.target_text)
    assert answer.is_correct(answer.target_text) and answer.is_correct(answer.target_text + "\n")
    assert not answer.is_correct(answer.target_text[:-2] + ".")
    assert not answer.is_correct(call.target_text)
