"""The command line: list the track, check one exercise or all of them.

    python -m exercises                      the track, with a status per exercise
    python -m exercises check NAME           grade one (NAME: 2, 02, softmax or 02_softmax)
    python -m exercises check --all          grade every exercise, then count
    ... check NAME --solution                grade the engine's own code through the same checks

Each check runs in a child process with a time limit, so an answer that loops forever (or a kernel that never
ends) is stopped and said in one line. The last result of each file is kept in <dir>/.progress.json, with the
file's hash, for the listing.
"""
import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from .core import DERIVATION, EXERCISES_DIR, FAILED, PASSED, TODO, shown
from .grading import GRADER_ERROR, grade
from .track import TRACK, find

PROGRESS = ".progress.json"
NOT_CHECKED = "not checked"
TIME_LIMITS = {".py": 120, ".cu": 300}   # seconds per exercise: a kernel also compiles


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m exercises", description="Backprop through attention, by "
                                     "hand, graded: the track and its grader.")
    parser.add_argument("--dir", default=EXERCISES_DIR, help="where the exercise files are (default: exercises/)")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("list", help="the track, with a status per exercise (the default)")
    check = commands.add_parser("check", help="grade one exercise, or --all")
    check.add_argument("name", nargs="?", help="2, 02, softmax or 02_softmax")
    check.add_argument("--all", action="store_true", help="grade every exercise, in order")
    check.add_argument("--solution", action="store_true", help="grade the engine's own code instead of yours")
    check.add_argument("--time-limit", type=float, default=None, help="seconds per exercise (default: 120 for "
                       "Python, 300 for CUDA)")
    check.add_argument("--debug", action="store_true", help="in-process, with the traceback of a grader error")
    args = parser.parse_args(argv)
    if args.command == "check" and bool(args.name) == args.all:
        parser.error("check takes one exercise NAME or --all")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "check":
            return check(args)
        print_track(args.dir)
        return 0
    except LookupError as err:
        print(err.args[0], file=sys.stderr)
        return 2


# ----------------------------------------------------------------------------- listing
def _digest(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _progress(directory):
    try:
        with open(os.path.join(directory, PROGRESS), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _remember(directory, exercise, status):
    progress = _progress(directory)
    progress[exercise.filename] = {"sha256": _digest(exercise.path(directory)), "status": status}
    try:
        with open(os.path.join(directory, PROGRESS), "w", encoding="utf-8") as f:
            json.dump(progress, f, indent=1, sort_keys=True)
    except OSError:
        pass   # a read-only checkout: the listing will say "not checked"


def status_of(exercise, directory):
    path = exercise.path(directory)
    if not os.path.exists(path):
        return "missing"
    if exercise.untouched(path):
        return TODO
    last = _progress(directory).get(exercise.filename, {})
    return last.get("status", NOT_CHECKED) if last.get("sha256") == _digest(path) else NOT_CHECKED


def print_track(directory):
    print(f"Backprop through attention, by hand, graded: {len(TRACK)} exercises in the order of {DERIVATION}")
    print(f"(files in {shown(directory)}{os.sep})\n")
    width = max(len(e.filename) for e in TRACK)
    for exercise in TRACK:
        print(f"  {exercise.filename:<{width}}  {status_of(exercise, directory):<12} {exercise.title}")
    print("\n  python -m exercises check NAME      grade one (NAME: its number or name, e.g. 2 or softmax)")
    print("  python -m exercises check --all     grade them all  (--solution: the engine's own code instead)")


# ----------------------------------------------------------------------------- checking
def check(args):
    exercises = TRACK if args.all else (find(args.name),)
    if args.debug:
        results = [grade(e, e.path(args.dir), args.solution, debug=True).status for e in exercises]
        return 0 if all(r == PASSED for r in results) else 1
    start, statuses = time.monotonic(), []
    for i, exercise in enumerate(exercises):
        if i:
            print(flush=True)
        limit = args.time_limit or TIME_LIMITS[exercise.extension]
        status = _run_child(exercise, args.dir, args.solution, limit)
        if not args.solution:
            _remember(args.dir, exercise, status)
        statuses.append(status)
    if args.all:
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in (PASSED, FAILED, TODO, GRADER_ERROR)
                           if statuses.count(s))
        graded = "the engine's solutions" if args.solution else f"{len(statuses)} exercises"
        print(f"\n{graded}: {counts}  ({time.monotonic() - start:.0f} s)")
    return 0 if all(s == PASSED for s in statuses) else 1


def _run_child(exercise, directory, solution, limit):
    """Grade in a child process (python -m exercises.grader.worker), stopped after `limit` seconds."""
    root = os.path.dirname(EXERCISES_DIR)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    fd, result_path = tempfile.mkstemp(suffix=".json", prefix="exercise-")
    os.close(fd)
    cmd = [sys.executable, "-m", "exercises.grader.worker", exercise.name, "--file", exercise.path(directory),
           "--result", result_path] + (["--solution"] if solution else [])
    sys.stdout.flush()
    child = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        child.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        print(f"  FAIL  did not finish within {limit:.0f} s, this exercise's time limit: does something loop "
              "forever (a while loop whose condition never changes, a kernel loop that never advances)?")
        print("  -> failed")
        return FAILED
    finally:
        try:
            with open(result_path, encoding="utf-8") as f:
                status = json.load(f).get("status")
        except (OSError, ValueError):
            status = None
        os.remove(result_path)
    if status is None:
        how = f"signal {-child.returncode}" if child.returncode < 0 else f"exit code {child.returncode}"
        print(f"  FAIL  the check stopped before its verdict ({how}): the learner's code crashed the process")
        print("  -> failed")
        return FAILED
    return status
