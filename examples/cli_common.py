"""What both command-line scripts share: turning the errors a user can cause into one line, not a traceback."""
import sys

from gpt import CheckpointError, TrainingDiverged
from tensorlite.backend import DeviceError

USER_ERRORS = (DeviceError, CheckpointError, TrainingDiverged, FileNotFoundError, ValueError)


def run_cli(main):
    """Call main(); a user error prints 'error: ...' and exits with status 2."""
    try:
        return main()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
