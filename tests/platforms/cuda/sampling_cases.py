"""Checks of the fused sampling kernel (``Op.SAMPLE``), shared by the GPU tests and the
TRITON_INTERPRET=1 script: agreement with ``plinth.ops.reference.sample``, seed invariance and
chi-square goodness of fit against ``softmax(logits / T)``."""

from __future__ import annotations

import math

import torch

from plinth.ops import reference

Z_999 = 3.0902


def chi2_critical(df: int) -> float:
    h = 2.0 / (9.0 * df)
    return df * (1.0 - h + Z_999 * math.sqrt(h)) ** 3


def assert_chi2(samples: torch.Tensor, probs: torch.Tensor, label: str) -> float:
    """Pearson's test at p = 0.001, bins expected below 5 pooled; returns the statistic."""
    observed = torch.bincount(samples.cpu(), minlength=probs.numel()).double()
    expected = probs.double().cpu() * samples.numel()
    small = expected < 5
    obs = observed[~small].tolist() + ([observed[small].sum().item()] if small.any() else [])
    exp = expected[~small].tolist() + ([expected[small].sum().item()] if small.any() else [])
    stat = sum((o - e) ** 2 / e for o, e in zip(obs, exp, strict=True) if e > 0)
    df = sum(1 for e in exp if e > 0) - 1
    assert stat < chi2_critical(df), f"{label}: chi2={stat:.1f} df={df}"
    return stat


def random_seeds(n: int, device, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(-(2**63), 2**63 - 1, (n,), generator=gen, dtype=torch.int64).to(device)


def check_matches_reference(sample, device, rows: int = 8, vocab: int = 1000, dtype=torch.float32) -> float:
    """Kernel tokens equal the reference's (same hash); greedy rows exactly. Returns the match rate."""
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(rows, vocab, generator=gen) * 3).to(device=device, dtype=dtype)
    temperature = torch.tensor([0.0, 1.0, 0.6, 1.7] * (rows // 4 + 1))[:rows].to(device)
    seeds = random_seeds(rows, device, gen)
    got = sample(logits, temperature, seeds)
    want = reference.sample(logits, temperature, seeds)
    assert got.dtype == torch.int64 and got.shape == (rows,)
    greedy = (temperature == 0).cpu()
    assert torch.equal(got.cpu()[greedy], logits.float().argmax(-1).cpu()[greedy]), "greedy rows differ"
    rate = (got == want).float().mean().item()
    assert rate >= 0.95, f"only {rate:.2%} of rows match the reference (vocab {vocab})"
    return rate


def check_ties_and_edges(sample, device) -> None:
    """Greedy ties take the first index; -inf entries are never drawn; one-token rows work."""
    logits = torch.full((3, 300), -float("inf"), device=device)
    logits[0, 7] = logits[0, 250] = 1.0
    logits[1, [3, 200]] = 0.0
    logits[2, 299] = 5.0
    temperature = torch.tensor([0.0, 1.0, 1.0], device=device)
    for step in range(20):
        seeds = torch.full((3,), step * 7919 + 1, dtype=torch.int64, device=device)
        got = sample(logits, temperature, seeds).cpu().tolist()
        assert got[0] == 7 and got[1] in (3, 200) and got[2] == 299, got


def check_seed_invariance(sample, device, vocab: int = 500) -> None:
    """A row's token depends on its logits, temperature and seed only, not its batch."""
    gen = torch.Generator().manual_seed(1)
    mine = torch.randn(1, vocab, generator=gen).to(device)
    seed = torch.tensor([123456789012345], dtype=torch.int64, device=device)
    temp = torch.tensor([0.8], device=device)
    alone = sample(mine, temp, seed).item()
    for position in (0, 3, 6):
        others = torch.randn(6, vocab, generator=gen).to(device)
        logits = torch.cat([others[:position], mine, others[position:]])
        temps = torch.cat([torch.rand(6, generator=gen).to(device)[:position], temp,
                           torch.rand(6, generator=gen).to(device)[position:]])
        seeds = torch.cat([random_seeds(6, device, gen)[:position], seed, random_seeds(6, device, gen)[position:]])
        assert sample(logits, temps, seeds)[position].item() == alone, f"row at {position} diverged"


def check_distribution(sample, device, vocab: int = 16, draws: int = 20_000, temps=(1.0, 0.5, 1.7)) -> None:
    gen = torch.Generator().manual_seed(1234)
    base = torch.randn(vocab, generator=gen) * 1.5
    for t in temps:
        seeds = random_seeds(draws, device, gen)
        temperature = torch.full((draws,), t, device=device)
        samples = sample(base.to(device).expand(draws, vocab), temperature, seeds)
        assert_chi2(samples, torch.softmax(base.double() / t, -1), f"vocab {vocab} T={t}")
