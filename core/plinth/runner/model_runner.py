"""The model runner: SchedulerOutput in, sampled tokens out, on the platform's device."""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

import torch

from plinth.config import kv_storage_dtype
from plinth.model.build_context import BuildContext, dtype_name
from plinth.model.forward_context import ForwardContext, forward_context
from plinth.model.loader import get_model
from plinth.model.loader.fp8_config import float_layers
from plinth.platform import BatchDescriptor, Feature, GraphSupport, KernelRegistry, Op, Platform
from plinth.platform.linear_method import linear_methods
from plinth.platform.plugins import plugin_manager
from plinth.runner.kv_cache_sizing import allocate_kv_caches, num_kv_blocks
from plinth.runner.prompt_logprobs import collect_prompt_logprobs
from plinth.runner.request_state import RequestState, needs_output_history
from plinth.runner.sampler import Sampler
from plinth.runner.sampling_metadata import SamplingMetadata, make_generator
from plinth.runner.step_inputs import InputBuffers
from plinth.runner.warm_up import profile_run
from plinth.sampling_params import SamplingParams
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
        # the layers an fp8 checkpoint keeps in float matter only to a quantized method (with float weights
        # everywhere, a fused layer whose shards disagree still runs)
        self.ctx = BuildContext(kernels, backend, self.dtype, self.device, self.block_size,
                                config.cache.kv_cache_dtype,
                                linear_methods=linear_methods(platform.quantization_methods(), plugin_manager()),
                                quantization=config.quantization,
                                float_layers=float_layers(hf) if config.quantization else None)
        self.model = get_model(model_config, self.ctx)
        # give back what loading left in the allocator's cache (a quantized model frees its float weights):
        # the KV budget below counts the device's free memory
        platform.device.empty_cache()
        self.kv_dtype = kv_storage_dtype(config.cache.kv_cache_dtype, self.dtype)
        specs = self.model.kv_cache_spec()
        self.backend = backend
        self.sampler = Sampler(sample_op=self._resolve_sample_op(kernels))
        self.eos_token_ids = list(model_config.eos_token_ids)
        self.vocab_size = hf.vocab_size
        self.profile_seconds = 0.0
        if platform.capabilities.supports(Feature.PROFILE_RUN):
            self.profile_seconds = profile_run(self, specs, self.kv_dtype)
        element_size = torch.empty((), dtype=self.kv_dtype).element_size()
        self.num_kv_blocks = num_kv_blocks(config, specs, element_size, platform.device,
                                           model_config.max_model_len)
        self.kv_caches = allocate_kv_caches(backend, specs, self.num_kv_blocks, self.kv_dtype, self.device)
        self.graph_runner = platform.graph_runner(config)
        self.static_shapes = self.graph_runner.static_shapes  # pad every step, upload and sample whole buffers
        # captured decode graphs end with the LM head (static shapes gather sampling rows instead)
        self.logits_in_graph = not self.static_shapes
        self.requests: dict[str, RequestState] = {}
        self.pin_memory = platform.device.pin_memory_supported()
        # host seconds (inputs, launches, sampling set-up, output handling) and seconds waiting
        # for the device, summed over uniform-decode steps: where a decode step's time goes
        self.decode_stats = {"steps": 0, "host_s": 0.0, "wait_s": 0.0}
        self.buffers = self._make_buffers()
        self._staging = [_Staging(self.buffers.max_reqs, self.device, self.pin_memory) for _ in range(2)]
        self._last_sampled: torch.Tensor | None = None  # the last step's sampled ids, on the device
        self._metadata_key: tuple[int, ...] | None = None
        self._metadata: SamplingMetadata | None = None
        self.capture_seconds = self._capture_graphs()
        logger.info("model runner: %d KV blocks of %d tokens on %s with backend %s; profile run %.2f s; "
                    "graphs: %s (%.2f s)", self.num_kv_blocks, self.block_size, self.device, backend.name,
                    self.profile_seconds, len(self.graph_runner.captured()), self.capture_seconds)

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
        with self.platform.inference_mode():
            metadata = self.buffers.dummy_metadata(sizes[0], self.model_config.max_model_len)
            del metadata
            self.graph_runner.capture(self._decode_step, [BatchDescriptor(s, s, True) for s in sizes])
            if self.static_shapes:
                self._warm_up_sampling(BatchDescriptor(sizes[-1], sizes[-1], True))
        self.platform.device.synchronize()
        return time.perf_counter() - start

    def _warm_up_sampling(self, descriptor: BatchDescriptor) -> None:
        """Static shapes: one dummy step sampled greedily as ``_launch`` samples, so that the programs
        after the step (sampling metadata, logits, greedy sampling) compile at start-up too."""
        padded = self.graph_runner.pad(descriptor)
        metadata = SamplingMetadata.build([SamplingParams(temperature=0)], [[]], [[]], vocab_size=self.vocab_size,
                                          device=self.device, pad_to=padded.num_reqs)
        _, sample_hidden = self.graph_runner.run(self._decode_step, padded)
        self.sampler(self.model.compute_logits(sample_hidden), metadata).sampled_token_ids.tolist()

    def _decode_step(self, descriptor: BatchDescriptor):
        """A uniform-decode forward over the persistent buffers, as a graph captures it; with
        static shapes every step (the padded bounds stand for the batch's lengths)."""
        n, tokens = descriptor.num_reqs, descriptor.num_tokens
        md = self.buffers.metadata_view(n, tokens, tokens, 1 if descriptor.uniform_decode else tokens,
                                        self.model_config.max_model_len)
        hidden = self._run_model(md, tokens)
        if self.logits_in_graph and descriptor.uniform_decode:
            # a decode graph computes every row's logits too (each row is a request's sampling row):
            # no eager LM-head launch and row gather after the replay
            return hidden, self.model.compute_logits(hidden)
        return hidden

    def _run_model(self, md, num_tokens: int):
        """Hidden states ``[num_tokens, H]``; with static shapes ``(hidden, sampling rows' hidden)``,
        the rows gathered inside the step so that sampling sees ``[num_reqs, H]`` whatever the bucket."""
        with forward_context(ForwardContext(self.backend.build_metadata(md), self.kv_caches)):
            hidden = self.model(self.buffers.input_ids.device[:num_tokens],
                                self.buffers.positions.device[:num_tokens])
        if self.static_shapes:
            return hidden, hidden.index_select(0, self.buffers.logits_indices.device[: md.num_reqs])
        return hidden

    def _resolve_sample_op(self, kernels: KernelRegistry):
        """The platform's fused ``Op.SAMPLE`` for logits in the model dtype (``compute_logits`` does
        not upcast), or None (the sampler's torch path)."""
        try:
            return kernels.resolve(Op.SAMPLE, dtype=dtype_name(self.dtype), device_type=self.device.type)
        except LookupError:
            return None

    def _select_backend(self):
        selector = self.model_config.attention_selector(self.block_size, self.config.cache.kv_cache_dtype)
        chosen = plugin_manager().hook.plinth_select_attention_backend(
            platform_name=self.platform.name, selector=selector, backends=list(self.platform.attention_backends()))
        return chosen or self.platform.select_attention_backend(selector)

    # -- the step -------------------------------------------------------------
    def execute(self, scheduler_output: SchedulerOutput) -> RunnerOutput:
        return self.execute_async(scheduler_output).result()

    def execute_async(self, scheduler_output: SchedulerOutput) -> StepResult:
        """Launch one step (inputs, forward, sampling, the copy of the sampled ids to the host)
        and return without waiting for the device; ``result()`` waits and returns the samples.

        Sampled tokens join the request states in ``result()``; a step launched before that
        (async scheduling) reads them on the device as placeholders.
        """
        with self.platform.inference_mode():
            return self._launch(scheduler_output)

    def _launch(self, scheduler_output: SchedulerOutput) -> StepResult:
        started = time.perf_counter()
        self._update_states(scheduler_output)
        if not scheduler_output.num_scheduled_tokens:
            return StepResult(self, [], [], [], None, None, None, None, False, started)
        num_scheduled = scheduler_output.num_scheduled_tokens
        req_ids = list(num_scheduled)
        requests = self.requests
        states = [requests[r] for r in req_ids]
        counts = list(num_scheduled.values())
        total = scheduler_output.total_num_scheduled_tokens
        descriptor = self.graph_runner.pad(BatchDescriptor(total, len(req_ids), total == len(req_ids)))
        half = self._staging[self.buffers.half ^ 1]
        if half.event is not None:  # that half's last step must be done before its staging is refilled
            half.event.synchronize()
        self.buffers.flip()
        inputs = self.buffers.build(states, counts, descriptor.num_tokens, descriptor.num_reqs, self.static_shapes)
        if inputs.placeholders is not None:
            dst, src = inputs.placeholders
            inputs.input_ids.index_copy_(0, dst, self._last_sampled.index_select(0, src))
        step = self._decode_step if self.static_shapes else lambda d: self._run_model(inputs.metadata, d.num_tokens)
        step_out = self.graph_runner.run(step, descriptor)
        graph_logits = None
        if self.static_shapes:
            hidden, sample_hidden = step_out
        elif isinstance(step_out, tuple):  # a captured decode graph: hidden states and logits
            (hidden, graph_logits), sample_hidden = step_out, None
        else:
            hidden, sample_hidden = step_out, None
        prompt_logprobs = None
        if any(s.sampling_params.prompt_logprobs is not None for s in states):
            query_starts = self.buffers.query_start_loc.host[: len(states) + 1].tolist()
            prompt_logprobs = collect_prompt_logprobs(states, query_starts, inputs.sample_rows, hidden,
                                                      self.model.compute_logits,
                                                      self.config.scheduler.max_num_seqs)
        sampled = logprobs = host_ids = None
        if inputs.sample_rows:
            if graph_logits is not None and len(inputs.sample_rows) == len(states):
                logits = graph_logits[: len(states)]  # uniform decode: row i is request i
            else:
                logits = self.model.compute_logits(hidden[inputs.logits_indices] if sample_hidden is None
                                                   else sample_hidden)
            rows = [states[i] for i in inputs.sample_rows]
            output = self.sampler(logits, self._sampling_metadata(rows, logits.shape[0]))
            sampled, logprobs = output.sampled_token_ids, output.logprobs
            self._last_sampled = sampled
            for j, state in enumerate(rows):
                state.num_pending += 1
                state.pending_index = j
            if half.host_ids is not None:
                host_ids = half.host_ids[: sampled.shape[0]]  # static shapes: padding rows too
                host_ids.copy_(sampled, non_blocking=True)
        if half.event is not None:
            half.event.record()
        for state, count in zip(states, counts, strict=True):
            state.num_computed_tokens += count
        return StepResult(self, req_ids, states, inputs.sample_rows, sampled, host_ids, half.event, logprobs,
                          descriptor.uniform_decode, started, prompt_logprobs)

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

    def _sampling_metadata(self, rows: list[RequestState], num_rows: int) -> SamplingMetadata:
        """The step's sampling metadata for ``num_rows`` logits rows (more than ``rows`` with static
        shapes); reused while the sampling rows stay the same requests and none of them reads its
        output history (then nothing is copied to the device)."""
        key = (num_rows, *[s.serial for s in rows])
        if key == self._metadata_key:
            return self._metadata
        metadata = SamplingMetadata.build(
            [s.sampling_params for s in rows], [s.prompt_token_ids for s in rows],
            [s.output_token_ids for s in rows], vocab_size=self.vocab_size, device=self.device,
            eos_token_ids=self.eos_token_ids, generators=[s.generator for s in rows],
            bad_words_token_ids=[s.bad_words_token_ids for s in rows], pin_memory=self.pin_memory,
            pad_to=num_rows,
        )
        static = not any(needs_output_history(s.sampling_params) for s in rows)
        self._metadata_key, self._metadata = (key if static else None), metadata
        return metadata

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


class _Staging:
    """Per staging half: pinned host room for the sampled ids, and an event marking the step done."""

    def __init__(self, max_reqs: int, device: torch.device, pin: bool) -> None:
        self.host_ids = torch.zeros(max_reqs, dtype=torch.int64, pin_memory=True) if pin else None
        self.event = torch.Event(device=device) if pin else None


class StepResult:
    """A launched step; ``result()`` waits for its sampled ids and applies them to the request states."""

    def __init__(self, runner: ModelRunner, req_ids, states, sample_rows, sampled, host_ids, event, logprobs,
                 uniform_decode: bool, started: float, prompt_logprobs=None) -> None:
        self.runner, self.req_ids, self.states, self.sample_rows = runner, req_ids, states, sample_rows
        self.sampled, self.host_ids, self.event, self.logprobs = sampled, host_ids, event, logprobs
        self.uniform_decode, self.prompt_logprobs = uniform_decode, prompt_logprobs
        self.host_s = time.perf_counter() - started
        self._output: RunnerOutput | None = None

    def result(self) -> RunnerOutput:
        if self._output is not None:
            return self._output
        sampled: list[list[int]] = [[] for _ in self.req_ids]
        logprobs = None
        waited = 0.0
        if self.sample_rows:
            waiting = time.perf_counter()
            if self.host_ids is not None:
                self.event.synchronize()
                token_ids = self.host_ids.tolist()
            else:
                token_ids = self.sampled.tolist()
            waited = time.perf_counter() - waiting
            states = self.states
            for row, token in zip(self.sample_rows, token_ids, strict=False):  # static shapes: padding rows
                sampled[row] = [token]
                state = states[row]
                state.num_pending -= 1
                state.append_sampled(token)
            logprobs = self.runner._logprobs_by_row(self.logprobs, self.sample_rows, len(self.req_ids))
            if self.uniform_decode:
                stats = self.runner.decode_stats
                stats["steps"] += 1
                stats["wait_s"] += waited
                stats["host_s"] += self.host_s
        self._output = RunnerOutput(req_ids=self.req_ids, sampled_token_ids=sampled, logprobs=logprobs,
                                    prompt_logprobs=self.prompt_logprobs)
        self.states = self.sampled = None
        return self._output
