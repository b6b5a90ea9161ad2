"""The real openai client against a real `plinth serve` (SmolLM2 GGUF on the cpu platform)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

openai = pytest.importorskip("openai", reason="the server tests use the openai client: pip install openai")

MSG = [{"role": "user", "content": "What is the capital of France?"}]


def test_models_lists_the_served_model(client, server):
    models = client.models.list().data
    assert [m.id for m in models] == ["SmolLM2-135M-Instruct"]
    assert models[0].model_extra["max_model_len"] == 512


def test_chat_answers_with_the_chat_template(client):
    out = client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=MSG, max_tokens=12, temperature=0)
    assert "Paris" in out.choices[0].message.content
    assert out.choices[0].finish_reason in ("stop", "length")
    assert out.usage.prompt_tokens > 20 and out.usage.completion_tokens <= 12  # the template wraps the message


def test_completion_greedy_and_seed_reproducible(client):
    kw = dict(model="SmolLM2-135M-Instruct", prompt="The capital of France is", max_tokens=3)
    greedy = client.completions.create(**kw, temperature=0).choices[0].text
    assert "Paris" in greedy
    seeded = [client.completions.create(**kw, temperature=1.0, seed=7).choices[0].text for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_streaming_with_usage_n_and_logprobs(client):
    stream = client.completions.create(model="SmolLM2-135M-Instruct", prompt="One, two, three,", max_tokens=5,
                                       n=2, logprobs=2, temperature=0.8, seed=1, stream=True,
                                       stream_options={"include_usage": True})
    texts, finished, usage = {0: "", 1: ""}, set(), None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            texts[choice.index] += choice.text
            if choice.logprobs is not None:
                assert all(len(top) <= 2 for top in choice.logprobs.top_logprobs)
            if choice.finish_reason:
                finished.add(choice.index)
    assert finished == {0, 1} and usage is not None and usage.completion_tokens == 10


def test_chat_streaming_and_logprobs(client):
    chunks = list(client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=MSG, max_tokens=4,
                                                 temperature=0, stream=True, logprobs=True, top_logprobs=3,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1
    content = [lp for c in chunks if c.choices and c.choices[0].logprobs for lp in c.choices[0].logprobs.content]
    assert content and all(len(lp.top_logprobs) == 3 for lp in content)


def test_stop_string_ends_the_completion(client):
    out = client.completions.create(model="SmolLM2-135M-Instruct", prompt="1, 2, 3, 4,", max_tokens=20,
                                    temperature=0, stop=[" 7"])
    assert out.choices[0].finish_reason == "stop" and " 7" not in out.choices[0].text


def test_prompt_too_long_says_maximum_context_length(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="SmolLM2-135M-Instruct", prompt="hello " * 600, max_tokens=5)
    assert "maximum context length" in str(err.value)
    assert err.value.body["param"] == "input_tokens"


@pytest.mark.parametrize("extra", [{"temperature": -1}, {"n": 0}, {"extra_body": {"guided_json": {}}},
                                   {"max_tokens": 100000}, {"logprobs": 21},
                                   {"extra_body": {"top_k": 185936565949944031302647808}},
                                   {"extra_body": {"min_tokens": 2**64}},
                                   {"extra_body": {"stop_token_ids": [5, 2**70]}},
                                   {"extra_body": {"stop_token_ids": [49_152]}},
                                   {"extra_body": {"min_p": True}}, {"extra_body": {"top_k": "5"}},
                                   {"extra_body": {"ignore_eos": "yes"}}, {"max_tokens": 4.0}])
def test_invalid_requests_are_400(client, extra):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="SmolLM2-135M-Instruct", prompt="hi", **extra)
    assert err.value.status_code == 400 and len(err.value.message) < 2000


def test_an_integer_is_a_number(client):
    """Strict types (``true`` is not 1) still take an integer where the schema says number, as JSON Schema does."""
    out = client.completions.create(model="SmolLM2-135M-Instruct", prompt="hi", max_tokens=2, temperature=0,
                                    top_p=1, extra_body={"min_p": 0, "repetition_penalty": 1})
    assert out.usage.completion_tokens == 2


def test_empty_messages_is_400(client):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=[])


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4", prompt="hi", max_tokens=1)


def test_missing_or_wrong_key_is_401(server):
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    assert httpx.get(server.url + "/v1/models").status_code == 401
    assert httpx.post(server.url + "/tokenize", json={"prompt": "hi"}).status_code == 401
    assert httpx.get(server.url + "/health").status_code == 200  # public


def test_tokenizer_routes_round_trip(server):
    h = server.headers
    toks = httpx.post(server.url + "/tokenize", json={"prompt": "Hello world"}, headers=h).json()
    assert toks["count"] == len(toks["tokens"]) and toks["max_model_len"] == 512
    text = httpx.post(server.url + "/detokenize", json={"tokens": toks["tokens"]}, headers=h).json()["prompt"]
    assert text == "Hello world"
    info = httpx.get(server.url + "/tokenizer_info", headers=h).json()
    assert info["eos_token"] == "<|im_end|>" and "im_start" in info["chat_template"]
    chat = httpx.post(server.url + "/tokenize", json={"messages": MSG}, headers=h).json()
    assert chat["count"] > toks["count"]


def test_version_and_openapi(server):
    assert httpx.get(server.url + "/version").json()["version"]
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/completions", "/v1/chat/completions", "/tokenize", "/health"} <= set(spec["paths"])
    assert "422" not in spec["paths"]["/v1/completions"]["post"]["responses"]


def test_echo_with_logprobs_scores_the_prompt_like_transformers(client):
    """lm-eval's loglikelihood request: echo + logprobs returns the prompt tokens' logprobs."""
    import torch
    import transformers

    from plinth.model.default_model import default_model_path
    from plinth.model.model_config import ModelConfig

    prompt = "The capital of France is Paris"
    result = client.completions.create(model="SmolLM2-135M-Instruct", prompt=prompt, max_tokens=1, temperature=0,
                                       echo=True, logprobs=1)
    lp = result.choices[0].logprobs
    folder = ModelConfig.from_source(default_model_path()).model_path
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(prompt).input_ids
    # the weights from the GGUF itself: plinth's converted copy keeps GGML blocks only plinth reads
    gguf = Path(default_model_path())
    hf = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    with torch.inference_mode():
        ref = torch.log_softmax(hf(torch.tensor([ids])).logits[0].float(), -1)
    assert result.choices[0].text.startswith(prompt)
    assert lp.token_logprobs[0] is None and lp.tokens[0] == tokenizer.decode(ids[:1])
    assert len(lp.token_logprobs) == len(ids) + 1  # prompt tokens, then the generated one
    for pos in range(1, len(ids)):
        assert abs(lp.token_logprobs[pos] - float(ref[pos - 1, ids[pos]])) < 1e-3
    assert "".join(lp.tokens[:len(ids)]) == prompt
