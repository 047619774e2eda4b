"""What every check shares: one-line verdicts, calling the learner's code safely, drawn cases, comparisons.

A learner's answer fails in one of three ways, and each gets one line, never a traceback: it is still the stub
(NotImplementedError), it is not even wrong (None, a Tensor, the wrong shape or dtype, an exception), or it is
wrong (the numbers differ; then the grader says where, and names the mistake when it recognises it).
"""
import ast
import contextlib
import importlib.util
import os
import traceback

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.errors import Flaky

import tensorlite as tl

TODO, INVALID, WRONG = "not started", "not even wrong", "wrong"   # how an answer fails (TODO: a status too)
PASSED, FAILED = "passed", "failed"
EXERCISES_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DERIVATION = "docs/backprop_through_attention.md"


class Exercise:
    """One exercise of the track: its file, the derivation section it practises, the engine code that solves it."""
    number = name = title = section = solution_ref = extension = None

    @property
    def filename(self):
        return f"{self.number:02d}_{self.name}{self.extension}"

    def path(self, directory=None):
        return os.path.join(directory or EXERCISES_DIR, self.filename)

    def untouched(self, path):
        """Whether the file at path is still the stub (seen without running it)."""
        raise NotImplementedError

    def learner(self, path):
        """What grade() checks: the learner's code at path."""
        raise NotImplementedError

    def engine(self):
        """What grade() checks with --solution: the engine's own code."""
        raise NotImplementedError

    def grade(self, learner, report):
        """Run every check on `learner`; a Failure stops at the first that does not pass."""
        raise NotImplementedError


class Failure(Exception):
    """A check that did not pass: one line for the learner, and a hint when the grader knows the mistake."""

    def __init__(self, message, hint=None, kind=WRONG):
        super().__init__(message)
        self.message, self.hint, self.kind = message, hint, kind


class Report:
    """The lines of one grading, printed as they come (a check takes seconds: the learner sees it move)."""

    def __init__(self, out=print):
        self.out, self.lines = out, []

    def say(self, line):
        self.lines.append(line)
        self.out(line)

    def ok(self, what):
        self.say(f"  ok    {what}")

    def fail(self, failure):
        self.say(f"  FAIL  {failure.message}")
        if failure.hint:
            self.say(f"        hint: {failure.hint}")


def grad_of(tensor):
    """tensor.grad as a NumPy array (None before backward): the one place that knows what `.grad` holds."""
    g = tensor.grad
    if g is None:
        return None
    return np.asarray(g.data if isinstance(g, tl.Tensor) else g)


_ENGINE_METHODS = {}


def engine_method(cls, name):
    """cls.name as the engine defines it, even while patched() has replaced it (the solutions call these)."""
    return _ENGINE_METHODS.get((cls, name)) or getattr(cls, name)


@contextlib.contextmanager
def patched(cls, name, replacement):
    """cls.name = replacement inside the block, restored after: how the learner's backward enters the engine."""
    _ENGINE_METHODS.setdefault((cls, name), getattr(cls, name))
    had_own = name in cls.__dict__
    original = cls.__dict__.get(name)
    setattr(cls, name, replacement)
    try:
        yield
    finally:
        if had_own:
            setattr(cls, name, original)
        else:
            delattr(cls, name)


def patches(*replacements):
    """Several patched() at once: (cls, name, replacement) each."""
    stack = contextlib.ExitStack()
    for cls, name, replacement in replacements:
        stack.enter_context(patched(cls, name, replacement))
    return stack


def stub_untouched(path, names):
    """Whether each function `names` of the Python file at path still has the stub's `raise NotImplementedError`
    among its statements (seen in the source: nothing runs)."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return False
    bodies = {n.name: n.body for n in tree.body if isinstance(n, ast.FunctionDef)}
    return all(any(_raises_not_implemented(s) for s in bodies.get(name, ())) for name in names)


def _raises_not_implemented(statement):
    if not isinstance(statement, ast.Raise) or statement.exc is None:
        return False
    exc = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def load_module(path):
    """The learner's file as a module (its name starts with a digit, so it is loaded by path, not imported)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f"exercise_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise Failure(f"{shown(path)} does not load: SyntaxError at line {err.lineno}: {err.msg}",
                      kind=INVALID) from None
    except Exception as err:   # noqa: BLE001  (whatever the learner's module raises, one line says it)
        raise Failure(f"{shown(path)} does not load: {one_line(err)}{where(err, path)}", kind=INVALID) from None
    return module


def shown(path):
    """A path as the learner typed it: relative to the working directory when it lies below it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def one_line(err):
    text = str(err).strip().splitlines()
    message = text[0] if text else ""
    message = message if len(message) <= 160 else message[:157] + "..."
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


def where(err, path):
    """' (line N of FILE)' for the deepest frame of the traceback in the learner's file, or ''."""
    lines = [f.lineno for f in traceback.extract_tb(err.__traceback__)
             if os.path.abspath(f.filename) == os.path.abspath(path)]
    return f" (line {lines[-1]} of {shown(path)})" if lines else ""


class Learner:
    """The functions a learner (or the engine's solution) offers, called so that nothing escapes as a traceback."""

    def __init__(self, functions, path, whose="your"):
        self.functions, self.path = functions, path   # functions: name -> callable (a module, or the solution's)
        self.whose = whose                            # "your", or "the engine's" for the solution

    @classmethod
    def from_file(cls, path, names):
        module = load_module(path)
        missing = [n for n in names if not callable(getattr(module, n, None))]
        if missing:
            raise Failure(f"{shown(path)} defines no function {missing[0]}() (the stub's name: keep it)", kind=INVALID)
        return cls({n: getattr(module, n) for n in names}, path)

    def call(self, name, *args):
        """functions[name](*args), or a one-line Failure; an argument changed in place is one too (backward must
        not modify the arrays it is given: the engine may share them with other branches)."""
        arrays = [(i, a.copy()) for i, a in enumerate(args) if isinstance(a, np.ndarray)]
        try:
            with np.errstate(all="ignore"):
                answer = self.functions[name](*args)
        except NotImplementedError:
            raise Failure(f"{name}() is not written yet: it still raises NotImplementedError "
                          f"({shown(self.path)})", kind=TODO) from None
        except Failure:
            raise
        except Exception as err:   # noqa: BLE001  (the learner's exception, said in one line)
            raise Failure(f"{name}() raised {one_line(err)}{where(err, self.path)}", kind=INVALID) from None
        for i, before in arrays:
            if not np.array_equal(args[i], before, equal_nan=True):
                raise Failure(f"{name}() changed its argument {i + 1} in place; compute into new arrays (the engine "
                              "may share what it hands to backward with other branches)", kind=INVALID)
        return answer


def describe_array(shape, dtype):
    return f"an array of shape {tuple(shape)} ({np.dtype(dtype).name})"


def check_answer(name, answer, expected, shape_hint=None):
    """The answer's structure against [(label, shape, dtype)]: a tuple when several arrays are expected.

    Returns the answer as a tuple of arrays, or raises a one-line Failure saying what came back and what was wanted
    (shape_hint(label, got_shape) may add the likely cause of a wrong shape)."""
    labels = ", ".join(label for label, _, _ in expected)
    if len(expected) == 1:
        answer = (answer,)
    elif not isinstance(answer, (tuple, list)):
        got = "None" if answer is None else f"one {type(answer).__name__}"
        raise Failure(f"{name}() returned {got}; expected {len(expected)} arrays: ({labels})", kind=INVALID)
    elif len(answer) != len(expected):
        raise Failure(f"{name}() returned {len(answer)} values; expected {len(expected)}: ({labels})", kind=INVALID)
    for value, (label, shape, dtype) in zip(answer, expected):
        wanted = describe_array(shape, dtype)
        if value is None:
            raise Failure(f"{name}() returned None for {label}; expected {wanted}", kind=INVALID)
        if isinstance(value, tl.Tensor):
            raise Failure(f"{name}() returned a tensorlite Tensor for {label}; backward works on the arrays "
                          f"themselves: return {wanted}", kind=INVALID)
        if not isinstance(value, np.ndarray):
            raise Failure(f"{name}() returned a {type(value).__name__} for {label}; expected {wanted}", kind=INVALID)
        if value.shape != tuple(shape):
            hint = shape_hint(label, value.shape) if shape_hint else None
            raise Failure(f"{name}() returned {label} of shape {value.shape}; expected shape {tuple(shape)}",
                          hint=hint, kind=INVALID)
        if value.dtype != dtype:
            promoted = (" (a NumPy float64 scalar, such as np.sqrt(2 / np.pi), turns float32 arrays into float64: "
                        "math.sqrt gives a Python float, which does not)" if value.dtype == np.float64 else "")
            raise Failure(f"{name}() returned {label} as {value.dtype} for {np.dtype(dtype).name} inputs; keep "
                          f"the inputs' dtype (an array you create needs dtype=..., e.g. np.zeros_like){promoted}",
                          kind=INVALID)
    return tuple(answer)


def first_difference(got, want, rtol, atol):
    """None if got matches want elementwise (NaN nowhere allowed), else (index, got value, want value, max diff)."""
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(got - want) <= atol + rtol * np.abs(want))
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    diff = np.abs(got - want)
    return index, got[index], want[index], float(np.nanmax(np.where(np.isfinite(diff), diff, np.inf)))


def close(a, b):
    """Whether two answers (tuples of arrays) agree to the rounding of their dtype."""
    def agree(x, y):
        if x.shape != y.shape:
            return False
        rtol = 1e-4 if x.dtype == np.float32 else 1e-7
        return first_difference(x, y, rtol, rtol * max(1.0, float(np.abs(y).max(initial=0.0)))) is None
    return len(a) == len(b) and all(agree(x, y) for x, y in zip(a, b))


def for_drawn_cases(strategy, check, max_examples):
    """Run check(case) on hypothesis-drawn cases (the same ones every run); the first Failure comes back."""
    # No shrinking: the first failing case is reported as it is (shrinking would rerun a learner's slow answer
    # dozens of times, and the drawn cases start small anyway).
    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True, verbosity=Verbosity.quiet,
              report_multiple_bugs=False, suppress_health_check=list(HealthCheck),
              phases=(Phase.explicit, Phase.generate))
    @given(strategy)
    def run(case):
        check(case)

    try:
        run()
    except Flaky:
        raise Failure("the answer changes from one call to the next on the same inputs (does it use randomness "
                      "or keep state between calls?)", kind=INVALID) from None
