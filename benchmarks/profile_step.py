"""Where a training step's time goes, grouped by Function (forward / backward), optimizer and engine.

    python benchmarks/profile_step.py --preset cpu --steps 30

Runs cProfile over whole steps (forward, backward, clip, AdamW) of the preset's model on the CPU and prints
milliseconds per step for each group, largest first. cProfile sees only the main thread, so the step runs what
one core runs in the trainer's data-parallel step: one shard's rows of the batch (the preset's batch split as
tensorlite.parallel splits it; --rows to choose) with BLAS on one thread, then clipping and AdamW over the whole
model. The figures in docs/performance.md come from it.
"""
import argparse
import cProfile
import dataclasses
import os
import pstats
import sys
import tempfile
import time

from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gpt import TrainConfig, Trainer  # noqa: E402
from tensorlite.parallel import auto_shards  # noqa: E402


def function_classes():
    """(file, first line, 'forward'|'backward') -> class name, for every Function subclass."""
    from tensorlite.autograd import Function
    found, stack = {}, [Function]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        for name in ("forward", "backward"):
            if name in cls.__dict__:
                code = cls.__dict__[name].__code__
                found[(code.co_filename, code.co_firstlineno, name)] = f"{cls.__name__}.{name}"
    return found


def group_of(key, classes):
    """A readable name for a profiled function ('Linear.backward', 'AdamW.step'), or None for the rest."""
    filename, _, name = key
    if key in classes:
        return classes[key]
    if name == "step" and filename.endswith("optim.py"):
        return "AdamW.step"
    return "clip_grad_norm_" if name == "clip_grad_norm_" else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rows", type=int, help="batch rows (default: one shard's, as each core runs them)")
    args = parser.parse_args()
    cfg = TrainConfig.from_preset(args.preset, out_dir=tempfile.mkdtemp(prefix="tensorlite-profile-"),
                                  max_iters=10 ** 6, cpu_shards=1)
    trainer = Trainer(cfg)
    shards = auto_shards(cfg.batch_size, trainer.model.flops_per_token() * cfg.block_size)   # the trainer's
    rows = args.rows or -(-cfg.batch_size // shards)
    trainer.cfg = dataclasses.replace(cfg, batch_size=rows)
    threadpool_limits(limits=1, user_api="blas")   # as in each shard
    for _ in range(5):
        trainer.step()
    start = time.perf_counter()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.steps):
        trainer.step()
    profiler.disable()
    wall = (time.perf_counter() - start) / args.steps * 1e3
    classes = function_classes()
    groups = {}
    for key, (_, _, _, cumtime, _) in pstats.Stats(profiler).stats.items():
        group = group_of(key, classes)
        if group:
            groups[group] = groups.get(group, 0.0) + cumtime
    print(f"{args.preset} preset, {rows} rows of {cfg.block_size} (vocabulary {trainer.tokenizer.vocab_size}), "
          f"BLAS on one thread: {wall:.1f} ms/step under the profiler ({args.steps} steps)")
    print(f"{'where':34s} {'ms/step':>8s} {'share':>6s}")
    for group, seconds in sorted(groups.items(), key=lambda kv: -kv[1]):
        ms = seconds / args.steps * 1e3
        print(f"{group:34s} {ms:8.2f} {ms / wall:6.1%}")
    listed = sum(groups.values()) / args.steps * 1e3
    print(f"{'everything else (engine, data)':34s} {wall - listed:8.2f} {(wall - listed) / wall:6.1%}")
    return wall


if __name__ == "__main__":
    main()
