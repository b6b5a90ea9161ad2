"""The platform object: a composition of small parts (DESIGN.md §3)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from plinth.platform.attention import AttentionBackend, AttentionSelector
from plinth.platform.capabilities import Capabilities
from plinth.platform.communicator import (
    Communicator,
    SingleProcessCommunicator,
    TorchDistributedCommunicator,
)
from plinth.platform.configure import ConfigPatch
from plinth.platform.device import DeviceOps
from plinth.platform.graph import EagerGraphRunner, GraphRunner
from plinth.platform.kernels import KernelRegistry

if TYPE_CHECKING:
    from plinth.config import EngineConfig


class NoAttentionBackendError(RuntimeError):
    """No backend of the platform supports what the model asks for."""


class Platform(ABC):
    """Required parts are abstract; optional parts have working defaults."""

    #: the device name, equal to the descriptor's
    name: str

    # -- required -------------------------------------------------------------
    @property
    @abstractmethod
    def device(self) -> DeviceOps:
        """Device operations (R)."""

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities:
        """Declared dtypes, graph modes, distributed backend and features (R)."""

    @abstractmethod
    def configure(self, config: EngineConfig) -> ConfigPatch:
        """Look at the (frozen) config and propose changes or errors (R)."""

    @abstractmethod
    def attention_backends(self) -> Sequence[AttentionBackend]:
        """Attention backends in order of preference (R)."""

    # -- optional -------------------------------------------------------------
    def kernels(self) -> KernelRegistry:
        """Platform kernels for named ops (O: empty, so core's reference ops run)."""
        return KernelRegistry()

    def quantization_methods(self) -> Mapping[str, Any]:
        """Quantization formats with their linear kernels (O: none)."""
        return {}

    def graph_runner(self, config: EngineConfig) -> GraphRunner:
        """Capture/replay of model steps (O: eager)."""
        return EagerGraphRunner()

    def communicator(self, world_size: int, group: Any = None) -> Communicator:
        """Collectives for tensor/pipeline parallelism (O: single rank; torch.distributed
        with the declared backend when ``world_size > 1``)."""
        if world_size == 1:
            return SingleProcessCommunicator()
        if self.capabilities.distributed_backend is None:
            raise RuntimeError(f"platform '{self.name}' declares no distributed backend; use world size 1")
        return TorchDistributedCommunicator(group)

    def setup_process(self) -> None:  # noqa: B027 - an optional hook: doing nothing is the default
        """Idempotent per-process set-up (env, threads, logging) (O: nothing)."""

    def inference_mode(self) -> Any:
        """(API 1.1) The context manager model steps and graph captures run under
        (O: ``torch.inference_mode()``). A platform whose torch backend cannot use inference
        tensors (torch-xla 2.9: slicing a persistent buffer in inference mode after a device
        sync raises "Cannot set version_counter for inference tensor") returns
        ``torch.no_grad()``."""
        import torch

        return torch.inference_mode()

    # -- provided -------------------------------------------------------------
    def select_attention_backend(self, selector: AttentionSelector) -> AttentionBackend:
        """The first backend that supports ``selector``; an error listing every reason."""
        reasons = []
        for backend in self.attention_backends():
            verdict = backend.supports(selector)
            if verdict.ok:
                return backend
            reasons.append(f"{backend.name}: {verdict.reason}")
        raise NoAttentionBackendError(
            f"no attention backend of platform '{self.name}' supports {selector}: " + "; ".join(reasons)
        )
