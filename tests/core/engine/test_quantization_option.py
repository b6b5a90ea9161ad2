"""``LLM(quantization=...)`` reaches every linear layer through the platform's linear methods."""

from __future__ import annotations

import pytest

from plinth import LLM, SamplingParams
from plinth.model.layers.linear import LinearBase
from tests.e2e.conftest import save_tiny_model

pytest.importorskip("plinth_cpu", reason="these tests run on the cpu platform")


def _linear_methods(llm) -> set[tuple[str, str]]:
    model = llm.llm_engine.runner.model
    return {(m.linear_method.name, type(m.linear_method).__name__) for m in model.modules()
            if isinstance(m, LinearBase)}


def _llm(path, **kw):
    return LLM(str(path), device="cpu", dtype="float32", skip_tokenizer_init=True, max_num_seqs=4,
               max_num_batched_tokens=64, **kw)


def test_quantization_reaches_every_linear_and_the_model_still_generates(tmp_path):
    from plinth.platform import select_platform

    offered = select_platform("cpu").quantization_methods()
    if "int8_weight_only" not in offered:
        pytest.skip("the cpu platform's C++ extension is not built here: no int8 linear")
    path = save_tiny_model("llama", tmp_path)
    plain, quantized = _llm(path), _llm(path, quantization="int8_weight_only")
    assert {name for name, _ in _linear_methods(quantized)} == {"int8_weight_only"}
    # without a quantization: the platform's float method, not core's torch default
    assert {cls for _, cls in _linear_methods(plain)} == {type(offered["unquantized"]).__name__} != {"TorchLinearMethod"}
    prompt = {"prompt_token_ids": [5, 17, 42, 9, 101, 33]}
    params = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True, logprobs=1)
    ours = quantized.generate([prompt], params)[0].outputs[0]
    ref = plain.generate([prompt], params)[0].outputs[0]
    # per-channel int8 moves a logprob a little (exactness vs the dequantized weights is checked in
    # tests/core/model/test_linear_methods.py): the first token agrees and its logprob is near
    assert ours.token_ids[0] == ref.token_ids[0]
    first = ours.token_ids[0]
    assert abs(ours.logprobs[0][first].logprob - ref.logprobs[0][first].logprob) < 0.3


def test_an_unknown_quantization_is_refused_with_the_platform_and_the_offered_names(tmp_path):
    path = save_tiny_model("llama", tmp_path)
    with pytest.raises(ValueError, match=r"quantization 'fp3' is not offered by the 'cpu' platform \(offered: "
                                         r".*unquantized.*\); leave quantization unset"):
        _llm(path, quantization="fp3")


def test_unquantized_is_the_default_even_where_a_platform_offers_no_methods(tmp_path, monkeypatch):
    from plinth_cpu.platform import CpuPlatform

    monkeypatch.setattr(CpuPlatform, "quantization_methods", lambda self: {})
    path = save_tiny_model("llama", tmp_path)
    llm = _llm(path, quantization="unquantized")
    assert {cls for _, cls in _linear_methods(llm)} == {"TorchLinearMethod"}
    with pytest.raises(ValueError, match=r"not offered by the 'cpu' platform \(offered: none\)"):
        _llm(path, quantization="int8_weight_only")


def test_a_plugin_registered_format_is_selectable(tmp_path, monkeypatch):
    import torch.nn.functional as F

    from plinth.engine import llm_engine
    from plinth.platform import plugins
    from plinth.platform.hookspecs import hookimpl
    from plinth.platform.linear_method import LinearMethod
    from plinth.runner import model_runner

    class Doubled(LinearMethod):
        name = "doubled"

        def prepare(self, weight):
            return 2 * weight

        def apply(self, x, prepared, bias=None):
            return F.linear(x, prepared, bias)

    class Plugin:
        @hookimpl
        def plinth_register_quantization_methods(self, registry):
            registry.register("doubled", Doubled())

    pm = plugins.new_plugin_manager(autoload=False)
    pm.register(Plugin())
    monkeypatch.setattr(model_runner, "plugin_manager", lambda: pm)
    monkeypatch.setattr(llm_engine, "plugin_manager", lambda: pm)
    path = save_tiny_model("llama", tmp_path)
    llm = _llm(path, quantization="doubled")
    assert {name for name, _ in _linear_methods(llm)} == {"doubled"}


@pytest.mark.parametrize("quantizes_lm_head", [True, False])
def test_a_method_may_leave_the_lm_head_on_the_unquantized_method(tmp_path, monkeypatch, quantizes_lm_head):
    """``LinearMethod.quantizes_lm_head = False`` (fp8 on cuda, as vLLM) keeps the LM head on the platform's
    unquantized method while every other linear takes the chosen one."""
    import torch.nn.functional as F

    from plinth.platform.linear_method import LinearMethod
    from plinth_cpu.platform import CpuPlatform

    class Marked(LinearMethod):
        name = "marked"

        def prepare(self, weight):
            return weight

        def apply(self, x, prepared, bias=None):
            return F.linear(x, prepared, bias)

    Marked.quantizes_lm_head = quantizes_lm_head
    offered = CpuPlatform.quantization_methods
    monkeypatch.setattr(CpuPlatform, "quantization_methods", lambda self: {**offered(self), "marked": Marked()})
    path = save_tiny_model("llama", tmp_path)
    llm = _llm(path, quantization="marked")
    assert {name for name, _ in _linear_methods(llm)} == {"marked"}
    head = llm.llm_engine.runner.model.lm_head.linear_method
    unquantized = type(CpuPlatform().quantization_methods()["unquantized"])
    assert isinstance(head, Marked) if quantizes_lm_head else type(head) is unquantized
