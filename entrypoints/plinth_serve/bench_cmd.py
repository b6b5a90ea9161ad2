"""`plinth bench serve` (a load generator for a running server, S1) and the offline
`plinth bench throughput` (T1/T2/T3) and `plinth bench latency` (L1)."""

from __future__ import annotations

import typer

from plinth_serve.serve_cmd import CUDA_GRAPH_SIZES_HELP, KV_CACHE_DTYPE_HELP, QUANTIZATION_HELP, graph_sizes

bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True)


@bench_app.command("serve")
def bench_serve(
    base_url: str = typer.Option("http://127.0.0.1:8000", help="The server to load."),
    model: str | None = typer.Option(None, help="`model` to send. Default: the server's first model."),
    num_prompts: int = typer.Option(500, min=1, help="Requests to send."),
    input_len: int = typer.Option(512, min=1, help="Prompt tokens per request."),
    output_len: int = typer.Option(256, min=1, help="Tokens to generate per request (ignore_eos)."),
    request_rate: float = typer.Option(float("inf"), help="Poisson arrival rate (req/s); inf = all at once."),
    max_concurrency: int | None = typer.Option(None, min=1, help="Most requests in flight (split evenly between "
                                                "the workers)."),
    prompt_kind: str = typer.Option("token-ids", help="token-ids (random ids) or random-text."),
    seed: int = typer.Option(0, help="Seed for prompts and arrivals."),
    api_key: str | None = typer.Option(None, envvar="PLINTH_API_KEY", help="Bearer key, if the server wants one."),
    num_workers: int = typer.Option(1, min=1, help="Load-generator processes. One Python process reads about 8k "
                                    "streamed tokens/s; use more when the server is faster (client_cpu_s near "
                                    "duration_s x workers says the generator limits)."),
    result_json: str | None = typer.Option(None, "--json", help="Also write the results to this JSON file."),
) -> None:
    """Stream completions at a rate (or all at once) and report TTFT, TPOT, ITL, E2E and throughput.

    Example: `plinth bench serve --num-prompts 32 --input-len 256 --output-len 64 --json out.json`
    """
    import json

    from plinth_serve.bench.serve_bench import BenchConfig, run_bench

    if prompt_kind not in ("token-ids", "random-text"):
        raise typer.BadParameter("use token-ids or random-text", param_hint="--prompt-kind")
    config = BenchConfig(base_url=base_url.rstrip("/"), model=model, num_prompts=num_prompts, input_len=input_len,
                         output_len=output_len, request_rate=request_rate, max_concurrency=max_concurrency,
                         prompt_kind=prompt_kind, seed=seed, api_key=api_key, num_workers=num_workers)
    result = run_bench(config)
    typer.echo(json.dumps(result, indent=2))
    if result_json:
        with open(result_json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


def _offline_options(device, num_requests, enforce_eager, max_num_seqs, max_num_batched_tokens,
                     gpu_memory_utilization, admission="forecast", block_size=None, kv_cache_dtype="auto",
                     quantization=None, enable_prefix_caching=False, cuda_graph_sizes=None):
    from plinth.bench.runner import BenchOptions

    engine = {"admission": admission, **({"block_size": block_size} if block_size else {}),
              **({"enable_prefix_caching": True} if enable_prefix_caching else {}),
              **({"kv_cache_dtype": kv_cache_dtype} if kv_cache_dtype != "auto" else {}),
              **({"quantization": quantization} if quantization else {}),
              **({"cuda_graph_sizes": graph_sizes(cuda_graph_sizes)} if cuda_graph_sizes else {})}
    return BenchOptions(device=device, num_requests=num_requests, enforce_eager=enforce_eager,
                        max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                        gpu_memory_utilization=gpu_memory_utilization, engine_options=engine)


def _emit(result: dict, result_json: str | None) -> None:
    import json

    typer.echo(json.dumps(result, indent=2))
    if result_json:
        with open(result_json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


@bench_app.command("throughput")
def bench_throughput(
    workload: str = typer.Option("T3", help="T1, T2 or T3 (shared/BENCHMARKS.md); model shapes are built in."),
    device: str | None = typer.Option(None, help="Platform (cuda, cpu, ...). Default: the best available."),
    num_requests: int | None = typer.Option(None, min=1, help="Scale T1/T2 down to this many requests."),
    enforce_eager: bool = typer.Option(False, help="Never capture device graphs."),
    max_num_seqs: int | None = typer.Option(None, min=1, help="Requests per step. Default: the platform's (1024 on "
                                            "GPUs of 70+ GiB but the A100, vLLM's offline default there; else 256)."),
    max_num_batched_tokens: int | None = typer.Option(None, min=1, help="Tokens per step. Default: the platform's "
                                                      "(16384 on GPUs of 70+ GiB but the A100, as vLLM; else 8192)."),
    gpu_memory_utilization: float = typer.Option(0.9, min=0.05, max=1.0),
    admission: str = typer.Option("forecast", help="forecast: admit a request only if the running ones' "
                                  "projected KV growth leaves room; greedy: whenever its prompt fits (vLLM's)."),
    block_size: int | None = typer.Option(None, min=1, help="Tokens per KV-cache block (default: the platform's)."),
    kv_cache_dtype: str = typer.Option("auto", help=KV_CACHE_DTYPE_HELP),
    quantization: str | None = typer.Option(None, help=QUANTIZATION_HELP),
    cuda_graph_sizes: str | None = typer.Option(None, help=CUDA_GRAPH_SIZES_HELP),
    enable_prefix_caching: bool = typer.Option(False, "--enable-prefix-caching/--no-enable-prefix-caching",
                                               help="Off by default, as benchmarks/RESULTS.md's figures ran "
                                               "(`vllm bench throughput` runs with it on)."),
    load_format: str = typer.Option("dummy", help="Only 'dummy' (random weights of the model shape)."),
    result_json: str | None = typer.Option(None, "--json", help="Also write the results to this JSON file."),
) -> None:
    """Offline throughput: all requests at once, prefill inside the timer; requests/s and tokens/s.

    Example: `plinth bench throughput --workload T3 --device cuda --json t3.json`
    """
    from plinth.bench.runner import run_throughput

    if load_format != "dummy":
        raise typer.BadParameter("benchmarks use random weights of the built-in model shapes", param_hint="--load-format")
    from plinth.config import ADMISSION_RULES

    if admission not in ADMISSION_RULES:
        raise typer.BadParameter(f"use {' or '.join(map(repr, ADMISSION_RULES))}", param_hint="--admission")
    options = _offline_options(device, num_requests, enforce_eager, max_num_seqs, max_num_batched_tokens,
                               gpu_memory_utilization, admission, block_size, kv_cache_dtype, quantization,
                               enable_prefix_caching, cuda_graph_sizes)
    _emit(run_throughput(workload, options), result_json)


@bench_app.command("latency")
def bench_latency(
    workload: str = typer.Option("L1", help="L1 (one 1024-token prompt, 256 output tokens, Llama-3.1-8B shape)."),
    device: str | None = typer.Option(None, help="Platform (cuda, cpu, ...). Default: the best available."),
    iterations: int = typer.Option(3, min=1, help="Timed runs after one warm-up; the median is reported."),
    enforce_eager: bool = typer.Option(False, help="Never capture device graphs."),
    gpu_memory_utilization: float = typer.Option(0.9, min=0.05, max=1.0),
    kv_cache_dtype: str = typer.Option("auto", help=KV_CACHE_DTYPE_HELP),
    quantization: str | None = typer.Option(None, help=QUANTIZATION_HELP),
    result_json: str | None = typer.Option(None, "--json", help="Also write the results to this JSON file."),
) -> None:
    """Batch-1 latency: end-to-end, time to first token and decode tokens/s.

    Example: `plinth bench latency --device cuda --json l1.json`
    """
    from plinth.bench.runner import run_latency

    options = _offline_options(device, None, enforce_eager, 256, 8192, gpu_memory_utilization,
                               kv_cache_dtype=kv_cache_dtype, quantization=quantization)
    _emit(run_latency(workload, options, iterations), result_json)
