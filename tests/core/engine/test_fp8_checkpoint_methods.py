"""Which linear method each layer of an fp8 checkpoint takes: ``fp8`` where the platform offers it, except the
layers the checkpoint keeps in float (unquantized, as vLLM keeps them) and weight-only checkpoints (float)."""

from __future__ import annotations

import logging

import pytest
import transformers

from plinth.model.layers.linear import LinearBase
from tests.e2e.fp8_checkpoint import save_fp8_checkpoint
from tests.e2e.greedy_oracle import assert_same_greedy, hf_greedy

pytest.importorskip("plinth_cpu", reason="these tests run on the cpu platform")

DOWN_0 = "model.layers.0.mlp.down_proj"


@pytest.fixture
def fp8_offered(monkeypatch):
    """The cpu platform offers an ``fp8`` method (F.linear under that name: outputs stay exact)."""
    from plinth.platform.linear_method import TorchLinearMethod
    from plinth_cpu.platform import CpuPlatform

    class Fp8(TorchLinearMethod):
        name, quantizes_lm_head = "fp8", False

    offered = CpuPlatform.quantization_methods
    monkeypatch.setattr(CpuPlatform, "quantization_methods", lambda self: {**offered(self), "fp8": Fp8()})


def _llm(path, **kw):
    from plinth import LLM

    return LLM(str(path), device="cpu", dtype="float32", skip_tokenizer_init=True, max_num_seqs=4, **kw)


def _methods(llm) -> dict[str, str]:
    return {name: m.linear_method.name for name, m in llm.llm_engine.runner.model.named_modules()
            if isinstance(m, LinearBase)}


def test_layers_in_ignored_layers_stay_unquantized_and_the_model_matches_transformers(tmp_path, fp8_offered):
    from plinth import SamplingParams

    fp8_dir, ref_dir = save_fp8_checkpoint(tmp_path, "channel", keep_float=[DOWN_0],
                                           quant_extra={"ignored_layers": [DOWN_0]})
    llm = _llm(fp8_dir)
    methods = _methods(llm)
    assert llm.llm_engine.config.quantization == "fp8"
    assert methods.pop(DOWN_0) == "unquantized" and set(methods.values()) == {"fp8"} and len(methods) == 7
    prompt = [5, 17, 42, 9]
    out = llm.generate([{"prompt_token_ids": prompt}], SamplingParams(temperature=0, max_tokens=8, ignore_eos=True))
    ref, ref_logits = hf_greedy(transformers.AutoModelForCausalLM.from_pretrained(ref_dir).eval(), prompt, 8)
    assert_same_greedy(out[0].outputs[0].token_ids, ref, ref_logits)


def test_compressed_tensors_ignore_takes_names_and_re_patterns_and_judges_fused_layers_by_shards(
        tmp_path, fp8_offered):
    attn_1 = [f"model.layers.1.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
    fp8_dir, _ = save_fp8_checkpoint(tmp_path, "tensor", fmt="compressed-tensors", keep_float=attn_1,
                                     quant_extra={"ignore": ["lm_head", r"re:.*layers\.1\.self_attn\..*"]})
    methods = _methods(_llm(fp8_dir))
    assert {name for name, m in methods.items() if m == "unquantized"} == {
        "model.layers.1.self_attn.qkv_proj", "model.layers.1.self_attn.o_proj"}
    assert methods["model.layers.0.self_attn.qkv_proj"] == "fp8"


def test_a_fused_layer_with_some_shards_in_float_is_a_clear_error(tmp_path, fp8_offered):
    k_0 = "model.layers.0.self_attn.k_proj"
    fp8_dir, _ = save_fp8_checkpoint(tmp_path, "channel", keep_float=[k_0], quant_extra={"ignored_layers": [k_0]})
    with pytest.raises(ValueError, match=r"ignored_layers keeps model\.layers\.0\.self_attn\.k_proj in float but "
                                         r"not .*q_proj.*quantization='unquantized'"):
        _llm(fp8_dir)
    assert set(_methods(_llm(fp8_dir, quantization="unquantized")).values()) == {"unquantized"}


def test_a_weight_only_compressed_tensors_checkpoint_runs_in_float(tmp_path, fp8_offered, caplog):
    w8a16, _ = save_fp8_checkpoint(tmp_path / "w8a16", "channel", fmt="compressed-tensors-w8a16")
    w8a8, _ = save_fp8_checkpoint(tmp_path / "w8a8", "channel", fmt="compressed-tensors")
    with caplog.at_level(logging.INFO, logger="plinth.engine.llm_engine"):
        assert _llm(w8a16).llm_engine.config.quantization is None
    assert "weight-only (its groups have no input_activations)" in caplog.text
    assert _llm(w8a8).llm_engine.config.quantization == "fp8"
