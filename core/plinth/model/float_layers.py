"""Layers a quantized checkpoint keeps in float, matched against layer prefixes as vLLM matches them."""

from __future__ import annotations

import re
from dataclasses import dataclass


def fused_shards() -> dict[str, tuple[str, ...]]:
    """A fused layer's checkpoint shards, from the Llama family's ``STACKED_PARAMS`` (the models plinth fuses;
    vLLM's ``packed_modules_mapping``): ``{"qkv_proj": ("q_proj", "k_proj", "v_proj"), ...}``."""
    from plinth.model.llama import STACKED_PARAMS  # here: llama builds with a BuildContext, which imports this

    shards: dict[str, tuple[str, ...]] = {}
    for fused, shard, _ in STACKED_PARAMS:
        shards[fused] = (*shards.get(fused, ()), shard)
    return shards


@dataclass(frozen=True)
class FloatLayers:
    """A checkpoint's list of layers left unquantized (``ignored_layers``, ``modules_to_not_convert`` or
    compressed-tensors ``ignore``). An entry is a module name, equal to the whole layer prefix
    (``model.layers.0.mlp.down_proj``), or ``re:<regex>``, which ``re.match``-es the prefix."""

    entries: tuple[str, ...]  # as the config lists them
    source: str  # where they come from (``quantization_config.ignored_layers``), for messages

    def keeps(self, prefix: str) -> bool:
        """Whether the layer at ``prefix`` stays in float. A fused layer (``qkv_proj``, ``gate_up_proj``) is
        judged by its checkpoint shards (``q_proj``, ``k_proj``, ``v_proj``), which must all agree."""
        module, _, proj = prefix.rpartition(".")
        shards = fused_shards().get(proj)
        if shards is None:
            return self.lists(prefix)
        names = [f"{module}.{shard}" if module else shard for shard in shards]
        listed = [self.lists(name) for name in names]
        if any(listed) and not all(listed):
            kept = [n for n, keep in zip(names, listed, strict=True) if keep]
            rest = [n for n, keep in zip(names, listed, strict=True) if not keep]
            raise ValueError(
                f"{self.source} keeps {', '.join(kept)} in float but not {', '.join(rest)}: plinth runs them as one "
                f"fused layer ({prefix}) with one linear method, so all of its shards must be listed or none; "
                "fix the list, or load the checkpoint with quantization='unquantized' (float weights)")
        return listed[0]

    def lists(self, name: str) -> bool:
        """Whether an entry names ``name`` (whole) or a ``re:`` pattern matches it."""
        for entry in self.entries:
            if entry.startswith("re:"):
                if re.match(entry[3:], name):
                    return True
            elif entry == name:
                return True
        return False
