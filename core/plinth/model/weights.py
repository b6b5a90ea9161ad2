"""Loading HF-named checkpoint tensors into a model through its parameters' weight loaders."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from plinth.model.layers.linear import default_weight_loader

#: ``(our_name, checkpoint_name, shard_id)``: checkpoint projections merged into one parameter
StackedMapping = Sequence[tuple[str, str, Any]]


class UnknownWeightError(KeyError):
    """A checkpoint tensor has no parameter in the model (wrong architecture or a bad file)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def load_named_weights(
    model: nn.Module,
    weights: Iterable[tuple[str, torch.Tensor]],
    stacked: StackedMapping = (),
    skip: Sequence[str] = (),
) -> set[str]:
    """Feed every ``(hf_name, tensor)`` to the weight loader of the parameter it maps to.

    ``stacked`` renames merged projections (``q_proj`` -> ``qkv_proj`` with shard ``"q"``);
    names containing any ``skip`` substring are ignored. Returns the names of the model's
    parameters that received every shard they expect.
    """
    params = dict(model.named_parameters())
    expected: dict[str, set] = {}
    for ours, _, shard in stacked:
        expected.setdefault(ours, set()).add(shard)
    seen: dict[str, set] = {}
    for name, tensor in weights:
        if any(s in name for s in skip):
            continue
        target, shard = _map_name(name, stacked)
        param = params.get(target)
        if param is None:
            raise UnknownWeightError(
                f"checkpoint tensor {name!r} has no parameter in {type(model).__name__} (looked for {target!r}); "
                "is the checkpoint's architecture the one in its config?"
            )
        loader = getattr(param, "weight_loader", default_weight_loader)
        try:
            loader(param, tensor) if shard is None else loader(param, tensor, shard)
        except ValueError as exc:
            raise ValueError(f"loading {name!r}: {exc}") from exc
        seen.setdefault(target, set()).add(shard)
    return {
        name for name, shards in seen.items()
        if shards >= expected.get(_stacked_key(name, stacked), {None})
    }


def _map_name(name: str, stacked: StackedMapping) -> tuple[str, Any]:
    for ours, theirs, shard in stacked:
        part = f".{theirs}."
        if part in name:
            return name.replace(part, f".{ours}."), shard
    return name, None


def _stacked_key(param_name: str, stacked: StackedMapping) -> str:
    for ours, _, _ in stacked:
        if f".{ours}." in param_name:
            return ours
    return ""
