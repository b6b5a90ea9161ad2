"""The Attention layer with a backend whose metadata is not the common metadata."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from plinth.model.forward_context import ForwardContext, forward_context
from plinth.ops.reference_backend import ReferenceAttentionBackend, ReferenceAttentionImpl
from tests.core.model.batch_util import PagedDriver
from tests.core.model.test_models import PROMPTS, load_ours


@dataclass
class WrappedMetadata:
    common: object
    slot_mapping: torch.Tensor  # the requirement ForwardContext documents


class WrappedImpl(ReferenceAttentionImpl):
    def forward(self, query, key, value, kv_cache, metadata, out):
        assert isinstance(metadata, WrappedMetadata)
        return super().forward(query, key, value, kv_cache, metadata.common, out)


class WrappingBackend(ReferenceAttentionBackend):
    name = "wrapping"

    def build_metadata(self, common):
        return WrappedMetadata(common, common.slot_mapping)

    def make_impl(self, spec):
        return WrappedImpl(spec)


def test_backend_metadata_reaches_the_impl(tiny_checkpoint):
    folder, _ = tiny_checkpoint("llama", name="llama-tied", tie_word_embeddings=True)
    model, backend = load_ours(folder)
    expected = PagedDriver(model, backend).step(PROMPTS)
    for layer in model.model.layers:  # same weights, another backend's impl
        layer.self_attn.attn.impl = WrappedImpl(layer.self_attn.attn.impl.spec)
    got = PagedDriver(model, WrappingBackend()).step(PROMPTS)
    for req in PROMPTS:
        torch.testing.assert_close(got[req], expected[req])


def test_output_rows_past_the_real_tokens_do_not_disturb_real_ones(tiny_checkpoint):
    """A padded flat batch (slot -1 on padding) gives the real tokens the same logits."""
    folder, _ = tiny_checkpoint("llama", name="llama-tied", tie_word_embeddings=True)
    model, backend = load_ours(folder)
    driver = PagedDriver(model, backend)
    ids, positions, md = driver.metadata({"a": PROMPTS["a"]})
    padded = replace(md, slot_mapping=torch.cat([md.slot_mapping, torch.full((3,), -1)]))
    pad = torch.zeros(3, dtype=ids.dtype)
    with torch.no_grad(), forward_context(ForwardContext(padded, driver.kv_caches)):
        hidden = model(torch.cat([ids, pad]), torch.cat([positions, pad]))
    with torch.no_grad(), forward_context(ForwardContext(md, driver.kv_caches)):
        unpadded = model(ids, positions)
    torch.testing.assert_close(hidden[: len(ids)], unpadded)
