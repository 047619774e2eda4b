"""Grade one exercise: the header, every check in turn, and the verdict, all as lines of a Report."""
from dataclasses import dataclass

from threadpoolctl import threadpool_limits

from .core import DERIVATION, FAILED, PASSED, TODO, Failure, Report, one_line, shown


@dataclass
class Result:
    status: str        # passed, failed, not started, or grader error
    lines: list

    @property
    def text(self):
        return "\n".join(self.lines)


GRADER_ERROR = "grader error"


def grade(exercise, path=None, solution=False, out=print, debug=False):
    """Check the learner's file at path (default: the one in exercises/), or with solution=True the engine's code.
    debug: let a grader error raise, with its traceback."""
    report = Report(out)
    path = path or exercise.path()
    graded = exercise.solution_ref if solution else shown(path)
    report.say(f"{exercise.number:02d} {exercise.name}: {exercise.title}  ({graded}; {DERIVATION}#{exercise.section})")
    try:
        with threadpool_limits(1):   # the arrays are tiny: more BLAS threads would only wait on each other
            exercise.grade(exercise.engine() if solution else exercise.learner(path), report)
        status = PASSED
    except Failure as failure:
        report.fail(failure)
        status = TODO if failure.kind == TODO else FAILED
    except Exception as err:   # noqa: BLE001  (a bug of the grader's own: one line, never a traceback wall)
        report.say(f"  grader error: {one_line(err)} (the grader's fault, not yours: please report it, with "
                   f"`python -m exercises check {exercise.name} --debug` for the traceback)")
        if debug:
            raise
        status = GRADER_ERROR
    footer = {PASSED: "passed", TODO: "not started: the docstring says what to compute",
              FAILED: "failed"}.get(status, status)
    if not solution and status != PASSED:
        footer += f"  (the solution, for when you want to look: {exercise.solution_ref})"
    report.say(f"  -> {footer}")
    return Result(status, report.lines)
