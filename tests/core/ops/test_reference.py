"""The reference ops against independent implementations (HF transformers, SDPA)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRMSNorm, LlamaRotaryEmbedding, apply_rotary_pos_emb

from plinth.ops import reference
from plinth.platform import CommonAttentionMetadata


def test_rms_norm_matches_hf():
    torch.manual_seed(0)
    x = torch.randn(7, 64, dtype=torch.bfloat16)
    hf = LlamaRMSNorm(64, eps=1e-5)
    hf.weight.data = torch.randn(64).to(torch.bfloat16)
    hf = hf.to(torch.bfloat16)
    torch.testing.assert_close(reference.rms_norm(x, hf.weight, 1e-5), hf(x))


def test_fused_add_rms_norm_returns_sum_as_residual():
    x, r, w = torch.randn(5, 32), torch.randn(5, 32), torch.randn(32)
    normed, residual = reference.fused_add_rms_norm(x, r, w, 1e-6)
    torch.testing.assert_close(residual, x + r)
    torch.testing.assert_close(normed, reference.rms_norm(x + r, w, 1e-6))


def test_silu_and_mul():
    x = torch.randn(4, 2 * 24)
    gate, up = x[:, :24], x[:, 24:]
    torch.testing.assert_close(reference.silu_and_mul(x), gate * torch.sigmoid(gate) * up)


@pytest.mark.parametrize("rope_scaling", [None, {"rope_type": "linear", "factor": 2.0}])
def test_rotary_matches_hf(rope_scaling):
    heads, kv_heads, head_size, tokens = 4, 2, 32, 9
    params = {"rope_type": "default", "rope_theta": 10000.0}
    if rope_scaling:
        params.update(rope_scaling)
    cfg = LlamaConfig(hidden_size=heads * head_size, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      max_position_embeddings=64, rope_parameters=params)
    rope = LlamaRotaryEmbedding(cfg)
    positions = torch.tensor([0, 1, 2, 5, 8, 13, 21, 34, 55])
    q, k = torch.randn(tokens, heads, head_size), torch.randn(tokens, kv_heads, head_size)
    cos, sin = rope(q, positions[None])
    q_hf, k_hf = apply_rotary_pos_emb(q.transpose(0, 1)[None], k.transpose(0, 1)[None], cos, sin)
    all_pos = torch.arange(64)
    cos_all, sin_all = rope(q, all_pos[None])
    cache = torch.cat([cos_all[0, :, : head_size // 2], sin_all[0, :, : head_size // 2]], dim=-1)
    q_ref, k_ref = reference.rotary_embedding(positions, q.reshape(tokens, -1), k.reshape(tokens, -1),
                                              head_size, cache, True)
    torch.testing.assert_close(q_ref.view(tokens, heads, head_size), q_hf[0].transpose(0, 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(k_ref.view(tokens, kv_heads, head_size), k_hf[0].transpose(0, 1), atol=1e-5,
                               rtol=1e-5)


def test_rotary_gptj_style_rotates_pairs():
    head_size = 8
    x = torch.randn(1, head_size)
    angle = torch.tensor([[0.3, 0.7, 1.1, 1.9]])
    cache = torch.cat([angle.cos(), angle.sin()], dim=-1)
    out, _ = reference.rotary_embedding(torch.tensor([0]), x, x.clone(), head_size, cache, False)
    pairs = x.view(4, 2)
    expected = torch.stack([pairs[:, 0] * angle.cos()[0] - pairs[:, 1] * angle.sin()[0],
                            pairs[:, 1] * angle.cos()[0] + pairs[:, 0] * angle.sin()[0]], dim=-1)
    torch.testing.assert_close(out.view(4, 2), expected)


def _paged_batch(seq_lens, query_lens, kv_heads, head_size, block_size, num_blocks):
    """Random per-sequence K/V written to shuffled blocks; metadata for the query tails."""
    cache = torch.zeros(2, num_blocks, block_size, kv_heads, head_size)
    free = torch.randperm(num_blocks).tolist()
    max_blocks = max(math.ceil(s / block_size) for s in seq_lens)
    block_table = torch.zeros(len(seq_lens), max_blocks, dtype=torch.int32)
    dense, slots = [], []
    for i, s in enumerate(seq_lens):
        blocks = [free.pop() for _ in range(math.ceil(s / block_size))]
        block_table[i, : len(blocks)] = torch.tensor(blocks)
        k, v = torch.randn(s, kv_heads, head_size), torch.randn(s, kv_heads, head_size)
        seq_slots = torch.tensor([blocks[p // block_size] * block_size + p % block_size for p in range(s)])
        reference.write_kv(k, v, cache, seq_slots)
        dense.append((k, v))
        slots.append(seq_slots[s - query_lens[i]:])
    qsl = torch.tensor([0] + list(torch.tensor(query_lens).cumsum(0)), dtype=torch.int32)
    lens = torch.tensor(seq_lens, dtype=torch.int32)
    md = CommonAttentionMetadata(qsl, qsl, lens, lens, block_table, torch.cat(slots), len(seq_lens),
                                 sum(query_lens), max(query_lens), max(seq_lens))
    return cache, md, dense


def test_paged_attention_matches_sdpa_on_mixed_batch():
    torch.manual_seed(0)
    heads, kv_heads, head_size = 8, 2, 16
    seq_lens, query_lens = [5, 17, 9, 33], [5, 1, 4, 1]  # prefill, decode, chunk, decode
    cache, md, dense = _paged_batch(seq_lens, query_lens, kv_heads, head_size, block_size=4, num_blocks=40)
    query = torch.randn(sum(query_lens), heads, head_size)
    out = reference.paged_attention(query, cache, md, scale=0.25)
    start = 0
    for (k, v), s, ql in zip(dense, seq_lens, query_lens, strict=True):
        q = query[start:start + ql].transpose(0, 1)[None]
        mask = torch.arange(s)[None, :] <= torch.arange(s - ql, s)[:, None]
        expected = F.scaled_dot_product_attention(q, k.transpose(0, 1)[None], v.transpose(0, 1)[None],
                                                  attn_mask=mask, scale=0.25, enable_gqa=True)
        torch.testing.assert_close(out[start:start + ql], expected[0].transpose(0, 1), atol=1e-5, rtol=1e-5)
        start += ql


def test_write_kv_skips_padding_slots():
    cache = torch.zeros(2, 2, 4, 1, 3)
    key, value = torch.ones(3, 1, 3), 2 * torch.ones(3, 1, 3)
    reference.write_kv(key, value, cache, torch.tensor([5, -1, 0]))
    flat = cache.view(2, -1, 1, 3)
    assert flat[0, 5].eq(1).all() and flat[1, 0].eq(2).all()
    assert flat[0].abs().sum() == 2 * 3  # exactly two slots written


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_write_kv_saturates_an_fp8_cache(dtype):
    """fp8 writes are the cast of the value clamped to the format's range (never NaN or inf)."""
    limit = torch.finfo(dtype).max
    cache = torch.zeros(2, 2, 4, 1, 3, dtype=dtype)
    key = torch.tensor([[[1e6, -1e6, 0.3]], [[limit * 1.01, 1.5, -2.7]]])
    value = -key
    reference.write_kv(key, value, cache, torch.tensor([5, 0]))
    flat = cache.view(2, -1, 1, 3)
    expected = key.clamp(-limit, limit).to(dtype).float()
    assert torch.equal(flat[0, [5, 0]].float(), expected)
    assert torch.equal(flat[1, [5, 0]].float(), -expected)
    assert torch.isfinite(cache.float()).all()
