"""Fixtures of the server tests: one shared real server (SmolLM2 on cpu), openai clients, and a server of a
tiny random Llama without a tokenizer (`--skip-tokenizer-init`)."""

from __future__ import annotations

import pytest
from server_process import ServerProcess, require_default_model

from tests.e2e.conftest import save_tiny_model


@pytest.fixture(scope="session")
def server():
    require_default_model()
    proc = ServerProcess().wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def client(server):
    openai = pytest.importorskip("openai", reason="the server tests use the openai client: pip install openai")
    return openai.OpenAI(base_url=server.url + "/v1", api_key=server.api_key, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def async_client(server):
    openai = pytest.importorskip("openai", reason="the server tests use the openai client: pip install openai")
    return openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=server.api_key, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """A tiny random Llama saved by transformers: config and safetensors, no tokenizer files."""
    return save_tiny_model("llama", tmp_path_factory.mktemp("no-tokenizer"))


@pytest.fixture(scope="session")
def bare_server(tiny_folder):
    proc = ServerProcess(str(tiny_folder), "--skip-tokenizer-init", "--dtype", "float32", api_key=None,
                         max_model_len=256).wait_ready()
    yield proc
    proc.stop()
