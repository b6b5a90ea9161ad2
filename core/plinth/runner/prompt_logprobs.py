"""Prompt logprobs, accumulated over a request's prefill chunks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from plinth.runner.logprobs import compute_prompt_logprobs
from plinth.runner.request_state import RequestState


def collect_prompt_logprobs(
    states: Sequence[RequestState],
    query_starts: list[int],
    sample_rows: Sequence[int],
    hidden: torch.Tensor,
    compute_logits: Callable[[torch.Tensor], torch.Tensor],
    max_rows: int = 1024,
) -> dict[str, list] | None:
    """Score this step's prompt positions of the requests that asked for prompt logprobs.

    ``states[i]`` computed tokens ``query_starts[i]:query_starts[i+1]`` of the flat batch,
    starting at its ``num_computed_tokens`` (not yet advanced). Each scored position
    appends ``(token_ids, logprobs, rank)`` to ``state.prompt_logprobs``; requests in
    ``sample_rows`` (their prompt is complete) get ``[None, *rows]`` back — the first
    prompt token has no logprob, as in vLLM. Logits are computed ``max_rows`` positions at a
    time (the runner passes ``max_num_seqs``, the rows its profile run sampled), so a long
    prompt never needs a ``[prompt_len, vocab]`` float32 block at once.
    """
    rows = [i for i, s in enumerate(states) if s.sampling_params.prompt_logprobs is not None
            and s.num_computed_tokens < len(s.prompt_token_ids) - 1]
    if not rows:
        return None
    flat, targets, owners = [], [], []
    for i in rows:
        state = states[i]
        first = state.num_computed_tokens
        last = min(first + query_starts[i + 1] - query_starts[i], len(state.prompt_token_ids) - 1)
        flat.extend(range(query_starts[i], query_starts[i] + last - first))
        targets.extend(state.prompt_token_ids[first + 1:last + 1])
        owners.extend([i] * (last - first))
    k = max(states[i].sampling_params.prompt_logprobs for i in rows)
    positions = torch.tensor(flat, device=hidden.device)
    target_ids = torch.tensor(targets, device=hidden.device)
    token_ids, logprobs, ranks = [], [], []
    for start in range(0, len(flat), max(1, max_rows)):
        chunk = slice(start, start + max(1, max_rows))
        logits = compute_logits(hidden[positions[chunk]])
        t, lp, r = compute_prompt_logprobs(logits, target_ids[chunk], k).to_lists()
        token_ids += t
        logprobs += lp
        ranks += r
    for j, i in enumerate(owners):
        states[i].prompt_logprobs.append((token_ids[j], logprobs[j], ranks[j]))
    sampling = set(sample_rows)
    return {states[i].req_id: [None, *states[i].prompt_logprobs] for i in rows if i in sampling} or None
