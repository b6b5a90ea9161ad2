"""Penalty token tables are padded to power-of-two widths (few shapes for compiling platforms),
and the padding changes nothing."""

from __future__ import annotations

import torch

from plinth.runner.penalties import apply_penalties
from plinth.runner.sampling_metadata import SamplingMetadata
from plinth.sampling_params import SamplingParams

V = 50


def _metadata(outputs, prompts):
    params = [SamplingParams(temperature=0.0, repetition_penalty=1.3, presence_penalty=0.4, frequency_penalty=0.2)
              for _ in outputs]
    return SamplingMetadata.build(params, prompts, outputs, vocab_size=V, device="cpu")


def test_widths_are_power_of_two_buckets_that_fit_the_longest_row():
    seen = set()
    for length in range(0, 70):
        md = _metadata([list(range(length)), [1, 2]], [[3] * (length // 2 + 1), [4]])
        width = md.output_token_ids_padded.shape[1]
        assert width >= max(length, 2) and width >= 16 and width & (width - 1) == 0
        seen.add(width)
    assert seen == {16, 32, 64, 128}  # 70 lengths, 4 shapes


def test_padding_does_not_change_the_penalised_logits():
    gen = torch.Generator().manual_seed(0)
    outputs = [torch.randint(0, V, (n,), generator=gen).tolist() for n in (0, 5, 17)]
    prompts = [torch.randint(0, V, (n,), generator=gen).tolist() for n in (3, 1, 9)]
    md = _metadata(outputs, prompts)
    logits = torch.randn(3, V, generator=gen)
    ours = apply_penalties(logits, md.output_token_ids_padded, md.prompt_token_ids_padded, md.presence_penalties,
                           md.frequency_penalties, md.repetition_penalties)
    # reference: per row, straight from the definitions (HF repetition, then OpenAI presence/frequency)
    for i in range(3):
        row = logits[i].clone()
        seen = set(outputs[i]) | set(prompts[i])
        for t in seen:
            row[t] = row[t] / 1.3 if row[t] > 0 else row[t] * 1.3
        for t in set(outputs[i]):
            row[t] -= 0.2 * outputs[i].count(t) + 0.4
        torch.testing.assert_close(ours[i], row)
