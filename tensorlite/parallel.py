"""Data parallelism across CPU cores: a batch cut into row shards, each run forward and backward on its own thread.

Why: on a few cores, most of a small model's step is NumPy work that runs on one core (elementwise chains,
attention's many small GEMMs, the engine's bookkeeping); only the big GEMMs use every core, through BLAS. Giving
each core a whole shard of the batch instead (with BLAS at one thread per shard) keeps every core busy for the
whole step, the way DDP keeps every GPU busy. NumPy releases the GIL inside its loops and BLAS calls, so the
shards do run at once; only the Python bookkeeping takes turns. On the 2-core machine of docs/performance.md
this takes the cpu preset's step from 40.8 to 38.6 ms in one benchmark run.

Each shard runs on a replica of the module that shares the parameter arrays (no copies) but has Parameter
objects of its own, so no two threads ever add into the same gradient. The replicas' gradients are then added
into the module's own in shard order, so the result does not depend on thread timing: runs are reproducible and
resume exactly. Random draws (dropout) come from one generator per shard, seeded from the framework's generator.
"""
import copy
import os
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from threadpoolctl import ThreadpoolController

from . import backend
from .tensor import Tensor

MAX_AUTO_SHARDS = 4   # more shards mean smaller GEMMs and more Python bookkeeping taking turns on the GIL


def usable_cores():
    """Cores this process may run on (the affinity mask where the OS has one, else the CPU count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_shards(batch_size):
    """The default shard count: one per usable core, at most MAX_AUTO_SHARDS and at most one per batch row."""
    return max(1, min(usable_cores(), MAX_AUTO_SHARDS, batch_size))


def shards_for(device, batch_size, requested=0):
    """The shard count a training loop uses: `requested` (0: auto_shards) on the CPU, one on any other device."""
    return (requested or auto_shards(batch_size)) if device == "cpu" else 1


class ShardedStep:
    """`step(loss_fn, *batch)`: forward and backward of `loss_fn(module, *shard)` over row shards of a batch, in
    parallel; the gradients of the batch's mean loss (each shard's mean weighted by its share of the rows) are
    added into the module's parameters' .grad, as `loss.backward()` over the whole batch would add them.

    `loss_fn` must return a mean over the shard's rows (like `F.cross_entropy`). More than one shard is for the
    CPU only (on a GPU one kernel already uses the whole device); one shard is the plain forward and backward on
    the calling thread, on any device, so a training loop can always step through a ShardedStep. The module's
    structure must not change after the ShardedStep is made.
    """

    def __init__(self, module, n_shards):
        if n_shards < 1:
            raise ValueError(f"n_shards must be at least 1, got {n_shards}")
        if n_shards > 1 and any(p.device != "cpu" for p in module.parameters()):
            raise backend.DeviceError("ShardedStep runs shards on the CPU; the module has parameters on another "
                                      "device (use n_shards=1 there)")
        self.module, self.n_shards = module, n_shards
        own = {id(p.data): p.data for p in _tensors(module)}   # deepcopy shares the arrays, copies the rest
        self.replicas = [copy.deepcopy(module, memo=dict(own)) for _ in range(n_shards - 1)]
        if n_shards > 1:
            self.pool = ThreadPoolExecutor(max_workers=n_shards - 1)
            self.blas = ThreadpoolController()
            self.blas_threads = max(1, usable_cores() // n_shards)

    def __call__(self, loss_fn, *batch, grad_scale=1.0):
        """Returns the batch's mean loss as a 0-d Tensor (detached)."""
        if self.n_shards == 1:   # no threads, no seeds, no host round trip (on a GPU the step stays asynchronous)
            loss = loss_fn(self.module, *batch)
            (loss * grad_scale if grad_scale != 1.0 else loss).backward()
            return loss.detach()
        rows = batch[0].shape[0]
        bounds = np.linspace(0, rows, min(self.n_shards, rows) + 1).round().astype(int)
        shards = [tuple(Tensor(_data(b)[lo:hi]) for b in batch) for lo, hi in zip(bounds[:-1], bounds[1:])]
        shares = [(hi - lo) / rows for lo, hi in zip(bounds[:-1], bounds[1:])]
        weights = [grad_scale * share for share in shares]
        seeds = backend.rng("cpu").integers(2 ** 63, size=len(shards))
        models = [self.module] + self._synced_replicas()
        try:
            with self.blas.limit(limits=self.blas_threads, user_api="blas"):
                futures = [self.pool.submit(_forward_backward, models[i], loss_fn, shards[i], weights[i], seeds[i])
                           for i in range(1, len(shards))]
                try:
                    losses = [_forward_backward(self.module, loss_fn, shards[0], weights[0], seeds[0])]
                finally:
                    wait(futures)                         # every shard has finished, even when one failed
                losses += [f.result() for f in futures]
        except BaseException:
            for replica in self.replicas:                 # no half-step gradients left for the next call
                replica.zero_grad()
            raise
        self._gather_grads(len(shards) - 1)
        mean = sum(share * loss for share, loss in zip(shares, losses))
        return Tensor(np.asarray(mean, dtype=self.module.parameters()[0].dtype))

    def _synced_replicas(self):
        """Point the replicas at the module's current arrays (an optimizer or load_state_dict may have replaced
        them) and mode."""
        own = _tensors(self.module)
        for replica in self.replicas:
            for mine, theirs in zip(own, _tensors(replica)):
                theirs.data = mine.data
            replica.train(self.module.training)
        return self.replicas

    def _gather_grads(self, n_replicas):
        """Add the replicas' gradients into the module's, in shard order, and clear them."""
        params = self.module.parameters()
        for replica in self.replicas[:n_replicas]:
            for p, q in zip(params, replica.parameters()):
                if q.grad is None:
                    continue
                if p.grad is None:
                    p.grad = q.grad
                else:
                    p.grad += q.grad
                q.grad = None


def _forward_backward(model, loss_fn, shard, weight, seed):
    with backend.using_generator(np.random.default_rng(seed)):
        loss = loss_fn(model, *shard)
        loss.backward(weight)
    return float(loss.data)


def _data(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _tensors(module):
    """Every parameter and buffer of a module, in a fixed order (the same order in a deep copy)."""
    return [t for m in module.modules() for t in [*m._parameters.values(), *(b for b, _ in m._buffers.values())]]
