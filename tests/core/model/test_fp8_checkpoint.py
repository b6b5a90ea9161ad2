"""FP8 checkpoints: e4m3 weights with per-tensor, per-channel or block scales load as ``weight * scale``;
the engine runs them (greedy = transformers on the dequantized weights) in each format it reads, and picks
``fp8`` linears where the platform offers them."""

from __future__ import annotations

import pytest
import torch
import transformers

from plinth.model.loader.fp8_checkpoint import dequantize, dequantize_weights
from tests.e2e.fp8_checkpoint import add_tensors, quantize, save_fp8_checkpoint
from tests.e2e.greedy_oracle import assert_same_greedy, hf_greedy


@pytest.mark.parametrize("layout", ["tensor", "channel", "block"])
def test_dequantize_is_weight_times_its_scale(layout):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(70, 100, generator=gen)  # not a multiple of the 32-wide blocks
    q, scale = quantize(w, layout)
    got = dequantize(q, scale, (32, 32) if layout == "block" else None)
    if layout == "block":
        expected = torch.empty_like(w)
        for i in range(0, 70, 32):
            for j in range(0, 100, 32):
                expected[i:i + 32, j:j + 32] = q[i:i + 32, j:j + 32].float() * scale[i // 32, j // 32]
    else:
        expected = q.float() * scale.reshape(-1, 1)
    assert torch.equal(got, expected)
    assert (got - w).abs().max() <= w.abs().max() / 448 * 16  # half a step of the coarsest grid
    with pytest.raises(ValueError, match="expected one value, one per output row, or one per block .block scales "
                                         "need the block size: quantization_config.weight_block_size, or a "
                                         "compressed-tensors group's block_structure"):
        dequantize(q, torch.ones(3))
    if layout == "block":
        with pytest.raises(ValueError, match="one per 16 x 16 block"):
            dequantize(q, scale, (16, 16))


def test_dequantize_weights_pairs_in_any_order_and_drops_unused_scales():
    w = torch.randn(32, 16)
    q, s = quantize(w, "tensor")
    stream = [("a.weight_scale", s), ("b.weight", torch.ones(2)), ("a.weight", q), ("a.input_scale", torch.ones(1)),
              ("c.weight", q), ("c.weight_scale", s), ("attn.k_scale", torch.ones(1)),
              ("a.input_scale_ub", torch.ones(1)),  # fbgemm_fp8's activation bound
              ("self_attn.k_proj.output_scale", torch.ones(1)), ("self_attn.v_proj.output_scale", torch.ones(1))]
    out = dict(dequantize_weights(stream, torch.float32))
    assert sorted(out) == ["a.weight", "b.weight", "c.weight"]
    assert torch.equal(out["a.weight"], q.float() * s) and torch.equal(out["c.weight"], out["a.weight"])
    with pytest.raises(ValueError, match="without their partner .*needs X.weight_scale"):
        list(dequantize_weights([("d.weight", q)], torch.float32))


FBGEMM = {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0, "modules_to_not_convert": ["lm_head"]}


@pytest.mark.parametrize(("fmt", "layout", "quant_extra"), [
    ("fp8", "tensor", None), ("fp8", "channel", None), ("fp8", "block", None),
    ("compressed-tensors", "block", None),  # block_structure, scales named weight_scale
    pytest.param("fp8", "channel", FBGEMM, id="fbgemm_fp8-channel"),  # per-channel scales, input_scale_ub
])
def test_fp8_checkpoint_greedy_equals_transformers_on_its_dequantized_weights(tmp_path, fmt, layout, quant_extra):
    pytest.importorskip("plinth_cpu", reason="runs on the cpu platform")
    from plinth import LLM, SamplingParams

    fp8_dir, ref_dir = save_fp8_checkpoint(tmp_path, layout, fmt=fmt, quant_extra=quant_extra)
    if quant_extra is FBGEMM:
        add_tensors(fp8_dir, {"model.layers.0.mlp.down_proj.input_scale_ub": torch.full((1,), 1200.0)})
    llm = LLM(str(fp8_dir), device="cpu", dtype="float32", skip_tokenizer_init=True, max_num_seqs=4)
    assert llm.llm_engine.config.quantization is None  # the cpu platform offers no fp8: dequantized floats
    prompts = [[5, 17, 42, 9], [101, 33, 7, 250, 3, 3, 12]]
    outs = llm.generate([{"prompt_token_ids": p} for p in prompts],
                        SamplingParams(temperature=0, max_tokens=12, ignore_eos=True))
    hf = transformers.AutoModelForCausalLM.from_pretrained(ref_dir, dtype=torch.float32).eval()
    for prompt, out in zip(prompts, outs, strict=True):
        ref, ref_logits = hf_greedy(hf, prompt, 12)
        assert_same_greedy(out.outputs[0].token_ids, ref, ref_logits)


def test_fp8_checkpoint_takes_fp8_linears_where_offered(tmp_path, monkeypatch):
    pytest.importorskip("plinth_cpu", reason="runs on the cpu platform")
    from plinth import LLM
    from plinth.platform.linear_method import TorchLinearMethod
    from plinth_cpu.platform import CpuPlatform

    class Fp8(TorchLinearMethod):
        name = "fp8"

    offered = CpuPlatform.quantization_methods
    monkeypatch.setattr(CpuPlatform, "quantization_methods", lambda self: {**offered(self), "fp8": Fp8()})
    fp8_dir, _ = save_fp8_checkpoint(tmp_path, "channel")
    kw = dict(device="cpu", dtype="float32", skip_tokenizer_init=True, max_num_seqs=4)
    assert LLM(str(fp8_dir), **kw).llm_engine.config.quantization == "fp8"
    assert LLM(str(fp8_dir), quantization="unquantized", **kw).llm_engine.config.quantization is None
