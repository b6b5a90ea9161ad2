"""The model runner: SchedulerOutput in, sampled tokens out, on the platform's device."""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

import torch

from plinth.model.build_context import BuildContext
from plinth.model.forward_context import ForwardContext, forward_context
from plinth.model.loader import get_model
from plinth.platform import BatchDescriptor, GraphSupport, Platform
from plinth.platform.plugins import plugin_manager
from plinth.runner.kv_cache_sizing import allocate_kv_caches, num_kv_blocks
from plinth.runner.prompt_logprobs import collect_prompt_logprobs
from plinth.runner.request_state import RequestState
from plinth.runner.sampler import Sampler
from plinth.runner.sampling_metadata import SamplingMetadata, make_generator
from plinth.runner.step_inputs import InputBuffers, StepInputs
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
        self.pin_memory = platform.device.pin_memory_supported()
        # host seconds (inputs, launches, sampling set-up, output handling) and seconds waiting
        # for the device, summed over uniform-decode steps: where a decode step's time goes
        self.decode_stats = {"steps": 0, "host_s": 0.0, "wait_s": 0.0}
        self.buffers = self._make_buffers()
        self.capture_seconds = self._capture_graphs()
        logger.info("model runner: %d KV blocks of %d tokens on %s with backend %s; graphs: %s (%.2f s)",
                    self.num_kv_blocks, self.block_size, self.device, backend.name,
                    len(self.graph_runner.captured()), self.capture_seconds)

    def _make_buffers(self) -> InputBuffers:
        sched = self.config.scheduler
        sizes = self._capture_sizes()
        largest = max(sizes, default=0)
        max_len = min(self.model_config.max_model_len, self.num_kv_blocks * self.block_size)
        return InputBuffers(max(sched.max_num_batched_tokens, largest), max(sched.max_num_seqs, largest),
                            math.ceil(max_len / self.block_size) + 1, self.block_size, self.device,
                            self.pin_memory)

    def _capture_sizes(self) -> list[int]:
        if self.config.graph.mode == "eager" or self.backend.graph_support == GraphSupport.NEVER:
            return []
        limit = self.config.scheduler.max_num_seqs
        return sorted({s for s in self.config.graph.capture_sizes if 0 < s <= limit}, reverse=True)

    def _capture_graphs(self) -> float:
        """Capture uniform-decode steps at the configured sizes (largest first); returns seconds."""
        sizes = self._capture_sizes()
        if not sizes:
            return 0.0
        start = time.perf_counter()
        with torch.inference_mode():
            metadata = self.buffers.dummy_metadata(sizes[0], self.model_config.max_model_len)
            del metadata
            self.graph_runner.capture(self._decode_step, [BatchDescriptor(s, s, True) for s in sizes])
        self.platform.device.synchronize()
        return time.perf_counter() - start

    def _decode_step(self, descriptor: BatchDescriptor) -> torch.Tensor:
        """A uniform-decode forward over the persistent buffers, as a graph captures it."""
        n = descriptor.num_reqs
        md = self.buffers.metadata_view(n, descriptor.num_tokens, descriptor.num_tokens, 1,
                                    self.model_config.max_model_len)
        return self._run_model(md, descriptor.num_tokens)

    def _run_model(self, md, num_tokens: int) -> torch.Tensor:
        with forward_context(ForwardContext(self.backend.build_metadata(md), self.kv_caches)):
            return self.model(self.buffers.input_ids.device[:num_tokens],
                              self.buffers.positions.device[:num_tokens])

    def _select_backend(self):
        selector = self.model_config.attention_selector(self.block_size, self.config.cache.kv_cache_dtype)
        chosen = plugin_manager().hook.plinth_select_attention_backend(
            platform_name=self.platform.name, selector=selector, backends=list(self.platform.attention_backends()))
        return chosen or self.platform.select_attention_backend(selector)

    # -- the step -------------------------------------------------------------
    @torch.inference_mode()
    def execute(self, scheduler_output: SchedulerOutput) -> RunnerOutput:
        started = time.perf_counter()
        self._update_states(scheduler_output)
        if not scheduler_output.num_scheduled_tokens:
            return RunnerOutput(req_ids=[], sampled_token_ids=[])
        req_ids = list(scheduler_output.num_scheduled_tokens)
        states = [self.requests[r] for r in req_ids]
        counts = [scheduler_output.num_scheduled_tokens[r] for r in req_ids]
        total = scheduler_output.total_num_scheduled_tokens
        descriptor = self.graph_runner.pad(BatchDescriptor(total, len(req_ids), max(counts) == 1))
        inputs = self.buffers.build(states, counts, descriptor.num_tokens, descriptor.num_reqs)
        hidden = self.graph_runner.run(lambda d: self._run_model(inputs.metadata, d.num_tokens), descriptor)
        query_starts = self.buffers.query_start_loc.host[: len(states) + 1].tolist()
        prompt_logprobs = collect_prompt_logprobs(states, query_starts, inputs.sample_rows, hidden,
                                                  self.model.compute_logits)
        sampled: list[list[int]] = [[] for _ in req_ids]
        logprobs = None
        if inputs.sample_rows:
            logits = self.model.compute_logits(hidden[inputs.logits_indices])
            rows = [states[i] for i in inputs.sample_rows]
            output = self.sampler(logits, self._sampling_metadata(rows))
            waiting = time.perf_counter()
            token_ids = output.sampled_token_ids.tolist()
            waited = time.perf_counter() - waiting
            for row, token in zip(inputs.sample_rows, token_ids):
                sampled[row] = [token]
                states[row].append_sampled(token)
            logprobs = self._logprobs_by_row(output.logprobs, inputs.sample_rows, len(req_ids))
        elif self.pin_memory:
            self.platform.device.synchronize()  # staging buffers are refilled next step: let copies finish
        for state, count in zip(states, scheduler_output.num_scheduled_tokens.values()):
            state.num_computed_tokens += count
        if descriptor.uniform_decode and inputs.sample_rows:
            stats = self.decode_stats
            stats["steps"] += 1
            stats["wait_s"] += waited
            stats["host_s"] += time.perf_counter() - started - waited
        return RunnerOutput(req_ids=req_ids, sampled_token_ids=sampled, logprobs=logprobs,
                            prompt_logprobs=prompt_logprobs)

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
