"""The base of core's model modules: calling one runs its ``forward`` directly."""

from __future__ import annotations

from typing import Any

from torch import nn


class Layer(nn.Module):
    """An ``nn.Module`` whose ``__call__`` is its ``forward``, without the hook machinery.

    ``nn.Module.__call__`` checks eight hook tables and the tracing state on every call
    (~0.5 us on a small CPU; a decode step of a 30-layer Llama makes ~360 calls). Core's
    layers use no hooks, so a subclass's ``__call__`` is bound to its own ``forward``;
    registering a forward hook raises instead of being silently skipped.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__call__ = cls.forward

    def _no_hooks(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} is a plinth Layer: calling it runs forward() directly, "
                        "so forward hooks would never run")

    register_forward_hook = _no_hooks
    register_forward_pre_hook = _no_hooks
