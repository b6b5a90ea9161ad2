"""The model runner: SchedulerOutput in, sampled tokens out, on the platform's device."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch

from plinth.model.build_context import BuildContext
from plinth.model.forward_context import ForwardContext, forward_context
from plinth.model.loader import get_model
from plinth.platform import BatchDescriptor, Platform
from plinth.platform.plugins import plugin_manager
from plinth.runner.kv_cache_sizing import allocate_kv_caches, num_kv_blocks
from plinth.runner.request_state import RequestState
from plinth.runner.sampler import Sampler
from plinth.runner.sampling_metadata import SamplingMetadata, make_generator
from plinth.runner.step_inputs import StepInputs, build_step_inputs
from plinth.sched.outputs import RunnerOutput, SchedulerOutput

if TYPE_CHECKING:
    from plinth.config import EngineConfig
    from plinth.model.model_config import ModelConfig

logger = logging.getLogger(__name__)


class ModelRunner:
    """Owns the model, its KV caches and the per-request state; implements the Executor protocol."""

    def __init__(self, config: EngineConfig, platform: Platform, model_config: ModelConfig) -> None:
        self.config, self.platform, self.model_config = config, platform, model_config
        self.device = platform.device.torch_device()
        self.dtype = model_config.dtype
        self.block_size = config.cache.block_size
        hf = model_config.hf_config
        backend = self._select_backend()
        kernels = platform.kernels()
        plugin_manager().hook.plinth_register_kernels(platform_name=platform.name, registry=kernels)
        self.ctx = BuildContext(kernels, backend, self.dtype, self.device, self.block_size,
                                config.cache.kv_cache_dtype)
        self.model = get_model(model_config, self.ctx)
        self.kv_dtype = self.dtype if config.cache.kv_cache_dtype == "auto" else getattr(
            torch, config.cache.kv_cache_dtype)
        specs = self.model.kv_cache_spec()
        element_size = torch.empty((), dtype=self.kv_dtype).element_size()
        self.num_kv_blocks = num_kv_blocks(config, specs, element_size, platform.device,
                                           model_config.max_model_len)
        self.kv_caches = allocate_kv_caches(backend, specs, self.num_kv_blocks, self.kv_dtype, self.device)
        self.backend = backend
        self.graph_runner = platform.graph_runner(config)
        self.sampler = Sampler()
        self.eos_token_ids = list(model_config.eos_token_ids)
        self.vocab_size = hf.vocab_size
        self.requests: dict[str, RequestState] = {}
        logger.info("model runner: %d KV blocks of %d tokens on %s with backend %s",
                    self.num_kv_blocks, self.block_size, self.device, backend.name)

    def _select_backend(self):
        selector = self.model_config.attention_selector(self.block_size, self.config.cache.kv_cache_dtype)
        chosen = plugin_manager().hook.plinth_select_attention_backend(
            platform_name=self.platform.name, selector=selector, backends=list(self.platform.attention_backends()))
        return chosen or self.platform.select_attention_backend(selector)

    # -- the step -------------------------------------------------------------
    @torch.inference_mode()
    def execute(self, scheduler_output: SchedulerOutput) -> RunnerOutput:
        self._update_states(scheduler_output)
        if not scheduler_output.num_scheduled_tokens:
            return RunnerOutput(req_ids=[], sampled_token_ids=[])
        req_ids = list(scheduler_output.num_scheduled_tokens)
        states = [self.requests[r] for r in req_ids]
        inputs = build_step_inputs(states, [scheduler_output.num_scheduled_tokens[r] for r in req_ids],
                                   self.block_size, self.device)
        hidden = self._forward(inputs)
        sampled: list[list[int]] = [[] for _ in req_ids]
        logprobs = None
        if inputs.sample_rows:
            logits = self.model.compute_logits(hidden[inputs.logits_indices])
            rows = [states[i] for i in inputs.sample_rows]
            output = self.sampler(logits, self._sampling_metadata(rows))
            token_ids = output.sampled_token_ids.tolist()
            for row, token in zip(inputs.sample_rows, token_ids):
                sampled[row] = [token]
                states[row].append_sampled(token)
            logprobs = self._logprobs_by_row(output.logprobs, inputs.sample_rows, len(req_ids))
        for state, count in zip(states, scheduler_output.num_scheduled_tokens.values()):
            state.num_computed_tokens += count
        return RunnerOutput(req_ids=req_ids, sampled_token_ids=sampled, logprobs=logprobs)

    def _update_states(self, so: SchedulerOutput) -> None:
        for req_id in so.finished_req_ids | so.preempted_req_ids:
            self.requests.pop(req_id, None)
        for new in so.scheduled_new_reqs:
            state = RequestState.from_new(new)
            if new.sampling_params.seed is not None:
                state.generator = make_generator(new.sampling_params.seed, self.device)
            self.requests[new.req_id] = state
        for cached in so.scheduled_cached_reqs:
            state = self.requests[cached.req_id]
            state.block_ids.extend(cached.new_block_ids)
            state.num_computed_tokens = cached.num_computed_tokens

    def _forward(self, inputs: StepInputs) -> torch.Tensor:
        metadata = self.backend.build_metadata(inputs.metadata)
        md = inputs.metadata
        descriptor = BatchDescriptor(md.num_actual_tokens, md.num_reqs, md.is_uniform_decode)
        with forward_context(ForwardContext(metadata, self.kv_caches)):
            return self.graph_runner.run(lambda _: self.model(inputs.input_ids, inputs.positions), descriptor)

    def _sampling_metadata(self, rows: list[RequestState]) -> SamplingMetadata:
        return SamplingMetadata.build(
            [s.sampling_params for s in rows], [s.prompt_token_ids for s in rows],
            [s.output_token_ids for s in rows], vocab_size=self.vocab_size, device=self.device,
            eos_token_ids=self.eos_token_ids, generators=[s.generator for s in rows],
            bad_words_token_ids=[s.bad_words_token_ids for s in rows],
        )

    @staticmethod
    def _logprobs_by_row(tensors, sample_rows: list[int], num_rows: int):
        """Per batch row: ``(token_ids, logprobs, sampled_rank)`` or None (row did not sample/ask)."""
        if tensors is None:
            return None
        token_ids, logprobs, ranks = tensors.to_lists()
        per_row: list = [None] * num_rows
        for i, row in enumerate(sample_rows):
            per_row[row] = (token_ids[i], logprobs[i], ranks[i])
        return per_row
