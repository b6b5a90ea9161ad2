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
            async for line in resp.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
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


async def _run(config: BenchConfig) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=config.base_url, headers=headers, timeout=None, limits=limits) as client:
        model = config.model or (await client.get("/v1/models")).json()["data"][0]["id"]
        prompts = make_prompts(config)
        rng = random.Random(config.seed + 1)
        gate = asyncio.Semaphore(config.max_concurrency or len(prompts))

        async def gated(prompt):
            async with gate:
                return await _one(client, config, model, prompt)

        tasks = []
        cpu_start, start = time.process_time(), time.perf_counter()
        for prompt in prompts:
            tasks.append(asyncio.create_task(gated(prompt)))
            if config.request_rate != float("inf"):
                await asyncio.sleep(rng.expovariate(config.request_rate))
        results = await asyncio.gather(*tasks)
        duration = time.perf_counter() - start
    out = report(config, results, duration)
    out["client_cpu_s"] = time.process_time() - cpu_start  # near duration_s: the load generator itself limits
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


def run_bench(config: BenchConfig) -> dict:
    return asyncio.run(_run(config))
