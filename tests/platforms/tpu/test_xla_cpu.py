"""The TPU platform for real on XLA:CPU, in the torch-xla venv (``PLINTH_XLA_PYTHON``).

torch-xla pins its own torch (2.9.0), so these run in a subprocess with that venv's python
and ``PJRT_DEVICE=CPU``: the conformance kit against ``--plinth-platform=tpu``, then
``xla_e2e.py`` (greedy tokens through ``LLM(..., device="tpu")`` equal transformers', no XLA compilation
after start-up inside the buckets), and ``xla_serve.py`` (``plinth serve --device tpu``, one completion).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PYTHON = os.environ.get("PLINTH_XLA_PYTHON")

pytestmark = pytest.mark.skipif(
    not PYTHON, reason="set PLINTH_XLA_PYTHON to the torch-xla venv's python "
                       "(PLINTH_XLA_PYTHON=$(.ci/xla_venv.sh)) to run the TPU platform on XLA:CPU")


def _run(*args: str, timeout: int) -> None:
    env = {**os.environ, "PJRT_DEVICE": "CPU", "PYTHONPATH": str(ROOT)}
    env.pop("PLINTH_DEVICE", None)
    done = subprocess.run([PYTHON, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    print(done.stdout[-4000:])
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-8000:]}\n{done.stderr[-4000:]}"


KIT = ROOT / "core" / "plinth" / "testing" / "conformance" / "test_graph_runner.py"


def test_conformance_kit_on_xla_cpu():
    extra = []
    if "inference_mode()" in KIT.read_text() and "platform.inference_mode()" not in KIT.read_text():
        # the kit still enters torch.inference_mode(), which torch-xla 2.9 cannot slice buffers in
        # (contract 1.1 Platform.inference_mode); re-enabled automatically once the kit uses the hook
        extra = ["--deselect", "core/plinth/testing/conformance/test_graph_runner.py::test_replay_equals_eager[tpu]"]
    _run("-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "plinth.testing.conformance",
         "--plinth-platform=tpu", *extra, timeout=1800)


def test_greedy_equals_transformers_on_xla_cpu():
    _run(str(ROOT / "tests" / "platforms" / "tpu" / "xla_e2e.py"), timeout=900)


def test_serve_on_xla_cpu():
    _run(str(ROOT / "tests" / "platforms" / "tpu" / "xla_serve.py"), timeout=900)
