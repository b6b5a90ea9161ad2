"""Triton kernels against the core reference on the GPU: many shapes, fresh inputs, poisoned outputs."""

from __future__ import annotations

import itertools

import pytest
import torch

from tests.platforms.cuda.kernel_cases import (
    check_attention,
    check_elementwise,
    check_fp8_linear,
    check_gated_linear,
    check_gemv,
    check_rotary_write_kv,
    check_write_kv,
)

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")
DTYPES = (torch.bfloat16, torch.float16, torch.float32)


def _shapes(kind: str, bs: int):
    return {
        "prefill": [(0, bs + 5), (0, 3), (0, 1), (0, 200)],
        "decode": [(0, 1), (1, 1), (bs - 1, 1), (bs, 1), (2 * bs + 3, 1), (700, 1)],
        "mixed": [(0, bs + 5), (bs + 2, 7), (2 * bs - 1, 1), (3, 1), (bs // 2, bs), (300, 64)],
        "long": [(4095, 1), (1000, 1), (bs + 1, 1), (2500, 1)],
    }[kind]


CASES = [
    pytest.param(kind, bs, group, head, dtype, id=f"{kind}-bs{bs}-g{group}-d{head}-{str(dtype)[6:]}")
    for (kind, bs), (group, head), dtype in itertools.product(
        [("prefill", 16), ("decode", 16), ("mixed", 32), ("long", 256), ("mixed", 16), ("decode", 256)],
        [(1, 64), (4, 128), (8, 128), (2, 256), (3, 96)], DTYPES)
]


@pytest.mark.parametrize(("kind", "block_size", "group", "head_size", "dtype"), CASES)
def test_attention(kind, block_size, group, head_size, dtype):
    check_attention(_shapes(kind, block_size), group=group, head_size=head_size, block_size=block_size,
                    dtype=dtype, device=CUDA, seed=hash((kind, block_size, group)) % 1000, pad_tokens=3)


FRESH = [
    pytest.param(kind, bs, group, head, dtype, id=f"{kind}-bs{bs}-g{group}-d{head}-{str(dtype)[6:]}")
    for (kind, bs), (group, head), dtype in itertools.product(
        [("prefill", 16), ("mixed", 16), ("mixed", 32), ("long-prompts", 16)],
        [(1, 64), (2, 128), (4, 128), (8, 128), (2, 256), (3, 96)], DTYPES)
]


@pytest.mark.parametrize(("kind", "block_size", "group", "head_size", "dtype"), FRESH)
def test_fresh_prompts_dense_prefill(kind, block_size, group, head_size, dtype):
    """The backend's prefill path: fresh prompts on the dense kernel (``fresh_kv``), every other request
    on the paged kernel, one step; groups 3 and head size 96 take the paged kernel alone."""
    shapes = [(0, 1024), (0, 560), (5, 300), (0, 1), (2000, 1)] if kind == "long-prompts" else \
        _shapes(kind, block_size)
    check_attention(shapes, group=group, head_size=head_size, block_size=block_size, dtype=dtype, device=CUDA,
                    seed=hash((kind, block_size, group, head_size)) % 1000, pad_tokens=3, fresh=True)


MIXED = [
    pytest.param(bs, group, head, dtype, fresh, id=f"bs{bs}-g{group}-d{head}-{str(dtype)[6:]}-{'fresh' if fresh else 'paged'}")
    for bs, (group, head), dtype, fresh in [
        *itertools.product((16,), [(1, 64), (2, 128), (4, 128), (8, 128), (2, 256), (3, 96)], DTYPES, (False, True)),
        *itertools.product((32,), [(4, 128)], (torch.bfloat16,), (False, True))]
]


@pytest.mark.parametrize(("block_size", "group", "head_size", "dtype", "fresh"), MIXED)
def test_mixed_step_decode_rows(block_size, group, head_size, dtype, fresh):
    """The backend's mixed steps: one-query rows (decode, and a 1-token prompt chunk) take the decode launch
    (``decode_rows_first``), prompts and chunks the prefill tiles, fresh prompts the dense kernel."""
    rng = torch.Generator().manual_seed(block_size * 100 + group * 10 + head_size)
    decodes = [(c, 1) for c in torch.randint(1, 2100, (40,), generator=rng).tolist()]
    shapes = [(0, 700), *decodes[:20], (block_size + 3, 90), (0, 1), *decodes[20:], (1500, 1), (9, 33)]
    check_attention(shapes, group=group, head_size=head_size, block_size=block_size, dtype=dtype, device=CUDA,
                    seed=block_size + group, pad_tokens=3, pad_reqs=2, fresh=fresh, mixed_decode=True)


@pytest.mark.parametrize("splits", [2, 4, 16])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("ordered", [False, True])
def test_split_kv_decode(splits, dtype, ordered):
    check_attention(_shapes("long", 16), group=4, head_size=128, block_size=16, dtype=dtype, device=CUDA,
                    num_splits=splits, pad_tokens=2, ordered=ordered, pad_reqs=2 if ordered else 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("group", "head_size"), [(2, 128), (4, 64), (1, 256)])
@pytest.mark.parametrize("ordered", [False, True])
def test_wide_decode_batch(group, head_size, dtype, ordered):
    """160 decode requests in batch order or longest first (``order``), with padding requests as a
    graph replay has them."""
    rng = torch.Generator().manual_seed(group * 1000 + head_size)
    contexts = torch.randint(0, 900, (160,), generator=rng).tolist()
    check_attention([(c, 1) for c in contexts], group=group, head_size=head_size, block_size=16, dtype=dtype,
                    device=CUDA, pad_tokens=3, ordered=ordered, pad_reqs=16 if ordered else 0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_window_and_soft_cap(dtype):
    check_attention(_shapes("mixed", 16), group=4, head_size=64, block_size=16, dtype=dtype, device=CUDA,
                    window=11, cap=1.5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise(dtype):
    check_elementwise(dtype, CUDA, tokens=(1, 7, 300), hidden=(64, 1024, 4096))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemv(dtype):
    check_gemv(dtype, CUDA, shapes=((1, 64), (37, 96), (300, 1000), (4096, 4096), (6144, 4096), (4096, 14336),
                                    (128256, 512)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gated_linear(dtype):
    """The gate/up GEMM with SiLU-and-mul fused, at its engine plan and at Llama-3.1-8B's and Qwen3-0.6B's shapes."""
    if torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("the fused gate/up GEMM reads through TMA descriptors: sm_90+")
    from plinth_triton.gated_linear import GATED_PLAN

    sms = torch.cuda.get_device_properties(0).multi_processor_count
    check_gated_linear(dtype, CUDA, plans=(GATED_PLAN, (64, 128, 64, 4, 4, 4)), num_programs=sms,
                       shapes=((37, 40, 96), (130, 72, 544), (1, 64, 32), (5, 36, 48), (2053, 4096, 28672),
                               (4096, 1024, 6144), (300, 1000, 2064)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_fp8_linear(dtype):
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("fp8 GEMMs need sm_89+")
    shapes = ((1, 32, 64), (5, 48, 96), (37, 64, 2064), (3, 40, 64), (1, 4096, 4096), (200, 6144, 4096),
              (256, 4096, 14336), (1000, 28672, 4096))
    check_fp8_linear(dtype, CUDA, shapes=shapes)
    check_fp8_linear(dtype, CUDA, shapes=shapes[:3], on_grid=True, seed=1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_write_kv(dtype):
    check_write_kv(dtype, CUDA)


FP8 = (torch.float8_e4m3fn, torch.float8_e5m2)


@pytest.mark.parametrize("kv_dtype", [None, *FP8], ids=["same", "fp8_e4m3", "fp8_e5m2"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rotary_write_kv(dtype, kv_dtype):
    """Rotary (and Qwen3's q/k norm) with the KV write in one launch: bit for bit the two launches it replaces."""
    check_rotary_write_kv(dtype, CUDA, kv_dtype=kv_dtype, tokens=(1, 9, 300))


@pytest.mark.parametrize("kv_dtype", FP8, ids=["fp8_e4m3", "fp8_e5m2"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_write_kv_fp8(dtype, kv_dtype):
    """Saturated fp8 writes, bit for bit the reference's (values up to ±1,000 and two beyond any fp8 range)."""
    check_write_kv(dtype, CUDA, kv_dtype=kv_dtype)


FP8_CASES = [
    pytest.param(kind, bs, group, head, dtype, kv, id=f"fp8-{kind}-bs{bs}-g{group}-d{head}-{str(dtype)[6:]}-{str(kv)[6:]}")
    for (kind, bs), (group, head), dtype, kv in itertools.product(
        [("decode", 16), ("mixed", 16), ("long", 32), ("prefill", 16)], [(1, 64), (4, 128), (2, 128), (8, 128)],
        (torch.bfloat16, torch.float16), FP8)
]


@pytest.mark.parametrize(("kind", "block_size", "group", "head_size", "dtype", "kv_dtype"), FP8_CASES)
def test_attention_fp8_kv(kind, block_size, group, head_size, dtype, kv_dtype):
    """An fp8 cache read in the query's dtype: the reference attends over the values the cache holds."""
    check_attention(_shapes(kind, block_size), group=group, head_size=head_size, block_size=block_size,
                    dtype=dtype, device=CUDA, seed=hash((kind, group)) % 1000, pad_tokens=3, kv_dtype=kv_dtype)


@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize("splits", [1, 4])
def test_fp8_kv_decode_plans(ordered, splits):
    """fp8 through the engine's decode launches: longest first, split KV, 160 requests, padding; and a
    mixed step's decode rows on their own launch."""
    rng = torch.Generator().manual_seed(splits)
    contexts = torch.randint(0, 1500, (160 if splits == 1 else 12,), generator=rng).tolist()
    check_attention([(c, 1) for c in contexts], group=4, head_size=128, block_size=16, dtype=torch.bfloat16,
                    device=CUDA, num_splits=splits, ordered=ordered, pad_reqs=8 if ordered else 0,
                    kv_dtype=torch.float8_e4m3fn)
    check_attention([(40, 1), (0, 90), (1300, 1), (5, 120), (3, 1)], group=2, head_size=128, block_size=16,
                    dtype=torch.bfloat16, device=CUDA, mixed_decode=True, kv_dtype=torch.float8_e4m3fn)
