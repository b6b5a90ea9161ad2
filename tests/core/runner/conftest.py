"""Shared helpers for the sampler tests: build metadata with sensible defaults."""

from __future__ import annotations

import pytest
import torch

from plinth.runner.sampling_metadata import SamplingMetadata, make_generator

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture
def build_metadata():
    """``build_metadata(params_list, vocab_size, outputs=None, prompts=None, eos=(), device="cpu", ...)``.

    Seeded rows get fresh generators unless ``generators`` is passed.
    """

    def build(params_list, vocab_size, outputs=None, prompts=None, eos=(), device="cpu", **kwargs):
        rows = len(params_list)
        if "generators" not in kwargs:
            kwargs["generators"] = [
                make_generator(p.seed, device) if p.seed is not None else None for p in params_list
            ]
        return SamplingMetadata.build(
            params_list,
            prompts if prompts is not None else [[] for _ in range(rows)],
            outputs if outputs is not None else [[] for _ in range(rows)],
            vocab_size=vocab_size,
            device=device,
            eos_token_ids=eos,
            **kwargs,
        )

    return build
