"""The training loop: exact resume, atomic checkpoints, corrupt checkpoints, divergence, logs and plots."""
import errno
import json
import os
import tempfile

import numpy as np
import pytest

from gpt import GPT, BPETokenizer, OutDirError, SaveError, TrainConfig, Trainer, TrainingDiverged, evaluate
from gpt.checkpoint import CHECKPOINT, META_KEY, CheckpointError, load_checkpoint, save_checkpoint
from gpt.data import ByteFallbackCharTokenizer
from gpt.config import ConfigError

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
            grads[trainer] = [p.grad.numpy().copy() for p in trainer.model.parameters()]
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


def rewrite_meta(path, change):
    """The checkpoint at path with its JSON metadata replaced by change(meta)."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays[META_KEY] = np.array(json.dumps(change(json.loads(str(arrays[META_KEY])))))
    np.savez(path, **arrays)


def without(key):
    return lambda meta: {k: v for k, v in meta.items() if k != key}


def replaced(key, value):
    return lambda meta: {**meta, key: value}


@pytest.mark.parametrize("change,message", [
    (lambda meta: [meta], "its metadata is a JSON list, not an object"),
    (without("optimizer"), "has no 'optimizer' field"),
    (without("tokenizer"), "has no 'tokenizer' field"),
    (replaced("tokenizer", {"kind": "word"}), r"field 'tokenizer' is not valid \(not a tokenizer description"),
    (lambda meta: {**meta, "model_config": {**meta["model_config"], "n_experts": 8}},
     r"field 'model_config' is not valid \(unknown key\(s\) \['n_experts'\]\)"),
    (lambda meta: {**meta, "model_config": {**meta["model_config"], "n_layer": 1.5}},
     "field 'model_config' is not valid .n_layer must be an integer, got 1.5"),
    (replaced("iter_num", "ten"), r"field 'iter_num' is not valid \(expected an integer >= 0, got 'ten'\)"),
    (replaced("rng", {"batches": 5, "framework": 5}), r"field 'rng' is not valid \(state must be a dict\)"),
    (replaced("rng", {"batches": {}}), "field 'rng' is not valid"),
    (lambda meta: {**meta, "optimizer": {"param_groups": 3, "scalars": {}}}, "field 'optimizer' is not valid"),
    (replaced("train_config", [1]), "field 'train_config' is not valid"),
])
def test_checkpoint_metadata_is_checked_where_it_is_read(tmp_path, change, message):
    cfg = config(tmp_path, "meta", max_iters=1)
    Trainer(cfg).run(progress=False)
    path = os.path.join(cfg.out_dir, CHECKPOINT)
    rewrite_meta(path, change)
    damaged = open(path, "rb").read()
    with pytest.raises(CheckpointError, match=message):
        Trainer(cfg, resume=True)
    assert open(path, "rb").read() == damaged   # nothing was written over it
    Trainer(cfg, resume=False, overwrite=True)   # and the failed trainer left the out-dir unlocked


def test_a_checkpoint_of_random_bytes_is_a_clear_error(tmp_path):
    path = tmp_path / CHECKPOINT
    path.write_bytes(np.random.default_rng(0).bytes(10_000))
    with pytest.raises(CheckpointError, match="corrupt or not a tensorlite checkpoint .not a .npz archive") as err:
        load_checkpoint(str(path))
    assert "allow_pickle" not in str(err.value)


def test_train_config_values_are_checked_at_once(tmp_path):
    for kwargs, message in [
        (dict(beta1=1.0), "beta1 must be in [0, 1), got 1.0"), (dict(beta1=1.5), "beta1 must be in [0, 1)"),
        (dict(beta1=-3.0), "beta1 must be in [0, 1), got -3.0"), (dict(beta2=1.0), "beta2 must be in [0, 1)"),
        (dict(grad_clip=float("nan")), "grad_clip must be a finite number, got nan"),
        (dict(learning_rate=float("inf")), "learning_rate must be a finite number, got inf"),
        (dict(learning_rate=float("nan")), "learning_rate must be a finite number, got nan"),
        (dict(learning_rate=0.0), "learning_rate must be > 0, got 0.0"),
        (dict(min_lr=float("nan")), "min_lr must be a finite number"),
        (dict(weight_decay=float("nan")), "weight_decay must be a finite number"),
        (dict(seed=-1), "seed must be >= 0, got -1"), (dict(max_iters=-1), "max_iters must be >= 0, got -1"),
        (dict(batch_size=0), "batch_size must be >= 1, got 0"), (dict(max_iters="10"), "max_iters must be an integer, got '10'"),
        (dict(tokenizer="word"), "tokenizer must be one of char, byte, bpe"), (dict(bias=1), "bias must be True or False"),
        (dict(vocab_size=100, tokenizer="bpe"), "vocab_size must be at least 257 with tokenizer bpe (the 256"),
        (dict(vocab_size=300), "vocab_size is the size of a BPE to learn (tokenizer bpe without init_from): leave it 0"),
        (dict(tokenizer="char", init_from="gpt2"), "tokenizer must be bpe when fine-tuning a pretrained model (init_from)"),
        (dict(block_size=2.5), "block_size must be an integer, got 2.5"),
    ]:
        with pytest.raises(ConfigError) as err:
            config(tmp_path, "x", **kwargs)
        assert str(err.value).startswith(message), (kwargs, str(err.value))
        assert err.value.field == next(iter(kwargs))
    assert not (tmp_path / "x").exists()


def test_max_iters_0_evaluates_and_saves_the_initial_model(tmp_path):
    summary = Trainer(config(tmp_path, "zero", max_iters=0)).run(progress=False)
    assert summary["status"] == "finished" and summary["iter"] == 0 and summary["eval_iter"] == 0
    assert load_checkpoint(os.path.join(tmp_path, "zero", CHECKPOINT))[2]["iter_num"] == 0


def test_one_trainer_at_a_time_per_out_dir(tmp_path):
    cfg = config(tmp_path, "lock", max_iters=2)
    first = Trainer(cfg)
    with pytest.raises(OutDirError, match=f"another trainer .process {os.getpid()}. is using out-dir {cfg.out_dir}"):
        Trainer(cfg, overwrite=True)
    first.run(progress=False)                 # the lock is the run's: released when it returns
    Trainer(cfg, resume=True).run(progress=False)


def test_a_new_run_does_not_replace_a_checkpoint(tmp_path):
    cfg = config(tmp_path, "refuse", max_iters=2)
    Trainer(cfg).run(progress=False)
    with pytest.raises(OutDirError, match="holds iteration 2 of another run: --resume to continue it, --overwrite"):
        Trainer(cfg)
    with pytest.raises(ValueError, match="choose one"):
        Trainer(cfg, resume=True, overwrite=True)


def test_resume_keeps_one_record_per_iteration_in_the_log(tmp_path):
    cfg = config(tmp_path, "log", max_iters=10)
    Trainer(cfg).run(progress=False)
    log = os.path.join(cfg.out_dir, "log.jsonl")
    with open(log, "a") as f:   # what a run killed after its checkpoint had logged, and a line cut short
        f.write(json.dumps({"iter": 11, "loss": 9.0}) + "\n" + json.dumps({"iter": 12, "loss": 9.0}) + "\n{\"it")
    Trainer(config(tmp_path, "log", max_iters=15), resume=True).run(progress=False)
    records = [json.loads(line) for line in open(log)]
    assert [r["iter"] for r in records if "loss" in r] == [5, 10, 15] and 9.0 not in [r.get("loss") for r in records]
    assert [r["iter"] for r in records if "val_loss" in r] == [0, 10, 15]


def test_resume_applies_this_configs_optimizer_values(tmp_path):
    Trainer(config(tmp_path, "opt", max_iters=5)).run(progress=False)
    resumed = Trainer(config(tmp_path, "opt", max_iters=5, weight_decay=0.3, beta1=0.7, beta2=0.9), resume=True)
    assert [(g["weight_decay"], tuple(g["betas"])) for g in resumed.optimizer.param_groups] == \
        [(0.3, (0.7, 0.9)), (0.0, (0.7, 0.9))]
    assert resumed.optimizer.state_dict()["state"][0]["step"] == 5   # the moments are the checkpoint's
    assert resumed.changed == {"weight_decay": (0.1, 0.3), "beta1": (0.9, 0.7), "beta2": (0.99, 0.9)}


def step_then(trainer, at, action):
    """Make trainer.step call action() once the step that reaches iteration `at` is done."""
    original_step = trainer.step

    def step():
        result = original_step()
        if trainer.iter_num == at:
            action()
        return result
    trainer.step = step


def test_a_second_ctrl_c_stops_at_once_and_says_what_was_kept(tmp_path):
    import signal
    cfg = config(tmp_path, "abort", max_iters=50)
    trainer = Trainer(cfg)
    step_then(trainer, 7, lambda: (signal.raise_signal(signal.SIGINT), signal.raise_signal(signal.SIGINT)))
    with pytest.raises(KeyboardInterrupt, match=r"stopped at once at iteration 7; the last good checkpoint "
                                                r"\(.*, iteration 0\) is intact"):
        trainer.run(progress=False)
    assert load_checkpoint(os.path.join(cfg.out_dir, CHECKPOINT))[2]["iter_num"] == 0


def test_out_dir_problems_are_found_before_training(tmp_path, monkeypatch):
    cfg = config(tmp_path, "odd")
    os.makedirs(os.path.join(cfg.out_dir, CHECKPOINT))
    with pytest.raises(OutDirError, match="ckpt.npz is a directory"):
        Trainer(cfg)
    read_only = config(tmp_path, "ro")

    def no_writing(*args, **kwargs):   # what a read-only file system answers (chmod does not stop root)
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(tempfile, "mkstemp", no_writing)
    with pytest.raises(OutDirError, match=f"cannot write in out-dir {read_only.out_dir} .Read-only file system"):
        Trainer(read_only)
    monkeypatch.undo()
    Trainer(read_only)   # the failed trainer did not keep the lock


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("fault", ["ENOSPC", "EROFS"])
def test_a_failed_save_names_the_file_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, fault):
    cfg = config(tmp_path, "full", max_iters=30)
    trainer = Trainer(cfg)
    path = os.path.join(cfg.out_dir, CHECKPOINT)

    def full_disk(*args, **kwargs):   # the kernel's own ENOSPC on every write, as on a full disk
        return os.open("/dev/full", os.O_WRONLY), os.path.join(cfg.out_dir, "never-made.tmp")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    step_then(trainer, 12, lambda: monkeypatch.setattr(tempfile, "mkstemp",
                                                       full_disk if fault == "ENOSPC" else read_only))
    with pytest.raises(SaveError) as err:
        trainer.run(progress=False)
    reason = os.strerror(getattr(errno, fault))
    assert str(err.value) == (f"could not write {path} ({reason}); the last good checkpoint ({path}, iteration 10) "
                              "is intact")
    assert err.value.__suppress_context__ and err.value.__cause__ is None   # one error, not a chain of three
    monkeypatch.undo()
    meta = load_checkpoint(path)[2]
    assert meta["iter_num"] == 10 and not [f for f in os.listdir(cfg.out_dir) if f.endswith(".tmp")]
    Trainer(cfg, resume=True)   # and the run can go on from there


def test_a_resumed_config_is_the_checkpoints_with_the_changes_given(tmp_path):
    cfg = config(tmp_path, "again", max_iters=2, learning_rate=3e-3)
    Trainer(cfg).run(progress=False)
    resumed = TrainConfig.resumed(out_dir=cfg.out_dir, max_iters=4)
    assert resumed == TrainConfig(**{**vars(cfg), "max_iters": 4})      # lr 3e-3 and the tiny model stay
    assert TrainConfig.resumed("tiny", out_dir=cfg.out_dir).n_embd == 32  # a named preset's values on top
    path = os.path.join(cfg.out_dir, CHECKPOINT)
    rewrite_meta(path, lambda meta: {**meta, "train_config": {**meta["train_config"], "beta1": 1.5}})
    with pytest.raises(CheckpointError, match=r"field 'train_config' is not valid \(beta1 must be in \[0, 1\)"):
        TrainConfig.resumed(out_dir=cfg.out_dir)


def test_fine_tuning_a_pretrained_gpt2_starts_from_its_weights_and_resumes_exactly(tmp_path, tiny_gpt2):
    """init_from: the pretrained weights, its tokenizer and its shape (biases included, whatever the config said),
    the config's block_size and dropout; the checkpoint records all of it, and 10 + resume + 10 steps equal 20."""
    folder, data = tiny_gpt2
    pretrained = GPT.from_pretrained(folder, block_size=16)
    cfg = config(tmp_path, "tuned", data=data, init_from=folder, tokenizer="bpe", bias=False)   # 1 layer, width 16
    zero = Trainer(config(tmp_path, "zero", data=data, init_from=folder, tokenizer="bpe", max_iters=0))
    for name, value in pretrained.state_dict().items():
        np.testing.assert_array_equal(zero.model.state_dict()[name], value, err_msg=name)
    straight = Trainer(cfg)
    c = straight.model.config
    assert (c.n_layer, c.n_embd, c.bias, c.block_size, c.dropout, c.vocab_size) == (2, 16, True, 16, 0.1, 300)
    assert straight.model.training and (straight.cfg.n_layer, straight.cfg.bias) == (2, True)
    straight.run(progress=False)
    meta = load_checkpoint(os.path.join(cfg.out_dir, CHECKPOINT))[2]
    assert meta["model_config"] == c.to_dict() and meta["train_config"]["init_from"] == folder
    assert meta["tokenizer"] == BPETokenizer.from_pretrained(folder).to_dict() and meta["tokenizer"]["kind"] == "bpe"
    assert not np.array_equal(params(straight)["transformer.wte.weight"], params(zero)["transformer.wte.weight"])
    first = Trainer(config(tmp_path, "halves", data=data, init_from=folder, tokenizer="bpe", max_iters=10))
    first.run(progress=False)
    resumed = Trainer(TrainConfig.resumed(out_dir=str(tmp_path / "halves"), max_iters=20), resume=True)
    assert resumed.iter_num == 10 and resumed.cfg.n_layer == 2 and not resumed.changed.keys() - {"max_iters"}
    resumed.run(progress=False)
    for name, value in params(straight).items():
        np.testing.assert_array_equal(value, params(resumed)[name], err_msg=name)
    with pytest.raises(CheckpointError, match="was started from '.*tiny_gpt2.*', not from 'gpt2': a resumed run "
                                              "continues the checkpoint's weights"):
        Trainer(TrainConfig.resumed(out_dir=cfg.out_dir, init_from="gpt2"), resume=True)


def test_a_bpe_learned_on_the_data_is_the_checkpoints_and_not_learned_again(tmp_path, monkeypatch):
    cfg = config(tmp_path, "bpe", tokenizer="bpe", vocab_size=280, max_iters=2)
    trainer = Trainer(cfg)
    assert trainer.tokenizer.kind == "bpe" and trainer.model.config.vocab_size == 280
    trainer.run(progress=False)
    saved = load_checkpoint(os.path.join(cfg.out_dir, CHECKPOINT))[2]["tokenizer"]
    with pytest.raises(ValueError, match="no adjacent pair left to merge .* use a longer text or a smaller vocab_size"):
        Trainer(config(tmp_path, "too_big", tokenizer="bpe", vocab_size=50_000))
    monkeypatch.setattr(BPETokenizer, "train", None)   # resuming must not learn the merges again
    resumed = Trainer(TrainConfig.resumed(out_dir=cfg.out_dir, max_iters=4), resume=True)
    assert resumed.tokenizer.to_dict() == saved
    resumed.run(progress=False)
    with pytest.raises(CheckpointError, match="another vocabulary: a BPE of 280 tokens there, --vocab-size 300 here"):
        Trainer(TrainConfig.resumed(out_dir=cfg.out_dir, vocab_size=300), resume=True)


def test_a_format_1_checkpoint_resumes_with_its_byte_fallback_vocabulary(tmp_path):
    """A run saved before the escape id (its tokenizer without a format: 256 ids for Shakespeare's characters)
    resumes with that vocabulary, as it was trained."""
    cfg = config(tmp_path, "old", max_iters=2)
    Trainer(cfg).run(progress=False)
    path = os.path.join(cfg.out_dir, CHECKPOINT)
    meta = load_checkpoint(path)[2]
    old = ByteFallbackCharTokenizer(meta["tokenizer"]["chars"])
    wide = GPT(cfg.model_config(old.vocab_size))            # the run's model with the old vocabulary's 256 ids
    optimizer = wide.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2))
    save_checkpoint(path, wide.state_dict(), optimizer.state_dict(), {**meta, "tokenizer": old.to_dict()})
    resumed = Trainer(TrainConfig.resumed(out_dir=cfg.out_dir, max_iters=4), resume=True)
    assert isinstance(resumed.tokenizer, ByteFallbackCharTokenizer) and resumed.model.config.vocab_size == 256
    assert resumed.run(progress=False)["status"] == "finished"


def test_evaluation_scores_the_batches_windows_in_few_passes_on_every_shard(tmp_path):
    """The estimate is the mean of eval_iters random batches' means (the same windows, drawn as get_batch draws
    them), computed in as few passes as fit and spread over the trainer's shards: the same float64 mean of every
    position's loss, bit for bit, whatever the shard count."""
    estimates = []
    for shards in (1, 2, 3):
        trainer = Trainer(config(tmp_path, f"eval{shards}", cpu_shards=shards, eval_iters=5))
        calls, passes = [], trainer.sharded.map

        def counted(fn, *batch):
            calls.append(len(batch[0]))
            return passes(fn, *batch)
        trainer.sharded.map = counted
        estimates.append(trainer.estimate_loss())
        assert calls == [5 * 4, 5 * 4]                             # one pass per split: 5 batches of 4 windows
    assert estimates[0] == estimates[1] == estimates[2]
    rng = np.random.default_rng(trainer.cfg.seed * 1_000_003)     # what estimate_loss seeds at iteration 0
    trainer.model.eval()
    by_batches = np.mean([trainer.model(*trainer.dataset.get_batch("train", 4, rng))[1].item() for _ in range(5)])
    assert estimates[0]["train"]["loss"] == pytest.approx(by_batches, rel=1e-6)
    with pytest.raises(ValueError, match="`sharded` is a ShardedStep of another module"):
        evaluate(GPT(trainer.model.config), trainer.dataset, sharded=trainer.sharded)
