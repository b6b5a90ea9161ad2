"""Device operations and declared capabilities are sane."""

from __future__ import annotations

import pytest
import torch

from plinth.platform import Capabilities, DeviceOps
from plinth.testing.conformance.tolerances import DTYPES


@pytest.fixture
def device_ops(plinth_platform) -> DeviceOps:
    ops = plinth_platform.device
    assert isinstance(ops, DeviceOps), f"platform.device must be a DeviceOps, got {type(ops).__name__}"
    return ops


def test_device_count_and_name(device_ops):
    assert device_ops.device_count() >= 1
    name = device_ops.device_name(0)
    assert isinstance(name, str) and name, "device_name must be a non-empty string"


def test_memory_is_reported(device_ops):
    total, free = device_ops.total_memory(0), device_ops.free_memory(0)
    assert isinstance(total, int) and isinstance(free, int), "memory must be reported in int bytes"
    assert total > 0, f"total_memory must be positive, got {total}"
    assert 0 <= free <= total, f"free_memory ({free}) must lie in [0, total_memory ({total})]"


def test_tensors_live_on_the_torch_device(device_ops):
    device = device_ops.torch_device(0)
    assert device.type == device_ops.device_type
    x = torch.arange(8, device=device, dtype=torch.float32)
    assert x.device.type == device_ops.device_type
    assert (x * 2).sum().item() == 56.0


def test_synchronize_set_device_empty_cache(device_ops):
    device_ops.set_device(0)
    x = torch.randn(64, 64, device=device_ops.torch_device(0))
    y = x @ x
    device_ops.synchronize()
    device_ops.synchronize(0)
    device_ops.empty_cache()
    torch.testing.assert_close(y.cpu(), x.cpu() @ x.cpu(), atol=1e-3, rtol=1e-3)


def test_seed_is_reproducible(device_ops):
    device = device_ops.torch_device(0)
    device_ops.seed(1234)
    first = torch.randn(16, device=device).cpu()
    device_ops.seed(1234)
    again = torch.randn(16, device=device).cpu()
    device_ops.seed(4321)
    other = torch.randn(16, device=device).cpu()
    assert torch.equal(first, again), "seed(s) must make the device's random numbers reproducible"
    assert not torch.equal(first, other), "different seeds gave the same random numbers"


def test_pin_memory_flag(device_ops):
    assert isinstance(device_ops.pin_memory_supported(), bool)


def test_capabilities_are_well_formed(plinth_platform):
    caps = plinth_platform.capabilities
    assert isinstance(caps, Capabilities)
    assert caps.dtypes, "declare at least one compute dtype"
    unknown = [d for d in caps.dtypes if not isinstance(getattr(torch, d, None), torch.dtype)]
    assert not unknown, f"dtypes must be torch dtype names, got {unknown}"
    from plinth.config import KV_CACHE_DTYPES

    unknown_kv = [d for d in caps.kv_cache_dtypes if d not in KV_CACHE_DTYPES or d == "auto"]
    assert not unknown_kv, f"kv_cache_dtypes must be names from plinth.config.KV_CACHE_DTYPES, got {unknown_kv}"
    assert "eager" in caps.graph_modes, "every platform must be able to run eagerly"
    assert set(caps.dtypes) & set(DTYPES), "the kit checks float32 and bfloat16; declare one of them"


def test_single_rank_communicator_is_identity(plinth_platform):
    comm = plinth_platform.communicator(1)
    assert comm.world_size == 1 and comm.rank == 0
    x = torch.randn(4, device=plinth_platform.device.torch_device())
    for name, result in (("all_reduce", comm.all_reduce(x.clone())), ("all_gather", comm.all_gather(x.clone())),
                         ("broadcast", comm.broadcast(x.clone()))):
        assert torch.equal(result, x), f"{name} over one rank must return the input"
