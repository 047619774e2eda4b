"""Data parallelism across CPU cores: a batch cut into row shards, each run forward and backward by its own process.

Why: on a few cores, most of a small model's step is NumPy work that runs on one core (elementwise chains,
attention's many small GEMMs, the engine's bookkeeping); only the big GEMMs use every core, through BLAS. Giving
each core a whole shard of the batch instead (with BLAS at one thread per shard) keeps every core busy for the
whole step, the way DDP keeps every GPU busy. The shards run in processes, not threads: the engine's Python
bookkeeping would otherwise take turns on the GIL (docs/performance.md has the two measured side by side).

The calling process runs shard 0 on the module itself; each other shard runs in a worker process on a copy of the
module whose parameters are views into one shared-memory buffer. Each call copies the module's current
parameters into that buffer (so optimizers and load_state_dict need no hook), the workers write their gradients
into shared buffers of their own, and the caller adds them into the module's gradients in shard order: the
result does not depend on timing, so runs are reproducible and resume exactly. Random draws (dropout) come from
one generator per shard, seeded from the framework's generator.
"""
import math
import multiprocessing
import pickle
import signal
import sys
import warnings
import weakref

import numpy as np

from . import backend, random
from .autograd import no_grad
from .cpu import usable_cores
from .tensor import Tensor

MAX_AUTO_SHARDS = 4   # more shards mean smaller GEMMs and more copies of the engine's per-op overhead
# Below this much work a shard's step is mostly the engine's per-op overhead and the shards' round trip, which
# sharding adds rather than divides (where the measured break-even lies: docs/performance.md, item 8).
MIN_SHARD_FLOPS = 1e8
# fork on Linux: workers start in milliseconds, inherit the module and never re-run the main script (so scripts
# need no `if __name__ == "__main__"` guard); spawn elsewhere (macOS's system libraries are not fork-safe)
_START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"


def auto_shards(batch_size, flops_per_row=math.inf):
    """The default shard count: one per usable core, at most MAX_AUTO_SHARDS, at most one per batch row, and no
    more than leave each shard MIN_SHARD_FLOPS of work (`flops_per_row`: forward + backward of one batch row)."""
    by_work = batch_size * flops_per_row / MIN_SHARD_FLOPS   # inf when the work is not given
    return int(max(1, min(usable_cores(), MAX_AUTO_SHARDS, batch_size, by_work)))


def shards_for(device, batch_size, requested=0, flops_per_row=math.inf):
    """The shard count a training loop uses: `requested` (0: auto_shards) on the CPU, one on any other device."""
    return (requested or auto_shards(batch_size, flops_per_row)) if device == "cpu" else 1


class WorkerDied(RuntimeError):
    """A worker process ended in the middle of a step (killed, or out of memory): the step's gradients are lost,
    the next call starts new workers."""


class ShardedStep:
    """`step(loss_fn, *batch)`: forward and backward of `loss_fn(module, *shard)` over row shards of a batch, in
    parallel; the gradients of the batch's mean loss (each shard's mean weighted by its share of the rows) are
    added into the module's parameters' .grad, as `loss.backward()` over the whole batch would add them.
    `step.map(fn, *batch)`: forward only (evaluation), `fn(module, *shard)`'s arrays concatenated in shard order.

    `loss_fn` must return a mean over the shard's rows (like `F.cross_entropy`) and, with more than one shard, be
    a module-level function (it is sent to the workers by pickle). More than one shard is for the CPU only (on a
    GPU one kernel already uses the whole device); one shard is the plain forward and backward in the calling
    process, on any device, so a training loop can always step through a ShardedStep. Workers start on the first
    call with the module as it is then: each call sends them its parameters' values and training mode, and they
    are restarted when the parameters change shape or dtype; any other change (a new submodule, a buffer) needs
    `close()` first. `close()` stops them (so do garbage collection and the end of the program).
    """

    def __init__(self, module, n_shards):
        if n_shards < 1:
            raise ValueError(f"n_shards must be at least 1, got {n_shards}")
        if n_shards > 1 and any(p.device != "cpu" for p in module.parameters()):
            raise backend.DeviceError("ShardedStep runs shards on the CPU; the module has parameters on another "
                                      "device (use n_shards=1 there)")
        self.module, self.n_shards = module, n_shards
        self.workers, self.layout, self.shared_params, self.blas_threads = [], None, None, 1
        self.shard_losses = []        # each shard's mean loss in the last call, in shard order
        self._finalizer = weakref.finalize(self, _stop, self.workers)

    def __call__(self, loss_fn, *batch, grad_scale=1.0):
        """Returns the batch's mean loss as a 0-d Tensor (detached)."""
        if self.n_shards == 1:   # no processes, no seeds, no host round trip (on a GPU the step stays asynchronous)
            loss = loss_fn(self.module, *batch)
            (loss * grad_scale if grad_scale != 1.0 else loss).backward()
            self.shard_losses = [loss]
            return loss.detach()
        shards, shares = self._shards(loss_fn, batch)
        seeds = random.rng("cpu").integers(2 ** 63, size=len(shards))
        tasks = [("step", loss_fn, shard, self.module.training, grad_scale * share, seed)
                 for shard, share, seed in zip(shards, shares, seeds)]
        params = self.module.parameters()
        losses, replies = self._run(tasks)
        for worker, (loss, has_grad) in zip(self.workers, replies):   # in shard order: deterministic sums
            losses.append(loss)
            worker.add_grads_into(params, has_grad)
        self.shard_losses = losses
        mean = sum(share * loss for share, loss in zip(shares, losses))
        return Tensor(np.asarray(mean, dtype=params[0].dtype))

    def map(self, fn, *batch):
        """fn(module, *shard) forward only (no graph, the module in its mode as it is) over row shards of the
        batch, in parallel: the shards' outputs as host arrays, concatenated along the first axis in shard order.
        For evaluation: with a per-row output (per-token losses) the result does not depend on the shard count.
        Random draws (dropout, in training mode) come from a generator per shard seeded by its index, never from
        the framework's, so evaluating does not shift a training run's random stream."""
        if self.n_shards == 1:
            return _forward(self.module, fn, batch, seed=0)
        shards, _ = self._shards(fn, batch)
        outputs, replies = self._run([("map", fn, shard, self.module.training, index)
                                      for index, shard in enumerate(shards)])
        return np.concatenate(outputs + replies)

    def _shards(self, fn, batch):
        """The batch cut into row shards (lists of arrays), and each shard's share of the rows."""
        _check_picklable(fn)
        rows = batch[0].shape[0]
        bounds = np.linspace(0, rows, min(self.n_shards, rows) + 1).round().astype(int)
        shards = [[_data(b)[lo:hi] for b in batch] for lo, hi in zip(bounds[:-1], bounds[1:])]
        return shards, [(hi - lo) / rows for lo, hi in zip(bounds[:-1], bounds[1:])]

    def _run(self, tasks):
        """Task 0 here, the others on the workers (with the module's current parameters): ([task 0's result],
        the workers' results in shard order). A worker's error is raised here, after every shard has finished."""
        params = self.module.parameters()
        self._start_workers(params)
        np.concatenate([p.data.reshape(-1) for p in params], out=self.shared_params)
        busy = self.workers[:len(tasks) - 1]
        replies = []
        try:
            for worker, task in zip(busy, tasks[1:]):
                worker.send(task)
            try:
                with self.blas.limit(limits=self.blas_threads, user_api="blas"):
                    first = _do(self.module, tasks[0])
            finally:
                replies = [worker.receive() for worker in busy]   # every shard has finished, even when one failed
        except BaseException:
            if len(replies) < len(busy):   # interrupted mid-step (Ctrl-C) or a worker died: start afresh next call
                self.close()
            raise
        for status, value in replies:
            if status == "error":
                raise value
        return [first], [value for _, value in replies]

    def _start_workers(self, params):
        """Start the workers, or restart them when the parameters' shapes or dtypes have changed."""
        layout = [(p.shape, p.dtype.str) for p in params]
        if self.workers and layout == self.layout:
            return
        self.close()
        if len({dtype for _, dtype in layout}) != 1:
            raise TypeError(f"ShardedStep needs every parameter in one dtype, got {sorted({d for _, d in layout})}")
        context = multiprocessing.get_context(_START_METHOD)
        dtype = params[0].dtype
        size = sum(p.numel() for p in params)
        raw_params = context.RawArray("b", size * dtype.itemsize)
        self.shared_params = np.frombuffer(raw_params, dtype=dtype)
        self.blas_threads = max(1, usable_cores() // self.n_shards)   # the cores left over go to BLAS
        self.workers.extend(_Worker(context, self.module, raw_params, dtype, index, self.blas_threads)
                            for index in range(1, self.n_shards))
        from threadpoolctl import ThreadpoolController   # here, not at import: one shard (any GPU run) needs none
        self.layout, self.blas = layout, ThreadpoolController()

    def close(self):
        """Stop the worker processes (the next call starts new ones)."""
        _stop(self.workers)


class _Worker:
    """The caller's end of one worker process: a pipe for tasks and replies, and the worker's gradient buffer."""

    def __init__(self, context, module, raw_params, dtype, index, blas_threads):
        raw_grads = context.RawArray("b", len(raw_params))
        self.grads = np.frombuffer(raw_grads, dtype=dtype)
        self.conn, child_end = context.Pipe()
        self.process = context.Process(target=_serve, args=(child_end, self.conn, module, raw_params, raw_grads,
                                                             dtype.str, blas_threads),
                                       name=f"tensorlite-shard-{index}", daemon=True)
        with warnings.catch_warnings():
            # Python >= 3.12 warns about fork() in any multi-threaded process (here: OpenBLAS's idle pool). The
            # child runs only NumPy and one-thread BLAS, and OpenBLAS resets its pool at fork.
            warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
            self.process.start()
        child_end.close()

    def send(self, task):
        try:
            self.conn.send(task)
        except (OSError, ValueError):
            self._died()

    def receive(self):
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self._died()

    def _died(self):
        self.process.join(timeout=1)
        code = self.process.exitcode
        how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 and -code in
               signal.valid_signals() else f"exit code {code}")
        hint = ": out of memory?" if code == -signal.SIGKILL else ""
        raise WorkerDied(f"shard worker {self.process.name} exited unexpectedly ({how}{hint})") from None

    def add_grads_into(self, params, has_grad):
        for p, g, present in zip(params, _flat_views(self.grads, params), has_grad):
            if not present:
                continue
            if p.grad is None:
                p.grad = Tensor(g.copy())   # the buffer is reused by the next step
            else:
                p.grad.data += g


def _serve(conn, callers_end, module, raw_params, raw_grads, dtype, blas_threads):
    """A worker's loop: run one shard per task on the module copy, reply (loss, which params got a gradient)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the calling process's to handle
    if not callers_end.closed:
        callers_end.close()   # a forked copy: holding it open would hide the caller's death (no EOF)
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=blas_threads, user_api="blas")
    params = module.parameters()
    for p, view in zip(params, _flat_views(np.frombuffer(raw_params, dtype=dtype), params)):
        p.data = view
    grads = _flat_views(np.frombuffer(raw_grads, dtype=dtype), params)
    while (task := _next_task(conn)) is not None:
        try:
            result = _do(module, task)
            if task[0] == "step":
                has_grad = [p.grad is not None for p in params]
                for p, g in zip(params, grads):
                    if p.grad is not None:
                        g[...] = p.grad.data
                result = (result, has_grad)
            reply = ("ok", result)
        except Exception as err:   # sent back and raised by the caller, as if the shard ran there
            reply = ("error", err if _is_picklable(err) else RuntimeError(f"{type(err).__name__}: {err}"))
        module.zero_grad()
        conn.send(reply)


def _next_task(conn):
    """The next task, or None to stop (asked to, or the calling process is gone)."""
    try:
        return conn.recv()
    except EOFError:
        return None


def _do(module, task):
    """Run one shard's task: ("step", loss_fn, shard, training, weight, seed) -> its loss, the gradients left in
    the module; ("map", fn, shard, training, seed) -> fn's output as a host array."""
    kind, fn, shard, training, *rest = task
    module.train(training)
    return _forward_backward(module, fn, shard, *rest) if kind == "step" else _forward(module, fn, shard, *rest)


def _forward_backward(model, loss_fn, shard, weight, seed):
    with random.using_generator(np.random.default_rng(seed)):
        loss = loss_fn(model, *(Tensor(a) for a in shard))
        loss.backward(weight)
    return float(loss.data)


def _forward(model, fn, shard, seed):
    with random.using_generator(np.random.default_rng(seed)), no_grad():
        out = fn(model, *(b if isinstance(b, Tensor) else Tensor(b) for b in shard))
    return backend.to_numpy(out.data)


def _flat_views(flat, params):
    """Views of one flat buffer, shaped as the parameters, in order."""
    views, start = [], 0
    for p in params:
        views.append(flat[start:start + p.numel()].reshape(p.shape))
        start += p.numel()
    return views


def _stop(workers):
    for worker in workers:
        try:
            worker.conn.send(None)
        except (OSError, ValueError):
            pass
    for worker in workers:
        worker.process.join(timeout=2)
        if worker.process.is_alive():
            worker.process.terminate()
        worker.conn.close()
    workers.clear()


def _is_picklable(obj):
    try:
        pickle.dumps(obj)
        return True
    except Exception:
        return False


def _check_picklable(loss_fn):
    if not _is_picklable(loss_fn):
        raise TypeError(f"ShardedStep sends loss_fn to its worker processes by pickle, and {loss_fn!r} cannot be "
                        "pickled: pass a module-level function (not a lambda or a local function)")


def _data(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)
