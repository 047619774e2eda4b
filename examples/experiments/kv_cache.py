"""The KV cache: token-by-token generation that reuses past keys and values gives the same logits as the
parallel masked forward, and each new token costs O(T) instead of O(T^2).
    python examples/experiments/kv_cache.py [--quick]
"""
import time

import numpy as np

from common import figure, parser, save, small_gpt, table

import tensorlite as tl
from gpt.model import KVCache


@tl.no_grad()
def cached_logits(model, idx):
    cache = KVCache(model.config.n_layer)
    return tl.cat([model(idx[:, t:t + 1], cache=cache)[0] for t in range(idx.shape[1])], dim=1)


def time_per_token(model, length, use_cache, repeats=1):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        model.generate(tl.tensor([[0]]), length, greedy=True, use_cache=use_cache)
        best = min(best, (time.perf_counter() - start) / length)
    return best * 1e3


def main(argv=None):
    args = parser(__doc__.splitlines()[0], "kv_cache.png").parse_args(argv)
    block = 64 if args.quick else 512
    model = small_gpt(65, args.seed, block_size=block, n_layer=4, n_embd=128, n_head=4).eval()
    idx = tl.tensor(np.random.default_rng(args.seed).integers(0, 65, (1, min(block, 48))))
    with tl.no_grad():
        parallel = model(idx)[0].numpy()
    diff = float(np.abs(cached_logits(model, idx).numpy() - parallel).max())
    lengths = [8, 16, 32, 64] if args.quick else [16, 32, 64, 128, 256, 511]
    times = [(n, time_per_token(model, n, True), time_per_token(model, n, False)) for n in lengths]
    table(["check", "value"], [("max |cached - parallel| logits", f"{diff:.2e}")])
    table(["tokens generated", "ms/token with cache", "ms/token without"], times)
    fig, ax = figure(1, width=6)
    ax[0].plot(lengths, [t[1] for t in times], "o-", label="KV cache: one new position per step")
    ax[0].plot(lengths, [t[2] for t in times], "s--", label="no cache: the whole prefix every step")
    ax[0].set(title=f"generation cost (logits agree to {diff:.1e})", xlabel="tokens generated",
              ylabel="ms per token")
    ax[0].legend(fontsize=8)
    return save(fig, args.out)


if __name__ == "__main__":
    main()
