"""Sampling bf16 logits (compute_logits no longer upcasts) gives the tokens fp32 logits give."""

from __future__ import annotations

import torch

from plinth.ops import reference
from plinth.runner.sampler import Sampler
from plinth.runner.sampling_metadata import SamplingMetadata
from plinth.sampling_params import SamplingParams


def test_fused_and_torch_sampling_see_the_same_values_in_bf16():
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(6, 300, generator=gen) * 3).to(torch.bfloat16)
    sampler = Sampler(sample_op=reference.sample)
    for params in (SamplingParams(temperature=0.7), SamplingParams(temperature=0.0),
                   SamplingParams(temperature=0.9, top_k=20)):
        metadata = SamplingMetadata.build([params] * 6, [[1]] * 6, [[] for _ in range(6)], vocab_size=300,
                                          device="cpu")
        torch.manual_seed(5)
        low = sampler(logits, metadata).sampled_token_ids
        torch.manual_seed(5)
        full = sampler(logits.float(), metadata).sampled_token_ids
        assert torch.equal(low, full)
