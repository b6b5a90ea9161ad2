"""Request lifecycle and stop rules."""

from __future__ import annotations

from plinth.sampling_params import SamplingParams
from plinth.sched.request import Request, RequestStatus, sibling_request_ids

MAX_LEN = 100


def run(tokens, eos=None, **params):
    """Feed tokens until the request stops; returns (outputs, finish reason, stop reason)."""
    request = Request("r", [1, 2, 3], SamplingParams(**params), eos_token_id=eos)
    for token in tokens:
        if request.append_output_token(token, MAX_LEN):
            break
    return request.output_token_ids, request.finish_reason, request.stop_reason


def test_max_tokens_caps_length():
    assert run([5] * 10, max_tokens=3) == ([5, 5, 5], "length", None)


def test_eos_stops_unless_ignored():
    assert run([5, 0, 5], eos=0, max_tokens=10) == ([5, 0], "stop", None)
    assert run([5, 0, 5], eos=0, max_tokens=3, ignore_eos=True) == ([5, 0, 5], "length", None)


def test_stop_token_ids_stop_and_are_reported():
    assert run([5, 7, 5], max_tokens=10, stop_token_ids=[7, 8]) == ([5, 7], "stop", 7)


def test_min_tokens_defers_eos_and_stop_ids():
    out, reason, _ = run([0, 7, 0, 7, 5], eos=0, max_tokens=10, min_tokens=3, stop_token_ids=[7])
    assert (out, reason) == ([0, 7, 0], "stop")
    assert run([7, 7, 7, 7], max_tokens=10, min_tokens=4, stop_token_ids=[7]) == ([7] * 4, "stop", 7)


def test_max_model_len_caps_length_even_without_max_tokens():
    request = Request("r", list(range(MAX_LEN - 2)), SamplingParams(max_tokens=None))
    assert not request.append_output_token(1, MAX_LEN)
    assert request.append_output_token(1, MAX_LEN)
    assert request.finish_reason == "length" and request.num_tokens == MAX_LEN


def test_status_and_finish_reason():
    request = Request("r", [1], SamplingParams(), arrival_time=3.0, priority=2)
    assert request.status is RequestStatus.WAITING and request.finish_reason is None
    assert not request.is_finished and request.arrival_time == 3.0
    request.status = RequestStatus.FINISHED_ABORTED
    assert request.is_finished and request.finish_reason == "abort"


def test_sibling_ids():
    assert sibling_request_ids("p", 1) == ["p"]
    assert sibling_request_ids("p", 3) == ["0_p", "1_p", "2_p"]
