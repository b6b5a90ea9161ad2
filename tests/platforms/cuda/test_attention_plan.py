"""The decode launch plan by head grouping and batch, and its override: a malformed
PLINTH_TRITON_DECODE_LAUNCH is refused with what to give."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")


def _import_with(value: str) -> subprocess.CompletedProcess:
    paths = [str(ROOT / "core"), str(ROOT / "platforms" / "triton-kernels"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "PLINTH_TRITON_DECODE_LAUNCH": value}
    code = "from plinth_triton.attention_plan import decode_launch; import torch; " \
           "print(decode_launch(4, 128, torch.bfloat16))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_override_replaces_the_plan_and_bad_values_are_refused():
    done = _import_with("64,2,3")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(64, 2, 3)"
    bad = _import_with("64,four")
    assert bad.returncode != 0 and "give 'tile,warps,stages'" in bad.stderr


def test_plan_by_grouping_and_batch(monkeypatch):
    import torch
    from plinth_triton import attention_plan

    monkeypatch.setattr(attention_plan, "_DECODE_OVERRIDE", None)
    plan = attention_plan.decode_launch
    assert plan(4, 128, torch.bfloat16, 200) == (128, 4, 4)  # Llama-8B: 4 query heads per KV head
    assert plan(2, 128, torch.bfloat16, 256) == (64, 4, 2)  # Qwen3-0.6B at wide batches
    assert plan(2, 128, torch.bfloat16, 64) == (128, 4, 3)  # ... and in a run's tail, unsplit
    assert plan(2, 128, torch.float16, 17) == (128, 4, 3)
    assert plan(2, 128, torch.bfloat16, 16, num_splits=2) == (64, 4, 2)  # split: the old plan
    assert plan(2, 128, torch.bfloat16) == (64, 4, 2)  # batch unknown
    assert plan(2, 256, torch.bfloat16, 8) == plan(4, 128, torch.float32, 8) == (32, 4, 2)
    assert attention_plan.plan_blocks(2, 128, 1, torch.bfloat16, 40) == (16, 8, 128)


def test_split_rule_by_batch_and_grouping():
    from plinth_triton.attention_plan import decode_splits

    qwen = [decode_splits(b, 8, 2, 132) for b in (1, 4, 8, 12, 16, 20, 24, 32, 256)]
    llama = [decode_splits(b, 8, 4, 132) for b in (1, 4, 8, 12, 16, 20, 24, 32, 256)]
    assert qwen == [16, 16, 8, 8, 4, 4, 4, 1, 1]  # the best split count measured at batches 8-32
    assert llama == [16, 16, 8, 4, 4, 2, 2, 1, 1]
    assert decode_splits(24, 8, 2, 264) == 8  # a device with more SMs splits further


def test_backend_splits_for_the_layers_it_built():
    import torch
    from plinth_triton.attention_backend import TritonAttentionBackend

    from plinth.platform import AttentionLayerSpec, CommonAttentionMetadata

    n = 24
    lens = torch.full((n,), 1000, dtype=torch.int32)
    qsl = torch.arange(n + 1, dtype=torch.int32)
    md = CommonAttentionMetadata(qsl, qsl, lens, lens, torch.zeros(n, 63, dtype=torch.int32),
                                 torch.arange(n), n, n, 1, 1000)
    backend = TritonAttentionBackend(num_sms=132, decode_order=False)
    backend.make_impl(AttentionLayerSpec(16, 8, 128, 0.1))
    assert backend.build_metadata(md).num_splits == 4
    backend.make_impl(AttentionLayerSpec(32, 8, 128, 0.1))
    assert backend.build_metadata(md).num_splits == 2
