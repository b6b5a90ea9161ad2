"""`plinth bench serve`: a load generator for a running server (workload S1)."""

from __future__ import annotations

from typing import Optional

import typer

bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True)


@bench_app.command("serve")
def bench_serve(
    base_url: str = typer.Option("http://127.0.0.1:8000", help="The server to load."),
    model: Optional[str] = typer.Option(None, help="`model` to send. Default: the server's first model."),
    num_prompts: int = typer.Option(500, min=1, help="Requests to send."),
    input_len: int = typer.Option(512, min=1, help="Prompt tokens per request."),
    output_len: int = typer.Option(256, min=1, help="Tokens to generate per request (ignore_eos)."),
    request_rate: float = typer.Option(float("inf"), help="Poisson arrival rate (req/s); inf = all at once."),
    max_concurrency: Optional[int] = typer.Option(None, min=1, help="Most requests in flight."),
    prompt_kind: str = typer.Option("token-ids", help="token-ids (random ids) or random-text."),
    seed: int = typer.Option(0, help="Seed for prompts and arrivals."),
    api_key: Optional[str] = typer.Option(None, envvar="PLINTH_API_KEY", help="Bearer key, if the server wants one."),
    result_json: Optional[str] = typer.Option(None, "--json", help="Also write the results to this JSON file."),
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
                         prompt_kind=prompt_kind, seed=seed, api_key=api_key)
    result = run_bench(config)
    typer.echo(json.dumps(result, indent=2))
    if result_json:
        with open(result_json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
