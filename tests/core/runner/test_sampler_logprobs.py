"""Logprobs are the raw model output's log-softmax; top-k, sampled token and rank are right."""

from __future__ import annotations

import torch

from plinth.runner.logprobs import compute_prompt_logprobs
from plinth.runner.sampler import Sampler
from plinth.sampling_params import SamplingParams

V = 32


def _check_row(tensors, row: int, logits_row: torch.Tensor, token: int, k: int) -> None:
    expected = torch.log_softmax(logits_row.double(), dim=-1).float()
    ids, values = tensors.logprob_token_ids[row].cpu(), tensors.logprobs[row].cpu()
    assert ids.shape == (k + 1,) and ids[0] == token
    torch.testing.assert_close(values, expected[ids])
    top = torch.argsort(expected, descending=True)[:k]
    assert ids[1:].tolist() == top.tolist()
    assert int(tensors.sampled_token_ranks[row]) == int((expected >= expected[token]).sum())


def test_logprobs_are_raw_log_softmax_with_sampled_token_and_rank(build_metadata, device):
    generator = torch.Generator().manual_seed(11)
    logits = (torch.randn(4, V, generator=generator) * 2).to(device)
    params = [
        SamplingParams(temperature=0.0, logprobs=3),
        SamplingParams(temperature=1.5, top_k=5, logprobs=5, repetition_penalty=1.4),  # processing ignored
        SamplingParams(temperature=0.8, logprobs=0, presence_penalty=1.0),
        SamplingParams(temperature=1.0),  # no logprobs asked: still gets the batch's k
    ]
    metadata = build_metadata(params, V, outputs=[[1], [2, 3], [4], []], prompts=[[5]] * 4, device=device)
    assert metadata.max_num_logprobs == 5
    out = Sampler()(logits, metadata)
    assert out.logprobs.logprob_token_ids.shape == (4, 6)
    for row, token in enumerate(out.sampled_token_ids.tolist()):
        _check_row(out.logprobs, row, logits[row].cpu(), token, k=5)


def test_logprobs_zero_gives_only_the_sampled_token(build_metadata):
    logits = torch.randn(2, V, generator=torch.Generator().manual_seed(1))
    out = Sampler()(logits, build_metadata([SamplingParams(temperature=1.0, logprobs=0)] * 2, V))
    assert out.logprobs.logprobs.shape == (2, 1)
    for row, token in enumerate(out.sampled_token_ids.tolist()):
        _check_row(out.logprobs, row, logits[row], token, k=0)


def test_greedy_token_has_rank_one(build_metadata):
    logits = torch.randn(3, V, generator=torch.Generator().manual_seed(2))
    out = Sampler()(logits, build_metadata([SamplingParams(temperature=0.0, logprobs=2)] * 3, V))
    assert out.logprobs.sampled_token_ranks.tolist() == [1, 1, 1]


def test_prompt_logprobs_score_the_next_prompt_token():
    prompt = [3, 17, 8, 8, 30]
    logits = torch.randn(len(prompt) - 1, V, generator=torch.Generator().manual_seed(4))
    tensors = compute_prompt_logprobs(logits, torch.tensor(prompt[1:]), num_logprobs=2)
    for position, target in enumerate(prompt[1:]):
        _check_row(tensors, position, logits[position], target, k=2)
