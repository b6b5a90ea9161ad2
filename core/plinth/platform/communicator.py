"""Collective communication between ranks (required for tensor/pipeline parallel > 1)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class Communicator(ABC):
    """Collectives over one process group. Tensors live on the platform's device."""

    rank: int
    world_size: int

    @abstractmethod
    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks; returns the reduced tensor (may be ``tensor`` itself)."""

    @abstractmethod
    def all_gather(self, tensor: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Concatenate every rank's ``tensor`` along ``dim``."""

    @abstractmethod
    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Every rank receives ``src``'s tensor."""

    @abstractmethod
    def send(self, tensor: torch.Tensor, dst: int) -> None: ...

    @abstractmethod
    def recv(self, tensor: torch.Tensor, src: int) -> torch.Tensor: ...


class SingleProcessCommunicator(Communicator):
    """World size 1: every collective is the identity."""

    rank = 0
    world_size = 1

    def all_reduce(self, tensor):
        return tensor

    def all_gather(self, tensor, dim=-1):
        return tensor

    def broadcast(self, tensor, src=0):
        return tensor

    def send(self, tensor, dst):
        raise RuntimeError("send needs world_size > 1; this communicator has a single rank")

    def recv(self, tensor, src):
        raise RuntimeError("recv needs world_size > 1; this communicator has a single rank")


class TorchDistributedCommunicator(Communicator):
    """Collectives through ``torch.distributed`` with the platform's declared backend."""

    def __init__(self, group=None) -> None:
        import torch.distributed as dist

        if not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised; start workers through plinth's launcher")
        self._dist, self._group = dist, group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)

    def all_reduce(self, tensor):
        self._dist.all_reduce(tensor, group=self._group)
        return tensor

    def all_gather(self, tensor, dim=-1):
        import torch

        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        self._dist.all_gather(parts, tensor.contiguous(), group=self._group)
        return torch.cat(parts, dim=dim)

    def broadcast(self, tensor, src=0):
        self._dist.broadcast(tensor, src=src, group=self._group)
        return tensor

    def send(self, tensor, dst):
        self._dist.send(tensor, dst=dst, group=self._group)

    def recv(self, tensor, src):
        self._dist.recv(tensor, src=src, group=self._group)
        return tensor
