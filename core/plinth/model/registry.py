"""Architecture names (HF ``config.json`` ``architectures``) -> model classes, plugin-extensible."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable

_BUILTIN = {
    "LlamaForCausalLM": "plinth.model.llama:LlamaForCausalLM",
    "MistralForCausalLM": "plinth.model.llama:MistralForCausalLM",
    "Qwen2ForCausalLM": "plinth.model.qwen2:Qwen2ForCausalLM",
    "Qwen3ForCausalLM": "plinth.model.qwen3:Qwen3ForCausalLM",
}


class UnsupportedArchitectureError(ValueError):
    """No registered model class implements the checkpoint's architecture."""


class ModelRegistry:
    """Maps architecture names to model classes (or ``"module:Class"`` strings, imported lazily).

    General plugins add entries through the ``plinth_register_models(registry)`` hook.
    """

    def __init__(self, builtins: bool = True) -> None:
        self._models: dict[str, type | str] = dict(_BUILTIN) if builtins else {}

    def register(self, architecture: str, model_class: type | str) -> None:
        """Map ``architecture`` to ``model_class``; a later registration replaces an earlier one."""
        self._models[architecture] = model_class

    @property
    def architectures(self) -> list[str]:
        """Every supported architecture name, sorted."""
        return sorted(self._models)

    def resolve(self, architectures: str | Iterable[str]) -> type:
        """The class of the first supported name in ``architectures``."""
        names = [architectures] if isinstance(architectures, str) else list(architectures or [])
        for name in names:
            if name in self._models:
                return self._load(name)
        raise UnsupportedArchitectureError(
            f"model architecture(s) {names} not supported; supported: {', '.join(self.architectures)}. "
            "A plugin can add one through the plinth_register_models hook."
        )

    def _load(self, name: str) -> type:
        entry = self._models[name]
        if isinstance(entry, str):
            module, _, qualname = entry.partition(":")
            entry = getattr(importlib.import_module(module), qualname)
            self._models[name] = entry
        return entry

    @classmethod
    def with_plugins(cls, plugin_manager) -> ModelRegistry:
        """A registry with the built-in models plus those ``plugin_manager``'s plugins register."""
        registry = cls()
        plugin_manager.hook.plinth_register_models.call_historic(kwargs={"registry": registry})
        return registry


@functools.lru_cache(maxsize=1)
def model_registry() -> ModelRegistry:
    """The process's registry: built-ins plus the installed general plugins' models."""
    from plinth.platform.plugins import plugin_manager

    return ModelRegistry.with_plugins(plugin_manager())
