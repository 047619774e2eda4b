"""A run's out-dir: ckpt.npz, log.jsonl and loss.png, and the lock that keeps it to one trainer at a time.

The lock is an OS file lock (flock on out_dir/.lock), so the OS releases it when the process ends, however it
ends: a kill -9 leaves no stale lock, and a second trainer on the same out-dir fails at once instead of
interleaving its log with the first one's and racing it for the checkpoint. Everything that can be wrong with the
directory is checked before training starts, not at the first save.
"""
import contextlib
import fcntl
import json
import os
import tempfile
import weakref

from .checkpoint import CHECKPOINT, CheckpointError, atomic_write, meta_field, read_meta

LOG = "log.jsonl"
PLOT = "loss.png"
LOCK = ".lock"

_held = set()   # the lock files this process holds, by descriptor


def _close_inherited_locks():
    """In a forked child (a shard worker): close its copies of the parent's locks, so that the parent's death
    releases them at once instead of when the last child exits."""
    for fd in _held:
        os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


class OutDirError(RuntimeError):
    """An out-dir a run cannot use: not a directory, not writable, locked by another trainer, or holding another
    run's checkpoint."""


class SaveError(OSError):
    """A checkpoint or log that could not be written during a run (a full or read-only disk)."""


def _release(fd):
    if fd in _held:   # not in a forked child: it closed its copy at the fork
        _held.discard(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)   # before close: a forked copy of fd must not keep the lock alive
        os.close(fd)


class OutDir:
    """The files of one run's directory, and its lock: held from open() (or lock()) to unlock(), or until this
    object is dropped or the process ends."""

    def __init__(self, path):
        self.path = path
        self.checkpoint = os.path.join(path, CHECKPOINT)
        self.log_path = os.path.join(path, LOG)
        self.plot_path = os.path.join(path, PLOT)
        self._unlock = None

    def open(self):
        """Create the directory if needed, take its lock and check that files can be written in it."""
        try:
            os.makedirs(self.path, exist_ok=True)
        except FileExistsError:
            raise OutDirError(f"out-dir {self.path} is a file, not a directory: choose another --out-dir") from None
        except NotADirectoryError:
            raise OutDirError(f"out-dir {self.path}: a part of that path is a file, not a directory") from None
        except OSError as err:
            raise OutDirError(f"cannot create out-dir {self.path} ({err.strerror})") from None
        for path in (self.checkpoint, self.log_path, self.plot_path):
            if os.path.isdir(path):
                raise OutDirError(f"{path} is a directory, and the run writes a file of that name there: move it "
                                  "or choose another --out-dir")
        self.lock()
        with self._not_writable():
            fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=self.path)
            os.close(fd)
            os.remove(probe)

    @contextlib.contextmanager
    def _not_writable(self):
        try:
            yield
        except OSError as err:
            raise OutDirError(f"cannot write in out-dir {self.path} ({err.strerror or err}): choose another "
                              "--out-dir") from None

    def lock(self):
        """Take the out-dir's lock (if this object does not hold it already); OutDirError if another holds it."""
        if self.locked:
            return
        with self._not_writable():
            fd = os.open(os.path.join(self.path, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise OutDirError(f"another trainer{f' (process {holder})' if holder else ''} is using out-dir "
                              f"{self.path}: wait for it to finish, or choose another --out-dir") from None
        _held.add(fd)
        self._unlock = weakref.finalize(self, _release, fd)   # also when this object is dropped
        with self._not_writable():
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())

    @property
    def locked(self):
        return self._unlock is not None and self._unlock.alive

    def unlock(self):
        if self._unlock is not None:
            self._unlock()

    def refuse_to_replace(self):
        """OutDirError when the out-dir holds a checkpoint (that a new run would replace)."""
        if not os.path.exists(self.checkpoint):
            return
        try:
            held = f"iteration {meta_field(read_meta(self.checkpoint), self.checkpoint, 'iter_num')} of another run"
        except CheckpointError:
            held = "an unreadable checkpoint"
        raise OutDirError(f"{self.checkpoint} holds {held}: --resume to continue it, --overwrite to start over, "
                          "or another --out-dir")

    def log(self, record):
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self):
        """The log's records; a line that is not JSON (half-written when a run was killed) is skipped."""
        if not os.path.exists(self.log_path):
            return []
        records = []
        with open(self.log_path) as f:
            for line in f:
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        return [r for r in records if isinstance(r, dict) and isinstance(r.get("iter"), int)]

    def trim_log(self, through):
        """Keep only the records of iterations <= through (None: start a fresh log), rewritten atomically: a run
        resumed from iteration N logs N+1, N+2, ... again, and a killed run had logged some of them already."""
        if not os.path.exists(self.log_path):
            return
        if through is None:
            os.remove(self.log_path)
            return
        kept = "".join(json.dumps(r) + "\n" for r in self.records() if r["iter"] <= through)
        atomic_write(self.log_path, lambda f: f.write(kept.encode()))

    def plot_losses(self):
        """loss.png: training loss per logged step and train/val loss at each evaluation."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        records = self.records()
        if not records:
            return
        steps = [(r["iter"], r["loss"]) for r in records if "loss" in r]
        evals = [(r["iter"], r["train_loss"], r["val_loss"]) for r in records if "val_loss" in r]
        fig, ax = plt.subplots(figsize=(7, 4))
        if steps:
            ax.plot(*zip(*steps), lw=0.8, alpha=0.6, label="train (step)")
        if evals:
            it, tr, va = zip(*evals)
            ax.plot(it, tr, "o-", label="train (eval)")
            ax.plot(it, va, "s-", label="val (eval)")
        ax.set_xlabel("iteration")
        ax.set_ylabel("cross-entropy loss (nats)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(self.plot_path, dpi=100)
        plt.close(fig)
