"""Causal attention forward and forward+backward: fused kernel vs the reference CuPy path vs PyTorch SDPA (fp32).

    python benchmarks/bench_attention.py              # B=64 H=6 D=64, T=256 and T=1024 (needs a GPU)
"""
import argparse
import statistics
import time

import numpy as np

import tensorlite as tl
import tensorlite.functional as F
from tensorlite.cuda.mode import fused_mode


def _time(fn, sync, iters, warmup=3):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def tensorlite_times(mode, shape, iters):
    cupy = tl.backend.cupy_or_raise()
    arrays = [cupy.asarray(np.random.default_rng(i).standard_normal(shape).astype(np.float32)) for i in range(3)]
    with fused_mode(mode):
        def forward():
            with tl.no_grad():
                F.scaled_dot_product_attention(*[tl.Tensor(a) for a in arrays], is_causal=True)

        def forward_backward():
            ts = [tl.Tensor(a, requires_grad=True) for a in arrays]
            F.scaled_dot_product_attention(*ts, is_causal=True).sum().backward()
        sync = cupy.cuda.Device().synchronize
        return _time(forward, sync, iters), _time(forward_backward, sync, iters)


def torch_times(shape, iters):
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    ts = [torch.randn(shape, device="cuda", requires_grad=True) for _ in range(3)]

    def forward():
        with torch.no_grad():
            torch.nn.functional.scaled_dot_product_attention(*ts, is_causal=True)

    def forward_backward():
        torch.nn.functional.scaled_dot_product_attention(*ts, is_causal=True).sum().backward()
    return _time(forward, torch.cuda.synchronize, iters), _time(forward_backward, torch.cuda.synchronize, iters)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--seq", type=int, nargs="+", default=[256, 1024])
    args = parser.parse_args()
    print(f"{'T':>5s} {'path':24s} {'fwd ms':>9s} {'fwd+bwd ms':>11s}")
    for T in args.seq:
        shape = (64, 6, T, 64)
        rows = [("tensorlite fused", tensorlite_times("1", shape, args.iters)),
                ("tensorlite reference", tensorlite_times("0", shape, args.iters))]
        try:
            rows.append(("pytorch sdpa fp32", torch_times(shape, args.iters)))
        except ImportError:
            pass
        for name, (fwd, both) in rows:
            print(f"{T:5d} {name:24s} {fwd:9.3f} {both:11.3f}")


if __name__ == "__main__":
    main()
