"""Static shapes (``GraphRunner.static_shapes``, XLA): whole-buffer uploads, padded sampling rows,
the same tokens as a plain runner. The XLA compile counts themselves are checked in the torch-xla
venv (tests/platforms/tpu/xla_e2e.py)."""

from __future__ import annotations

import pytest
import torch

from plinth import SamplingParams
from plinth.platform import BatchDescriptor, EagerGraphRunner
from plinth.runner.request_state import RequestState
from plinth.runner.sampling_metadata import SamplingMetadata, SamplingMetadataError, make_generator
from plinth.runner.step_inputs import InputBuffers
from tests.core.runner.tiny_runs import generate_tiny, model_runner, tiny_prompts
from tests.e2e.conftest import save_tiny_model

pytest.importorskip("plinth_cpu", reason="these runs use the cpu platform")


def _state(req_id: str, prompt: list[int], blocks: list[int], computed: int = 0) -> RequestState:
    return RequestState(req_id, prompt, [], list(prompt), SamplingParams(temperature=0), blocks, computed)


def _buffers() -> InputBuffers:
    return InputBuffers(max_tokens=32, max_reqs=4, max_blocks_per_req=5, block_size=4,
                        device=torch.device("cpu"), pin_memory=False)


def test_static_build_uploads_whole_buffers_and_pads_logits_rows():
    buffers = _buffers()
    buffers.block_table.host[3] = 9  # a stale row past the batch: uploaded too, never a slice
    states = [_state("a", [5, 6, 7, 8, 9], [2, 3]), _state("b", [1, 2], [4])]
    inputs = buffers.build(states, [5, 2], padded_tokens=8, padded_reqs=4, static_shapes=True)
    assert inputs.metadata is None  # the step makes its own views
    assert inputs.input_ids.shape == (32,) and inputs.input_ids.data_ptr() == buffers.input_ids.device.data_ptr()
    assert inputs.input_ids[:8].tolist() == [5, 6, 7, 8, 9, 1, 2, 0]
    assert inputs.logits_indices.tolist() == [4, 6, 0, 0]  # padding rows point at token 0
    assert torch.equal(buffers.block_table.device, buffers.block_table.host_tensor)
    assert buffers.block_table.device[3].tolist() == [9] * 5
    assert buffers.slot_mapping.device[:8].tolist() == [8, 9, 10, 11, 12, 16, 17, -1]
    plain = _buffers().build(states, [5, 2], padded_tokens=8, padded_reqs=4)
    assert plain.logits_indices.tolist() == [4, 6] and plain.metadata.block_table.shape == (4, 5)


def test_static_build_refuses_what_it_cannot_pad():
    states = [_state("a", [5, 6], [1])]
    with pytest.raises(ValueError, match="pad every step to the buffers' 4 requests"):
        _buffers().build(states, [2], padded_tokens=8, padded_reqs=2, static_shapes=True)
    pending = _state("p", [5, 6], [1], computed=2)
    pending.num_pending = 1  # its last token is still on the device (async scheduling)
    with pytest.raises(ValueError, match="async scheduling"):
        _buffers().build([pending], [1], padded_tokens=8, padded_reqs=4, static_shapes=True)


def test_sampling_metadata_pad_to_adds_neutral_rows():
    params = [SamplingParams(temperature=0.7, top_k=5, repetition_penalty=1.3, seed=1)]
    md = SamplingMetadata.build(params, [[3, 4]], [[5]], vocab_size=16, device="cpu",
                                generators=[make_generator(1, "cpu")], pad_to=3)
    assert md.temperature.tolist() == pytest.approx([0.7, 1.0, 1.0])
    assert md.top_k.tolist() == [5, 16, 16] and md.repetition_penalties.tolist() == pytest.approx([1.3, 1, 1])
    assert md.prompt_token_ids_padded.tolist() == [[3, 4] + [16] * 14, [16] * 16, [16] * 16]  # width bucket 16
    assert md.all_random and not md.all_greedy and list(md.generators) == [0]
    greedy = SamplingMetadata.build([SamplingParams(temperature=0)], [[]], [[]], vocab_size=16, device="cpu",
                                    pad_to=4)
    assert greedy.all_greedy and greedy.temperature.shape == (4,)  # flags describe the real rows
    with pytest.raises(SamplingMetadataError, match="below the batch's 2 rows"):
        SamplingMetadata.build([SamplingParams()] * 2, [[], []], [[], []], vocab_size=16, device="cpu", pad_to=1)


class _StaticRunner(EagerGraphRunner):
    """XLA's padding on the CPU: token buckets of powers of two, every step at ``max_reqs`` requests."""

    static_shapes = True

    def __init__(self, max_reqs: int) -> None:
        self.max_reqs, self.ran = max_reqs, []

    def pad(self, descriptor: BatchDescriptor) -> BatchDescriptor:
        tokens = 8
        while tokens < descriptor.num_tokens:
            tokens *= 2
        return BatchDescriptor(tokens, self.max_reqs, descriptor.uniform_decode)

    def run(self, fn, descriptor):
        out = fn(descriptor)
        self.ran.append((descriptor.num_tokens, tuple(out[0].shape), tuple(out[1].shape)))
        return out


def test_static_shapes_runner_gives_plain_tokens(tmp_path, monkeypatch):
    from plinth.platform import select_platform

    path = save_tiny_model("llama", tmp_path)
    prompts = tiny_prompts(5)
    params = [SamplingParams(temperature=0, max_tokens=6, ignore_eos=True),
              SamplingParams(temperature=0.8, seed=7, max_tokens=5, ignore_eos=True, logprobs=2),
              SamplingParams(temperature=0.9, seed=3, top_k=20, repetition_penalty=1.2, max_tokens=7,
                             ignore_eos=True),
              SamplingParams(temperature=0, max_tokens=4, ignore_eos=True, presence_penalty=0.5),
              SamplingParams(temperature=0, max_tokens=6, ignore_eos=True)]
    _, plain = generate_tiny(path, prompts, params, max_num_batched_tokens=32)
    platform_class = type(select_platform("cpu"))
    monkeypatch.setattr(platform_class, "graph_runner", lambda self, config: _StaticRunner(4))
    llm, static = generate_tiny(path, prompts, params, max_num_batched_tokens=32)
    runner = model_runner(llm)
    assert runner.static_shapes
    ran = runner.graph_runner.ran
    assert ran and all(hidden[0] == tokens and rows == (4, hidden[1]) for tokens, hidden, rows in ran)
    assert {tokens for tokens, _, _ in ran} >= {8, 32}  # decode and prefill buckets both ran
    assert [t for t, _ in static] == [t for t, _ in plain]
    for got, want in zip(static[1][1], plain[1][1], strict=True):  # the real row's logprobs (float noise:
        assert {k: v.rank for k, v in got.items()} == {k: v.rank for k, v in want.items()}  # a taller GEMM)
        assert [v.logprob for v in got.values()] == pytest.approx([v.logprob for v in want.values()], abs=1e-5)
