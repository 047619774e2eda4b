#!/usr/bin/env bash
# Every GPU measurement and test of the project, in two stages sized for a short device lease (each stage fits in
# one 10-minute command): results (logs, JSON, loss plot) land in $OUT (default ./out/gpu-checks).
#
#   bash benchmarks/gpu_checks.sh tests   # GPU tests, bench_train (tensorlite vs PyTorch eager fp32 and TF32,
#                                         # gpu preset) and bench_attention: ~5 minutes
#   bash benchmarks/gpu_checks.sh train   # the gpu preset's 5000 iterations (best val loss); stopped at 9 minutes
#                                         # with a checkpoint (SIGINT), and run again it resumes the same run
#
# Run from anywhere; needs numpy, cupy, pytest, hypothesis, tqdm, matplotlib (torch for the side-by-side).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${OUT:-out/gpu-checks}"
run_dir=out/gpu-preset        # inside the checkout (ignored by git), so a resumed call finds its checkpoint
mkdir -p "$out" "$run_dir"

step() {   # step NAME SECONDS COMMAND...: run with a time limit (SIGINT, so a training run saves), log, summarise
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*"
    timeout -s INT -k 10 "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc" | tee -a "$out/summary.txt"
    tail -n 8 "$out/$name.log"
}

case "${1:-}" in
tests)
    nvidia-smi >"$out/nvidia-smi.txt" 2>&1
    python -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" | tee "$out/versions.txt"
    step gpu-tests 230 python -m pytest -q -m gpu tests/
    step bench-train 240 python benchmarks/bench_train.py --device cuda --preset gpu --rounds 2 --iters 30 \
        --json "$out/bench_train.json"
    step bench-attention 90 python benchmarks/bench_attention.py --iters 20
    ;;
train)
    resume=()
    [ -f "$run_dir/ckpt.npz" ] && resume=(--resume)
    step train-gpu-preset 540 python examples/train_char_gpt.py --device cuda --preset gpu --out-dir "$run_dir" \
        --no-progress "${resume[@]}"
    cp "$run_dir"/*.png "$run_dir"/*.jsonl "$run_dir"/*.csv "$out"/ 2>/dev/null
    ;;
*)
    echo "usage: bash benchmarks/gpu_checks.sh tests|train" >&2
    exit 2
    ;;
esac
