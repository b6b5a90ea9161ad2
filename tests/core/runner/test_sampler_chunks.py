"""Batches larger than ``SAMPLE_CHUNK_ROWS`` are sampled in row chunks: each row keeps its own parameters and
generator, whichever chunk it lands in, and a seeded row's token does not depend on the chunking."""

from __future__ import annotations

import pytest
import torch

from plinth.runner import sampler as sampler_module
from plinth.runner.sampler import SAMPLE_CHUNK_ROWS, Sampler
from plinth.sampling_params import SamplingParams

V = 64


def _params(rows: int) -> list[SamplingParams]:
    """A mix of every steps-5–6 option, rows spread over several chunks."""
    kinds = [
        lambda i: SamplingParams(temperature=0.0),
        lambda i: SamplingParams(temperature=0.8, top_k=1, seed=i),  # top-k 1: must be the argmax
        lambda i: SamplingParams(temperature=1.0, top_p=1e-6, seed=i),  # only the best token survives
        lambda i: SamplingParams(temperature=0.7, min_p=1.0, seed=i),  # only the best token survives
        lambda i: SamplingParams(temperature=1.3, top_k=5, top_p=0.9, seed=i),
        lambda i: SamplingParams(temperature=0.5, seed=i),
    ]
    return [kinds[i % len(kinds)](i) for i in range(rows)]


def test_every_row_keeps_its_own_parameters_across_chunks(build_metadata):
    rows = 2 * SAMPLE_CHUNK_ROWS + 37
    logits = torch.randn(rows, V, generator=torch.Generator().manual_seed(1))  # float32: no ties
    params = _params(rows)
    sampled = Sampler()(logits, build_metadata(params, V)).sampled_token_ids
    assert sampled.shape == (rows,)
    best = logits.float().argmax(dim=-1)
    for i, p in enumerate(params):
        if p.temperature == 0.0 or p.top_k == 1 or p.top_p < 1e-3 or p.min_p == 1.0:
            assert sampled[i] == best[i], f"row {i} ({p}) in chunk {i // SAMPLE_CHUNK_ROWS}"
        if p.top_k == 5:
            assert sampled[i] in torch.topk(logits[i].float(), 5).indices, f"row {i} left its top 5"


def test_a_seeded_row_draws_the_same_token_however_the_batch_is_chunked(build_metadata, monkeypatch):
    rows = 300
    logits = torch.randn(rows, V, generator=torch.Generator().manual_seed(2))
    params = [SamplingParams(temperature=1.0, top_p=0.95, seed=1000 + i) for i in range(rows)]
    whole = Sampler()(logits, build_metadata(params, V)).sampled_token_ids
    for chunk in (1, 7, 128):
        monkeypatch.setattr(sampler_module, "SAMPLE_CHUNK_ROWS", chunk)
        assert torch.equal(Sampler()(logits, build_metadata(params, V)).sampled_token_ids, whole), chunk
    alone = [Sampler()(logits[i:i + 1], build_metadata(params[i:i + 1], V)).sampled_token_ids.item()
             for i in (0, 129, 299)]
    assert alone == [whole[0].item(), whole[129].item(), whole[299].item()]


@pytest.mark.parametrize("rows", [SAMPLE_CHUNK_ROWS - 1, SAMPLE_CHUNK_ROWS, 3 * SAMPLE_CHUNK_ROWS + 1])
def test_half_precision_logits_are_sampled_without_modifying_them(build_metadata, rows):
    logits = torch.randn(rows, V, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    before = logits.clone()
    params = [SamplingParams(temperature=0.9, top_k=3, seed=i) for i in range(rows)]
    out = Sampler()(logits, build_metadata(params, V)).sampled_token_ids
    assert torch.equal(logits, before) and out.dtype == torch.int64 and out.shape == (rows,)
    third = torch.topk(logits.float(), 3).values[:, -1]  # bfloat16 ties at the cut are kept
    assert bool((logits.float().gather(1, out[:, None]).squeeze(1) >= third).all())
