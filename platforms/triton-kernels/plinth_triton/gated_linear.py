"""Gate/up projection with SiLU-and-mul in the GEMM's epilogue, for prefill-sized inputs.

A Llama-style MLP computes ``gate_up = x W^T`` (``[M, 2I]``) and then ``silu(gate) * up``
(``[M, I]``): at a 16,384-token prefill step of Llama-3.1-8B the second kernel reads the 940 MB
product back and writes 470 MB, ≈ 0.5 ms a layer. Here one persistent GEMM (TMA loads, 128 x 256
tiles) reads a weight whose gate and up rows are interleaved (row ``2j`` is gate ``j``, row
``2j + 1`` up ``j``), so every accumulator tile holds both halves of its 128 output columns side by
side, and writes ``silu(gate) * up`` directly. The rounding is the unfused path's: each projection
rounded to the activations' dtype, SiLU in fp32 rounded, the product in fp32 rounded
(``plinth.ops.reference.silu_and_mul``). ``benchmarks/bench_gemm_silu.py`` measures it against cuBLAS
plus the separate kernel.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# (BLOCK_M, BLOCK_N weight rows, BLOCK_K, stages, warps, GROUP_M): the best of bench_gemm_silu.py's
# plans at M = 8,192 and 16,384 on the H100 (Llama-3.1-8B's gate_up, 28,672 x 4,096)
GATED_PLAN = (128, 256, 64, 3, 8, 8)


def interleave_gate_up(weight: torch.Tensor) -> torch.Tensor:
    """``[gate; up]`` rows (``[2I, K]``, or a ``[2I]`` bias) -> ``gate_0, up_0, gate_1, up_1, ...`` (a new tensor)."""
    half = weight.shape[0] // 2
    return torch.stack((weight[:half], weight[half:]), dim=1).reshape(weight.shape)


@triton.jit
def _grouped_tile(tile_id, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    """Tile ``tile_id``'s (row block, column block), ``GROUP_M`` row blocks sweeping the columns together
    so the tiles in flight share their weight tiles in L2."""
    group = GROUP_M * num_pid_n
    first_m = (tile_id // group) * GROUP_M
    size_m = min(num_pid_m - first_m, GROUP_M)
    return first_m + (tile_id % group) % size_m, (tile_id % group) // size_m


@triton.jit
def _store_silu_and_mul(y_desc, acc, off_m, off_n, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Split the interleaved accumulator into gate and up; store ``silu(gate) * up`` at the unfused rounding."""
    gate, up = tl.split(acc.reshape(BLOCK_M, BLOCK_N // 2, 2))
    g = gate.to(y_desc.dtype).to(tl.float32)
    silu = (g / (1.0 + tl.exp(-g))).to(y_desc.dtype).to(tl.float32)
    y_desc.store([off_m, off_n // 2], (silu * up.to(y_desc.dtype).to(tl.float32)).to(y_desc.dtype))


@triton.jit(do_not_specialize=["M"])
def _gated_linear_kernel(x_desc, w_desc, y_desc, M, N, K, NUM_PROGRAMS: tl.constexpr, BLOCK_M: tl.constexpr,
                         BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr, STAGES: tl.constexpr):
    """``y [M, N/2] = silu(x W_gate^T) * (x W_up^T)`` for an interleaved ``W [N, K]``: persistent, each
    program walks tiles ``pid, pid + NUM_PROGRAMS, ...`` (the loads of its next tile overlap the epilogue
    of this one)."""
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    for tile_id in tl.range(tl.program_id(0), num_pid_m * num_pid_n, NUM_PROGRAMS, flatten=True, num_stages=STAGES):
        pid_m, pid_n = _grouped_tile(tile_id, num_pid_m, num_pid_n, GROUP_M)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(0, K, BLOCK_K):
            acc = tl.dot(x_desc.load([pid_m * BLOCK_M, k]), w_desc.load([pid_n * BLOCK_N, k]).T, acc)
        _store_silu_and_mul(y_desc, acc, pid_m * BLOCK_M, pid_n * BLOCK_N, BLOCK_M, BLOCK_N)


def fusable_weight(weight) -> bool:
    """Whether :func:`gated_linear` can ever take this (interleaved) weight: a 16-bit 2-D tensor with a
    multiple of 16 rows and of 8 columns (TMA tiles and 16-byte row strides)."""
    return (isinstance(weight, torch.Tensor) and weight.dim() == 2 and weight.dtype in (torch.bfloat16, torch.float16)
            and weight.shape[0] % 16 == 0 and weight.shape[1] % 8 == 0)


def gated_supported(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`gated_linear` takes these operands: a :func:`fusable_weight`, contiguous and 16-byte
    aligned, and ``x`` of its dtype and width (``x`` is copied when misaligned or strided)."""
    return (fusable_weight(weight) and x.dtype == weight.dtype and x.shape[-1] == weight.shape[1]
            and weight.is_contiguous() and weight.data_ptr() % 16 == 0)


def gated_linear(x: torch.Tensor, weight: torch.Tensor, plan: tuple[int, ...] = GATED_PLAN, *,
                 num_programs: int | None = None) -> torch.Tensor:
    """``x [..., K]``, interleaved ``weight [2I, K]`` (:func:`interleave_gate_up`) -> ``silu(gate) * up``
    ``[..., I]`` in ``x``'s dtype (see :func:`gated_supported`). ``num_programs``: the persistent grid
    (default: one program per SM)."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    n, k = weight.shape
    x2 = x.reshape(-1, k)
    if not x2.is_contiguous() or x2.data_ptr() % 16:
        x2 = x2.clone(memory_format=torch.contiguous_format)  # a fresh, aligned allocation (TMA)
    m = x2.shape[0]
    out = torch.empty(*x.shape[:-1], n // 2, dtype=x.dtype, device=x.device)
    if m == 0:
        return out
    block_m, block_n, block_k, stages, warps, group_m = plan
    tiles = triton.cdiv(m, block_m) * triton.cdiv(n, block_n)
    if num_programs is None:
        num_programs = torch.cuda.get_device_properties(x.device).multi_processor_count
    grid = (min(num_programs, tiles),)
    _gated_linear_kernel[grid](
        TensorDescriptor.from_tensor(x2, [block_m, block_k]), TensorDescriptor.from_tensor(weight, [block_n, block_k]),
        TensorDescriptor.from_tensor(out.view(m, n // 2), [block_m, block_n // 2]), m, n, k,
        NUM_PROGRAMS=num_programs, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k,
        GROUP_M=group_m, STAGES=stages, num_warps=warps,
    )
    return out
