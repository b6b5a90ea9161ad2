"""The Triton backend's decode order: wide decode batches start their programs longest request first."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from plinth.platform import CommonAttentionMetadata

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")


def _metadata(seq_lens: list[int], query_lens: list[int]) -> CommonAttentionMetadata:
    seq = torch.tensor(seq_lens, dtype=torch.int32)
    qsl = torch.tensor([0, *torch.tensor(query_lens).cumsum(0).tolist()], dtype=torch.int32)
    tokens = int(qsl[-1])
    return CommonAttentionMetadata(qsl, qsl, seq, seq, torch.zeros(len(seq_lens), 4, dtype=torch.int32),
                                   torch.arange(tokens), len(seq_lens), tokens, max(query_lens), max(seq_lens))


def test_wide_decode_gets_longest_first_order():
    from plinth_triton.attention_backend import TritonAttentionBackend

    lens = [5, 900, 0, 64, 300] + [7] * 40  # 45 requests x 8 KV heads fill 132 SMs: no split
    md = TritonAttentionBackend(num_sms=132, decode_order=True).build_metadata(_metadata(lens, [1] * 45))
    assert md.num_splits == 1
    assert sorted(md.order.tolist()) == list(range(45))
    ordered = [lens[i] for i in md.order.tolist()]
    assert ordered == sorted(lens, reverse=True)


def test_split_decode_is_ordered_too():
    from plinth_triton.attention_backend import TritonAttentionBackend

    small = TritonAttentionBackend(num_sms=132, decode_order=True).build_metadata(_metadata([20, 1000], [1, 1]))
    assert small.num_splits > 1 and small.order.tolist() == [1, 0]


def test_no_order_for_prefill_one_request_or_when_switched_off(monkeypatch):
    from plinth_triton.attention_backend import TritonAttentionBackend

    on = TritonAttentionBackend(num_sms=132, decode_order=True, mixed_decode=False)
    assert on.build_metadata(_metadata([10, 20], [3, 1])).order is None  # a mixed step
    assert on.build_metadata(_metadata([1000], [1])).order is None  # nothing to order
    lens = [30] * 40
    assert TritonAttentionBackend(decode_order=False).build_metadata(_metadata(lens, [1] * 40)).order is None
    monkeypatch.setenv("PLINTH_TRITON_DECODE_ORDER", "0")
    assert TritonAttentionBackend().build_metadata(_metadata(lens, [1] * 40)).order is None
    monkeypatch.setenv("PLINTH_TRITON_DECODE_ORDER", "1")
    assert TritonAttentionBackend().build_metadata(_metadata(lens, [1] * 40)).order is not None


def test_mixed_step_lists_its_decode_rows_first(monkeypatch):
    from plinth_triton.attention_backend import TritonAttentionBackend

    seq_lens = [10, 20, 700, 5, 300, 0]  # the last: a padding request
    query_lens = [3, 1, 1, 5, 1, 0]
    md = TritonAttentionBackend(num_sms=132).build_metadata(_metadata(seq_lens, query_lens))
    assert md.decode_rows == 3
    assert md.order[:3].tolist() == [2, 4, 1]  # the one-query rows, longest context first
    assert sorted(md.order.tolist()) == list(range(6))
    assert TritonAttentionBackend().build_metadata(_metadata([10, 20], [3, 4])).order is None  # no decode row
    monkeypatch.setenv("PLINTH_TRITON_MIXED_DECODE", "0")
    off = TritonAttentionBackend().build_metadata(_metadata(seq_lens, query_lens))
    assert off.order is None and off.decode_rows == 0
