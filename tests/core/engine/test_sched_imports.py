"""The scheduler and the engine loop import no torch (and no platform)."""

from __future__ import annotations

import subprocess
import sys


def test_sched_and_engine_import_no_torch():
    code = ("import sys, plinth.sched, plinth.engine, plinth.testing.fake_runner; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy') "
            "or m.startswith(('plinth.platform', 'plinth_'))); "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=None)
    assert done.returncode == 0, done.stdout + done.stderr
