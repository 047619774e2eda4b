"""Parse a script's command line with the script's own argparse parser, and stop there: nothing else runs.

    python benchmarks/parse_flags.py examples/train_char_gpt.py --device cuda --preset gpu --max-iters 50

gpu_checks.sh --dry-run checks each Python command of its stages this way on a machine without a GPU, so that a
misspelt flag or a value outside a flag's choices fails on the CPU, with argparse's own message, not minutes into
a device lease. The script's imports run (so a module that cannot be imported fails too); its main work does not.
"""
import argparse
import os
import runpy
import sys


class FlagsParsed(BaseException):
    """Raised right after parse_args succeeds; a BaseException, so a script's `except Exception` lets it through."""


def main():
    if len(sys.argv) < 2:
        print(__doc__.splitlines()[2].strip(), file=sys.stderr)
        return 2
    script = sys.argv[1]
    parse_args = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        parse_args(self, args, namespace)     # a bad command line exits 2 here, with argparse's message
        raise FlagsParsed

    argparse.ArgumentParser.parse_args = parse_then_stop
    sys.argv = sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))   # as `python script.py` would
    try:
        runpy.run_path(script, run_name="__main__")
    except FlagsParsed:
        return 0
    print(f"{script} never parsed a command line with argparse", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
