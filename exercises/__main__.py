"""python -m exercises: the track and its grader (see exercises/grader/cli.py)."""
import sys

try:
    from .grader.cli import main
except ModuleNotFoundError as err:
    if err.name != "hypothesis":
        raise
    sys.exit('the grader draws its cases with hypothesis, which is not installed: pip install hypothesis (or '
             'pip install -e ".[dev]")')

sys.exit(main())
