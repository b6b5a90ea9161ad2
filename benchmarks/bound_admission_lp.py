"""How few decode steps could T2 take without preemption? A linear program over admission times.

A model, not a measurement: requests admitted at step s hold ``prompt + (t - s) + 1`` KV tokens at
steps t in [s, s + output); at every step the running requests' tokens stay within the cache. The
smallest makespan T for which admissions x_s >= 0 (fractional) of all requests exist is found by
bisection. Needs scipy (not a plinth dependency): ``pip install scipy``.

    python benchmarks/bound_admission_lp.py --blocks 26110 --requests 1000
"""

from __future__ import annotations

import argparse

import numpy as np


def feasible(steps: int, capacity: int, prompt: int, output: int, requests: int) -> bool:
    import scipy.sparse as sp
    from scipy.optimize import linprog

    starts = steps - output + 1
    rows, cols, vals = [], [], []
    for t in range(steps):
        for s in range(max(0, t - output + 1), min(t, starts - 1) + 1):
            rows.append(t)
            cols.append(s)
            vals.append(prompt + (t - s) + 1)
    holds = sp.csr_matrix((vals, (rows, cols)), shape=(steps, starts))
    result = linprog(np.zeros(starts), A_ub=holds, b_ub=np.full(steps, capacity), A_eq=np.ones((1, starts)),
                     b_eq=[requests], bounds=(0, None), method="highs")
    return result.status == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=26110)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--prompt", type=int, default=1024)
    ap.add_argument("--output", type=int, default=1024)
    ap.add_argument("--requests", type=int, default=1000)
    args = ap.parse_args()
    capacity = args.blocks * args.block_size
    per_wave = capacity // (args.prompt + args.output)
    waves = -(-args.requests // per_wave)
    lo, hi = args.output, waves * args.output  # synchronous waves always fit
    while hi - lo > 4:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if feasible(mid, capacity, args.prompt, args.output, args.requests) else (mid, hi)
    print(f"synchronous waves of {per_wave}: {waves} x {args.output} = {waves * args.output} decode steps; "
          f"the fewest without preemption: about {hi} (within 4)")


if __name__ == "__main__":
    main()
