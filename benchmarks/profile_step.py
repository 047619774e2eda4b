"""Where a training step's time goes, grouped by Function (forward / backward), optimizer and engine.

    python benchmarks/profile_step.py --preset cpu --steps 30

Runs cProfile over whole steps (forward, backward, clip, AdamW) of the preset's model on the CPU and prints
milliseconds per step for each group, largest first, with the batch on one core (--cpu-shards 1: cProfile sees
only the main thread). The figures in docs/performance.md come from it.
"""
import argparse
import cProfile
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gpt import TrainConfig, Trainer  # noqa: E402


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
    args = parser.parse_args()
    # one shard: cProfile sees only the main thread, so the data-parallel step would hide half of the work
    trainer = Trainer(TrainConfig.from_preset(args.preset, out_dir="/tmp/tensorlite-profile", max_iters=10 ** 6,
                                              cpu_shards=1))
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
    print(f"{args.preset} preset: {wall:.1f} ms/step under the profiler ({args.steps} steps)")
    print(f"{'where':34s} {'ms/step':>8s} {'share':>6s}")
    for group, seconds in sorted(groups.items(), key=lambda kv: -kv[1]):
        ms = seconds / args.steps * 1e3
        print(f"{group:34s} {ms:8.2f} {ms / wall:6.1%}")
    listed = sum(groups.values()) / args.steps * 1e3
    print(f"{'everything else (engine, data)':34s} {wall - listed:8.2f} {(wall - listed) / wall:6.1%}")
    return wall


if __name__ == "__main__":
    main()
