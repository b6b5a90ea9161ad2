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
                events = (buffer + data).split(b"\n\n")
                buffer = events.pop()  # an event cut by the read is completed by the next one
                for event in events:
                    if not event.startswith(b"data: ") or event == b"data: [DONE]":
                        continue
                    chunk = _decode(event[6:])
                    if "error" in chunk:
                        res.error = chunk["error"].get("message", "error")
                        return res
                    if chunk.get("usage"):
                        res.output_tokens = chunk["usage"]["completion_tokens"]
                    first = (chunk.get("choices") or [{}])[0]
                    if first.get("text") or first.get("token_ids"):
                        now = time.perf_counter()
                        if res.ttft == 0.0:
                            res.ttft = now - start
                        else:
                            res.itl.append(now - last)
                        last = now
        res.e2e = time.perf_counter() - start
        res.ok = True
    except Exception as exc:  # the benchmark records failures rather than stopping
        res.error = f"{type(exc).__name__}: {exc}"
    return res


def _decode(data: bytes) -> dict:
    try:
        import msgspec
    except ImportError:  # the server's dependency; the load generator works without it, slower
        return json.loads(data)
    return msgspec.json.decode(data)


def arrival_offsets(config: BenchConfig) -> list[float]:
    """Seconds after the start at which each request is sent: Poisson arrivals, or all at 0."""
    if config.request_rate == float("inf"):
        return [0.0] * config.num_prompts
    rng, at, out = random.Random(config.seed + 1), 0.0, []
    for _ in range(config.num_prompts):
        out.append(at)
        at += rng.expovariate(config.request_rate)
    return out


async def _send_part(config: BenchConfig, model: str, part: list[int], start_at: float) -> list[RequestResult]:
    """Send the requests ``part`` (indices) at their arrival times after ``start_at`` (time.monotonic())."""
    import httpx

    prompts, offsets = make_prompts(config), arrival_offsets(config)
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=config.base_url, headers=headers, timeout=None, limits=limits) as client:
        gate = asyncio.Semaphore(max(1, -(-(config.max_concurrency or len(prompts)) // config.num_workers)))

        async def gated(i: int) -> RequestResult:
            async with gate:
                return await _one(client, config, model, prompts[i])

        tasks = []
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        for i in part:
            delay = start_at + offsets[i] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(gated(i)))
        return await asyncio.gather(*tasks)


def _worker(config: BenchConfig, model: str, part: list[int], go, results) -> None:
    """A load-generator process: waits for the common start time, then sends its share."""
    cpu = time.process_time()
    start_at = go.get()
    out = asyncio.run(_send_part(config, model, part, start_at))
    results.put((part, out, time.monotonic(), time.process_time() - cpu))


def _served_model(config: BenchConfig) -> str:
    import httpx

    if config.model:
        return config.model
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    return httpx.get(config.base_url + "/v1/models", headers=headers, timeout=60).json()["data"][0]["id"]


def run_bench(config: BenchConfig) -> dict:
    """Send every request (from ``num_workers`` processes, request i from process i mod num_workers) and report."""
    import multiprocessing as mp

    model = _served_model(config)
    parts = [list(range(w, config.num_prompts, config.num_workers)) for w in range(config.num_workers)]
    if config.num_workers == 1:
        cpu, start_at = time.process_time(), time.monotonic()
        results = asyncio.run(_send_part(config, model, parts[0], start_at))
        end, cpu = time.monotonic(), time.process_time() - cpu
    else:
        ctx = mp.get_context("spawn")
        go, queue = ctx.Queue(), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(config, model, part, go, queue), daemon=True) for part in parts]
        for p in procs:
            p.start()
        start_at = time.monotonic() + 2.0  # the workers import and open their clients meanwhile
        for _ in procs:
            go.put(start_at)
        by_index: dict[int, RequestResult] = {}
        end, cpu = start_at, 0.0
        for _ in procs:
            part, out, worker_end, worker_cpu = queue.get()
            by_index.update(zip(part, out, strict=True))
            end, cpu = max(end, worker_end), cpu + worker_cpu
        for p in procs:
            p.join()
        results = [by_index[i] for i in range(config.num_prompts)]
    out = report(config, results, end - start_at)
    out["client_cpu_s"] = cpu  # near duration_s times num_workers: the load generator itself limits
    return out


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

