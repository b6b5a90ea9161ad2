"""SamplingParams validation: out-of-range settings are refused with a message that names the bound."""

from __future__ import annotations

import pytest

from plinth.sampling_params import SamplingParams, SamplingParamsError


@pytest.mark.parametrize(("field", "value", "says"), [
    ("top_k", 185936565949944031302647808, "top_k must be at most 2147483647"),  # found by the API fuzzer
    ("top_k", -2, "top_k must be 0 or -1"),
    ("min_tokens", 2**31, "min_tokens must be in [0, 2147483647]"),
    ("min_tokens", -1, "min_tokens must be in [0, 2147483647]"),
])
def test_out_of_range_integers_are_refused(field, value, says):
    with pytest.raises(SamplingParamsError, match=says.replace("[", r"\[").replace("]", r"\]")):
        SamplingParams(temperature=0.7, **{field: value})


def test_bounds_themselves_are_accepted():
    params = SamplingParams(temperature=0.7, top_k=2**31 - 1, min_tokens=2**31 - 1, max_tokens=None)
    assert params.top_k == 2**31 - 1 and params.min_tokens == 2**31 - 1
    assert SamplingParams(top_k=-1).top_k == 0
