"""What the endpoints share: the engine (the orchestrator, started in the background), its text
codec, the model's sampling defaults, and the metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from trtllm_mixquant.disagg.orchestrator import Orchestrator
from trtllm_mixquant.engine.sampling import Guide, grammar_engine, sampling_defaults
from trtllm_mixquant.errors import InvalidRequest
from trtllm_mixquant.frontend.async_engine import AsyncEngine
from trtllm_mixquant.frontend.chat import ChatPrompt, build_chat_prompt
from trtllm_mixquant.server.config import ServerConfig
from trtllm_mixquant.server.errors import APIError
from trtllm_mixquant.server.metrics import ServerMetrics
from trtllm_mixquant.server.protocol import ChatCompletionRequest

log = logging.getLogger(__name__)


class ServerState:
    def __init__(self, config: ServerConfig, on_start_failure: Callable[[], None] | None = None,
                 engine: AsyncEngine | None = None, on_ready: Callable[[], None] | None = None):
        self.config = config
        self.engine: AsyncEngine = engine or Orchestrator(config.orchestrator)
        self.codec = self.engine.codec
        self.defaults = sampling_defaults(self.engine.model_dir)
        self.metrics = ServerMetrics()
        self.model_ids = {*config.model_names, str(config.engine_dir), str(config.engine_dir.resolve())}
        self.created = int(time.time())
        self.start_error: str | None = None
        self.on_start_failure, self.on_ready = on_start_failure, on_ready
        self._grammars = None  # engine.grammar.GrammarCompiler, made for the first guided request

    @property
    def max_seq_len(self) -> int:
        return self.engine.rules.max_seq_len

    async def start(self) -> None:
        """Start the workers; the HTTP socket answers (503) meanwhile."""
        try:
            await self.engine.start()
        except Exception as e:
            self.start_error = f"the workers failed to start: {e}"
            log.error(self.start_error)
            if self.on_start_failure:
                self.on_start_failure()
            return
        if self.on_ready:
            self.on_ready()

    async def stop(self) -> None:
        if self.engine.ready:
            await self.engine.shutdown()

    def health(self) -> tuple[int, dict]:
        if self.start_error:
            return 503, {"status": "failed", "error": self.start_error}
        serving, body = self.engine.health()
        return (200 if serving else 503), body

    async def encode(self, prompt: str | list[int], param: str = "prompt") -> list[int]:
        """A prompt's token ids; text is size-checked first, then tokenized off the event loop."""
        if not isinstance(prompt, str):
            return self.codec.check_ids(prompt, param)
        self.codec.check_size(len(prompt), self.max_seq_len, param)
        return await asyncio.to_thread(self.codec.encode, prompt, param)

    async def chat_prompt(self, req: ChatCompletionRequest) -> ChatPrompt:
        """Render and tokenize a chat request off the event loop, after the cheap checks."""
        kwargs = req.chat_template_kwargs or {}
        if "chat_template" in kwargs and not self.config.trust_request_chat_template:
            raise InvalidRequest("this server does not run chat templates sent by clients (the operator can allow "
                                 "it with --trust-request-chat-template)", param="chat_template_kwargs.chat_template")
        messages = req.template_messages()
        size = sum(len(json.dumps(m["content"])) for m in messages if m.get("content"))
        self.codec.check_size(size, self.max_seq_len, "messages")
        return await asyncio.to_thread(build_chat_prompt, self.codec, messages, req.template_tools(),
                                       req.template_tool_choice(), kwargs)

    async def check_guide(self, guide: Guide) -> None:
        """Compile a guide once, off the event loop, so that one the grammar engine cannot read is
        refused (400, with its reason) before any worker sees it."""
        if self._grammars is None:
            config = json.loads((self.engine.model_dir / "config.json").read_text())
            self._grammars = grammar_engine().GrammarCompiler(self.codec.tokenizer, config["vocab_size"],
                                                              self.codec.eos_ids)
        await asyncio.to_thread(self._grammars.compile, guide)

    def check_model(self, model: str) -> None:
        if model not in self.model_ids:
            raise APIError(404, f"the model {model!r} does not exist; this server serves "
                           f"{' or '.join(map(repr, self.config.model_names))}", param="model", code="model_not_found")
