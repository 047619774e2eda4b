"""Exercise 1: the linear layer's backward, dX, dW and db.

Read:      docs/backprop_through_attention.md#linear
Check:     python -m exercises check linear
Solution:  tensorlite/functional.py::LinearFunction.backward (the engine's own code, for when you want to look)
"""
import numpy as np  # noqa: F401  (yours to use)


def linear_backward(x, weight, dy):
    """The gradients of y = x @ weight.T + bias, given dy = dL/dy.

    x       (..., in)    the input: one or more leading axes (N rows once they are flattened)
    weight  (out, in)    PyTorch's layout
    dy      (..., out)   the gradient of the output, with x's leading axes

    Return (dx, dweight, dbias), NumPy arrays of x's dtype:
    dx      (..., in)    like x
    dweight (out, in)    like weight
    dbias   (out,)       the bias was added to every row, every leading axis
    """
    raise NotImplementedError
