"""The load generator behind `plinth bench serve`: streaming completions over HTTP (httpx).

TTFT = send -> first content chunk; TPOT = (E2E - TTFT) / (output tokens - 1); ITL = gaps
between streamed chunks; percentiles by linear interpolation (BENCHMARKS.md). Requests ask for
``return_token_ids`` (vLLM's), so a chunk that carries new token ids counts as content even when
it carries no text: servers without a tokenizer (``--skip-tokenizer-init``) stream only ids.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class BenchConfig:
    base_url: str = "http://127.0.0.1:8000"
    model: str | None = None
    num_prompts: int = 500
    input_len: int = 512
    output_len: int = 256
    request_rate: float = float("inf")  # Poisson arrivals per second; inf = all at once
    max_concurrency: int | None = None
    prompt_kind: str = "token-ids"  # "token-ids" or "random-text"
    seed: int = 0
    api_key: str | None = None
    vocab_size: int = 10000  # random token ids are drawn below this
    num_workers: int = 1  # load-generator processes (one Python process tops out near 8k streamed tokens/s)


@dataclass
class RequestResult:
    ok: bool = False
    ttft: float = 0.0
    e2e: float = 0.0
    itl: list[float] = field(default_factory=list)
    output_tokens: int = 0
    error: str = ""


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return 0.0
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summary(values: list[float]) -> dict:
    ms = [v * 1000 for v in values]
    return {"mean_ms": sum(ms) / len(ms) if ms else 0.0, "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99)}


def make_prompts(config: BenchConfig) -> list[list[int] | str]:
    rng = random.Random(config.seed)
    if config.prompt_kind == "token-ids":
        return [[rng.randrange(config.vocab_size) for _ in range(config.input_len)] for _ in range(config.num_prompts)]
    words = ["alpha", "river", "stone", "cloud", "music", "green", "paper", "light", "north", "table"]
    return [" ".join(rng.choice(words) for _ in range(config.input_len)) for _ in range(config.num_prompts)]


async def _one(client, config: BenchConfig, model: str, prompt) -> RequestResult:
    body = {"model": model, "prompt": prompt, "max_tokens": config.output_len, "min_tokens": config.output_len,
            "ignore_eos": True, "temperature": 0.0, "stream": True, "stream_options": {"include_usage": True},
            "return_token_ids": True}
    res = RequestResult()
    start = last = time.perf_counter()
    try:
        async with client.stream("POST", "/v1/completions", json=body) as resp:
            if resp.status_code != 200:
                res.error = f"HTTP {resp.status_code}: {(await resp.aread())[:200]!r}"
                return res
            buffer = b""
            async for data in resp.aiter_bytes():
                # SSE allows CRLF line ends; a CR left at the end pairs with the next read's LF
                events = (buffer + data).replace(b"\r\n", b"\n").split(b"\n\n")
                buffer = events.pop()  # an event cut by the read is completed by the next one
                for event in events:
                    last = _take(event, res, start, last)
                    if res.error:
                        return res
            if buffer.strip():
                _take(buffer.replace(b"\r\n", b"\n").strip(), res, start, last)
        res.e2e = time.perf_counter() - start
        if not res.error and res.ttft == 0.0:
            res.error = "the stream carried no tokens"
        res.ok = not res.error
    except Exception as exc:  # the benchmark records failures rather than stopping
        res.error = f"{type(exc).__name__}: {exc}"
    return res


def _take(event: bytes, res: RequestResult, start: float, last: float) -> float:
    """Apply one SSE event to ``res``; returns the time of the last content chunk."""
    if not event.startswith(b"data: ") or event == b"data: [DONE]":
        return last
    chunk = _decode(event[6:])
    if "error" in chunk:
        res.error = chunk["error"].get("message", "error")
        return last
    if chunk.get("usage"):
        res.output_tokens = chunk["usage"]["completion_tokens"]
    first = (chunk.get("choices") or [{}])[0]
    if first.get("text") or first.get("token_ids"):
        now = time.perf_counter()
        if res.ttft == 0.0:
            res.ttft = now - start
        else:
            res.itl.append(now - last)
        return now
    return last


try:  # once, not per streamed event
    from msgspec.json import decode as _decode
except ImportError:  # the server's dependency; the load generator works without it, slower
    _decode = json.loads


def arrival_offsets(config: BenchConfig) -> list[float]:
    """Seconds after the start at which each request is sent: Poisson arrivals, or all at 0."""
    if config.request_rate == float("inf"):
        return [0.0] * config.num_prompts
    rng, at, out = random.Random(config.seed + 1), 0.0, []
    for _ in range(config.num_prompts):
        out.append(at)
        at += rng.expovariate(config.request_rate)
    return out


def _slots(config: BenchConfig, workers: int) -> list[int]:
    """Requests each worker may have in flight: ``max_concurrency`` split exactly (no worker gets none)."""
    cap = config.max_concurrency or config.num_prompts
    return [cap // workers + (w < cap % workers) for w in range(workers)]


async def _send_part(config: BenchConfig, model: str, part: list[int], slots: int,
                     wait_for_start) -> tuple[list[RequestResult], float]:
    """Send the requests ``part`` (indices) at their arrival times. Set-up (prompts, client) comes first;
    then ``wait_for_start()`` gives the common start (time.monotonic()). Returns the results and that start."""
    import httpx

    prompts, offsets = make_prompts(config), arrival_offsets(config)
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=config.base_url, headers=headers, timeout=None, limits=limits) as client:
        gate = asyncio.Semaphore(slots)

        async def gated(i: int) -> RequestResult:
            async with gate:
                return await _one(client, config, model, prompts[i])

        start_at = wait_for_start()
        tasks = []
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        for i in part:
            delay = start_at + offsets[i] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(gated(i)))
        return await asyncio.gather(*tasks), start_at


def _worker(config: BenchConfig, model: str, part: list[int], slots: int, ready, go, results) -> None:
    """A load-generator process: sets up, says it is ready, waits for the common start time, sends its share."""
    cpu = time.process_time()

    def wait_for_start() -> float:
        ready.put(True)
        return go.get()

    out, _ = asyncio.run(_send_part(config, model, part, slots, wait_for_start))
    results.put((part, out, time.monotonic(), time.process_time() - cpu))


def _served_model(config: BenchConfig) -> str:
    import httpx

    if config.model:
        return config.model
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    return httpx.get(config.base_url + "/v1/models", headers=headers, timeout=60).json()["data"][0]["id"]


def run_bench(config: BenchConfig) -> dict:
    """Send every request (from up to ``num_workers`` processes, request i from process i mod workers) and report.

    Never more workers than requests or than ``max_concurrency`` allows, so every worker has a slot."""
    model = _served_model(config)
    workers = max(1, min(config.num_workers, config.num_prompts, config.max_concurrency or config.num_prompts))
    parts = [list(range(w, config.num_prompts, workers)) for w in range(workers)]
    slots = _slots(config, workers)
    if workers == 1:
        cpu = time.process_time()
        results, start_at = asyncio.run(_send_part(config, model, parts[0], slots[0], time.monotonic))
        end, cpu = time.monotonic(), time.process_time() - cpu
    else:
        results, start_at, end, cpu = _run_workers(config, model, parts, slots)
    out = report(config, results, end - start_at)
    out["client_cpu_s"] = cpu  # near duration_s times the workers: the load generator itself limits
    return out


def _run_workers(config: BenchConfig, model: str, parts: list[list[int]], slots: list[int]):
    import multiprocessing as mp
    import queue

    ctx = mp.get_context("spawn")
    ready, go, done = ctx.Queue(), ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(config, model, part, n, ready, go, done), daemon=True)
             for part, n in zip(parts, slots, strict=True)]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            _get(ready, procs, queue.Empty)
        start_at = time.monotonic() + 0.05
        for _ in procs:
            go.put(start_at)
        by_index: dict[int, RequestResult] = {}
        end, cpu = start_at, 0.0
        for _ in procs:
            part, out, worker_end, worker_cpu = _get(done, procs, queue.Empty)
            by_index.update(zip(part, out, strict=True))
            end, cpu = max(end, worker_end), cpu + worker_cpu
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
    return [by_index[i] for i in range(config.num_prompts)], start_at, end, cpu


def _get(q, procs, empty):
    """The next message on ``q``; a clear error, not a hang, if a worker dies first."""
    while True:
        try:
            return q.get(timeout=1.0)
        except empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a load-generator worker died (exit code {dead[0]}); "
                                   "run with --num-workers 1 to see its error") from None


def report(config: BenchConfig, results: list[RequestResult], duration: float) -> dict:
    ok = [r for r in results if r.ok]
    out_tokens = sum(r.output_tokens for r in ok)
    tpot = [(r.e2e - r.ttft) / (r.output_tokens - 1) for r in ok if r.output_tokens > 1]
    return {
        "config": {k: (str(v) if isinstance(v, float) and v == float("inf") else v)
                   for k, v in asdict(config).items() if k != "api_key"},
        "completed": len(ok), "failed": len(results) - len(ok),
        "errors": sorted({r.error for r in results if not r.ok})[:5],
        "duration_s": duration,
        "request_throughput": len(ok) / duration if duration else 0.0,
        "output_throughput": out_tokens / duration if duration else 0.0,
        "total_token_throughput": (out_tokens + len(ok) * config.input_len) / duration if duration else 0.0,
        "total_output_tokens": out_tokens,
        "ttft": summary([r.ttft for r in ok]), "tpot": summary(tpot),
        "itl": summary([g for r in ok for g in r.itl]), "e2e": summary([r.e2e for r in ok]),
    }

