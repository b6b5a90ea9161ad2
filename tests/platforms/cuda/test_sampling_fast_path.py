"""The sampler's Op.SAMPLE fast path on CPU, with core's reference as the op (no GPU needed)."""

from __future__ import annotations

import pytest
import torch

from plinth.ops import reference
from plinth.runner.sampler import Sampler
from plinth.runner.sampling_metadata import SamplingMetadata, make_generator
from plinth.sampling_params import SamplingParams

from .sampling_cases import assert_chi2, check_distribution, check_seed_invariance, check_ties_and_edges

VOCAB = 16


def _meta(params, generators=None):
    n = len(params)
    return SamplingMetadata.build(params, [[1]] * n, [[]] * n, vocab_size=VOCAB, device="cpu",
                                  generators=generators)


class Counting:
    def __init__(self):
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        return reference.sample(*args)


@pytest.mark.parametrize("params, fast", [
    (SamplingParams(temperature=0.6), True),
    (SamplingParams(temperature=0.0), True),  # mixed with a T=1 row; all-greedy batches take argmax
    (SamplingParams(temperature=0.6, top_p=0.9), False),
    (SamplingParams(temperature=0.6, top_k=5), False),
    (SamplingParams(temperature=0.6, min_p=0.1), False),
    (SamplingParams(temperature=0.6, presence_penalty=0.5), False),
    (SamplingParams(temperature=0.6, logprobs=2), False),
    (SamplingParams(temperature=0.6, allowed_token_ids=[1, 2]), False),
])
def test_fast_path_only_for_plain_batches(params, fast):
    op = Counting()
    batch = [SamplingParams(temperature=1.0), params]
    Sampler(sample_op=op)(torch.randn(2, VOCAB), _meta(batch))
    assert op.calls == int(fast)


def test_seeded_rows_take_the_torch_path():
    op = Counting()
    params = [SamplingParams(temperature=1.0, seed=3)]
    Sampler(sample_op=op)(torch.randn(1, VOCAB), _meta(params, [make_generator(3, "cpu")]))
    assert op.calls == 0


def test_fast_path_distribution_and_greedy_rows():
    draws = 20_000
    params = [SamplingParams(temperature=0.6)] * draws + [SamplingParams(temperature=0.0)] * 8
    base = torch.randn(VOCAB, generator=torch.Generator().manual_seed(5)) * 1.5
    torch.manual_seed(0)
    out = Sampler(sample_op=reference.sample)(base.expand(draws + 8, VOCAB), _meta(params)).sampled_token_ids
    assert (out[draws:] == base.argmax()).all()
    assert_chi2(out[:draws], torch.softmax(base.double() / 0.6, -1), "fast path T=0.6")


def test_reference_op():
    check_ties_and_edges(reference.sample, "cpu")
    check_seed_invariance(reference.sample, "cpu")
    check_distribution(reference.sample, "cpu")


def test_all_greedy_batches_take_the_plain_argmax():
    op = Counting()
    logits = torch.randn(3, VOCAB)
    out = Sampler(sample_op=op)(logits, _meta([SamplingParams(temperature=0.0)] * 3)).sampled_token_ids
    assert op.calls == 0 and torch.equal(out, logits.argmax(-1))
