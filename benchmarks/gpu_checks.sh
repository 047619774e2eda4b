#!/usr/bin/env bash
# Every GPU check of the project in one command sized for a short device lease: at most TOTAL seconds (7 minutes),
# stages in priority order, each under its own time limit. Each stage writes its log and its lines of summary.txt
# in $OUT as soon as it ends, so a run cut off early still returns what it did.
#
#   bash benchmarks/gpu_checks.sh             # on the GPU machine; results in $OUT (default out/gpu-checks)
#   bash benchmarks/gpu_checks.sh --dry-run   # the stages with their time limits, and a check (no GPU needed)
#                                             # that every file, command and flag they use exists
#   bash benchmarks/gpu_checks.sh gpu-tests train   # only these stages (to rerun what failed); train still
#                                                   # gets what is left of the 7 minutes
# Stages:
#   smoke            nvidia-smi; versions and each kernel launched once (NVRTC compiles each source here); the gpu
#                    preset for 25 iterations, a checkpoint, a resume to 50, a sample from the checkpoint
#   gpu-tests        the kernel tests, then the other GPU tests; compute-sanitizer memcheck and racecheck over
#                    benchmarks/launch_each_kernel.py (a runtime that refuses the sanitizer is reported, not fatal)
#   bench-train      bench_train.py: tensorlite vs PyTorch eager fp32 and TF32 on the gpu preset, one framework
#                    after the other on the same batches, with the allocators' reserved-memory peaks
#   bench-attention  bench_attention.py: the flash kernels vs the reference path vs PyTorch SDPA, fwd and bwd
#   train            the gpu preset for the time left (SIGINT at its limit: it saves a checkpoint), then
#                    val_loss_vs_torch.py: PyTorch's model from the same weights, on the same batches, scored at
#                    the same iterations
# $OUT receives at most 8 files, as the device tool brings back: summary.txt, logs/<stage>.log (5),
# bench_train.json and val_loss.png. The runs' out-dirs (checkpoints) stay in out/gpu-checks-runs.
# Needs python3 with numpy, cupy, pytest, hypothesis, tqdm, matplotlib and torch (PYTHON=... picks another).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
OUT=${OUT:-out/gpu-checks}
RUNS=out/gpu-checks-runs
TOTAL=420                     # seconds for the whole command: 7 of a 15-minute lease that also starts the machine
GRACE=15                      # seconds from a step's SIGINT to its SIGKILL (the trainer finishes a step and saves)
SMOKE=90                      # each stage's time limit in seconds; the training stage gets what the others leave
KERNEL_TESTS=60 OTHER_GPU_TESTS=45 MEMCHECK=35 RACECHECK=35
GPU_TESTS=$((KERNEL_TESTS + OTHER_GPU_TESTS + MEMCHECK + RACECHECK))
BENCH_TRAIN=60
BENCH_ATTENTION=25
GPU_ONLY=(nvidia-smi compute-sanitizer)   # the GPU machine's tools: a dry run elsewhere reports them "not here"
DRY=0 CHECKS_FAILED=0 STAGES_FAILED=0 STOP=0 STAGE_END=0 RC=0 DRY_TOTAL=0
declare -A HELP_CHECKED=()
DEADLINE=$((SECONDS + TOTAL))

# ------------------------------------------------------------------------------------------------ the dry run
# check_command CMD...: its program exists (a GPU-only tool: "not here"), every repo path among its words
# exists, a Python script's flags parse with the script's own parser and its --help works, and pytest collects
# its tests.
check_command() {
    local words=("$@") i=0 verdict status note=""
    while [ "$i" -lt "${#words[@]}" ] && [ "${words[$i]}" != "$PYTHON" ]; do i=$((i + 1)); done
    if ! command -v "$1" >/dev/null; then
        if [[ " ${GPU_ONLY[*]} " != *" $1 "* ]]; then
            echo "  MISSING: $1: $*"
            CHECKS_FAILED=1
            return
        fi
        if [ "$i" -ge "${#words[@]}" ]; then
            echo "  not here: $* (a tool of the GPU machine)"
            return
        fi
        note="$1: not here, a tool of the GPU machine; "
    fi
    for word in "$@"; do
        if [[ $word =~ ^(benchmarks|examples|tests|kernels|data|gpt|tensorlite)/ ]] && [ ! -e "$word" ]; then
            echo "  MISSING: $word: $*"
            CHECKS_FAILED=1
            return
        fi
    done
    local python=("${words[@]:$i}")
    if [ "${python[1]:-}" = "-m" ] && [ "${python[2]:-}" = "pytest" ]; then
        verdict=$("$PYTHON" -m pytest --collect-only "${python[@]:3}" 2>&1 | grep -E "collected|rror" | tail -n 1)
        status=$?
    elif [[ ${python[1]:-} == *.py ]]; then
        verdict=$("$PYTHON" benchmarks/parse_flags.py "${python[@]:1}" 2>&1 | tail -n 1)
        status=$?
        if [ "$status" = 0 ] && [ -z "${HELP_CHECKED[${python[1]}]:-}" ]; then    # once per script
            HELP_CHECKED[${python[1]}]=1
            verdict=$("$PYTHON" "${python[1]}" --help 2>&1 | tail -n 1)
            status=$?
        fi
        [ "$status" = 0 ] && verdict="flags parse, --help works"
    else
        echo "  ok: $*"
        return
    fi
    if [ "$status" = 0 ]; then
        echo "  ok: $* (${note}$verdict)"
    else
        echo "  FAILS: $* ($verdict)"
        CHECKS_FAILED=1
    fi
}

# ---------------------------------------------------------------------------------------------- running steps
# step [--until-limit] NAME CAP CMD...: CMD, its output appended to the stage's log, for at most CAP seconds, never
# past its stage's end or the deadline. CMD runs in its own process group (set -m), so that at the limit each of
# its processes gets exactly one SIGINT (the trainer finishes its step and saves, pytest reports what ran), and
# SIGKILL GRACE seconds later. --until-limit: being stopped at the limit is the plan (exit 0 or 130 is success).
# Sets RC and TIMED_OUT; a failed step joins FAILED_STEPS. A dry run checks CMD instead.
step() {
    local until_limit=0
    [ "$1" = "--until-limit" ] && until_limit=1 && shift
    local name=$1 limit=$2
    shift 2
    if [ "$DRY" = 1 ]; then
        check_command "$@"
        return
    fi
    [ $((STAGE_END - SECONDS)) -lt "$limit" ] && limit=$((STAGE_END - SECONDS))
    TIMED_OUT=0
    if [ "$limit" -lt 5 ]; then
        echo "== $name: skipped, no time left" >>"$LOG"
        FAILED_STEPS+=("$name (no time left)")
        RC=1
        return
    fi
    echo "== $name (at most $limit s): $*" >>"$LOG"
    local start=$SECONDS kill_at=""
    "$@" </dev/null >>"$LOG" 2>&1 &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [ -z "$kill_at" ] && { [ $((SECONDS - start)) -ge "$limit" ] || [ "$STOP" = 1 ]; }; then
            TIMED_OUT=1
            kill -INT -- "-$pid" 2>/dev/null
            kill_at=$((SECONDS + GRACE))
        elif [ -n "$kill_at" ] && [ "$SECONDS" -ge "$kill_at" ]; then
            kill -KILL -- "-$pid" 2>/dev/null
        fi
        sleep 0.2
    done
    wait "$pid"
    RC=$?
    kill -KILL -- "-$pid" 2>/dev/null          # whatever of its process group is still running
    echo "== $name: exit $RC after $((SECONDS - start)) s" >>"$LOG"
    if [ "$TIMED_OUT" = 1 ] && [ "$until_limit" = 1 ] && { [ "$RC" = 0 ] || [ "$RC" = 130 ]; }; then
        return
    elif [ "$TIMED_OUT" = 1 ]; then
        FAILED_STEPS+=("$name (stopped at its $limit s limit, exit $RC)")
    elif [ "$RC" != 0 ]; then
        FAILED_STEPS+=("$name (exit $RC)")
    fi
}

# fresh DIR: an empty run directory (a real run only)
fresh() {
    [ "$DRY" = 1 ] || rm -rf "$1"
}

# stage NAME LIMIT FUNCTION: the dry run prints "NAME LIMIT s" and checks the stage's commands; a real run runs
# them into $OUT/logs/NAME.log and writes the stage's line of summary.txt (with FUNCTION's details) when it ends.
stage() {
    local name=$1 limit=$2 fn=$3
    if [ "$DRY" = 1 ]; then
        echo "$name $limit s"
        DRY_TOTAL=$((DRY_TOTAL + limit))
        "$fn"
        return
    fi
    [ $((DEADLINE - GRACE - SECONDS)) -lt "$limit" ] && limit=$((DEADLINE - GRACE - SECONDS))
    LOG="$OUT/logs/$name.log" FAILED_STEPS=() DETAILS=()
    : >"$LOG"
    local start=$SECONDS verdict="ok"
    STAGE_END=$((SECONDS + limit))
    echo "== $name: at most $limit s ($((DEADLINE - SECONDS)) s left of $TOTAL)"
    "$fn"
    if [ "${#FAILED_STEPS[@]}" -gt 0 ]; then
        verdict="FAILED: ${FAILED_STEPS[0]}"
        for failed in "${FAILED_STEPS[@]:1}"; do verdict+=", $failed"; done
        STAGES_FAILED=$((STAGES_FAILED + 1))
    fi
    {
        echo "$name: $verdict, in $((SECONDS - start)) s of $limit (logs/$name.log)"
        for line in "${DETAILS[@]}"; do echo "    $line"; done
    } | tee -a "$OUT/summary.txt"
    [ "$verdict" = ok ] || tail -n 6 "$LOG"
    if [ "$STOP" = 1 ]; then
        echo "interrupted (SIGINT or SIGTERM): the stages after $name did not run" | tee -a "$OUT/summary.txt"
        exit 130
    fi
}

# details PATTERN [MAX]: the log's lines matching PATTERN (extended regexp), at most MAX (8), for the summary
details() {
    [ "$DRY" = 1 ] && return
    local line
    while IFS= read -r line; do DETAILS+=("$line"); done < <(grep -E -- "$1" "$LOG" | head -n "${2:-8}")
}

# ----------------------------------------------------------------------------------------------------- stages
smoke() {
    step nvidia-smi 15 nvidia-smi
    step kernels "$SMOKE" "$PYTHON" benchmarks/launch_each_kernel.py
    fresh "$RUNS/smoke"
    local run=(--device cuda --preset gpu --out-dir "$RUNS/smoke" --eval-interval 25 --eval-iters 5
               --lr-decay-iters 50 --no-progress)
    step train-25 "$SMOKE" "$PYTHON" examples/train_char_gpt.py "${run[@]}" --max-iters 25 --sample-tokens 0
    step resume-to-50 "$SMOKE" "$PYTHON" examples/train_char_gpt.py "${run[@]}" --max-iters 50 --resume \
        --sample-tokens 100
    step sample "$SMOKE" "$PYTHON" examples/sample_char_gpt.py --device cuda --out-dir "$RUNS/smoke" \
        --max-new-tokens 100
    details '^python [0-9]|^launched [0-9]+ kernels|^(finished|interrupted) at iteration|^error'
}

# sanitize TOOL CAP: compute-sanitizer TOOL over launch_each_kernel.py (exit 3 if it finds an error), and its
# verdict as a detail line: clean, the first error, or that the runtime refuses the sanitizer (as gVisor's does:
# the program ends at its first CUDA call), which is reported but fails nothing
sanitize() {
    local tool=$1 cap=$2 from
    [ "$DRY" = 1 ] || from=$(wc -l <"$LOG")
    step "$tool" "$cap" compute-sanitizer --tool "$tool" --error-exitcode 3 "$PYTHON" benchmarks/launch_each_kernel.py
    [ "$DRY" = 1 ] && return
    local out
    out=$(tail -n +"$((from + 1))" "$LOG")
    if [ "$RC" = 3 ]; then
        DETAILS+=("$tool: $(grep -E -m1 'SUMMARY' <<<"$out" | sed 's/^=* *//'); the first: $(
            grep -E -m1 '^=+ +[A-Z]' <<<"$out" | sed 's/^=* *//')")
    elif [ "$RC" = 0 ] && grep -q "^launched [0-9]* kernels" <<<"$out"; then
        DETAILS+=("$tool: clean, $(grep -o '^launched [0-9]* kernels' <<<"$out")")
    elif [ "$TIMED_OUT" = 1 ]; then
        DETAILS+=("$tool: stopped at its time limit (the log shows how far it got)")
    else                       # the same launches ran in the smoke stage: this is the sanitizer's doing
        SANITIZER_REFUSED=1
        unset 'FAILED_STEPS[-1]'
        DETAILS+=("$tool: not run, this runtime refuses it (exit $RC): $(
            grep -m1 -E '^=+ +[A-Z]' <<<"$out" | sed 's/^=* *//' || tail -n 2 <<<"$out" | head -n 1)")
    fi
}

# gpu_test NAME CAP PYTEST-ARGS...: one pytest run of GPU tests; a skipped test fails it (on the GPU machine
# nothing may skip: a GPU test that skips there proved nothing)
gpu_test() {
    local name=$1 cap=$2
    shift 2
    step "$name" "$cap" "$PYTHON" -m pytest -q -rs -m gpu -p no:cacheprovider --durations=5 "$@"
    [ "$DRY" = 1 ] && return
    local skipped
    skipped=$(grep -E '^[0-9]+ (passed|failed|skipped|error).* in [0-9.]+s' "$LOG" | tail -n 1 | grep -oE '[0-9]+ skipped')
    [ -z "$skipped" ] || FAILED_STEPS+=("$name ($skipped: $(grep -m1 '^SKIPPED' "$LOG" | sed 's/^[^:]*:[0-9]*: //'))")
}

gpu_tests() {
    gpu_test kernel-tests "$KERNEL_TESTS" tests/test_kernels_gpu.py
    gpu_test other-gpu-tests "$OTHER_GPU_TESTS" --ignore=tests/test_kernels_gpu.py tests
    details '^[0-9]+ (passed|failed|error|skipped|deselected)|^(FAILED|ERROR) |KeyboardInterrupt|no tests ran' 12
    SANITIZER_REFUSED=0
    if [ "$DRY" = 0 ] && ! command -v compute-sanitizer >/dev/null; then
        DETAILS+=("memcheck, racecheck: not run, compute-sanitizer is not installed here")
        return
    fi
    sanitize memcheck "$MEMCHECK"
    if [ "$SANITIZER_REFUSED" = 1 ]; then
        DETAILS+=("racecheck: not run, for the same reason")
    else
        sanitize racecheck "$RACECHECK"
    fi
}

bench_train() {
    step bench-train "$BENCH_TRAIN" "$PYTHON" benchmarks/bench_train.py --device cuda --preset gpu --rounds 1 \
        --iters 20 --warmup 5 --json "$OUT/bench_train.json"
    details '^(framework|tensorlite|pytorch) |^failed|^interrupted'
}

bench_attention() {
    step bench-attention "$BENCH_ATTENTION" "$PYTHON" benchmarks/bench_attention.py --iters 10
    details '^ *(T|[0-9]+) '
}

train() {
    fresh "$RUNS/train"
    step --until-limit tensorlite $(((STAGE_END - SECONDS) * 3 / 5)) "$PYTHON" examples/train_char_gpt.py \
        --device cuda --preset gpu --out-dir "$RUNS/train" --eval-iters 50 --no-progress --sample-tokens 0
    if [ "$DRY" = 1 ] || [ -f "$RUNS/train/ckpt.npz" ]; then
        step --until-limit pytorch "$TOTAL" "$PYTHON" benchmarks/val_loss_vs_torch.py --run-dir "$RUNS/train" \
            --plot "$OUT/val_loss.png"                 # (a limit of TOTAL: the rest of the stage)
    else
        FAILED_STEPS+=("pytorch (no checkpoint to start from)")
    fi
    details '^(finished|interrupted) at iteration|^ms/iter|^val loss at iteration|^no evaluation|^error'
}

# ------------------------------------------------------------------------------------------------------- main
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0   # sourced (tests/test_benchmarks.py): the functions only
STAGES=(smoke gpu-tests bench-train bench-attention train)
SELECTED=()
for arg in "$@"; do
    if [ "$arg" = --dry-run ]; then
        DRY=1
    elif [[ " ${STAGES[*]} " == *" $arg "* ]]; then
        SELECTED+=("$arg")
    else
        echo "usage: bash benchmarks/gpu_checks.sh [--dry-run] [STAGE...]   (stages: ${STAGES[*]}; default: all)" >&2
        exit 2
    fi
done
[ "${#SELECTED[@]}" -gt 0 ] || SELECTED=("${STAGES[@]}")
selected() { [[ " ${SELECTED[*]} " == *" $1 "* ]]; }
if [ "$DRY" = 0 ]; then
    set -m                                 # each step in its own process group (see step)
    trap 'STOP=1' INT TERM                 # Ctrl-C: the running step gets its SIGINT, then the command ends
    mkdir -p "$OUT/logs" "$RUNS"
    rm -f "$OUT/summary.txt"
    echo "gpu_checks.sh at commit $(git rev-parse --short HEAD 2>/dev/null || echo "(no git here)") on $(uname -n)," \
        "$(date -u '+%Y-%m-%d %H:%M UTC'), at most $TOTAL s" >"$OUT/summary.txt"
fi
selected smoke && stage smoke "$SMOKE" smoke
selected gpu-tests && stage gpu-tests "$GPU_TESTS" gpu_tests
selected bench-train && stage bench-train "$BENCH_TRAIN" bench_train
selected bench-attention && stage bench-attention "$BENCH_ATTENTION" bench_attention
if [ "$DRY" = 1 ]; then
    selected train && stage train $((TOTAL - DRY_TOTAL)) train     # at least: plus what the others leave unused
    echo "total $DRY_TOTAL s"
    exit "$CHECKS_FAILED"
fi
selected train && stage train $((DEADLINE - GRACE - SECONDS)) train
echo "total: $SECONDS s; $STAGES_FAILED stage(s) failed" | tee -a "$OUT/summary.txt"
files=$(find "$OUT" -type f | wc -l)
[ "$files" -le 8 ] || echo "warning: $OUT holds $files files; the device tool brings back 8" >&2
[ "$STAGES_FAILED" = 0 ]
