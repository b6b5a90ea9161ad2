"""ROCm defaults by GPU generation (pure Python: testable without a GPU)."""

from __future__ import annotations

from plinth.platform import ConfigPatch

#: decode batch sizes captured as HIP graphs: vLLM's ladder (1, 2, 4, multiples of 8 below 256, of 16 up to 512)
CAPTURE_SIZES = (1, 2, 4, *range(8, 256, 8), *range(256, 513, 16))
GRAPH_MODES = ("hip_graph", "eager")
#: CDNA3 (MI300X/MI325X, gfx942) and CDNA4 (MI350, gfx950): 192-288 GB HBM, 304/256 CUs
MI300_CLASS = ("gfx942", "gfx950")


def rocm_batch_defaults(arch: str) -> tuple[int | None, int | None]:
    """``(max_num_seqs, max_num_batched_tokens)`` where the user sets none (``Capabilities``): MI300-class GPUs
    (large HBM, many CUs) take vLLM's defaults for 70+ GiB devices, 1,024 requests and 16,384 tokens a step, so
    prefill steps stay large; others keep core's."""
    return (1024, 16384) if arch in MI300_CLASS else (None, None)


def rocm_config_patch(config, arch: str, supported_block_sizes: tuple[int, ...]) -> ConfigPatch:
    """Block size, graph mode and capture sizes for ``arch`` (a gfx name)."""
    errors = []
    mode = config.graph.mode
    if mode not in ("auto", *GRAPH_MODES):
        errors.append(f"graph mode {mode!r} is not available on rocm; use one of {GRAPH_MODES}")
    block_size = None if config.cache.block_size in supported_block_sizes else 16
    max_seqs = config.scheduler.max_num_seqs
    sizes = tuple(s for s in CAPTURE_SIZES if s <= max_seqs)
    if max_seqs not in sizes and max_seqs <= 512:
        sizes = (*sizes, max_seqs)
    return ConfigPatch(block_size=block_size, graph_mode="hip_graph" if mode == "auto" else None,
                       capture_sizes=sizes, errors=tuple(errors))
