"""Every attention backend of the platform against the reference, on random paged batches.

Cases form a Latin square: each block size meets each batch kind once, and GQA ratio and
head size rotate so every (block size, ratio) and (block size, head size) pair appears.
A case a backend does not support (``supports`` / ``supported_block_sizes``) is skipped
with the backend's reason; ``test_a_backend_supports_a_common_model`` keeps that honest.
"""

from __future__ import annotations

import zlib

import pytest
import torch

from plinth.platform import AttentionLayerSpec, AttentionSelector
from plinth.testing.conformance.backends import supporting_backends
from plinth.testing.conformance.paged_batch import make_paged_batch, request_shapes
from plinth.testing.conformance.tolerances import DTYPES, assert_close

NUM_KV_HEADS = 2  # > 1, so a wrong query-head -> KV-head mapping shows
GQA_RATIOS = (1, 4, 8)
HEAD_SIZES = (64, 128, 256)
BLOCK_SIZES = (16, 32, 256)
KINDS = ("prefill", "decode", "mixed")


def _cases():
    for i, kind in enumerate(KINDS):
        for j, block_size in enumerate(BLOCK_SIZES):
            group, head_size = GQA_RATIOS[(i + j) % 3], HEAD_SIZES[(i + 2 * j) % 3]
            yield pytest.param(kind, block_size, group, head_size, id=f"{kind}-bs{block_size}-gqa{group}-d{head_size}")


CASES = list(_cases())


def check_backends(platform, kind, block_size, group, head_size, dtype, *,
                   sliding_window=None, logits_soft_cap=None, num_padding_tokens=0):
    num_heads = NUM_KV_HEADS * group
    selector = AttentionSelector(head_size, num_heads, NUM_KV_HEADS, dtype, dtype, block_size,
                                 sliding_window=sliding_window, logits_soft_cap=logits_soft_cap)
    spec = AttentionLayerSpec(num_heads, NUM_KV_HEADS, head_size, head_size ** -0.5,
                              sliding_window, logits_soft_cap)
    case = f"{kind}-bs{block_size}-gqa{group}-d{head_size}-{dtype}-w{sliding_window}-cap{logits_soft_cap}"
    for backend in supporting_backends(platform, selector):
        gen = torch.Generator().manual_seed(zlib.crc32(case.encode()))
        impl = backend.make_impl(spec)
        batch = make_paged_batch(backend, impl, spec, request_shapes(kind, block_size), block_size,
                                 DTYPES[dtype], platform.device.torch_device(), gen, num_padding_tokens)
        actual = batch.run(backend, impl)
        platform.device.synchronize()
        assert_close(actual, batch.reference(spec), dtype, f"backend {backend.name!r} on {case}")


@pytest.mark.parametrize(("kind", "block_size", "group", "head_size"), CASES)
def test_attention_float32(plinth_platform, kind, block_size, group, head_size):
    check_backends(plinth_platform, kind, block_size, group, head_size, "float32",
                   num_padding_tokens=3 if kind == "mixed" else 0)


@pytest.mark.parametrize(("kind", "block_size", "group", "head_size"), CASES)
def test_attention_bfloat16(plinth_platform, kind, block_size, group, head_size):
    check_backends(plinth_platform, kind, block_size, group, head_size, "bfloat16")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_attention_long_decode(plinth_platform, block_size, dtype):
    check_backends(plinth_platform, "long_decode", block_size, 8, 128, dtype)


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_attention_sliding_window(plinth_platform, block_size):
    check_backends(plinth_platform, "mixed", block_size, 4, 64, "float32", sliding_window=block_size // 2 + 3)


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_attention_logits_soft_cap(plinth_platform, block_size):
    check_backends(plinth_platform, "mixed", block_size, 4, 64, "float32", logits_soft_cap=1.5)


def test_attention_native_block_sizes(plinth_platform):
    """Block sizes a backend supports beyond the kit's 16/32/256 get a mixed batch too."""
    dtype = plinth_platform.capabilities.default_dtype
    extra = {bs for b in plinth_platform.attention_backends() for bs in b.supported_block_sizes} - set(BLOCK_SIZES)
    if not extra:
        pytest.skip("no backend supports block sizes other than " + ", ".join(map(str, BLOCK_SIZES)))
    for block_size in sorted(extra):
        check_backends(plinth_platform, "mixed", block_size, 4, 128, dtype)


def test_a_backend_supports_a_common_model(plinth_platform):
    """A Llama-like layer (GQA 4, head size 128, default dtype) has a backend at some block size."""
    dtype = plinth_platform.capabilities.default_dtype
    sizes = sorted({bs for b in plinth_platform.attention_backends() for bs in b.supported_block_sizes}
                   | set(BLOCK_SIZES))
    for block_size in sizes:
        selector = AttentionSelector(128, 32, 8, dtype, dtype, block_size)
        try:
            plinth_platform.select_attention_backend(selector)
            return
        except Exception as exc:
            last_error = exc
    pytest.fail(f"no attention backend runs a common model at any block size: {last_error}")
