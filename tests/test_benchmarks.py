"""The benchmarks and the GPU checks' pieces run on the CPU and report what they say they do (no timing asserted):
the training benchmark end to end on a tiny preset; gpu_checks.sh's dry run, its step and stage machinery, the
kernel launcher it gives compute-sanitizer (under the emulator) and the PyTorch side of its training stage."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_train_reports_the_step_and_the_linear_gemms_of_one_shard(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_train.py"), "--preset", "tiny",
                           "--rounds", "1", "--iters", "2", "--warmup", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    frameworks = {r["framework"]: r for r in report["results"]}
    assert {"tensorlite", "tensorlite (1 shard: no data parallel)"} <= set(frameworks)
    assert all(r["ms_per_iter"] > 0 and r["iters"] == 2 for r in report["results"])
    numpy_gemms = report["linear_gemms"][0]
    # the tiny preset is too small to shard (tensorlite.parallel.MIN_SHARD_FLOPS): one shard of 8 rows of 32 tokens
    assert numpy_gemms["framework"] == "NumPy's BLAS" and numpy_gemms["rows"] == 8 * 32
    assert numpy_gemms["ms_per_iter"] > 0
    assert "Linear GEMMs alone, one shard's 256 rows" in proc.stdout
    assert "preset tiny on cpu (vocabulary 128)" in proc.stdout  # the trainer's: 65 characters, the escape, padding


def test_bench_train_end_to_end_runs_the_readme_command_and_nanogpts_loop(tmp_path):
    """--end-to-end: the README's command and nanoGPT's loop in PyTorch (when importable), each run to its end."""
    out = tmp_path / "e2e.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_train.py"), "--preset", "tiny", "--end-to-end", "3", "--rounds", "1", "--json",
                           str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = {r["framework"]: r for r in json.loads(out.read_text())["results"]}
    runs = ["tensorlite (the README command)"] + (["pytorch (nanoGPT's loop)"] if _has_torch() else [])
    assert sorted(results) == sorted(runs)
    assert all(results[r]["wall_s"] > 0 and 3 < results[r]["val_loss"] < 6 for r in runs)   # ln 128 = 4.85 at start
    assert "the README command's run of 3 iterations (preset tiny on cpu)" in proc.stdout


def _has_torch():
    import importlib.util
    return importlib.util.find_spec("torch") is not None


def test_bench_gpt2_reports_generation_and_fine_tuning_of_each_framework(tmp_path):
    out = tmp_path / "gpt2.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_gpt2.py"), "--shape", "tiny",
                           "--new-tokens", "8", "--batch-size", "2", "--block-size", "16", "--iters", "1",
                           "--warmup", "0", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert [r["task"] for r in results if r["framework"] == "tensorlite"] == ["generate", "finetune"]
    assert all(r["peak_mib"] > 0 and r.get("tokens_per_s", r.get("ms_per_step")) > 0 for r in results)
    assert "prompt 16 + 8 new tokens" in proc.stdout and "batch 2 x 16 tokens" in proc.stdout


def test_bench_bpe_learns_encodes_and_agrees_with_tiktoken():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_bpe.py"), "--chars", "20000",
                           "--vocab-size", "400", "--iters", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "learning 143 merges" in proc.stdout and "same ids" in proc.stdout


# ----------------------------------------------------------------------------- gpu_checks.sh and its Python pieces
GPU_CHECKS = os.path.join(ROOT, "benchmarks", "gpu_checks.sh")
ENV = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": ROOT}


def _sourced(commands, timeout=300):
    """Run bash commands after sourcing gpu_checks.sh (its functions, not its stages), from the repo root."""
    return subprocess.run(["bash", "-c", f'set -m; source "{GPU_CHECKS}"; {commands}'], env=ENV, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_gpu_checks_dry_run_lists_the_stages_within_seven_minutes_and_finds_all_they_use():
    proc = subprocess.run(["bash", GPU_CHECKS, "--dry-run"], env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    stages = [(m[1], int(m[2])) for m in (re.fullmatch(r"(\S+) (\d+) s", line) for line in lines) if m]
    name, total = stages.pop()                   # the last line: the total
    assert name == "total" and lines[-1] == f"total {total} s"
    assert [name for name, _ in stages] == ["smoke", "gpu-tests", "bench-train", "bench-attention", "train"]
    assert total == sum(limit for _, limit in stages) <= 7 * 60
    checks = [line for line in lines if line.startswith("  ")]
    assert all(line.startswith(("  ok: ", "  not here: ")) for line in checks), checks
    python = [line for line in checks if sys.executable in line]
    assert len(python) >= 11
    assert all("flags parse, --help works" in line or "tests collected" in line for line in python), python
    scripts = {word for line in python for word in line.split() if word.endswith(".py") and "/" in word}
    assert {"benchmarks/launch_each_kernel.py", "benchmarks/val_loss_vs_torch.py", "benchmarks/bench_train.py",
            "benchmarks/bench_attention.py", "examples/train_char_gpt.py"} <= scripts
    # stage names pick stages (to rerun what failed): the training stage still takes what is left of the total
    some = subprocess.run(["bash", GPU_CHECKS, "--dry-run", "bench-attention", "train"], env=ENV,
                          capture_output=True, text=True, timeout=600)
    picked = re.findall(r"^(\S+) (\d+) s$", some.stdout, re.M)
    assert some.returncode == 0 and picked == [("bench-attention", str(dict(stages)["bench-attention"])),
                                               ("train", str(total - dict(stages)["bench-attention"])),
                                               ("total", str(total))]
    wrong = subprocess.run(["bash", GPU_CHECKS, "no-such-stage"], env=ENV, capture_output=True, text=True)
    assert wrong.returncode == 2 and "usage:" in wrong.stderr


def test_the_dry_run_check_fails_on_a_misspelt_flag_a_missing_file_and_a_missing_program():
    proc = _sourced('DRY=1; check_command "$PYTHON" examples/train_char_gpt.py --eval-iterz 5; '
                    'check_command "$PYTHON" benchmarks/no_such_script.py; check_command no-such-program --flag; '
                    'check_command compute-sanitizer --tool memcheck "$PYTHON" benchmarks/launch_each_kernel.py; '
                    'echo "failed=$CHECKS_FAILED"')
    out = proc.stdout
    assert "FAILS:" in out and "unrecognized arguments: --eval-iterz 5" in out
    assert "MISSING: benchmarks/no_such_script.py" in out and "MISSING: no-such-program" in out
    assert "compute-sanitizer: not here" in out or "ok: compute-sanitizer" in out
    assert out.strip().endswith("failed=1")


def test_a_stage_stops_its_steps_at_their_limits_with_one_sigint_and_summarises_as_it_ends(tmp_path):
    """The machinery of the stages on the CPU: a trainer stopped at its limit saves a checkpoint (as the train
    stage relies on), bench_train stopped mid-way reports the runs that finished, a step that overruns or fails
    fails its stage, and each stage leaves its log and its summary lines at once."""
    run = tmp_path / "run"
    proc = _sourced(f'''OUT="{tmp_path}"; mkdir -p "$OUT/logs"; DEADLINE=$((SECONDS + 200)); GRACE=30
        planned() {{
            step --until-limit trainer 10 "$PYTHON" examples/train_char_gpt.py --preset tiny --max-iters 1000000 \\
                --eval-interval 500000 --out-dir "{run}" --no-progress --sample-tokens 0
            step --until-limit bench 5 "$PYTHON" benchmarks/bench_train.py --preset tiny --rounds 1000 --iters 2 \\
                --warmup 1
            details '^(interrupted|framework)'
        }}
        overrun() {{ step sleeper 5 sleep 60; step failing 30 "$PYTHON" -c 'raise SystemExit(3)'; }}
        stage planned 60 planned; stage overrun 30 overrun; echo "failed stages: $STAGES_FAILED"''')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = (tmp_path / "summary.txt").read_text().splitlines()
    assert re.fullmatch(r"planned: ok, in \d+ s of 60 \(logs/planned.log\)", summary[0]), summary
    assert any(line.startswith("    interrupted at iteration") for line in summary)
    assert any(line.startswith("    framework") for line in summary)
    assert re.match(r"overrun: FAILED: sleeper \(stopped at its 5 s limit, exit 130\), failing \(exit 3\)",
                    summary[-1]), summary
    assert "failed stages: 1" in proc.stdout
    planned_log = (tmp_path / "logs" / "planned.log").read_text()
    assert "Ctrl-C: finishing this step" in planned_log and "interrupted: the table holds" in planned_log
    iteration = json.loads(str(np.load(run / "ckpt.npz")["__meta__"]))["iter_num"]
    assert iteration > 0 and iteration % 500000      # saved at the interrupt, not at an evaluation


SANITIZER_STUB = """#!/usr/bin/env bash
case "$STUB" in
clean) echo "launched 21 kernels: adamw_step"; echo "========= ERROR SUMMARY: 0 errors"; exit 0 ;;
error) echo "========= Invalid __global__ write of size 4 bytes"; echo "========= ERROR SUMMARY: 1 error"; exit 3 ;;
refused) echo "========= Error: Device not supported"; echo "cupy...CUDARuntimeError: 999"; exit 1 ;;
esac
"""


def test_the_sanitizer_verdicts_clean_an_error_and_a_runtime_that_refuses_it(tmp_path):
    """gpu_checks.sh reads compute-sanitizer's outcome (here a stub that answers as each case would)."""
    stub = tmp_path / "bin" / "compute-sanitizer"
    stub.parent.mkdir()
    stub.write_text(SANITIZER_STUB)
    stub.chmod(0o755)
    verdicts = {}
    for case in ("clean", "error", "refused"):
        proc = _sourced(f'export PATH="{stub.parent}:$PATH" STUB={case}; LOG="{tmp_path}/log"; : >"$LOG"; '
                        'STAGE_END=$((SECONDS + 60)) DEADLINE=$((SECONDS + 60)) FAILED_STEPS=() DETAILS=() '
                        'SANITIZER_REFUSED=0; sanitize memcheck 30; '
                        'echo "${DETAILS[0]}|${FAILED_STEPS[*]}|$SANITIZER_REFUSED"')
        verdicts[case] = proc.stdout.strip().split("|")
    assert verdicts["clean"] == ["memcheck: clean, launched 21 kernels", "", "0"]
    assert verdicts["error"] == ["memcheck: ERROR SUMMARY: 1 error; the first: Invalid __global__ write of size 4 "
                                 "bytes", "memcheck (exit 3)", "0"]
    detail, failed, refused = verdicts["refused"]      # reported, and no failure of the stage
    assert detail == "memcheck: not run, this runtime refuses it (exit 1): Error: Device not supported"
    assert failed == "" and refused == "1"


def test_launch_each_kernel_launches_every_kernel_of_every_source_under_the_emulator():
    from tensorlite.cuda import emulator
    from tensorlite.cuda.sources import kernel_dir
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "launch_each_kernel.py"), "--device",
                           "cpu"], env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    launched = re.search(r"^launched (\d+) kernels: (.*)$", proc.stdout, re.M)
    every = {name for source in os.listdir(kernel_dir()) if source.endswith(".cu")
             for name, _ in emulator.build(source).kernels}
    assert set(launched[2].split()) == every and int(launched[1]) == len(every)
    assert proc.stdout.startswith("python ") and "no GPU" in proc.stdout.splitlines()[0]


def test_val_loss_vs_torch_tracks_a_tensorlite_run_from_the_same_weights_on_the_same_batches(tmp_path):
    """The tiny preset has no dropout, so PyTorch trained from the run's first weights on its batches must give
    the run's own val losses to float32 rounding: a check of the comparison (weights, batches, schedule,
    evaluation) and of tensorlite's training arithmetic at once."""
    pytest.importorskip("torch")
    run = tmp_path / "run"
    train = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "train_char_gpt.py"), "--preset", "tiny",
                            "--out-dir", str(run), "--no-progress", "--sample-tokens", "0"], env=ENV,
                           capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-2000:]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "val_loss_vs_torch.py"), "--run-dir",
                           str(run), "--device", "cpu", "--plot", str(tmp_path / "val.png")],
                          env={**ENV, "OMP_NUM_THREADS": "1"},   # a tiny model: PyTorch's thread pool only waits
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [(int(m[1]), float(m[2]), float(m[3])) for m in re.finditer(
        r"^iter (\d+): val loss tensorlite ([\d.]+), pytorch [\d.]+ \(difference (\S+)\)", proc.stdout, re.M)]
    assert [it for it, _, _ in rows] == [0, 30, 60]          # the tiny preset's evaluations
    assert all(abs(difference) < 1e-5 for _, _, difference in rows), rows
    assert rows[-1][1] < rows[0][1] - 0.5                    # and it did train
    assert (tmp_path / "val.png").stat().st_size > 0
    assert proc.stdout.splitlines()[-1].startswith("val loss at iteration 60: tensorlite")
