"""The grader of the exercise track: checks each exercise in exercises/ as the learner edits it (or, with
--solution, the engine's own code through the same checks). `python -m exercises` is its command line."""
from .grading import Result, grade  # noqa: F401
from .track import TRACK, find  # noqa: F401
