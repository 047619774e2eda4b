"""Launch every kernel of kernels/*.cu once, through the public ops, at small shapes that are no tile multiple.

    python benchmarks/launch_each_kernel.py                                   # on a GPU
    compute-sanitizer --tool memcheck python benchmarks/launch_each_kernel.py # what gpu_checks.sh runs
    python benchmarks/launch_each_kernel.py --device cpu                      # the same launches, CPU emulator

This is the program compute-sanitizer (memcheck, racecheck) watches: every kernel runs at a shape whose edges
fall inside a tile (T = 67 rows for flash attention's 64, 67 rows for LayerNorm backward's 32, 100 columns for
the embedding kernel's 32, elementwise sizes off the 256-thread blocks), so an unguarded edge reads or writes out
of bounds where the sanitizer sees it. On a GPU, CuPy's memory pool is switched off first: inside the pool's large
blocks an overrun lands in a neighbour's memory and memcheck would not see it; with plain cudaMalloc per array it
does. On the CPU the emulator's guard pages play that part (TENSORLITE_FUSED=emulate, set by --device cpu).

It prints the versions it runs with, then the kernels it launched; it fails if any output or gradient is not
finite. tests/test_benchmarks.py checks on the CPU that every kernel of every source is among those launched.
"""
import argparse
import importlib.metadata
import platform
import sys

import numpy as np

import tensorlite as tl
import tensorlite.functional as F
from tensorlite.cuda import launch
from tensorlite.cuda.mode import fused_mode

T = 67            # sequence positions and rows: no multiple of 64 (flash attention) nor 32 (LayerNorm backward)
VOCAB = 65        # rows of softmax / cross-entropy and of the embedding table (a 128-thread row each)
WIDTH = 100       # columns: no multiple of the embedding kernel's 32, nor of 128


def versions(device):
    """One line: Python and package versions, and the GPU (name, CUDA runtime and driver) when on one."""
    packages = []
    for name in ("numpy", "cupy-cuda13x", "cupy-cuda12x", "torch"):
        try:
            packages.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    line = f"python {platform.python_version()}, " + ", ".join(packages)
    if device == "cuda":
        runtime = tl.backend.cupy_or_raise().cuda.runtime
        name = runtime.getDeviceProperties(0)["name"]
        line += (f"; {name.decode() if isinstance(name, bytes) else name}, CUDA runtime "
                 f"{runtime.runtimeGetVersion()}, driver {runtime.driverGetVersion()}")
    else:
        line += "; no GPU: the kernels run under the CPU emulator"
    return line


def record_launches():
    """Wrap launch.run so that every kernel launched is recorded by name (the fused ops all launch through it)."""
    launched = []
    run = launch.run

    def run_and_record(spec):
        launched.append(spec.kernel)
        run(spec)
    launch.run = run_and_record
    return launched


class Launcher:
    """Runs one op forward and backward on fresh random inputs and checks what comes out."""

    def __init__(self, device):
        self.device = device
        self.rng = np.random.default_rng(0)

    def random(self, *shape, requires_grad=True):
        return tl.tensor(self.rng.standard_normal(shape).astype(np.float32), device=self.device,
                         requires_grad=requires_grad)

    def check(self, name, fn, *inputs):
        out = fn(*inputs)
        out.backward(self.random(*out.shape, requires_grad=False).data)
        results = [out] + [t.grad for t in inputs if t.requires_grad]
        if not all(np.isfinite(r.numpy()).all() for r in results):    # .numpy() also waits for the kernels
            raise AssertionError(f"{name}: an output or a gradient is not finite")
        print(f"  {name}: ok")


def launch_all(device):
    run = Launcher(device)
    for D in launch.FA_HEAD_SIZES:                       # one kernel of each kind per head size
        q, k, v = (run.random(2, 3, T, D) for _ in range(3))
        run.check(f"attention D={D}, causal, dropout", lambda *t: F.scaled_dot_product_attention(
            *t, is_causal=True, dropout_p=0.1), q, k, v)
        run.check(f"attention D={D}, full", lambda *t: F.scaled_dot_product_attention(*t), q, k, v)
    logits = run.random(T, VOCAB)
    run.check("softmax", lambda z: F.softmax(z, dim=-1), logits)
    targets = tl.tensor(np.where(run.rng.random(T) < 0.2, -1, run.rng.integers(0, VOCAB, T)), device=device)
    run.check("cross-entropy", lambda z: F.cross_entropy(z, targets, ignore_index=-1), logits)
    x, weight, bias = run.random(T, WIDTH), run.random(WIDTH), run.random(WIDTH)
    run.check("layer norm", lambda x, w, b: F.layer_norm(x, (WIDTH,), w, b), x, weight, bias)
    run.check("layer norm, no bias", lambda x, w: F.layer_norm(x, (WIDTH,), w), x, weight)
    run.check("gelu", lambda t: F.gelu(t, approximate="tanh"), x)
    run.check("dropout", lambda t: F.dropout(t, p=0.2), x)
    run.check("dropout + residual", lambda *t: F.dropout_add(*t, p=0.2), x, run.random(T, WIDTH))
    ids = tl.tensor(run.rng.integers(0, VOCAB, (2, T)), device=device)   # 134 positions for a 65-row table
    run.check("embedding", lambda w: F.embedding(ids, w), run.random(VOCAB, WIDTH))
    params = [run.random(T, WIDTH), run.random(T)]
    optimizer = tl.optim.AdamW(params, lr=1e-3)
    for p in params:
        p.grad = run.random(*p.shape, requires_grad=False)
    optimizer.step()
    if not all(np.isfinite(p.numpy()).all() for p in params):
        raise AssertionError("adamw: a parameter is not finite")
    print("  adamw: ok")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cuda: the kernels on the GPU; cpu: under the CPU emulator")
    args = parser.parse_args(argv)
    print(versions(args.device))
    if args.device == "cuda":
        tl.backend.cupy_or_raise().cuda.set_allocator(None)    # one cudaMalloc per array: see the docstring
    launched = record_launches()
    with fused_mode("1" if args.device == "cuda" else "emulate"):
        launch_all(args.device)
    names = sorted(set(launched))
    print(f"launched {len(names)} kernels: {' '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
