"""The FastAPI application: OpenAI endpoints under /v1 (behind the API key), /health and /metrics.

The lifespan starts the orchestrator in the background, so the socket answers while the workers
load (/health and /v1 say 503 until they are ready), and stops the workers at shutdown, after
uvicorn has let in-flight requests finish (or cancelled them when its graceful timeout ran out).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Callable

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from trtllm_mixquant.frontend.async_engine import AsyncEngine
from trtllm_mixquant.server import chat_completions, completions
from trtllm_mixquant.server.errors import APIError, install_error_handlers
from trtllm_mixquant.server.config import ServerConfig
from trtllm_mixquant.server.state import ServerState


def require_api_key(request: Request) -> None:
    key = request.app.state.server.config.api_key
    if key is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
        raise APIError(401, "invalid API key; send it as `Authorization: Bearer KEY`", code="invalid_api_key")


def models(request: Request) -> dict:
    state: ServerState = request.app.state.server
    card = {"id": state.config.model_name, "object": "model", "created": state.created,
            "owned_by": "trtllm-mixquant", "root": str(state.config.engine_dir), "max_model_len": state.max_seq_len}
    return {"object": "list", "data": [card]}


def health(request: Request) -> JSONResponse:
    status, body = request.app.state.server.health()
    return JSONResponse(body, status_code=status)


def metrics(request: Request) -> PlainTextResponse:
    state: ServerState = request.app.state.server
    stats = state.engine.stats() if state.engine.ready else None
    return PlainTextResponse(state.metrics.render(stats), media_type="text/plain; version=0.0.4")


def create_app(config: ServerConfig, on_start_failure: Callable[[], None] | None = None,
               engine: AsyncEngine | None = None) -> FastAPI:
    """on_start_failure: called if the workers fail to start (the CLI uses it to exit); engine: the
    `AsyncEngine` to serve (default: an orchestrator of `config.orchestrator`)."""
    state = ServerState(config, on_start_failure, engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        starting = asyncio.create_task(state.start())
        yield
        if not starting.done():
            starting.cancel()  # the orchestrator stops the workers it started
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        await state.stop()

    app = FastAPI(title="trtllm-mixquant", lifespan=lifespan)
    app.state.server = state
    install_error_handlers(app, lambda path, status: state.metrics.requests.inc(path, str(status)))
    v1 = APIRouter(dependencies=[Depends(require_api_key)])
    v1.add_api_route("/v1/models", models, methods=["GET"])
    v1.include_router(completions.router)
    v1.include_router(chat_completions.router)
    app.include_router(v1)
    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/metrics", metrics, methods=["GET"])
    return app
