"""Our models against HF transformers (fp32, eager) on one flat batch: prefill, chunked prefill, decode."""

from __future__ import annotations

import pytest
import torch

from plinth.model.build_context import BuildContext
from plinth.model.loader import get_model
from plinth.model.model_config import ModelConfig
from plinth.ops.reference_backend import ReferenceAttentionBackend
from plinth.platform.kernels import KernelRegistry
from tests.core.model.batch_util import PagedDriver

ATOL = RTOL = 1e-4  # fp32, the same math in a different order
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16, "rope_theta": 10000.0}
YARN_ROPE = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128, "rope_theta": 10000.0}

CASES = {
    "llama": ("llama", {"tie_word_embeddings": False}),
    "llama-tied": ("llama", {"tie_word_embeddings": True}),
    "llama3-rope": ("llama", {"rope_parameters": LLAMA3_ROPE}),
    "llama-yarn": ("llama", {"rope_parameters": YARN_ROPE}),
    "llama-linear": ("llama", {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}}),
    "mistral-window": ("mistral", {"sliding_window": 6, "tie_word_embeddings": False}),
    "qwen2": ("qwen2", {"tie_word_embeddings": False}),
    "qwen3": ("qwen3", {"tie_word_embeddings": True}),
    "llama-sharded": ("llama", {"max_shard_size": "40KB"}),
}

PROMPTS = {"a": [1, 5, 7, 9, 11], "b": [3, 4, 200, 100, 2, 9, 8, 7, 6], "c": list(range(20, 32)), "d": [250, 17, 3]}
DECODE_STEPS = 5


def load_ours(folder: str, block_size: int = 4, device: str = "cpu"):
    config = ModelConfig.from_source(folder, dtype="float32")
    backend = ReferenceAttentionBackend()
    ctx = BuildContext(KernelRegistry(), backend, config.dtype, torch.device(device), block_size=block_size)
    return get_model(config, ctx, progress=False), backend


def run_schedule(driver: PagedDriver) -> dict[str, tuple[list[int], torch.Tensor]]:
    """Mixed steps: a, b and half of c prefill; then c's rest and d join a/b's decodes; then decodes.
    Returns each request's fed tokens and our logits at every fed position."""
    fed = {r: [] for r in PROMPTS}
    logits = {r: [] for r in PROMPTS}

    def run(step):
        for req, out in driver.step(step).items():
            fed[req] += step[req]
            logits[req].append(out)

    run({"a": PROMPTS["a"], "b": PROMPTS["b"], "c": PROMPTS["c"][:7]})
    run({"a": [_greedy(logits["a"])], "c": PROMPTS["c"][7:], "b": [_greedy(logits["b"])], "d": PROMPTS["d"]})
    for _ in range(DECODE_STEPS):
        run({r: [_greedy(logits[r])] for r in PROMPTS})
    return {r: (fed[r], torch.cat(logits[r])) for r in PROMPTS}


def _greedy(chunks: list[torch.Tensor]) -> int:
    return int(chunks[-1][-1].argmax())


@pytest.mark.parametrize("case", list(CASES))
def test_logits_match_transformers(case, tiny_checkpoint):
    check_against_transformers(case, tiny_checkpoint, "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", ["llama-tied", "llama3-rope", "mistral-window", "qwen2", "qwen3"])
def test_logits_match_transformers_on_accelerator(case, tiny_checkpoint):
    check_against_transformers(case, tiny_checkpoint, "cuda")


def check_against_transformers(case, tiny_checkpoint, device):
    arch, overrides = CASES[case]
    folder, hf_model = tiny_checkpoint(arch, name=case, **overrides)
    model, backend = load_ours(folder, device=device)
    assert all(p.device.type == device for p in model.parameters())
    results = run_schedule(PagedDriver(model, backend, device=device))
    for req, (tokens, ours) in results.items():
        with torch.no_grad():
            ref = hf_model(torch.tensor([tokens])).logits[0]
        torch.testing.assert_close(ours, ref, atol=ATOL, rtol=RTOL, msg=lambda m, req=req: f"{case}/{req}: {m}")
        # greedy is non-trivial: the decoded tokens are not one repeated token
        assert len(set(tokens[len(PROMPTS[req]):])) > 1 or len(tokens) - len(PROMPTS[req]) < 2


def test_mistral_window_is_exercised(tiny_checkpoint):
    """The sliding window changes the result (else the Mistral case would prove little)."""
    folder, _ = tiny_checkpoint("mistral", name="mistral-window", sliding_window=6, tie_word_embeddings=False)
    model, _ = load_ours(folder)
    assert [layer.self_attn.attn.sliding_window for layer in model.model.layers] == [6, 6]
    assert all(spec.sliding_window == 6 for spec in model.kv_cache_spec())
