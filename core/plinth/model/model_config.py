"""Where a model comes from and what it is: ``ModelConfig.from_source("folder|hub-id|file.gguf")``."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from plinth.config import ConfigError
from plinth.model.llama import head_size, sliding_window
from plinth.platform.attention import AttentionSelector

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}
LOAD_FORMATS = ("auto", "safetensors", "gguf", "dummy")


@dataclass(frozen=True)
class ModelConfig:
    """A resolved model: its HF config, weights location and the settings derived from them."""

    model: str  # what the user asked for (folder, hub id, .gguf path or a name)
    hf_config: Any  # the transformers PretrainedConfig
    dtype: torch.dtype  # parameter dtype; the caller may replace it with a fallback its platform supports
    max_model_len: int  # longest sequence (prompt + output) the engine accepts
    architecture: str  # first entry of hf_config.architectures
    eos_token_ids: tuple[int, ...]  # tokens that end generation (config and generation_config)
    load_format: str  # "safetensors", "gguf" or "dummy"
    model_path: str | None = None  # local HF folder or .gguf file; None for an in-memory config
    tokenizer: str | None = None  # tokenizer source: a folder, a hub id or a .gguf file
    revision: str | None = None  # hub revision, for hub ids

    @classmethod
    def from_source(
        cls, model: str, *, dtype: str | torch.dtype = "auto", load_format: str = "auto",
        max_model_len: int | None = None, tokenizer: str | None = None, revision: str | None = None,
    ) -> ModelConfig:
        """Resolve ``model`` (a local HF folder, a hub id in the local HF cache, a ``.gguf``
        file, or a folder holding exactly one ``.gguf``) and read its config. No network."""
        if load_format not in LOAD_FORMATS:
            raise ConfigError(f"load_format {load_format!r} is not one of {LOAD_FORMATS}")
        path, kind = resolve_model_path(model, revision)
        if load_format not in ("auto", "dummy") and load_format != kind:
            raise ConfigError(f"load_format={load_format!r} but {path} holds {kind} weights")
        if kind == "gguf" and load_format != "dummy":
            from plinth.model.loader.gguf_cache import converted_gguf_folder

            converted = converted_gguf_folder(path)
            if converted is not None:
                path, kind, load_format = converted, "safetensors", "auto"
        if kind == "gguf":
            from plinth.model.loader.gguf_loader import load_gguf_config

            hf_config = load_gguf_config(path)
        else:
            from transformers import AutoConfig

            hf_config = AutoConfig.from_pretrained(path)
        config = cls.from_hf_config(hf_config, dtype=dtype, load_format=kind if load_format == "auto" else load_format,
                                    max_model_len=max_model_len, model=model)
        eos = config.eos_token_ids + tuple(i for i in _generation_eos(path) if i not in config.eos_token_ids)
        return replace(config, model_path=path, tokenizer=tokenizer or path, revision=revision, eos_token_ids=eos)

    @classmethod
    def from_hf_config(
        cls, hf_config: Any, *, dtype: str | torch.dtype = "auto", load_format: str = "dummy",
        max_model_len: int | None = None, model: str = "<in-memory config>",
    ) -> ModelConfig:
        """A config from an in-memory HF config (no files): for dummy weights and tests."""
        architectures = getattr(hf_config, "architectures", None)
        if not architectures:
            raise ConfigError(f"{model}: the HF config names no architectures; set config.architectures")
        return cls(
            model=model, hf_config=hf_config, dtype=resolve_dtype(dtype, hf_config),
            max_model_len=_max_model_len(hf_config, max_model_len), architecture=architectures[0],
            eos_token_ids=_config_eos(hf_config), load_format=load_format,
        )

    def attention_selector(self, block_size: int, kv_cache_dtype: str = "auto", tp_size: int = 1) -> AttentionSelector:
        """What this model asks of an attention backend (heads per rank, dtypes, window)."""
        cfg = self.hf_config
        num_kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        dtype = str(self.dtype).removeprefix("torch.")
        windows = [w for i in range(cfg.num_hidden_layers) if (w := sliding_window(cfg, i))]
        return AttentionSelector(
            head_size=head_size(cfg), num_heads=cfg.num_attention_heads // tp_size,
            num_kv_heads=max(1, num_kv_heads // tp_size), dtype=dtype,
            kv_cache_dtype=dtype if kv_cache_dtype == "auto" else kv_cache_dtype,
            block_size=block_size, sliding_window=max(windows) if windows else None,
        )


def resolve_dtype(dtype: str | torch.dtype, hf_config: Any) -> torch.dtype:
    """A torch dtype from a name; ``"auto"`` = the config's dtype, float32 when it names none."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        # transformers 5 names it ``dtype`` (``torch_dtype`` is its deprecated alias)
        found = getattr(hf_config, "dtype" if hasattr(hf_config, "dtype") else "torch_dtype", None)
        if isinstance(found, torch.dtype):
            return found
        return _DTYPES.get(str(found).removeprefix("torch."), torch.float32) if found else torch.float32
    if dtype not in _DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not one of auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def _max_model_len(hf_config: Any, requested: int | None) -> int:
    derived = getattr(hf_config, "max_position_embeddings", None)
    if requested is None:
        if derived is None:
            raise ConfigError("the model config has no max_position_embeddings; pass max_model_len")
        return int(derived)
    if derived is not None and requested > derived:
        raise ConfigError(f"max_model_len={requested} exceeds the model's max_position_embeddings={derived}")
    if requested < 1:
        raise ConfigError(f"max_model_len must be positive, got {requested}")
    return int(requested)


def _config_eos(hf_config: Any) -> tuple[int, ...]:
    eos = getattr(hf_config, "eos_token_id", None)
    if eos is None:
        return ()
    return tuple(eos) if isinstance(eos, (list, tuple)) else (int(eos),)


def _generation_eos(path: str) -> tuple[int, ...]:
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "generation_config.json")):
        from transformers import GenerationConfig

        return _config_eos(GenerationConfig.from_pretrained(path))
    return ()


def resolve_model_path(model: str, revision: str | None = None) -> tuple[str, str]:
    """``(local path, "safetensors" | "gguf")`` for a folder, a ``.gguf`` file or a cached hub id."""
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ConfigError(f"{path} is a file but not a .gguf; pass a folder with config.json or a .gguf file")
        return str(path), "gguf"
    if path.is_dir():
        return _classify_folder(path)
    if model.count("/") == 1 and not model.startswith((".", "/", "~")):
        return _classify_folder(Path(_from_hf_cache(model, revision)))
    raise ConfigError(f"model {model!r} is neither a local folder, a .gguf file, nor a hub id (org/name)")


def _classify_folder(folder: Path) -> tuple[str, str]:
    has_safetensors = any(folder.glob("*.safetensors")) or (folder / "model.safetensors.index.json").is_file()
    ggufs = sorted(folder.glob("*.gguf"))
    if has_safetensors or ((folder / "config.json").is_file() and not ggufs):
        return str(folder), "safetensors"
    if len(ggufs) == 1:
        return str(ggufs[0]), "gguf"
    if ggufs:
        raise ConfigError(f"{folder} holds several GGUF files {[g.name for g in ggufs]}; pass the one to use")
    raise ConfigError(f"{folder} holds neither config.json with *.safetensors nor a .gguf file")


def _from_hf_cache(repo_id: str, revision: str | None) -> str:
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE

    try:
        return snapshot_download(repo_id, revision=revision, local_files_only=True)
    except Exception as exc:  # LocalEntryNotFoundError and friends: not in the cache
        cache_dir = os.path.join(HF_HUB_CACHE, "models--" + repo_id.replace("/", "--"))
        raise ConfigError(
            f"model {repo_id!r} is not in the local Hugging Face cache and plinth does not download "
            f"(no network). Put the files at {cache_dir} (e.g. `huggingface-cli download {repo_id}` on a "
            f"machine with network, then copy {HF_HUB_CACHE}), or pass a local folder or .gguf path."
        ) from exc
