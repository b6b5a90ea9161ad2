"""GGUF checkpoints on the cpu platform: linears stay in their GGML blocks (csrc ``ggml_linear``) and the
engine generates what transformers generates from the same file.

SmolLM2 ships as Q4_1 (all seven linears of every layer); a Q8_0 copy is made here with gguf's own
quantizer. Greedy tokens must match transformers on the same file, a divergence excused only at a
near-tie of the reference's logits.
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
from tests.platforms.cpu.test_bf16_smollm2 import assert_same_greedy_bf16

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


@pytest.fixture(scope="module")
def hf_bf16(smollm2_gguf, q8_gguf):  # noqa: F811 - the imported fixture
    def load(path):
        return transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                                 dtype=torch.bfloat16).eval()
    return {"Q4_1": load(smollm2_gguf), "Q8_0": load(q8_gguf)}


@pytest.mark.parametrize("which", ["Q4_1", "Q8_0"])
def test_gguf_blocks_kept_and_greedy_equals_transformers(which, smollm2_gguf, q8_gguf, hf_bf16, cache_dir,  # noqa: F811
                                                         monkeypatch):
    """bf16, as the platform runs by default: Q4_1 blocks are kept by default, Q8_0 with
    PLINTH_CPU_GGML=all (it measured no faster than bf16), where the CPU has native bf16 dot products
    (elsewhere the weights are dequantized); greedy equals transformers in bf16 on the same file,
    near-ties of one bf16 step excused."""
    from plinth_cpu.extension import extension
    from plinth_cpu.gemv import native_bf16

    if which == "Q8_0":
        monkeypatch.setenv("PLINTH_CPU_GGML", "all")
    path = q8_gguf if which == "Q8_0" else smollm2_gguf
    llm = LLM(str(path), device="cpu", dtype="bfloat16", max_model_len=256)
    kept = which if native_bf16(extension().module) else None
    assert kept_types(llm) == [kept] * 120  # qkv, o, gate_up, down of 30 layers
    prompts = [llm.get_tokenizer()(t).input_ids for t in TEXTS]
    for text, prompt, ours in zip(TEXTS, prompts, greedy(llm, prompts), strict=True):
        ref, logits = hf_greedy(hf_bf16[which], prompt, TOKENS)
        assert_same_greedy_bf16(ours, ref, logits, f"{which} {text!r}")


def test_blocks_only_for_bf16_models_and_the_switch_turns_them_off(smollm2_gguf, cache_dir, monkeypatch):  # noqa: F811
    """fp32 models get dequantized weights (the block kernels are tuned for bf16 activations) and
    still generate what transformers generates in fp32; PLINTH_CPU_GGML=0 keeps no blocks in bf16."""
    fp32 = LLM(str(smollm2_gguf), device="cpu", dtype="float32", max_model_len=256)
    assert set(kept_types(fp32)) == {None}
    hf = transformers.AutoModelForCausalLM.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name,
                                                          dtype=torch.float32).eval()
    prompt = fp32.get_tokenizer()(TEXTS[0]).input_ids
    ref, logits = hf_greedy(hf, prompt, TOKENS)
    assert_same_greedy(greedy(fp32, [prompt])[0], ref, logits)
    monkeypatch.setenv("PLINTH_CPU_GGML", "0")
    off = LLM(str(smollm2_gguf), device="cpu", dtype="bfloat16", max_model_len=256)
    assert set(kept_types(off)) == {None}
