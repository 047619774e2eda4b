"""Exercise 3: log-softmax + cross-entropy, whose gradient is softmax - onehot.

Read:      docs/backprop_through_attention.md#cross-entropy
Check:     python -m exercises check cross_entropy
Solution:  tensorlite/functional.py::CrossEntropyFunction.backward (the engine's own code, for when you want to look)
"""
import numpy as np  # noqa: F401  (yours to use)


def cross_entropy_backward(logits, targets, ignore_index):
    """d loss / d logits for loss = the mean over rows of -log softmax(logits[i])[targets[i]].

    logits        (N, C)   one row of class scores per example, any size (large ones too)
    targets       (N,)     integer classes in [0, C), or ignore_index for a row that does not count
    ignore_index  int      rows with this target add nothing to the loss, and the mean is over the others

    Return dlogits: an array of logits' shape and dtype.
    """
    raise NotImplementedError
