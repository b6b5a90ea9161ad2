"""The conformance kit fails on wrong attention backends and linear methods, and passes on the reference ones.

Each case runs the kit in a fresh pytest process, as a vendor would, against a platform from
``broken_platform.py`` named ``broken_platform:<DESCRIPTOR>``. (A subprocess rather than
pytester: ``pytest_plugins = ["pytester"]`` is refused in a non-root conftest.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
KIT = "plinth.testing.conformance"


def run_kit(tmp_path: Path, *args: str) -> tuple[int, str, dict[str, int]]:
    """Exit code, output and outcome counts of ``pytest --pyargs ...`` run in ``tmp_path``."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # keep the repository's settings out
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    env.pop("PLINTH_CONFORMANCE_PLATFORMS", None)
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--tb=short", "-rs", "--pyargs", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    output = proc.stdout + proc.stderr
    outcomes = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?)", output)}
    return proc.returncode, output, outcomes


@pytest.mark.parametrize("descriptor", ["NO_CAUSAL_MASK", "WRONG_GQA"])
def test_kit_fails_on_a_wrong_attention_backend(tmp_path, descriptor):
    code, output, outcomes = run_kit(tmp_path, f"{KIT}.test_attention",
                                     f"--plinth-platform=broken_platform:{descriptor}", "--maxfail=3")
    assert code == pytest.ExitCode.TESTS_FAILED, output
    assert outcomes.get("failed") == 3, output
    assert "differs from the reference" in output, output


def test_kit_passes_on_the_reference_backend(tmp_path):
    code, output, outcomes = run_kit(tmp_path, f"{KIT}.test_attention", f"{KIT}.test_kv_write",
                                     "--plinth-platform=broken_platform:REFERENCE")
    assert code == pytest.ExitCode.OK, output
    assert outcomes.get("passed", 0) >= 20, output


def test_kit_fails_on_a_wrong_gated_linear_path(tmp_path):
    code, output, outcomes = run_kit(tmp_path, f"{KIT}.test_linear_methods",
                                     "--plinth-platform=broken_platform:SWAPPED_GATED")
    assert code == pytest.ExitCode.TESTS_FAILED, output
    assert outcomes.get("failed") == 4, output  # both tests, float32 and bfloat16
    assert "apply_silu_and_mul" in output and "differs from the reference" in output, output


def test_kit_passes_on_the_torch_linear_method(tmp_path):
    code, output, outcomes = run_kit(tmp_path, f"{KIT}.test_linear_methods",
                                     "--plinth-platform=broken_platform:TORCH_LINEAR")
    assert code == pytest.ExitCode.OK, output
    assert outcomes.get("passed") == 6, output  # three tests, float32 and bfloat16


def test_kit_fails_on_a_residual_add_that_drops_the_bias(tmp_path):
    code, output, outcomes = run_kit(tmp_path, f"{KIT}.test_linear_methods",
                                     "--plinth-platform=broken_platform:BIAS_DROPPING_RESIDUAL")
    assert code == pytest.ExitCode.TESTS_FAILED, output
    assert outcomes.get("failed") == 2, output  # the apply_add test, float32 and bfloat16
    assert "apply_add" in output and "bias True" in output, output


def test_kit_checks_a_backend_that_rotates_while_writing(tmp_path):
    code, output, outcomes = run_kit(tmp_path, f"{KIT}.test_kv_write", "-k", "write_kv_rotary",
                                     "--plinth-platform=broken_platform:ROTARY_WRITE")
    assert code == pytest.ExitCode.OK, output
    assert outcomes.get("passed") == 2 and "skipped" not in outcomes, output  # with and without q/k norms
    code, output, outcomes = run_kit(tmp_path, f"{KIT}.test_kv_write", "-k", "write_kv_rotary",
                                     "--plinth-platform=broken_platform:PADDING_ROTARY_WRITE")
    assert code == pytest.ExitCode.TESTS_FAILED, output
    assert outcomes.get("failed") == 2, output
    assert "differs from write_kv of the key it returned" in output, output


def test_kit_skips_without_a_platform(tmp_path):
    code, output, outcomes = run_kit(tmp_path, f"{KIT}.test_device")
    assert code == pytest.ExitCode.OK, output
    assert outcomes.get("skipped", 0) >= 1 and "passed" not in outcomes, output
    assert "no platform under test" in output and "--plinth-platform=NAME" in output, output


def test_unknown_platform_fails_with_the_list(tmp_path):
    code, output, _ = run_kit(tmp_path, f"{KIT}.test_device", "--plinth-platform=no-such-device")
    assert code != pytest.ExitCode.OK, output
    assert "cannot load platform 'no-such-device'" in output and "unknown device" in output, output
