"""The FastAPI app: routes of SERVER.md over one ServerState."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import msgspec
from fastapi import FastAPI, Request
from starlette.responses import Response

from plinth import __version__
from plinth_serve.server import prompts as P
from plinth_serve.server import protocol as pr
from plinth_serve.server import responses as rs
from plinth_serve.server.errors import bad_request, error_response, install_error_handlers
from plinth_serve.server.guard import Guard
from plinth_serve.server.serve_chat import create_chat_completion
from plinth_serve.server.serve_completions import create_completion

if TYPE_CHECKING:
    from plinth_serve.server.state import ServerState

_ERRS = (400, 401, 404, 500, 503)


def _json(body: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


def build_app(state: ServerState, allowed_origins: list[str] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.client.attach(asyncio.get_running_loop())
        yield

    app = FastAPI(title="plinth", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible API of the plinth inference engine.")
    install_error_handlers(app)
    _inference_routes(app, state)
    _tokenizer_routes(app, state)
    _service_routes(app, state)
    app.openapi = lambda: _openapi(app)
    app.add_middleware(Guard, state=state)
    if allowed_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=allowed_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


def _openapi(app: FastAPI) -> dict:
    """FastAPI's schema, less the 422 responses it adds: validation errors are 400 here."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


def _inference_routes(app: FastAPI, state: ServerState) -> None:
    @app.post("/v1/completions", responses=rs.documented(rs.CompletionResponse, *_ERRS, stream=True))
    async def completions(req: pr.CompletionRequest, raw: Request) -> Response:
        """Text completion, JSON or SSE (`stream: true`). `max_tokens` beyond the context is clamped."""
        return await create_completion(state, req, raw)

    @app.post("/v1/chat/completions", responses=rs.documented(rs.ChatCompletionResponse, *_ERRS, stream=True))
    async def chat_completions(req: pr.ChatCompletionRequest, raw: Request) -> Response:
        """Chat completion with the model's chat template, JSON or SSE (`stream: true`)."""
        return await create_chat_completion(state, req, raw)

    @app.get("/v1/models", responses=rs.documented(rs.ModelList, 401))
    async def models() -> Response:
        cards = [{"id": name, "object": "model", "created": state.created, "owned_by": "plinth",
                  "max_model_len": state.max_model_len} for name in state.served_names]
        return _json({"object": "list", "data": cards})


def _tokenizer_routes(app: FastAPI, state: ServerState) -> None:
    @app.post("/tokenize", responses=rs.documented(rs.TokenizeResponse, 400, 401, 404))
    async def tokenize(req: pr.TokenizeCompletionRequest | pr.TokenizeChatRequest) -> Response:
        """Token ids of a prompt, or of chat messages after the chat template."""
        P.check_model(state, req.model)
        if state.tokenizer is None:
            raise bad_request(f"{P.NO_TOKENIZER}: there is no tokenizer to tokenize with")
        if isinstance(req, pr.TokenizeChatRequest):
            ids = P.render_chat(state, req.messages, add_generation_prompt=req.add_generation_prompt,
                                continue_final_message=req.continue_final_message,
                                template_kwargs=req.chat_template_kwargs)
        else:
            ids = list(state.tokenizer(req.prompt, add_special_tokens=req.add_special_tokens).input_ids)
        return _json({"count": len(ids), "max_model_len": state.max_model_len, "tokens": ids})

    @app.post("/detokenize", responses=rs.documented(rs.DetokenizeResponse, 400, 401, 404))
    async def detokenize(req: pr.DetokenizeRequest) -> Response:
        P.check_model(state, req.model)
        if state.tokenizer is None:
            raise bad_request(f"{P.NO_TOKENIZER}: there is no tokenizer to detokenize with")
        ids = P.check_token_ids(state, req.tokens, "tokens")
        return _json({"prompt": state.tokenizer.decode(ids)})

    @app.get("/tokenizer_info", responses=rs.documented(rs.TokenizerInfo, 400, 401))
    async def tokenizer_info() -> Response:
        """What a client needs to tokenize like the server (lm-eval's tokenizer backend)."""
        if state.tokenizer is None:
            raise bad_request(f"{P.NO_TOKENIZER}: there is no tokenizer to describe")
        tok = state.tokenizer
        return _json({"tokenizer_class": type(tok).__name__, "eos_token": tok.eos_token, "bos_token": tok.bos_token,
                      "pad_token": tok.pad_token, "unk_token": tok.unk_token,
                      "chat_template": state.chat_template or tok.chat_template,
                      "model_max_length": state.max_model_len, "vocab_size": len(tok)})


def _service_routes(app: FastAPI, state: ServerState) -> None:
    @app.get("/health", responses=rs.documented(rs.HealthResponse, 503))
    async def health() -> Response:
        """200 while serving; 503 once draining or when the engine process has died."""
        if state.client.is_dead:
            return error_response(503, f"the engine is dead: {state.client.dead_message}")
        if state.draining:
            return error_response(503, "the server is draining (shutting down)")
        return _json({"status": "ok"})

    @app.get("/metrics", responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                         "description": "Prometheus text format"}})
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/version", responses=rs.documented(rs.VersionResponse))
    async def version() -> Response:
        return _json({"version": __version__})
