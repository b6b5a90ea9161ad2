"""Everything `plinth serve` was told, as one typed object; it maps onto EngineArgs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from plinth.engine.engine_args import EngineArgs
from plinth_serve.server.limits import Limits


@dataclass(frozen=True)
class ServerArgs:
    model: str | None = None  # HF folder, cached hub id or .gguf; None = the default model (SmolLM2-135M)
    device: str | None = None  # platform name; None = $PLINTH_DEVICE or the best available
    tokenizer: str | None = None  # tokenizer source when it differs from the model
    skip_tokenizer_init: bool = False  # no tokenizer: token-id prompts only, outputs as token ids (return_token_ids)
    host: str = "127.0.0.1"  # loopback by default: exposing the server is an explicit choice
    port: int = 8000
    api_keys: tuple[str, ...] = ()  # accepted keys; empty = no authentication
    served_model_names: tuple[str, ...] = ()  # names `model` may take; default: the model's name
    dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    max_num_seqs: int | None = None  # None = the platform's default (vLLM's per-device one), else 256
    max_num_batched_tokens: int = 8192
    enable_prefix_caching: bool = True
    admission: str = "forecast"  # "forecast" (KV-forecast admission) or "greedy" (vLLM's)
    load_format: str = "auto"
    seed: int = 0
    quantization: str | None = None  # a linear method the platform offers, e.g. "int8_weight_only"
    kv_cache_dtype: str = "auto"  # "auto" (the model dtype), a float dtype, or "fp8" where the platform offers it
    block_size: int | None = None  # tokens per KV-cache block; None = the platform's
    enforce_eager: bool = False  # never capture device graphs
    cuda_graph_sizes: tuple[int, ...] = ()  # decode batch sizes to capture; empty = the platform's ladder
    chat_template: str | None = None  # a Jinja template, or a file holding one
    allowed_origins: tuple[str, ...] = ()  # CORS; empty = CORS off
    limits: Limits = field(default_factory=Limits)
    shutdown_timeout: float = 30.0  # seconds to drain on SIGTERM before aborting what is left
    exit_on_engine_death: bool = True
    log_level: str = "info"

    def engine_args(self) -> EngineArgs:
        return EngineArgs(model=self.model, device=self.device, tokenizer=self.tokenizer,
                          skip_tokenizer_init=self.skip_tokenizer_init, dtype=self.dtype, seed=self.seed,
                          load_format=self.load_format, max_model_len=self.max_model_len,
                          max_num_seqs=self.max_num_seqs, max_num_batched_tokens=self.max_num_batched_tokens,
                          enable_prefix_caching=self.enable_prefix_caching, admission=self.admission,
                          gpu_memory_utilization=self.gpu_memory_utilization, quantization=self.quantization,
                          kv_cache_dtype=self.kv_cache_dtype, enforce_eager=self.enforce_eager,
                          cuda_graph_sizes=list(self.cuda_graph_sizes) or None,
                          **({"block_size": self.block_size} if self.block_size else {}))

    def default_served_name(self) -> str:
        if self.served_model_names:
            return self.served_model_names[0]
        if self.model is None:
            return "SmolLM2-135M-Instruct"
        base = os.path.basename(self.model.rstrip("/")) if os.path.exists(self.model) else self.model
        return base[:-5] if base.endswith(".gguf") else base

    def read_chat_template(self) -> str | None:
        """--chat-template as given: a path to a file, or the template text itself."""
        value = self.chat_template
        if value is None:
            return None
        if os.path.isfile(value):
            with open(value, encoding="utf-8") as f:
                return f.read()
        if "{" not in value:
            raise ValueError(f"--chat-template {value!r} is neither a file nor a Jinja template")
        return value
