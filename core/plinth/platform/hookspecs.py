"""Every hook a general plugin (entry-point group ``plinth.plugins``) may implement.

Selection hooks are ``firstresult`` (the first non-None answer wins); registration
hooks are ``historic`` (a plugin registered late still sees the call). A hookimpl
may accept any subset of the arguments. Unknown hook names are rejected at start-up.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("plinth")
hookimpl = pluggy.HookimplMarker("plinth")


@hookspec(historic=True)
def plinth_register_models(registry):
    """Register model architectures.

    Called once when plugins load. ``registry.register(architecture_name, model_class)``
    maps an HF ``config.json`` ``architectures`` entry to a model class.
    """


@hookspec
def plinth_register_quantization_methods(registry):
    """Register quantization formats for an engine being built: ``registry.register(name, method)``
    with a :class:`plinth.platform.linear_method.LinearMethod`; ``registry.methods`` holds the
    platform's own. Called once per engine (users pick one with ``quantization=NAME``)."""


@hookspec(historic=True)
def plinth_register_logits_processors(registry):
    """Register named batch logits processors: ``registry.register(name, processor)``."""


@hookspec
def plinth_register_kernels(platform_name, registry):
    """Add kernels for an existing platform once it is selected.

    ``platform_name``: the selected device name. ``registry``: its
    :class:`plinth.platform.KernelRegistry`; call ``registry.register(op, fn, priority=...)``.
    """


@hookspec(firstresult=True)
def plinth_select_attention_backend(platform_name, selector, backends):
    """Choose an attention backend instead of the platform's first supporting one.

    ``selector``: :class:`plinth.platform.AttentionSelector`; ``backends``: the platform's
    backends. Return one of them, or None to keep the default choice.
    """


@hookspec(historic=True)
def plinth_register_cli_commands(app):
    """Add sub-commands to the ``plinth`` CLI; ``app`` is its ``typer.Typer``."""
