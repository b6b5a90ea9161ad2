"""Run the Triton kernels under TRITON_INTERPRET=1 on CPU tensors at tiny shapes (a script)."""

from __future__ import annotations

import os
import sys

os.environ["TRITON_INTERPRET"] = "1"
sys.path.insert(0, os.path.dirname(__file__))

import torch  # noqa: E402
import triton.runtime.interpreter as _interp  # noqa: E402


def _numpy2_index_fix() -> None:
    """numpy >= 2.3 refuses ``int()`` of a 1-element array, which the interpreter uses for a
    scalar tensor's ``__index__`` (``range`` over loaded bounds); take the element instead."""
    original = _interp._patch_lang_tensor

    def patched(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    _interp._patch_lang_tensor = patched


_numpy2_index_fix()

from kernel_cases import (  # noqa: E402
    check_attention,
    check_elementwise,
    check_fp8_linear,
    check_gated_linear,
    check_gemv,
    check_rotary_write_kv,
    check_write_kv,
)


def _cpu_rowwise_scaled_mm() -> bool:
    """Whether ``torch._scaled_mm`` takes rowwise scales on CPU tensors (torch 2.13 does; 2.11 only per-tensor)."""
    a = torch.ones(16, 16).to(torch.float8_e4m3fn)
    try:
        torch._scaled_mm(a, a.T, scale_a=torch.ones(16, 1), scale_b=torch.ones(1, 16), out_dtype=torch.bfloat16)
    except RuntimeError:
        return False
    return True


def main() -> None:
    cpu = torch.device("cpu")
    check_write_kv(torch.float32, cpu)
    check_elementwise(torch.float32, cpu)
    check_rotary_write_kv(torch.float32, cpu)
    check_rotary_write_kv(torch.float16, cpu, kv_dtype=torch.float8_e4m3fn, exact_reference=False)
    check_attention([(0, 5), (3, 1), (17, 1), (4, 6)], group=2, head_size=32, block_size=16,
                    dtype=torch.float32, device=cpu)
    check_attention([(0, 1), (20, 1), (40, 1)], group=4, head_size=32, block_size=16,
                    dtype=torch.float32, device=cpu, num_splits=4, pad_tokens=2)
    check_attention([(5, 7), (0, 20)], group=3, head_size=32, block_size=32, dtype=torch.float32,
                    device=cpu, window=6, cap=1.5)
    # contexts longer than a KV tile: the unmasked full-tile loop, then the masked diagonal tiles
    check_attention([(100, 1), (70, 9), (0, 90), (45, 40)], group=2, head_size=32, block_size=16,
                    dtype=torch.float32, device=cpu)
    check_attention([(150, 1), (33, 1)], group=4, head_size=24, block_size=16, dtype=torch.float32,
                    device=cpu, num_splits=2, pad_tokens=1)
    # half-precision decode with 4 query heads per KV head: the 128-token-tile plan (decode_launch), full
    # tiles and a tail (fp16: the interpreter's numpy has no bfloat16)
    check_attention([(300, 1), (127, 1), (5, 1), (256, 1)], group=4, head_size=32, block_size=16,
                    dtype=torch.float16, device=cpu, ordered=True, pad_reqs=1)
    # half-precision decode with 2 query heads per KV head at a tail's batch: 128-token tiles, 3 stages
    check_attention([(300, 1), (40, 1), (129, 1), (256, 1), (0, 1)], group=2, head_size=32, block_size=16,
                    dtype=torch.float16, device=cpu, ordered=True, pad_reqs=2, pad_tokens=2)
    # queries right at and around a tile boundary (an off-by-one in the unmasked range shows here)
    check_attention([(30, 1), (31, 1), (62, 1), (63, 1), (15, 17), (31, 33)], group=2, head_size=32,
                    block_size=16, dtype=torch.float32, device=cpu)
    # decode longest-first (``order``), with padding requests as a graph replay has them
    check_attention([(5, 1), (140, 1), (0, 1), (64, 1), (77, 1)], group=2, head_size=32, block_size=16,
                    dtype=torch.float32, device=cpu, ordered=True, pad_reqs=3, pad_tokens=3)
    check_attention([(33, 1), (9, 1)], group=3, head_size=24, block_size=16, dtype=torch.float32,
                    device=cpu, ordered=True, num_kv_heads=3, window=10)
    check_attention([(150, 1), (3, 1), (70, 1)], group=2, head_size=32, block_size=16, dtype=torch.float32,
                    device=cpu, ordered=True, num_splits=4, pad_reqs=1, pad_tokens=1)
    # fresh prompts through the dense prefill kernel, next to requests with context, decode rows and padding
    check_attention([(0, 5), (3, 1), (17, 1), (4, 6), (0, 40), (0, 1)], group=2, head_size=32, block_size=16,
                    dtype=torch.float32, device=cpu, fresh=True)
    check_attention([(0, 70), (20, 5), (0, 17), (33, 1)], group=4, head_size=32, block_size=16,
                    dtype=torch.float32, device=cpu, fresh=True, pad_tokens=3, pad_reqs=1)
    # where the dense kernel does not apply (group 3, head size 24): the paged kernel serves everyone
    check_attention([(0, 9), (5, 3)], group=3, head_size=32, block_size=16, dtype=torch.float32, device=cpu,
                    fresh=True)
    check_attention([(0, 9), (5, 3)], group=2, head_size=24, block_size=16, dtype=torch.float32, device=cpu,
                    fresh=True)
    # a mixed step's decode rows take their own launch with the decode plan; the prefill tiles skip them
    check_attention([(40, 1), (0, 9), (130, 1), (5, 12), (3, 1), (70, 17)], group=2, head_size=32,
                    block_size=16, dtype=torch.float32, device=cpu, mixed_decode=True, pad_reqs=1, pad_tokens=2)
    check_attention([(0, 30), (200, 1), (0, 1), (17, 1), (33, 5)], group=4, head_size=32, block_size=16,
                    dtype=torch.float16, device=cpu, mixed_decode=True, fresh=True)
    check_attention([(25, 1), (9, 4)], group=3, head_size=24, block_size=16, dtype=torch.float32, device=cpu,
                    mixed_decode=True, window=10, cap=2.0, num_kv_heads=3)
    # an fp8 cache: saturated writes; decode (ordered, split) and a mixed step read it in the query's dtype
    # (values on the fp8 grid: the interpreter's own fp8 rounding is wrong at binade edges, the GPU's is not)
    e4m3, e5m2 = torch.float8_e4m3fn, torch.float8_e5m2
    check_write_kv(torch.float32, cpu, kv_dtype=e4m3, on_grid=True)
    check_write_kv(torch.float16, cpu, kv_dtype=e5m2, on_grid=True)
    check_attention([(150, 1), (3, 1), (70, 1)], group=2, head_size=32, block_size=16, dtype=torch.float32,
                    device=cpu, ordered=True, num_splits=4, pad_reqs=1, pad_tokens=1, kv_dtype=e4m3, on_grid=True)
    check_attention([(40, 1), (0, 9), (130, 1), (5, 12)], group=4, head_size=32, block_size=16,
                    dtype=torch.float16, device=cpu, mixed_decode=True, kv_dtype=e5m2, on_grid=True)
    check_gemv(torch.float32, cpu)
    # gate/up GEMM with SiLU-and-mul in its epilogue (interleaved weight), the pairwise activation, the method
    check_gated_linear(torch.float16, cpu)
    check_gated_linear(torch.float32, cpu, shapes=((9, 40, 96),))
    # fp8 linears: the row-quantization kernel and the method (torch._scaled_mm runs on CPU tensors too, with
    # rowwise scales from torch 2.13)
    rowwise = _cpu_rowwise_scaled_mm()
    check_fp8_linear(torch.float32, cpu, on_grid=True, scaled_mm=rowwise)
    check_fp8_linear(torch.float16, cpu, on_grid=True, scaled_mm=rowwise, shapes=((4, 32, 64), (2, 48, 2064)))
    from plinth_triton.sampling import sample
    from sampling_cases import check_distribution, check_matches_reference, check_seed_invariance, check_ties_and_edges

    from plinth.ops import reference

    check_matches_reference(sample, cpu)
    check_matches_reference(sample, cpu, rows=2, vocab=40_000)  # several splits per row
    check_ties_and_edges(sample, cpu)
    check_seed_invariance(sample, cpu)
    check_distribution(reference.sample, cpu)
    check_distribution(sample, cpu, draws=2_000, temps=(0.6,))
    print("interpreter checks passed")


if __name__ == "__main__":
    main()
