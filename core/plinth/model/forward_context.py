"""The scoped per-step context through which attention layers find their metadata and caches."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ForwardContext:
    """What every attention layer reads during one model forward.

    The model runner builds one per step and enters it with :func:`forward_context`.
    """

    # The attention backend's metadata for this step: what
    # ``AttentionBackend.build_metadata(common)`` returned (by default the
    # ``CommonAttentionMetadata`` itself). Requirement on backends whose metadata is
    # another object: it must expose the step's ``slot_mapping`` (int64 [num_tokens],
    # -1 = padding) as an attribute, because ``Attention`` passes it to ``write_kv``.
    attn_metadata: Any
    # One cache tensor per attention layer, indexed by ``layer_index``, each in the
    # layout that the backend's ``kv_cache_shape`` gives.
    kv_caches: list[torch.Tensor]


_CURRENT: contextvars.ContextVar[ForwardContext | None] = contextvars.ContextVar(
    "plinth_forward_context", default=None
)


@contextlib.contextmanager
def forward_context(ctx: ForwardContext) -> Iterator[ForwardContext]:
    """Make ``ctx`` the current forward context inside the ``with`` block (nesting restores)."""
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)


def get_forward_context() -> ForwardContext:
    """The current forward context; raises when the model runs outside ``forward_context``."""
    ctx = _CURRENT.get()
    if ctx is None:
        raise RuntimeError(
            "no forward context: run the model inside `with forward_context(ForwardContext(attn_metadata, "
            "kv_caches)):` (plinth.model.forward_context); attention layers need the step's metadata and KV caches"
        )
    return ctx
