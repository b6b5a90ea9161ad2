"""Linear layers compute through the build context's linear method, prepared once after loading."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from plinth.model.build_context import BuildContext
from plinth.model.loader import get_model
from plinth.model.model_config import ModelConfig
from plinth.ops.reference_backend import ReferenceAttentionBackend
from plinth.platform.kernels import KernelRegistry
from plinth.platform.linear_method import UNQUANTIZED, LinearMethod
from tests.core.model.batch_util import PagedDriver
from tests.core.model.test_models import run_schedule


class HalfStepQuantized(LinearMethod):
    """A visible stand-in for a quantized format: weights rounded to multiples of 1/8 at prepare."""

    name = "eighths"

    def __init__(self) -> None:
        self.prepared: list[tuple[int, ...]] = []
        self.applied = 0

    def prepare(self, weight):
        self.prepared.append(tuple(weight.shape))
        return ("eighths", torch.round(weight * 8) / 8)

    def apply(self, x, prepared, bias=None):
        self.applied += 1
        tag, weight = prepared
        assert tag == "eighths", "a layer computed with an unprepared weight"
        return F.linear(x, weight, bias)


def _ctx(config, **kwargs):
    return BuildContext(KernelRegistry(), ReferenceAttentionBackend(), config.dtype, torch.device("cpu"),
                        block_size=4, **kwargs)


def _load(folder, **ctx_kwargs):
    config = ModelConfig.from_source(folder, dtype="float32")
    ctx = _ctx(config, **ctx_kwargs)
    return get_model(config, ctx, progress=False), ctx


def test_every_linear_and_the_lm_head_are_prepared_and_applied(tiny_checkpoint):
    folder, _ = tiny_checkpoint("llama", name="llama-tied", tie_word_embeddings=True)
    method = HalfStepQuantized()
    model, ctx = _load(folder, linear_methods={"eighths": method}, quantization="eighths")
    layers = model.config.num_hidden_layers
    assert len(method.prepared) == 4 * layers + 1  # qkv, o, gate_up, down per layer + the LM head
    assert (model.config.vocab_size, model.config.hidden_size) in method.prepared
    PagedDriver(model, ctx.attention_backend).step({"a": [1, 2, 3]})
    assert method.applied == 4 * layers + 1
    # a prepared linear releases its float weight; the LM head shares the embedding's and keeps it
    assert model.model.layers[0].mlp.gate_up_proj.weight.numel() == 0
    assert model.lm_head.weight.numel() == model.config.vocab_size * model.config.hidden_size
    # the tied embedding keeps its float weight: only the LM head's copy is rounded
    assert not torch.equal(model.model.embed_tokens.weight, torch.round(model.model.embed_tokens.weight * 8) / 8)


def test_a_quantized_model_equals_the_model_on_its_dequantized_weights(tiny_checkpoint):
    folder, _ = tiny_checkpoint("llama", tie_word_embeddings=False)
    quantized, ctx_q = _load(folder, linear_methods={"eighths": HalfStepQuantized()}, quantization="eighths")
    reference, ctx_r = _load(folder)
    with torch.no_grad():
        for module in reference.modules():
            if hasattr(module, "process_weights_after_loading"):
                module.weight.copy_(torch.round(module.weight * 8) / 8)
    ours = run_schedule(PagedDriver(quantized, ctx_q.attention_backend))
    ref = run_schedule(PagedDriver(reference, ctx_r.attention_backend))
    for req in ours:
        assert ours[req][0] == ref[req][0], f"{req}: greedy tokens differ"
        torch.testing.assert_close(ours[req][1], ref[req][1], atol=1e-5, rtol=1e-5)


def test_the_platform_unquantized_method_is_used_without_a_quantization(tiny_checkpoint):
    folder, _ = tiny_checkpoint("llama", tie_word_embeddings=False)
    method = HalfStepQuantized()
    _load(folder, linear_methods={UNQUANTIZED: method})
    assert len(method.prepared) == 4 * 2 + 1


def test_an_unknown_quantization_is_refused_with_the_offered_names():
    with pytest.raises(ValueError, match=r"quantization 'int4' is not offered by this platform \(offered: eighths\)"):
        BuildContext(KernelRegistry(), ReferenceAttentionBackend(), torch.float32, torch.device("cpu"),
                     linear_methods={"eighths": HalfStepQuantized()}, quantization="int4")


class SwappedGateUp(LinearMethod):
    """Fuses the MLP's activation its own way: keeps merged gate/up weights as ``(up, gate)`` and applies
    SiLU-and-mul itself, never through the kernel it is handed."""

    name = "swapped"

    def __init__(self) -> None:
        self.gated = 0
        self.fused = 0

    def prepare(self, weight):
        return weight

    def apply(self, x, prepared, bias=None):
        assert not isinstance(prepared, tuple), "a gated weight reached the plain apply"
        return F.linear(x, prepared, bias)

    def prepare_gated(self, weight):
        self.gated += 1
        half = weight.shape[0] // 2
        return ("up, gate", weight[half:].clone(), weight[:half].clone())

    def apply_silu_and_mul(self, x, prepared, bias, silu_and_mul):
        self.fused += 1
        _, up, gate = prepared
        return F.silu(F.linear(x, gate)) * F.linear(x, up)


def test_gated_projections_go_through_the_methods_fused_path(tiny_checkpoint):
    """Llama-style MLPs prepare gate/up with ``prepare_gated`` and call ``apply_silu_and_mul``: a method may
    lay the rows out its own way and fuse the activation; the logits are the default path's."""
    folder, _ = tiny_checkpoint("llama", tie_word_embeddings=False)
    method = SwappedGateUp()
    fused, ctx_f = _load(folder, linear_methods={"swapped": method}, quantization="swapped")
    reference, ctx_r = _load(folder)
    layers = fused.config.num_hidden_layers
    assert method.gated == layers
    ours = run_schedule(PagedDriver(fused, ctx_f.attention_backend))
    assert method.fused > 0 and method.fused % layers == 0
    ref = run_schedule(PagedDriver(reference, ctx_r.attention_backend))
    for req in ours:
        assert ours[req][0] == ref[req][0], f"{req}: greedy tokens differ"
        torch.testing.assert_close(ours[req][1], ref[req][1], atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError, match="silu_and_mul"):
        fused.model.layers[0].mlp.gate_up_proj(torch.zeros(1, fused.config.hidden_size))


def test_the_default_gated_path_is_apply_then_the_kernel():
    calls = []

    class Plain(LinearMethod):
        def prepare(self, weight):
            return weight * 2

        def apply(self, x, prepared, bias=None):
            return F.linear(x, prepared, bias)

    w, x, b = torch.randn(8, 3), torch.randn(2, 3), torch.randn(8)
    method = Plain()
    prepared = method.prepare_gated(w)
    torch.testing.assert_close(prepared, w * 2)
    got = method.apply_silu_and_mul(x, prepared, b, lambda y: calls.append(y) or y[..., :4] * y[..., 4:])
    y = F.linear(x, w * 2, b)
    torch.testing.assert_close(got, y[..., :4] * y[..., 4:])
    assert len(calls) == 1


class ResidualInGemm(LinearMethod):
    """Adds the residual inside its GEMM (``addmm_``) wherever it is offered, and counts the calls."""

    name = "residual"

    def __init__(self) -> None:
        self.added = 0

    def prepare(self, weight):
        return weight

    def apply(self, x, prepared, bias=None):
        return F.linear(x, prepared, bias)

    def apply_add(self, x, prepared, bias, residual):
        self.added += 1
        out = residual.addmm_(x, prepared.t())
        return out if bias is None else out.add_(bias)


def test_residual_projections_may_add_inside_the_gemm(tiny_checkpoint):
    """The output and MLP-down projections offer the residual to ``apply_add`` (contract 1.6): a method that adds
    it in place gives the default path's logits and greedy tokens, over the whole decoder stack."""
    folder, _ = tiny_checkpoint("llama", tie_word_embeddings=False)
    method = ResidualInGemm()
    fused, ctx_f = _load(folder, linear_methods={"residual": method}, quantization="residual")
    reference, ctx_r = _load(folder)
    ours = run_schedule(PagedDriver(fused, ctx_f.attention_backend))
    layers = fused.config.num_hidden_layers
    assert method.added > 0 and method.added % (2 * layers) == 0  # o_proj and down_proj of every layer
    ref = run_schedule(PagedDriver(reference, ctx_r.attention_backend))
    for req in ours:
        assert ours[req][0] == ref[req][0], f"{req}: greedy tokens differ"
        torch.testing.assert_close(ours[req][1], ref[req][1], atol=1e-5, rtol=1e-5)


def test_the_default_apply_add_declines():
    class Plain(LinearMethod):
        def prepare(self, weight):
            return weight

        def apply(self, x, prepared, bias=None):
            return F.linear(x, prepared, bias)

    residual = torch.randn(2, 8)
    assert Plain().apply_add(torch.randn(2, 3), torch.randn(8, 3), None, residual) is None
