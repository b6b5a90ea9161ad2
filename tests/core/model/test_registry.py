"""The architecture registry and its plugin hook."""

from __future__ import annotations

import pytest

from plinth.model.llama import LlamaForCausalLM
from plinth.model.registry import ModelRegistry, UnsupportedArchitectureError
from plinth.platform.hookspecs import hookimpl
from plinth.platform.plugins import new_plugin_manager


class MyModelForCausalLM(LlamaForCausalLM):
    pass


class MyPlugin:
    @hookimpl
    def plinth_register_models(self, registry):
        registry.register("MyModelForCausalLM", MyModelForCausalLM)


def test_builtins_resolve():
    registry = ModelRegistry()
    assert registry.resolve(["LlamaForCausalLM"]) is LlamaForCausalLM
    assert registry.resolve(["Unknown", "Qwen3ForCausalLM"]).__name__ == "Qwen3ForCausalLM"


def test_unknown_architecture_lists_the_supported_ones():
    with pytest.raises(UnsupportedArchitectureError, match="GPTNeoXForCausalLM.*LlamaForCausalLM.*Qwen3ForCausalLM"):
        ModelRegistry().resolve(["GPTNeoXForCausalLM"])


def test_plugin_registers_an_architecture():
    pm = new_plugin_manager(autoload=False)
    pm.register(MyPlugin())
    registry = ModelRegistry.with_plugins(pm)
    assert registry.resolve("MyModelForCausalLM") is MyModelForCausalLM
    assert "MyModelForCausalLM" in registry.architectures


def test_historic_hook_reaches_a_plugin_registered_later():
    pm = new_plugin_manager(autoload=False)
    registry = ModelRegistry.with_plugins(pm)
    pm.register(MyPlugin())
    assert registry.resolve("MyModelForCausalLM") is MyModelForCausalLM
