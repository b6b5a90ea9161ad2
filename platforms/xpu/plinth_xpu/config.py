"""XPU capability and config decisions (pure functions of torch's namespaces: testable without a GPU)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from plinth.platform import ConfigPatch

#: decode batch sizes captured as XPU graphs
CAPTURE_SIZES = (1, 2, 4, 8, *range(16, 257, 16))


def has_xpu_graphs(xpu: ModuleType) -> bool:
    """Whether this torch offers XPU graphs (``torch.xpu.XPUGraph``; recent torch only)."""
    return all(hasattr(xpu, name) for name in ("XPUGraph", "graph", "graph_pool_handle"))


def has_xccl(dist: ModuleType) -> bool:
    """Whether torch.distributed was built with the oneCCL (xccl) backend (torch >= 2.8)."""
    check = getattr(dist, "is_xccl_available", None)
    return bool(check and check())


def has_ipex() -> bool:
    """intel-extension-for-pytorch is optional (archived, pinned to torch 2.8): only detected, never required."""
    return importlib.util.find_spec("intel_extension_for_pytorch") is not None


def graph_modes(xpu: ModuleType) -> tuple[str, ...]:
    return ("xpu_graph", "eager") if has_xpu_graphs(xpu) else ("eager",)


def xpu_config_patch(config, modes: tuple[str, ...], supported_block_sizes: tuple[int, ...]) -> ConfigPatch:
    """Block size, graph mode and capture sizes; refuses graph modes this torch cannot do."""
    errors = []
    mode = config.graph.mode
    if mode not in ("auto", *modes):
        errors.append(f"graph mode {mode!r} is not available on xpu with this torch; use one of {modes}"
                      + ("" if "xpu_graph" in modes else " (XPU graphs need a torch with torch.xpu.XPUGraph)"))
    block_size = None if config.cache.block_size in supported_block_sizes else 16
    max_seqs = config.scheduler.max_num_seqs
    sizes = tuple(s for s in CAPTURE_SIZES if s <= max_seqs)
    return ConfigPatch(block_size=block_size, graph_mode=modes[0] if mode == "auto" else None,
                       capture_sizes=sizes if "xpu_graph" in modes else None, errors=tuple(errors))
