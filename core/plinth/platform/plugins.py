"""Loading general plugins (pluggy, entry-point group ``plinth.plugins``)."""

from __future__ import annotations

import functools
import os

import pluggy

from plinth.platform import hookspecs

PLUGIN_GROUP = "plinth.plugins"
DISABLE_AUTOLOAD_ENV = "PLINTH_DISABLE_PLUGIN_AUTOLOAD"


def new_plugin_manager(autoload: bool | None = None) -> pluggy.PluginManager:
    """A manager with plinth's hookspecs and, unless disabled, installed plugins loaded.

    Autoloading is off when ``PLINTH_DISABLE_PLUGIN_AUTOLOAD`` is set to a non-empty value.
    Raises ``pluggy.PluginValidationError`` when a plugin implements an unknown hook.
    """
    pm = pluggy.PluginManager("plinth")
    pm.add_hookspecs(hookspecs)
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if autoload:
        pm.load_setuptools_entrypoints(PLUGIN_GROUP)
    pm.check_pending()
    return pm


@functools.lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    """The process's plugin manager, created on first use."""
    return new_plugin_manager()
