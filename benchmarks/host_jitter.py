"""Does this machine stall a busy Python thread? A fixed pure-Python work item in a loop, timed.

T3's device timelines show single device gaps of 5-14 ms, in bursts, with no GC pause under them
(benchmarks/RESULTS.md, CUDA round 17). This probe runs no plinth code: it times a work item of about
``--item-us`` microseconds for ``--seconds`` and reports how often an item took far longer than its
median, and when, with the machine's CPU steal time and load over the same window. Stalls here
are the machine's (scheduling, steal), not the engine's.

    python benchmarks/host_jitter.py --seconds 10 --json $OUT/jitter.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from graph_timing import save_json


def _cpu_times() -> dict[str, int]:
    """Jiffies from /proc/stat's first line (user ... steal), or {} where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return {}
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return dict(zip(names, map(int, fields[:len(names)]), strict=False))


def _work(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--item-us", type=float, default=200.0, help="the work item's target duration")
    ap.add_argument("--json")
    args = ap.parse_args()

    n = 1000  # calibrate the item to --item-us
    start = time.perf_counter()
    _work(n)
    n = max(1, int(n * args.item_us / 1e6 / max(time.perf_counter() - start, 1e-9)))
    durations, at = [], []
    before, load = _cpu_times(), os.getloadavg()
    t0 = time.perf_counter()
    while (now := time.perf_counter()) - t0 < args.seconds:
        _work(n)
        durations.append(time.perf_counter() - now)
        at.append(now - t0)
    after = _cpu_times()
    median = statistics.median(durations)
    slow = [(round(a, 3), round((d - median) * 1e3, 2)) for a, d in zip(at, durations, strict=True) if d - median > 1e-3]
    total = sum(after.values()) - sum(before.values()) if before and after else 0
    result = {
        "seconds": args.seconds, "items": len(durations), "item_median_us": round(median * 1e6, 1),
        "item_p99_us": round(sorted(durations)[int(0.99 * (len(durations) - 1))] * 1e6, 1),
        "item_max_ms": round(max(durations) * 1e3, 2),
        "extra_ms_over_median": {f">{t}ms": sum(1 for _, x in slow if x > t) for t in (1, 2, 5, 10)},
        "stalled_ms_total": round(sum(x for _, x in slow), 1),
        "largest_stalls": sorted(slow, key=lambda s: -s[1])[:20],
        "cpu_share_of_window": {k: round((after[k] - before[k]) / total, 4) for k in after} if total else None,
        "loadavg_before": load, "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
    print(json.dumps(result, indent=1))
    save_json(args.json, result)


if __name__ == "__main__":
    main()
