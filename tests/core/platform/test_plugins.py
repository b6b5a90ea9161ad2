"""General plugins: pluggy hookspecs, historic registration, unknown hooks rejected."""

from __future__ import annotations

import pluggy
import pytest

from plinth.platform import plugins
from plinth.platform.hookspecs import hookimpl


class _Registry:
    def __init__(self):
        self.items = {}

    def register(self, name, obj):
        self.items[name] = obj


def test_historic_registration_reaches_late_plugins():
    pm = plugins.new_plugin_manager(autoload=False)
    registry = _Registry()
    pm.hook.plinth_register_models.call_historic(kwargs={"registry": registry})

    class Late:
        @hookimpl
        def plinth_register_models(self, registry):
            registry.register("MyArch", object)

    pm.register(Late())
    assert "MyArch" in registry.items


def test_firstresult_selection_hook():
    pm = plugins.new_plugin_manager(autoload=False)

    class Chooser:
        @hookimpl
        def plinth_select_attention_backend(self, backends):
            return backends[-1]

    pm.register(Chooser())
    assert pm.hook.plinth_select_attention_backend(platform_name="cpu", selector=None, backends=["a", "b"]) == "b"


def test_unknown_hook_is_rejected():
    pm = plugins.new_plugin_manager(autoload=False)

    class Typo:
        @hookimpl
        def plinth_register_modles(self, registry):
            pass

    pm.register(Typo())
    with pytest.raises(pluggy.PluginValidationError):
        pm.check_pending()


def test_autoload_switch(monkeypatch):
    calls = []
    monkeypatch.setattr(pluggy.PluginManager, "load_setuptools_entrypoints",
                        lambda self, group: calls.append(group))
    monkeypatch.setenv(plugins.DISABLE_AUTOLOAD_ENV, "1")
    plugins.new_plugin_manager()
    assert calls == []
    monkeypatch.delenv(plugins.DISABLE_AUTOLOAD_ENV)
    plugins.new_plugin_manager()
    assert calls == [plugins.PLUGIN_GROUP]


def test_quantization_methods_hook_adds_to_the_platform_methods():
    from plinth.platform.linear_method import TorchLinearMethod, linear_methods

    class Int4(TorchLinearMethod):
        name = "int4"

    pm = plugins.new_plugin_manager(autoload=False)

    class Plugin:
        @hookimpl
        def plinth_register_quantization_methods(self, registry):
            assert set(registry.methods) == {"unquantized"}  # the platform's own are visible
            registry.register("int4", Int4())

    pm.register(Plugin())
    methods = linear_methods({"unquantized": TorchLinearMethod()}, pm)
    assert sorted(methods) == ["int4", "unquantized"] and isinstance(methods["int4"], Int4)


def test_a_registered_quantization_method_must_be_a_linear_method():
    from plinth.platform.linear_method import LinearMethodRegistry

    with pytest.raises(TypeError, match="must be a plinth.platform.linear_method.LinearMethod"):
        LinearMethodRegistry().register("bad", object())
