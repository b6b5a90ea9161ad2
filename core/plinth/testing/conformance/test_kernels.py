"""Every kernel a platform registers equals core's reference op, at several shapes and dtypes.

Inputs are cloned for the kernel and the reference, so in-place kernels are tested too.
Ops without a reference in core (scaled_mm, fused_moe) are checked by their own suites; ops with a
reference that is not a fallback (qk_norm_rotary) are checked here too (``Op.CHECKED_AGAINST_REFERENCE``).
"""

from __future__ import annotations

import pytest
import torch

from plinth.ops import reference
from plinth.platform import Op
from plinth.testing.conformance.tolerances import DTYPES, assert_close

TOKENS = (1, 7, 33)


def _rand(gen, *shape, dtype, device):
    return torch.randn(*shape, generator=gen).to(dtype).to(device)


def _cos_sin_cache(max_position: int, rotary_dim: int) -> torch.Tensor:
    inv_freq = 1.0 / (10000 ** (torch.arange(0, rotary_dim, 2, dtype=torch.float32) / rotary_dim))
    freqs = torch.outer(torch.arange(max_position, dtype=torch.float32), inv_freq)
    return torch.cat([freqs.cos(), freqs.sin()], dim=-1)


def _cases(op: str, dtype: torch.dtype, device: torch.device, gen: torch.Generator):
    """``(traits, args)`` for several shapes of ``op``; args in the reference's order."""
    r = lambda *shape: _rand(gen, *shape, dtype=dtype, device=device)  # noqa: E731
    for n in TOKENS:
        if op in (Op.RMS_NORM, Op.FUSED_ADD_RMS_NORM):
            for hidden in (64, 1024, 4096):
                extra = (r(n, hidden),) if op == Op.FUSED_ADD_RMS_NORM else ()
                yield {"hidden_size": hidden}, (r(n, hidden), *extra, r(hidden) * 0.1 + 1, 1e-6)
        elif op == Op.SILU_AND_MUL:
            for d in (64, 1408):
                yield {"hidden_size": d}, (r(n, 2 * d),)
        elif op == Op.ROTARY_EMBEDDING:
            for head_size, rotary_dim, neox in ((64, 64, True), (128, 128, False), (128, 64, True)):
                cache = _cos_sin_cache(4096, rotary_dim).to(dtype).to(device)
                positions = torch.randint(0, 4096, (n,), generator=gen).to(device)
                yield ({"head_size": head_size, "rotary_dim": rotary_dim, "is_neox_style": neox},
                       (positions, r(n, 4 * head_size), r(n, 2 * head_size), head_size, cache, neox))
        elif op == Op.QK_NORM_ROTARY:  # heads: 4 q + 2 k, and 3 + 3 (a non-power-of-two count)
            for head_size, rotary_dim, neox, nq, nk in ((64, 64, True, 4, 2), (128, 128, False, 3, 3),
                                                        (96, 64, False, 4, 2)):
                cache = _cos_sin_cache(4096, rotary_dim).to(dtype).to(device)
                positions = torch.randint(0, 4096, (n,), generator=gen).to(device)
                yield ({"head_size": head_size, "rotary_dim": rotary_dim, "is_neox_style": neox},
                       (positions, r(n, nq * head_size), r(n, nk * head_size), head_size, cache, neox,
                        r(head_size) * 0.1 + 1, r(head_size) * 0.1 + 1, 1e-6))
        elif op == Op.WRITE_KV:
            for block_size, heads, head_size in ((16, 2, 64), (32, 8, 128)):
                slots = torch.randperm(8 * block_size, generator=gen)[:n].to(device)
                slots[n // 2] = -1
                yield ({"block_size": block_size, "num_kv_heads": heads, "head_size": head_size},
                       (r(n, heads, head_size), r(n, heads, head_size),
                        r(2, 8, block_size, heads, head_size), slots))


def _clone(args):
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


def _result(op, args, returned):
    """What to compare: the returned tensor(s), or the cache for write_kv."""
    if op == Op.WRITE_KV:
        return (args[2],)
    return returned if isinstance(returned, tuple) else (returned,)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("op", Op.CHECKED_AGAINST_REFERENCE)
def test_kernel_matches_reference(plinth_platform, op, dtype):
    if dtype not in plinth_platform.capabilities.dtypes:
        pytest.skip(f"platform does not declare dtype {dtype}")
    impls = plinth_platform.kernels().implementations(op)
    if not impls:
        pytest.skip(f"platform registers no kernel for {op} (core's reference runs)")
    device = plinth_platform.device.torch_device()
    checked = 0
    for impl in impls:
        gen = torch.Generator().manual_seed(3)
        for traits, args in _cases(op, DTYPES[dtype], device, gen):
            traits = {**traits, "dtype": dtype, "device_type": device.type}
            if not impl.supports(traits):
                continue
            kernel_args, reference_args = _clone(args), _clone(args)
            actual = _result(op, kernel_args, impl.fn(*kernel_args))
            expected = _result(op, reference_args, getattr(reference, op)(*reference_args))
            plinth_platform.device.synchronize()
            for a, e in zip(actual, expected, strict=True):
                assert a.shape == e.shape and a.dtype == e.dtype, (
                    f"kernel {impl.name!r}: {op} returned {a.dtype}{list(a.shape)}, "
                    f"reference {e.dtype}{list(e.shape)} (traits {traits})")
                assert_close(a, e, dtype, f"kernel {impl.name!r} for {op} with traits {traits}")
            checked += 1
    if not checked:
        pytest.skip(f"no kernel for {op} supports the kit's shapes in {dtype}")
