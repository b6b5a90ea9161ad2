"""What every model and layer constructor receives: kernels, backend, dtype, device, parallelism."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from plinth.model.float_layers import FloatLayers
from plinth.platform.attention import AttentionBackend
from plinth.platform.communicator import Communicator, SingleProcessCommunicator
from plinth.platform.kernels import KernelRegistry
from plinth.platform.linear_method import UNQUANTIZED, LinearMethod, TorchLinearMethod

_TORCH_LINEAR = TorchLinearMethod()


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``: the form kernel traits and KV specs use."""
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class BuildContext:
    """Passed explicitly to every model and layer constructor (never a global).

    Layers resolve their kernels once, at construction, through :meth:`resolve`.
    """

    kernels: KernelRegistry  # the platform's kernels; core's reference ops are the fallback
    attention_backend: AttentionBackend  # the backend selected for this model
    dtype: torch.dtype  # parameter and activation dtype
    device: torch.device  # where parameters are created
    block_size: int = 16  # tokens per KV-cache block
    kv_cache_dtype: str = "auto"  # KV storage dtype name; "auto" = ``dtype``
    tp_rank: int = 0  # this process's tensor-parallel rank
    tp_size: int = 1  # tensor-parallel world size
    communicator: Communicator = field(default_factory=SingleProcessCommunicator)  # TP collectives
    # the platform's linear methods by name (``Platform.quantization_methods()``); none = torch's F.linear
    linear_methods: Mapping[str, LinearMethod] = field(default_factory=dict)
    quantization: str | None = None  # the linear method the model's layers use; None = "unquantized"
    float_layers: FloatLayers | None = None  # layers the checkpoint keeps in float (unquantized method)

    def __post_init__(self) -> None:
        if self.tp_size < 1 or not 0 <= self.tp_rank < self.tp_size:
            raise ValueError(f"tp_rank must be in [0, tp_size); got tp_rank={self.tp_rank}, tp_size={self.tp_size}")
        if self.quantization is not None:
            self.linear_method()  # an unknown quantization fails at construction, with the offered names
        if not isinstance(self.device, torch.device):
            object.__setattr__(self, "device", torch.device(self.device))

    @property
    def cache_dtype_name(self) -> str:
        """The KV-cache storage dtype name with ``"auto"`` resolved to the model dtype."""
        return dtype_name(self.dtype) if self.kv_cache_dtype == "auto" else self.kv_cache_dtype

    def resolve(self, op: str, **traits: Any):
        """The kernel for ``op``, with this context's dtype and device type added to ``traits``."""
        traits.setdefault("dtype", dtype_name(self.dtype))
        traits.setdefault("device_type", self.device.type)
        return self.kernels.resolve(op, **traits)

    def linear_method(self, prefix: str = "") -> LinearMethod:
        """The method of the linear layer at ``prefix`` (its module name, ``model.layers.0.mlp.down_proj``):
        the unquantized one where the checkpoint keeps that layer in float (``float_layers``), else
        ``quantization`` (which the platform must offer) or the platform's unquantized method, else torch's
        ``F.linear``."""
        if prefix and self.float_layers is not None and self.float_layers.keeps(prefix):
            return self.unquantized_method()
        name = self.quantization or UNQUANTIZED
        method = self.linear_methods.get(name)
        if method is not None:
            return method
        if self.quantization is not None:
            offered = ", ".join(sorted(self.linear_methods)) or "none"
            raise ValueError(f"quantization {self.quantization!r} is not offered by this platform (offered: {offered})")
        return _TORCH_LINEAR

    def lm_head_method(self, prefix: str = "") -> LinearMethod:
        """The LM head's method: the one :meth:`linear_method` gives ``prefix``, unless that one leaves the
        head unquantized (``quantizes_lm_head``), then the unquantized method."""
        method = self.linear_method(prefix)
        if method.quantizes_lm_head:
            return method
        return self.unquantized_method()

    def unquantized_method(self) -> LinearMethod:
        """The platform's method for float weights, else torch's ``F.linear``."""
        return self.linear_methods.get(UNQUANTIZED, _TORCH_LINEAR)

    def empty(self, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        """An uninitialised tensor on this context's device, in its dtype unless given."""
        return torch.empty(*shape, dtype=dtype or self.dtype, device=self.device)
