"""Request bodies of the OpenAI API (the fields this server reads), and their sampling parameters.

Unknown fields are accepted and ignored (logged once per field name), as OpenAI clients send many;
fields that would change the result and that the engine cannot honour (best_of, suffix,
logit_bias) are refused with a 400 unless they hold their neutral value. Extensions, under the names vLLM uses: `top_k`,
`repetition_penalty`, `ignore_eos`, `chat_template_kwargs`, `guided_json`, `guided_regex`,
`guided_grammar`; and this server's `mixquant: {"mode": ..., "session_id": ...}`.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trtllm_mixquant.engine.sampling import Guide, SamplingParams
from trtllm_mixquant.errors import InvalidRequest

log = logging.getLogger(__name__)

# field -> the values that leave the result unchanged
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "best_of": (None, 1), "suffix": (None, ""), "logit_bias": (None, {}),
}
MAX_N = 16  # choices per prompt
MAX_PROMPTS = 64  # prompts per /v1/completions request
_warned: set[str] = set()  # unknown request fields already logged


def warn_ignored(fields) -> None:
    """Log the request fields this server accepts and does not read, once per field name."""
    unknown = sorted(set(fields) - _warned)
    if unknown:
        _warned.update(unknown)
        log.warning("ignoring request field(s) this server does not read: %s (said once per field)", ", ".join(unknown))


class MixquantOptions(BaseModel):
    """`extra_body={"mixquant": {...}}`: this server's own per-request options."""

    model_config = ConfigDict(extra="forbid")
    mode: str | None = None  # mixquant, bf16 or quantized (checked by the engine's rules); None: the server's --mode
    session_id: str | None = None  # keeps a conversation's turns on the same workers (prefix cache)


class StreamOptions(BaseModel):
    include_usage: bool = False


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    name: str = "response"
    description: str | None = None
    json_schema: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class GenerationRequest(BaseModel):
    """Fields both endpoints share."""

    model_config = ConfigDict(extra="allow")
    model: str
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool = False
    n: int = 1
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    response_format: ResponseFormat | None = None
    guided_json: dict[str, Any] | str | None = None
    guided_regex: str | None = None
    guided_grammar: str | None = None
    mixquant: MixquantOptions = Field(default_factory=MixquantOptions)

    def check_supported(self) -> None:
        for name, neutral in NEUTRAL.items():
            value = getattr(self, name, None)
            if value not in neutral:
                raise InvalidRequest(f"`{name}`={value!r} is not supported by this server", param=name)
        if not 1 <= self.n <= MAX_N:
            raise InvalidRequest(f"n must be in [1, {MAX_N}] (got {self.n})", param="n")
        warn_ignored(self.model_extra or {})

    def guide(self) -> Guide | None:
        """What `response_format` or a `guided_*` field asks the reply to be (at most one of them)."""
        asked = []
        fmt = self.response_format
        if fmt is not None and fmt.type == "json_object":
            asked.append(("response_format", Guide("json", "")))
        elif fmt is not None and fmt.type == "json_schema":
            if fmt.json_schema is None:
                raise InvalidRequest("response_format of type json_schema needs a json_schema",
                                     param="response_format")
            asked.append(("response_format", Guide("json", json.dumps(fmt.json_schema.json_schema))))
        if self.guided_json is not None:
            spec = self.guided_json if isinstance(self.guided_json, str) else json.dumps(self.guided_json)
            asked.append(("guided_json", Guide("json", spec)))
        if self.guided_regex is not None:
            asked.append(("guided_regex", Guide("regex", self.guided_regex)))
        if self.guided_grammar is not None:
            asked.append(("guided_grammar", Guide("ebnf", self.guided_grammar)))
        if len(asked) > 1:
            raise InvalidRequest(f"{' and '.join(name for name, _ in asked)} both constrain the reply; send one",
                                 param=asked[1][0])
        return asked[0][1] if asked else None

    def num_logprobs(self) -> int | None:
        """Top log-probabilities per generated token: None for none (the endpoints override this)."""
        return None

    def num_prompt_logprobs(self) -> int | None:
        """The same per prompt token (completions with echo)."""
        return None

    def sampling_params(self, max_tokens: int, defaults: dict[str, Any], guide: Guide | None = None,
                        choice: int = 0) -> SamplingParams:
        """defaults: the model's generation_config values for temperature, top_p and top_k, if any.
        choice: which of the prompt's `n` replies; with a seed, reply j draws from seed + j (as vLLM)."""
        def pick(name: str, fallback: Any) -> Any:
            value = getattr(self, name)
            return value if value is not None else defaults.get(name, fallback)
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        seed = None if self.seed is None else self.seed + choice
        logprobs, prompt_logprobs = self.num_logprobs(), self.num_prompt_logprobs()  # may raise with their param
        try:
            return SamplingParams(max_tokens=max_tokens, temperature=pick("temperature", 1.0),
                                  top_p=pick("top_p", 1.0), top_k=pick("top_k", 0), seed=seed, stop=stop,
                                  ignore_eos=self.ignore_eos, presence_penalty=self.presence_penalty or 0.0,
                                  frequency_penalty=self.frequency_penalty or 0.0,
                                  repetition_penalty=pick("repetition_penalty", 1.0), logprobs=logprobs,
                                  prompt_logprobs=prompt_logprobs, guide=guide)
        except ValueError as e:
            raise InvalidRequest(str(e)) from None


class CompletionRequest(GenerationRequest):
    prompt: str | list[int] | list[str] | list[list[int]]
    max_tokens: int | None = 16  # OpenAI's documented default for this endpoint (chat's is the room left)
    logprobs: int | None = None
    echo: bool = False  # the prompt in front of the text (and its tokens' logprobs with logprobs)

    def prompts(self) -> list[str | list[int]]:
        """The prompts of a batch (a list of strings or of token lists), or the one prompt."""
        prompt = self.prompt
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
            if len(prompt) > MAX_PROMPTS:
                raise InvalidRequest(f"at most {MAX_PROMPTS} prompts per request (got {len(prompt)})", param="prompt")
            return list(prompt)
        return [prompt]

    def num_logprobs(self) -> int | None:
        return self.logprobs

    def num_prompt_logprobs(self) -> int | None:
        return self.logprobs if self.echo else None


class FunctionCall(BaseModel):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(BaseModel):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. reasoning_content, for templates that read it
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(BaseModel):
    type: Literal["function"] = "function"
    function: FunctionDef


class FunctionName(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"] = "function"
    function: FunctionName


class ChatCompletionRequest(GenerationRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int | None = None

    def num_logprobs(self) -> int | None:
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidRequest("top_logprobs needs logprobs: true", param="top_logprobs")
        return (self.top_logprobs or 0) if self.logprobs else None

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def template_messages(self) -> list[dict[str, Any]]:
        """The messages as plain OpenAI-shaped dicts (what `frontend.chat` reads)."""
        return [m.model_dump() for m in self.messages]

    def template_tools(self) -> list[dict[str, Any]] | None:
        return [t.model_dump(exclude_none=True) for t in self.tools] if self.tools else None

    def template_tool_choice(self) -> str | dict | None:
        choice = self.tool_choice
        return choice.model_dump() if isinstance(choice, NamedToolChoice) else choice
