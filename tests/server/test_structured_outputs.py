"""Structured outputs, logprobs, n, batched prompts and penalties through the official `openai`
client, on both topologies: the disaggregated server (`server`: context and generation worker
processes) and a colocated one (`colocated`: both engines in the server's process, where the
quantized mode runs too). The tiny engines have random weights, so every property checked here is
one the grammar, the sampler or the server guarantees, whatever the model prefers.
The `colocated` server answers to two aliases (`--served-model-name tiny org/tiny-agent`)."""

from __future__ import annotations

import json
import math
from typing import Literal

import pytest
import torch
from pydantic import BaseModel, Field

from tests.server.conftest import API_KEY, http
from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.sampling import Guide, SamplingParams

pytestmark = pytest.mark.slow  # real servers or worker processes

openai = pytest.importorskip("openai")
pytest.importorskip("nixl")
pytest.importorskip("xgrammar")


class Weather(BaseModel):
    """Bounded everywhere, so that even a random model's reply ends inside max_tokens."""

    city: Literal["Paris", "Rome", "Oslo"]
    celsius: int = Field(ge=-40, le=50)
    sunny: bool
    note: str = Field(max_length=6)


CITY = {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]},
                                         "days": {"type": "integer", "minimum": 1, "maximum": 9}},
        "required": ["city", "days"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": CITY}},
         {"type": "function", "function": {"name": "get_time", "parameters": {
             "type": "object", "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
             "required": ["zone"]}}}]
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]


def servers_and_modes():
    return [("server", "mixquant"), ("server", "bf16"),
            ("colocated", "mixquant"), ("colocated", "bf16"), ("colocated", "quantized")]


@pytest.fixture
def served(request):
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("served,mode", servers_and_modes(), indirect=["served"])
def test_json_schema_replies_parse_into_the_pydantic_model(served, mode):
    client = served.client()
    r = client.chat.completions.parse(model=served.model, messages=ASK, response_format=Weather, max_tokens=80,
                                      temperature=0.8, seed=3, extra_body={"mixquant": {"mode": mode}})
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(r.choices[0].message.parsed, Weather)


@pytest.mark.parametrize("served,mode", servers_and_modes(), indirect=["served"])
@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_time"}}])
def test_required_and_named_tool_choice_always_give_a_valid_call(served, mode, choice):
    client = served.client()
    r = client.chat.completions.create(model=served.model, messages=ASK, tools=TOOLS, tool_choice=choice,
                                       max_tokens=60, temperature=1.0, seed=5, extra_body={"mixquant": {"mode": mode}})
    (call,) = r.choices[0].message.tool_calls
    args = json.loads(call.function.arguments)
    if isinstance(choice, dict):
        assert call.function.name == "get_time" and args["zone"] in ("UTC", "CET")
    elif call.function.name == "get_weather":
        assert args["city"] in ("Paris", "Rome") and 1 <= args["days"] <= 9
    else:
        assert call.function.name == "get_time"
    assert r.choices[0].finish_reason == "tool_calls"


def test_json_object_regex_and_grammar_guides(colocated):
    client = colocated.client()
    r = client.chat.completions.create(model="tiny", messages=ASK, response_format={"type": "json_object"},
                                       max_tokens=30, temperature=0)
    if r.choices[0].finish_reason == "stop":  # a random model may not close its object in 30 tokens
        assert isinstance(json.loads(r.choices[0].message.content), dict)
    r = client.completions.create(model="tiny", prompt="the code is", max_tokens=12, temperature=1.0, seed=1,
                                  extra_body={"guided_regex": r"[A-Z]{3}-[0-9]{2}"})
    text = r.choices[0].text
    assert len(text) == 6 and text[:3].isupper() and text[3] == "-" and text[4:].isdigit()
    r = client.completions.create(model="tiny", prompt="answer:", max_tokens=8, temperature=1.0, seed=2,
                                  extra_body={"guided_grammar": 'root ::= "yes" | "no"'})
    assert r.choices[0].text in ("yes", "no")


@pytest.mark.parametrize("body,words", [
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "bogus"}}}},
     "Unsupported type"),
    ({"extra": {"guided_regex": "([a-"}}, "Regex parsing error"),
    ({"extra": {"guided_regex": "a", "guided_json": {"type": "object"}}}, "send one"),
])
def test_a_guide_the_grammar_engine_cannot_compile_is_400_with_its_reason(server, body, words):
    payload = {"model": server.model, "messages": ASK, **body.get("extra", {}),
               **{k: v for k, v in body.items() if k != "extra"}}
    status, text = http("POST", server.url + "/v1/chat/completions", payload, {"Authorization": f"Bearer {API_KEY}"})
    assert status == 400 and words in json.loads(text)["error"]["message"], text
    assert http("GET", server.url + "/health")[0] == 200


def test_logprobs_match_the_offline_llms_scores(colocated):
    """Greedy: each generated token's logprob is the BF16-decoding model's own, as LLM.score gives it,
    and top_logprobs holds the chosen token first (it is the argmax)."""
    client = colocated.client()
    r = client.chat.completions.create(model="tiny", messages=ASK, max_tokens=6, temperature=0, logprobs=True,
                                       top_logprobs=3, extra_body={"ignore_eos": True, "mixquant": {"mode": "bf16"}})
    content = r.choices[0].logprobs.content
    assert len(content) == 6 == r.usage.completion_tokens
    for entry in content:
        assert len(entry.top_logprobs) == 3 and entry.top_logprobs[0].logprob == pytest.approx(entry.logprob)
        assert entry.token == entry.top_logprobs[0].token and entry.logprob <= 0
    llm = LLM(colocated.engine_dir, mode="bf16", dtype=torch.float32)
    prompt = llm.tokenizer.apply_chat_template(ASK, add_generation_prompt=True, tokenize=False)
    out = llm.generate(prompt, SamplingParams(max_tokens=6, ignore_eos=True, logprobs=0))[0]
    scores = llm.score(prompt, out.token_ids, mode="bf16")
    # fp32 engines, the same tokens: the generated step and the teacher-forced one differ only in batching
    assert [e.logprob for e in content] == pytest.approx(scores, abs=1e-4)
    assert [lp.logprob for lp in out.logprobs] == pytest.approx(scores, abs=1e-4)

    r = client.completions.create(model="tiny", prompt="hello", max_tokens=4, temperature=0, logprobs=2,
                                  extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 4
    for tok, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        # greedy: the chosen token is the most likely (two ids may decode to the same text, so <= 2 keys)
        assert top[tok] == pytest.approx(max(top.values())) == pytest.approx(value) and len(top) <= 2
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[0] == 0


def test_n_choices_and_batched_prompts(server):
    client = server.client()
    r = client.completions.create(model=server.model, prompt=["one", "two two", "three"], max_tokens=5,
                                  temperature=0, extra_body={"ignore_eos": True})
    assert [c.index for c in r.choices] == [0, 1, 2]
    singles = [client.completions.create(model=server.model, prompt=p, max_tokens=5, temperature=0,
                                         extra_body={"ignore_eos": True}) for p in ("one", "two two", "three")]
    assert [c.text for c in r.choices] == [s.choices[0].text for s in singles]
    assert r.usage.prompt_tokens == sum(s.usage.prompt_tokens for s in singles)

    r = client.chat.completions.create(model=server.model, messages=ASK, n=4, max_tokens=8, temperature=1.0, seed=7,
                                       extra_body={"ignore_eos": True})
    texts = [c.message.content for c in r.choices]
    assert [c.index for c in r.choices] == [0, 1, 2, 3] and len(set(texts)) > 1  # seeds 7, 8, 9, 10
    again = client.chat.completions.create(model=server.model, messages=ASK, max_tokens=8, temperature=1.0, seed=9,
                                           extra_body={"ignore_eos": True})
    assert again.choices[0].message.content == texts[2]  # reply j draws from seed + j, as vLLM does
    assert r.usage.completion_tokens == 32 and r.usage.prompt_tokens == again.usage.prompt_tokens

    stream = client.completions.create(model=server.model, prompt=["one", "three"], n=2, max_tokens=5, temperature=0,
                                       stream=True, extra_body={"ignore_eos": True})
    texts = {}
    for chunk in stream:
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + c.text
    assert texts == {0: singles[0].choices[0].text, 1: singles[0].choices[0].text,
                     2: singles[2].choices[0].text, 3: singles[2].choices[0].text}


def test_penalties_change_sampling_as_vllm_defines_them():
    """The sampler's penalties on a known row: repetition divides positive and multiplies negative
    logits of every seen token; presence and frequency subtract per generated token."""
    from trtllm_mixquant.engine.sampler import apply_penalties

    class Row:
        params = SamplingParams(presence_penalty=0.5, frequency_penalty=0.25, repetition_penalty=2.0)
        token_ids, num_prompt_tokens = [1, 2, 2, 3, 3], 2  # prompt [1, 2], generated [2, 3, 3]
    logits = torch.tensor([[1.0, 4.0, -4.0, 2.0, 1.0]])
    apply_penalties(logits, [Row()])
    assert logits.tolist() == [[1.0, 2.0, -8.0 - 0.75, 1.0 - 1.0, 1.0]]
    assert not math.isnan(logits.sum())


def test_served_model_names_models_by_id_and_request_ids(colocated):
    client = colocated.client()
    assert [m.id for m in client.models.list().data] == ["tiny", "org/tiny-agent"]
    assert client.models.retrieve("org/tiny-agent").id == "org/tiny-agent"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("other")
    r = client.completions.with_raw_response.create(model="org/tiny-agent", prompt="a", max_tokens=2,
                                                    extra_headers={"x-request-id": "trace-123"})
    assert r.headers["x-request-id"] == "trace-123" and r.parse().model == "tiny"
    r = client.completions.with_raw_response.create(model="tiny", prompt="a", max_tokens=2)
    assert len(r.headers["x-request-id"]) == 32


def test_guides_and_logprobs_through_the_offline_llm(colocated):
    llm = LLM(colocated.engine_dir, mode="mixquant", dtype=torch.float32)
    for mode in ("mixquant", "bf16", "quantized"):
        out = llm.generate("x", SamplingParams(max_tokens=20, temperature=1.0, seed=0,
                                               guide=Guide("regex", r"(ab|cd){3}")), mode=mode)[0]
        assert out.finish_reason == "stop" and len(out.text) == 6 and set(out.text) <= set("abcd")


@pytest.mark.parametrize("served,mode", servers_and_modes(), indirect=["served"])
def test_echo_with_logprobs_scores_the_prompt_with_the_modes_engines(served, mode):
    """Prompt token i is scored at position i - 1, so by the context engine for i <= n - k: with
    k = 1 every prompt token in mixquant and quantized modes, none in bf16; LLM.score in the mode
    that computes them all the same way is the reference (fp32 engines)."""
    client = served.client()
    llm = LLM(served.engine_dir, mode="mixquant", dtype=torch.float32)
    ids = llm.tokens("the quick brown fox jumps over the lazy dog")
    reference = llm.score(ids[:1], ids[1:], mode="bf16" if mode == "bf16" else "quantized")
    r = client.completions.create(model=served.model, prompt=ids, max_tokens=1, temperature=0, logprobs=1, echo=True,
                                  extra_body={"mixquant": {"mode": mode}})
    lp = r.choices[0].logprobs
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None and len(lp.tokens) == len(ids) + 1
    assert lp.token_logprobs[1:len(ids)] == pytest.approx(reference, abs=1e-4)
    assert r.choices[0].text.startswith(llm.tokenizer.decode(ids))
    again = client.completions.create(model=served.model, prompt=ids, max_tokens=1, temperature=0, logprobs=1,
                                      echo=True, extra_body={"mixquant": {"mode": mode}})
    assert again.choices[0].logprobs.token_logprobs == lp.token_logprobs  # no prefix cache skips a position
