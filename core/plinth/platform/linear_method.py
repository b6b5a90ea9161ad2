"""Linear methods: how a linear layer stores its weight and computes ``x W^T + b``.

A platform offers them through ``Platform.quantization_methods()`` by name (vLLM's
``LinearMethodBase``): ``"unquantized"`` for plain float weights (e.g. pre-packed for the
platform's GEMM library) and one entry per quantization format (e.g. ``"int8_weight_only"``).
Model layers receive them through ``BuildContext.linear_methods`` and call ``prepare`` once,
after the checkpoint is loaded, then ``apply`` on every forward. Semantics are always those of
``TorchLinearMethod`` on the weight ``prepare`` received (a quantized method, or a GGML block
weight: on its dequantized weight, in the activations' dtype).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

UNQUANTIZED = "unquantized"


class LinearMethod(ABC):
    """Stores and applies one linear layer's weight ``[out_features, in_features]``."""

    #: the key this method is offered under in ``Platform.quantization_methods()``
    name: str = UNQUANTIZED
    #: GGML block types (``plinth.model.ggml_tensor.GGMLTensor.type_name``, e.g. ``"Q4_1"``) this
    #: method takes as they are: a GGUF weight of such a type reaches ``prepare`` as a ``GGMLTensor``
    #: (kept quantized); weights of other types reach it dequantized, as float tensors
    ggml_types: frozenset[str] = frozenset()
    #: whether the LM head (the projection onto the vocabulary) uses this method too; when False it keeps
    #: the platform's unquantized method, as vLLM keeps it 16-bit under ``--quantization fp8``
    quantizes_lm_head: bool = True

    def takes_ggml(self, type_name: str, dtype: Any) -> bool:
        """Whether a GGML ``type_name`` weight of a model whose activations are ``dtype`` reaches
        :meth:`prepare` as blocks: by default when the type is in ``ggml_types``; a method may keep
        blocks only where its kernels pay off (e.g. bf16 activations)."""
        return type_name in self.ggml_types

    @abstractmethod
    def prepare(self, weight: Any) -> Any:
        """The form ``apply`` reads (packed, quantized, or ``weight`` itself), made once after
        loading. Must not modify ``weight``; may return it unchanged."""

    @abstractmethod
    def apply(self, x: Any, prepared: Any, bias: Any | None = None) -> Any:
        """``x [..., in_features] -> [..., out_features]`` in ``x``'s dtype. ``prepared`` is what
        :meth:`prepare` returned, or the plain float weight when a layer was never prepared."""

    def prepare_gated(self, weight: Any) -> Any:
        """The form :meth:`apply_silu_and_mul` reads, for a merged gate/up weight ``[2 * I, in_features]``
        (this rank's gate rows, then its up rows), made once after loading. A method may reorder the
        rows for a fused kernel (e.g. gate and up interleaved); by default it is :meth:`prepare`'s form."""
        return self.prepare(weight)

    def apply_silu_and_mul(self, x: Any, prepared: Any, bias: Any | None, silu_and_mul: Any) -> Any:
        """``silu(x W_gate^T + b_gate) * (x W_up^T + b_up)``: ``[..., in_features] -> [..., I]`` in ``x``'s
        dtype, with the rounding of the unfused path (each projection rounded to ``x``'s dtype, then
        ``silu_and_mul``). ``prepared`` is what :meth:`prepare_gated` returned, or the plain float weight
        when the layer was never prepared; ``bias`` is ``[2 * I]`` (gate, then up) or None;
        ``silu_and_mul`` is the platform's ``Op.SILU_AND_MUL`` kernel. By default :meth:`apply`, then
        ``silu_and_mul``; a method may fuse the two (one pass, no ``[..., 2 * I]`` intermediate)."""
        return silu_and_mul(self.apply(x, prepared, bias))

    def apply_add(self, x: Any, prepared: Any, bias: Any | None, residual: Any) -> Any | None:
        """``residual += x W^T + b``, in place, returning ``residual``, where the method adds inside its GEMM
        (the layer that follows then reads one tensor, not two); or None where it does not, which is the
        default, and then the caller adds :meth:`apply`'s output itself (e.g. in the next fused add +
        RMSNorm). ``x [M, in_features]``; ``residual [M, out_features]``, contiguous, in ``x``'s dtype; the
        sum is rounded once, to that dtype."""
        return None


class TorchLinearMethod(LinearMethod):
    """The reference and the default: ``torch.nn.functional.linear`` on the float weight."""

    def prepare(self, weight):
        return weight

    def apply(self, x, prepared, bias=None):
        import torch.nn.functional as F

        return F.linear(x, prepared, bias)


class LinearMethodRegistry:
    """The linear methods one engine may use: the platform's, plus those general plugins add
    through the ``plinth_register_quantization_methods(registry)`` hook."""

    def __init__(self, methods: dict[str, LinearMethod] | None = None) -> None:
        self.methods: dict[str, LinearMethod] = dict(methods or {})

    def register(self, name: str, method: LinearMethod) -> None:
        if not isinstance(method, LinearMethod):
            raise TypeError(f"quantization method {name!r} must be a plinth.platform.linear_method.LinearMethod, "
                            f"got {type(method).__name__}")
        self.methods[name] = method


def linear_methods(platform_methods: dict[str, LinearMethod], plugin_manager: Any) -> dict[str, LinearMethod]:
    """The platform's methods with the plugins' registrations added (a plugin may add a format or
    replace one by name)."""
    registry = LinearMethodRegistry(platform_methods)
    plugin_manager.hook.plinth_register_quantization_methods(registry=registry)
    return registry.methods
