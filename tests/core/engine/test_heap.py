"""freeze_heap moves what exists at start-up out of the collector's scans (run in a child process:
freezing the test process would keep its garbage forever)."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc
from plinth.engine.heap import freeze_heap

model = [[i] for i in range(10_000)]  # start-up objects the collector would otherwise walk
before = gc.get_freeze_count()
freeze_heap()
after = gc.get_freeze_count()
later = [[]]
print(before, after, gc.get_freeze_count())
"""


def test_start_up_objects_are_frozen_and_later_ones_are_not():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout.split()
    before, after, final = map(int, out)
    assert before == 0 and after >= 10_000  # the start-up lists are in the permanent generation
    assert final == after  # objects made after start-up stay collectable
