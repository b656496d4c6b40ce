"""What the endpoints share: the orchestrator (started in the background), tokenizer, metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trtllm_mixquant.engine.llm import load_tokenizer_and_eos
from trtllm_mixquant.server.detokenizer import hidden_token_ids
from trtllm_mixquant.server.errors import APIError
from trtllm_mixquant.server.metrics import ServerMetrics
from trtllm_mixquant.server.responses import now
from trtllm_mixquant.server.settings import ServerSettings

log = logging.getLogger(__name__)


def sampling_defaults(model_dir: Path) -> dict[str, Any]:
    """temperature, top_p and top_k from the model's generation_config.json (what requests that leave them out get)."""
    path = model_dir / "generation_config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    return {k: config[k] for k in ("temperature", "top_p", "top_k") if config.get(k) is not None}


class ServerState:
    def __init__(self, settings: ServerSettings, on_start_failure: Callable[[], None] | None = None):
        self.settings = settings
        self.orchestrator = settings.orchestrator()
        folder = self.orchestrator.dirs.generation
        self.tokenizer, self.eos_ids = load_tokenizer_and_eos(folder)
        self.hidden_ids = hidden_token_ids(self.tokenizer)
        self.defaults = sampling_defaults(folder)
        self.metrics = ServerMetrics()
        self.model_ids = {settings.model_name, str(settings.engine_dir), str(Path(settings.engine_dir).resolve())}
        self.created = now()
        self.start_error: str | None = None
        self.on_start_failure = on_start_failure

    @property
    def max_seq_len(self) -> int:
        return self.orchestrator.dirs.max_seq_len

    async def start(self) -> None:
        """Start the workers; the HTTP socket answers (503) meanwhile."""
        try:
            await self.orchestrator.start()
        except Exception as e:
            self.start_error = f"the workers failed to start: {e}"
            log.error(self.start_error)
            if self.on_start_failure:
                self.on_start_failure()

    async def stop(self) -> None:
        if self.orchestrator.ready:
            await self.orchestrator.shutdown()

    def health(self) -> tuple[int, dict]:
        if self.start_error:
            return 503, {"status": "failed", "error": self.start_error}
        if not self.orchestrator.ready:
            return 503, {"status": "starting"}
        workers = self.orchestrator.stats()["workers"].values()
        dead_roles = {w["role"] for w in workers} - {w["role"] for w in workers if w["alive"]}
        if dead_roles:
            return 503, {"status": "unhealthy", "error": f"no live {', '.join(sorted(dead_roles))} worker"}
        return 200, {"status": "ok"}

    def check_model(self, model: str) -> None:
        if model not in self.model_ids:
            raise APIError(404, f"the model {model!r} does not exist; this server serves "
                           f"{self.settings.model_name!r}", param="model", code="model_not_found")

    def check_ready(self) -> None:
        if not self.orchestrator.ready:
            raise APIError(503, self.start_error or "the server is starting; retry shortly", code="not_ready")

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]
