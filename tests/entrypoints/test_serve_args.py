"""`plinth serve` engine options reach EngineArgs (the server builds its engine from them)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from plinth_serve.cli import app
from plinth_serve.server.args import ServerArgs


def test_quantization_reaches_the_engine_args():
    assert ServerArgs(quantization="int8_weight_only").engine_args().quantization == "int8_weight_only"
    assert ServerArgs().engine_args().quantization is None


@pytest.fixture
def served(monkeypatch):
    """Runs `plinth serve ARGS` without a server; returns the ServerArgs it would have served with."""
    seen = {}

    def fake_serve(args):
        seen["args"] = args
        return 0

    monkeypatch.setattr("plinth_serve.server.launcher.serve", fake_serve)

    def run(*argv):
        result = CliRunner().invoke(app, ["serve", *argv, "--port", "0"])
        assert result.exit_code == 0, result.output
        return seen["args"]

    return run


def test_serve_passes_quantization(served):
    assert served("--quantization", "int8_weight_only").engine_args().quantization == "int8_weight_only"


def test_serve_passes_admission(served):
    assert served("--admission", "greedy").engine_args().admission == "greedy"
    assert ServerArgs().engine_args().admission == "forecast"


def test_serve_passes_graph_and_cache_layout_options(served):
    """vLLM's --enforce-eager, --cuda-graph-sizes and --block-size reach the engine; unset, the platform decides."""
    args = served("--enforce-eager", "--cuda-graph-sizes", "1,2,4,8", "--block-size", "32").engine_args()
    assert args.enforce_eager and args.cuda_graph_sizes == [1, 2, 4, 8] and args.block_size == 32
    config = args.engine_config(2048)
    assert config.graph.mode == "eager" and config.graph.capture_sizes == (8, 4, 2, 1)
    assert config.cache.block_size == 32
    default = served().engine_args()
    assert not default.enforce_eager and default.cuda_graph_sizes is None
    assert default.block_size == ServerArgs().engine_args().block_size
    assert default.engine_config(2048).graph.capture_sizes == ()  # the platform's ladder


@pytest.mark.parametrize("sizes", ["1,two", "0,4", "-8", ","])
def test_serve_refuses_unreadable_graph_sizes(sizes):
    result = CliRunner().invoke(app, ["serve", "--cuda-graph-sizes", sizes, "--port", "0"])
    assert result.exit_code != 0 and "comma" in result.output


def test_bench_rejects_an_unknown_admission():
    result = CliRunner().invoke(app, ["bench", "throughput", "--admission", "lifo"])
    assert result.exit_code != 0 and "forecast" in result.output


def test_bench_passes_block_size_and_admission_to_the_engine(monkeypatch):
    import plinth.bench.runner as runner

    seen = {}
    monkeypatch.setattr(runner, "run_throughput", lambda name, options: seen.update(name=name, options=options) or {})
    result = CliRunner().invoke(app, ["bench", "throughput", "--workload", "T2", "--block-size", "32",
                                      "--admission", "greedy"])
    assert result.exit_code == 0, result.output
    assert seen["name"] == "T2"
    assert seen["options"].engine_options == {"admission": "greedy", "block_size": 32}
    CliRunner().invoke(app, ["bench", "throughput"])
    assert seen["options"].engine_options == {"admission": "forecast"}  # the platform's block size


def test_bench_passes_capture_sizes_and_leaves_step_limits_to_the_platform(monkeypatch):
    import plinth.bench.runner as runner

    seen = {}
    monkeypatch.setattr(runner, "run_throughput", lambda name, options: seen.update(options=options) or {})
    result = CliRunner().invoke(app, ["bench", "throughput", "--cuda-graph-sizes", "1,2,4,8"])
    assert result.exit_code == 0, result.output
    assert seen["options"].engine_options["cuda_graph_sizes"] == [1, 2, 4, 8]
    assert seen["options"].max_num_seqs is None and seen["options"].max_num_batched_tokens is None
    result = CliRunner().invoke(app, ["bench", "throughput", "--cuda-graph-sizes", "1,two"])
    assert result.exit_code != 0 and "comma" in result.output


def _bench_options(monkeypatch, *args: str):
    """The ``BenchOptions`` ``plinth bench throughput|latency ARGS`` hand to the runner, per command."""
    import plinth.bench.runner as runner

    seen = {}
    monkeypatch.setattr(runner, "run_throughput", lambda name, options: seen.update(options=options) or {})
    monkeypatch.setattr(runner, "run_latency", lambda name, options, iterations: seen.update(options=options) or {})
    options = {}
    for command in ("throughput", "latency"):
        result = CliRunner().invoke(app, ["bench", command, *args])
        assert result.exit_code == 0, result.output
        options[command] = seen.pop("options")
    return options


def test_serve_and_bench_pass_the_kv_cache_dtype(served, monkeypatch):
    assert served("--kv-cache-dtype", "fp8").engine_args().kv_cache_dtype == "fp8"
    assert ServerArgs().engine_args().kv_cache_dtype == "auto"
    for options in _bench_options(monkeypatch, "--kv-cache-dtype", "fp8_e5m2").values():
        assert options.engine_options["kv_cache_dtype"] == "fp8_e5m2"


def test_bench_passes_the_quantization(monkeypatch):
    for options in _bench_options(monkeypatch, "--quantization", "fp8").values():
        assert options.engine_options["quantization"] == "fp8"
    for options in _bench_options(monkeypatch).values():
        assert "quantization" not in options.engine_options


def test_bench_prefix_caching_is_off_unless_asked_and_reaches_the_llm(monkeypatch):
    import plinth
    import plinth.bench.runner as runner
    from plinth.bench.workloads import build_workload

    seen = {}
    monkeypatch.setattr(runner, "run_throughput", lambda name, options: seen.update(options=options) or {})
    monkeypatch.setattr(runner, "freeze_heap", lambda: None)  # not in a test process
    for argv, expected in ((["bench", "throughput"], False), (["bench", "throughput", "--enable-prefix-caching"], True)):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, result.output
        monkeypatch.setattr(plinth, "LLM", lambda *a, **kw: seen.update(llm=kw))
        runner._make_llm(build_workload("T3", 1), seen["options"])
        assert seen["llm"]["enable_prefix_caching"] is expected
