"""The conformance kit fails on wrong attention backends and passes on the reference one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ATTENTION_TESTS = "plinth.testing.conformance.test_attention"


@pytest.fixture
def run_kit(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Run kit modules in a fresh pytest process against ``broken_platform:<descriptor>``."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("PLINTH_CONFORMANCE_PLATFORMS", raising=False)
    pytester.makeini("[pytest]\n")  # keep the repository's pytest settings out

    def run(descriptor: str, *args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess(
            "--pyargs", ATTENTION_TESTS, f"--plinth-platform=broken_platform:{descriptor}",
            "-p", "no:cacheprovider", "-q", "--tb=short", *args)

    return run


@pytest.mark.parametrize("descriptor", ["DESCRIPTOR", "WRONG_GQA"])
def test_kit_fails_on_a_wrong_attention_backend(run_kit, descriptor):
    result = run_kit(descriptor, "--maxfail=3")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 3, outcomes
    result.stdout.fnmatch_lines(["*differs from the reference*"])


def test_kit_passes_on_the_reference_backend(run_kit):
    result = run_kit("REFERENCE", "plinth.testing.conformance.test_kv_write")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert result.parseoutcomes().get("passed", 0) >= 20, result.stdout.str()


def test_kit_skips_without_a_platform(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PLINTH_CONFORMANCE_PLATFORMS", raising=False)
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest_subprocess("--pyargs", "plinth.testing.conformance.test_device",
                                           "-p", "no:cacheprovider", "-rs")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["*no platform under test*--plinth-platform=NAME*"])


def test_unknown_platform_fails_with_the_list(run_kit, pytester: pytest.Pytester):
    result = pytester.runpytest_subprocess("--pyargs", "plinth.testing.conformance.test_device",
                                           "--plinth-platform=no-such-device", "-p", "no:cacheprovider")
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*cannot load platform 'no-such-device'*unknown device*"])
