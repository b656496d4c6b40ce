"""`/v1/responses` through the official `openai` client and the OpenAI Agents SDK, on the colocated
server (tiny random engines): text, forced tool calls, `previous_response_id`, streaming events,
structured outputs, and an agent that calls a tool and answers."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from pydantic import BaseModel

from tests.server.conftest import API_KEY, http

pytestmark = pytest.mark.slow  # real servers

openai = pytest.importorskip("openai")
pytest.importorskip("xgrammar")
WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "The weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
                               "required": ["city"]}}
GREEDY = dict(temperature=0, max_output_tokens=6)


class City(BaseModel):
    city: Literal["Paris", "Rome", "Oslo"]
    sunny: bool


def test_text_reply_and_stored_response(colocated):
    client = colocated.client()
    r = client.responses.create(model="tiny", input="Hello there", instructions="Be brief.", **GREEDY)
    assert r.object == "response" and r.id.startswith("resp_") and r.status == "incomplete"  # 6 tokens of a random model
    assert r.incomplete_details.reason == "max_output_tokens" and r.usage.output_tokens == 6
    (message,) = r.output
    assert message.type == "message" and message.role == "assistant" and r.output_text == message.content[0].text
    assert client.responses.retrieve(r.id).output_text == r.output_text


def test_forced_call_then_its_result_through_previous_response_id(colocated):
    client = colocated.client()
    first = client.responses.create(model="tiny", input="What's the weather in Paris?", tools=[WEATHER_TOOL],
                                    tool_choice="required", temperature=0, max_output_tokens=80)
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments)["city"] in ("Paris", "Rome")
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}
    chained = client.responses.create(model="tiny", previous_response_id=first.id, input=[result],
                                      tools=[WEATHER_TOOL], **GREEDY)
    # the same turn sent whole, as an SDK without previous_response_id sends it
    whole = client.responses.create(model="tiny", tools=[WEATHER_TOOL], **GREEDY, input=[
        {"role": "user", "content": "What's the weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments}, result])
    assert chained.usage.input_tokens == whole.usage.input_tokens > first.usage.input_tokens
    assert chained.output_text == whole.output_text


def test_streaming_events_add_up_to_the_response(colocated):
    client = colocated.client()
    events = list(client.responses.create(model="tiny", input="Hello there", stream=True, **GREEDY))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.incomplete"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert events[-1].response.output_text == text
    assert {"response.output_item.added", "response.content_part.added", "response.output_text.done",
            "response.output_item.done"} <= set(kinds)

    events = list(client.responses.create(model="tiny", input="weather?", tools=[WEATHER_TOOL], stream=True,
                                          tool_choice={"type": "function", "name": "get_weather"}, temperature=0,
                                          max_output_tokens=80))
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and json.loads(done[0].arguments)["city"] in ("Paris", "Rome")
    assert [i.type for i in events[-1].response.output] == ["function_call"]


def test_structured_output_parses(colocated):
    r = colocated.client().responses.parse(model="tiny", input="Weather?", text_format=City, temperature=0,
                                           max_output_tokens=60)
    assert isinstance(r.output_parsed, City)


def test_bad_requests(colocated):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    status, text = http("POST", colocated.url + "/v1/responses",
                        {"model": "tiny", "input": "a", "previous_response_id": "resp_nope"}, headers)
    assert status == 404 and "no stored response" in text
    status, text = http("POST", colocated.url + "/v1/responses",
                        {"model": "tiny", "input": "a", "tools": [{"type": "web_search"}]}, headers)
    assert status == 400 and "only function tools" in text
    status, text = http("POST", colocated.url + "/v1/responses",
                        {"model": "tiny", "input": [{"type": "message", "role": "user",
                                                     "content": [{"type": "input_image", "image_url": "x"}]}]}, headers)
    assert status == 400 and "only text content" in text


def test_an_agents_sdk_agent_calls_its_tool_and_answers(colocated):
    """Forced to call its tool first; then (the SDK resets tool_choice) its answer is held to the
    agent's output type by the grammar, so that even a random model's answer completes."""
    agents = pytest.importorskip("agents")
    calls = []

    @agents.function_tool
    def get_weather(city: Literal["Paris", "Rome"]) -> str:
        """The weather in a city."""
        calls.append(city)
        return "sunny"

    client = openai.AsyncOpenAI(base_url=colocated.url + "/v1", api_key=API_KEY, max_retries=0)
    model = agents.OpenAIResponsesModel(model="tiny", openai_client=client)
    agent = agents.Agent(name="weather", instructions="Answer with the weather.", tools=[get_weather], model=model,
                         output_type=City,
                         model_settings=agents.ModelSettings(tool_choice="required", temperature=0, max_tokens=80))
    result = agents.Runner.run_sync(agent, "What's the weather in Paris?", max_turns=3,
                                    run_config=agents.RunConfig(tracing_disabled=True))
    assert calls and calls[0] in ("Paris", "Rome")  # the forced first turn called the tool with valid arguments
    assert isinstance(result.final_output, City)
