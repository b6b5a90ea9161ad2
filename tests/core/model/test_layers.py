"""Layer-level checks: tensor-parallel sharding math (ranks simulated in one process), rotary."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from plinth.model.build_context import BuildContext
from plinth.model.layers import (
    ColumnParallelLinear,
    MergedColumnParallelLinear,
    ParallelLMHead,
    QKVParallelLinear,
    RMSNorm,
    RowParallelLinear,
    VocabParallelEmbedding,
)
from plinth.model.layers.rotary import RotaryEmbedding, compute_inv_freq, rope_parameters
from plinth.ops.reference_backend import ReferenceAttentionBackend
from plinth.platform.kernels import KernelRegistry, Op


def ctx_for(rank: int = 0, size: int = 1) -> BuildContext:
    # the single-process communicator is the identity: each rank's partial result is
    # returned as is and the test does the reduction
    return BuildContext(KernelRegistry(), ReferenceAttentionBackend(), torch.float32, torch.device("cpu"),
                        tp_rank=rank, tp_size=size)


def loaded(layer, *pieces):
    for piece in pieces:
        tensor, shard = piece if isinstance(piece, tuple) else (piece, None)
        layer.weight.weight_loader(layer.weight, tensor, *([] if shard is None else [shard]))
    return layer


@pytest.mark.parametrize("tp", [1, 2, 4])
def test_column_and_row_parallel_compose_to_the_full_mlp(tp):
    torch.manual_seed(0)
    w1, w2, b2, x = torch.randn(16, 8), torch.randn(8, 16), torch.randn(8), torch.randn(3, 8)
    full = F.linear(F.linear(x, w1).relu(), w2, b2)
    total = 0
    for rank in range(tp):
        col = loaded(ColumnParallelLinear(8, 16, ctx_for(rank, tp)), w1)
        row = RowParallelLinear(16, 8, ctx_for(rank, tp), bias=True)
        loaded(row, w2)
        row.bias.weight_loader(row.bias, b2)
        total = total + row(col(x).relu())  # the all-reduce
    torch.testing.assert_close(total, full)


@pytest.mark.parametrize("tp", [1, 2])
def test_merged_gate_up_shards(tp):
    gate, up = torch.randn(12, 4), torch.randn(12, 4)
    for rank in range(tp):
        layer = loaded(MergedColumnParallelLinear(4, [12, 12], ctx_for(rank, tp)), (gate, 0), (up, 1))
        n = 12 // tp
        expected = torch.cat([gate[rank * n:(rank + 1) * n], up[rank * n:(rank + 1) * n]])
        torch.testing.assert_close(layer.weight.data, expected)


@pytest.mark.parametrize("tp,kv_heads", [(1, 2), (2, 2), (4, 2), (2, 1)])
def test_qkv_shards_by_heads_and_replicates_kv_heads(tp, kv_heads):
    heads, head_size, hidden = 4, 3, 5
    q, k, v = torch.randn(heads * head_size, hidden), torch.randn(kv_heads * head_size, hidden), torch.randn(
        kv_heads * head_size, hidden)
    for rank in range(tp):
        layer = loaded(QKVParallelLinear(hidden, head_size, heads, kv_heads, ctx_for(rank, tp), bias=False),
                       (q, "q"), (k, "k"), (v, "v"))
        q_rows = heads // tp * head_size
        kv_rank = rank // max(1, tp // kv_heads)
        kv_rows = max(1, kv_heads // tp) * head_size
        got_q, got_k, got_v = layer.split(layer.weight.data.t())
        torch.testing.assert_close(got_q.t(), q[rank * q_rows:(rank + 1) * q_rows])
        torch.testing.assert_close(got_k.t(), k[kv_rank * kv_rows:(kv_rank + 1) * kv_rows])
        torch.testing.assert_close(got_v.t(), v[kv_rank * kv_rows:(kv_rank + 1) * kv_rows])


def test_sharding_errors_name_the_quantity():
    with pytest.raises(ValueError, match="number of attention heads"):
        QKVParallelLinear(8, 2, 3, 1, ctx_for(0, 2))
    with pytest.raises(ValueError, match="shard_id"):
        loaded(QKVParallelLinear(8, 2, 4, 2, ctx_for()), (torch.randn(8, 8), "x"))
    with pytest.raises(ValueError, match="does not match"):
        loaded(ColumnParallelLinear(8, 4, ctx_for()), torch.randn(4, 7))


@pytest.mark.parametrize("tp", [1, 2, 3])
def test_vocab_parallel_embedding_and_lm_head_with_padding(tp):
    vocab, dim = 10, 4
    weight, ids, hidden = torch.randn(vocab, dim), torch.tensor([0, 3, 9, 5]), torch.randn(2, dim)
    embedded, logits = 0, []
    for rank in range(tp):
        emb = loaded(VocabParallelEmbedding(vocab, dim, ctx_for(rank, tp)), weight)
        head = loaded(ParallelLMHead(vocab, dim, ctx_for(rank, tp)), weight)
        embedded = embedded + emb(ids)
        logits.append(F.linear(hidden, head.weight))
    torch.testing.assert_close(embedded, weight[ids])
    torch.testing.assert_close(torch.cat(logits, -1)[:, :vocab], hidden @ weight.t())


def test_layers_resolve_platform_kernels_once():
    calls = []
    registry = KernelRegistry()
    registry.register(Op.RMS_NORM, lambda x, w, eps: calls.append("k") or x * 0 + 7, name="fake",
                      supports=lambda t: t["dtype"] == "float32" and t["device_type"] == "cpu")
    ctx = BuildContext(registry, ReferenceAttentionBackend(), torch.float32, torch.device("cpu"))
    norm = RMSNorm(4, 1e-6, ctx)
    assert torch.equal(norm(torch.ones(2, 4)), torch.full((2, 4), 7.0)) and calls == ["k"]
    normed, residual = norm(torch.ones(2, 4), torch.ones(2, 4))  # no fused kernel: the reference
    assert torch.equal(residual, torch.full((2, 4), 2.0))


ROPE_CASES = {
    "default": {"rope_type": "default"},
    "linear": {"rope_type": "linear", "factor": 4.0},
    "dynamic": {"rope_type": "dynamic", "factor": 2.0},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64},
    "yarn-mscale": {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 64,
                    "mscale": 0.707, "mscale_all_dim": 1.0},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64},
}


@pytest.mark.parametrize("case", list(ROPE_CASES))
def test_rope_frequencies_match_transformers(case):
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    config = LlamaConfig(hidden_size=64, num_attention_heads=2, max_position_embeddings=128,
                         rope_parameters={**ROPE_CASES[case], "rope_theta": 10000.0})
    params = rope_parameters(config)
    inv_freq, scale, length = compute_inv_freq(params, 32, config.max_position_embeddings)
    if case == "default":
        hf_inv_freq = 1.0 / 10000.0 ** (torch.arange(0, 32, 2).float() / 32)
        hf_scale = 1.0
    else:
        seq_len = 256 if case == "dynamic" else None  # our dynamic NTK is precomputed for factor x context
        hf_inv_freq, hf_scale = ROPE_INIT_FUNCTIONS[params["rope_type"]](config, "cpu", seq_len)
    torch.testing.assert_close(inv_freq, hf_inv_freq.float())
    assert scale == pytest.approx(hf_scale) and length >= 128


def test_rope_parameters_read_old_style_configs():
    class Old:
        rope_theta = 500000.0
        rope_scaling = {"type": "linear", "factor": 2.0}

    assert rope_parameters(Old()) == {"rope_type": "linear", "factor": 2.0, "rope_theta": 500000.0}
    with pytest.raises(ValueError, match="not supported"):
        compute_inv_freq({"rope_type": "longrope", "rope_theta": 1.0}, 8, 16)


def test_rotary_layers_share_one_device_cache():
    """Every layer's rotary reads one device copy of the cos/sin cache (a copy per layer of
    Llama-3.1-8B's took 2 GiB of KV-cache space); ``meta`` stands for a device, where each
    ``.to()`` would make a new tensor."""
    params = {"rope_type": "default", "rope_theta": 10000.0}
    ctx = BuildContext(KernelRegistry(), ReferenceAttentionBackend(), torch.float32, torch.device("meta"))
    layers = [RotaryEmbedding(32, 32, 4096, params, ctx) for _ in range(3)]
    assert layers[0].cos_sin_cache.device.type == "meta" and layers[0].cos_sin_cache.shape == (4096, 32)
    assert all(layer.cos_sin_cache is layers[0].cos_sin_cache for layer in layers)
    other = RotaryEmbedding(32, 32, 8192, params, ctx)  # another length: its own cache
    assert other.cos_sin_cache.shape == (8192, 32)


def test_layer_call_is_forward_and_refuses_hooks():
    from plinth.model.layers import Layer, SiluAndMul

    class Double(Layer):
        def forward(self, x):
            return 2 * x

    class Triple(Double):
        def forward(self, x):
            return 3 * x

    assert Double()(torch.ones(1)).item() == 2 and Triple()(torch.ones(1)).item() == 3
    assert SiluAndMul.__call__ is SiluAndMul.forward
    with pytest.raises(TypeError, match="forward hooks"):
        Double().register_forward_hook(lambda *a: None)
    with pytest.raises(TypeError, match="forward hooks"):
        Triple().register_forward_pre_hook(lambda *a: None)
