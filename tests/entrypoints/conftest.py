"""Fixtures of the server tests: one shared real server (SmolLM2 on cpu) and openai clients."""

from __future__ import annotations

import pytest
from server_process import ServerProcess, require_default_model


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
