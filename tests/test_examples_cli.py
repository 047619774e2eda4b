"""The command lines end to end (tiny preset, seconds) and the one-line errors users get instead of tracebacks."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "examples", "train_char_gpt.py")
SAMPLE = os.path.join(ROOT, "examples", "sample_char_gpt.py")


def run(script, *args):
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cli") / "run")
    result = run(TRAIN, "--preset", "tiny", "--out-dir", out, "--no-progress", "--sample-tokens", "40")
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_train_then_resume_then_sample(trained):
    out, stdout = trained
    assert "val loss" in stdout and "---- sample ----" in stdout
    assert {"ckpt.npz", "log.jsonl", "loss.png"} <= set(os.listdir(out))
    resumed = run(TRAIN, "--preset", "tiny", "--out-dir", out, "--resume", "--max-iters", "70", "--no-progress",
                  "--lr-decay-iters", "60", "--sample-tokens", "0")
    assert resumed.returncode == 0, resumed.stderr
    assert "finished at iteration 70" in resumed.stdout
    sample = run(SAMPLE, "--out-dir", out, "--start", "ROMEO:", "--max-new-tokens", "30", "--num-samples", "2")
    assert sample.returncode == 0, sample.stderr
    assert sample.stdout.count("ROMEO:") == 2


@pytest.mark.parametrize("args,message", [
    (["--device", "tpu"], "invalid choice: 'tpu'"),
    (["--max-iters", "-5"], "max_iters must be positive"),
    (["--n-embd", "30", "--n-head", "4"], "divisible by n_head"),
    (["--dropout", "1.5"], "dropout must be in [0, 1)"),
    (["--data", "/nonexistent.txt"], "data file not found"),
])
def test_bad_training_flags_are_one_line_errors(tmp_path, args, message):
    result = run(TRAIN, "--preset", "tiny", "--out-dir", str(tmp_path), *args)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_cuda_without_cupy_or_gpu_is_a_clear_error(tmp_path):
    import tensorlite as tl
    if tl.cuda_available():
        pytest.skip("a GPU is present")
    result = run(TRAIN, "--preset", "tiny", "--device", "cuda", "--out-dir", str(tmp_path))
    assert result.returncode == 2 and "device 'cuda' needs" in result.stderr and "Traceback" not in result.stderr


def test_resume_from_another_config_or_missing_checkpoint(trained, tmp_path):
    out, _ = trained
    other = run(TRAIN, "--preset", "tiny", "--out-dir", out, "--resume", "--n-embd", "64")
    assert other.returncode == 2 and "another model config" in other.stderr
    byte = run(TRAIN, "--preset", "tiny", "--out-dir", out, "--resume", "--tokenizer", "byte")
    assert byte.returncode == 2 and "another vocabulary" in byte.stderr and "Traceback" not in byte.stderr
    other_text = tmp_path / "other.txt"
    other_text.write_text("0123456789 " * 200, encoding="utf-8")
    chars = run(TRAIN, "--preset", "tiny", "--out-dir", out, "--resume", "--data", str(other_text))
    assert chars.returncode == 2 and "another vocabulary" in chars.stderr
    missing = run(TRAIN, "--preset", "tiny", "--out-dir", str(tmp_path / "empty"), "--resume")
    assert missing.returncode == 2 and "no checkpoint" in missing.stderr


@pytest.mark.parametrize("args,message", [
    (["--temperature", "0"], "temperature must be > 0"),
    (["--top-k", "0"], "top_k must be >= 1"),
    (["--top-p", "1.5"], "top_p must be in (0, 1]"),
    (["--start", ""], "--start must not be empty"),
    (["--beam", "0"], "beam_width must be >= 1"),
])
def test_bad_sampling_flags(trained, args, message):
    out, _ = trained
    result = run(SAMPLE, "--out-dir", out, *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_mlp_example_learns_the_spirals():
    result = run(os.path.join(ROOT, "examples", "train_mlp.py"))          # 1000 steps, about a second
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]            # "step 1000  loss 0.xxxx  accuracy yy.y%"
    assert float(last.split("loss")[1].split()[0]) < 0.2 and last.endswith("%")


def test_greedy_top_p_and_beam_sampling(trained):
    out, _ = trained
    common = ("--out-dir", out, "--start", "ROMEO:", "--max-new-tokens", "12")
    greedy = [run(SAMPLE, *common, "--greedy", "--seed", seed) for seed in ("1", "2")]
    assert greedy[0].returncode == 0, greedy[0].stderr
    assert greedy[0].stdout == greedy[1].stdout          # greedy ignores the seed
    nucleus = run(SAMPLE, *common, "--top-p", "0.9")
    assert nucleus.returncode == 0 and "ROMEO:" in nucleus.stdout, nucleus.stderr
    beam = run(SAMPLE, *common, "--beam", "3")
    assert beam.returncode == 0, beam.stderr
    assert beam.stdout.count("(log-probability") == 3 and beam.stdout.count("ROMEO:") == 3


def test_no_tf32_flag_reaches_the_training_config(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "examples"))
    import train_char_gpt
    assert train_char_gpt.config_from_args(train_char_gpt.parse_args(["--no-tf32"])).tf32 is False
    assert train_char_gpt.config_from_args(train_char_gpt.parse_args([])).tf32 is True
