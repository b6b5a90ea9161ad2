"""The ASGI layer in front of every route: body size, API key, and 503 while draining.

API keys are compared as sha256 digests with ``secrets.compare_digest``, on ``scope["path"]``
(what the router matches). Deny by default: only the public paths below go without a key.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from plinth_serve.server.errors import error_response

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from plinth_serve.server.state import ServerState

PUBLIC_PATHS = frozenset({"/health", "/metrics", "/version", "/openapi.json", "/docs", "/docs/oauth2-redirect",
                          "/redoc"})
_OPEN_WHILE_DRAINING = frozenset({"/health", "/metrics", "/version"})


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def key_matches(header: str | None, digests: list[bytes]) -> bool:
    """True when ``Authorization: Bearer <key>`` carries one of the keys (every digest is compared)."""
    if not header or not header.startswith("Bearer "):
        return False
    given = key_digest(header[len("Bearer "):].strip())
    ok = False
    for digest in digests:
        ok |= secrets.compare_digest(given, digest)
    return ok


class Guard:
    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if self.state.api_key_digests and path not in PUBLIC_PATHS:
            header = _header(scope, b"authorization")
            if not key_matches(header, self.state.api_key_digests):
                await error_response(401, "missing or wrong API key: send 'Authorization: Bearer <key>'")(
                    scope, receive, send)
                return
        if self.state.draining and path not in _OPEN_WHILE_DRAINING:
            await error_response(503, "the server is shutting down and accepts no new requests")(scope, receive, send)
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None after answering 413 when it is over the limit."""
        limit = self.state.limits.max_body_bytes
        declared = _header(scope, b"content-length")
        too_big = error_response(413, f"the request body is larger than the server's limit of {limit} bytes")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await too_big(scope, receive, send)
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await too_big(scope, receive, send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
