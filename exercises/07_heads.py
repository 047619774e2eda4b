"""Exercise 7: the multi-head split and merge, the reshapes around attention, backward.

Read:      docs/backprop_through_attention.md#heads
Check:     python -m exercises check heads
Solution:  tensorlite/functional.py::SplitHeadsFunction.backward and
           tensorlite/functional.py::MergeHeadsFunction.backward (the engine's own code, for when you want to look)

The forwards (C = H * D):
    split: c_attn's output (B, T, 3C) holds q, k and v side by side, each C wide; each is cut into H heads of D
           features: (B, T, C) -> (B, T, H, D) -> (B, H, T, D)
    merge: attention's output (B, H, T, D) -> (B, T, H, D) -> (B, T, C), the heads side by side again
They only move numbers, so each backward moves the gradients back to where the numbers came from.
"""
import numpy as np  # noqa: F401  (yours to use)


def split_heads_backward(dq, dk, dv):
    """d of c_attn's output from the gradients of q, k and v, each (B, H, T, D).

    Return dqkv, an array of shape (B, T, 3 * H * D) in dq's dtype.
    """
    raise NotImplementedError


def merge_heads_backward(dy, n_head):
    """d of attention's output (B, H, T, D) from dy (B, T, C), the gradient of the merged heads; H = n_head.

    Return an array of shape (B, n_head, T, C // n_head) in dy's dtype.
    """
    raise NotImplementedError
