"""Greedy continuation from Hugging Face transformers, and a tie-aware comparison."""

from __future__ import annotations

import torch


@torch.inference_mode()
def hf_greedy(model, prompt: list[int], max_tokens: int) -> tuple[list[int], list[torch.Tensor]]:
    """Greedy tokens and the full-vocabulary logits at each generated position.

    A plain loop over HF's forward with its own KV cache: no generation-config logic
    (EOS suppression, min_new_tokens) can change what the model itself prefers.
    """
    ids = torch.tensor([prompt], device=model.device)
    out = model(ids, use_cache=True)
    tokens, logits = [], []
    for _ in range(max_tokens):
        step_logits = out.logits[0, -1].float().cpu()
        token = int(step_logits.argmax())
        tokens.append(token)
        logits.append(step_logits)
        out = model(torch.tensor([[token]], device=model.device), past_key_values=out.past_key_values, use_cache=True)
    return tokens, logits


def assert_same_greedy(ours: list[int], ref: list[int], ref_logits: list[torch.Tensor], tie: float = 1e-3):
    """Equal tokens; a divergence is excused only at a near-tie in the reference's logits."""
    for i, (a, b) in enumerate(zip(ours, ref, strict=False)):
        if a == b:
            continue
        top2 = torch.topk(ref_logits[i], 2).values
        gap = float(top2[0] - top2[1])
        assert gap < tie, f"diverged at step {i}: ours {a}, reference {b}, reference top-2 gap {gap:.2e}"
        return  # after an excused tie the continuations legitimately differ
    assert len(ours) == len(ref), f"ours has {len(ours)} tokens, reference {len(ref)}"
