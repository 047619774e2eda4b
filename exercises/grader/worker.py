"""The child process of one check: grade, print the report as it goes, write the verdict as JSON for the parent.

    python -m exercises.grader.worker NAME --file PATH --result OUT.json [--solution]
"""
import argparse
import functools
import json

from .grading import grade
from .track import find


def main():
    parser = argparse.ArgumentParser(prog="python -m exercises.grader.worker")
    parser.add_argument("name")
    parser.add_argument("--file", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--solution", action="store_true")
    args = parser.parse_args()
    result = grade(find(args.name), args.file, args.solution, out=functools.partial(print, flush=True))
    with open(args.result, "w", encoding="utf-8") as f:
        json.dump({"status": result.status}, f)


if __name__ == "__main__":
    main()
