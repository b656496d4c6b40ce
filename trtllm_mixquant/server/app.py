"""The FastAPI application: OpenAI endpoints under /v1, /health and /metrics, behind the `Guard`
(API key, body size).

The lifespan starts the orchestrator in the background, so the socket answers while the workers
load (/health and /v1 say 503 until they are ready), and stops the workers at shutdown, after
uvicorn has let in-flight requests finish (or cancelled them when its graceful timeout ran out).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from trtllm_mixquant.frontend.async_engine import AsyncEngine
from trtllm_mixquant.server import chat_completions, completions, responses_api
from trtllm_mixquant.server.errors import install_error_handlers
from trtllm_mixquant.server.guard import Guard
from trtllm_mixquant.server.config import ServerConfig
from trtllm_mixquant.server.state import ServerState


def _card(state: ServerState, name: str) -> dict:
    return {"id": name, "object": "model", "created": state.created, "owned_by": "trtllm-mixquant",
            "root": str(state.config.engine_dir), "max_model_len": state.max_seq_len}


def models(request: Request) -> dict:
    state: ServerState = request.app.state.server
    return {"object": "list", "data": [_card(state, name) for name in state.config.model_names]}


def model(model_id: str, request: Request) -> dict:
    state: ServerState = request.app.state.server
    state.check_model(model_id)
    return _card(state, model_id)


class RequestIds:
    """Every response carries `x-request-id`: the client's own, or a new one (as vLLM's
    --enable-request-id-headers and most gateways do), so a client's logs match the server's."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"x-request-id")
        request_id = given[:128] if given else uuid.uuid4().hex.encode()

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id)]}
            await send(message)
        await self.app(scope, receive, send_with_id)


def health(request: Request) -> JSONResponse:
    status, body = request.app.state.server.health()
    return JSONResponse(body, status_code=status)


def metrics(request: Request) -> PlainTextResponse:
    state: ServerState = request.app.state.server
    stats = state.engine.stats() if state.engine.ready else None
    return PlainTextResponse(state.metrics.render(stats), media_type="text/plain; version=0.0.4")


def create_app(config: ServerConfig, on_start_failure: Callable[[], None] | None = None,
               engine: AsyncEngine | None = None, on_ready: Callable[[], None] | None = None) -> FastAPI:
    """on_start_failure / on_ready: called when the workers fail to start (the CLI exits) or are
    ready (it prints the URL); engine: the `AsyncEngine` to serve (default: an orchestrator of
    `config.orchestrator`)."""
    state = ServerState(config, on_start_failure, engine, on_ready)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        starting = asyncio.create_task(state.start())
        yield
        if not starting.done():
            starting.cancel()  # the orchestrator stops the workers it started
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        await state.stop()

    docs = {} if config.enable_docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="trtllm-mixquant", lifespan=lifespan, **docs)
    app.state.server = state
    install_error_handlers(app, lambda path, status: state.metrics.requests.inc(path, str(status)))
    app.add_api_route("/v1/models", models, methods=["GET"])
    app.add_api_route("/v1/models/{model_id:path}", model, methods=["GET"])
    app.include_router(completions.router)
    app.include_router(chat_completions.router)
    app.include_router(responses_api.router)
    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/metrics", metrics, methods=["GET"])
    app.add_middleware(Guard, config=config)
    app.add_middleware(RequestIds)
    return app
