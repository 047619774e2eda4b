"""Exercise 6: one causal attention head's backward, dQ, dK and dV, through the mask and the 1/sqrt(D) scale.

Read:      docs/backprop_through_attention.md#attention
Check:     python -m exercises check attention
Solution:  tensorlite/functional.py::ScaledDotProductAttentionFunction.backward (the engine's own code, for when
           you want to look)

The forward, per head (any leading axes: batch B, heads H), for q, k, v of shape (..., T, D):
    S = q @ k^T / sqrt(D)              (..., T, T)
    P = softmax(S + M) over the keys   M is 0 where key j <= query i and -inf after it (causal)
    O = P @ v                          (..., T, D)
"""
import numpy as np  # noqa: F401  (yours to use)


def attention_backward(q, k, v, p, do):
    """The gradients of O = softmax(q k^T / sqrt(D) + M) v, given the probabilities P and dO = dL/dO.

    q, k, v  (..., T, D)   T positions, head size D
    p        (..., T, T)   P as the forward computed it (exactly 0 above the diagonal)
    do       (..., T, D)   the gradient of the output

    Return (dq, dk, dv), arrays of q's shape and dtype.
    """
    raise NotImplementedError
