"""The training loop: exact resume, atomic checkpoints, corrupt checkpoints, divergence, logs and plots."""
import json
import os

import numpy as np
import pytest

from gpt import TrainConfig, Trainer, TrainingDiverged
from gpt.checkpoint import CheckpointError, load_checkpoint
from gpt.train import CHECKPOINT

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "tinyshakespeare.txt")


def small_data(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text(open(DATA, encoding="utf-8").read()[:20000], encoding="utf-8")
    return str(path)


def config(tmp_path, name, **kw):
    base = dict(out_dir=str(tmp_path / name), data=small_data(tmp_path), n_layer=1, n_head=2, n_embd=16,
                block_size=16, batch_size=4, max_iters=20, lr_decay_iters=20, warmup_iters=3, eval_interval=10,
                eval_iters=2, dropout=0.1, log_interval=5)
    return TrainConfig(**{**base, **kw})


def params(trainer):
    return {k: v.copy() for k, v in trainer.model.state_dict().items()}


@pytest.mark.parametrize("shards", [1, 3])   # dropout 0.1: the sharded path's per-shard generators resume too
def test_resume_continues_the_same_run(tmp_path, shards):
    straight = Trainer(config(tmp_path, "a", cpu_shards=shards))
    straight.run(progress=False)
    first = Trainer(config(tmp_path, "b", max_iters=10, cpu_shards=shards))
    first.run(progress=False)
    resumed = Trainer(config(tmp_path, "b", cpu_shards=shards), resume=True)
    assert resumed.iter_num == 10
    resumed.run(progress=False)
    for name, value in params(straight).items():
        np.testing.assert_array_equal(value, params(resumed)[name], err_msg=name)


def test_checkpoint_holds_everything_and_log_and_plot_exist(tmp_path):
    cfg = config(tmp_path, "c")
    summary = Trainer(cfg).run(progress=False)
    assert summary["status"] == "finished" and summary["iter"] == 20
    model_state, optimizer_state, meta = load_checkpoint(os.path.join(cfg.out_dir, CHECKPOINT))
    assert meta["iter_num"] == 20 and meta["tokenizer"]["kind"] == "char"
    assert set(meta["rng"]) == {"batches", "framework"} and optimizer_state["state"][0]["step"] == 20
    assert "transformer.wte.weight" in model_state
    records = [json.loads(line) for line in open(os.path.join(cfg.out_dir, "log.jsonl"))]
    assert any("val_loss" in r and "val_bpc" in r for r in records) and any("ms_per_iter" in r for r in records)
    assert os.path.getsize(os.path.join(cfg.out_dir, "loss.png")) > 1000
    assert not [f for f in os.listdir(cfg.out_dir) if f.endswith(".tmp")]


def test_corrupt_or_mismatched_checkpoint_is_a_clear_error(tmp_path):
    cfg = config(tmp_path, "d", max_iters=1)
    Trainer(cfg).run(progress=False)
    with pytest.raises(CheckpointError, match="another model config: n_embd=16 there, 32 here"):
        Trainer(config(tmp_path, "d", n_embd=32), resume=True)
    path = os.path.join(cfg.out_dir, CHECKPOINT)
    with open(path, "r+b") as f:
        f.truncate(100)
    with pytest.raises(CheckpointError, match="corrupt"):
        Trainer(cfg, resume=True)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer(config(tmp_path, "nothing-here"), resume=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = config(tmp_path, "e", max_iters=30)
    trainer = Trainer(cfg)
    original_step = trainer.step

    def poisoned_step():
        loss, lr = original_step()
        if trainer.iter_num >= 12:     # after the checkpoint at iteration 10
            trainer.model.transformer.wte.weight.data[...] = np.nan
            return loss * float("nan"), lr
        return loss, lr
    trainer.step = poisoned_step
    with pytest.raises(TrainingDiverged, match="loss is nan at iteration 12.*last good checkpoint"):
        trainer.run(progress=False)
    model_state, _, meta = load_checkpoint(os.path.join(cfg.out_dir, CHECKPOINT))
    assert meta["iter_num"] == 10 and np.isfinite(model_state["transformer.wte.weight"]).all()


def test_interrupt_saves_after_the_current_step(tmp_path):
    import signal
    cfg = config(tmp_path, "f", max_iters=50)
    trainer = Trainer(cfg)
    original_step = trainer.step

    def step_then_ctrl_c():
        result = original_step()
        if trainer.iter_num == 7:
            signal.raise_signal(signal.SIGINT)
        return result
    trainer.step = step_then_ctrl_c
    summary = trainer.run(progress=False)
    assert summary["status"] == "interrupted" and summary["iter"] == 7
    assert load_checkpoint(os.path.join(cfg.out_dir, CHECKPOINT))[2]["iter_num"] == 7


def test_grad_accum_equals_one_big_batch(tmp_path):
    """N micro-batches of B accumulate to the gradient of one batch of B*N (float64 precision check in
    test_course). Compared before the optimizer step and without clipping: AdamW's first step and clipping would
    hide a wrong scale of the accumulated gradient."""
    big = Trainer(config(tmp_path, "g", batch_size=8, max_iters=1, dropout=0.0, grad_clip=0.0))
    small = Trainer(config(tmp_path, "h", batch_size=4, grad_accum=2, max_iters=1, dropout=0.0, grad_clip=0.0))
    x, y = big.dataset.get_batch("train", 8, np.random.default_rng(0))
    big.dataset.get_batch = lambda *a, **k: (x, y)
    halves = iter([(x[:4], y[:4]), (x[4:], y[4:])])
    small.dataset.get_batch = lambda *a, **k: next(halves)
    grads = {}
    for trainer in (big, small):
        def step_recording_grads(trainer=trainer, step=trainer.optimizer.step):
            grads[trainer] = [p.grad.copy() for p in trainer.model.parameters()]
            step()
        trainer.optimizer.step = step_recording_grads
    big.step()
    small.step()
    for (name, _), g_small, g_big in zip(big.model.named_parameters(), grads[small], grads[big]):
        np.testing.assert_allclose(g_small, g_big, rtol=1e-4, atol=1e-6, err_msg=name)
    for name, value in params(big).items():
        np.testing.assert_allclose(params(small)[name], value, atol=1e-6, err_msg=name)


def test_tf32_choice_reaches_cupy(tmp_path, monkeypatch):
    from tensorlite import backend
    monkeypatch.setenv("CUPY_TF32", "1")
    backend.set_tf32(False)
    assert os.environ["CUPY_TF32"] == "0"
    cupy = pytest.importorskip("cupy")   # imports without a GPU: the call below is CuPy's real API
    monkeypatch.setattr(backend, "_cupy", cupy)
    reset = []
    monkeypatch.setattr(cupy._core, "set_compute_type", lambda dtype, kind: reset.append((np.dtype(dtype), kind)))
    backend.set_tf32(True)   # CuPy already loaded: it is told to read CUPY_TF32 again at its next matmul
    assert os.environ["CUPY_TF32"] == "1"
    assert reset == [(np.dtype(np.float32), cupy._core._routines_linalg.COMPUTE_TYPE_TBD)]
    calls = []
    monkeypatch.setattr(backend, "set_tf32", calls.append)
    monkeypatch.setattr(backend, "cupy_or_raise", lambda: (_ for _ in ()).throw(backend.DeviceError("no GPU here")))
    with pytest.raises(backend.DeviceError):   # the model's move to the GPU fails here, after the choice was made
        Trainer(TrainConfig.from_preset("tiny", device="cuda", tf32=False, out_dir=str(tmp_path)))
    assert calls == [False]
