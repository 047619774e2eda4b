"""The track: the exercises in the derivation's order, and how one is found by number or name."""
import os

from . import attention, block, kernels, layers

TRACK = (layers.Linear(), layers.Softmax(), layers.CrossEntropy(), layers.LayerNorm(), layers.GELU(),
         attention.Attention(), attention.Heads(), layers.Embedding(), block.BlockExercise(), attention.FlashTiles(),
         kernels.SoftmaxKernel(), kernels.FlashBackwardKernel())


def find(name):
    """The exercise a learner means by '2', '02', 'softmax', '02_softmax' or 'exercises/02_softmax.py', or a
    LookupError that lists the names."""
    key = os.path.splitext(os.path.basename(str(name)))[0].lower()
    for exercise in TRACK:
        stem = os.path.splitext(exercise.filename)[0]
        if key in (exercise.name, stem) or (key.isdigit() and int(key) == exercise.number):
            return exercise
    raise LookupError(f"no exercise {name!r}: the track is {', '.join(e.name for e in TRACK)} "
                      f"(or their numbers, 1 to {len(TRACK)})")
