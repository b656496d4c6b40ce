"""Errors in OpenAI's JSON shape: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from trtllm_mixquant.errors import InvalidRequest, Overloaded, RequestFailed, ServingError, Unavailable

TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
         429: "rate_limit_error", 499: "client_closed_request", 500: "server_error", 503: "service_unavailable"}


class APIError(Exception):
    """An error answered with `status` and the OpenAI error body."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 counted: bool = False, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.counted = counted  # the request that failed has already been recorded in the metrics
        self.headers = headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def api_error(e: ServingError, counted: bool = False) -> APIError:
    """The HTTP answer to a domain error (`trtllm_mixquant.errors`): the one place they are mapped."""
    if isinstance(e, InvalidRequest):
        return APIError(400, e.message, param=e.param, counted=counted)
    if isinstance(e, Overloaded):
        return APIError(429, e.message, code="queue_full", counted=counted)
    if isinstance(e, Unavailable):
        return APIError(503, e.message, code="not_ready", counted=counted,
                        headers={"Retry-After": str(max(1, round(e.retry_after)))})
    assert isinstance(e, RequestFailed), type(e)
    return APIError(500, f"generation failed: {e.message}", code="generation_failed", counted=counted)


def _validation_error(exc: RequestValidationError) -> APIError:
    problems, param = [], None
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return APIError(400, f"invalid request: the body is not valid JSON ({err.get('ctx', {}).get('error', '')} "
                                 f"at character {err['loc'][-1]})")
        loc = ".".join(str(part) for part in err.get("loc", ()) if part != "body")
        param = param or loc or None
        problems.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return APIError(400, "invalid request: " + "; ".join(problems), param=param)


def install_error_handlers(app: FastAPI, count: Callable[[str, int], None]) -> None:
    """Answer every error in OpenAI's shape; `count(path, status)` records it in the metrics."""

    def answer(request: Request, error: APIError) -> JSONResponse:
        if not error.counted:
            count(request.url.path, error.status)
        return error.response()

    @app.exception_handler(APIError)
    async def http_answer(request: Request, exc: APIError) -> JSONResponse:
        return answer(request, exc)

    @app.exception_handler(ServingError)
    async def serving_error(request: Request, exc: ServingError) -> JSONResponse:
        return answer(request, api_error(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return answer(request, _validation_error(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return answer(request, APIError(exc.status_code, str(exc.detail)))
