"""Bucket ladders: the few padded sizes XLA compiles a step for (pure Python, no torch)."""

from __future__ import annotations

MIN_TOKEN_BUCKET = 8


def ladder(maximum: int, minimum: int = MIN_TOKEN_BUCKET) -> tuple[int, ...]:
    """Powers of two from ``minimum`` below ``maximum``, then ``maximum`` itself (ascending)."""
    if maximum < 1:
        raise ValueError(f"a bucket ladder needs a positive maximum, got {maximum}")
    sizes, size = [], minimum
    while size < maximum:
        sizes.append(size)
        size *= 2
    sizes.append(maximum)
    return tuple(sizes)


def bucket(n: int, sizes: tuple[int, ...]) -> int | None:
    """The smallest size in ``sizes`` (ascending) that holds ``n``; None when none does."""
    for size in sizes:
        if size >= n:
            return size
    return None
