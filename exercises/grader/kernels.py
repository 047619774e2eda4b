"""Exercises 11 and 12: CUDA kernels, compiled and run on the CPU by the emulator (tensorlite/cuda/emulator.py).

Each kernel runs, through the engine's own launch spec, on shapes chosen to reach its edges (a row longer than
the block, a partial tile, a block of rows past T), with the emulator's racecheck on: two warps touching one word
of shared memory between the same two barriers is reported as it happens, whatever the numbers. Its output is
compared with the reference (the engine's softmax, the flash mirror), and the first wrong element is named with
the block and thread that write it. Then the same kernel runs under every other schedule of
emulator.STANDARD_SCHEDULES (CUDA orders no warp before another: a correct kernel gives the same numbers).
"""
import math
import os
import re
from dataclasses import dataclass

import numpy as np

import tensorlite as tl
import tensorlite.functional as F
from tensorlite.cuda import emulator, launch, mirror
from tensorlite.cuda.mode import fused_mode
from tensorlite.cuda.sources import kernel_dir

from .core import INVALID, TODO, Exercise, Failure, close, first_difference, shown

BEGIN, END = "// ---- your code: begin ----", "// ---- your code: end ----"
RACE_HINT = ("a __syncthreads() is missing: nothing orders these two accesses on a GPU, so the second may come "
             "first (shared memory needs a barrier after it is written and before other warps read it, and after "
             "they read it and before it is written again)")


@dataclass(frozen=True)
class KernelSource:
    """A .cu file to grade: the learner's, or the engine's own in kernels/."""
    directory: str
    name: str

    @property
    def path(self):
        return os.path.join(self.directory, self.name)


def _your_code(path):
    """The text between each BEGIN and END marker of the file (None if it has none)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    regions = re.findall(re.escape(BEGIN) + r"(.*?)" + re.escape(END), text, re.S)
    return regions or None


def _code_in(region):
    """The region without its comments and blank space: what the learner wrote."""
    return re.sub(r"//[^\n]*|/\*.*?\*/|\s", "", region, flags=re.S)


class KernelExercise(Exercise):
    extension = ".cu"
    engine_source = None    # its solution in kernels/
    output = None           # the name of the array the kernel writes, for messages

    def untouched(self, path):
        regions = _your_code(path)
        return bool(regions) and not any(_code_in(r) for r in regions)

    def learner(self, path):
        if not os.path.isfile(path):
            raise Failure(f"there is no {shown(path)}", kind=INVALID)
        return KernelSource(os.path.dirname(os.path.abspath(path)), os.path.basename(path))

    def engine(self):
        return KernelSource(kernel_dir(), self.engine_source)

    # ---- what each exercise says
    def cases(self):
        """[case dict]: the shapes every kernel must get right (the first is the one run under every schedule)."""
        raise NotImplementedError

    def describe(self, case):
        raise NotImplementedError

    def run(self, source, case, schedule):
        """(the kernel's output, the reference) for one case, the kernel run under `schedule`."""
        raise NotImplementedError

    def coordinates(self, case, index):
        """'block (.., .., ..), thread (.., .., ..)': who writes the output element at index."""
        raise NotImplementedError

    def diagnose(self, case, got, want):
        return None

    # ---- shared
    def launch(self, source, spec, schedule):
        """Run a launch spec's kernel from `source` instead of its own file; every failure as one line."""
        try:
            emulator.launch(source.name, spec.kernel, spec.grid, spec.block, spec.shared_mem, spec.args,
                            kernel_dir=source.directory, schedule=schedule)
        except emulator.EmulatorBuildError as err:
            raise Failure(_first_error(str(err), source), kind=INVALID) from None
        except emulator.SharedMemoryRace as err:
            raise Failure(f"the racecheck found a race: {err}", hint=RACE_HINT) from None
        except emulator.KernelFault as err:
            raise Failure(str(err), kind=INVALID) from None
        except KeyError:
            raise Failure(f"{shown(source.path)} defines no kernel {spec.kernel} (the stub's name and parameters: "
                          "keep them)", kind=INVALID) from None

    def grade(self, source, report):
        if self.untouched(source.path):
            raise Failure(f"the part between the 'your code' lines of {shown(source.path)} is still empty: the comment "
                          "at the top of the file says what to write there", kind=TODO)
        cases = self.cases()
        lockstep, *others = emulator.STANDARD_SCHEDULES
        for case in cases:
            self.check(source, case, lockstep, others_passed=None)
        report.ok(f"compiles for the emulator, and matches the reference under the {lockstep} schedule with the "
                  f"racecheck on, {len(cases)} cases: {'; '.join(self.describe(c) for c in cases)}")
        for schedule in others:
            self.check(source, cases[0], schedule, others_passed=lockstep)
        report.ok(f"the same numbers and no race under the other schedules ({', '.join(map(str, others))}), "
                  f"{self.describe(cases[0])}")

    def check(self, source, case, schedule, others_passed):
        got, want = self.run(source, case, schedule)
        if np.isnan(got).all():
            raise Failure(f"the kernel wrote nothing into {self.output} ({self.describe(case)}, schedule "
                          f"{schedule})", kind=INVALID)
        diff = first_difference(got, want, rtol=1e-4, atol=2e-5 * max(1.0, float(np.abs(want).max())))
        if diff is None:
            return
        index, mine, theirs, worst = diff
        where = f"{self.output}[{', '.join(map(str, index))}]"
        message = (f"{where} is {mine:.6g}, the reference {theirs:.6g} ({self.describe(case)}, schedule {schedule}; "
                   f"{self.coordinates(case, index)} writes it; largest difference {worst:.2g})")
        hint = self.diagnose(case, got, want)
        if hint is None and others_passed is not None:
            hint = (f"the numbers depend on the order the warps run in (right under {others_passed}, wrong under "
                    f"{schedule}): {RACE_HINT}")
        raise Failure(message, hint=hint)


def _first_error(stderr, source):
    """g++'s first error line, with the learner's path as they know it."""
    lines = [line for line in stderr.splitlines() if ": error:" in line or ": fatal error:" in line]
    first = lines[0] if lines else stderr.strip().splitlines()[-1]
    return f"does not compile: {first.replace(source.path, shown(source.path))}"


def _nan(shape):
    return np.full(shape, np.nan, np.float32)


# ----------------------------------------------------------------------------- 11. row softmax forward
class SoftmaxKernel(KernelExercise):
    number, name, section = 11, "softmax_kernel", "softmax"
    title = "a CUDA kernel: row softmax forward (run by the CPU emulator)"
    solution_ref = "kernels/softmax.cu::softmax_fwd with kernels/common.cuh::block_reduce"
    engine_source = "softmax.cu"
    output = "y"

    def cases(self):
        return [dict(rows=3, cols=300, scale=3.0, seed=0), dict(rows=2, cols=1, scale=3.0, seed=1),
                dict(rows=2, cols=33, scale=3.0, seed=2), dict(rows=2, cols=128, scale=3.0, seed=3),
                dict(rows=2, cols=200, scale=40.0, seed=4)]

    def describe(self, case):
        large = ", values up to about 100" if case["scale"] > 10 else ""
        return f"x of shape ({case['rows']}, {case['cols']}){large}"

    def run(self, source, case, schedule):
        x = (case["scale"] * np.random.default_rng(case["seed"]).standard_normal((case["rows"], case["cols"])))
        x = x.astype(np.float32)
        y = _nan(x.shape)
        self.launch(source, launch.softmax_forward(x, y), schedule)
        with fused_mode("0"):
            want = F.softmax(tl.Tensor(x), -1).data
        return y, want

    def coordinates(self, case, index):
        row, col = index
        return (f"block ({row}, 0, 0), thread ({col % launch.ROW_THREADS}, 0, 0) in a loop over the columns by "
                f"blockDim.x = {launch.ROW_THREADS}")

    def diagnose(self, case, got, want):
        if not np.isfinite(got).all() and case["scale"] > 10:
            return "exp overflowed: subtract the row's max before exp (softmax(x - max) = softmax(x))"
        unwritten = np.argwhere(np.isnan(got))[:, 1]
        wrong_cols = np.argwhere(~(np.abs(got - want) <= 1e-4))[:, 1]
        if (unwritten.size and unwritten.min() >= launch.ROW_THREADS) or (
                wrong_cols.size and wrong_cols.min() >= launch.ROW_THREADS):
            return (f"the columns from blockDim.x = {launch.ROW_THREADS} on are not done: each thread strides over "
                    "the row, for (c = threadIdx.x; c < cols; c += blockDim.x)")
        if np.abs(got.sum(axis=1) - 1).max() > 1e-3:
            return ("the rows of y do not sum to 1: the max and the sum must cover the whole row, every warp's "
                    "part of it (through scratch), not only one thread's or one warp's columns")
        return None


# ----------------------------------------------------------------------------- 12. flash attention dS / dQ
class FlashBackwardKernel(KernelExercise):
    number, name, section = 12, "flash_backward", "flash"
    title = "a CUDA kernel: flash attention backward's dS / dQ step for one tile (emulated)"
    solution_ref = "kernels/flash_attention.cu::dq_impl"
    engine_source = "flash_attention.cu"
    output = "dQ"
    head = 32

    def cases(self):
        return [dict(b=1, h=2, t=70, causal=True, seed=0), dict(b=2, h=1, t=33, causal=False, seed=1),
                dict(b=1, h=1, t=1, causal=True, seed=2)]

    def describe(self, case):
        return f"q of shape ({case['b']}, {case['h']}, {case['t']}, {self.head}){', causal' if case['causal'] else ''}"

    def inputs(self, case):
        rng = np.random.default_rng(case["seed"])
        q, k, v, do = (rng.standard_normal((case["b"], case["h"], case["t"], self.head)).astype(np.float32)
                       for _ in range(4))
        o, lse = mirror.flash_forward(q, k, v, case["causal"])
        return q, k, v, do, o, lse, (do * o).sum(axis=-1).astype(np.float32)

    def run(self, source, case, schedule):
        q, k, v, do, o, lse, dvec = self.inputs(case)
        dq = _nan(q.shape)
        scale = 1 / math.sqrt(self.head)
        spec = launch.flash_backward_dq(q, k, v, do, lse, dvec, dq, scale, case["causal"], 0.0, 0)
        self.launch(source, spec, schedule)
        return dq, mirror.flash_backward(q, k, v, o, lse, do, case["causal"])[0]

    def coordinates(self, case, index):
        b, h, i, _ = index
        return (f"block ({i // launch.FA_ROWS}, {b * case['h'] + h}, 0), thread ({i % launch.FA_ROWS}, 0, 0), the "
                f"thread of query row {i}")

    def diagnose(self, case, got, want):
        q, k, v, do, o, lse, dvec = (a.astype(np.float64) for a in self.inputs(case))
        scale = 1 / math.sqrt(self.head)
        T = case["t"]

        rows, keys = np.arange(T)[:, None], np.arange(T)[None, :]
        walked = keys < np.minimum(T, (rows // launch.FA_ROWS + 1) * launch.FA_ROWS)   # the tiles a causal block walks

        def dq(masked=case["causal"], delta=True, scaled=True):
            s = q @ np.swapaxes(k, -1, -2) * (scale if scaled else 1.0)
            p = np.exp(s - lse[..., None])
            p = np.where(keys <= rows, p, 0) if masked else np.where(walked, p, 0) if case["causal"] else p
            dp = do @ np.swapaxes(v, -1, -2)
            return (p * (dp - (dvec[..., None] if delta else 0)) @ k * scale).astype(np.float32)

        if case["causal"] and close((got,), (dq(masked=False),)):
            return ("gradient leaks through the mask: p must be 0 where key j comes after query i (j > i when "
                    "causal), whatever exp gives")
        if not case["causal"] and close((got,), (dq(masked=True),)):
            return "mask only when causal is set: with causal = 0 every query sees every key"
        if close((got,), (dq(delta=False),)):
            return "ds = p * (dp - delta): the delta (Dvec = rowsum(dO * O), softmax's rowsum term) is missing"
        if close((got,), (dq(scaled=False),)):
            return "p = exp(s * scale - lse): lse is the logsumexp of the scaled scores"
        return None

