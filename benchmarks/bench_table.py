"""Print the GPU suite's table from the JSON files it wrote: plinth, HF, ratio, % of roofline."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1f}%"


def load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def main(out_dir: str) -> None:
    out = Path(out_dir)
    print(f"{'workload':<10}{'plinth out tok/s':>18}{'HF out tok/s':>14}{'ratio':>8}{'% roofline':>12}  notes")
    for name in ("T3", "T3_repeat", "T1", "T2", "L1"):
        ours = load(out / f"plinth_{name.lower()}.json")
        peer = load(out / f"hf_{name.lower()}.json")
        if ours is None:
            continue
        rate = ours.get("decode_tok_s") if name == "L1" else ours["output_tok_s"]
        hf = (peer.get("decode_tok_s") if name == "L1" else peer["output_tok_s"]) if peer else None
        ratio = f"{rate / hf:.1f}x" if hf else "-"
        notes = f"{ours['num_requests']} req, {ours['elapsed_s']} s"
        if peer and not peer.get("finished"):
            counted = "its in-flight tokens counted" if peer.get("in_flight_counted") else "a lower bound"
            notes += (f"; HF stopped at {peer.get('time_limit_s', peer['elapsed_s'])} s with "
                      f"{peer['finished_requests']}/{peer['num_requests']} req done ({counted})")
        if "decode_steps" in ours:
            d = ours["decode_steps"]
            notes += f"; decode step host {d['runner_host_ms']} ms / wait {d['device_wait_ms']} ms"
        print(f"{name:<10}{rate:>18.1f}{(hf or 0):>14.1f}{ratio:>8}{_pct(ours.get('roofline_pct')):>12}  {notes}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
