"""CPU attention: the csrc paged kernels (or torch without them), planned once per step.

``build_metadata`` sorts the step's requests once for all layers. With the C++ kernels
loaded, decode tokens go to ``decode_attention`` and every prefill or chunk of the step to
one ``prefill_attention`` call (both read the paged cache in place, GQA packed, one OpenMP
region per call); without them, every decode row gathers exactly its written slots (padded
with a valid slot and masked) for two batched fp32 matmuls, and each prefill runs torch SDPA.
"""

from __future__ import annotations

from dataclasses import dataclass

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
from plinth_cpu.kernels import DTYPE_CODES, SUPPORTED, CsrcOps

#: ISA paths whose prefill kernel beat SDPA in benchmarks/bench_cpu_kernels.py (RESULTS.md, issue 8):
#: avx512 2.3-2.7x; avx2 0.6-1.0x and portable 0.3-0.5x of the avx512 SDPA, so those keep SDPA
PREFILL_KERNEL_ISAS = ("avx512",)


@dataclass(frozen=True)
class PrefillPlan:
    start: int  # first token of the request in the flat batch
    end: int  # one past its last token
    seq_len: int  # context + new tokens
    slots: torch.Tensor | None  # int64 [seq_len] cache slots; None when the request has no context


@dataclass(frozen=True)
class CpuAttentionMetadata:
    slot_mapping: torch.Tensor  # int64 [num_tokens], as in the common metadata
    decode_tokens: torch.Tensor | None  # int64 [num_decodes]: flat index of each decode token
    decode_slots: torch.Tensor | None  # int64 [num_decodes, max_len]: slots to gather, padded
    decode_positions: torch.Tensor | None  # int64 [max_len]
    decode_seq_lens: torch.Tensor | None  # int64 [num_decodes]
    decode_reqs: torch.Tensor | None  # int64 [num_decodes]: request index of each decode token
    block_table: torch.Tensor  # int32 [num_reqs, max_blocks], contiguous (for the csrc kernel)
    seq_lens: torch.Tensor  # int32 [num_reqs], contiguous (for the csrc kernel)
    prefills: tuple[PrefillPlan, ...]  # one per request with more than one new token (torch path)
    prefill_reqs: torch.Tensor | None = None  # int64 [num_prefills]: their request indices (csrc path)
    query_start_loc: torch.Tensor | None = None  # int32 [num_reqs + 1], contiguous (csrc path)


def _slots(block_table_row: torch.Tensor, positions: torch.Tensor, block_size: int) -> torch.Tensor:
    return block_table_row[positions // block_size].long() * block_size + positions % block_size


def plan(common: CommonAttentionMetadata, block_size: int, gather: bool = True,
         prefill_kernel: bool = False) -> CpuAttentionMetadata:
    """The step's plan. ``gather=False``: decodes go to the csrc kernel (no gather indices);
    ``prefill_kernel=True``: prefills and chunks go to the csrc kernel (no per-request slots)."""
    starts = common.query_start_loc_cpu.tolist()
    seq_lens = common.seq_lens_cpu.tolist()
    decodes, prefills, prefill_rows = [], [], []
    for i, seq_len in enumerate(seq_lens[: common.num_reqs]):
        query_len = starts[i + 1] - starts[i]
        if query_len == 1:
            decodes.append(i)
        elif query_len > 1 and prefill_kernel:
            prefill_rows.append(i)
        elif query_len > 1:
            slots = None
            if query_len != seq_len:
                slots = _slots(common.block_table[i], torch.arange(seq_len), block_size)
            prefills.append(PrefillPlan(starts[i], starts[i + 1], seq_len, slots))
    block_table = common.block_table.to(torch.int32).contiguous()
    seq_lens_i32 = common.seq_lens_cpu.to(torch.int32).contiguous()
    prefill_reqs = qsl = None
    if prefill_rows:
        prefill_reqs = torch.tensor(prefill_rows, dtype=torch.int64)
        qsl = common.query_start_loc_cpu.to(torch.int32).contiguous()
    tail = (block_table, seq_lens_i32, tuple(prefills), prefill_reqs, qsl)
    if not decodes:
        return CpuAttentionMetadata(common.slot_mapping, None, None, None, None, None, *tail)
    rows = torch.tensor(decodes)
    tokens = common.query_start_loc_cpu[rows].long()
    if not gather:
        return CpuAttentionMetadata(common.slot_mapping, tokens, None, None, None, rows, *tail)
    lens = common.seq_lens_cpu[rows].long()
    positions = torch.arange(int(lens.max()))
    clamped = torch.minimum(positions[None, :], lens[:, None] - 1)  # padding re-reads a written slot
    table = common.block_table[rows].long()
    decode_slots = table.gather(1, clamped // block_size) * block_size + clamped % block_size
    return CpuAttentionMetadata(common.slot_mapping, tokens, decode_slots, positions, lens, rows, *tail)


class CpuAttentionImpl(AttentionImpl):
    def __init__(self, spec: AttentionLayerSpec, csrc: CsrcOps | None = None) -> None:
        self.spec = spec
        self.gqa = spec.num_heads != spec.num_kv_heads
        self.csrc = csrc

    def write_kv(self, key, value, kv_cache, slot_mapping):
        if self.csrc is not None:
            self.csrc.write_kv(key, value, kv_cache, slot_mapping)
            return
        num_tokens = slot_mapping.shape[0]
        flat = kv_cache.view(2, -1, *kv_cache.shape[-2:])
        valid = slot_mapping >= 0
        key, value = key[:num_tokens], value[:num_tokens]
        if not bool(valid.all()):
            slot_mapping, key, value = slot_mapping[valid], key[valid], value[valid]
        flat[0].index_copy_(0, slot_mapping, key.to(kv_cache.dtype))
        flat[1].index_copy_(0, slot_mapping, value.to(kv_cache.dtype))

    def forward(self, query, key, value, kv_cache, metadata: CpuAttentionMetadata, out):
        if self.csrc is not None and not out.is_contiguous():  # the kernels write rows of a dense tensor
            dense = torch.empty(out.shape, dtype=out.dtype)
            out.copy_(self.forward(query, key, value, kv_cache, metadata, dense))
            return out
        if metadata.decode_tokens is not None:
            if metadata.decode_slots is None:
                self._decode_csrc(query, kv_cache, metadata, out)
            else:
                self._decode(query, kv_cache.view(2, -1, *kv_cache.shape[-2:]), metadata, out)
        if metadata.prefill_reqs is not None:
            self._prefill_csrc(query, kv_cache, metadata, out)
        if metadata.prefills:  # the torch path's prefills and chunks
            flat = kv_cache.view(2, -1, *kv_cache.shape[-2:])
            for p in metadata.prefills:
                self._prefill(query, key, value, flat, p, out)
        return out

    def _sdpa(self, q, k, v, mask, causal):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=self.spec.scale,
                                              enable_gqa=self.gqa)

    def _decode(self, query, flat, md: CpuAttentionMetadata, out):
        """All single-token queries at once: the query heads of one KV head form one matrix
        (GQA packing), two batched fp32 matmuls around a masked softmax. Measured 5x faster
        than SDPA for single-token queries on this CPU."""
        batch, group, head_size = md.decode_tokens.shape[0], self.spec.num_heads // self.spec.num_kv_heads, \
            self.spec.head_size
        q = query[md.decode_tokens].view(batch, self.spec.num_kv_heads, group, head_size).float()
        k = flat[0][md.decode_slots].transpose(1, 2).float()  # [B, KVH, L, D]
        v = flat[1][md.decode_slots].transpose(1, 2).float()
        scores = torch.matmul(q, k.transpose(-1, -2)).mul_(self.spec.scale)  # [B, KVH, G, L]
        masked = md.decode_positions[None, :] >= md.decode_seq_lens[:, None]
        if self.spec.sliding_window:
            masked |= md.decode_positions[None, :] < md.decode_seq_lens[:, None] - self.spec.sliding_window
        scores.masked_fill_(masked[:, None, None, :], float("-inf"))
        result = torch.matmul(torch.softmax(scores, dim=-1), v)  # [B, KVH, G, D]
        out[md.decode_tokens] = result.view(batch, -1, head_size).to(out.dtype)

    def _decode_csrc(self, query, kv_cache, md: CpuAttentionMetadata, out):
        """All single-token queries through the C++ paged kernel, straight from the cache."""
        query = query if query.is_contiguous() else query.contiguous()
        target = out if out.is_contiguous() else torch.empty(out.shape, dtype=out.dtype)
        s = self.spec
        half = kv_cache.numel() // 2 * kv_cache.element_size()
        self.csrc.C.decode_attention(
            target.data_ptr(), target.stride(0), query.data_ptr(), query.stride(0), kv_cache.data_ptr(),
            kv_cache.data_ptr() + half, md.block_table.data_ptr(), md.block_table.stride(0), md.seq_lens.data_ptr(),
            md.decode_tokens.data_ptr(), md.decode_reqs.data_ptr(), md.decode_tokens.shape[0], s.num_heads,
            s.num_kv_heads, s.head_size, kv_cache.shape[2], s.scale, s.sliding_window or 0,
            DTYPE_CODES[query.dtype], DTYPE_CODES[kv_cache.dtype], torch.get_num_threads())
        if target is not out:
            out.copy_(target)

    def _prefill_csrc(self, query, kv_cache, md: CpuAttentionMetadata, out):
        """Every prefill and chunk of the step through the C++ causal kernel, straight from the cache."""
        query = query if query.is_contiguous() else query.contiguous()
        s = self.spec
        half = kv_cache.numel() // 2 * kv_cache.element_size()
        self.csrc.C.prefill_attention(
            out.data_ptr(), out.stride(0), query.data_ptr(), query.stride(0), kv_cache.data_ptr(),
            kv_cache.data_ptr() + half, md.block_table.data_ptr(), md.block_table.stride(0), md.seq_lens.data_ptr(),
            md.query_start_loc.data_ptr(), md.prefill_reqs.data_ptr(), md.prefill_reqs.shape[0], s.num_heads,
            s.num_kv_heads, s.head_size, kv_cache.shape[2], s.scale, s.sliding_window or 0,
            DTYPE_CODES[query.dtype], DTYPE_CODES[kv_cache.dtype], torch.get_num_threads())

    def _prefill(self, query, key, value, flat, p: PrefillPlan, out):
        """One prefill or chunk; without context it attends over its own new keys directly."""
        q = query[p.start:p.end].transpose(0, 1).unsqueeze(0)
        if p.slots is None:
            k, v = key[p.start:p.end], value[p.start:p.end]
        else:
            k, v = flat[0][p.slots], flat[1][p.slots]
        k = k.transpose(0, 1).unsqueeze(0).to(q.dtype)
        v = v.transpose(0, 1).unsqueeze(0).to(q.dtype)
        query_len = p.end - p.start
        mask = None
        if p.slots is not None or self.spec.sliding_window:
            q_pos = torch.arange(p.seq_len - query_len, p.seq_len)[:, None]
            k_pos = torch.arange(p.seq_len)[None, :]
            mask = k_pos <= q_pos
            if self.spec.sliding_window:
                mask &= k_pos > q_pos - self.spec.sliding_window
        out[p.start:p.end] = self._sdpa(q, k, v, mask, mask is None).squeeze(0).transpose(0, 1).to(out.dtype)


class CpuAttentionBackend(AttentionBackend):
    """Standard layout ``[2, num_blocks, block_size, num_kv_heads, head_size]``, any block size."""

    name = "cpu_sdpa"
    graph_support = GraphSupport.NEVER

    def __init__(self, csrc: CsrcOps | None = None) -> None:
        self.block_size: int | None = None
        self.csrc = csrc  # the C++ kernels for decode and KV writes; None = torch only
        # prefills go to the C++ kernel on the ISA paths where it measured faster than SDPA
        self.prefill_kernel = csrc is not None and csrc.C.isa() in PREFILL_KERNEL_ISAS
        if csrc is not None:
            self.name = "cpu_csrc"

    def supports(self, selector: AttentionSelector) -> Support:
        if selector.num_heads % selector.num_kv_heads:
            return Support(False, "num_heads must be a multiple of num_kv_heads")
        if selector.logits_soft_cap:
            return Support(False, "logits soft-capping is not implemented")
        if not selector.causal:
            return Support(False, "only causal (decoder) attention")
        kv_dtype = selector.dtype if selector.kv_cache_dtype == "auto" else selector.kv_cache_dtype
        if self.csrc is not None and not {selector.dtype, kv_dtype} <= set(SUPPORTED):
            return Support(False, f"csrc kernels compute float32/bfloat16, not {selector.dtype}/{kv_dtype}")
        return Support(True)

    def kv_cache_shape(self, num_blocks, block_size, num_kv_heads, head_size):
        self.block_size = block_size
        return (2, num_blocks, block_size, num_kv_heads, head_size)

    def build_metadata(self, common: CommonAttentionMetadata) -> CpuAttentionMetadata:
        if self.block_size is None:
            raise RuntimeError("build_metadata before kv_cache_shape: allocate the KV cache first")
        return plan(common, self.block_size, gather=self.csrc is None, prefill_kernel=self.prefill_kernel)

    def make_impl(self, spec: AttentionLayerSpec) -> AttentionImpl:
        return CpuAttentionImpl(spec, self.csrc)
