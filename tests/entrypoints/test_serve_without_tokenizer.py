"""Serving a model folder that has no tokenizer: a clear error by default, token ids in and out with
`--skip-tokenizer-init`, and vLLM's `return_token_ids` (which `plinth bench serve` relies on)."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
import torch
import transformers
from server_process import free_port

from tests.e2e.greedy_oracle import assert_same_greedy, hf_greedy

PROMPTS = [[5, 17, 42, 99, 3, 250, 7], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]]


def _post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers=server.headers, timeout=120)


def _hf_greedy(folder, prompt: list[int], n: int):
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return hf_greedy(model, prompt, n)


@pytest.mark.parametrize("command", [["serve", "--port", str(free_port())], ["generate", "hello", "--model"]])
def test_a_folder_without_tokenizer_files_is_a_clear_error(tiny_folder, command):
    proc = subprocess.run([sys.executable, "-m", "plinth_serve", *command, str(tiny_folder), "--device", "cpu",
                           "--max-model-len", "256"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "holds no tokenizer files" in proc.stderr and "--skip-tokenizer-init" in proc.stderr, proc.stderr[-2000:]


def test_token_ids_in_and_out_follow_transformers(bare_server, tiny_folder):
    resp = _post(bare_server, "/v1/completions", {"prompt": PROMPTS, "max_tokens": 12, "temperature": 0,
                                                  "return_token_ids": True})
    assert resp.status_code == 200, resp.text
    choices = sorted(resp.json()["choices"], key=lambda c: c["index"])
    for prompt, choice in zip(PROMPTS, choices, strict=True):
        assert choice["prompt_token_ids"] == prompt
        assert choice["text"] == ""
        ref, ref_logits = _hf_greedy(tiny_folder, prompt, 12)
        assert_same_greedy(choice["token_ids"], ref, ref_logits)
    assert resp.json()["usage"]["completion_tokens"] == 24


def test_streamed_chunks_carry_each_new_token_id(bare_server, tiny_folder):
    body = {"prompt": PROMPTS[0], "max_tokens": 10, "temperature": 0, "stream": True, "return_token_ids": True}
    with httpx.stream("POST", bare_server.url + "/v1/completions", json=body, timeout=120) as resp:
        assert resp.status_code == 200
        chunks = [json.loads(line[6:]) for line in resp.iter_lines()
                  if line.startswith("data: ") and line != "data: [DONE]"]
    choices = [c["choices"][0] for c in chunks if c["choices"]]
    assert choices[0]["prompt_token_ids"] == PROMPTS[0]
    assert all("prompt_token_ids" not in c for c in choices[1:])
    streamed = [t for c in choices for t in c["token_ids"]]
    ref, ref_logits = _hf_greedy(tiny_folder, PROMPTS[0], 10)
    assert_same_greedy(streamed, ref, ref_logits)
    assert choices[-1]["finish_reason"] == "length"


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/completions", {"prompt": "hello", "max_tokens": 2}, "prompt"),
    ("/v1/completions", {"prompt": [1, 2], "max_tokens": 2, "logprobs": 1}, "logprobs"),
    ("/v1/completions", {"prompt": [1, 2], "max_tokens": 2, "echo": True}, "echo"),
    ("/v1/completions", {"prompt": [1, 2], "max_tokens": 2, "stop": "x"}, "stop"),
    ("/v1/completions", {"prompt": [1, 2], "max_tokens": 2, "prompt_logprobs": 1}, "prompt_logprobs"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, "messages"),
    ("/tokenize", {"prompt": "hi"}, None),
    ("/detokenize", {"tokens": [1, 2]}, None),
])
def test_what_needs_a_tokenizer_is_a_400_that_says_so(bare_server, path, body, param):
    resp = _post(bare_server, path, body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert "without a tokenizer" in error["message"] and error["param"] == param


def test_tokenizer_info_is_a_400_without_a_tokenizer(bare_server):
    resp = httpx.get(bare_server.url + "/tokenizer_info", timeout=30)
    assert resp.status_code == 400 and "without a tokenizer" in resp.json()["error"]["message"]


def test_return_token_ids_match_the_text_with_a_tokenizer(server):
    """With the default model: the ids are the prompt's tokenization and decode to the returned text."""
    from plinth.model.default_model import default_model_path
    from plinth.model.model_config import ModelConfig
    from plinth.model.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(ModelConfig.from_source(default_model_path()))
    body = {"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0, "return_token_ids": True}
    choice = _post(server, "/v1/completions", body).json()["choices"][0]
    assert choice["prompt_token_ids"] == tokenizer("The capital of France is").input_ids
    assert tokenizer.decode(choice["token_ids"]) == choice["text"]
    chat = _post(server, "/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6,
                                                   "temperature": 0, "return_token_ids": True}).json()
    assert tokenizer.decode(chat["choices"][0]["token_ids"]) == chat["choices"][0]["message"]["content"]
    assert chat["prompt_token_ids"] == _post(server, "/tokenize", {"messages": [{"role": "user", "content": "Hi"}]}
                                             ).json()["tokens"]
