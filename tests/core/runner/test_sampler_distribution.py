"""Empirical token frequencies over many draws match the exact filtered distribution."""

from __future__ import annotations

import math

import pytest
import torch

from plinth.runner.sampler import Sampler
from plinth.runner.sampling_metadata import make_generator
from plinth.sampling_params import SamplingParams

VOCAB = 16
DRAWS = 20_000
Z_999 = 3.0902  # standard normal quantile for p = 0.001


def chi2_critical(df: int) -> float:
    """Wilson–Hilferty approximation of the chi-square quantile at p = 0.001 (slightly conservative)."""
    h = 2.0 / (9.0 * df)
    return df * (1.0 - h + Z_999 * math.sqrt(h)) ** 3


def reference_distribution(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """The exact distribution, written out step by step in float64: temperature, min-p, top-k, top-p."""
    probs = torch.softmax(logits.double() / params.temperature, dim=-1)
    if params.min_p > 0:
        probs = torch.where(probs >= params.min_p * probs.max(), probs, 0.0)
        probs /= probs.sum()
    order = torch.argsort(probs, descending=True)
    if params.top_k > 0:
        probs[order[params.top_k:]] = 0.0
        probs /= probs.sum()
    if params.top_p < 1.0:
        kept, mass = [], 0.0
        for token in order.tolist():
            kept.append(token)
            mass += probs[token].item()
            if mass >= params.top_p:
                break
        mask = torch.zeros_like(probs, dtype=torch.bool)
        mask[kept] = True
        probs = torch.where(mask, probs, 0.0)
        probs /= probs.sum()
    return probs


def chi2_statistic(observed: torch.Tensor, expected: torch.Tensor) -> tuple[float, int]:
    """Pearson's statistic; bins expected below 5 are pooled. Returns (statistic, degrees of freedom)."""
    small = expected < 5
    obs = observed[~small].tolist() + ([observed[small].sum().item()] if small.any() else [])
    exp = expected[~small].tolist() + ([expected[small].sum().item()] if small.any() else [])
    exp_obs = [(e, o) for e, o in zip(exp, obs, strict=True) if e > 0]
    stat = sum((o - e) ** 2 / e for e, o in exp_obs)
    return stat, len(exp_obs) - 1


CASES = {
    "temperature_1": dict(temperature=1.0),
    "temperature_0.5": dict(temperature=0.5),
    "temperature_1.7": dict(temperature=1.7),
    "top_k_4": dict(temperature=1.0, top_k=4),
    "top_p_0.75": dict(temperature=1.0, top_p=0.75),
    "min_p_0.2": dict(temperature=1.0, min_p=0.2),
    "temp_top_k": dict(temperature=0.7, top_k=6),
    "temp_top_p": dict(temperature=1.3, top_p=0.6),
    "all_filters": dict(temperature=0.8, top_k=8, top_p=0.9, min_p=0.05),
}


def _logits() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1234)
    return torch.randn(VOCAB, generator=generator) * 1.5


def _assert_matches(samples: torch.Tensor, expected_probs: torch.Tensor) -> None:
    observed = torch.bincount(samples.cpu(), minlength=VOCAB).double()
    zero = expected_probs == 0
    assert observed[zero].sum() == 0, f"filtered-out tokens were sampled: {observed[zero]}"
    stat, df = chi2_statistic(observed, expected_probs * samples.numel())
    if df > 0:
        assert stat < chi2_critical(df), f"chi2={stat:.1f} with df={df}; observed={observed.tolist()}"


@pytest.mark.parametrize("case", list(CASES))
def test_unseeded_draws_match_filtered_distribution(case, build_metadata, device):
    params = SamplingParams(**CASES[case])
    logits = _logits().to(device)
    metadata = build_metadata([params] * DRAWS, VOCAB, device=device)
    torch.manual_seed(0)
    samples = Sampler()(logits.expand(DRAWS, VOCAB), metadata).sampled_token_ids
    _assert_matches(samples, reference_distribution(logits.cpu(), params))


@pytest.mark.parametrize("case", ["temperature_1", "all_filters"])
def test_seeded_draws_match_filtered_distribution(case, build_metadata):
    """Rows with their own generators (distinct seeds) sample from the same distribution."""
    draws = 5_000
    params_list = [SamplingParams(**CASES[case], seed=seed) for seed in range(draws)]
    logits = _logits()
    metadata = build_metadata(params_list, VOCAB)
    samples = Sampler()(logits.expand(draws, VOCAB), metadata).sampled_token_ids
    _assert_matches(samples, reference_distribution(logits, params_list[0]))


def test_one_generator_over_many_steps_matches_distribution(build_metadata):
    """One seeded request's successive tokens follow the distribution (the generator advances)."""
    params = SamplingParams(temperature=1.0, top_k=10, seed=7)
    logits = _logits()
    generator = make_generator(7, "cpu")
    metadata = build_metadata([params], VOCAB, generators=[generator])
    sampler = Sampler()
    samples = torch.cat([sampler(logits.unsqueeze(0), metadata).sampled_token_ids for _ in range(4_000)])
    _assert_matches(samples, reference_distribution(logits, params))
