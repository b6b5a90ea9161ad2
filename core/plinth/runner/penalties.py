"""Repetition (HF), presence and frequency (OpenAI) penalties, vectorised over the batch."""

from __future__ import annotations

import torch


def token_counts(padded_ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``[B, V]`` int counts of each token per row; ``padded_ids`` is padded with ``vocab_size``."""
    counts = torch.zeros(padded_ids.shape[0], vocab_size + 1, dtype=torch.int32, device=padded_ids.device)
    counts.scatter_add_(1, padded_ids, torch.ones_like(padded_ids, dtype=torch.int32))
    return counts[:, :vocab_size]


def apply_penalties(
    logits: torch.Tensor,
    output_token_ids: torch.Tensor,
    prompt_token_ids: torch.Tensor | None,
    presence_penalties: torch.Tensor,
    frequency_penalties: torch.Tensor,
    repetition_penalties: torch.Tensor,
) -> torch.Tensor:
    """Penalised copy of ``logits`` ``[B, V]``.

    * repetition (HF ``RepetitionPenaltyLogitsProcessor``): a token seen in the prompt or
      the output has its logit divided by the penalty when positive, multiplied when not;
    * then frequency and presence (OpenAI): ``logit -= count * frequency + (count > 0) * presence``,
      counting output tokens only.

    Token id tensors are ``[B, L]`` int64 padded with ``V``; ``prompt_token_ids`` may be
    None when no row has a repetition penalty.
    """
    vocab_size = logits.shape[1]
    output_counts = token_counts(output_token_ids, vocab_size)
    if prompt_token_ids is not None:
        seen = output_counts > 0
        seen |= token_counts(prompt_token_ids, vocab_size) > 0
        penalty = torch.where(seen, repetition_penalties.unsqueeze(1), 1.0)
        logits = torch.where(logits > 0, logits / penalty, logits * penalty)
    logits = logits - frequency_penalties.unsqueeze(1) * output_counts
    return logits - presence_penalties.unsqueeze(1) * (output_counts > 0)
