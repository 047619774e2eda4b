"""Exercise 2: softmax's backward in its Jacobian-vector form.

Read:      docs/backprop_through_attention.md#softmax
Check:     python -m exercises check softmax
Solution:  tensorlite/functional.py::SoftmaxFunction.backward (the engine's own code, for when you want to look)

Graded by itself and then inside every attention head of a GPT (dS = softmax_backward(P, dP) of the attention
section), without ever building the (n, n) Jacobian of a row.
"""
import numpy as np  # noqa: F401  (yours to use)


def softmax_backward(y, dy, dim):
    """dx for y = softmax(x, dim), given y itself and dy = dL/dy.

    y    any shape    the softmax's output (each slice along `dim` sums to 1)
    dy   y's shape    the gradient of the output
    dim  int          the axis softmax normalised over (may be negative, may be any axis)

    Return dx: an array of y's shape and dtype.
    """
    raise NotImplementedError
