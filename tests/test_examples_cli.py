"""The command lines end to end (tiny preset, seconds) and the one-line errors users get instead of tracebacks."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from gpt.checkpoint import read_meta

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
    (["--max-iters", "-5"], "--max-iters must be >= 0, got -5"),
    (["--n-embd", "30", "--n-head", "4"], "divisible by n_head"),
    (["--dropout", "1.5"], "--dropout must be in [0, 1), got 1.5"),
    (["--data", "/nonexistent.txt"], "data file not found"),
    (["--data", ROOT], "is a directory: give a UTF-8 text file"),
    (["--data", os.devnull], "is not a regular file"),
    (["--beta1", "1.0"], "--beta1 must be in [0, 1), got 1.0"),   # every value: test_gpt_train, in-process
    (["--lr", "inf"], "--learning-rate must be a finite number, got inf"),
    (["--weight-decay", "nan"], "--weight-decay must be a finite number, got nan"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--resume", "--overwrite"], "not allowed with argument"),
    (["--batch-size", "1000000000000"], "out of memory at iteration 0 with micro-batches of 1,000,000,000,000 x 32"),
])
def test_bad_training_flags_are_one_line_errors(tmp_path, args, message):
    out = tmp_path / "run"
    result = run(TRAIN, "--preset", "tiny", "--out-dir", str(out), *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "ckpt.npz").exists()   # a bad value is refused before anything is written


def test_max_iters_0_only_evaluates_and_saves(tmp_path):
    out = tmp_path / "run"
    result = run(TRAIN, "--preset", "tiny", "--out-dir", str(out), "--max-iters", "0", "--no-progress",
                 "--sample-tokens", "0")
    assert result.returncode == 0, result.stderr
    assert "finished at iteration 0: val loss" in result.stdout
    assert read_meta(str(out / "ckpt.npz"))["iter_num"] == 0


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
    # Tiny Shakespeare's only digit is 3: the other nine are what the checkpoint's vocabulary lacks
    assert f"9 character(s) only in {other_text}: '0', '1', '2', '4', '5', '6', '7', '8', '9'" in chars.stderr
    assert "character(s) only in the checkpoint's vocabulary: '\\n', '!', '$'" in chars.stderr
    assert "a char tokenizer there, byte here" in byte.stderr
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


def start(*args):
    """The training script running in the background, logging every iteration and evaluating only at 0."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.Popen([sys.executable, TRAIN, "--preset", "tiny", "--max-iters", "100000", "--lr-decay-iters",
                             "60", "--eval-interval", "100000", "--log-interval", "1", "--no-progress",
                             "--sample-tokens", "0", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def log_records(out):
    path = os.path.join(out, "log.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]   # a line being written is not one yet


def wait_until_logged(process, out, iteration, timeout=120):
    deadline = time.time() + timeout
    while not any(r.get("iter", 0) >= iteration and "loss" in r for r in log_records(out)):
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "the run logged nothing"
        time.sleep(0.05)


def test_an_out_dir_with_a_checkpoint_needs_resume_or_overwrite(trained, tmp_path):
    out = str(tmp_path / "run")
    shutil.copytree(trained[0], out)
    ckpt, before = os.path.join(out, "ckpt.npz"), open(os.path.join(trained[0], "ckpt.npz"), "rb").read()
    old_log = open(os.path.join(out, "log.jsonl")).read()
    iteration = read_meta(ckpt)["iter_num"]
    again = run(TRAIN, "--preset", "tiny", "--out-dir", out, "--no-progress")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.strip() == (f"error: {ckpt} holds iteration {iteration} of another run: --resume to continue "
                                    "it, --overwrite to start over, or another --out-dir")
    assert open(ckpt, "rb").read() == before and open(os.path.join(out, "log.jsonl")).read() == old_log
    fresh = run(TRAIN, "--preset", "tiny", "--out-dir", out, "--overwrite", "--max-iters", "10", "--eval-interval",
                "5", "--no-progress", "--sample-tokens", "0")
    assert fresh.returncode == 0, fresh.stderr
    assert read_meta(ckpt)["iter_num"] == 10
    assert [r["iter"] for r in log_records(out) if "val_loss" in r] == [0, 5, 10]   # a fresh log: this run's only


def test_one_trainer_per_out_dir_and_kill_9_leaves_no_stale_lock_nor_a_doubled_log(tmp_path):
    out = str(tmp_path / "run")
    first = start("--out-dir", out)
    try:
        wait_until_logged(first, out, 5)   # saved at iteration 0, logged 1..5 and on
        for args in ([], ["--resume"]):
            second = run(TRAIN, "--preset", "tiny", "--out-dir", out, "--no-progress", *args)
            assert second.returncode == 2 and "Traceback" not in second.stderr
            assert f"another trainer (process {first.pid}) is using out-dir {out}" in second.stderr
    finally:
        first.kill()   # SIGKILL: no chance to save or to release anything
        first.communicate()
    assert read_meta(os.path.join(out, "ckpt.npz"))["iter_num"] == 0
    assert max(r["iter"] for r in log_records(out)) >= 5   # the dead run logged past its checkpoint
    resumed = run(TRAIN, "--out-dir", out, "--resume", "--max-iters", "8", "--lr-decay-iters", "60",
                  "--no-progress", "--sample-tokens", "0")
    assert resumed.returncode == 0, resumed.stderr   # the OS released the dead run's lock
    records = log_records(out)
    assert [r["iter"] for r in records if "loss" in r] == list(range(1, 9))   # each iteration once
    assert [r["iter"] for r in records if "val_loss" in r] == [0, 8]


def test_ctrl_c_saves_exits_130_and_says_which_iteration_the_loss_is_from(tmp_path):
    out = str(tmp_path / "run")
    trainer = start("--out-dir", out)
    wait_until_logged(trainer, out, 3)
    trainer.send_signal(signal.SIGINT)
    stdout, stderr = trainer.communicate(timeout=120)
    assert trainer.returncode == 130, stderr
    saved = read_meta(os.path.join(out, "ckpt.npz"))["iter_num"]
    assert saved >= 3
    last = stdout.strip().splitlines()[-1]
    assert last.startswith(f"interrupted at iteration {saved}: val loss ") and " at iteration 0, " in last


def test_divergence_exits_3(tmp_path):
    result = run(TRAIN, "--preset", "tiny", "--out-dir", str(tmp_path / "run"), "--lr", "1e30", "--warmup-iters", "0",
                 "--max-iters", "20", "--no-progress")
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "error: loss is nan" in result.stderr
    assert f"{tmp_path / 'run' / 'ckpt.npz'}, iteration 0) is intact" in result.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_dead_shard_worker_is_one_line_and_exit_1(tmp_path):
    out = str(tmp_path / "run")
    trainer = start("--out-dir", out, "--cpu-shards", "2")
    wait_until_logged(trainer, out, 2)   # the workers start at the first step
    workers = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if _parent(pid) == trainer.pid]
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = trainer.communicate(timeout=120)
    assert trainer.returncode == 1 and "Traceback" not in stderr, stderr
    assert "exited unexpectedly (killed by SIGKILL: out of memory?)" in stderr
    assert f"the last good checkpoint ({out}/ckpt.npz, iteration 0) is intact: --resume continues it" in stderr


def _parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None


def test_resume_runs_with_the_new_flags_and_says_what_changed(trained, tmp_path):
    out = str(tmp_path / "run")
    shutil.copytree(trained[0], out)
    ckpt = os.path.join(out, "ckpt.npz")
    iteration = read_meta(ckpt)["iter_num"]
    resumed = run(TRAIN, "--out-dir", out, "--resume", "--max-iters", str(iteration + 2), "--weight-decay", "0.2",
                  "--beta1", "0.8", "--beta2", "0.95", "--no-progress", "--sample-tokens", "0")   # no --preset:
    assert resumed.returncode == 0, resumed.stderr          # the checkpoint's own values (tiny) for the rest
    assert (f"resuming at iteration {iteration}; changed from the checkpoint: --max-iters {iteration} -> "
            f"{iteration + 2}, --lr-decay-iters 60 -> {iteration + 2}, --weight-decay 0.1 -> 0.2, --beta1 0.9 -> "
            "0.8, --beta2 0.99 -> 0.95") in resumed.stdout
    meta = read_meta(ckpt)
    assert meta["iter_num"] == iteration + 2
    assert {k: meta["train_config"][k] for k in ("weight_decay", "beta1", "beta2", "n_embd")} == \
        {"weight_decay": 0.2, "beta1": 0.8, "beta2": 0.95, "n_embd": 32}
    groups = meta["optimizer"]["param_groups"]               # what the optimizer ran with
    assert [g["betas"] for g in groups] == [[0.8, 0.95]] * 2 and [g["weight_decay"] for g in groups] == [0.2, 0.0]
    same = run(TRAIN, "--out-dir", out, "--resume", "--no-progress", "--sample-tokens", "0")
    assert same.returncode == 0 and "nothing changed from the checkpoint" in same.stdout, same.stderr


def test_out_dirs_that_cannot_hold_a_run(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("not a directory")
    for out, message in [(a_file, f"out-dir {a_file} is a file, not a directory"),
                         (a_file / "run", f"out-dir {a_file / 'run'}: a part of that path is a file")]:
        result = run(TRAIN, "--preset", "tiny", "--out-dir", str(out), "--no-progress")
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "ckpt.npz").write_bytes(os.urandom(4096))
    resumed = run(TRAIN, "--preset", "tiny", "--out-dir", str(garbage), "--resume", "--no-progress")
    assert resumed.returncode == 2 and "Traceback" not in resumed.stderr
    assert "is corrupt or not a tensorlite checkpoint (not a .npz archive)" in resumed.stderr
    assert "allow_pickle" not in resumed.stderr
    fresh = run(TRAIN, "--preset", "tiny", "--out-dir", str(garbage), "--no-progress")
    assert fresh.returncode == 2 and "ckpt.npz holds an unreadable checkpoint: --resume" in fresh.stderr


def test_every_train_config_field_is_a_flag_and_the_preset_follows_the_device(monkeypatch):
    from dataclasses import fields

    from gpt import PRESETS, GPTConfig, TrainConfig
    from gpt.presets import MODEL_KEYS
    monkeypatch.syspath_prepend(os.path.join(ROOT, "examples"))
    import train_char_gpt
    config = lambda *argv: train_char_gpt.config_from_args(train_char_gpt.parse_args(list(argv)))  # noqa: E731
    given = train_char_gpt.parse_args([])
    assert all(getattr(given, f.name) is None for f in fields(TrainConfig))   # not given: the preset decides
    for device, preset in (("cpu", "cpu"), ("cuda", "gpu")):
        chosen = config("--device", device)
        assert {k: getattr(chosen, k) for k in PRESETS[preset]} == PRESETS[preset] and chosen.device == device
    assert config("--device", "cuda", "--preset", "tiny").n_embd == PRESETS["tiny"]["n_embd"]
    assert config().seed == TrainConfig.seed and config("--seed", "7", "--lr", "0.01").learning_rate == 0.01
    assert config("--bias").bias is True and config("--no-bias").bias is False
    assert set(MODEL_KEYS) | {"vocab_size"} == {f.name for f in fields(GPTConfig)}


def test_the_readmes_gpt2_commands_on_a_gpt2_shaped_folder(tiny_gpt2, tmp_path):
    """README "GPT-2": sample a pretrained model, fine-tune it on a text, sample the fine-tuned checkpoint (its
    tokenizer read from it), resume the fine-tuning, and train a GPT from scratch on a BPE learned from the data.
    The folder stands in for the hub's gpt2 (no network here): the same files, random weights, a small shape."""
    folder, data = tiny_gpt2
    pretrained = run(SAMPLE, "--init-from", folder, "--start", "To be, or not to be", "--top-k", "40",
                     "--max-new-tokens", "12")
    assert pretrained.returncode == 0, pretrained.stderr
    assert pretrained.stdout.startswith("To be, or not to be")
    out = str(tmp_path / "out-gpt2")
    tuned = run(TRAIN, "--init-from", folder, "--data", data, "--out-dir", out, "--block-size", "32",
                "--max-iters", "4", "--eval-interval", "2", "--eval-iters", "2", "--no-progress", "--sample-tokens", "8")
    assert tuned.returncode == 0, tuned.stderr
    assert "vocabulary 300" in tuned.stdout and "n_layer=2" in tuned.stdout and "learning_rate=3e-05" in tuned.stdout
    assert "finished at iteration 4" in tuned.stdout and "bits/token" in tuned.stdout
    assert read_meta(os.path.join(out, "ckpt.npz"))["tokenizer"]["kind"] == "bpe"
    for decoding in ([], ["--greedy"], ["--top-p", "0.9"], ["--beam", "3"], ["--temperature", "1.2", "--top-k", "5"]):
        sample = run(SAMPLE, "--out-dir", out, "--start", "ROMEO:", "--max-new-tokens", "10", *decoding)
        assert sample.returncode == 0 and sample.stdout.count("ROMEO:") >= 1, (decoding, sample.stderr)
    resumed = run(TRAIN, "--out-dir", out, "--resume", "--max-iters", "6", "--no-progress", "--sample-tokens", "0")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at iteration 4" in resumed.stdout and "finished at iteration 6" in resumed.stdout
    scratch = run(TRAIN, "--preset", "tiny", "--tokenizer", "bpe", "--vocab-size", "320", "--data", data,
                  "--out-dir", str(tmp_path / "bpe"), "--max-iters", "2", "--no-progress", "--sample-tokens", "8")
    assert scratch.returncode == 0, scratch.stderr
    assert "vocabulary 320" in scratch.stdout and "finished at iteration 2" in scratch.stdout


@pytest.mark.parametrize("args,message", [
    (["--n-layer", "3"], "--n-layer: the model's shape comes from --init-from"),
    (["--bias", "--n-embd", "8"], "--n-embd, --bias: the model's shape comes from --init-from"),
    (["--tokenizer", "char"], "--tokenizer must be bpe when fine-tuning a pretrained model"),
    (["--vocab-size", "500"], "--vocab-size is the size of a BPE to learn"),
    (["--block-size", "64"], "block_size 64 does not fit: .* has 32 learned positions"),
])
def test_bad_fine_tuning_flags_are_one_line_errors(tiny_gpt2, tmp_path, args, message):
    folder, data = tiny_gpt2
    result = run(TRAIN, "--init-from", folder, "--data", data, "--out-dir", str(tmp_path / "run"), *args)
    assert result.returncode == 2 and re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run" / "ckpt.npz").exists()


def test_bad_pretrained_sources_are_one_line_errors(tmp_path):
    for script in (TRAIN, SAMPLE):
        result = run(script, "--init-from", "gpt3", "--out-dir" if script == TRAIN else "--start", str(tmp_path / "x"))
        assert result.returncode == 2 and "'gpt3' is neither a folder nor a GPT-2 hub name" in result.stderr
        assert "Traceback" not in result.stderr
    empty = run(SAMPLE, "--init-from", str(tmp_path))
    assert empty.returncode == 2 and "has no GPT-2 checkpoint: it needs config.json + model.safetensors" in empty.stderr
    both = run(SAMPLE, "--init-from", str(tmp_path), "--out-dir", str(tmp_path))
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    bpe = run(TRAIN, "--preset", "tiny", "--tokenizer", "bpe", "--out-dir", str(tmp_path / "y"))
    assert bpe.returncode == 2 and "--vocab-size must be at least 257 with tokenizer bpe" in bpe.stderr
