"""Import the platform from the source tree when it is not installed (CI installs only the README's set)."""

import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[3] / "platforms" / "xpu"
if str(SOURCE) not in sys.path:
    sys.path.insert(0, str(SOURCE))
