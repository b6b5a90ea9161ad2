"""Cancellation flood, SIGTERM drain and engine death, against real `plinth serve` processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
import time

import httpx
import pytest
from server_process import ServerProcess, require_default_model

pytest.importorskip("openai", reason="the server tests use the openai client: pip install openai")


def _gauges(server) -> dict[str, float]:
    text = httpx.get(server.url + "/metrics").text
    out = {}
    for name in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc"):
        match = re.search(rf"^plinth:{name}\{{[^}}]*\}} ([0-9.e+-]+)$", text, re.M)
        out[name] = float(match.group(1)) if match else -1.0
    return out


def test_cancellation_flood_frees_everything(server, async_client):
    async def cancelled_stream(i: int) -> None:
        stream = await async_client.completions.create(
            model="SmolLM2-135M-Instruct", prompt=f"Story {i}:", max_tokens=200, stream=True,
            extra_body={"ignore_eos": True})
        async for _ in stream:
            break  # first chunk, then hang up
        await stream.close()

    async def flood() -> None:
        await asyncio.gather(*(cancelled_stream(i) for i in range(50)))

    asyncio.run(flood())
    start = time.monotonic()
    out = httpx.post(server.url + "/v1/completions", headers=server.headers, timeout=60,
                     json={"prompt": "Hello", "max_tokens": 2, "temperature": 0})
    assert out.status_code == 200 and time.monotonic() - start < 30
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_gauges(server).values()):
        time.sleep(0.2)
    assert _gauges(server) == {"num_requests_running": 0.0, "num_requests_waiting": 0.0, "kv_cache_usage_perc": 0.0}


def _stream_lines(url: str, body: dict, sink: list, headers: dict | None = None) -> None:
    try:
        with httpx.stream("POST", url, json=body, headers=headers, timeout=120) as resp:
            sink.append(("status", resp.status_code))
            for line in resp.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    sink.append(("chunk", json.loads(line[6:])))
    except httpx.HTTPError as exc:
        sink.append(("error", repr(exc)))


def test_sigterm_drains_in_flight_then_exits():
    require_default_model()
    server = ServerProcess("--shutdown-timeout", "60", api_key=None).wait_ready()
    try:
        sinks = [[] for _ in range(3)]
        # long enough that the drain outlasts the late request below (a fast CPU step is ~20 ms)
        body = {"prompt": "Count: 1, 2,", "max_tokens": 64, "temperature": 0, "stream": True,
                "ignore_eos": True}
        threads = [threading.Thread(target=_stream_lines, args=(server.url + "/v1/completions", body, s))
                   for s in sinks]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(any(k == "chunk" for k, _ in s) for s in sinks):
            time.sleep(0.05)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        refused = httpx.post(server.url + "/v1/completions", json={"prompt": "late", "max_tokens": 1}, timeout=10)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == 503
        assert httpx.get(server.url + "/health").status_code == 503
        for t in threads:
            t.join(60)
        for sink in sinks:
            finishes = [c["choices"][0]["finish_reason"] for k, c in sink if k == "chunk" and c["choices"]]
            assert finishes[-1] == "length", sink
        assert server.proc.wait(30) == 0
    finally:
        server.stop()


def test_engine_death_errors_in_flight_and_turns_health_503():
    require_default_model()
    server = ServerProcess(api_key=None).wait_ready()
    try:
        sink: list = []
        body = {"prompt": "Once upon a time", "max_tokens": 400, "stream": True, "ignore_eos": True}
        t = threading.Thread(target=_stream_lines, args=(server.url + "/v1/completions", body, sink))
        t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(k == "chunk" for k, _ in sink):
            time.sleep(0.05)
        os.kill(server.engine_pid(), signal.SIGKILL)
        t.join(30)
        errors = [c["error"] for k, c in sink if k == "chunk" and "error" in c]
        assert errors and errors[0]["code"] == 500 and "engine" in errors[0]["message"]
        assert httpx.get(server.url + "/health").status_code == 503
        late = httpx.post(server.url + "/v1/completions", json={"prompt": "x", "max_tokens": 1})
        assert late.status_code == 500 and "engine" in late.json()["error"]["message"]
        assert server.proc.wait(30) == 1  # exits unless --stay-on-engine-death
    finally:
        server.stop()
