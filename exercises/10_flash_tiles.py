"""Exercise 10: flash attention's backward in NumPy tiles: P recomputed from the logsumexp, D = rowsum(dO * O).

Read:      docs/backprop_through_attention.md#flash
Check:     python -m exercises check flash_tiles
Solution:  tensorlite/cuda/mirror.py::flash_backward (the engine's own code, for when you want to look: the NumPy
           mirror of kernels/flash_attention.cu)

The same gradients as exercise 6 (causal attention, scale = 1/sqrt(D)), without ever holding a T x T array: the
forward kept only O and lse = log(sum_j exp(s_ij)) per query row, so for a tile of queries and a tile of keys
    P  = exp(scale * q_tile @ k_tile^T - lse_tile)   (0 where a key comes after the query)
    dP = dO_tile @ v_tile^T,   dS = P * (dP - D_tile),   D = rowsum(dO * O) (one number per query)
and each tile adds its share to dq, dk and dv. The grader checks the memory too: for T = 512 your backward must
not hold anything T x T (a (T, T) float64 array is 2 MiB).
"""
import numpy as np  # noqa: F401  (yours to use)

TILE = 16   # queries and keys per tile: any size works


def flash_backward(q, k, v, o, lse, do, scale):
    """(dq, dk, dv) of causal attention, tile by tile.

    q, k, v, o, do  (..., T, D)   the inputs, the forward's output and its gradient
    lse             (..., T)      the forward's logsumexp of each query's (scaled, masked) scores
    scale           float         1 / sqrt(D)

    Return (dq, dk, dv), arrays of q's shape and dtype.
    """
    raise NotImplementedError
