"""Top-k logprobs plus the chosen token's logprob and rank, for sampled and prompt tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, slots=True)
class LogprobsTensors:
    """Logprobs of ``N`` positions (batch rows, or prompt positions), kept on the device.

    Column 0 is the chosen token (sampled, or the prompt's next token); columns
    ``1..k`` are the ``k`` most likely tokens, best first.
    """

    logprob_token_ids: torch.Tensor  # [N, k + 1] int64
    logprobs: torch.Tensor  # [N, k + 1] float32
    sampled_token_ranks: torch.Tensor  # [N] int64: tokens at least as likely as the chosen one (1 = top)

    def to_lists(self) -> tuple[list[list[int]], list[list[float]], list[int]]:
        """Host copies (one sync), for building request outputs."""
        return (self.logprob_token_ids.tolist(), self.logprobs.tolist(), self.sampled_token_ranks.tolist())


def gather_logprobs(logprobs: torch.Tensor, num_logprobs: int, token_ids: torch.Tensor) -> LogprobsTensors:
    """Pick the top ``num_logprobs`` entries and ``token_ids``' entries from ``logprobs`` ``[N, V]``."""
    if num_logprobs < 0:
        raise ValueError(f"num_logprobs must be >= 0, got {num_logprobs}")
    token_ids = token_ids.to(torch.int64).unsqueeze(1)
    chosen = logprobs.gather(1, token_ids)
    top_values, top_ids = torch.topk(logprobs, num_logprobs, dim=1)
    ranks = (logprobs >= chosen).sum(dim=1)
    return LogprobsTensors(
        logprob_token_ids=torch.cat([token_ids, top_ids], dim=1),
        logprobs=torch.cat([chosen, top_values], dim=1),
        sampled_token_ranks=ranks,
    )


def compute_logprobs(logits: torch.Tensor) -> torch.Tensor:
    """``log_softmax`` in float32 of ``[N, V]`` logits."""
    return torch.log_softmax(logits.to(torch.float32), dim=-1)


def compute_prompt_logprobs(
    logits: torch.Tensor, target_token_ids: torch.Tensor, num_logprobs: int
) -> LogprobsTensors:
    """Prompt logprobs: ``logits[i]`` is the model output at prompt position ``i`` and
    ``target_token_ids[i]`` the prompt token at ``i + 1`` (the one it predicts).
    """
    if logits.shape[0] != target_token_ids.shape[0]:
        raise ValueError(
            f"got {logits.shape[0]} logits rows for {target_token_ids.shape[0]} targets; "
            "pass the logits of positions 0..n-2 with the prompt tokens 1..n-1"
        )
    return gather_logprobs(compute_logprobs(logits), num_logprobs, target_token_ids)
