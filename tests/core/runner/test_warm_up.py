"""The profile run (Feature.PROFILE_RUN): dummy steps at every step shape before the KV cache is sized."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plinth import LLM, SamplingParams
from plinth.platform import Feature
from plinth.runner import model_runner as model_runner_module
from plinth.runner.warm_up import warm_up_shapes
from tests.e2e.conftest import save_tiny_model


@settings(max_examples=200, deadline=None)
@given(max_tokens=st.integers(1, 20_000), max_reqs=st.integers(1, 1024), max_model_len=st.integers(1, 50_000))
def test_shapes_fit_the_scheduler_limits_and_cover_every_kind(max_tokens, max_reqs, max_model_len):
    shapes = warm_up_shapes(max_tokens, max_reqs, max_model_len)
    for lens in shapes:
        assert 1 <= len(lens) <= max_reqs and sum(lens) <= max_tokens
        assert max(lens) <= max_model_len
    # the first step is the token budget (or as much of it as whole max_model_len requests fill)
    longest = min(max_tokens, max_model_len)
    assert shapes[0] == [longest] * min(max_reqs, max_tokens // longest)
    decode = [lens for lens in shapes if max(lens) == 1]
    assert len(decode[-1]) == min(max_reqs, max_tokens)  # the widest decode batch
    if longest > 1:
        assert any(1 < max(lens) <= 64 for lens in shapes)  # short queries (mixed/chunked tiles)
    if longest > 2 and max_reqs > 1:  # prompts next to a one-token query (a mixed step's decode row)
        assert any(max(lens) > 1 and 1 in lens for lens in shapes)
        if max_tokens // 16 > 1:
            assert any(1 < max(lens) <= 16 and 1 in lens for lens in shapes)


class _Spy:
    """Records the shape of every step the attention backend plans, and when the KV cache was sized."""

    def __init__(self):
        self.query_lens: list[tuple[int, int]] = []  # (max_query_len, num_reqs) per planned step
        self.sized_after: int | None = None


@pytest.fixture
def profile_run_cpu(monkeypatch):
    """The cpu platform, declaring Feature.PROFILE_RUN; returns a spy on the runner."""
    CpuPlatform = pytest.importorskip("plinth_cpu.platform").CpuPlatform  # noqa: N806

    spy = _Spy()
    original = CpuPlatform.capabilities.func

    def capabilities(self):
        caps = original(self)
        return dataclasses.replace(caps, features=caps.features | {Feature.PROFILE_RUN})

    monkeypatch.setattr(CpuPlatform, "capabilities", property(capabilities))
    sizing = model_runner_module.num_kv_blocks

    def spy_sizing(*args, **kwargs):
        spy.sized_after = len(spy.query_lens)
        return sizing(*args, **kwargs)

    monkeypatch.setattr(model_runner_module, "num_kv_blocks", spy_sizing)
    return spy


def test_profile_run_plans_every_step_kind_before_kv_sizing(tmp_path, monkeypatch, profile_run_cpu):
    spy = profile_run_cpu
    CpuPlatform = pytest.importorskip("plinth_cpu.platform").CpuPlatform  # noqa: N806

    select = CpuPlatform.select_attention_backend

    def spying_select(self, selector):
        backend = select(self, selector)
        build = backend.build_metadata

        def recording(common):
            spy.query_lens.append((common.max_query_len, common.num_reqs))
            return build(common)

        backend.build_metadata = recording
        return backend

    monkeypatch.setattr(CpuPlatform, "select_attention_backend", spying_select)
    path = save_tiny_model("llama", tmp_path)
    LLM(str(path), device="cpu", dtype="float32", max_num_seqs=8, max_num_batched_tokens=64,
        skip_tokenizer_init=True)
    assert spy.sized_after == len(spy.query_lens) > 0  # every dummy step ran before the cache was sized
    planned = spy.query_lens
    assert planned[0][0] == 64  # prefill at the token budget
    assert any(1 < q <= 16 for q, _ in planned)
    assert {n for q, n in planned if q == 1} == {1, 2, 4, 8}  # the decode ladder up to max_num_seqs


def test_profile_run_leaves_outputs_unchanged(tmp_path, monkeypatch):
    """Greedy and unseeded sampled tokens are the same with and without the profile run
    (no KV slot is written, and the device RNG is re-seeded afterwards)."""
    CpuPlatform = pytest.importorskip("plinth_cpu.platform").CpuPlatform  # noqa: N806

    path = save_tiny_model("llama", tmp_path)
    prompts = [{"prompt_token_ids": [5 + i, 17, 3 * i + 1, 9]} for i in range(4)]
    params = [SamplingParams(temperature=0.0 if i % 2 else 0.9, max_tokens=12, ignore_eos=True) for i in range(4)]

    def run():
        llm = LLM(str(path), device="cpu", dtype="float32", max_num_seqs=4, max_num_batched_tokens=32,
                  skip_tokenizer_init=True, seed=7)
        return [o.outputs[0].token_ids for o in llm.generate(prompts, params)]

    plain = run()
    original = CpuPlatform.capabilities.func

    def capabilities(self):
        caps = original(self)
        return dataclasses.replace(caps, features=caps.features | {Feature.PROFILE_RUN})

    monkeypatch.setattr(CpuPlatform, "capabilities", property(capabilities))
    assert run() == plain


def test_allocator_cache_emptied_after_loading_before_the_profile_run(tmp_path, monkeypatch, profile_run_cpu):
    """What loading left in the allocator's cache (a quantized model's freed float weights) is given back
    after the weights are prepared and before the profile run, so the KV budget, which reads the device's
    free memory, counts it; emptying after the profile run would drop its peak activations from the budget."""
    from plinth_cpu.device import CpuDeviceOps

    events = []
    monkeypatch.setattr(CpuDeviceOps, "empty_cache", lambda self: events.append("empty"))
    for name in ("get_model", "profile_run"):
        original = getattr(model_runner_module, name)

        def recorded(*args, _original=original, _name=name, **kwargs):
            result = _original(*args, **kwargs)
            events.append(_name)
            return result

        monkeypatch.setattr(model_runner_module, name, recorded)
    path = save_tiny_model("llama", tmp_path)
    LLM(str(path), device="cpu", dtype="float32", max_num_seqs=4, max_num_batched_tokens=32, skip_tokenizer_init=True)
    assert events == ["get_model", "empty", "profile_run"]
