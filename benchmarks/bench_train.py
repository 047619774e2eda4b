"""Time one training step (forward + backward + clip + AdamW) of a GPT preset, tensorlite vs PyTorch, same run;
or, with --end-to-end N, the README's training command for N iterations against nanoGPT's loop in PyTorch.

    python benchmarks/bench_train.py --device cpu --preset cpu --iters 50
    python benchmarks/bench_train.py --device cuda --preset gpu --iters 50
    python benchmarks/bench_train.py --end-to-end 300 --rounds 3

The step is the trainer's: the preset's model with the vocabulary the trainer's tokenizer gives Tiny Shakespeare.
Each framework runs in its own subprocess (so peak memory and thread pools are its own) on the same random
batches; the median ms/iter after warm-up is reported with tokens/s and peak memory, as a table and as JSON.
Peak memory on a GPU is what each framework's caching allocator holds at its high point (CuPy's memory pool,
which keeps every block it grows to; PyTorch's max_memory_reserved), so both count cached free blocks alike.
PyTorch is timed only when it is importable (eager fp32 and TF32 on GPU). On CPU the tensorlite side runs as the
trainer does (the batch split across cores, tensorlite.parallel) with the environment as set, again with the
OPENBLAS_* variables removed, and once on one shard (no data parallelism) to show what the sharding buys. The runs
alternate for --rounds rounds and each framework keeps its best median, so a noisy neighbour does not decide.

--end-to-end N times what a user waits for: `examples/train_char_gpt.py --max-iters N` as the README runs it
(start-up, the data, every evaluation, the checkpoints, the plot and the closing sample, in its own process) and
benchmarks/torch_train.py, nanoGPT's training loop in PyTorch doing the same run (the same preset, data,
schedule, evaluations, a checkpoint at each, the sample), alternating for --rounds rounds, best wall time of each.

On CPU it also times the step's Linear GEMMs alone (forward, dX and dW of every projection, at one shard's rows
on one thread, as each shard runs them) with NumPy's BLAS and, when torch is importable, with PyTorch's: about
half of a CPU step is these GEMMs, so this line says how much of a gap is the BLAS library rather than the rest.
"""
import argparse
import importlib.util
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _batches(vocab_size, batch_size, block_size, n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab_size, size=(2, batch_size, block_size)) for _ in range(n)]


def _peak_host_mib(worker_pids=()):
    """Peak resident memory of this process, plus the private memory of its worker processes
    (tensorlite.parallel) at the end of the run: the pages a forked worker still shares with this process are
    already counted here, and its heap stays at its peak size (the malloc tuning of tensorlite.backend)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + sum(map(_private_mib_of, worker_pids))


def _private_mib_of(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return sum(int(line.split()[1]) for line in f if line.startswith(("Private_Clean:", "Private_Dirty:"))) / 1024


def time_tensorlite(cfg, device, iters, warmup, cpu_shards):
    sys.path.insert(0, ROOT)
    import tensorlite as tl
    from gpt.model import GPT, GPTConfig
    from gpt.train import model_loss
    from tensorlite.nn.utils import clip_grad_norm_
    from tensorlite.parallel import ShardedStep, shards_for

    tl.manual_seed(0)
    model = GPT(GPTConfig(**cfg["model"])).to(device)
    model.train()
    optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3, betas=(0.9, 0.99))
    sharded = ShardedStep(model, shards_for(device, cfg["batch_size"], cpu_shards,   # as the Trainer steps
                                            model.flops_per_token() * cfg["model"]["block_size"]))
    xp = tl.backend.get_xp(device)
    sync = xp.cuda.Device().synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        xp.get_default_memory_pool().free_all_blocks()
    times = []
    for x_np, y_np in _batches(cfg["model"]["vocab_size"], cfg["batch_size"], cfg["model"]["block_size"],
                               warmup + iters):
        x, y = tl.tensor(x_np, device=device), tl.tensor(y_np, device=device)
        sync()
        start = time.perf_counter()
        loss = sharded(model_loss, x, y)
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        sync()
        times.append(time.perf_counter() - start)
    peak = xp.get_default_memory_pool().total_bytes() / 2**20 if device == "cuda" else \
        _peak_host_mib([worker.process.pid for worker in sharded.workers])
    sharded.close()
    return times[warmup:], peak, float(loss.item())


def time_torch(cfg, device, iters, warmup, tf32):
    import torch
    sys.path.insert(0, HERE)
    from torch_reference import TorchGPT

    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    model = TorchGPT(**cfg["model"]).to(device)
    model.train()
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for x_np, y_np in _batches(cfg["model"]["vocab_size"], cfg["batch_size"], cfg["model"]["block_size"],
                               warmup + iters):
        x, y = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device)
        sync()
        start = time.perf_counter()
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_reserved() / 2**20 if device == "cuda" else _peak_host_mib()
    return times[warmup:], peak, float(loss.item())


def linear_gemm_shapes(cfg, rows):
    """(rows, in, out) of every Linear in the model (4 per block and lm_head), as in one shard's forward."""
    m = cfg["model"]
    C = m["n_embd"]
    return [(rows, C, 3 * C), (rows, C, C), (rows, C, 4 * C), (rows, 4 * C, C)] * m["n_layer"] + \
        [(rows, C, m["vocab_size"])]


def shard_rows(cfg, cpu_shards):
    """Token rows of the largest shard the tensorlite run cuts each batch into (tensorlite.parallel)."""
    sys.path.insert(0, ROOT)
    from gpt.model import GPT, GPTConfig
    from tensorlite.parallel import shards_for
    model = GPTConfig(**cfg["model"])
    shards = shards_for("cpu", cfg["batch_size"], cpu_shards, GPT(model).flops_per_token() * model.block_size)
    return -(-cfg["batch_size"] // shards) * model.block_size


def time_gemms(cfg, library, rows, iters, warmup):
    """Seconds per pass over the Linear GEMMs of one shard's step (y = x W^T, dX = dY W, dW = dY^T X), one thread,
    with the operand layouts tensorlite.functional.Linear uses."""
    rng = np.random.default_rng(0)
    arrays = [[rng.standard_normal(shape, dtype=np.float32) for shape in ((M, K), (N, K), (M, N))]
              for M, K, N in linear_gemm_shapes(cfg, rows)]
    if library == "torch":
        import torch
        torch.set_num_threads(1)
        arrays = [[torch.from_numpy(a) for a in group] for group in arrays]
    else:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=1, user_api="blas")
    times = []
    for _ in range(warmup + iters):
        start = time.perf_counter()
        for x, w, g in arrays:
            x @ w.T, g @ w, g.T @ x
        times.append(time.perf_counter() - start)
    return times[warmup:]


def preset_config(name, vocab_size=None):
    """The preset's model and batch as the trainer runs them: the vocabulary is its tokenizer's on its data (or
    vocab_size)."""
    sys.path.insert(0, ROOT)
    from gpt import TrainConfig, load_text, make_tokenizer
    cfg = TrainConfig.from_preset(name)
    model = cfg.model_config(vocab_size or make_tokenizer(cfg.tokenizer, load_text(cfg.data)).vocab_size).to_dict()
    if model.pop("pos_encoding") != "learned":
        raise ValueError(f"preset {name!r}: torch_reference.TorchGPT has learned positions only")
    return {"model": model, "batch_size": cfg.batch_size}


def end_to_end_runs(args, scratch):
    """(label, command, checkout) of the runs --end-to-end times: the README's command (also in the checkout
    --also-root, if given) and torch_train.py, with the same preset, iterations and device."""
    sys.path.insert(0, ROOT)
    from dataclasses import asdict

    from gpt import TrainConfig
    n = args.end_to_end
    cfg = TrainConfig.from_preset(args.preset, device=args.device, max_iters=n, lr_decay_iters=n)

    def readme_command(root, name):
        return [sys.executable, os.path.join(root, "examples", "train_char_gpt.py"), "--preset", args.preset,
                "--device", args.device, "--max-iters", str(n), "--out-dir", os.path.join(scratch, name),
                "--overwrite"]
    torch = [sys.executable, os.path.join(HERE, "torch_train.py"), "--out-dir", os.path.join(scratch, "torch"),
             "--config", json.dumps(asdict(cfg))]
    runs = [("tensorlite (the README command)", readme_command(ROOT, "tensorlite"), ROOT)]
    if args.also_root:
        runs.append((f"tensorlite at {args.also_root}", readme_command(args.also_root, "also"), args.also_root))
    return runs + [("pytorch (nanoGPT's loop)", torch, ROOT)]


def time_end_to_end(label, cmd, root):
    """Wall seconds of one run from its start to its exit, the CPU seconds of its processes (its shard workers
    included: a loaded machine stretches the wall time more than this), and its final val loss; None if it
    failed."""
    start, cpu = time.perf_counter(), _children_cpu_s()
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": root})
    seconds, cpu = time.perf_counter() - start, _children_cpu_s() - cpu
    if out.returncode != 0:
        print(f"[{label}] failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    val = re.search(r"^finished at iteration \d+: val loss ([\d.]+)", out.stdout, re.M)
    return {"framework": label, "wall_s": seconds, "cpu_s": cpu, "val_loss": float(val[1]) if val else None}


def _children_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def end_to_end(args, has_torch):
    if not has_torch:
        print("PyTorch is not importable: timing tensorlite alone")
    walls, best, failed, interrupted = {}, {}, set(), False
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as scratch:   # the runs' out-dirs
        runs = [run for run in end_to_end_runs(args, scratch) if has_torch or run[0].startswith("tensorlite")]
        try:
            for _ in range(args.rounds):
                for label, cmd, root in runs:
                    r = time_end_to_end(label, cmd, root)
                    if r is None:
                        failed.add(label)
                        continue
                    walls.setdefault(label, []).append(round(r["wall_s"], 2))
                    if label not in best or r["wall_s"] < best[label]["wall_s"]:
                        best[label] = r
        except KeyboardInterrupt:
            interrupted = True
    print(f"\nthe README command's run of {args.end_to_end} iterations (preset {args.preset} on {args.device}), "
          f"end to end, best of {args.rounds} alternating rounds; load average {os.getloadavg()[0]:.2f}")
    print(f"{'run':34s} {'wall s':>8s} {'CPU s':>7s} {'val loss':>9s}  wall s of every round")
    for r in best.values():
        r["rounds"] = walls[r["framework"]]
        val = f"{r['val_loss']:9.4f}" if r["val_loss"] is not None else f"{'?':>9s}"
        print(f"{r['framework']:34s} {r['wall_s']:8.2f} {r['cpu_s']:7.2f} {val}  "
              f"{', '.join(f'{w:.2f}' for w in r['rounds'])}")
    torch_run = best.get("pytorch (nanoGPT's loop)")
    for r in best.values():
        if torch_run and r is not torch_run:
            print(f"{r['framework']} / pytorch: {r['wall_s'] / torch_run['wall_s']:.2f}x")
    return finish(args.json, {"preset": args.preset, "device": args.device, "end_to_end": args.end_to_end,
                              "results": list(best.values())}, sorted(failed), interrupted)


def run_one(args):
    """Child process: time one framework, print one JSON line."""
    cfg = preset_config(args.preset, args.vocab_size)
    if args.only.startswith("gemm-"):
        rows = shard_rows(cfg, args.cpu_shards)
        times = time_gemms(cfg, args.only[len("gemm-"):], rows, args.iters, args.warmup)
        print(json.dumps({"framework": args.label, "ms_per_iter": statistics.median(times) * 1e3, "rows": rows}))
        return
    if args.only == "tensorlite":
        times, peak, loss = time_tensorlite(cfg, args.device, args.iters, args.warmup, args.cpu_shards)
    else:
        times, peak, loss = time_torch(cfg, args.device, args.iters, args.warmup, tf32=args.only == "torch-tf32")
    ms = statistics.median(times) * 1e3
    tokens = cfg["batch_size"] * cfg["model"]["block_size"]
    print(json.dumps({"framework": args.label or args.only, "ms_per_iter": ms, "tokens_per_s": tokens / ms * 1e3,
                      "peak_mib": peak, "final_loss": loss, "iters": len(times)}))


def _spawn(args, only, label, env=None, cpu_shards=None):
    cmd = [sys.executable, __file__, "--device", args.device, "--preset", args.preset, "--iters", str(args.iters),
           "--warmup", str(args.warmup), "--only", only, "--label", label,
           "--cpu-shards", str(args.cpu_shards if cpu_shards is None else cpu_shards)] + \
        (["--vocab-size", str(args.vocab_size)] if args.vocab_size else [])
    return json_of_child(cmd, label, env)


def json_of_child(cmd, label, env=None):
    """Run a measuring child process; the JSON object on its last line, or None (its error printed) if it failed."""
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"[{label}] failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--preset", choices=["tiny", "cpu", "gpu"], default="cpu")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate the frameworks this many times and keep each one's best median "
                             "(shared machines are noisy)")
    parser.add_argument("--cpu-shards", type=int, default=0,
                        help="CPU: cores each batch is split across, as the trainer's --cpu-shards (0: auto)")
    parser.add_argument("--vocab-size", type=int,
                        help="time the step with this vocabulary instead of the trainer's tokenizer's (256: the "
                             "char tokenizer's byte fallback before its escape id)")
    parser.add_argument("--end-to-end", type=int, metavar="ITERS",
                        help="time the README's training command for ITERS iterations against nanoGPT's loop in "
                             "PyTorch (benchmarks/torch_train.py), wall clock from start to exit")
    parser.add_argument("--also-root", metavar="DIR",
                        help="--end-to-end: also time the README command of the checkout in DIR (before a change)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--only", choices=["tensorlite", "torch", "torch-tf32", "gemm-numpy", "gemm-torch"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        run_one(args)
        return 0

    has_torch = importlib.util.find_spec("torch") is not None   # not imported here: children inherit this peak RSS
    if args.end_to_end is not None:
        return end_to_end(args, has_torch)
    runs = [("tensorlite", "tensorlite", None, None)]
    gemm_runs = []
    if args.device == "cpu":
        unset = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS")}
        runs.append(("tensorlite", "tensorlite (OPENBLAS_* unset)", unset, None))
        runs.append(("tensorlite", "tensorlite (1 shard: no data parallel)", None, 1))
        gemm_runs = [("gemm-numpy", "NumPy's BLAS", None, None)] + \
            ([("gemm-torch", "PyTorch's BLAS", None, None)] if has_torch else [])
    else:   # tensorlite's GPU default is TF32 matmuls (as "pytorch eager tf32"); this row is full float32
        fp32 = {**os.environ, "TENSORLITE_TF32": "0", "CUPY_TF32": "0"}
        runs.append(("tensorlite", "tensorlite fp32 (TENSORLITE_TF32=0)", fp32, None))
    if has_torch:
        runs.append(("torch", "pytorch eager fp32", None, None))
        if args.device == "cuda":
            runs.append(("torch-tf32", "pytorch eager tf32", None, None))
    else:
        print("PyTorch is not importable: timing tensorlite alone")
    best, failed, interrupted = {}, set(), False
    try:
        for _ in range(args.rounds):
            for only, label, env, cpu_shards in runs + gemm_runs:
                r = _spawn(args, only, label, env, cpu_shards)
                if r is None:
                    failed.add(label)
                elif label not in best or r["ms_per_iter"] < best[label]["ms_per_iter"]:
                    best[label] = r
    except KeyboardInterrupt:   # Ctrl-C, or gpu_checks.sh's time limit: report the runs that finished
        interrupted = True
    gemms = [best.pop(label) for _, label, _, _ in gemm_runs if label in best]
    results = list(best.values())
    blas = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")}
    vocab_size = preset_config(args.preset, args.vocab_size)["model"]["vocab_size"]
    print(f"\npreset {args.preset} on {args.device} (vocabulary {vocab_size}), best of {args.rounds} alternating "
          f"rounds of {args.iters} timed iters after {args.warmup} warm-up; OPENBLAS env: {blas or 'not set'}")
    print(f"{'framework':32s} {'ms/iter':>9s} {'tokens/s':>10s} {'peak MiB':>9s}")
    for r in results:
        print(f"{r['framework']:32s} {r['ms_per_iter']:9.2f} {r['tokens_per_s']:10.0f} {r['peak_mib']:9.1f}")
    if gemms:
        print(f"the step's Linear GEMMs alone, one shard's {gemms[0]['rows']} rows on one thread: " +
              ", ".join(f"{g['framework']} {g['ms_per_iter']:.2f} ms" for g in gemms))
    return finish(args.json, {"preset": args.preset, "device": args.device, "results": results,
                              "linear_gemms": gemms}, sorted(failed), interrupted)


def finish(json_path, report, failed, interrupted=False):
    """Write the report to json_path (if given); the exit status: 130 if interrupted (the report holds the runs
    that finished), else 1 (naming them) if any measurement failed."""
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report, f, indent=2)
    if failed:
        print(f"failed (their errors are above): {', '.join(sorted(failed))}", file=sys.stderr)
    if interrupted:
        print("interrupted: the table holds the runs that finished before it", file=sys.stderr)
        return 130
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
