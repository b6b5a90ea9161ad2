"""CPU attention: SDPA per prefill sequence, one vectorised paged gather for all decodes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from plinth.platform import (
    AttentionBackend,
    AttentionImpl,
    AttentionLayerSpec,
    AttentionSelector,
    CommonAttentionMetadata,
    GraphSupport,
    Support,
)


class CpuAttentionImpl(AttentionImpl):
    def __init__(self, spec: AttentionLayerSpec) -> None:
        self.spec = spec
        self.group = spec.num_heads // spec.num_kv_heads

    def write_kv(self, key, value, kv_cache, slot_mapping):
        num_tokens = slot_mapping.shape[0]
        flat = kv_cache.view(2, -1, *kv_cache.shape[-2:])
        valid = slot_mapping >= 0
        if bool(valid.all()):
            slots = slot_mapping.long()
            flat[0].index_copy_(0, slots, key[:num_tokens].to(kv_cache.dtype))
            flat[1].index_copy_(0, slots, value[:num_tokens].to(kv_cache.dtype))
            return
        slots = slot_mapping[valid].long()
        flat[0].index_copy_(0, slots, key[:num_tokens][valid].to(kv_cache.dtype))
        flat[1].index_copy_(0, slots, value[:num_tokens][valid].to(kv_cache.dtype))

    def forward(self, query, key, value, kv_cache, metadata: CommonAttentionMetadata, out):
        starts = metadata.query_start_loc_cpu
        query_lens = starts[1:] - starts[:-1]
        if metadata.max_query_len == 1:
            decode_reqs = torch.arange(metadata.num_reqs)
            self._decode(query, kv_cache, metadata, decode_reqs, starts[:-1], out)
            return out
        is_decode = query_lens == 1
        if bool(is_decode.any()):
            reqs = is_decode.nonzero().flatten()
            self._decode(query, kv_cache, metadata, reqs, starts[reqs], out)
        for i in (~is_decode & (query_lens > 0)).nonzero().flatten().tolist():
            self._prefill(query, kv_cache, metadata, i, out)
        return out

    def _decode(self, query, kv_cache, md, reqs, token_idx, out):
        """All single-token queries at once: gather their blocks, masked softmax in fp32."""
        block_size = kv_cache.shape[2]
        seq_lens = md.seq_lens_cpu[reqs]
        num_blocks = (int(seq_lens.max()) + block_size - 1) // block_size
        device_reqs = reqs.to(md.block_table.device)
        blocks = md.block_table[device_reqs, :num_blocks].long()
        batch, kv_heads, head_size = blocks.shape[0], kv_cache.shape[3], kv_cache.shape[4]
        keys = kv_cache[0][blocks].reshape(batch, -1, kv_heads, head_size).float()
        values = kv_cache[1][blocks].reshape(batch, -1, kv_heads, head_size).float()
        q = query[token_idx.to(query.device)].float().view(batch, kv_heads, self.group, head_size)
        scores = torch.einsum("bkgd,blkd->bkgl", q, keys) * self.spec.scale
        positions = torch.arange(keys.shape[1], device=query.device)
        seq_dev = seq_lens.to(query.device)[:, None]
        masked = positions[None, :] >= seq_dev
        if self.spec.sliding_window:
            masked |= positions[None, :] < seq_dev - self.spec.sliding_window
        scores.masked_fill_(masked[:, None, None, :], float("-inf"))
        values.masked_fill_(masked[:, :, None, None], 0.0)  # unwritten slots may hold NaN
        probs = torch.softmax(scores, dim=-1)
        result = torch.einsum("bkgl,blkd->bkgd", probs, values)
        out[token_idx.to(out.device)] = result.reshape(batch, -1, head_size).to(out.dtype)

    def _prefill(self, query, kv_cache, md, i, out):
        """One prefill (or chunk) through SDPA over its gathered context."""
        start, end = int(md.query_start_loc_cpu[i]), int(md.query_start_loc_cpu[i + 1])
        seq_len, query_len = int(md.seq_lens_cpu[i]), end - start
        block_size = kv_cache.shape[2]
        num_blocks = (seq_len + block_size - 1) // block_size
        blocks = md.block_table[i, :num_blocks].long()
        kv_heads, head_size = kv_cache.shape[3], kv_cache.shape[4]
        keys = kv_cache[0][blocks].reshape(-1, kv_heads, head_size)[:seq_len]
        values = kv_cache[1][blocks].reshape(-1, kv_heads, head_size)[:seq_len]
        q = query[start:end].transpose(0, 1).unsqueeze(0)
        k = keys.transpose(0, 1).unsqueeze(0).to(q.dtype)
        v = values.transpose(0, 1).unsqueeze(0).to(q.dtype)
        mask = None
        if query_len != seq_len or self.spec.sliding_window:
            q_pos = torch.arange(seq_len - query_len, seq_len, device=q.device)[:, None]
            k_pos = torch.arange(seq_len, device=q.device)[None, :]
            mask = k_pos <= q_pos
            if self.spec.sliding_window:
                mask &= k_pos > q_pos - self.spec.sliding_window
        result = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None, scale=self.spec.scale,
            enable_gqa=self.group > 1,
        )
        out[start:end] = result.squeeze(0).transpose(0, 1).to(out.dtype)


class CpuAttentionBackend(AttentionBackend):
    """Standard layout ``[2, num_blocks, block_size, num_kv_heads, head_size]``, any block size."""

    name = "cpu_sdpa"
    graph_support = GraphSupport.NEVER

    def supports(self, selector: AttentionSelector) -> Support:
        if selector.num_heads % selector.num_kv_heads:
            return Support(False, "num_heads must be a multiple of num_kv_heads")
        if selector.logits_soft_cap:
            return Support(False, "logits soft-capping is not implemented")
        if not selector.causal:
            return Support(False, "only causal (decoder) attention")
        return Support(True)

    def kv_cache_shape(self, num_blocks, block_size, num_kv_heads, head_size):
        return (2, num_blocks, block_size, num_kv_heads, head_size)

    def make_impl(self, spec: AttentionLayerSpec) -> AttentionImpl:
        return CpuAttentionImpl(spec)
