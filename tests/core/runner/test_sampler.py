"""Sampler behaviour: greedy, seeds, hard masks, logits processors, validation."""

from __future__ import annotations

import pytest
import torch

from plinth.runner.logit_masks import TokenIdRangeError, tokenize_bad_words
from plinth.runner.sampler import Sampler
from plinth.runner.sampling_metadata import SamplingMetadataError, make_generator
from plinth.sampling_params import SamplingParams

V = 32


def _logits(rows: int, seed: int = 0, device="cpu") -> torch.Tensor:
    return torch.randn(rows, V, generator=torch.Generator().manual_seed(seed)).to(device)


def test_greedy_is_argmax(build_metadata, device):
    logits = _logits(8, device=device)
    metadata = build_metadata([SamplingParams(temperature=0.0)] * 8, V, device=device)
    assert metadata.all_greedy
    out = Sampler()(logits, metadata)
    assert out.sampled_token_ids.dtype == torch.int64
    assert torch.equal(out.sampled_token_ids, logits.argmax(dim=-1))
    assert out.logprobs is None


def test_greedy_rows_in_a_mixed_batch_are_argmax(build_metadata):
    params = [SamplingParams(temperature=0.0), SamplingParams(temperature=1.0), SamplingParams(temperature=0.0)]
    logits = _logits(3)
    metadata = build_metadata(params, V)
    assert not metadata.all_greedy and not metadata.all_random
    for _ in range(5):
        sampled = Sampler()(logits, metadata).sampled_token_ids
        assert sampled[0] == logits[0].argmax() and sampled[2] == logits[2].argmax()


def test_sampler_does_not_modify_its_input(build_metadata):
    calls = []
    params = SamplingParams(repetition_penalty=1.5, logits_processors=[lambda ids, row: calls.append(1) or row * 0])
    logits = _logits(1)
    before = logits.clone()
    Sampler()(logits, build_metadata([params], V, outputs=[[1, 2]]))
    assert torch.equal(logits, before) and calls == [1]


def _run_steps(sampler, params_list, row_logits, generators, steps, device="cpu"):
    """Sample ``steps`` tokens for every row; ``row_logits[i]`` is row ``i``'s fixed logits."""
    from plinth.runner.sampling_metadata import SamplingMetadata

    tokens = []
    for _ in range(steps):
        metadata = SamplingMetadata.build(
            params_list, [[]] * len(params_list), [[]] * len(params_list),
            vocab_size=V, device=device, generators=generators,
        )
        tokens.append(sampler(row_logits.to(device), metadata).sampled_token_ids.tolist())
    return [list(col) for col in zip(*tokens, strict=True)]


def test_same_seed_same_tokens_whatever_the_batch(device):
    seeded = SamplingParams(temperature=1.0, top_p=0.95, seed=42)
    mine = _logits(1, seed=5)
    alone = _run_steps(Sampler(), [seeded], mine, [make_generator(42, device)], steps=12, device=device)[0]

    others = [SamplingParams(temperature=1.0), SamplingParams(temperature=0.0),
              SamplingParams(temperature=0.7, seed=1), SamplingParams(temperature=1.2, top_k=3)]
    for position in (0, 2, 4):
        params = others[:position] + [seeded] + others[position:]
        logits = torch.cat([_logits(position, seed=9), mine, _logits(4 - position, seed=10)])
        generators = [make_generator(p.seed, device) if p.seed is not None else None for p in params]
        torch.manual_seed(position)  # the shared stream differs; the seeded row must not care
        tokens = _run_steps(Sampler(), params, logits, generators, steps=12, device=device)
        assert tokens[position] == alone, f"seeded row at position {position} diverged"


def test_seeded_generator_advances_each_step():
    params = SamplingParams(temperature=1.0, seed=3)
    uniform = torch.zeros(1, V)
    tokens = _run_steps(Sampler(), [params], uniform, [make_generator(3, "cpu")], steps=10)[0]
    assert len(set(tokens)) > 1, "the seeded row drew the same token every step"


def test_min_tokens_blocks_eos_and_stop_token_ids(build_metadata):
    eos, stop = 5, 7
    logits = torch.zeros(3, V)
    logits[:, eos], logits[:, stop], logits[:, 11] = 10.0, 9.0, 8.0
    params = [
        SamplingParams(temperature=0.0, min_tokens=3, stop_token_ids=[stop]),  # 2 outputs: both blocked
        SamplingParams(temperature=0.0, min_tokens=3, stop_token_ids=[stop]),  # 3 outputs: reached
        SamplingParams(temperature=0.0, min_tokens=3, stop_token_ids=[stop], ignore_eos=True),
    ]
    metadata = build_metadata(params, V, outputs=[[1, 2], [1, 2, 3], [1]], eos=[eos])
    assert Sampler()(logits, metadata).sampled_token_ids.tolist() == [11, eos, eos]


def test_allowed_token_ids_restrict_greedy_and_random(build_metadata):
    allowed = [3, 9, 20]
    greedy = SamplingParams(temperature=0.0, allowed_token_ids=allowed)
    random = SamplingParams(temperature=1.0, allowed_token_ids=allowed)
    free = SamplingParams(temperature=0.0)
    logits = _logits(1).expand(200, V).clone()
    params = [greedy, free] + [random] * 198
    sampled = Sampler()(logits, build_metadata(params, V)).sampled_token_ids
    best_allowed = allowed[int(logits[0, allowed].argmax())]
    assert sampled[0] == best_allowed
    assert sampled[1] == logits[0].argmax()
    assert set(sampled[2:].tolist()) == set(allowed)


def test_bad_words_ban_last_token_after_matching_prefix(build_metadata):
    logits = torch.zeros(3, V)
    logits[:, 3], logits[:, 5], logits[:, 6] = 10.0, 9.0, 8.0
    bad = [[3], [4, 5]]  # token 3 always; token 5 only right after 4
    params = [SamplingParams(temperature=0.0, bad_words=["x"])] * 3
    metadata = build_metadata(params, V, outputs=[[1, 4], [4, 1], []], bad_words_token_ids=[bad] * 3)
    assert Sampler()(logits, metadata).sampled_token_ids.tolist() == [6, 5, 5]


def test_tokenize_bad_words_adds_the_spaced_variant():
    class Tokenizer:
        vocab = {"bad": [1], " bad": [2], "two words": [3, 4], " two words": [5, 6, 7]}

        def encode(self, text, add_special_tokens=False):
            return self.vocab[text]

    assert tokenize_bad_words(Tokenizer(), ["bad", " two words"]) == [[1], [2], [3, 4]]


def test_logits_processors_see_output_ids_and_rewrite_their_row_only(build_metadata):
    seen = []

    def force_last_plus_one(output_ids, row):
        seen.append(list(output_ids))
        forced = torch.full_like(row, float("-inf"))
        forced[output_ids[-1] + 1] = 0.0
        return forced

    params = [SamplingParams(temperature=1.0, logits_processors=[force_last_plus_one]), SamplingParams(temperature=0.0)]
    logits = _logits(2)
    metadata = build_metadata(params, V, outputs=[[4, 10], [1]])
    sampled = Sampler()(logits, metadata).sampled_token_ids
    assert sampled.tolist() == [11, int(logits[1].argmax())] and seen == [[4, 10]]


def test_batch_logits_processor_hook(build_metadata):
    class BanToken:
        def apply(self, logits, metadata):
            return logits.index_fill(1, torch.tensor([int(best)]), float("-inf"))

    logits = _logits(2)
    best = logits[0].argmax()
    metadata = build_metadata([SamplingParams(temperature=0.0)] * 2, V)
    sampled = Sampler(batch_processors=[BanToken()])(logits, metadata).sampled_token_ids
    assert best not in sampled.tolist()


def test_seeded_row_without_generator_is_an_actionable_error(build_metadata):
    with pytest.raises(SamplingMetadataError, match="make_generator"):
        build_metadata([SamplingParams(seed=1)], V, generators=[None])


def test_bad_words_without_token_ids_is_an_actionable_error(build_metadata):
    with pytest.raises(SamplingMetadataError, match="tokenize_bad_words"):
        build_metadata([SamplingParams(bad_words=["no"])], V)


def test_out_of_vocabulary_allowed_token_ids_are_rejected(build_metadata):
    with pytest.raises(TokenIdRangeError, match="outside the vocabulary"):
        build_metadata([SamplingParams(allowed_token_ids=[1, V])], V)


def test_filters_are_skipped_when_unused(build_metadata):
    metadata = build_metadata([SamplingParams(temperature=0.9)] * 2, V)
    assert metadata.all_random and metadata.no_penalties
    assert metadata.top_k is None and metadata.top_p is None and metadata.min_p is None
    assert metadata.allowed_token_mask is None and metadata.banned_tokens is None
