"""Penalties equal straightforward references: HF's repetition processor, OpenAI's formula."""

from __future__ import annotations

import torch
from transformers import RepetitionPenaltyLogitsProcessor

from plinth.runner.sampler import Sampler
from plinth.sampling_params import SamplingParams

V = 24


def openai_penalties(logits: torch.Tensor, output_ids: list[int], presence: float, frequency: float) -> torch.Tensor:
    """OpenAI: ``mu[j] -= c[j] * frequency + (c[j] > 0) * presence`` over generated tokens."""
    out = logits.clone()
    for token in set(output_ids):
        count = output_ids.count(token)
        out[token] -= count * frequency + presence
    return out


def reference(logits, prompt, output, params) -> torch.Tensor:
    row = logits.unsqueeze(0).clone()
    if params.repetition_penalty != 1.0 and prompt + output:
        row = RepetitionPenaltyLogitsProcessor(params.repetition_penalty)(torch.tensor([prompt + output]), row)
    return openai_penalties(row[0], output, params.presence_penalty, params.frequency_penalty)


def test_penalties_match_references(build_metadata):
    generator = torch.Generator().manual_seed(3)
    rows = [
        (SamplingParams(repetition_penalty=1.3), [1, 2, 3, 3], [4, 4, 5]),
        (SamplingParams(repetition_penalty=0.7), [6, 7], [7, 8]),
        (SamplingParams(presence_penalty=1.5), [1, 2], [2, 9, 9, 9]),
        (SamplingParams(frequency_penalty=0.4), [1], [10, 10, 11, 10]),
        (SamplingParams(repetition_penalty=1.2, presence_penalty=-0.5, frequency_penalty=1.1), [0, 12], [12, 13, 13]),
        (SamplingParams(), [1, 2, 3], [1, 2]),  # no penalty in a penalised batch
        (SamplingParams(repetition_penalty=2.0), [], []),  # nothing seen yet
    ]
    params, prompts, outputs = (list(col) for col in zip(*rows, strict=True))
    logits = torch.randn(len(rows), V, generator=generator) * 3
    metadata = build_metadata(params, V, outputs=outputs, prompts=prompts)
    got = Sampler().process_logits(logits, metadata)
    for i, (p, prompt, output) in enumerate(rows):
        torch.testing.assert_close(got[i], reference(logits[i], prompt, output, p), msg=f"row {i}: {p}")


def test_presence_and_frequency_ignore_prompt_tokens(build_metadata):
    logits = torch.zeros(1, V)
    params = SamplingParams(presence_penalty=2.0, frequency_penalty=2.0)
    metadata = build_metadata([params], V, outputs=[[]], prompts=[[1, 2, 3]])
    assert torch.equal(Sampler().process_logits(logits, metadata), logits)


def test_repetition_penalty_steers_greedy_away_from_repeats(build_metadata):
    logits = torch.zeros(1, V)
    logits[0, 4], logits[0, 5] = 2.0, 1.8
    params = SamplingParams(temperature=0.0, repetition_penalty=1.5)
    metadata = build_metadata([params], V, outputs=[[4]], prompts=[[0]])
    assert Sampler()(logits, metadata).sampled_token_ids.tolist() == [5]
