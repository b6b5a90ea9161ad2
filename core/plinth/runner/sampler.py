"""The sampler: logits ``[B, V]`` and a step's metadata in, one token id per row out.

Order of work, as in vLLM V1:

1. logprobs of the raw model output (before any processing), when a row asks;
2. per-request logits processors, then the batch-level processors (plugins);
3. hard masks: allowed_token_ids, bad_words, min_tokens;
4. penalties: repetition, frequency, presence;
5. greedy rows take the argmax;
6. the others: temperature, min-p, top-k, top-p, then an exponential race
   ``argmax(probs / q)`` with ``q ~ Exp(1)``, drawn from the row's own generator when
   the request is seeded, so a seed gives the same tokens whatever else is in the batch.

Everything stays on the logits' device; nothing syncs with the host. Steps 5–6 run in chunks of
``SAMPLE_CHUNK_ROWS`` rows (each converted to float32 on its own, when steps 1–4 had nothing to do): their
temporaries (a sort, a softmax, the noise) are ``[rows, vocab]`` each, so a batch of 1,024 rows needs no more
memory for them than one of 128, and the KV cache, sized after a profile run that samples ``max_num_seqs`` rows,
does not shrink with the step's request limit.

Fast path: given a platform's ``Op.SAMPLE`` kernel (``sample_op``), batches of greedy and
plain-temperature rows only, not all greedy (no filters, penalties, masks, processors, logprobs or seeded rows)
skip steps 1–6 and call it once: one fused pass over the logits instead of ~7. Seeded rows
always take the torch path, so a seed's tokens never depend on which path its batch took.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from plinth.runner.logit_masks import apply_token_masks
from plinth.runner.logprobs import LogprobsTensors, compute_logprobs, gather_logprobs
from plinth.runner.penalties import apply_penalties
from plinth.runner.sampling_metadata import SamplingMetadata

#: rows sampled at once on the torch path (steps 5–6): a float32 temporary of 128 rows of a 128K vocabulary is 64 MiB
SAMPLE_CHUNK_ROWS = 128


class BatchLogitsProcessor(Protocol):
    """A plugin hook that rewrites the whole batch's logits each step.

    ``apply`` gets float32 logits ``[B, V]`` (after the per-request processors, before
    masks and penalties) and the step's metadata, and returns logits of the same shape
    on the same device. It must not sync with the host.
    """

    def apply(self, logits: torch.Tensor, metadata: SamplingMetadata) -> torch.Tensor: ...


@dataclass(frozen=True, slots=True)
class SamplerOutput:
    """What one sampling step produced, still on the device."""

    sampled_token_ids: torch.Tensor  # [B] int64
    logprobs: LogprobsTensors | None  # raw-logit logprobs of the sampled + top-k tokens; None if no row asked


class Sampler:
    """Vectorised sampling over a batch; see the module docstring for the order of work."""

    def __init__(
        self, batch_processors: Sequence[BatchLogitsProcessor] = (), sample_op: Callable[..., Any] | None = None
    ) -> None:
        self.batch_processors = list(batch_processors)
        self.sample_op = sample_op  # Op.SAMPLE: (logits, temperature, seeds) -> [B] int64, or None

    def fast_path(self, metadata: SamplingMetadata) -> bool:
        """Whether ``sample_op`` may sample this batch: greedy/temperature rows and nothing else."""
        return (
            self.sample_op is not None
            and not metadata.all_greedy  # a plain argmax is as fast (0.08 vs 0.12 ms at 256 x 151,936)
            and not self.batch_processors
            and metadata.top_k is None
            and metadata.top_p is None
            and metadata.min_p is None
            and metadata.no_penalties
            and metadata.allowed_token_mask is None
            and metadata.banned_tokens is None
            and not metadata.logits_processors
            and metadata.max_num_logprobs is None
            and not metadata.generators
        )

    def __call__(self, logits: torch.Tensor, metadata: SamplingMetadata) -> SamplerOutput:
        return self.forward(logits, metadata)

    def forward(self, logits: torch.Tensor, metadata: SamplingMetadata) -> SamplerOutput:
        """Sample one token per row of ``logits`` ``[B, V]``; the input is not modified."""
        if logits.dim() != 2 or logits.shape[0] != metadata.temperature.shape[0]:
            raise ValueError(
                f"logits must be [batch, vocab] with {metadata.temperature.shape[0]} rows "
                f"(one per metadata row), got shape {tuple(logits.shape)}"
            )
        if self.fast_path(metadata):
            seeds = torch.randint(-(2**63), 2**63 - 1, (logits.shape[0],), dtype=torch.int64, device=logits.device)
            return SamplerOutput(sampled_token_ids=self.sample_op(logits, metadata.temperature, seeds), logprobs=None)
        raw_logprobs = None
        if metadata.max_num_logprobs is not None or self._processes(metadata):  # steps 1–4 on the whole batch
            logits = logits.to(torch.float32)
            raw_logprobs = compute_logprobs(logits) if metadata.max_num_logprobs is not None else None
            logits = self.process_logits(logits, metadata)
        sampled = sample(logits, metadata)
        logprobs = None
        if raw_logprobs is not None:
            logprobs = gather_logprobs(raw_logprobs, metadata.max_num_logprobs, sampled)
        return SamplerOutput(sampled_token_ids=sampled, logprobs=logprobs)

    def _processes(self, metadata: SamplingMetadata) -> bool:
        """Whether steps 2–4 change anything in this batch."""
        return bool(metadata.logits_processors or self.batch_processors or not metadata.no_penalties
                    or metadata.allowed_token_mask is not None or metadata.banned_tokens is not None)

    def process_logits(self, logits: torch.Tensor, metadata: SamplingMetadata) -> torch.Tensor:
        """Steps 2–4: processors, masks and penalties (what greedy decoding sees)."""
        logits = apply_request_processors(logits, metadata)
        for processor in self.batch_processors:
            logits = processor.apply(logits, metadata)
        logits = apply_token_masks(logits, metadata)
        if not metadata.no_penalties:
            logits = apply_penalties(
                logits,
                metadata.output_token_ids_padded,
                metadata.prompt_token_ids_padded,
                metadata.presence_penalties,
                metadata.frequency_penalties,
                metadata.repetition_penalties,
            )
        return logits


def apply_request_processors(logits: torch.Tensor, metadata: SamplingMetadata) -> torch.Tensor:
    """Run each row's ``SamplingParams.logits_processors`` on its row (only rows that have them)."""
    if not metadata.logits_processors:
        return logits
    logits = logits.clone()
    for row, processors in metadata.logits_processors.items():
        row_logits = logits[row]
        for processor in processors:
            row_logits = processor(metadata.output_token_ids[row], row_logits)
        logits[row] = row_logits
    return logits


def sample(logits: torch.Tensor, metadata: SamplingMetadata) -> torch.Tensor:
    """Steps 5–6 on processed logits (any float dtype; the input is not modified): ``[B]`` int64 token ids,
    ``SAMPLE_CHUNK_ROWS`` rows at a time."""
    if metadata.all_greedy:
        return logits.argmax(dim=-1)
    rows = logits.shape[0]
    if rows <= SAMPLE_CHUNK_ROWS:
        return _sample_rows(logits.to(torch.float32), metadata, 0, rows)
    return torch.cat([_sample_rows(logits[start:start + SAMPLE_CHUNK_ROWS].to(torch.float32), metadata, start,
                                   min(start + SAMPLE_CHUNK_ROWS, rows))
                      for start in range(0, rows, SAMPLE_CHUNK_ROWS)])


def _sample_rows(logits: torch.Tensor, metadata: SamplingMetadata, start: int, stop: int) -> torch.Tensor:
    """Steps 5–6 for the batch's rows ``[start, stop)`` (``logits`` holds just those, in float32)."""
    greedy = None if metadata.all_random else logits.argmax(dim=-1)
    if metadata.all_greedy:
        return greedy
    temperature = metadata.temperature[start:stop]
    logits = logits / torch.where(temperature == 0, 1.0, temperature).unsqueeze(1)
    if metadata.min_p is not None:
        logits = apply_min_p(logits, metadata.min_p[start:stop])
    if metadata.top_k is not None or metadata.top_p is not None:
        logits = apply_top_k_top_p(logits, None if metadata.top_k is None else metadata.top_k[start:stop],
                                   None if metadata.top_p is None else metadata.top_p[start:stop])
    probs = torch.softmax(logits, dim=-1)
    generators = {row - start: g for row, g in metadata.generators.items() if start <= row < stop}
    sampled = probs.div_(exponential_noise(probs, generators)).argmax(dim=-1)
    if greedy is not None:
        sampled = torch.where(temperature == 0, greedy, sampled)
    return sampled


def apply_min_p(logits: torch.Tensor, min_p: torch.Tensor) -> torch.Tensor:
    """Drop tokens whose probability is below ``min_p`` times the row's top probability."""
    probs = torch.softmax(logits, dim=-1)
    threshold = probs.amax(dim=-1, keepdim=True) * min_p.unsqueeze(1)
    return logits.masked_fill(probs < threshold, float("-inf"))


def apply_top_k_top_p(
    logits: torch.Tensor, top_k: torch.Tensor | None, top_p: torch.Tensor | None
) -> torch.Tensor:
    """Keep each row's ``top_k`` best tokens (ties at the cut kept), then the smallest set
    of those whose renormalised mass reaches ``top_p`` (the best token always stays).
    """
    sorted_logits, order = logits.sort(dim=-1)  # ascending
    if top_k is not None:
        cut = sorted_logits.gather(1, (logits.shape[1] - top_k).unsqueeze(1))
        sorted_logits = sorted_logits.masked_fill(sorted_logits < cut, float("-inf"))
    if top_p is not None:
        mass_below = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = mass_below <= (1 - top_p).unsqueeze(1)
        drop[:, -1] = False
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.empty_like(logits).scatter_(1, order, sorted_logits)


def exponential_noise(probs: torch.Tensor, generators: dict[int, torch.Generator]) -> torch.Tensor:
    """``Exp(1)`` draws shaped like ``probs``; seeded rows draw from their own generator."""
    noise = torch.empty_like(probs)
    if len(generators) < probs.shape[0]:
        noise.exponential_()
    for row, generator in generators.items():  # seeded rows only: one draw each
        noise[row].exponential_(generator=generator)
    return noise
