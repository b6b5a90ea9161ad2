"""The engine with tokenization and detokenization: prompts in, RequestOutputs out."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence

import torch

from plinth.engine.engine import Engine
from plinth.engine.engine_args import EngineArgs
from plinth.engine.request_group import RequestGroup
from plinth.model.loader.fp8_config import fp8_checkpoint, quantizes_activations
from plinth.model.model_config import ModelConfig
from plinth.model.tokenizer import load_tokenizer
from plinth.outputs import RequestOutput
from plinth.platform import Feature, select_platform
from plinth.platform.configure import apply_config_patch
from plinth.platform.linear_method import UNQUANTIZED, linear_methods
from plinth.platform.plugins import plugin_manager
from plinth.runner.model_runner import ModelRunner
from plinth.sampling_params import SamplingParams
from plinth.sched.request import sibling_request_ids

logger = logging.getLogger(__name__)


class LLMEngine:
    """Owns the platform, the model runner, the scheduler-driven Engine and the tokenizer."""

    def __init__(self, args: EngineArgs) -> None:
        from plinth.model.default_model import default_model_path

        self.platform = select_platform(args.device)
        model = args.model or default_model_path()
        self.model_config = ModelConfig.from_source(
            model, dtype=self._dtype(args), load_format=args.load_format,
            max_model_len=args.max_model_len, tokenizer=args.tokenizer)
        # before the weights: a missing tokenizer should not cost a model load to find out
        self.tokenizer = None if args.skip_tokenizer_init else load_tokenizer(self.model_config)
        caps = self.platform.capabilities
        config = args.engine_config(self.model_config.max_model_len, caps.default_max_num_seqs,
                                    caps.default_max_num_batched_tokens)
        config = dataclasses.replace(config, quantization=self._quantization(args.quantization))
        self._check_kv_cache_dtype(config.cache.kv_cache_dtype)
        config = apply_config_patch(config, self.platform.configure(config), self.platform.name)
        self.platform.device.seed(config.seed)
        self.config = config
        self.runner = ModelRunner(config, self.platform, self.model_config)
        self._seeds_supported = has_generators(self.runner.device)
        self.engine = Engine(config, self.runner,
                             async_scheduling=self.platform.capabilities.supports(Feature.ASYNC_SCHEDULING))
        eos = list(self.model_config.eos_token_ids)
        self.eos_token_id, self._extra_eos = (eos[0], eos[1:]) if eos else (None, [])
        self._groups: dict[str, RequestGroup] = {}
        self._seq_owner: dict[str, tuple[RequestGroup, int]] = {}

    def _quantization(self, name: str | None) -> str | None:
        """``name`` if the platform offers it; "unquantized" means the default (float weights). Unset, an fp8
        checkpoint that quantizes activations too (W8A8) takes ``"fp8"`` where the platform offers it, as vLLM
        runs such checkpoints (the layers it keeps in float stay unquantized: ``BuildContext.float_layers``); a
        weight-only one (W8A16) runs dequantized, as ``fp8`` would quantize its activations."""
        offered = linear_methods(self.platform.quantization_methods(), plugin_manager())
        hf_config = self.model_config.hf_config
        if name is None and fp8_checkpoint(hf_config):
            if not quantizes_activations(hf_config):
                logger.info("fp8 checkpoint: weight-only (its groups have no input_activations): dequantized to %s, "
                            "activations stay in float (quantization='fp8' would quantize them per token too)",
                            self.model_config.dtype)
            elif "fp8" in offered:
                name = "fp8"
                logger.info("fp8 checkpoint: fp8 linears")
            else:
                logger.info("fp8 checkpoint: dequantized to %s (the '%s' platform offers no fp8)",
                            self.model_config.dtype, self.platform.name)
        if name is None or name == UNQUANTIZED:
            return None
        if name not in offered:
            raise ValueError(f"quantization {name!r} is not offered by the '{self.platform.name}' platform "
                             f"(offered: {', '.join(sorted(offered)) or 'none'}); leave quantization unset for "
                             "float weights or pick one of those")
        return name

    def _check_kv_cache_dtype(self, name: str) -> None:
        offered = self.platform.capabilities.kv_cache_dtypes
        if name != "auto" and name not in offered:
            raise ValueError(f"kv_cache_dtype {name!r} is not offered by the '{self.platform.name}' platform "
                             f"(offered: auto, {', '.join(offered)}); use 'auto' for the model dtype")

    def _dtype(self, args: EngineArgs) -> str:
        """"auto" keeps the checkpoint's dtype where the platform computes in it, else the platform's."""
        if args.dtype != "auto":
            if args.dtype not in self.platform.capabilities.dtypes:
                raise ValueError(f"dtype {args.dtype!r} is not supported on '{self.platform.name}'; "
                                 f"choose one of {self.platform.capabilities.dtypes}")
            return args.dtype
        return "auto"

    # -- requests --------------------------------------------------------------
    def tokenize(self, prompt: str) -> list[int]:
        if self.tokenizer is None:
            raise ValueError("this engine has no tokenizer (skip_tokenizer_init): pass prompt token ids")
        return self.tokenizer(prompt).input_ids

    def add_request(self, request_id: str, prompt: str | Sequence[int], params: SamplingParams, *,
                    priority: int = 0, cache_salt: str | None = None) -> None:
        if params.seed is not None and not self._seeds_supported:
            raise ValueError(f"per-request seeds are not supported on '{self.platform.name}': torch has no "
                             f"random generator for device type '{self.runner.device.type}'; leave seed unset")
        if params.stop and self.tokenizer is None:
            raise ValueError("stop strings need a tokenizer; this engine has none (skip_tokenizer_init): "
                             "use stop_token_ids instead")
        text = prompt if isinstance(prompt, str) else None
        token_ids = self.tokenize(prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
        if self._extra_eos and not params.ignore_eos:
            params = dataclasses.replace(params, stop_token_ids=[*params.stop_token_ids, *self._extra_eos])
        if params.prompt_logprobs is not None:
            # Every prompt position must be computed to be scored: keep it out of the prefix cache.
            cache_salt = f"{cache_salt}|prompt-logprobs|{request_id}"
        ids = self.engine.add_request(request_id, token_ids, params, eos_token_id=self.eos_token_id,
                                      priority=priority, cache_salt=cache_salt)
        group = RequestGroup(request_id, text, token_ids, params, self.tokenizer)
        self._groups[request_id] = group
        for index, seq_id in enumerate(ids):
            self._seq_owner[seq_id] = (group, index)

    def abort_request(self, request_ids: Iterable[str]) -> None:
        for request_id in request_ids:
            group = self._groups.pop(request_id, None)
            if group is None:
                continue
            seq_ids = sibling_request_ids(request_id, group.params.n)
            self.engine.abort_request(seq_ids)
            for s in seq_ids:
                self._seq_owner.pop(s, None)

    def has_unfinished_requests(self) -> bool:
        return bool(self._groups)

    def step(self) -> list[RequestOutput]:
        """One engine step; the RequestOutputs of every request that progressed."""
        touched: dict[str, RequestGroup] = {}
        for out in self.engine.step():
            owner = self._seq_owner.get(out.request_id)
            if owner is None:
                continue
            group, index = owner
            if group.apply(index, out) is not None:
                self.engine.finish_requests([out.request_id], "stop")
            if group.completions[index].finish_reason is not None:
                self._seq_owner.pop(out.request_id, None)
            touched[group.request_id] = group
        results = []
        for request_id, group in touched.items():
            output = group.output()
            if output is not None:
                results.append(output)
            if group.finished:
                self._groups.pop(request_id, None)
        return results


def has_generators(device: torch.device) -> bool:
    """Whether torch can make a ``torch.Generator`` on ``device`` (per-request seeds need one;
    torch-xla and the meta device have none)."""
    try:
        torch.Generator(device=device)
    except RuntimeError:
        return False
    return True
