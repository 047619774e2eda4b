"""How a Python exercise is graded, in stages that each must pass before the next:

1. gradcheck: the learner's backward plugged into the engine in place of the real one, checked against float64
   central differences (tensorlite/gradcheck.py) on hypothesis-drawn cases (odd sizes, broadcast inputs);
2. the engine's own backward: the learner's answer beside the engine's in float32, on the fixed cases that
   expose a known mistake (repeated ids, large logits, ...) and on drawn cases;
3. the exercise's own checks, if any (flash attention's: no T x T array);
4. a tiny GPT trained 50 steps with the learner's backward in the engine, to the same loss as with the real one.

Wherever an answer is wrong, it is compared with each known mistake on the same inputs, and a match names it.
An exercise subclasses PythonExercise and says what its cases, inputs, answers, plug and mistakes are.
"""
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tensorlite.gradcheck import GradcheckError, gradcheck

from . import training
from .core import (INVALID, Exercise, Failure, Learner, check_answer, close, first_difference, for_drawn_cases,
                   stub_untouched)


@dataclass
class Mistake:
    """A common wrong answer. `seen(x, answer, learner)` says whether the learner's answer is this mistake;
    Mistake.gives(hint, wrong) builds it from the wrong answer itself, computed from the same inputs."""
    hint: str
    seen: Callable

    @classmethod
    def gives(cls, hint, wrong):
        """wrong(x) is the mistaken answer, None for the arrays the mistake leaves right."""
        def seen(x, answer, learner):
            try:
                with np.errstate(all="ignore"):
                    mistaken = wrong(x)
            except ValueError:       # this mistake cannot even be made with these shapes
                return False
            pairs = [(a, w) for a, w in zip(answer, mistaken) if w is not None]
            return bool(pairs) and close(*zip(*pairs))
        return cls(hint, seen)


class PythonExercise(Exercise):
    extension = ".py"
    functions = ()          # the names the learner's file defines
    max_examples = 10       # drawn cases per stage
    gpt_piece = None        # "softmax backward": what trains the GPT (None: no GPT stage)
    engine_name = None      # what stage 2 compares with: "the engine's softmax backward"
    shapes = None           # the hint when the learner's code raises a shape error: the shapes, spelled out

    # ---- what each exercise says
    def cases(self):
        """A hypothesis strategy of cases (dicts of shapes, parameters and a seed)."""
        raise NotImplementedError

    def describe(self, case):
        """'for x of shape (2, 3) with dim=0': where a failure happened, for the message."""
        raise NotImplementedError

    def inputs(self, case, dtype):
        """The case's arrays and parameters, as a dict, floats in `dtype`."""
        raise NotImplementedError

    def answer(self, learner, x):
        """The learner's answer for inputs x, checked for structure: a tuple of arrays."""
        raise NotImplementedError

    def engine_op(self, x):
        """(function of tensors, [tensors], [their names]): the engine op whose backward the plug replaces."""
        raise NotImplementedError

    def plug(self, learner):
        """A context manager inside which the engine's backward is the learner's."""
        raise NotImplementedError

    def solution(self):
        """{function name: the engine's own code, adapted to the exercise's signature}."""
        raise NotImplementedError

    def mistakes(self):
        return []

    def fixed_cases(self):
        """[(what it exposes, case)]: compared with the engine's answer before the drawn cases."""
        return []

    def shape_hint(self, label, shape, x):
        return None

    def more_stages(self, learner, report):
        """Checks of this exercise's own, after the comparison with the engine (none by default)."""

    # ---- shared
    def learner(self, path):
        return Learner.from_file(path, self.functions)

    def engine(self):
        return Learner(self.solution(), self.solution_ref, whose="the engine's")

    def untouched(self, path):
        return stub_untouched(path, self.functions)

    def call(self, learner, name, args, expected, x):
        try:
            answer = learner.call(name, *args)
        except Failure as failure:
            if failure.kind == INVALID and " raised ValueError" in failure.message and failure.hint is None:
                failure.hint = self.shapes   # a shape mismatch inside the learner's code: the shapes, spelled out
            raise
        return check_answer(name, answer, expected, lambda label, shape: self.shape_hint(label, shape, x))

    def grade(self, learner, report):
        solution = self.engine()
        self.gradcheck_stage(learner, solution, report)
        self.compare_stage(learner, solution, report)
        self.more_stages(learner, report)
        if self.gpt_piece:
            training.train_stage(f"{learner.whose} {self.gpt_piece}", lambda: self.plug(learner), report)

    def diagnose(self, x, answer, learner, solution):
        """The hint of the first known mistake this wrong answer is, or None."""
        if close(answer, self.answer(solution, x)):
            return None
        for mistake in self.mistakes():
            try:
                if mistake.seen(x, answer, learner):
                    return mistake.hint
            except Failure:      # a probe called the learner's code, which failed on its inputs: not this one
                continue
        return None

    def gradcheck_stage(self, learner, solution, report):
        def check(case):
            x = self.inputs(case, np.float64)
            answer = self.answer(learner, x)
            fn, tensors, names = self.engine_op(x)
            try:
                with self.plug(learner):
                    gradcheck(fn, tensors)
            except GradcheckError as err:
                message = re.sub(r"input (\d+)", lambda m: names[int(m.group(1))], str(err))
                message = message.replace("gradcheck failed for ", "").replace("backward gives", "your backward gives")
                raise Failure(f"gradcheck (float64, central differences) {self.describe(case)}: {message}",
                              hint=self.diagnose(x, answer, learner, solution)) from None

        for_drawn_cases(self.cases(), check, self.max_examples)
        report.ok(f"gradcheck in float64 against central differences, the backward plugged into the engine "
                  f"({self.max_examples} drawn cases: {self.drawn})")

    def compare_stage(self, learner, solution, report):
        def check(case, exposes=None):
            x = self.inputs(case, np.float32)
            answer, want = self.answer(learner, x), self.answer(solution, x)
            for (label, _, _), got, ref in zip(self.expected(x), answer, want):
                scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
                diff = first_difference(got, ref, rtol=1e-4, atol=1e-5 * scale)
                if diff is not None:
                    index, mine, theirs, worst = diff
                    where = f" on {exposes}" if exposes else ""
                    raise Failure(f"{label}{where} {self.describe(case)} differs from {self.engine_name} in "
                                  f"float32: at index {index} yours is {mine:.6g}, the engine's {theirs:.6g} "
                                  f"(largest difference {worst:.2g})",
                                  hint=self.diagnose(x, answer, learner, solution))

        fixed = self.fixed_cases()
        for exposes, case in fixed:
            check(case, exposes)
        for_drawn_cases(self.cases(), check, self.max_examples)
        extra = f"; and {len(fixed)} fixed: {'; '.join(e for e, _ in fixed)}" if fixed else ""
        report.ok(f"matches {self.engine_name} in float32 ({self.max_examples} drawn cases{extra})")

    def expected(self, x):
        """[(label, shape, dtype)] of the answer for inputs x (every answer checks against it)."""
        raise NotImplementedError

