"""Hard constraints on the next token: allowed_token_ids, bad_words and min_tokens.

The host builds them once per step from each row's params and output so far
(``SamplingMetadata.build``); the sampler applies them with one masked fill each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from plinth.runner.sampling_metadata import SamplingMetadata
    from plinth.sampling_params import SamplingParams


class TokenIdRangeError(ValueError):
    """A token id in the sampling params is outside the model's vocabulary."""


def tokenize_bad_words(tokenizer: PreTrainedTokenizerBase, words: Sequence[str]) -> list[list[int]]:
    """Token sequences to ban for ``SamplingParams.bad_words`` (vLLM's rule).

    Each word is encoded as is and with a leading space, since a word inside a text
    usually follows a space; the spaced form is kept only when it tokenizes to a
    different sequence of the same length.
    """
    sequences: list[list[int]] = []
    for word in words:
        plain = tokenizer.encode(word.lstrip(), add_special_tokens=False)
        spaced = tokenizer.encode(" " + word.lstrip(), add_special_tokens=False)
        if plain:
            sequences.append(plain)
        if spaced and len(spaced) == len(plain) and spaced != plain:
            sequences.append(spaced)
    return sequences


def allowed_token_mask(
    params_list: Sequence[SamplingParams], vocab_size: int, device
) -> torch.Tensor | None:
    """``[B, V]`` bool, True where a row with ``allowed_token_ids`` may not sample; None if no row has them."""
    rows, cols = [], []
    restricted = []
    for row, params in enumerate(params_list):
        if params.allowed_token_ids is None:
            continue
        _check_range(params.allowed_token_ids, vocab_size, "allowed_token_ids")
        restricted.append(row)
        rows.extend([row] * len(params.allowed_token_ids))
        cols.extend(params.allowed_token_ids)
    if not restricted:
        return None
    mask = torch.zeros(len(params_list), vocab_size, dtype=torch.bool, device=device)
    mask[torch.tensor(restricted, device=device)] = True
    mask[torch.tensor(rows, device=device), torch.tensor(cols, device=device)] = False
    return mask


def banned_token_pairs(
    params_list: Sequence[SamplingParams],
    output_token_ids: Sequence[Sequence[int]],
    bad_words: Sequence[Sequence[Sequence[int]]],
    eos_token_ids: Sequence[int],
    vocab_size: int,
    device,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(rows, token_ids)`` banned this step; None when nothing is.

    * bad words (vLLM semantics): the last token of a bad-word sequence is banned when
      the output ends with the sequence's other tokens (a one-token word is always banned);
    * min_tokens: EOS (unless ``ignore_eos``) and ``stop_token_ids`` are banned while the
      output is shorter than ``min_tokens``.
    """
    rows: list[int] = []
    cols: list[int] = []
    for row, (params, output) in enumerate(zip(params_list, output_token_ids, strict=True)):
        for sequence in bad_words[row]:
            _check_range(sequence, vocab_size, "bad_words token ids")
            prefix = list(sequence[:-1])
            if not prefix or list(output[len(output) - len(prefix):]) == prefix:
                rows.append(row)
                cols.append(sequence[-1])
        if len(output) < params.min_tokens:
            stops = list(params.stop_token_ids or []) + ([] if params.ignore_eos else list(eos_token_ids))
            _check_range(stops, vocab_size, "stop_token_ids / eos_token_ids")
            rows.extend([row] * len(stops))
            cols.extend(stops)
    if not rows:
        return None
    return (
        torch.tensor(rows, dtype=torch.int64, device=device),
        torch.tensor(cols, dtype=torch.int64, device=device),
    )


def apply_token_masks(logits: torch.Tensor, metadata: SamplingMetadata) -> torch.Tensor:
    """Set the logits of tokens a row may not sample to ``-inf`` (out of place)."""
    if metadata.allowed_token_mask is not None:
        logits = logits.masked_fill(metadata.allowed_token_mask, float("-inf"))
    if metadata.banned_tokens is not None:
        logits = logits.index_put(metadata.banned_tokens, torch.tensor(float("-inf"), device=logits.device))
    return logits


def _check_range(token_ids: Sequence[int], vocab_size: int, what: str) -> None:
    bad = [t for t in token_ids if not 0 <= t < vocab_size]
    if bad:
        raise TokenIdRangeError(
            f"{what} {bad[:5]} are outside the vocabulary [0, {vocab_size}); "
            "use ids the model's tokenizer produces"
        )
