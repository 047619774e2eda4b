"""tensorlite.parallel.ShardedStep: the sharded step gives the whole batch's loss and gradients, reproducibly, and its
worker processes fail loudly and recover."""
import subprocess
import sys
import time

import numpy as np
import pytest

import tensorlite as tl
from gpt import TrainConfig, Trainer
from gpt.model import GPT, GPTConfig
from tensorlite.cpu import usable_cores
from tensorlite.parallel import ShardedStep, WorkerDied, auto_shards, shards_for


def model_loss(model, x, y):
    return model(x, y)[1]


def tiny_gpt(dropout=0.0):
    tl.manual_seed(0)
    config = GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=8, dropout=dropout, bias=True)
    return GPT(config).double()


def batch(rows, seed=0):
    rng = np.random.default_rng(seed)
    return tl.tensor(rng.integers(0, 11, (rows, 8))), tl.tensor(rng.integers(0, 11, (rows, 8)))


def grads(model):
    return {name: p.grad.numpy().copy() for name, p in model.named_parameters()}


def assert_same_grads_as_the_whole_batch(model, x, y):
    sharded = grads(model)
    model.zero_grad()
    model_loss(model, x, y).backward()
    for name, g in grads(model).items():
        np.testing.assert_allclose(sharded[name], g, rtol=1e-10, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("rows, shards", [(4, 2), (5, 3), (2, 4), (6, 1)])
def test_matches_the_whole_batch_and_accumulates(rows, shards):
    model = tiny_gpt()
    x, y = batch(rows)
    whole = model_loss(model, x, y)
    (whole * 0.5).backward()
    expected = grads(model)
    model.zero_grad()
    step = ShardedStep(model, shards)
    first = step(model_loss, x, y, grad_scale=0.25)
    second = step(model_loss, x, y, grad_scale=0.25)            # adds into the grads, as backward does
    assert first.item() == pytest.approx(whole.item(), rel=1e-12) and second.item() == pytest.approx(first.item())
    for name, g in grads(model).items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-10, atol=1e-14, err_msg=name)


def token_losses(model, x, y):
    return tl.functional.cross_entropy(model(x)[0].reshape(-1, 11), y.reshape(-1), reduction="none")


@pytest.mark.parametrize("rows, shards", [(5, 2), (7, 3), (2, 4)])
def test_map_is_the_whole_batchs_forward_bit_for_bit_and_draws_nothing(rows, shards):
    """Forward only, in parallel: per-row outputs equal one process's, bit for bit; no graph is recorded, no
    gradient appears, and the framework's generator is not drawn from (evaluating leaves a run's stream alone)."""
    model = tiny_gpt().float().eval()
    x, y = batch(rows)
    step = ShardedStep(model, shards)
    tl.manual_seed(3)
    first_draw = tl.random.rng("cpu").integers(2 ** 63)
    tl.manual_seed(3)
    out = step.map(token_losses, x, y)
    assert tl.random.rng("cpu").integers(2 ** 63) == first_draw
    assert isinstance(out, np.ndarray) and out.shape == (rows * 8,)
    np.testing.assert_array_equal(out, ShardedStep(model, 1).map(token_losses, x, y))
    with tl.no_grad():
        np.testing.assert_array_equal(out, token_losses(model, x, y).numpy())
    assert all(p.grad is None for p in model.parameters())
    model.transformer.wte.weight.data[...] *= 2                  # the workers see the current parameters
    np.testing.assert_array_equal(step.map(token_losses, x, y), ShardedStep(model, 1).map(token_losses, x, y))


def test_dropout_is_reproducible_and_each_shard_draws_its_own_masks():
    runs = []
    for _ in range(2):
        model = tiny_gpt(dropout=0.5)
        tl.manual_seed(7)
        ShardedStep(model, 2)(model_loss, *batch(4))
        runs.append(grads(model))
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name], runs[1][name], err_msg=name)
    x = tl.tensor(np.tile(batch(1)[0].numpy(), (2, 1)))          # the same row twice: one per shard
    for dropout in (0.0, 0.5):
        step = ShardedStep(tiny_gpt(dropout), 2)
        step(model_loss, x, x)
        first, second = step.shard_losses
        assert (first == second) == (dropout == 0.0)


def test_workers_follow_replaced_parameter_arrays_and_dtypes():
    model = tiny_gpt()
    step = ShardedStep(model, 2)
    x, y = batch(4)
    step(model_loss, x, y)
    first_worker = step.workers[0].process
    for p in model.parameters():
        p.data = p.data * 1.5                                   # a new array, as load_state_dict or .to() may make
    model.zero_grad()
    step(model_loss, x, y)
    assert step.workers[0].process is first_worker              # same layout: the same worker, new values
    assert_same_grads_as_the_whole_batch(model, x, y)
    model.float()                                               # another dtype: the workers are restarted
    model.zero_grad()
    step(model_loss, x, y)
    assert step.workers[0].process is not first_worker and not first_worker.is_alive()
    assert step.workers[0].grads.dtype == np.float32
    step.close()
    assert not step.workers


def test_cores_beyond_one_per_shard_go_to_blas(monkeypatch):
    import tensorlite.parallel as parallel
    monkeypatch.setattr(parallel, "usable_cores", lambda: 8)
    model = tiny_gpt()
    step = ShardedStep(model, 2)
    x, y = batch(4)
    step(model_loss, x, y)
    assert step.blas_threads == 4                               # each shard's BLAS gets its share of the cores
    assert_same_grads_as_the_whole_batch(model, x, y)
    step.close()


def test_a_dead_worker_is_a_clear_error_and_the_next_call_starts_afresh():
    model = tiny_gpt()
    step = ShardedStep(model, 2)
    x, y = batch(4)
    step(model_loss, x, y)
    step.workers[0].process.kill()
    step.workers[0].process.join()
    with pytest.raises(WorkerDied, match=r"exited unexpectedly \(killed by SIGKILL: out of memory\?\)"):
        step(model_loss, x, y)
    assert not step.workers
    model.zero_grad()
    step(model_loss, x, y)
    assert_same_grads_as_the_whole_batch(model, x, y)


def test_errors():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="n_shards"):
        ShardedStep(model, 0)
    x, y = batch(4)
    bad = tl.tensor(np.full((4, 8), 99))
    step = ShardedStep(model, 2)
    for broken in (bad, tl.tensor(np.concatenate([y.numpy()[:2], bad.numpy()[2:]]))):  # every shard / the replica's
        with pytest.raises(IndexError, match="out of range"):   # a failing shard raises; no thread is left behind
            step(model_loss, x, broken)
    model.zero_grad()
    step(model_loss, x, y)                                      # and leaves no half-step gradients behind
    assert_same_grads_as_the_whole_batch(model, x, y)
    with pytest.raises(TypeError, match="module-level function"):
        step(lambda m, a, b: model_loss(m, a, b), x, y)         # the workers get loss_fn by pickle
    assert 1 <= auto_shards(3) <= 3 and auto_shards(1) == 1
    assert auto_shards(12, flops_per_row=1e6) == 1                      # too little work to pay for a round trip
    assert auto_shards(12, flops_per_row=1e9) == auto_shards(12) == min(usable_cores(), 4)
    assert shards_for("cuda", 12) == 1 and shards_for("cpu", 12, 3) == 3 and shards_for("cpu", 12) == auto_shards(12)
    with pytest.raises(ValueError, match="cpu_shards"):
        TrainConfig(cpu_shards=-1)


def test_trainer_uses_it_and_one_shard_is_off(tmp_path):
    common = dict(out_dir=str(tmp_path), n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4,
                  max_iters=1, eval_iters=1)
    one = Trainer(TrainConfig(cpu_shards=1, **common))
    assert one.sharded.n_shards == 1
    two = Trainer(TrainConfig(cpu_shards=2, **dict(common, out_dir=str(tmp_path / "two"))))
    assert two.sharded.n_shards == 2 and not two.sharded.workers      # workers start on the first step
    two.run(progress=False)
    assert len(two.sharded.workers) == 1
    one.run(progress=False)
    assert not one.sharded.workers                                    # off: no worker processes
    auto = Trainer(TrainConfig(**dict(common, out_dir=str(tmp_path / "auto"))))
    assert auto.sharded.n_shards == 1                                 # auto: a model this small is not sharded


ORPHAN = """
import os, signal, numpy as np
import tensorlite as tl
from tensorlite.parallel import ShardedStep
from gpt.model import GPT, GPTConfig
def loss(m, x, y):
    return m(x, y)[1]
m = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=8))
step = ShardedStep(m, 3)
x = tl.tensor(np.zeros((4, 8), dtype=np.int64))
step(loss, x, x)
print(*[w.process.pid for w in step.workers], flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_the_calling_process_dies(tmp_path):
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN)   # no __main__ guard: fork never re-runs the script
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2, out.stderr
    deadline = time.time() + 10
    while time.time() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.1)
    assert not any(_running(pid) for pid in pids)


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] not in "ZX"   # a zombie has exited, only not been reaped yet
    except FileNotFoundError:
        return False


def test_one_shard_runs_without_threadpoolctl(tmp_path):
    """threadpoolctl (BLAS thread limits) is for CPU shards only: a GPU run, always one shard, must not need it
    (the GPU machines of this project have no package index to install it from)."""
    code = ("import sys, importlib.abc\n"
            "class NoThreadpoolctl(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] == 'threadpoolctl': raise ModuleNotFoundError(name)\n"
            "sys.meta_path.insert(0, NoThreadpoolctl())\n"
            "from gpt import TrainConfig, Trainer\n"
            "trainer = Trainer(TrainConfig.from_preset('tiny', out_dir=sys.argv[1], max_iters=2, cpu_shards=1))\n"
            "loss, _ = trainer.step()\n"
            "print(float(loss.item()))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 3.0 < float(proc.stdout.split()[-1]) < 6.0
