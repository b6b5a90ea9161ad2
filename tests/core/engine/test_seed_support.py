"""Per-request seeds need a torch.Generator on the device; where torch has none (torch-xla) the
request is refused with a message, instead of the engine dying at its first step."""

from __future__ import annotations

import pytest
import torch

from plinth import LLM, SamplingParams
from plinth.engine import llm_engine
from tests.e2e.conftest import save_tiny_model


def test_has_generators():
    assert llm_engine.has_generators(torch.device("cpu"))
    assert not llm_engine.has_generators(torch.device("meta"))  # like xla: "not an accelerator"


def test_seed_refused_without_generators_and_engine_keeps_running(tmp_path, monkeypatch):
    monkeypatch.setattr(llm_engine, "has_generators", lambda device: False)
    llm = LLM(str(save_tiny_model("llama", tmp_path)), device="cpu", dtype="float32", skip_tokenizer_init=True)
    with pytest.raises(ValueError, match="per-request seeds are not supported on 'cpu'.*leave seed unset"):
        llm.generate({"prompt_token_ids": [5, 6, 7]}, SamplingParams(seed=3, max_tokens=2))
    out = llm.generate({"prompt_token_ids": [5, 6, 7]}, SamplingParams(temperature=0, max_tokens=2))
    assert len(out[0].outputs[0].token_ids) == 2
