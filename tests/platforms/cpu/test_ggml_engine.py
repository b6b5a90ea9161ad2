"""GGUF checkpoints on the cpu platform: linears stay in their GGML blocks (csrc ``ggml_linear``) and the
engine generates what transformers generates from the same file.

SmolLM2 ships as Q4_1 (all seven linears of every layer); a Q8_0 copy is made here with gguf's own
quantizer. In fp32 the kept blocks compute on exactly gguf's dequantized weights, as transformers does,
so greedy tokens must match (a divergence is excused only at a near-tie of the reference's logits).
"""

from __future__ import annotations

import pytest
import torch
import transformers

from plinth import LLM, SamplingParams
from plinth.model.layers.linear import LinearBase
from tests.e2e.conftest import smollm2_gguf  # noqa: F401 - the fixture
from tests.e2e.greedy_oracle import assert_same_greedy, hf_greedy
from tests.platforms.cpu.csrc_paths import needs_extension
from tests.platforms.cpu.gguf_requantize import requantize_gguf

pytestmark = [needs_extension, pytest.mark.slow]

TEXTS = ["The capital of France is", "def fibonacci(n):", "Water boils at"]
TOKENS = 16


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """Converted-GGUF copies in a temporary folder (the first load converts, as for users)."""
    from plinth.model.loader.gguf_cache import CACHE_ENV

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("plinth-cache")))
        yield


@pytest.fixture(scope="module")
def q8_gguf(smollm2_gguf, tmp_path_factory):  # noqa: F811 - the imported fixture
    return requantize_gguf(smollm2_gguf, tmp_path_factory.mktemp("q8") / "SmolLM2-135M-Instruct.Q8_0.gguf", "Q8_0")


def kept_types(llm: LLM) -> list[str | None]:
    """Per linear layer, the GGML type its prepared weight keeps (None: a float weight)."""
    return [getattr(m.prepared, "type_name", None) for m in llm.llm_engine.runner.model.modules()
            if isinstance(m, LinearBase)]


def greedy(llm: LLM, prompts: list[list[int]]) -> list[list[int]]:
    params = SamplingParams(temperature=0, max_tokens=TOKENS, ignore_eos=True)
    return [out.outputs[0].token_ids for out in llm.generate([{"prompt_token_ids": p} for p in prompts], params)]


@pytest.mark.parametrize("which", ["Q8_0", "Q4_1"])
def test_gguf_blocks_kept_and_greedy_equals_transformers_fp32(which, smollm2_gguf, q8_gguf, cache_dir):  # noqa: F811
    path = q8_gguf if which == "Q8_0" else smollm2_gguf
    llm = LLM(str(path), device="cpu", dtype="float32", max_model_len=256)
    assert kept_types(llm) == [which] * 120  # qkv, o, gate_up, down of 30 layers
    hf = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                          dtype=torch.float32).eval()
    prompts = [llm.get_tokenizer()(t).input_ids for t in TEXTS]
    for text, prompt, ours in zip(TEXTS, prompts, greedy(llm, prompts), strict=True):
        ref, logits = hf_greedy(hf, prompt, TOKENS)
        assert_same_greedy(ours, ref, logits)


def test_switch_off_dequantizes_and_generates_the_same(q8_gguf, cache_dir, monkeypatch):
    kept = LLM(str(q8_gguf), device="cpu", dtype="float32", max_model_len=256)
    monkeypatch.setenv("PLINTH_CPU_GGML", "0")
    floats = LLM(str(q8_gguf), device="cpu", dtype="float32", max_model_len=256)
    assert set(kept_types(floats)) == {None}
    prompts = [kept.get_tokenizer()(t).input_ids for t in TEXTS]
    assert greedy(kept, prompts) == greedy(floats, prompts)
