"""Exercise 4: LayerNorm's backward, where the mean and the variance depend on x too.

Read:      docs/backprop_through_attention.md#layernorm
Check:     python -m exercises check layernorm
Solution:  tensorlite/functional.py::LayerNormFunction.backward (the engine's own code, for when you want to look)

The forward (per row, over the last axis of C features; biased variance, as torch.nn.functional.layer_norm):
    mean = x.mean(-1);  var = ((x - mean)**2).mean(-1);  rstd = 1 / sqrt(var + eps)
    xhat = (x - mean) * rstd;  y = xhat * weight + bias
It saves xhat and rstd, which is what you get.
"""
import numpy as np  # noqa: F401  (yours to use)


def layer_norm_backward(dy, xhat, rstd, weight):
    """The gradients of y = xhat * weight + bias, through xhat's dependence on x (mean and variance included).

    dy      (..., C)   the gradient of the output; one or more leading axes
    xhat    (..., C)   the normalised input the forward saved
    rstd    (..., 1)   1 / sqrt(var + eps) of each row
    weight  (C,)

    Return (dx, dweight, dbias) in dy's dtype: dx (..., C), dweight (C,), dbias (C,).
    """
    raise NotImplementedError
