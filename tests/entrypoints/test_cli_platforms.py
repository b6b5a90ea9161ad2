"""`plinth --version` and `plinth platforms` through typer's runner."""

from __future__ import annotations

from typer.testing import CliRunner

from plinth import __version__
from plinth_serve.cli import app


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"plinth {__version__}"


def test_platforms_lists_cpu_with_isa():
    result = CliRunner().invoke(app, ["platforms"])
    assert result.exit_code == 0, result.output
    cpu_row = next(line for line in result.output.splitlines() if line.startswith("cpu "))
    assert " yes " in cpu_row and "isa=" in cpu_row and "dist=gloo" in cpu_row
    from plinth.platform import PLATFORM_API

    assert f"platform API {PLATFORM_API[0]}.{PLATFORM_API[1]}" in result.output


def test_wrong_device_is_one_clear_line_listing_platforms():
    import subprocess
    import sys

    code = "import sys; sys.argv = ['plinth', 'generate', 'hi', '--device', 'no-such-device']; " \
           "from plinth_serve.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "unknown device 'no-such-device'" in result.stderr and "cpu: available" in result.stderr
    assert "Traceback" not in result.stderr
