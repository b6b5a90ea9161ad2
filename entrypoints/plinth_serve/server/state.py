"""What every route needs: the engine client, the tokenizer, names, limits and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plinth_serve.server.limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from plinth_serve.server.engine_client import EngineClient
    from plinth_serve.server.metrics import ServerMetrics


@dataclass
class ServerState:
    client: EngineClient  # the engine core's pipe
    tokenizer: Any  # the HF tokenizer (tokenization happens in the HTTP process); None: --skip-tokenizer-init
    served_names: list[str]  # names `model` may take; the first is reported
    metrics: ServerMetrics
    created: int  # unix time the model was loaded (/v1/models)
    limits: Limits = DEFAULT_LIMITS
    chat_template: str | None = None  # --chat-template, overriding the tokenizer's
    api_key_digests: list[bytes] = field(default_factory=list)  # sha256 of each accepted key
    draining: bool = False  # SIGTERM received: new requests get 503

    @property
    def model_name(self) -> str:
        return self.served_names[0]

    @property
    def max_model_len(self) -> int:
        return self.client.max_model_len

    @property
    def vocab_size(self) -> int:
        return (self.client.ready.vocab_size if self.client.ready else 0) or len(self.tokenizer or ())
