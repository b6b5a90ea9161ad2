"""Building a model and filling its weights: ``get_model(model_config, ctx)``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from plinth.model.registry import ModelRegistry, model_registry

if TYPE_CHECKING:
    from plinth.model.build_context import BuildContext
    from plinth.model.model_config import ModelConfig

LOAD_FORMATS = ("safetensors", "gguf", "dummy")


def get_model(
    model_config: ModelConfig, ctx: BuildContext, *, registry: ModelRegistry | None = None,
    progress: bool = True, seed: int = 0,
) -> nn.Module:
    """The model ``model_config`` describes, built with ``ctx`` and its weights loaded, in eval mode.

    ``load_format`` ``"safetensors"`` and ``"gguf"`` read ``model_config.model_path``;
    ``"dummy"`` fills random weights (``seed``) and touches no file.
    """
    registry = registry or model_registry()
    hf_config = model_config.hf_config
    model_class = registry.resolve(getattr(hf_config, "architectures", None) or [model_config.architecture])
    with torch.no_grad():
        model = model_class(hf_config, ctx)
        if ctx.float_layers is not None:
            _check_prefixes(model)
        if model_config.load_format == "dummy":
            from plinth.model.loader.dummy_loader import initialize_dummy_weights

            initialize_dummy_weights(model, seed)
        else:
            loaded = model.load_weights(_weights(model_config, ctx, progress))
            _check_complete(model, loaded, model_config)
        process_weights_after_loading(model)
    model.eval()
    bind_submodules(model)
    return model


def bind_submodules(model: nn.Module) -> None:
    """Copy every submodule and parameter reference into its owner's instance ``__dict__``.

    ``self.qkv_proj`` in a forward otherwise misses ``__dict__`` and runs ``nn.Module.__getattr__``
    (~0.5 us on a small CPU; ~460 times per decode step of a 30-layer Llama); ``__dict__`` hits
    cost ~0.02 us. State dicts and ``modules()`` are unchanged (they read ``_modules`` and
    ``_parameters``), and ``nn.Module.__setattr__`` drops the copy when an attribute is reassigned.
    Called once, after the weights are final.
    """
    for module in model.modules():
        for store in (module._modules, module._parameters):
            for name, value in store.items():
                if value is not None:
                    module.__dict__[name] = value


def process_weights_after_loading(model: nn.Module) -> None:
    """Let every layer that has a post-load step (linear methods: packing, quantizing) take it."""
    for module in model.modules():
        if hasattr(module, "process_weights_after_loading"):
            module.process_weights_after_loading()


def _check_prefixes(model: nn.Module) -> None:
    """Every linear layer knows its module name: the context finds the layers a checkpoint keeps in float by it."""
    from plinth.model.layers.linear import LinearBase

    for name, module in model.named_modules():
        if isinstance(module, LinearBase) and module.prefix != name:
            raise ValueError(f"{type(model).__name__} builds its linear layer {name} with prefix {module.prefix!r}; "
                             "this checkpoint keeps some layers in float and plinth finds them by prefix: pass "
                             f"prefix={name!r} to the layer")


def _weights(model_config: ModelConfig, ctx: BuildContext, progress: bool):
    if model_config.model_path is None:
        raise ValueError("this model config has no weights on disk; use load_format='dummy'")
    if model_config.load_format == "safetensors":
        from plinth.model.loader.fp8_checkpoint import dequantize_weights
        from plinth.model.loader.fp8_config import block_size, fp8_checkpoint
        from plinth.model.loader.safetensors_loader import iterate_safetensors

        hf_config = model_config.hf_config
        fp8 = fp8_checkpoint(hf_config)
        weights = iterate_safetensors(model_config.model_path, ctx.dtype, progress, keep_fp8=fp8)
        return dequantize_weights(weights, ctx.dtype, block_size(hf_config)) if fp8 else weights
    if model_config.load_format == "gguf":
        from plinth.model.loader.gguf_loader import iterate_gguf

        return iterate_gguf(model_config.model_path, model_config.hf_config, ctx.dtype, progress)
    raise ValueError(f"load_format {model_config.load_format!r} is not one of {LOAD_FORMATS}")


def _check_complete(model: nn.Module, loaded: set[str], model_config: ModelConfig) -> None:
    missing = sorted({name for name, _ in model.named_parameters()} - loaded)
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise ValueError(f"checkpoint {model_config.model_path} lacks weights for: {shown}")
