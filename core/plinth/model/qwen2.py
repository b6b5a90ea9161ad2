"""Qwen2: the Llama graph with a bias on the q/k/v projections (none on o_proj)."""

from __future__ import annotations

from typing import Any

from plinth.model.llama import LlamaForCausalLM


class Qwen2ForCausalLM(LlamaForCausalLM):
    def attention_biases(self, config: Any) -> tuple[bool, bool]:
        return True, False
