"""`plinth bench serve`'s load generator against a real server (token ids only, a tiny random Llama)."""

from __future__ import annotations

import random

import pytest

from plinth_serve.bench.serve_bench import BenchConfig, arrival_offsets, run_bench


def test_poisson_arrivals_are_the_seeded_exponential_gaps():
    config = BenchConfig(num_prompts=50, request_rate=8.0, seed=3)
    rng = random.Random(4)
    expected, at = [], 0.0
    for _ in range(50):
        expected.append(at)
        at += rng.expovariate(8.0)
    assert arrival_offsets(config) == pytest.approx(expected)
    assert arrival_offsets(BenchConfig(num_prompts=5)) == [0.0] * 5  # all at once


@pytest.mark.parametrize("workers", [1, 3])
def test_every_token_is_timed_from_chunks_with_ids_only(bare_server, workers):
    """Chunks carry token ids and no text: TTFT and one ITL per later token, whatever the worker count."""
    out = run_bench(BenchConfig(base_url=bare_server.url, num_prompts=5, input_len=8, output_len=5, vocab_size=256,
                                request_rate=50.0, num_workers=workers))
    assert out["completed"] == 5 and out["failed"] == 0, out["errors"]
    assert out["total_output_tokens"] == 25
    assert out["ttft"]["p50_ms"] > 0 and out["tpot"]["p50_ms"] > 0
    assert out["itl"]["p50_ms"] > 0
    assert out["duration_s"] >= max(arrival_offsets(BenchConfig(num_prompts=5, request_rate=50.0)))


# A stand-in server: streams `max_tokens` chunks of one token id each, with the event separator under test, each
# event cut in two writes; it records the most requests it had open at once.
FAKE = {"sep": b"\n\n", "open": 0, "most": 0}


def _fake_app():
    import asyncio
    import json

    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def completions(request):
        body = await request.json()

        async def events():
            FAKE["open"] += 1
            FAKE["most"] = max(FAKE["most"], FAKE["open"])
            try:
                for i in range(body["max_tokens"]):
                    await asyncio.sleep(0.02)
                    event = b"data: " + json.dumps({"choices": [{"index": 0, "text": "", "token_ids": [i]}]}).encode()
                    yield event[:9]
                    yield event[9:] + FAKE["sep"]
                usage = {"choices": [], "usage": {"completion_tokens": body["max_tokens"]}}
                yield b"data: " + json.dumps(usage).encode() + FAKE["sep"] + b"data: [DONE]" + FAKE["sep"]
            finally:
                FAKE["open"] -= 1

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/completions", completions, methods=["POST"])])


@pytest.fixture(scope="module")
def fake_server():
    import threading
    import time

    import uvicorn
    from server_process import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_fake_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize("sep", [b"\n\n", b"\r\n\r\n"])
def test_events_cut_across_reads_and_crlf_separators_are_parsed(fake_server, sep):
    FAKE["sep"] = sep
    out = run_bench(BenchConfig(base_url=fake_server, model="m", num_prompts=3, input_len=4, output_len=6,
                                vocab_size=50))
    FAKE["sep"] = b"\n\n"
    assert out["completed"] == 3 and out["failed"] == 0, out["errors"]
    assert out["total_output_tokens"] == 18 and out["itl"]["p50_ms"] > 0


@pytest.mark.parametrize(("workers", "cap"), [(1, 2), (3, 2), (3, 4), (2, 1)])
def test_max_concurrency_holds_across_workers(fake_server, workers, cap):
    FAKE["most"] = 0
    out = run_bench(BenchConfig(base_url=fake_server, model="m", num_prompts=12, input_len=4, output_len=4,
                                max_concurrency=cap, num_workers=workers, vocab_size=50))
    assert out["completed"] == 12, out["errors"]
    assert FAKE["most"] == cap
