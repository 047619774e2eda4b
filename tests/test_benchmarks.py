"""The training benchmark runs end to end on a tiny preset and reports what it says it does (no timing asserted)."""
import json
import os
import subprocess
import sys

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
