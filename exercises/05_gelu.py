"""Exercise 5: GELU's backward, GPT-2's tanh form.

Read:      docs/backprop_through_attention.md#gelu
Check:     python -m exercises check gelu
Solution:  tensorlite/functional.py::GELUFunction.backward (the engine's own code, for when you want to look)

The forward:  y = x * h,  h = 0.5 * (1 + t),  t = tanh(u),  u = sqrt(2 / pi) * (x + 0.044715 * x**3)
"""
import numpy as np  # noqa: F401  (yours to use)


def gelu_backward(x, dy):
    """dx for y = gelu(x) (the tanh form above), given x and dy = dL/dy, both of any one shape.

    Return dx: an array of x's shape and dtype.
    """
    raise NotImplementedError
