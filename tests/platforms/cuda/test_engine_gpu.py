"""End to end on the GPU: greedy tokens equal transformers'; CUDA-graph replay equals eager."""

from __future__ import annotations

import random

import pytest
import torch
import transformers

from tests.e2e.conftest import ARCHS, save_tiny_model
from tests.e2e.greedy_oracle import assert_same_greedy, hf_greedy

pytestmark = pytest.mark.gpu
STEPS = 24


def _prompts(n: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(3, 256) for _ in range(rng.randrange(3, 60))] for _ in range(n)]


def _generate(path, prompts, **kw):
    from plinth import LLM, SamplingParams

    llm = LLM(str(path), device="cuda", dtype="float32", skip_tokenizer_init=True, max_model_len=256,
              kv_cache_memory_bytes=1 << 30, **kw)  # fixed: other test workers share the GPU
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=STEPS, ignore_eos=True))
    return llm, [o.outputs[0].token_ids for o in outs]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_greedy_equals_transformers(arch, tmp_path):
    path = save_tiny_model(arch, tmp_path)
    prompts = _prompts(7, seed=len(arch))
    llm, ours = _generate(path, prompts)
    assert llm.llm_engine.runner.graph_runner.captured(), "expected CUDA graphs to be captured"
    hf = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    for prompt, tokens in zip(prompts, ours, strict=True):
        ref, ref_logits = hf_greedy(hf, prompt, STEPS)
        assert_same_greedy(tokens, ref, ref_logits)


def test_graph_replay_equals_eager(tmp_path):
    path = save_tiny_model("qwen3", tmp_path)
    prompts = _prompts(13, seed=5)  # 13 pads to the 16-capture
    _, graphed = _generate(path, prompts)
    _, eager = _generate(path, prompts, enforce_eager=True)
    assert graphed == eager


def test_chunked_prefill_and_small_budget(tmp_path):
    path = save_tiny_model("llama", tmp_path)
    prompts = _prompts(5, seed=9)
    _, chunked = _generate(path, prompts, max_num_batched_tokens=16, max_num_seqs=4)
    _, plain = _generate(path, prompts, enforce_eager=True)
    assert chunked == plain


def test_qwen3_06b_shape_greedy_equals_transformers(tmp_path):
    """The T3 model shape (Qwen3-0.6B: 28 layers, vocab 151,936) with shared random weights saved to
    safetensors and loaded by both engines; float32 so that only real differences change a token."""
    from plinth.bench.workloads import MODEL_SHAPES

    shape = {k: v for k, v in MODEL_SHAPES["qwen3-0.6b"].items() if k not in ("architectures", "model_type")}
    shape.update(torch_dtype="float32", max_position_embeddings=4096)
    torch.manual_seed(0)
    with torch.device("cuda"):
        hf = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**shape)).eval()
    hf.save_pretrained(tmp_path / "qwen3-0.6b")  # safetensors
    rng = random.Random(3)
    prompts = [[rng.randrange(3, 150_000) for _ in range(n)] for n in (5, 37, 200)]
    _, ours = _generate(tmp_path / "qwen3-0.6b", prompts, max_num_seqs=8)
    for prompt, tokens in zip(prompts, ours, strict=True):
        ref, ref_logits = hf_greedy(hf, prompt, STEPS)
        assert_same_greedy(tokens, ref, ref_logits)


def _fp8_kv_attention(quantize_prompts: bool):
    """HF's sdpa attention over keys and values as an fp8 cache holds them (saturated, scale 1.0); a
    prompt's own forward (more than one query) keeps them unrounded unless ``quantize_prompts``, as
    plinth's dense prefill kernel attends over the step's own keys and values."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from plinth.ops.reference import to_cache_dtype

    def attention(module, query, key, value, attention_mask, **kwargs):
        if quantize_prompts or query.shape[2] == 1:
            key, value = (to_cache_dtype(x, torch.float8_e4m3fn).to(x.dtype) for x in (key, value))
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    return attention


@pytest.mark.parametrize("dense_prefill", [True, False])
@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_fp8_kv_cache_greedy_equals_transformers_on_fp8_values(arch, dense_prefill, tmp_path, monkeypatch):
    """``kv_cache_dtype="fp8"``: greedy tokens equal transformers' when its attention reads keys and values
    rounded to fp8 as the cache stores them; fresh prompts attend over their own unrounded ones where the
    dense prefill kernel serves them (Hopper, unless turned off)."""
    from transformers import AttentionInterface

    if not dense_prefill:
        monkeypatch.setenv("PLINTH_TRITON_DENSE_PREFILL", "0")
    dense = dense_prefill and torch.cuda.get_device_capability()[0] >= 9
    name = f"plinth_fp8_kv_{'dense' if dense else 'paged'}"
    AttentionInterface.register(name, _fp8_kv_attention(quantize_prompts=not dense))
    path = save_tiny_model(arch, tmp_path)
    prompts = _prompts(6, seed=11)
    llm, ours = _generate(path, prompts, kv_cache_dtype="fp8")
    assert llm.llm_engine.runner.kv_caches[0].dtype == torch.float8_e4m3fn
    hf = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=name).eval()
    for prompt, tokens in zip(prompts, ours, strict=True):
        ref, ref_logits = hf_greedy(hf, prompt, STEPS)
        assert_same_greedy(tokens, ref, ref_logits)


def _fp8_linear_forward(linear, x):
    """What plinth's ``fp8`` linear computes, from torch's ops: e4m3 activations per token (torch's own
    rounding) and weights per output channel, multiplied by the same ``torch._scaled_mm`` (bf16 output,
    fast accumulation) cast to the model's dtype, then the bias. The GEMM's numerics are checked against float64 in
    ``test_fp8_linear``; this oracle checks what the engine does with it (merged projections, per-token
    rows, biases, which layers are quantized)."""
    from plinth_triton.fp8_linear import quantize_rows_reference, quantize_weight

    qx, sx = quantize_rows_reference(x)
    w = quantize_weight(linear.weight)
    y = torch._scaled_mm(qx, w.qweight.T, scale_a=sx, scale_b=w.scale, out_dtype=torch.bfloat16,
                         use_fast_accum=True).to(x.dtype)
    if linear.bias is not None:
        y = y + linear.bias
    return y.reshape(*x.shape[:-1], -1)


def _teacher_forced_logprobs(model, prompt, tokens) -> torch.Tensor:
    """``model``'s log-probabilities of ``tokens`` after ``prompt``, each step given the previous tokens."""
    with torch.inference_mode():
        logits = model(torch.tensor([prompt + tokens[:-1]], device="cuda")).logits[0, len(prompt) - 1:].float()
    return torch.log_softmax(logits, -1)[torch.arange(len(tokens)), torch.tensor(tokens)].cpu()


def _assert_follows_fp8_oracle(llm, float_path, prompts) -> None:
    """The log-probabilities of ``llm``'s greedy tokens follow transformers' (the float model at
    ``float_path`` with its linears, not the LM head, through the same fp8 operands and GEMM, teacher-forced)
    at less than half the distance of the float model's."""
    from plinth import SamplingParams

    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=STEPS, ignore_eos=True, logprobs=0))
    float_hf = transformers.AutoModelForCausalLM.from_pretrained(float_path, dtype=torch.float32).eval().cuda()
    fp8_hf = transformers.AutoModelForCausalLM.from_pretrained(float_path, dtype=torch.float32).eval().cuda()
    for name, module in fp8_hf.named_modules():
        if isinstance(module, torch.nn.Linear) and name != "lm_head":
            module.forward = lambda x, m=module: _fp8_linear_forward(m, x)
    ours_err, float_err = [], []
    for prompt, out in zip(prompts, outs, strict=True):
        tokens = out.outputs[0].token_ids
        ours = torch.tensor([lp[t].logprob for lp, t in zip(out.outputs[0].logprobs, tokens, strict=True)])
        oracle = _teacher_forced_logprobs(fp8_hf, prompt, tokens)
        ours_err.append((ours - oracle).abs())
        float_err.append((_teacher_forced_logprobs(float_hf, prompt, tokens) - oracle).abs())
    ours_err, float_err = torch.cat(ours_err).mean().item(), torch.cat(float_err).mean().item()
    assert ours_err < 0.5 * float_err, f"mean |logprob error|: ours {ours_err:.4f}, the float model {float_err:.4f}"


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_fp8_linears_follow_transformers_on_fp8_operands(arch, tmp_path):
    """``quantization="fp8"``: the log-probabilities of our greedy tokens follow transformers' with its
    linears (not the LM head) computing through the same fp8 operands and GEMM, far closer than the float
    model's do. Not token equality: a last-bit difference (accumulation order, attention, norms) that moves
    a value across an fp8 rounding boundary is amplified by the next layer's quantization; free-running, the
    two diverged after 9 and 15 equal tokens at top-2 gaps of 0.07 (of a logit spread of about 7)."""
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("fp8 GEMMs need sm_89+")
    from plinth_triton.fp8_linear import Fp8Weight

    from plinth import LLM

    path = save_tiny_model(arch, tmp_path)
    llm = LLM(str(path), device="cuda", dtype="float32", skip_tokenizer_init=True, max_model_len=256,
              kv_cache_memory_bytes=1 << 30, quantization="fp8")
    model = llm.llm_engine.runner.model
    qkv = model.model.layers[0].self_attn.qkv_proj
    assert isinstance(qkv.prepared, Fp8Weight) and qkv.prepared.qweight.dtype == torch.float8_e4m3fn
    assert not isinstance(model.lm_head.prepared, Fp8Weight)  # the LM head stays 16-bit, as in vLLM
    _assert_follows_fp8_oracle(llm, path, _prompts(6, seed=17))


def test_fp8_checkpoint_runs_its_own_e4m3_weights(tmp_path):
    """A per-channel fp8 checkpoint (AutoFP8's layout) takes the ``fp8`` linears by default; re-quantized
    per output channel after loading, the merged projections hold exactly the checkpoint's e4m3 values and
    scales, and the model follows the fp8 oracle on the checkpoint's dequantized weights."""
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("fp8 GEMMs need sm_89+")
    from safetensors.torch import load_file

    from plinth import LLM
    from tests.e2e.fp8_checkpoint import save_fp8_checkpoint

    fp8_dir, ref_dir = save_fp8_checkpoint(tmp_path, "channel")
    llm = LLM(str(fp8_dir), device="cuda", dtype="float32", skip_tokenizer_init=True, max_model_len=256,
              kv_cache_memory_bytes=1 << 30)
    assert llm.llm_engine.config.quantization == "fp8"
    stored = load_file(fp8_dir / "model.safetensors")
    layer = llm.llm_engine.runner.model.model.layers[0]
    for merged, parts in ((layer.self_attn.qkv_proj, ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
                          (layer.mlp.gate_up_proj, ("mlp.gate_proj", "mlp.up_proj"))):
        names = [f"model.layers.0.{p}.weight" for p in parts]
        want_q = torch.cat([stored[n] for n in names]).float()
        want_scale = torch.cat([stored[n + "_scale"] for n in names]).flatten()
        assert torch.equal(merged.prepared.qweight.float().cpu(), want_q)
        torch.testing.assert_close(merged.prepared.scale.flatten().cpu(), want_scale, rtol=1e-6, atol=0)
    _assert_follows_fp8_oracle(llm, ref_dir, _prompts(6, seed=23))


def _compiled_variants(fn) -> int:
    """How many compiled variants a Triton JIT function holds (any Triton 3.x layout)."""
    caches = getattr(fn, "device_caches", None)
    if caches is not None:
        return sum(len(entry[0]) for entry in caches.values())
    return sum(len(c) for c in fn.cache.values())


@pytest.mark.parametrize("enforce_eager", [False, True])
def test_no_triton_compile_after_start_up(tmp_path, enforce_eager):
    """The profile run compiles every kernel variant a run can need: batches of any size and mix
    (prefill, chunked, decode, greedy and sampled) compile nothing more."""
    from plinth_triton import (
        activation,
        attention_kernel,
        gated_linear,
        kv_write,
        norm,
        prefill_attention,
        rotary,
        sampling,
    )

    from plinth import LLM, SamplingParams

    kernels = [attention_kernel._paged_attention_kernel, attention_kernel._merge_splits_kernel,
               sampling._sample_partial_kernel, sampling._sample_reduce_kernel, rotary._rotary_kernel,
               norm._rms_norm_kernel, kv_write._write_kv_kernel, activation._silu_and_mul_kernel,
               gated_linear._gated_linear_kernel, prefill_attention._prefill_attention_kernel]
    path = save_tiny_model("qwen3", tmp_path)
    # 2,560 tokens a step: prompt steps of 2,048+ rows run the fused gate/up + SiLU GEMM (sm_90+)
    llm = LLM(str(path), device="cuda", dtype="bfloat16", skip_tokenizer_init=True, max_model_len=256,
              kv_cache_memory_bytes=1 << 30, max_num_seqs=32, max_num_batched_tokens=2560,
              enforce_eager=enforce_eager)
    before = [_compiled_variants(k) for k in kernels]
    rng = random.Random(6)
    batches = [_prompts(n, seed) for n, seed in ((1, 1), (3, 2), (17, 3), (30, 4))]
    batches.append([[rng.randrange(3, 256) for _ in range(200 + i)] for i in range(12)])  # 2,466 prompt tokens
    for prompt_ids in batches:
        n = len(prompt_ids)
        params = [SamplingParams(temperature=0.0 if i % 2 else 0.7, max_tokens=5 + i % 7, ignore_eos=True)
                  for i in range(n)]
        llm.generate([{"prompt_token_ids": p} for p in prompt_ids], params)
    assert [_compiled_variants(k) for k in kernels] == before


def _prefill_sized_prompts(seed: int):
    """Five 450-token prompts (one 2,250-row prompt step) and greedy params with top-5 logprobs."""
    from plinth import SamplingParams

    rng = random.Random(seed)
    prompts = [{"prompt_token_ids": [rng.randrange(3, 256) for _ in range(450)]} for _ in range(5)]
    return prompts, SamplingParams(temperature=0, max_tokens=3, ignore_eos=True, logprobs=5)


def _assert_first_logprobs_match(got_runs, want_runs, tolerance: float = 0.05):
    """Each prompt's first-token top logprobs: the best of ``want`` is among ``got``, shared ones agree."""
    for got, want in zip(got_runs, want_runs, strict=True):
        top_want = max(want, key=lambda t: want[t].logprob)
        assert top_want in got
        for token in set(got) & set(want):
            assert abs(got[token].logprob - want[token].logprob) < tolerance, (token, got[token], want[token])


def test_residual_added_in_the_gemm_in_the_engine(tmp_path, monkeypatch):
    """bf16 prompt steps of 2,048+ rows add the residual inside the output and down projections' GEMMs: the first
    token's top logprobs equal those of the same model with it off (the add in the next fused add + RMSNorm)."""
    from plinth_triton.gemv import GemvLinear

    from plinth import LLM

    fused_calls = []
    apply_add = GemvLinear.apply_add

    def counting(self, x, prepared, bias, residual):
        out = apply_add(self, x, prepared, bias, residual)
        fused_calls.append(out is not None)
        return out

    monkeypatch.setattr(GemvLinear, "apply_add", counting)
    path = save_tiny_model("llama", tmp_path)
    prompts, params = _prefill_sized_prompts(seed=12)
    results = {}
    for fused in ("1", "0"):
        monkeypatch.setenv("PLINTH_GEMM_RESIDUAL", fused)
        fused_calls.clear()
        llm = LLM(str(path), device="cuda", dtype="bfloat16", skip_tokenizer_init=True, max_model_len=512,
                  kv_cache_memory_bytes=1 << 30, max_num_batched_tokens=4096, max_num_seqs=8, enforce_eager=True)
        results[fused] = [o.outputs[0].logprobs[0] for o in llm.generate(prompts, params)]
        assert any(fused_calls) == (fused == "1") and not all(fused_calls)  # decode steps decline
        del llm
    _assert_first_logprobs_match(results["1"], results["0"])


def test_fused_gate_up_silu_in_the_engine(tmp_path, monkeypatch):
    """bf16 prompt steps of 2,048+ rows run the gate/up GEMM with SiLU-and-mul fused (sm_90+): the first
    token's top logprobs equal those of the same model with the fusion off (cuBLAS + the SiLU kernel)."""
    if torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("the fused gate/up GEMM needs sm_90+")
    from plinth_triton import gated_linear
    from plinth_triton.gemv import InterleavedGateUp

    from plinth import LLM

    path = save_tiny_model("llama", tmp_path)
    prompts, params = _prefill_sized_prompts(seed=11)
    results = {}
    for fused in ("1", "0"):
        monkeypatch.setenv("PLINTH_TRITON_GATED_SILU", fused)
        before = _compiled_variants(gated_linear._gated_linear_kernel)
        llm = LLM(str(path), device="cuda", dtype="bfloat16", skip_tokenizer_init=True, max_model_len=512,
                  kv_cache_memory_bytes=1 << 30, max_num_batched_tokens=4096, max_num_seqs=8)
        gate_up = llm.llm_engine.runner.model.model.layers[0].mlp.gate_up_proj
        assert isinstance(gate_up.prepared, InterleavedGateUp) == (fused == "1")
        results[fused] = [o.outputs[0].logprobs[0] for o in llm.generate(prompts, params)]
        if fused == "1":
            assert _compiled_variants(gated_linear._gated_linear_kernel) > before or before > 0
        del llm
    _assert_first_logprobs_match(results["1"], results["0"])
