"""plinth: an LLM inference engine whose accelerators are plugins."""

from __future__ import annotations

__version__ = "0.1.0"
