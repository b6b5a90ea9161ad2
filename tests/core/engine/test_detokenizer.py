"""Incremental detokenization and stop strings, checked against a real tokenizer's full decode."""

from __future__ import annotations

import pytest

from plinth.engine.detokenizer import DetokenizerError, IncrementalDetokenizer
from plinth.engine.stop_checker import find_stop_string, partial_stop_length
from plinth.sampling_params import SamplingParams

CHAT_PROMPT = "<|im_start|>user\nSay something.<|im_end|>\n<|im_start|>assistant\n"
TEXTS = {
    "ascii": "The capital of France is Paris. It is lovely, isn't it?",
    "accents": "Crème brûlée à la française, señor Núñez",
    "cjk_emoji": "日本語のテキスト 😀👍🏽 深圳 and more",
    "special_tokens": "Sure.<|im_end|>\n<|im_start|>user\nagain<|endoftext|> ok",
}


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def _stream(tokenizer, output_ids, params, prompt=CHAT_PROMPT, chunk=1):
    """Feed ``output_ids`` ``chunk`` at a time; return (detokenizer, deltas, stop reason)."""
    detok = IncrementalDetokenizer(tokenizer, _ids(tokenizer, prompt), params)
    deltas, stop = [], None
    for start in range(0, len(output_ids), chunk):
        stop = detok.update(output_ids[start:start + chunk])
        deltas.append(detok.get_next_output_text(finished=stop is not None, delta=True))
        if stop is not None:
            return detok, deltas, stop
    deltas.append(detok.get_next_output_text(finished=True, delta=True))
    return detok, deltas, stop


@pytest.mark.parametrize("skip_special_tokens", [True, False])
@pytest.mark.parametrize("name", list(TEXTS))
def test_token_by_token_text_equals_full_decode(smollm2_tokenizer, name, skip_special_tokens):
    ids = _ids(smollm2_tokenizer, TEXTS[name])
    params = SamplingParams(skip_special_tokens=skip_special_tokens)
    detok, deltas, _ = _stream(smollm2_tokenizer, ids, params)
    expected = smollm2_tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
    assert "".join(deltas) == expected
    assert detok.output_text == expected
    assert not any("\ufffd" in delta for delta in deltas), deltas


def test_multibyte_characters_really_split_across_tokens(smollm2_tokenizer):
    """Precondition of the cjk_emoji case: single tokens decode to partial characters."""
    ids = _ids(smollm2_tokenizer, TEXTS["cjk_emoji"])
    assert any("\ufffd" in smollm2_tokenizer.decode([i]) for i in ids)


@pytest.mark.parametrize("chunk", [2, 3, 7])
def test_several_tokens_per_update(smollm2_tokenizer, chunk):
    ids = _ids(smollm2_tokenizer, TEXTS["cjk_emoji"] + " " + TEXTS["accents"])
    detok, deltas, _ = _stream(smollm2_tokenizer, ids, SamplingParams(), chunk=chunk)
    assert "".join(deltas) == detok.output_text == smollm2_tokenizer.decode(ids, skip_special_tokens=True)


def test_first_token_keeps_its_leading_space(smollm2_tokenizer):
    ids = _ids(smollm2_tokenizer, " Paris is big")
    detok, deltas, _ = _stream(smollm2_tokenizer, ids, SamplingParams(), prompt="The capital is")
    assert detok.output_text == " Paris is big" and deltas[0] == " Paris"


@pytest.mark.parametrize("include", [False, True])
def test_stop_string_across_token_boundaries(smollm2_tokenizer, include):
    text, stop = TEXTS["ascii"], "France is Par"
    ids = _ids(smollm2_tokenizer, text)
    assert not any(stop in smollm2_tokenizer.decode([i]) for i in ids), "the stop must span tokens"
    params = SamplingParams(stop=["never", stop], include_stop_str_in_output=include)
    detok, deltas, reason = _stream(smollm2_tokenizer, ids, params)
    end = text.index(stop) + (len(stop) if include else 0)
    assert reason == detok.stop_reason == stop
    assert detok.output_text == "".join(deltas) == text[:end]
    assert detok.num_output_tokens < len(ids)  # stopped as soon as it matched


def test_partial_stop_string_is_never_streamed(smollm2_tokenizer):
    text = "Paris. Paris? Then Paris! at last"
    ids = _ids(smollm2_tokenizer, text)
    params = SamplingParams(stop=["Paris!"])
    detok = IncrementalDetokenizer(smollm2_tokenizer, [], params)
    streamed = ""
    for token in ids:
        if detok.update([token]) is not None:
            break
        streamed += detok.get_next_output_text(finished=False, delta=True)
        assert "Paris. Paris? Then ".startswith(streamed), f"streamed part of the stop string: {streamed!r}"
    assert detok.stop_reason == "Paris!"
    assert streamed + detok.get_next_output_text(finished=True, delta=True) == "Paris. Paris? Then "


def test_held_back_text_is_released_when_no_stop_follows(smollm2_tokenizer):
    text = "Paris. Paris"
    ids = _ids(smollm2_tokenizer, text)
    detok = IncrementalDetokenizer(smollm2_tokenizer, [], SamplingParams(stop=["Paris!"]))
    assert detok.update(ids) is None
    assert detok.get_next_output_text(finished=False, delta=False) == "Paris. "
    assert detok.get_next_output_text(finished=True, delta=False) == text


def test_earliest_of_several_stop_strings_wins(smollm2_tokenizer):
    ids = _ids(smollm2_tokenizer, "one two three four")
    detok, _, reason = _stream(smollm2_tokenizer, ids, SamplingParams(stop=["four", "two three"]), chunk=len(ids))
    assert reason == "two three" and detok.output_text == "one "


def test_stop_strings_wait_for_min_tokens(smollm2_tokenizer):
    ids = _ids(smollm2_tokenizer, "The capital of France is Paris.")
    detok, _, reason = _stream(smollm2_tokenizer, ids, SamplingParams(stop=[" capital"], min_tokens=3, max_tokens=20))
    assert reason is None and detok.output_text == "The capital of France is Paris."


@pytest.mark.parametrize("include", [False, True])
def test_stop_token_text_is_left_out_unless_included(smollm2_tokenizer, include):
    eos = smollm2_tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids = _ids(smollm2_tokenizer, "Done") + [eos]
    params = SamplingParams(skip_special_tokens=False, include_stop_str_in_output=include)
    detok = IncrementalDetokenizer(smollm2_tokenizer, [], params)
    detok.update(ids, stop_terminated=True)
    assert detok.output_text == ("Done<|im_end|>" if include else "Done")
    assert detok.output_token_ids == ids


def test_cumulative_output_equals_joined_deltas(smollm2_tokenizer):
    ids = _ids(smollm2_tokenizer, TEXTS["accents"])
    detok = IncrementalDetokenizer(smollm2_tokenizer, [], SamplingParams(stop=["xyz"]))
    joined = ""
    for token in ids:
        detok.update([token])
        joined += detok.get_next_output_text(finished=False, delta=True)
        assert detok.get_next_output_text(finished=False, delta=False) == joined


def test_adding_tokens_after_a_stop_is_an_error(smollm2_tokenizer):
    detok = IncrementalDetokenizer(smollm2_tokenizer, [], SamplingParams(stop=["a"]))
    assert detok.update(_ids(smollm2_tokenizer, "a b")) == "a"
    with pytest.raises(DetokenizerError, match="already stopped"):
        detok.update([1])


def test_find_stop_string_only_looks_at_new_text():
    assert find_stop_string("abc stop xyz", 3, ["stop"]) is None
    assert find_stop_string("abc stop", 3, ["stop", "c sto"]) == ("c sto", 2)
    assert find_stop_string("abc stop", 2, ["stop", "c st"]) == ("stop", 4)
    assert partial_stop_length("hello wor", ["world", "lo w"]) == 3
    assert partial_stop_length("hello", ["xyz"]) == 0
