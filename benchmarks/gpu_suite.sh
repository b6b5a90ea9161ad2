#!/usr/bin/env bash
# The CUDA platform's GPU suite: kernel checks, conformance kit, GPU end-to-end tests, then the
# BENCHMARKS.md workloads for plinth and the Hugging Face peer, and one table at the end.
#
#   bash benchmarks/gpu_suite.sh all      # one 10-minute call: kernel checks (a bf16 case of every kernel), greedy =
#                                         # transformers, T3, L1, T1, T2 for plinth, the HF peer on each, the table
#   bash benchmarks/gpu_suite.sh checks   # the kernel checks of `all` alone
#   bash benchmarks/gpu_suite.sh verify1  # the whole GPU test directory, part 1: attention and dense-prefill cases
#   bash benchmarks/gpu_suite.sh verify2  # part 2: everything else but the engine tests
#   bash benchmarks/gpu_suite.sh verify3  # part 3: the engine tests (greedy = transformers, graphs), conformance kit
#   bash benchmarks/gpu_suite.sh tests    # kernels + conformance + e2e on the GPU, then T3
#   bash benchmarks/gpu_suite.sh bench    # L1, T1 (scaled by T1_REQUESTS, default 200)
#   bash benchmarks/gpu_suite.sh peer     # HF transformers on T3 (time-limited by HF_TIME_LIMIT)
#   bash benchmarks/gpu_suite.sh round2   # GPU end-to-end tests, then T3, L1, T1 (one ~8-minute call)
#   bash benchmarks/gpu_suite.sh round3   # fused sampling kernel tests + sampler micro-benchmark, then T3
#   bash benchmarks/gpu_suite.sh round4   # kernel + e2e GPU tests, then T3, T1 (200), L1 and a T3 device timeline
#   bash benchmarks/gpu_suite.sh round5   # T3 twice, T1 (200), L1, then the HF peer on T3 (time-limited)
#   bash benchmarks/gpu_suite.sh round6   # kernel + e2e GPU tests, T3 twice, L1, T1 (all 1000 requests)
#   bash benchmarks/gpu_suite.sh round6b  # T2, T3, then the HF peer on T3 (time-limited)
#   bash benchmarks/gpu_suite.sh round8a  # the whole CUDA test directory, then T3
#   bash benchmarks/gpu_suite.sh round8b  # T2 with KV-forecast admission, then with greedy (vLLM's), one call
#   bash benchmarks/gpu_suite.sh round8d  # T2 with 128-token decode tiles (group >= 4) vs 64-token, then T1
#   bash benchmarks/gpu_suite.sh verify   # the whole CUDA test directory (8 workers), then the conformance kit
#   bash benchmarks/gpu_suite.sh round8e  # L1 with the decode plan vs 64-token tiles, then T3
#   bash benchmarks/gpu_suite.sh round8c  # decode launch sweep (Llama-8B and Qwen3 heads), T3 with 2 warps/4 stages vs 4/2
#   bash benchmarks/gpu_suite.sh round9a  # mixed-step decode-row tests; T1 with/without the decode launch, 384 seqs; T2
#   bash benchmarks/gpu_suite.sh round9b  # mixed-step tests + no-compile test; T1 with/without the decode launch, 384; T3
#   bash benchmarks/gpu_suite.sh round9c  # prefill GEMM paths; decode/mixed/no-compile tests; T3 tail plan A/B twice
#   bash benchmarks/gpu_suite.sh round10a # KV-split sweep at batches 2-96 (CUDA graphs), then verify1
#   bash benchmarks/gpu_suite.sh round10b # KV blocks of 32 tokens vs 16: T2, T1, T3
#   bash benchmarks/gpu_suite.sh round13b # interpreter checks on the image's torch, fp8 kernels; warp-specialized decode GEMMs
#   bash benchmarks/gpu_suite.sh s1       # S1 over HTTP (needs the server wheels, see README): Poisson 4, 8, 16 req/s
#                                         # and all at once, then offline on the same prompts; Llama-3.1-8B shape
#   bash benchmarks/gpu_suite.sh round13  # engine tests, fp8/GEMV kernels, conformance; L1: fp8 _scaled_mm vs fp8 GEMV, bf16
#   bash benchmarks/gpu_suite.sh round12  # fp8 linear kernel + engine tests; L1, T1 with fp8 linears, T2 with fp8 + fp8 KV
#   bash benchmarks/gpu_suite.sh round11d # the kernel checks of `all`, then T3 with bf16 and fp8 KV
#   bash benchmarks/gpu_suite.sh round11c # fp8 KV engine tests (HF oracle); T2 and T1 with fp8 KV
#   bash benchmarks/gpu_suite.sh round11b # fp8 KV cache tests; T2 bf16 and fp8; T3, T1 with fp8 KV
#   bash benchmarks/gpu_suite.sh round11a # memory before the KV cache (T2, T3); split-K decode GEMMs vs cuBLAS
#   bash benchmarks/gpu_suite.sh round9d  # engine/decode/sampling GPU tests, small-batch split sweep, then T1, T3, L1
#   bash benchmarks/gpu_suite.sh round15a # fused gate/up + SiLU: kernel tests, fused vs unfused by rows, T1 off/on, engine tests
#   bash benchmarks/gpu_suite.sh round15b # LM head at decode batches; dense prefill with warp-specialized KV loop; T3 off/on
#   bash benchmarks/gpu_suite.sh round15d # dense/mixed kernel + engine tests; T1 at 16384, 4096, 8192 tokens a step
#   bash benchmarks/gpu_suite.sh round16a # cuBLAS call forms at decode and prefill sizes; T1 at 256 vs 384 requests a
#                                         # step, then a T1 timeline at 384
#   bash benchmarks/gpu_suite.sh round16b # the platform's step limits (1,024 requests, 16,384 tokens): T1, T3, T2;
#                                         # then T2 at 256 requests a step
#   bash benchmarks/gpu_suite.sh round16c # sampler tests on the GPU; T2, T1, T3 at the platform's step limits
#   bash benchmarks/gpu_suite.sh round16d # residual added in the GEMM: tests; T1 off/on, T2 on
#   bash benchmarks/gpu_suite.sh round16e # T3 at 256 requests a step and at the platform's default, alternating twice
#   bash benchmarks/gpu_suite.sh round17a # decode rows and prompt tokens on two streams (bench_overlap.py); T2 at a
#                                         # 768-token step budget vs the default
#   bash benchmarks/gpu_suite.sh round17b # rotary + KV write in one launch: kernel/engine/kit tests; T3 twice, L1, off/on
#   bash benchmarks/gpu_suite.sh round17c # rotary + KV write: kernel tests, one launch vs two (graph-timed), T3 off/on x3
#   bash benchmarks/gpu_suite.sh round17d # rotary + KV write: kernel tests; a T3 device timeline with it on
#   bash benchmarks/gpu_suite.sh round17e # rotary + KV write: T3 device timelines off and on, one machine
#   bash benchmarks/gpu_suite.sh round17f # the final tree: kernel checks, the whole conformance kit on cuda, T1 twice
#   bash benchmarks/gpu_suite.sh round18a # host stalls: host_jitter.py on the idle machine and beside a T3 run; two T3
#                                         # device timelines with the host loop's phases around the largest gaps
#   bash benchmarks/gpu_suite.sh round18b # T3's prompt steps alone: host launch vs device time, cProfile, torch's op table
#   bash benchmarks/gpu_suite.sh round18c # T3 in a process that JIT-compiles its kernels vs one that reads them cached, x2
#   bash benchmarks/gpu_suite.sh round18d # T3's host path: cProfile and torch's host-side op table
#   bash benchmarks/gpu_suite.sh round18e # Qwen3-0.6B's decode linears: cuBLAS against the tiled Triton plans
#   bash benchmarks/gpu_suite.sh round16f # vLLM's capture ladder vs the previous one (PLINTH_CAPTURE_LADDER=old): T2, T1
#
# Stages are split so each fits one 10-minute device call. JSON and logs go to $OUT (or ./gpu_out).
set -uo pipefail
STAGE=${1:-all}
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PLINTH_LOGGING_LEVEL=${PLINTH_LOGGING_LEVEL:-INFO}
python3 -m pip install -q --no-deps --no-build-isolation -e core -e platforms/triton-kernels -e platforms/cuda \
    -e entrypoints >/tmp/plinth_pip.log 2>&1 || { echo "install failed"; tail /tmp/plinth_pip.log; exit 1; }
python3 -c "import torch, triton, transformers; print('device:', torch.cuda.get_device_name(), '| torch', torch.__version__, '| triton', triton.__version__, '| transformers', transformers.__version__)" | tee "$OUT/env.txt"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader >>"$OUT/env.txt" 2>/dev/null

bench() {  # bench NAME COMMAND...: run a plinth bench sub-command with a time limit, JSON to $OUT
    local name=$1; shift
    timeout "${BENCH_TIMEOUT:-300}" python3 -m plinth_serve bench "$@" --device cuda --json "$OUT/plinth_$name.json" \
        >"$OUT/plinth_$name.log" 2>&1 || { echo "plinth $name failed (rc=$?)"; tail -20 "$OUT/plinth_$name.log"; }
}

stamp() { echo "[$(date +%H:%M:%S) +${SECONDS}s] $*" | tee -a "$OUT/stages.txt"; }
kernel_checks() {  # one bf16 case of every kernel (GQA 4, head 128) and the sampler; the whole matrix: verify1/verify2
    # (one wide decode batch: each takes 65-75 s, and six of them made the checks 148 s and cut the HF peers; round 18)
    timeout "$(left 170)" python3 -m pytest tests/platforms/cuda/test_kernels_gpu.py tests/platforms/cuda/test_sampling_gpu.py \
        -q -n 8 -p no:cacheprovider --durations=4 --plinth-platform=cuda \
        -k "(bfloat16 and bs16-g4 and not fp8) or (dtype0 and (split or (wide and True-2-128) or window or elementwise or gemv or fp8_linear \
            or (write_kv and not rotary))) or (rotary_write_kv and dtype0 and same) or sampling_gpu \
            or (fp8 and bs16-g4-d128-bfloat16) or fp8_kv_decode" 2>&1 | tail -8 | tee "$OUT/kernels.txt"
}
s1_run() {  # S1 over HTTP at ${S1_RATES:-4 8 16 inf} req/s, then offline on the at-once prompts (one server)
    stamp "S1 at ${S1_RATES:-4 8 16 inf} req/s, then offline"
    timeout "$(left 570)" python3 benchmarks/bench_serve_vs_offline.py --device cuda --model-shape llama-3.1-8b \
        --num-prompts "${S1_PROMPTS:-500}" --input-len 512 --output-len 256 --rates ${S1_RATES:-4 8 16 inf} \
        --max-model-len 2048 --server-log "$OUT/s1_server.log" --server-log-level "${S1_LOG_LEVEL:-warning}" \
        --client-workers "${S1_CLIENT_WORKERS:-4}" \
        --json "$OUT/s1.json" 2>&1 | tee "$OUT/s1.log" | grep -v '^ \|^}\|^\]'
    stamp "done"
}
# `all` must end inside one 600-second device call (and leave time for the table and the archive): every stage's
# limit is the smaller of its own and what is left of SUITE_BUDGET; a stage with under 20 s left is skipped.
SUITE_BUDGET=${SUITE_BUDGET:-555}
left() { local rest=$(( SUITE_BUDGET - SECONDS )); echo $(( rest < $1 ? (rest > 0 ? rest : 1) : $1 )); }
run_if_time() {  # run_if_time LIMIT NAME COMMAND...: COMMAND under `left LIMIT`, or a note that it was skipped
    local limit=$1 name=$2; shift 2
    if (( SUITE_BUDGET - SECONDS < 20 )); then stamp "skipped $name: the call's time is spent"; return; fi
    stamp "$name"; BENCH_TIMEOUT=$(left "$limit") "$@"
}
hf_peer() {  # hf_peer WORKLOADS WINDOW LOG: the HF peer on WORKLOADS (one model load), WINDOW seconds each
    timeout "$BENCH_TIMEOUT" python3 benchmarks/bench_hf_peer.py --workload "$1" --time-limit "$2" --out-dir "$OUT" \
        >"$OUT/$3" 2>&1 || { echo "HF $1 failed or was cut"; tail -3 "$OUT/$3"; }
}
if [[ $STAGE == checks ]]; then
    SECONDS=0; stamp "kernel checks"; kernel_checks; stamp "done"
fi
if [[ $STAGE == all ]]; then
    SECONDS=0
    stamp "kernel checks"
    kernel_checks
    run_if_time 90 "plinth T3" bench t3 throughput --workload T3
    run_if_time 90 "plinth L1" bench l1 latency --workload L1
    run_if_time 120 "plinth T1" bench t1 throughput --workload T1
    run_if_time 210 "plinth T2" bench t2 throughput --workload T2
    run_if_time 90 "HF T3" hf_peer T3 "${HF_TIME_LIMIT:-15}" hf_t3.log
    run_if_time 150 "HF T1, T2, L1" hf_peer T1,T2,L1 "${HF_LLAMA_LIMIT:-12}" hf_llama.log
    stamp "done"
fi
if [[ $STAGE == round13b ]]; then  # the interpreter checks on the image's torch, fp8 kernels; warp-specialized decode GEMMs
    stamp "interpreter + fp8 kernel tests"
    timeout 200 python3 -m pytest tests/platforms/cuda/test_interpret.py tests/platforms/cuda/test_kernels_gpu.py -q -n 4 \
        -p no:cacheprovider --plinth-platform=cuda -k "interpret or fp8_linear or gemv" 2>&1 | tail -3 | tee "$OUT/tests.txt"
    stamp "warp-specialized decode GEMMs"
    timeout 170 python3 benchmarks/bench_gemm_decode.py --ws --batches 200 256 --json "$OUT/gemm_ws.json" 2>&1 \
        | tee "$OUT/gemm_ws.txt" | grep -v '^{' | cut -c1-600
    stamp "done"
fi
if [[ $STAGE == s1 ]]; then  # S1: `plinth serve` (dummy Llama-3.1-8B, no tokenizer) under `plinth bench serve`
    s1_run
fi
if [[ $STAGE == round15a ]]; then  # gate/up GEMM with SiLU-and-mul fused: kernel tests, row sweep, T1 off/on, engine tests
    SECONDS=0; SUITE_BUDGET=570
    stamp "gated kernel + interpreter tests"
    timeout "$(left 150)" python3 -m pytest tests/platforms/cuda/test_kernels_gpu.py tests/platforms/cuda/test_interpret.py \
        -q -n 8 -p no:cacheprovider --plinth-platform=cuda -k "gated or interpret or elementwise" 2>&1 | tail -4 \
        | tee "$OUT/kernels.txt"
    stamp "fused vs cuBLAS + silu_and_mul by rows"
    timeout "$(left 100)" python3 benchmarks/bench_gemm_silu.py --rows 512 1024 2048 4096 8192 16384 \
        --json "$OUT/gated_rows.json" 2>&1 | tail -14
    for run in 0 1; do
        stamp "T1 PLINTH_TRITON_GATED_SILU=$run"
        PLINTH_TRITON_GATED_SILU=$run BENCH_TIMEOUT=$(left 100) bench "t1_gated$run" throughput --workload T1
        grep -h '"output_tok_s"\|"elapsed_s"' "$OUT/plinth_t1_gated$run.json"
    done
    stamp "engine tests"
    timeout "$(left 250)" python3 -m pytest tests/platforms/cuda/test_engine_gpu.py -q -n 4 -p no:cacheprovider \
        --plinth-platform=cuda --tb=short 2>&1 | tail -15 >"$OUT/engine_tests.txt"; tail -4 "$OUT/engine_tests.txt"
    stamp "done"
fi
if [[ $STAGE == round15b ]]; then  # the LM head at decode batches; the dense prefill kernel with a warp-specialized KV loop; T3
    SECONDS=0; SUITE_BUDGET=570
    stamp "LM head: BLAS libraries and Triton plans"
    timeout "$(left 200)" python3 benchmarks/bench_gemm_decode.py --lm-head --batches 1 64 128 200 256 \
        --json "$OUT/lm_head.json" 2>&1 | cut -c1-700 | tail -8
    stamp "dense prefill attention, warp-specialized plans"
    timeout "$(left 200)" python3 benchmarks/bench_prefill_attention.py --ws --json "$OUT/prefill_ws.json" 2>&1 \
        | cut -c1-1500 | tail -14
    for run in 0 1; do
        stamp "T3 PLINTH_TRITON_GATED_SILU=$run"
        PLINTH_TRITON_GATED_SILU=$run BENCH_TIMEOUT=$(left 70) bench "t3_gated$run" throughput --workload T3
        grep -h '"output_tok_s"\|"elapsed_s"' "$OUT/plinth_t3_gated$run.json"
    done
    stamp "done"
fi
if [[ $STAGE == round17f ]]; then  # the final tree: kernel checks, the whole conformance kit on cuda, T1 twice
    SECONDS=0; SUITE_BUDGET=480
    stamp "kernel checks"; kernel_checks
    stamp "conformance kit"
    timeout "$(left 120)" python3 -m pytest --pyargs plinth.testing.conformance -q -n 8 -p no:cacheprovider \
        --plinth-platform=cuda 2>&1 | tail -3
    for round in 1 2; do
        run_if_time 70 "plinth T1, round $round" bench "t1_$round" throughput --workload T1
        grep -h '"output_tok_s"' "$OUT/plinth_t1_$round.json"
    done
    stamp "done"
fi
if [[ $STAGE == round18e ]]; then  # Qwen3-0.6B's decode linears: cuBLAS against tiled Triton plans (L2-cold weights)
    SECONDS=0
    timeout 520 python3 benchmarks/bench_gemm_decode.py --model qwen3 --batches 256 128 64 \
        --json "$OUT/gemm_decode_qwen3.json" 2>&1 | tee "$OUT/gemm_decode_qwen3.log" | grep -v "^ "
fi
if [[ $STAGE == round18d ]]; then  # T3's host path whole: cProfile and torch's op table
    SECONDS=0; SUITE_BUDGET=400
    stamp "T3 host profile"
    timeout "$(left 300)" python3 benchmarks/profile_host.py --workload T3 --device cuda --torch-ops --top 70 \
        >"$OUT/t3_host.log" 2>&1 || tail -5 "$OUT/t3_host.log"
    stamp "done"
fi
if [[ $STAGE == round18c ]]; then  # T3 in a process that JIT-compiles its Triton kernels vs one that finds them cached
    SECONDS=0; SUITE_BUDGET=${SUITE_BUDGET:-540}
    for pair in ${PAIRS:-1 2}; do
        export TRITON_CACHE_DIR=/tmp/triton_cache_$pair  # empty: the first run compiles, the second reads the cache
        run_if_time 100 "T3, empty Triton cache $pair" bench "t3_compiling_$pair" throughput --workload T3
        run_if_time 90 "T3, cached $pair" bench "t3_cached_$pair" throughput --workload T3
    done
    for f in "$OUT"/plinth_t3_*.json; do python3 -c "import json,sys; d=json.load(open(sys.argv[1])); \
        print(sys.argv[1].rsplit('/',1)[1], d['output_tok_s'], d['elapsed_s'], d['load_s'], d['decode_steps'])" "$f"; done
    stamp "done"
fi
if [[ $STAGE == round18b ]]; then  # T3's prompt steps on the host: launch vs device time, cProfile, torch's op table
    SECONDS=0; SUITE_BUDGET=400
    stamp "T3 prompt steps (max_tokens 1): launch times, cProfile, op table"
    timeout "$(left 300)" python3 benchmarks/profile_host.py --workload T3 --device cuda --max-tokens 1 --launches \
        --torch-ops --top 45 >"$OUT/t3_prompt_host.log" 2>&1 || tail -5 "$OUT/t3_prompt_host.log"
    grep -A12 "host launch ms" "$OUT/t3_prompt_host.log"
    stamp "done"
fi
if [[ $STAGE == round18a ]]; then  # host stalls: the machine's own (host_jitter.py), then T3 timelines with host phases
    SECONDS=0; SUITE_BUDGET=480
    stamp "host jitter, idle machine"; python3 benchmarks/host_jitter.py --seconds 8 --json "$OUT/jitter_a.json" >/dev/null
    for run in a b; do
        stamp "T3 timeline $run"
        timeout "$(left 170)" python3 benchmarks/profile_step_timeline.py --workload T3 --device cuda \
            --json "$OUT/t3_timeline_$run.json" >"$OUT/t3_timeline_$run.log" 2>&1 || tail -5 "$OUT/t3_timeline_$run.log"
    done
    run_if_time 90 "plinth T3" bench t3 throughput --workload T3
    stamp "host jitter beside a T3 run"
    python3 benchmarks/host_jitter.py --seconds 70 --json "$OUT/jitter_b.json" >/dev/null &
    BENCH_TIMEOUT=$(left 90) bench t3_beside throughput --workload T3; wait
    stamp "done"
fi
if [[ $STAGE == round17e ]]; then  # rotary + KV write: T3 device timelines with it off and on, one machine
    SECONDS=0; SUITE_BUDGET=400
    for run in 0 1; do
        stamp "T3 timeline PLINTH_TRITON_ROTARY_WRITE=$run"
        PLINTH_TRITON_ROTARY_WRITE=$run timeout "$(left 170)" python3 benchmarks/profile_step_timeline.py --workload T3 \
            --device cuda --json "$OUT/t3_timeline_rw$run.json" >"$OUT/t3_timeline_rw$run.log" 2>&1 \
            || tail -5 "$OUT/t3_timeline_rw$run.log"
    done
    stamp "done"
fi
if [[ $STAGE == round17d ]]; then  # rotary + KV write: kernel tests; T3 device timeline with it on
    SECONDS=0; SUITE_BUDGET=400
    stamp "rotary_write_kv kernel tests"
    timeout "$(left 120)" python3 -m pytest tests/platforms/cuda/test_kernels_gpu.py -q -n 8 -p no:cacheprovider \
        --plinth-platform=cuda --tb=line -k "rotary_write_kv" 2>&1 | tail -4
    stamp "T3 timeline, rotary + KV write in one launch"
    timeout "$(left 200)" python3 benchmarks/profile_step_timeline.py --workload T3 --device cuda \
        --json "$OUT/t3_timeline.json" >"$OUT/t3_timeline.log" 2>&1 || tail -5 "$OUT/t3_timeline.log"
    stamp "done"
fi
if [[ $STAGE == round17c ]]; then  # rotary + KV write: kernel tests, one launch vs two (graph-timed), T3 off/on x3
    SECONDS=0; SUITE_BUDGET=585
    stamp "rotary_write_kv kernel tests"
    timeout "$(left 120)" python3 -m pytest tests/platforms/cuda/test_kernels_gpu.py -q -n 8 -p no:cacheprovider \
        --plinth-platform=cuda --tb=line -k "rotary_write_kv" 2>&1 | tail -12
    stamp "one launch vs two"
    timeout "$(left 120)" python3 benchmarks/bench_rotary_write.py --json "$OUT/rotary_write.json" 2>&1 | tail -6
    for round in 1 2 3; do
        for run in 1 0; do
            stamp "T3 PLINTH_TRITON_ROTARY_WRITE=$run, round $round"
            PLINTH_TRITON_ROTARY_WRITE=$run BENCH_TIMEOUT=$(left 70) bench "t3_rw${run}_$round" throughput --workload T3
            grep -h '"output_tok_s"' "$OUT/plinth_t3_rw${run}_$round.json"
        done
    done
    stamp "done"
fi
if [[ $STAGE == round17b ]]; then  # rotary + KV write in one launch: tests, then T3 and L1 with it off and on
    SECONDS=0; SUITE_BUDGET=585
    stamp "rotary_write_kv kernel, engine and conformance tests"
    timeout "$(left 220)" python3 -m pytest tests/platforms/cuda/test_kernels_gpu.py tests/platforms/cuda/test_engine_gpu.py \
        -q -n 8 -p no:cacheprovider --plinth-platform=cuda --tb=short -k "rotary_write_kv or elementwise or write_kv or not kernels_gpu" \
        2>&1 | tail -6
    timeout "$(left 60)" python3 -m pytest --pyargs plinth.testing.conformance -q -p no:cacheprovider \
        --plinth-platform=cuda -k "kv_write or rotary" 2>&1 | tail -3
    for round in 1 2; do
        for run in 0 1; do
            stamp "T3 PLINTH_TRITON_ROTARY_WRITE=$run, round $round"
            PLINTH_TRITON_ROTARY_WRITE=$run BENCH_TIMEOUT=$(left 70) bench "t3_rw${run}_$round" throughput --workload T3
            grep -h '"output_tok_s"' "$OUT/plinth_t3_rw${run}_$round.json"
        done
    done
    for run in 0 1; do
        stamp "L1 PLINTH_TRITON_ROTARY_WRITE=$run"
        PLINTH_TRITON_ROTARY_WRITE=$run BENCH_TIMEOUT=$(left 70) bench "l1_rw$run" latency --workload L1
        grep -h '"decode_tok_s"\|"tpot_ms"' "$OUT/plinth_l1_rw$run.json"
    done
    stamp "done"
fi
if [[ $STAGE == round17a ]]; then  # two-stream overlap premise; T2 with prompts paced by a 768-token step budget
    SECONDS=0; SUITE_BUDGET=580
    stamp "decode rows and prompt tokens on two streams"
    timeout "$(left 150)" python3 benchmarks/bench_overlap.py --watchdog 140 ${OVERLAP_ARGS:-} --json "$OUT/overlap.json" 2>&1 | tail -40
    for budget in ${T2_BUDGETS:-768 default}; do
        stamp "T2, step budget $budget"
        opt=(); [[ $budget != default ]] && opt=(--max-num-batched-tokens "$budget")
        BENCH_TIMEOUT=$(left 190) bench "t2_$budget" throughput --workload T2 "${opt[@]}"
        grep -h '"output_tok_s"\|"elapsed_s"\|"num_kv_blocks"\|"decode_steps"' "$OUT/plinth_t2_$budget.json"
    done
    stamp "done"
fi
if [[ $STAGE == round16f ]]; then  # capture ladder: vLLM's (steps of 8 / 16) against the previous (16 / 32)
    SECONDS=0; SUITE_BUDGET=580
    old=$(python3 -c "print(','.join(map(str, (1, 2, 4, 8, *range(16, 257, 16), *range(288, 513, 32)))))")
    for w in T2 T1; do
        for ladder in new old; do
            stamp "$w, $ladder ladder"
            opt=(); [[ $ladder == old ]] && opt=(--cuda-graph-sizes "$old")
            BENCH_TIMEOUT=$(left 170) bench "${w,,}_$ladder" throughput --workload $w "${opt[@]}"
            grep -h '"output_tok_s"\|"graphs_captured"\|"capture_seconds"' "$OUT/plinth_${w,,}_$ladder.json"
        done
    done
    stamp "done"
fi
if [[ $STAGE == round16e ]]; then  # does the 1,024-request default move T3? alternating, two rounds
    SECONDS=0; SUITE_BUDGET=400
    for round in 1 2; do
        for seqs in 256 default; do
            stamp "T3 max_num_seqs $seqs, round $round"
            opt=(); [[ $seqs == 256 ]] && opt=(--max-num-seqs 256)
            BENCH_TIMEOUT=$(left 90) bench "t3_${seqs}_$round" throughput --workload T3 "${opt[@]}"
            grep -h '"output_tok_s"' "$OUT/plinth_t3_${seqs}_$round.json"
        done
    done
    stamp "done"
fi
if [[ $STAGE == round16d ]]; then  # the residual in the o/down GEMMs: tests, T1 with it off and on, T2
    SECONDS=0; SUITE_BUDGET=580
    stamp "residual-in-GEMM tests, engine tests, linear-method kit"
    timeout "$(left 200)" python3 -m pytest tests/platforms/cuda/test_residual_gemm.py tests/platforms/cuda/test_engine_gpu.py \
        tests/core/model/test_linear_methods.py -q -n 8 -p no:cacheprovider --plinth-platform=cuda --tb=short 2>&1 | tail -6
    timeout "$(left 60)" python3 -m pytest --pyargs plinth.testing.conformance -q -p no:cacheprovider \
        --plinth-platform=cuda -k "linear or configure or step_limits" 2>&1 | tail -3
    for run in 0 1; do
        stamp "T1 PLINTH_GEMM_RESIDUAL=$run"
        PLINTH_GEMM_RESIDUAL=$run BENCH_TIMEOUT=$(left 100) bench "t1_residual$run" throughput --workload T1
        grep -h '"output_tok_s"\|"elapsed_s"' "$OUT/plinth_t1_residual$run.json"
    done
    stamp "T2"
    BENCH_TIMEOUT=$(left 200) bench t2 throughput --workload T2
    grep -h '"output_tok_s"\|"elapsed_s"\|"num_kv_blocks"' "$OUT/plinth_t2.json"
    stamp "done"
fi
if [[ $STAGE == round16c ]]; then  # row-chunked sampling: tests, then T2, T1, T3 at the platform's defaults
    SECONDS=0; SUITE_BUDGET=580
    stamp "sampler and batch-default tests"
    timeout "$(left 120)" python3 -m pytest tests/core/runner tests/platforms/cuda/test_sampling_gpu.py \
        tests/platforms/cuda/test_sampling_fast_path.py tests/platforms/cuda/test_batch_defaults.py \
        tests/core/engine/test_batch_defaults.py -q -p no:cacheprovider --plinth-platform=cuda --tb=short 2>&1 | tail -4
    for w in T2 T1 T3; do
        stamp "$w at the platform's defaults"
        BENCH_TIMEOUT=$(left 240) bench "${w,,}" throughput --workload $w
        grep -h '"output_tok_s"\|"elapsed_s"\|"num_kv_blocks"\|"max_num_seqs"\|"count"' "$OUT/plinth_${w,,}.json"
    done
    stamp "done"
fi
if [[ $STAGE == round16b ]]; then  # T1, T3, T2 at the platform's default step limits; T2 at 256 requests
    SECONDS=0; SUITE_BUDGET=580
    nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw --format=csv,noheader -lms 500 >"$OUT/smi.csv" 2>/dev/null &
    SMI=$!
    for w in T1 T3 T2; do
        stamp "$w at the platform's defaults"
        BENCH_TIMEOUT=$(left 240) bench "${w,,}" throughput --workload $w
        grep -h '"output_tok_s"\|"elapsed_s"\|"num_kv_blocks"\|"max_num_seqs"\|"count"' "$OUT/plinth_${w,,}.json"
    done
    stamp "T2 --max-num-seqs 256"
    BENCH_TIMEOUT=$(left 240) bench t2_seqs256 throughput --workload T2 --max-num-seqs 256
    grep -h '"output_tok_s"\|"elapsed_s"\|"num_kv_blocks"\|"count"' "$OUT/plinth_t2_seqs256.json"
    kill $SMI 2>/dev/null
    stamp "done"
fi
if [[ $STAGE == round16a ]]; then  # cuBLAS call forms; T1 by max_num_seqs; a T1 timeline at 384
    SECONDS=0; SUITE_BUDGET=575
    stamp "cuBLAS call forms"
    timeout "$(left 150)" python3 benchmarks/bench_gemm_forms.py --batches 200 256 362 16384 \
        --json "$OUT/gemm_forms.json" 2>&1 | grep -v "^$" | tail -25
    nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw --format=csv,noheader -lms 500 >"$OUT/smi_t1.csv" 2>/dev/null &
    SMI=$!
    for seqs in 384 256; do
        stamp "T1 --max-num-seqs $seqs"
        BENCH_TIMEOUT=$(left 110) bench "t1_seqs$seqs" throughput --workload T1 --max-num-seqs $seqs
        grep -h '"output_tok_s"\|"elapsed_s"' "$OUT/plinth_t1_seqs$seqs.json"
    done
    stamp "T1 timeline at 384"
    timeout "$(left 400)" python3 benchmarks/profile_step_timeline.py --workload T1 --max-num-seqs 384 \
        --json "$OUT/timeline_t1_384.json" 2>&1 | tail -40
    kill $SMI 2>/dev/null
    stamp "done"
fi
if [[ $STAGE == round15d ]]; then  # warp-specialized dense prefill: kernel + engine tests; T1 by tokens a step
    SECONDS=0; SUITE_BUDGET=575
    stamp "dense prefill + mixed-step kernel tests, engine tests"
    timeout "$(left 300)" python3 -m pytest tests/platforms/cuda/test_kernels_gpu.py tests/platforms/cuda/test_engine_gpu.py \
        -q -n 8 -p no:cacheprovider --plinth-platform=cuda --tb=short -k "dense or mixed or engine_gpu" 2>&1 | tail -12 \
        >"$OUT/tests.txt"; tail -4 "$OUT/tests.txt"
    for tokens in 16384 4096 8192; do
        stamp "T1 --max-num-batched-tokens $tokens"
        BENCH_TIMEOUT=$(left 90) bench "t1_budget$tokens" throughput --workload T1 --max-num-batched-tokens $tokens
        grep -h '"output_tok_s"\|"elapsed_s"' "$OUT/plinth_t1_budget$tokens.json"
    done
    stamp "done"
fi
if [[ $STAGE == round14d ]]; then  # T3 and T1 with prefix caching on (async scheduling now works with it) vs off
    for run in off on; do
        flag=--no-enable-prefix-caching; [[ $run == on ]] && flag=--enable-prefix-caching
        stamp "T3 prefix caching $run"; BENCH_TIMEOUT=70 bench "t3_pc_$run" throughput --workload T3 $flag
        stamp "T1 prefix caching $run"; BENCH_TIMEOUT=90 bench "t1_pc_$run" throughput --workload T1 $flag
    done
    stamp "done"
    for f in "$OUT"/plinth_t*_pc_*.json; do echo "$f"; grep -h '"output_tok_s"\|"elapsed_s"' "$f"; done
fi
if [[ $STAGE == round14c ]]; then  # async scheduling with prefix caching: GPU tests, then S1 (server default: both on)
    stamp "engine tests + async = sync on cuda"
    PLINTH_TEST_DEVICE=cuda timeout 200 python3 -m pytest tests/platforms/cuda/test_engine_gpu.py \
        tests/core/runner/test_async_scheduling.py -q -n 4 -p no:cacheprovider --plinth-platform=cuda --tb=short 2>&1 \
        | tail -30 >"$OUT/engine_tests.txt"; tail -4 "$OUT/engine_tests.txt"
    S1_LOG_LEVEL=info s1_run
    grep 'engine core loop' "$OUT/s1_server.log"
fi
if [[ $STAGE == round14b ]]; then  # small-batch decode (S1's batches): linears per step by M, T1 at 8/16/32 requests
    stamp "decode linears by batch"
    timeout 150 python3 benchmarks/bench_gemm_decode.py --blas-only --batches 1 4 8 16 32 64 \
        --json "$OUT/gemm_small_m.json" 2>&1 | tail -12
    for n in 8 16 32; do
        stamp "T1 with $n requests"; BENCH_TIMEOUT=100 bench "t1_n$n" throughput --workload T1 --num-requests $n
        grep -h '"output_tok_s"\|"elapsed_s"\|runner_host_ms\|device_wait_ms\|"count"' "$OUT/plinth_t1_n$n.json"
    done
    stamp "done"
fi
if [[ $STAGE == round14 ]]; then  # the engine tests (fp8 checkpoint loader fixes), then S1 at once twice + offline
    stamp "engine tests"
    timeout 300 python3 -m pytest tests/platforms/cuda/test_engine_gpu.py -q -n 4 -p no:cacheprovider \
        --plinth-platform=cuda --tb=short 2>&1 | tail -30 >"$OUT/engine_tests.txt"; tail -4 "$OUT/engine_tests.txt"
    S1_RATES="inf inf" S1_LOG_LEVEL=info s1_run
    grep 'engine core loop' "$OUT/s1_server.log"
fi
if [[ $STAGE == round13 ]]; then  # engine tests (fp8 checkpoint, fp8 linears) + fp8/GEMV kernels, conformance; L1 x3
    SUITE_BUDGET=545; SECONDS=0
    stamp "engine tests + fp8/GEMV kernel tests"
    timeout 290 python3 -m pytest tests/platforms/cuda/test_kernels_gpu.py tests/platforms/cuda/test_engine_gpu.py -q \
        -n 6 -p no:cacheprovider --plinth-platform=cuda -k "fp8_linear or gemv or test_engine_gpu" --tb=short \
        --durations=6 2>&1 | tail -40 >"$OUT/round13_tests.txt"; tail -12 "$OUT/round13_tests.txt"
    stamp "conformance"
    timeout "$(left 90)" python3 -m pytest --pyargs plinth.testing.conformance -q -n 8 -p no:cacheprovider \
        --plinth-platform=cuda 2>&1 | tail -3 | tee "$OUT/conformance.txt"
    run_if_time 55 "L1 fp8 (_scaled_mm at one row)" bench l1_fp8 latency --workload L1 --quantization fp8
    PLINTH_TRITON_FP8_GEMV=1 run_if_time 55 "L1 fp8 (GEMV)" bench l1_fp8_gemv latency --workload L1 --quantization fp8
    run_if_time 55 "L1 bf16" bench l1 latency --workload L1
    stamp "done"
    grep -h '"decode_tok_s"' "$OUT"/plinth_*.json
fi
if [[ $STAGE == round12 ]]; then  # fp8 linears: kernel + engine tests (the engine file whole), then L1, T1, T2 with fp8
    SUITE_BUDGET=520; SECONDS=0
    stamp "fp8 linear kernel tests + engine tests"
    timeout 240 python3 -m pytest tests/platforms/cuda/test_kernels_gpu.py tests/platforms/cuda/test_engine_gpu.py -q \
        -n 4 -p no:cacheprovider --plinth-platform=cuda -k "fp8_linear or test_engine_gpu" --tb=short 2>&1 \
        | tail -40 >"$OUT/round12_tests.txt"; tail -3 "$OUT/round12_tests.txt"
    run_if_time 60 "L1 fp8" bench l1_fp8 latency --workload L1 --quantization fp8
    run_if_time 80 "T1 fp8" bench t1_fp8 throughput --workload T1 --quantization fp8
    run_if_time 150 "T2 fp8 + fp8 KV" bench t2_fp8 throughput --workload T2 --quantization fp8 --kv-cache-dtype fp8
    stamp "done"
    grep -h '"workload"\|"output_tok_s"\|"decode_tok_s"\|num_kv_blocks\|"elapsed_s"' "$OUT"/plinth_*.json
fi
if [[ $STAGE == round11d ]]; then  # the kernel checks of `all` (now with fp8 cases), then T3 with a bf16 and an fp8 cache
    SECONDS=0; stamp "kernel checks"; kernel_checks
    stamp "T3 bf16"; BENCH_TIMEOUT=60 bench t3 throughput --workload T3
    stamp "T3 fp8"; BENCH_TIMEOUT=60 bench t3_fp8 throughput --workload T3 --kv-cache-dtype fp8
    stamp "done"
    grep -h '"output_tok_s"\|num_kv_blocks\|"elapsed_s"' "$OUT"/plinth_*.json
fi
if [[ $STAGE == round11c ]]; then  # fp8 KV: the engine tests against the HF oracle, then T2 and T1 with fp8 KV
    stamp "fp8 engine tests"
    timeout 150 python3 -m pytest tests/platforms/cuda/test_engine_gpu.py -q -n 4 -p no:cacheprovider \
        --plinth-platform=cuda -k fp8 --tb=short 2>&1 | tail -60 >"$OUT/fp8_engine_tests.txt"; tail -3 "$OUT/fp8_engine_tests.txt"
    stamp "T2 fp8"; BENCH_TIMEOUT=230 bench t2_fp8 throughput --workload T2 --kv-cache-dtype fp8
    stamp "T1 fp8"; BENCH_TIMEOUT=$(left 130) bench t1_fp8 throughput --workload T1 --kv-cache-dtype fp8
    stamp "done"
    grep -h '"output_tok_s"\|num_kv_blocks\|"elapsed_s"' "$OUT"/plinth_*.json
fi
if [[ $STAGE == round11b ]]; then  # fp8 KV cache: its kernel and engine tests, then T2 (bf16 / fp8), T1 and T3 fp8
    stamp "fp8 + rotary tests"
    timeout 200 python3 -m pytest tests/platforms/cuda/test_kernels_gpu.py tests/platforms/cuda/test_engine_gpu.py -q -n 8 \
        -p no:cacheprovider --plinth-platform=cuda -k "fp8 or qwen3_06b" 2>&1 | tail -4 | tee "$OUT/fp8_tests.txt"
    stamp "T2 bf16"; BENCH_TIMEOUT=200 bench t2 throughput --workload T2
    stamp "T2 fp8"; BENCH_TIMEOUT=150 bench t2_fp8 throughput --workload T2 --kv-cache-dtype fp8
    stamp "T3 fp8"; BENCH_TIMEOUT=60 bench t3_fp8 throughput --workload T3 --kv-cache-dtype fp8
    stamp "T1 fp8"; BENCH_TIMEOUT=100 bench t1_fp8 throughput --workload T1 --kv-cache-dtype fp8
    stamp "done"
    grep -h '"output_tok_s"\|num_kv_blocks' "$OUT"/plinth_*.json
fi
if [[ $STAGE == round11a ]]; then  # where the memory before the KV cache goes (T2, T3); split-K decode GEMMs
    stamp "memory T2"; timeout 150 python3 benchmarks/memory_budget.py --workload T2 2>&1 | grep -v "^INFO\|Warn" | tee "$OUT/memory_t2.txt"
    stamp "memory T3"; timeout 90 python3 benchmarks/memory_budget.py --workload T3 2>&1 | grep -v "^INFO\|Warn" | tee "$OUT/memory_t3.txt"
    stamp "split-K"; timeout 300 python3 benchmarks/bench_gemm_decode.py --split-k o down qkv --batches 200 256 \
        --json "$OUT/splitk.json" 2>&1 | tee "$OUT/splitk.txt" | grep -v '^{' | cut -c1-400
    stamp "done"
fi
if [[ $STAGE == round10b ]]; then  # KV blocks of 32 tokens against 16: T2 and T1, one call
    stamp "T2 block 32"; BENCH_TIMEOUT=200 bench t2_bs32 throughput --workload T2 --block-size 32
    stamp "T2 block 16"; BENCH_TIMEOUT=200 bench t2 throughput --workload T2 --block-size 16
    stamp "T1 block 32"; BENCH_TIMEOUT=120 bench t1_bs32 throughput --workload T1 --block-size 32
    stamp "T1 block 16"; BENCH_TIMEOUT=120 bench t1 throughput --workload T1 --block-size 16
    stamp "T3 block 32"; bench t3_bs32 throughput --workload T3 --block-size 32
    stamp "T3 block 16"; bench t3 throughput --workload T3 --block-size 16
    grep -h '"output_tok_s"' "$OUT"/plinth_*.json
fi
if [[ $STAGE == verify1 || $STAGE == round10a ]]; then
    timeout 400 python3 -m pytest tests/platforms/cuda/test_kernels_gpu.py -q -n 8 -p no:cacheprovider \
        --plinth-platform=cuda -k "test_attention or dense_prefill" --durations=8 2>&1 | tail -15 | tee "$OUT/cuda_tests_1.txt"
fi
if [[ $STAGE == verify2 ]]; then
    timeout 500 python3 -m pytest tests/platforms/cuda -q -n 8 -p no:cacheprovider --plinth-platform=cuda \
        --ignore=tests/platforms/cuda/test_engine_gpu.py -k "not (test_attention or dense_prefill)" 2>&1 \
        | tail -15 | tee "$OUT/cuda_tests_2.txt"
fi
if [[ $STAGE == verify3 ]]; then
    timeout 400 python3 -m pytest tests/platforms/cuda/test_engine_gpu.py -q -n 4 -p no:cacheprovider \
        --plinth-platform=cuda 2>&1 | tail -15 | tee "$OUT/cuda_tests_3.txt"
    timeout 110 python3 -m pytest --pyargs plinth.testing.conformance -q -n 8 -p no:cacheprovider \
        --plinth-platform=cuda 2>&1 | tail -5 | tee "$OUT/conformance.txt"
fi
if [[ $STAGE == tests ]]; then
    timeout 200 python3 -m pytest tests/platforms/cuda -q -x -n 8 -p no:cacheprovider --plinth-platform=cuda \
        -k "not engine" 2>&1 | tail -5 | tee "$OUT/kernels.txt"
    timeout 150 python3 -m pytest --pyargs plinth.testing.conformance -q -n 8 -p no:cacheprovider \
        --plinth-platform=cuda 2>&1 | tail -5 | tee "$OUT/conformance.txt"
    timeout 150 python3 -m pytest tests/platforms/cuda/test_engine_gpu.py -q -p no:cacheprovider \
        --plinth-platform=cuda 2>&1 | tail -5 | tee "$OUT/e2e.txt"
    bench t3 throughput --workload T3
fi
if [[ $STAGE == round2 ]]; then
    PLINTH_TEST_DEVICE=cuda timeout 150 python3 -m pytest tests/platforms/cuda/test_engine_gpu.py tests/core/runner/test_async_scheduling.py \
        -q -p no:cacheprovider --plinth-platform=cuda 2>&1 | tail -5 | tee "$OUT/e2e.txt"
    bench t3 throughput --workload T3
    grep -h '"output_tok_s"\|decode_steps' -A4 "$OUT/plinth_t3.json" | head -12
    bench l1 latency --workload L1
    bench t1 throughput --workload T1 --num-requests "${T1_REQUESTS:-200}"
fi
if [[ $STAGE == t2 ]]; then
    bench t2 throughput --workload T2
fi
if [[ $STAGE == bench ]]; then
    timeout 150 python3 benchmarks/bench_decode_step.py --json "$OUT/decode_step.json" >"$OUT/decode_step.log" 2>&1 \
        || { echo "decode-step profile failed"; tail -20 "$OUT/decode_step.log"; }
    bench l1 latency --workload L1
    bench t1 throughput --workload T1 --num-requests "${T1_REQUESTS:-200}"
fi
if [[ $STAGE == peer ]]; then
    timeout $(( ${HF_TIME_LIMIT:-280} + 120 )) python3 benchmarks/bench_hf_peer.py --workload T3 \
        --time-limit "${HF_TIME_LIMIT:-280}" --json "$OUT/hf_t3.json" >"$OUT/hf_t3.log" 2>&1 \
        || { echo "HF peer failed"; tail -20 "$OUT/hf_t3.log"; }
fi
if [[ $STAGE == round3 ]]; then  # fused sampling kernel: its GPU tests, the sampler micro-benchmark, then T3
    timeout 150 python3 -m pytest tests/platforms/cuda/test_sampling_gpu.py tests/platforms/cuda/test_sampling_fast_path.py \
        -q -p no:cacheprovider --plinth-platform=cuda 2>&1 | tail -5 | tee "$OUT/sampling_tests.txt"
    timeout 90 python3 tests/platforms/cuda/bench_sampler.py 2>&1 | tee "$OUT/bench_sampler.json"
    bench t3 throughput --workload T3
    grep -h '"output_tok_s"\|decode_steps' -A4 "$OUT/plinth_t3.json" | head -12
fi
if [[ $STAGE == round4 ]]; then  # start-up profile run + no mid-run JIT, wide decode tiles: tests, then T3/T1/L1
    timeout 240 python3 -m pytest tests/platforms/cuda/test_kernels_gpu.py tests/platforms/cuda/test_engine_gpu.py \
        -q -x -n 8 -p no:cacheprovider --plinth-platform=cuda 2>&1 | tail -5 | tee "$OUT/gpu_tests.txt"
    bench t3 throughput --workload T3
    grep -h '"output_tok_s"\|"load_s"' "$OUT/plinth_t3.json"
    bench t1 throughput --workload T1 --num-requests "${T1_REQUESTS:-200}"
    bench l1 latency --workload L1
    timeout 200 python3 benchmarks/profile_step_timeline.py --workload T3 --json "$OUT/timeline_t3.json" \
        >"$OUT/timeline_t3.log" 2>&1 || { echo "timeline failed"; tail -20 "$OUT/timeline_t3.log"; }
fi
if [[ $STAGE == round5 ]]; then  # the session's final figures: T3 twice (spread), T1 (200), L1, then the HF peer on T3
    bench t3 throughput --workload T3
    bench t3_repeat throughput --workload T3
    bench t1 throughput --workload T1 --num-requests "${T1_REQUESTS:-200}"
    bench l1 latency --workload L1
    timeout $(( ${HF_TIME_LIMIT:-200} + 100 )) python3 benchmarks/bench_hf_peer.py --workload T3 \
        --time-limit "${HF_TIME_LIMIT:-200}" --json "$OUT/hf_t3.json" >"$OUT/hf_t3.log" 2>&1 \
        || { echo "HF peer failed"; tail -20 "$OUT/hf_t3.log"; }
fi
if [[ $STAGE == round6 ]]; then  # GEMV linears, longest-first decode, logits in the decode graphs
    timeout 240 python3 -m pytest tests/platforms/cuda/test_kernels_gpu.py tests/platforms/cuda/test_engine_gpu.py \
        -q -x -n 8 -p no:cacheprovider --plinth-platform=cuda 2>&1 | tail -3 | tee "$OUT/gpu_tests.txt"
    bench t3 throughput --workload T3
    bench t3_repeat throughput --workload T3
    bench l1 latency --workload L1
    bench t1 throughput --workload T1
fi
if [[ $STAGE == round6b ]]; then
    BENCH_TIMEOUT=330 bench t2 throughput --workload T2
    bench t3 throughput --workload T3
    timeout $(( ${HF_TIME_LIMIT:-180} + 100 )) python3 benchmarks/bench_hf_peer.py --workload T3 \
        --time-limit "${HF_TIME_LIMIT:-180}" --json "$OUT/hf_t3.json" >"$OUT/hf_t3.log" 2>&1 \
        || { echo "HF peer failed"; tail -20 "$OUT/hf_t3.log"; }
fi
if [[ $STAGE == round8a ]]; then
    timeout 420 python3 -m pytest tests/platforms/cuda -q -n 8 -p no:cacheprovider --plinth-platform=cuda \
        2>&1 | tail -15 | tee "$OUT/cuda_tests.txt"
    bench t3 throughput --workload T3
fi
if [[ $STAGE == round8b ]]; then
    timeout 120 python3 -m pytest tests/platforms/cuda/test_engine_gpu.py -q -p no:cacheprovider --plinth-platform=cuda \
        -k "qwen3_06b or no_triton_compile" 2>&1 | tail -5 | tee "$OUT/e2e.txt"
    BENCH_TIMEOUT=215 bench t2 throughput --workload T2 --admission forecast
    BENCH_TIMEOUT=215 bench t2_greedy throughput --workload T2 --admission greedy
fi
if [[ $STAGE == round8c ]]; then
    timeout 200 python3 benchmarks/bench_attention_configs.py --llama-decode --json "$OUT/decode_launch.json" \
        >"$OUT/decode_launch.log" 2>&1 || { echo "decode sweep failed"; tail -20 "$OUT/decode_launch.log"; }
    bench t3 throughput --workload T3
    PLINTH_TRITON_DECODE_LAUNCH=4,2 bench t3_4w2s throughput --workload T3
    bench t3_again throughput --workload T3
fi
if [[ $STAGE == verify ]]; then
    timeout 450 python3 -m pytest tests/platforms/cuda -q -n 8 -p no:cacheprovider --plinth-platform=cuda \
        2>&1 | tail -15 | tee "$OUT/cuda_tests.txt"
    timeout 110 python3 -m pytest --pyargs plinth.testing.conformance -q -n 8 -p no:cacheprovider \
        --plinth-platform=cuda 2>&1 | tail -5 | tee "$OUT/conformance.txt"
fi
if [[ $STAGE == round8e ]]; then
    bench l1 latency --workload L1
    PLINTH_TRITON_DECODE_LAUNCH=64,4,2 bench l1_tile64 latency --workload L1
    bench t3 throughput --workload T3
fi
if [[ $STAGE == round8d ]]; then
    BENCH_TIMEOUT=215 bench t2 throughput --workload T2
    PLINTH_TRITON_DECODE_LAUNCH=64,4,2 BENCH_TIMEOUT=215 bench t2_tile64 throughput --workload T2
    BENCH_TIMEOUT=120 bench t1 throughput --workload T1
fi
if [[ $STAGE == round9a ]]; then
    timeout 200 python3 -m pytest tests/platforms/cuda/test_kernels_gpu.py tests/platforms/cuda/test_decode_order.py \
        -q -n 8 -p no:cacheprovider --plinth-platform=cuda -k "mixed or fresh or order" 2>&1 | tail -5 \
        | tee "$OUT/mixed_tests.txt"
    BENCH_TIMEOUT=120 bench t1 throughput --workload T1
    PLINTH_TRITON_MIXED_DECODE=0 BENCH_TIMEOUT=120 bench t1_no_mixed_decode throughput --workload T1
    BENCH_TIMEOUT=120 bench t1_384 throughput --workload T1 --max-num-seqs 384
    BENCH_TIMEOUT=200 bench t2 throughput --workload T2
fi
if [[ $STAGE == round9b ]]; then
    timeout 240 python3 -m pytest tests/platforms/cuda/test_kernels_gpu.py tests/platforms/cuda/test_decode_order.py \
        tests/platforms/cuda/test_engine_gpu.py -q -n 8 -p no:cacheprovider --plinth-platform=cuda \
        -k "mixed or order or no_triton_compile or qwen3_06b" 2>&1 | tail -5 | tee "$OUT/mixed_tests.txt"
    BENCH_TIMEOUT=120 bench t1 throughput --workload T1
    PLINTH_TRITON_MIXED_DECODE=0 BENCH_TIMEOUT=120 bench t1_no_mixed_decode throughput --workload T1
    BENCH_TIMEOUT=120 bench t1_384 throughput --workload T1 --max-num-seqs 384
    bench t3 throughput --workload T3
fi
if [[ $STAGE == round9c ]]; then
    timeout 120 python3 benchmarks/bench_gemm_prefill.py --json "$OUT/gemm_prefill.json" 2>&1 | grep "all four" \
        | tee "$OUT/gemm_prefill.txt"
    timeout 200 python3 -m pytest tests/platforms/cuda/test_kernels_gpu.py tests/platforms/cuda/test_attention_plan.py \
        tests/platforms/cuda/test_engine_gpu.py -q -n 8 -p no:cacheprovider --plinth-platform=cuda \
        -k "decode or mixed or no_triton_compile or qwen3_06b or graph" 2>&1 | tail -3 | tee "$OUT/tests.txt"
    for run in a b; do
        bench "t3_$run" throughput --workload T3
        PLINTH_TRITON_DECODE_LAUNCH=64,4,2 bench "t3_old_plan_$run" throughput --workload T3
    done
fi
if [[ $STAGE == round9d ]]; then
    timeout 240 python3 -m pytest tests/platforms/cuda/test_engine_gpu.py tests/platforms/cuda/test_attention_plan.py \
        tests/platforms/cuda/test_sampling_gpu.py tests/platforms/cuda/test_kernels_gpu.py -q -n 8 -p no:cacheprovider \
        --plinth-platform=cuda -k "engine or greedy or graph or compile or chunked or decode or wide or split or sampl" \
        2>&1 | tail -3 | tee "$OUT/tests.txt"
    timeout 90 python3 benchmarks/bench_attention_configs.py --small-splits --json "$OUT/small_splits.json" \
        >"$OUT/small_splits.log" 2>&1 || { echo "split sweep failed"; tail -5 "$OUT/small_splits.log"; }
    BENCH_TIMEOUT=120 bench t1 throughput --workload T1
    bench t3 throughput --workload T3
    bench l1 latency --workload L1
fi
echo; cat "$OUT/env.txt"
python3 benchmarks/bench_table.py "$OUT" | tee "$OUT/table.txt"
[[ -f $OUT/decode_step.json ]] && { echo "decode step (Qwen3-0.6B, batch 256):"; cat "$OUT/decode_step.json"; }
# the device tool brings back a few files per call: everything else travels in one archive
archive=$(mktemp -u /tmp/plinth_results.XXXXXX.tgz)
if tar -czf "$archive" -C "$OUT" . 2>/dev/null && mv "$archive" "$OUT/results.tgz"; then
    find "$OUT" -type f ! -name results.tgz ! -name table.txt ! -name stages.txt -delete
fi
