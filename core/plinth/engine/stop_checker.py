"""Stop strings over streamed text: find a match, and how much text to hold back meanwhile."""

from __future__ import annotations

from collections.abc import Sequence


def find_stop_string(text: str, num_new_chars: int, stops: Sequence[str]) -> tuple[str, int] | None:
    """The stop string that occurs earliest in ``text`` and overlaps its last ``num_new_chars``
    characters, with its start index; None when none does.

    Only matches that include new text are considered: older text was checked before.
    Ties on the start index go to the stop string listed first.
    """
    best: tuple[str, int] | None = None
    for stop in stops:
        start = max(len(text) - num_new_chars - len(stop) + 1, 0)
        index = text.find(stop, start)
        if index != -1 and (best is None or index < best[1]):
            best = (stop, index)
    return best


def truncate_at_stop(text: str, stop: str, index: int, include_stop_str: bool) -> str:
    """``text`` cut before the stop string at ``index``, or just after it when it is kept."""
    return text[: index + len(stop)] if include_stop_str else text[:index]


def partial_stop_length(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string.

    While streaming, that many characters are held back: they may turn out to be the
    start of a stop string that must not appear in the output.
    """
    longest = 0
    for stop in stops:
        for length in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:length]):
                longest = length
                break
    return longest
