"""plinth: an LLM inference engine whose accelerators are plugins."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["LLM", "SamplingParams", "RequestOutput", "CompletionOutput", "__version__"]

if TYPE_CHECKING:
    from plinth.llm import LLM
    from plinth.outputs import CompletionOutput, RequestOutput
    from plinth.sampling_params import SamplingParams


def __getattr__(name: str):
    # Lazy: `import plinth` (and the contract, and the scheduler) must not import torch.
    if name == "LLM":
        from plinth.llm import LLM

        return LLM
    if name == "SamplingParams":
        from plinth.sampling_params import SamplingParams

        return SamplingParams
    if name in ("RequestOutput", "CompletionOutput"):
        from plinth import outputs

        return getattr(outputs, name)
    raise AttributeError(f"module 'plinth' has no attribute {name!r}")
