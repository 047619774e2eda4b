"""What the command-line scripts share: the errors a user can meet as one line, not a traceback, and exit statuses
that say how a run ended."""
import sys

from gpt import CheckpointError, OutDirError, SaveError, TrainingDiverged
from tensorlite.backend import DeviceError
from tensorlite.parallel import WorkerDied

EXIT_FAILED = 1          # the run stopped on a fault around it: a shard worker died, a file could not be written
EXIT_USER_ERROR = 2      # bad input: a flag, the data file, the checkpoint or the out-dir (as argparse's own errors)
EXIT_DIVERGED = 3        # the loss became nan or inf
EXIT_INTERRUPTED = 130   # Ctrl-C (128 + SIGINT, the shell's convention)

EXIT_STATUSES = [   # in order: the first kind an error is an instance of gives its status
    (TrainingDiverged, EXIT_DIVERGED),
    ((SaveError, WorkerDied), EXIT_FAILED),
    ((DeviceError, CheckpointError, OutDirError, FileNotFoundError, ValueError, MemoryError), EXIT_USER_ERROR),
]


def run_cli(main):
    """main()'s result; an error of EXIT_STATUSES prints 'error: ...' and exits with its status, Ctrl-C with 130."""
    try:
        return main()
    except KeyboardInterrupt as err:
        print("interrupted" + (f": {err}" if str(err) else ""), file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as err:
        for kinds, status in EXIT_STATUSES:
            if isinstance(err, kinds):
                print(f"error: {err}", file=sys.stderr)
                sys.exit(status)
        raise
