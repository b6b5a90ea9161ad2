"""Greedy continuation from Hugging Face transformers, and a tie-aware comparison."""

from __future__ import annotations

import torch


@torch.inference_mode()
def hf_greedy(model, prompt: list[int], max_tokens: int) -> tuple[list[int], list[torch.Tensor]]:
    """Greedy tokens and the full-vocabulary logits at each generated position (no KV cache tricks)."""
    ids = torch.tensor([prompt])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_tokens,
                         min_new_tokens=max_tokens, output_logits=True, return_dict_in_generate=True,
                         pad_token_id=0)
    return out.sequences[0, len(prompt):].tolist(), [lg[0].float() for lg in out.logits]


def assert_same_greedy(ours: list[int], ref: list[int], ref_logits: list[torch.Tensor], tie: float = 1e-3):
    """Equal tokens; a divergence is excused only at a near-tie in the reference's logits."""
    for i, (a, b) in enumerate(zip(ours, ref)):
        if a == b:
            continue
        top2 = torch.topk(ref_logits[i], 2).values
        gap = float(top2[0] - top2[1])
        assert gap < tie, f"diverged at step {i}: ours {a}, reference {b}, reference top-2 gap {gap:.2e}"
        return  # after an excused tie the continuations legitimately differ
    assert len(ours) == len(ref), f"ours has {len(ours)} tokens, reference {len(ref)}"
