"""The scoped forward context."""

from __future__ import annotations

import pytest

from plinth.model.forward_context import ForwardContext, forward_context, get_forward_context


def test_outside_a_context_is_a_clear_error():
    with pytest.raises(RuntimeError, match="with forward_context"):
        get_forward_context()


def test_nesting_restores_the_outer_context():
    outer, inner = ForwardContext("outer", []), ForwardContext("inner", [])
    with forward_context(outer):
        with forward_context(inner):
            assert get_forward_context() is inner
        assert get_forward_context() is outer
    with pytest.raises(RuntimeError):
        get_forward_context()
