"""What is checked before a request reaches the application: the API key (before the body is read,
on every path but /health, and /metrics when it is left open) and the body size (413 past the
limit, whether or not the client declared a Content-Length)."""

from __future__ import annotations

import hmac
import json

from starlette.exceptions import HTTPException

from trtllm_mixquant.server.config import ServerConfig
from trtllm_mixquant.server.errors import APIError

OPEN_PATHS = ("/health",)


class Guard:
    """Pure ASGI middleware (it never buffers the body)."""

    def __init__(self, app, config: ServerConfig):
        self.app, self.config = app, config
        self.key = config.api_key.encode() if config.api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if not self._authorized(scope["path"], headers):
            return await _answer(send, APIError(401, "invalid API key; send it as `Authorization: Bearer KEY`",
                                                code="invalid_api_key"))
        limit = self.config.max_body_bytes
        declared = headers.get(b"content-length", b"").decode()
        if declared.isdigit() and int(declared) > limit:
            return await _answer(send, _too_large(limit))
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, _too_large(limit).message)
            return message
        return await self.app(scope, limited, send)

    def _authorized(self, path: str, headers: dict[bytes, bytes]) -> bool:
        if self.key is None or path in OPEN_PATHS or (path == "/metrics" and self.config.metrics_without_key):
            return True
        scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.key)


def _too_large(limit: int) -> APIError:
    return APIError(413, f"the request body is larger than this server accepts ({limit} bytes; the operator sets "
                    "it with --max-body-bytes)", code="request_too_large")


async def _answer(send, error: APIError) -> None:
    body = json.dumps(error.body()).encode()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
