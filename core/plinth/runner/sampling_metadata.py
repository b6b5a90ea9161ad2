"""One step's sampling parameters for a batch, as tensors on the logits' device."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from plinth.runner.logit_masks import allowed_token_mask, banned_token_pairs
from plinth.sampling_params import SamplingParams

LogitsProcessor = Callable[[list[int], torch.Tensor], torch.Tensor]
"""A per-request hook: ``(output_token_ids, logits_row [V]) -> logits_row``."""


class SamplingMetadataError(ValueError):
    """The batch cannot be turned into sampling tensors; the message says what to pass."""


def make_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A per-request generator for ``SamplingParams.seed``.

    Create it once when the request joins the batch and pass the same object every step:
    the sampler advances it, so each step draws a fresh token.
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


@dataclass(frozen=True, slots=True)
class SamplingMetadata:
    """What the sampler needs for one step; row ``i`` is the ``i``-th logits row."""

    temperature: torch.Tensor  # [B] float32; 0 marks a greedy row
    all_greedy: bool  # every row is greedy: skip temperature, filters and the random draw
    all_random: bool  # no row is greedy: skip the argmax and the merge
    top_k: torch.Tensor | None  # [B] int64, vocab size where off; None when no row uses top-k
    top_p: torch.Tensor | None  # [B] float32, 1.0 where off; None when no row uses top-p
    min_p: torch.Tensor | None  # [B] float32, 0.0 where off; None when no row uses min-p
    generators: dict[int, torch.Generator]  # row -> its seeded request's generator
    no_penalties: bool  # no row has a presence, frequency or repetition penalty
    presence_penalties: torch.Tensor  # [B] float32, 0 = off
    frequency_penalties: torch.Tensor  # [B] float32, 0 = off
    repetition_penalties: torch.Tensor  # [B] float32, 1 = off
    output_token_ids_padded: torch.Tensor | None  # [B, L] int64, padded with V; None if no_penalties
    prompt_token_ids_padded: torch.Tensor | None  # [B, P] int64, padded with V; None if no repetition penalty
    allowed_token_mask: torch.Tensor | None  # [B, V] bool, True = banned; None when no row restricts
    banned_tokens: tuple[torch.Tensor, torch.Tensor] | None  # (rows, token ids) banned this step by
    #   bad words and min_tokens; None when nothing is banned
    output_token_ids: list[list[int]]  # per row, on the host: what logits processors see
    logits_processors: dict[int, list[LogitsProcessor]]  # row -> the request's processors
    max_num_logprobs: int | None  # largest ``logprobs`` of any row; None when no row asks

    @classmethod
    def build(
        cls,
        params_list: Sequence[SamplingParams],
        prompt_token_ids: Sequence[Sequence[int]],
        output_token_ids: Sequence[list[int]],
        *,
        vocab_size: int,
        device: torch.device | str,
        eos_token_ids: Sequence[int] = (),
        generators: Sequence[torch.Generator | None] | None = None,
        bad_words_token_ids: Sequence[list[list[int]] | None] | None = None,
        pin_memory: bool = False,
        pad_to: int | None = None,
    ) -> SamplingMetadata:
        """Build the step's metadata from each row's params and tokens so far.

        ``generators[i]`` must be the persistent generator of row ``i`` when its params
        have a seed (see :func:`make_generator`). ``bad_words_token_ids[i]`` holds row
        ``i``'s bad words as token sequences (see ``logit_masks.tokenize_bad_words``).
        Loops over the rows once, on the host; the sampler itself has no per-row loop.
        With ``pin_memory`` the host tables go through pinned memory with non-blocking
        copies, so building never waits for the device.
        With ``pad_to`` (static shapes) the tensors get ``pad_to`` rows: the rows past the
        batch are unseeded defaults with every filter and penalty off, whose tokens the
        caller discards; ``all_greedy``/``all_random`` describe the real rows only.
        """
        num_rows = len(params_list)
        if not (len(prompt_token_ids) == len(output_token_ids) == num_rows):
            raise SamplingMetadataError(
                f"got {num_rows} params, {len(prompt_token_ids)} prompts and "
                f"{len(output_token_ids)} outputs; pass one of each per batch row"
            )
        row_generators = _row_generators(params_list, generators)
        bad_words = _row_bad_words(params_list, bad_words_token_ids)
        greedy = [p.greedy for p in params_list]
        if pad_to is not None and pad_to < num_rows:
            raise SamplingMetadataError(f"pad_to={pad_to} is below the batch's {num_rows} rows")
        if pad_to is not None and pad_to > num_rows:
            extra = pad_to - num_rows
            params_list = [*params_list, *[SamplingParams()] * extra]
            prompt_token_ids = [*prompt_token_ids, *[[]] * extra]
            output_token_ids = [*output_token_ids, *[[]] * extra]
            bad_words = [*bad_words, *[[]] * extra]
        upload = _uploader(device, pin_memory)
        floats = _float_columns(params_list, upload)
        penalties = _penalty_tensors(params_list, prompt_token_ids, output_token_ids, vocab_size, upload)
        logprobs = [p.logprobs for p in params_list if p.logprobs is not None]
        return cls(
            temperature=floats["temperature"],
            all_greedy=all(greedy),
            all_random=not any(greedy),
            top_k=_top_k(params_list, vocab_size, upload),
            top_p=floats["top_p"] if any(p.top_p < 1.0 for p in params_list) else None,
            min_p=floats["min_p"] if any(p.min_p > 0.0 for p in params_list) else None,
            generators=row_generators,
            presence_penalties=floats["presence_penalty"],
            frequency_penalties=floats["frequency_penalty"],
            repetition_penalties=floats["repetition_penalty"],
            allowed_token_mask=allowed_token_mask(params_list, vocab_size, device),
            banned_tokens=banned_token_pairs(
                params_list, output_token_ids, bad_words, eos_token_ids, vocab_size, device
            ),
            output_token_ids=list(output_token_ids),
            logits_processors={
                row: list(p.logits_processors) for row, p in enumerate(params_list) if p.logits_processors
            },
            max_num_logprobs=max(logprobs) if logprobs else None,
            **penalties,
        )


_FLOAT_FIELDS = ("temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty")


def _uploader(device, pin_memory: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """Host tensor -> the same on ``device``: through pinned memory without waiting, if allowed."""
    if pin_memory:
        return lambda t: t.pin_memory().to(device, non_blocking=True)
    return lambda t: t.to(device)


def _float_columns(params_list: Sequence[SamplingParams], upload) -> dict[str, torch.Tensor]:
    columns = [[getattr(p, name) for p in params_list] for name in _FLOAT_FIELDS]
    table = upload(torch.tensor(columns, dtype=torch.float32).reshape(len(_FLOAT_FIELDS), len(params_list)))
    return {name: table[i] for i, name in enumerate(_FLOAT_FIELDS)}


def _top_k(params_list: Sequence[SamplingParams], vocab_size: int, upload) -> torch.Tensor | None:
    ks = [p.top_k if 0 < p.top_k < vocab_size else vocab_size for p in params_list]
    if all(k == vocab_size for k in ks):
        return None
    return upload(torch.tensor(ks, dtype=torch.int64))


def _penalty_tensors(params_list, prompt_token_ids, output_token_ids, vocab_size, upload) -> dict:
    uses_repetition = any(p.repetition_penalty != 1.0 for p in params_list)
    uses_additive = any(p.presence_penalty != 0.0 or p.frequency_penalty != 0.0 for p in params_list)
    return {
        "no_penalties": not (uses_repetition or uses_additive),
        "output_token_ids_padded": (
            _pad(output_token_ids, vocab_size, upload) if uses_repetition or uses_additive else None
        ),
        "prompt_token_ids_padded": _pad(prompt_token_ids, vocab_size, upload) if uses_repetition else None,
    }


def _pad(rows: Sequence[Sequence[int]], pad: int, upload) -> torch.Tensor:
    """``[len(rows), W]`` padded with ``pad``. ``W`` is the longest row rounded up to a power of two
    (at least 16): a platform that compiles per shape (XLA) then sees a handful of widths as outputs
    grow, not a new one every step; the extra ``pad`` columns count into the dropped bin."""
    width = _width_bucket(max((len(r) for r in rows), default=0))
    padded = [list(r) + [pad] * (width - len(r)) for r in rows]
    return upload(torch.tensor(padded, dtype=torch.int64).reshape(len(rows), width))


def _width_bucket(n: int) -> int:
    return max(16, 1 << max(n - 1, 0).bit_length())


def _row_generators(params_list, generators) -> dict[int, torch.Generator]:
    if generators is not None and len(generators) != len(params_list):
        raise SamplingMetadataError(
            f"got {len(generators)} generators for {len(params_list)} rows; pass one (or None) per row"
        )
    out = {}
    for row, params in enumerate(params_list):
        if params.seed is None:
            continue
        generator = generators[row] if generators is not None else None
        if generator is None:
            raise SamplingMetadataError(
                f"row {row} has seed={params.seed} but no generator; create one with "
                "make_generator(seed, device) when the request joins and pass it every step"
            )
        out[row] = generator
    return out


def _row_bad_words(params_list, bad_words_token_ids) -> list[list[list[int]]]:
    if bad_words_token_ids is not None and len(bad_words_token_ids) != len(params_list):
        raise SamplingMetadataError(
            f"got {len(bad_words_token_ids)} bad-word lists for {len(params_list)} rows; pass one per row"
        )
    out = []
    for row, params in enumerate(params_list):
        ids = bad_words_token_ids[row] if bad_words_token_ids is not None else None
        if params.bad_words and ids is None:
            raise SamplingMetadataError(
                f"row {row} has bad_words but no token ids; tokenize them once with "
                "logit_masks.tokenize_bad_words(tokenizer, params.bad_words)"
            )
        out.append(list(ids or []))
    return out
