#!/usr/bin/env bash
# The GPU measurements of the paper-scale issue in one run, for a session that is lent a GPU (about
# 15 minutes of device time in all): bf16 training MFU of Qwen3 and GAMER at paper size and beam
# search users/s (`gamer-bench perf gamer --device cuda`), then rehearsals of Table 2's paper profile
# on RetailRocket for gamer_sid, sasrec and mbgen_sid (`run --max-steps`: the seconds of 20 steps,
# to project full runs). Each step has its own time limit and a failing step does not stop the
# others. Run from the repository root; results go to $OUT (or /tmp/gpu-check).
#   PEAK_TFLOPS: the GPU's dense bf16 peak the MFU is against (H100 and H200: 989).
# The machine needs torch with CUDA and the project's dependencies (it has no network to install).
set -uo pipefail
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
export PYTHONPATH=$PWD GAMER_BENCH_DATA=${GAMER_BENCH_DATA:-$PWD/../shared/data}
step() {  # step NAME SECONDS COMMAND...: run it, keep its output, say how it ended
    local name=$1 limit=$2
    shift 2
    echo "== $name" | tee -a "$out/summary.txt"
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    echo "   exit $? after $SECONDS s in all" | tee -a "$out/summary.txt"
    tail -n 12 "$out/$name.txt"
}
step gpu 30 nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
step torch 60 python -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))"
step perf-gamer 300 python -m benchmark.cli perf gamer --device cuda --peak-tflops "${PEAK_TFLOPS:-989}" --repeat 3
for model in gamer_sid sasrec mbgen_sid; do
    step "rehearsal-$model" 150 python -m benchmark.cli run --table 2 --dataset retailrocket --models "$model" \
        --profile paper --max-steps 20
done
