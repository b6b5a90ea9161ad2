"""Layers whose rotary a ``RotarySpec`` describes let the backend rotate k as it writes the cache (contract 1.7):
a backend that does gives transformers' logits; one that declines gets the rotary and ``write_kv`` as before."""

from __future__ import annotations

import pytest
import torch

from plinth.model.build_context import BuildContext
from plinth.model.llama import LlamaAttention
from plinth.model.loader import get_model
from plinth.model.model_config import ModelConfig
from plinth.model.qwen3 import Qwen3Attention
from plinth.ops import reference
from plinth.ops.reference_backend import ReferenceAttentionBackend, ReferenceAttentionImpl
from plinth.platform.attention import AttentionImpl
from plinth.platform.kernels import KernelRegistry
from tests.core.model.batch_util import PagedDriver
from tests.core.model.test_models import ATOL, RTOL, run_schedule


class CountingImpl(ReferenceAttentionImpl):
    def __init__(self, spec, calls, fuse):
        super().__init__(spec)
        self.calls, self.fuse = calls, fuse

    def write_kv(self, key, value, kv_cache, slot_mapping):
        self.calls["write_kv"] += 1
        super().write_kv(key, value, kv_cache, slot_mapping)

    def write_kv_rotary(self, positions, query, key, value, kv_cache, slot_mapping, rotary):
        if not self.fuse:
            return super().write_kv_rotary(positions, query, key, value, kv_cache, slot_mapping, rotary)
        self.calls["fused"] += 1
        self.calls["norm"] += rotary.q_norm_weight is not None
        args = (positions, query, key, rotary.head_size, rotary.cos_sin_cache, rotary.is_neox_style)
        q, k = (reference.rotary_embedding(*args) if rotary.q_norm_weight is None
                else reference.qk_norm_rotary(*args, rotary.q_norm_weight, rotary.k_norm_weight, rotary.eps))
        heads = self.spec.num_kv_heads
        reference.write_kv(k.view(k.shape[0], heads, -1), value.reshape(k.shape[0], heads, -1), kv_cache,
                           slot_mapping)
        return q, k


class CountingBackend(ReferenceAttentionBackend):
    def __init__(self, fuse: bool) -> None:
        self.fuse = fuse
        self.calls = {"fused": 0, "norm": 0, "write_kv": 0}

    def make_impl(self, spec):
        return CountingImpl(spec, self.calls, self.fuse)


def _run(folder, backend):
    config = ModelConfig.from_source(folder, dtype="float32")
    model = get_model(config, BuildContext(KernelRegistry(), backend, config.dtype, torch.device("cpu"), block_size=4),
                      progress=False)
    return model, run_schedule(PagedDriver(model, backend, device="cpu"))


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_a_backend_that_rotates_while_writing_gives_transformers_logits(arch, tiny_checkpoint):
    folder, hf_model = tiny_checkpoint(arch, name=f"{arch}-rotary-write", tie_word_embeddings=True)
    backend = CountingBackend(fuse=True)
    model, results = _run(folder, backend)
    layers, steps = model.config.num_hidden_layers, 2 + 5  # run_schedule: 2 mixed steps, 5 decode steps
    assert backend.calls["fused"] == layers * steps and backend.calls["write_kv"] == 0
    assert backend.calls["norm"] == (layers * steps if arch == "qwen3" else 0)  # Qwen3's q/k norms go along
    for req, (tokens, ours) in results.items():
        with torch.no_grad():
            ref = hf_model(torch.tensor([tokens])).logits[0]
        torch.testing.assert_close(ours, ref, atol=ATOL, rtol=RTOL, msg=lambda m, req=req: f"{arch}/{req}: {m}")


def test_a_backend_that_declines_gets_rotary_then_write_kv(tiny_checkpoint):
    folder, _ = tiny_checkpoint("llama", name="llama-rotary-write", tie_word_embeddings=True)
    declining = CountingBackend(fuse=False)
    model, results = _run(folder, declining)
    assert declining.calls["fused"] == 0 and declining.calls["write_kv"] == model.config.num_hidden_layers * 7
    _, fused = _run(folder, CountingBackend(fuse=True))
    for req in results:
        assert results[req][0] == fused[req][0]
        torch.testing.assert_close(results[req][1], fused[req][1], atol=1e-6, rtol=1e-6)


def test_a_changed_position_qk_is_not_described(tiny_checkpoint):
    """A subclass that changes ``position_qk`` without describing it gets no ``RotarySpec``, so the backend never
    applies a rotary the layer does not do."""
    for arch, base in (("llama", LlamaAttention), ("qwen3", Qwen3Attention)):
        folder, _ = tiny_checkpoint(arch, name=f"{arch}-rotary-write", tie_word_embeddings=True)
        model, _ = _run(folder, CountingBackend(fuse=True))
        attn = model.model.layers[0].self_attn
        spec = attn.rotary_spec()
        assert spec is not None and spec.head_size == attn.head_size
        assert (spec.q_norm_weight is attn.q_norm.weight) if arch == "qwen3" else spec.q_norm_weight is None
        attn.__class__ = type("Shifted", (base,), {"position_qk": lambda self, p, q, k: (q, k)})
        assert attn.rotary_spec() is None


def test_the_default_declines():
    class Plain(AttentionImpl):
        def write_kv(self, key, value, kv_cache, slot_mapping):
            raise AssertionError("not called")

        def forward(self, query, key, value, kv_cache, metadata, out):
            raise AssertionError("not called")

    t = torch.zeros(2, 4)
    assert Plain().write_kv_rotary(torch.zeros(2, dtype=torch.long), t, t, t, t, torch.zeros(2), None) is None


def test_a_backend_without_the_hook_is_never_asked(tiny_checkpoint):
    """Layers skip describing their rotary where the backend's impl keeps the default ``write_kv_rotary``."""
    folder, _ = tiny_checkpoint("llama", name="llama-rotary-write", tie_word_embeddings=True)
    plain, _ = _run(folder, ReferenceAttentionBackend())
    assert not any(layer.self_attn.attn.fuses_rotary for layer in plain.model.layers)
    fusing, _ = _run(folder, CountingBackend(fuse=False))
    assert all(layer.self_attn.attn.fuses_rotary for layer in fusing.model.layers)
