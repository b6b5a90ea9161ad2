"""The error body every route answers with: ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from plinth_serve.server.limits import DEFAULT_LIMITS

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

logger = logging.getLogger(__name__)

_TYPES = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError", 405: "MethodNotAllowed",
          413: "RequestTooLargeError", 500: "InternalServerError", 503: "ServiceUnavailableError"}


class APIError(Exception):
    """An error a client can act on: its HTTP status, message and the offending request field."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


class EngineDeadError(APIError):
    def __init__(self, message: str = "the engine process has died; the server cannot serve requests") -> None:
        super().__init__(500, message)


def bad_request(message: str, param: str | None = None) -> APIError:
    return APIError(400, message, param)


def error_body(status: int, message: str, param: str | None = None) -> dict:
    limit = DEFAULT_LIMITS.max_error_chars
    if len(message) > limit:
        message = message[: limit - 3] + "..."
    return {"error": {"message": message, "type": _TYPES.get(status, "Error"), "param": param, "code": status}}


def error_response(status: int, message: str, param: str | None = None) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(msgspec.json.encode(error_body(status, message, param)), status_code=status,
                    media_type="application/json", headers=headers)


def describe_validation_error(exc: RequestValidationError) -> tuple[str, str | None]:
    """A short message naming the failing field(s); never echoes the input values."""
    parts, param = [], None
    for err in exc.errors()[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        field = ".".join(loc) or "body"
        param = param or (loc[0] if loc else None)
        if err.get("type") == "extra_forbidden":
            parts.append(f"unknown field '{field}': it is in neither OpenAI's schema nor plinth's "
                         "extensions (see /openapi.json); remove it")
        elif err.get("type") == "json_invalid":
            parts.append("the request body is not valid JSON")
        else:
            parts.append(f"{field}: {err.get('msg', 'invalid value')}")
    more = len(exc.errors()) - 5
    if more > 0:
        parts.append(f"and {more} more error(s)")
    return "; ".join(parts), param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> Response:
        return error_response(exc.status, exc.message, exc.param)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        message, param = describe_validation_error(exc)
        return error_response(400, message, param)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error while serving %s", request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); see the server log")
