"""Workload builders T1/T2/T3/L1 exactly as ``shared/BENCHMARKS.md`` defines them.

Model shapes travel with the code (HF ``config.json`` contents), so a benchmark needs no
files: a temporary folder with the config and ``load_format="dummy"`` is the model.
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MODEL_SHAPES: dict[str, dict] = {
    "qwen3-0.6b": {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936,
        "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
        "num_key_value_heads": 8, "head_dim": 128, "hidden_act": "silu", "max_position_embeddings": 40960,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "attention_bias": False, "tie_word_embeddings": True,
        "bos_token_id": 151643, "eos_token_id": 151645, "torch_dtype": "bfloat16",
    },
    "llama-3.1-8b": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
        "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 8, "head_dim": 128, "hidden_act": "silu", "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192},
        "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False, "bos_token_id": 128000,
        "eos_token_id": 128001, "torch_dtype": "bfloat16",
    },
}


@dataclass(frozen=True)
class Request:
    prompt_token_ids: list[int]  # the prompt, as token ids
    max_tokens: int  # output tokens (ignore_eos: exactly this many)


@dataclass(frozen=True)
class Workload:
    name: str  # T1, T2, T3, L1
    model: str  # a key of MODEL_SHAPES
    requests: list[Request]
    temperature: float  # sampling temperature of every request
    top_p: float = 1.0
    engine_options: dict = field(default_factory=dict)  # engine settings the workload implies

    @property
    def input_tokens(self) -> int:
        return sum(len(r.prompt_token_ids) for r in self.requests)

    @property
    def output_tokens(self) -> int:
        return sum(r.max_tokens for r in self.requests)


def vllm_random(num: int, input_len: int, output_len: int, vocab: int, seed: int = 0) -> list[Request]:
    """``vllm bench throughput --dataset-name random`` with range ratio 0 (fixed lengths)."""
    rng = np.random.default_rng(seed)
    input_lens = rng.integers(input_len, input_len + 1, size=num)
    output_lens = rng.integers(output_len, output_len + 1, size=num)
    offsets = rng.integers(0, vocab, size=num)
    return [Request([int(t) for t in (offsets[i] + i + np.arange(input_lens[i])) % vocab], int(output_lens[i]))
            for i in range(num)]


def nano_vllm(num: int = 256, max_input: int = 1024, max_output: int = 1024, seed: int = 0) -> list[Request]:
    """nano-vllm's ``bench.py``: ``random.seed(0)``; all prompts first, then all output lengths."""
    random.seed(seed)
    prompts = [[random.randint(0, 10000) for _ in range(random.randint(100, max_input))] for _ in range(num)]
    outputs = [random.randint(100, max_output) for _ in range(num)]
    return [Request(p, o) for p, o in zip(prompts, outputs, strict=True)]


def build_workload(name: str, num_requests: int | None = None) -> Workload:
    """The workload ``name``; ``num_requests`` scales T1/T2 down (same construction, fewer requests)."""
    name = name.upper()
    vocab = MODEL_SHAPES["llama-3.1-8b"]["vocab_size"]
    if name == "T1":
        reqs = vllm_random(num_requests or 1000, 1024, 128, vocab)
        return Workload("T1", "llama-3.1-8b", reqs, 1.0, engine_options={"max_model_len": 2048})
    if name == "T2":
        reqs = vllm_random(num_requests or 1000, 1024, 1024, vocab)
        return Workload("T2", "llama-3.1-8b", reqs, 1.0, engine_options={"max_model_len": 2048})
    if name == "T3":
        return Workload("T3", "qwen3-0.6b", nano_vllm(num_requests or 256), 0.6,
                        engine_options={"max_model_len": 4096})
    if name == "L1":
        reqs = vllm_random(1, 1024, 256, vocab)
        return Workload("L1", "llama-3.1-8b", reqs, 1.0, engine_options={"max_model_len": 2048})
    raise ValueError(f"unknown workload {name!r}; choose one of {', '.join(WORKLOADS)}")


WORKLOADS = ("T1", "T2", "T3", "L1")


def model_folder(model: str, root: str | None = None) -> str:
    """A folder holding only ``config.json`` for ``model`` (load it with ``load_format="dummy"``)."""
    if model not in MODEL_SHAPES:
        raise ValueError(f"unknown model shape {model!r}; choose one of {', '.join(MODEL_SHAPES)}")
    folder = Path(root or tempfile.mkdtemp(prefix="plinth-bench-")) / model
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(MODEL_SHAPES[model], indent=1))
    return str(folder)
