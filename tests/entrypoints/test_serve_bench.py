"""`plinth bench serve`'s load generator against a real server (token ids only, a tiny random Llama)."""

from __future__ import annotations

import random

import pytest

from plinth_serve.bench.serve_bench import BenchConfig, arrival_offsets, run_bench


def test_poisson_arrivals_are_the_seeded_exponential_gaps():
    config = BenchConfig(num_prompts=50, request_rate=8.0, seed=3)
    rng = random.Random(4)
    expected, at = [], 0.0
    for _ in range(50):
        expected.append(at)
        at += rng.expovariate(8.0)
    assert arrival_offsets(config) == pytest.approx(expected)
    assert arrival_offsets(BenchConfig(num_prompts=5)) == [0.0] * 5  # all at once


@pytest.mark.parametrize("workers", [1, 3])
def test_every_token_is_timed_from_chunks_with_ids_only(bare_server, workers):
    """Chunks carry token ids and no text: TTFT and one ITL per later token, whatever the worker count."""
    out = run_bench(BenchConfig(base_url=bare_server.url, num_prompts=5, input_len=8, output_len=5, vocab_size=256,
                                request_rate=50.0, num_workers=workers))
    assert out["completed"] == 5 and out["failed"] == 0, out["errors"]
    assert out["total_output_tokens"] == 25
    assert out["ttft"]["p50_ms"] > 0 and out["tpot"]["p50_ms"] > 0
    assert out["itl"]["p50_ms"] > 0
    assert out["duration_s"] >= max(arrival_offsets(BenchConfig(num_prompts=5, request_rate=50.0)))
