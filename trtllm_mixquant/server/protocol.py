"""Request bodies of the OpenAI API (the fields this server reads), and their sampling parameters.

Unknown fields are accepted and ignored, as OpenAI clients send many; fields that would change the
result and that the engine cannot honour (logprobs, penalties, n > 1, ...) are refused with a 400
unless they hold their neutral value. Extensions: `top_k`, `ignore_eos`, `chat_template_kwargs`
(the names vLLM uses) and `mixquant: {"mode": ..., "session_id": ...}`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.errors import InvalidRequest

# field -> the values that leave the result unchanged
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (None, 1), "best_of": (None, 1), "logprobs": (None, False), "top_logprobs": (None, 0),
    "echo": (None, False), "suffix": (None, ""), "presence_penalty": (None, 0), "frequency_penalty": (None, 0),
    "logit_bias": (None, {}), "response_format": (None, {"type": "text"}),
}


class MixquantOptions(BaseModel):
    """`extra_body={"mixquant": {...}}`: this server's own per-request options."""

    model_config = ConfigDict(extra="forbid")
    mode: str | None = None  # mixquant, bf16 or quantized (checked by the engine's rules); None: the server's --mode
    session_id: str | None = None  # keeps a conversation's turns on the same workers (prefix cache)


class StreamOptions(BaseModel):
    include_usage: bool = False


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
    mixquant: MixquantOptions = Field(default_factory=MixquantOptions)

    def check_supported(self) -> None:
        for name, neutral in NEUTRAL.items():
            value = getattr(self, name, None)
            if value not in neutral:
                raise InvalidRequest(f"`{name}`={value!r} is not supported by this server", param=name)

    def sampling_params(self, max_tokens: int, defaults: dict[str, Any]) -> SamplingParams:
        """defaults: the model's generation_config values for temperature, top_p and top_k, if any."""
        def pick(name: str, fallback: Any) -> Any:
            value = getattr(self, name)
            return value if value is not None else defaults.get(name, fallback)
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        try:
            return SamplingParams(max_tokens=max_tokens, temperature=pick("temperature", 1.0),
                                  top_p=pick("top_p", 1.0), top_k=pick("top_k", 0), seed=self.seed, stop=stop,
                                  ignore_eos=self.ignore_eos)
        except ValueError as e:
            raise InvalidRequest(str(e)) from None


class CompletionRequest(GenerationRequest):
    prompt: str | list[int] | list[str] | list[list[int]]
    max_tokens: int | None = 16  # OpenAI's documented default for this endpoint (chat's is the room left)

    def single_prompt(self) -> str | list[int]:
        prompt = self.prompt
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
            if len(prompt) != 1:
                raise InvalidRequest("one prompt per request is supported", param="prompt")
            prompt = prompt[0]
        return prompt


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
