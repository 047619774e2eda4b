"""GPT-2 124M's shape in tensorlite beside the same model in PyTorch: generation with the KV cache, one
fine-tuning step, and the peak memory of each.

    python benchmarks/bench_gpt2.py                      # CPU: generation, then fine-tuning, both frameworks
    python benchmarks/bench_gpt2.py --device cuda        # GPU: also tensorlite's reference path (no flash kernels)
    python benchmarks/bench_gpt2.py --only-memory        # tensorlite alone, once each: its peak RSS

The weights are random (nanoGPT's init): a GPT-2 costs the same whatever its weights, and the real ones need a
download. Generation is batch 1, a 16-token prompt and 128 new tokens, greedy, with the KV cache; tokens/s counts
the new tokens over the whole call (the prompt's pass included). Fine-tuning is one step (forward, backward,
clip, AdamW) at batch 4 x 256 tokens, timed by benchmarks/bench_train.py's own loops, so the tensorlite side
splits the batch across cores as the trainer does. Each measurement runs in its own process, so its peak memory
(RSS on the CPU, with the data-parallel workers' private memory; the allocator's pool on a GPU) is its own.
PyTorch (benchmarks/torch_reference.py, the same layers) runs when it is importable. On a GPU GPT-2's head size
is 64, which the flash attention kernels serve; the TENSORLITE_FUSED=0 row is the reference path without them.
"""
import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_train import _peak_host_mib, finish, json_of_child, time_tensorlite, time_torch  # noqa: E402

SHAPES = {   # block_size: the positions the model has; fine-tuning uses --block-size of them
    "gpt2": dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768),
    "tiny": dict(vocab_size=512, block_size=256, n_layer=2, n_head=4, n_embd=64),   # seconds: for the tests
}


def generate_tensorlite(shape, device, prompt, args):
    sys.path.insert(0, os.path.dirname(HERE))
    import tensorlite as tl
    from gpt.model import GPT, GPTConfig
    tl.manual_seed(0)
    model = GPT(GPTConfig(**shape, dropout=0.0, bias=True)).to(device).eval()
    idx = tl.tensor(prompt, device=device)
    times = []
    for _ in range(args.warmup + args.iters):
        start = time.perf_counter()
        out = model.generate(idx, args.new_tokens, greedy=True).numpy()   # to the host: waits for the GPU
        times.append(time.perf_counter() - start)
    xp = tl.backend.get_xp(device)
    peak = xp.get_default_memory_pool().total_bytes() / 2**20 if device == "cuda" else _peak_host_mib()
    return times[args.warmup:], peak, out


def generate_torch(shape, device, prompt, args):
    import torch
    from torch_reference import TorchGPT
    torch.manual_seed(0)
    model = TorchGPT(**shape, dropout=0.0, bias=True).to(device).eval()
    idx = torch.from_numpy(prompt).to(device)
    times = []
    for _ in range(args.warmup + args.iters):
        start = time.perf_counter()
        out = model.generate(idx, args.new_tokens).cpu().numpy()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_reserved() / 2**20 if device == "cuda" else _peak_host_mib()
    return times[args.warmup:], peak, out


def run_one(args):
    """Child process: one measurement, one JSON line."""
    shape = SHAPES[args.shape]
    task, framework = args.only.split(":")
    if task == "generate":
        prompt = np.random.default_rng(0).integers(0, shape["vocab_size"], size=(1, args.prompt))
        times, peak, out = (generate_tensorlite if framework == "tensorlite" else generate_torch)(
            shape, args.device, prompt, args)
        assert out.shape == (1, args.prompt + args.new_tokens)
        result = {"tokens_per_s": args.new_tokens / statistics.median(times)}
    else:
        cfg = {"model": dict(shape, block_size=args.block_size, dropout=0.0, bias=True), "batch_size": args.batch_size}
        if framework == "tensorlite":
            times, peak, _ = time_tensorlite(cfg, args.device, args.iters, args.warmup, cpu_shards=0)
        else:
            times, peak, _ = time_torch(cfg, args.device, args.iters, args.warmup, tf32=False)
        result = {"ms_per_step": statistics.median(times) * 1e3}
    print(json.dumps(dict(result, task=task, framework=args.label, peak_mib=peak, iters=len(times))))


def measure(args, only, label, env=None):
    cmd = [sys.executable, __file__, "--only", only, "--label", label] + \
        [f"--{key.replace('_', '-')}={getattr(args, key)}" for key in
         ("device", "shape", "prompt", "new_tokens", "batch_size", "block_size", "iters", "warmup")]
    return json_of_child(cmd, label, env)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="gpt2")
    parser.add_argument("--prompt", type=int, default=16, help="prompt tokens of the generation")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4, help="rows of the fine-tuning step")
    parser.add_argument("--block-size", type=int, default=256, help="tokens per row of the fine-tuning step")
    parser.add_argument("--iters", type=int, default=3, help="timed calls of each measurement (median kept)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--only-memory", action="store_true",
                        help="tensorlite alone, one call of each, no warm-up: its peak memory")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        run_one(args)
        return 0
    if args.only_memory:
        args.iters, args.warmup = 1, 0
    frameworks = [("tensorlite", "tensorlite", None)]
    if args.device == "cuda" and not args.only_memory:
        frameworks.append(("tensorlite", "tensorlite reference (TENSORLITE_FUSED=0)",
                           {**os.environ, "TENSORLITE_FUSED": "0"}))
    if importlib.util.find_spec("torch") is None:   # found, not imported: children inherit this process's RSS
        print("PyTorch is not importable: timing tensorlite alone")
    elif not args.only_memory:
        frameworks.append(("torch", "pytorch eager fp32", None))
    results, failed = [], []
    for task in ("generate", "finetune"):
        for framework, label, env in frameworks:
            r = measure(args, f"{task}:{framework}", label, env)
            if r is None:
                failed.append(f"{task} {label}")
            else:
                results.append(r)

    memory = "GPU pool MiB" if args.device == "cuda" else "peak RSS MiB"
    print(f"\nGPT-2 shape {args.shape} {SHAPES[args.shape]}, random weights, on {args.device}; median of "
          f"{args.iters} after {args.warmup} warm-up")
    print(f"generation: batch 1, prompt {args.prompt} + {args.new_tokens} new tokens, greedy, KV cache")
    print(f"  {'framework':42s} {'tokens/s':>9s} {memory:>13s}")
    for r in (r for r in results if r["task"] == "generate"):
        print(f"  {r['framework']:42s} {r['tokens_per_s']:9.1f} {r['peak_mib']:13.0f}")
    print(f"fine-tuning step: batch {args.batch_size} x {args.block_size} tokens, AdamW")
    print(f"  {'framework':42s} {'ms/step':>9s} {memory:>13s}")
    for r in (r for r in results if r["task"] == "finetune"):
        print(f"  {r['framework']:42s} {r['ms_per_step']:9.0f} {r['peak_mib']:13.0f}")
    return finish(args.json, {"shape": args.shape, "device": args.device, "results": results}, failed)


if __name__ == "__main__":
    sys.exit(main())
