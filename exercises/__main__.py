"""python -m exercises: the track and its grader (see exercises/grader/cli.py)."""
import sys

from .grader.cli import main

sys.exit(main())
