"""Composite ops, each one Function with its closed-form backward.

Built from primitives, softmax or layer norm would record a dozen nodes and keep a dozen temporaries alive for
backward. As single Functions they save one or two arrays and their backward is the textbook formula, written
next to its derivation (docs/backprop_through_attention.md derives each one step by step).

Import as `import tensorlite.functional as F`. Each public function first asks tensorlite/cuda/fused.py for its
fused CUDA kernel (softmax, cross_entropy, layer_norm, gelu, dropout, dropout_add, embedding, attention) and
takes the Function here, the reference path, when that answers None.
"""
import math
import numbers
import warnings

import numpy as np

from . import backend, random
from .autograd import Function
from .cuda import fused
from .ops import check_dim, relu, sigmoid, tanh  # noqa: F401  (re-exported: F.relu as torch.nn.functional.relu)
from .tensor import Tensor


def _row_sum(x, scale=1.0):
    """scale * sum over the last axis, keepdims, as a matrix-vector product: BLAS sums these short rows faster
    than NumPy's reduction along the contiguous axis does (docs/performance.md)."""
    return x @ backend.xp_of(x).full((x.shape[-1], 1), scale, dtype=x.dtype)


# ----------------------------------------------------------------------------- softmax family
def _softmax_dim(op, x, dim):
    """The dim softmax and log_softmax normalise over, or one clear error for what they cannot take. Without a
    dim, PyTorch's deprecated implicit choice (dim 0 for 0-, 1- and 3-d input, else 1), with its warning."""
    if x.dtype.kind != "f":
        raise TypeError(f"{op} needs a floating tensor, got dtype {x.dtype} (cast it with .float())")
    if x.ndim == 0:
        raise ValueError(f"{op} of a 0-d tensor: it needs at least one dim to normalise over")
    if dim is None:
        dim = 0 if x.ndim in (1, 3) else 1
        warnings.warn(f"Implicit dimension choice for {op} has been deprecated (as in PyTorch): dim={dim} was "
                      f"chosen for a {x.ndim}-d input; pass dim= (dim=-1: the last)", UserWarning, stacklevel=3)
    return check_dim(dim, x.ndim)


class SoftmaxFunction(Function):
    """y = exp(x - max) / sum(exp(x - max)).

    Backward, Jacobian-vector form: dy_i/dx_j = y_i (delta_ij - y_j), so dx = y * (dy - sum(dy * y)).
    """

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        y = x - x.max(axis=self.dim, keepdims=True)
        self.xp.exp(y, out=y)
        y /= y.sum(axis=self.dim, keepdims=True)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved
        gx = gy * y
        gx -= y * gx.sum(axis=self.dim, keepdims=True)
        return gx


def softmax(input, dim=None, dtype=None):
    """Softmax along dim, like torch.nn.functional.softmax (`F.softmax(x, dim=-1)`, `F.softmax(logits, 1)`)."""
    x = input if dtype is None else input.to(dtype=dtype)
    dim = _softmax_dim("softmax", x, dim)
    out = fused.softmax(x, dim)
    return out if out is not None else SoftmaxFunction.apply(x, dim=dim)


class LogSoftmaxFunction(Function):
    """y = x - max - log(sum(exp(x - max))).  Backward: dx = dy - softmax(x) * sum(dy)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        y = x - x.max(axis=self.dim, keepdims=True)
        y -= self.xp.log(self.xp.exp(y).sum(axis=self.dim, keepdims=True))
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved
        return gy - self.xp.exp(y) * gy.sum(axis=self.dim, keepdims=True)


def log_softmax(input, dim=None, dtype=None):
    x = input if dtype is None else input.to(dtype=dtype)
    return LogSoftmaxFunction.apply(x, dim=_softmax_dim("log_softmax", x, dim))


class CrossEntropyFunction(Function):
    """Mean (or sum, or per-row) of -log softmax(logits)[target] over rows whose target is not ignore_index.

    Backward: d loss_i / d logits_i = softmax(logits_i) - onehot(target_i), times the reduction's scale
    (1/n_valid for 'mean'), and zero for ignored rows. Forward keeps softmax for it: one (N, C) array.
    """

    def __init__(self, targets, ignore_index, reduction):
        super().__init__()
        self.targets, self.ignore_index, self.reduction = targets, ignore_index, reduction   # targets: an array

    def forward(self, logits):
        xp = self.xp
        self.logits_shape = logits.shape
        n_classes = logits.shape[-1]
        flat = logits.reshape(-1, n_classes)                                               # (N, C)
        z = flat - flat.max(axis=1, keepdims=True)
        targets = self.targets.reshape(-1)
        valid = targets != self.ignore_index
        safe_targets = xp.where(valid, targets, 0)
        rows = xp.arange(z.shape[0])
        target_logits = z[rows, safe_targets]                                              # (N,), a copy
        probs = xp.exp(z, out=z)                                                           # z <= 0: no overflow
        norm = probs.sum(axis=1)                                                           # (N,) >= 1
        losses = (xp.log(norm) - target_logits) * valid
        probs /= norm[:, None]                                                             # softmax, in place
        self.save_for_backward(probs, safe_targets, valid)
        self.n_valid = int(valid.sum()) if self.reduction == "mean" else 1
        if self.reduction == "none":
            return losses.reshape(self.targets.shape)
        total = losses.sum()
        return total if self.reduction == "sum" else total / logits.dtype.type(max(self.n_valid, 1))

    def backward(self, gy):
        probs, safe_targets, valid = self.saved
        g = probs                       # the saved softmax becomes the gradient in place (it is freed after this)
        g[self.xp.arange(g.shape[0]), safe_targets] -= 1
        if self.reduction == "none":
            row_scale = valid * gy.reshape(-1)
        else:
            row_scale = valid * (gy / max(self.n_valid, 1) if self.reduction == "mean" else gy)
        g *= row_scale[:, None]
        return g.reshape(self.logits_shape)


def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean"):
    """torch.nn.functional.cross_entropy with class indices: input (N, C), (C,) or (N, C, d1, ...) (the classes
    along dim 1, as PyTorch's), integer targets of the other dims; targets equal to ignore_index (PyTorch's
    default -100) count for nothing. Class weights are not supported."""
    if weight is not None:
        raise NotImplementedError("cross_entropy: class weights are not supported in tensorlite")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    logits, targets = input, target
    if logits.ndim > 2:   # (N, C, d1, ...) -> (N, d1, ..., C): the Function takes the classes last
        logits = logits.permute(0, *range(2, logits.ndim), 1)
    target_data = targets.data if isinstance(targets, Tensor) else logits.xp.asarray(targets)
    if target_data.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy targets must be integers, got dtype {target_data.dtype}")
    if target_data.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: targets of shape {target_data.shape} do not match logits of shape "
                         f"{logits.shape} (expected {logits.shape[:-1]})")
    n_classes = logits.shape[-1]
    bad = (target_data != ignore_index) & ((target_data < 0) | (target_data >= n_classes))
    backend.device_assert(bad.any(), lambda: IndexError(
        f"cross_entropy: target {int(target_data[bad].reshape(-1)[0])} is out of range for {n_classes} classes "
        f"(ignore_index is {ignore_index})"))
    out = fused.cross_entropy(logits, target_data, ignore_index, reduction)
    return out if out is not None else CrossEntropyFunction.apply(logits, targets=target_data,
                                                                  ignore_index=ignore_index, reduction=reduction)


# ----------------------------------------------------------------------------- normalisation and activations
class LayerNormFunction(Function):
    """y = xhat * w + b with xhat = (x - mean) * rstd over the last axis, rstd = 1 / sqrt(var + eps).

    Backward (closed form, N = size of the last axis, g = dy * w):
        dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),   dw = sum(dy * xhat),   db = sum(dy)
    where the sums for dw and db run over every axis but the last.
    """

    def __init__(self, eps, has_weight, has_bias):
        super().__init__()
        self.eps, self.has_weight, self.has_bias = eps, has_weight, has_bias   # the inputs: x, [weight], [bias]

    def forward(self, x, *affine):
        xp = self.xp
        n = x.shape[-1]
        xhat = x - _row_sum(x, 1 / n)
        rstd = _row_sum(xhat * xhat, 1 / n)
        rstd += x.dtype.type(self.eps)
        rstd = 1.0 / xp.sqrt(rstd, out=rstd)
        xhat *= rstd
        weight = affine[0] if self.has_weight else None
        self.save_for_backward(xhat, rstd, weight)
        y = xhat * weight if self.has_weight else xhat.copy()
        if self.has_bias:
            y += affine[-1]
        return y

    def backward(self, gy):
        xhat, rstd, weight = self.saved
        n = gy.shape[-1]
        gy_xhat = gy * xhat
        if weight is None:
            gx = gy - _row_sum(gy, 1 / n)
            gx -= xhat * _row_sum(gy_xhat, 1 / n)
        else:
            # mean(g) and mean(g * xhat) with g = dy * w are mat-vecs with w / N: no g-sized temporaries
            w_over_n = (weight / n).reshape(n, 1)
            gx = gy * weight
            gx -= gy @ w_over_n
            gx -= xhat * (gy_xhat @ w_over_n)
        gx *= rstd
        grads = [gx]
        if self.has_weight:
            grads.append(gy_xhat.reshape(-1, n).sum(axis=0))
        if self.has_bias:
            grads.append(gy.reshape(-1, n).sum(axis=0))
        return tuple(grads)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """torch.nn.functional.layer_norm: normalise over the trailing dims `normalized_shape` (an int or a tuple),
    then scale by weight and shift by bias (of that shape, or None)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or input.shape[input.ndim - len(shape):] != shape:
        raise ValueError(f"layer_norm over normalized_shape {shape}: the input of shape {input.shape} does not end "
                         "with it")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != shape:
            raise ValueError(f"layer_norm {name} has shape {p.shape}, expected normalized_shape {shape}")
    if len(shape) > 1:   # several trailing dims normalise as one
        flat = [None if p is None else p.reshape(-1) for p in (weight, bias)]
        return layer_norm(input.reshape(*input.shape[:-len(shape)], -1), math.prod(shape), *flat,
                          eps).reshape(input.shape)
    out = fused.layer_norm(input, weight, bias, eps)
    if out is not None:
        return out
    affine = [p for p in (weight, bias) if p is not None]
    return LayerNormFunction.apply(input, *affine, eps=eps, has_weight=weight is not None,
                                   has_bias=bias is not None)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class GELUFunction(Function):
    """GELU(x) = x * Phi(x).

    tanh form: y = x h with h = 0.5 (1 + t), t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3);
               since 1 - t^2 = 4 h (1 - h):
               dy/dx = h + x * 4 h (1 - h) * 0.5 sqrt(2/pi) (1 + 3 * 0.044715 x^2)
                     = h * (1 + x (1 - h) * 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2))
    exact:     y = 0.5 x (1 + erf(x / sqrt 2));  dy/dx = Phi(x) + x phi(x)
    Forward saves x and h (or Phi), so backward needs no tanh or erf.
    """

    def __init__(self, approximate):
        super().__init__()
        self.approximate = approximate    # "tanh" or "none"

    def forward(self, x):
        xp = self.xp
        if self.approximate == "tanh":
            h = x * x
            h *= 0.044715 * _SQRT_2_OVER_PI
            h += _SQRT_2_OVER_PI
            h *= x                                                      # u
            xp.tanh(h, out=h)
            h += 1
            h *= 0.5                                                    # h = 0.5 (1 + tanh(u))
        else:
            h = backend.erf(x * x.dtype.type(1 / math.sqrt(2)))
            h += 1
            h *= 0.5                                                    # Phi(x)
        self.save_for_backward(x, h)
        return x * h

    def backward(self, gy):
        x, h = self.saved
        xp = self.xp
        if self.approximate == "tanh":
            d = x * x
            d *= 3 * 0.044715 * 2 * _SQRT_2_OVER_PI
            d += 2 * _SQRT_2_OVER_PI
            d *= x
            d *= 1 - h
            d += 1
            d *= h
            d *= gy
            return d
        pdf = xp.exp(-0.5 * x * x) * x.dtype.type(1 / math.sqrt(2 * math.pi))
        return gy * (h + x * pdf)


def gelu(input, approximate="none"):
    """GELU, exact (erf) by default as PyTorch's; approximate='tanh' is GPT-2's form (and the fused kernel's)."""
    if approximate not in ("tanh", "none"):
        raise ValueError(f"gelu approximate must be 'none' or 'tanh', got {approximate!r}")
    out = fused.gelu(input, approximate)
    return out if out is not None else GELUFunction.apply(input, approximate=approximate)


def _check_dropout_p(p):
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")


class DropoutFunction(Function):
    """Zero each element with probability p and scale the survivors by 1/(1-p) (inverted dropout), so the
    expected activation is unchanged and evaluation needs no rescaling. Backward applies the same mask."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        keep = random.rng(backend.device_of(x)).random(x.shape, dtype=x.dtype) >= self.p
        mask = keep.astype(x.dtype)
        mask *= 1.0 / (1.0 - self.p)
        self.save_for_backward(mask)
        return x * mask

    def backward(self, gy):
        return gy * self.saved[0]


def dropout(input, p=0.5, training=True):
    _check_dropout_p(p)
    if not training or p == 0.0:
        return input
    out = fused.dropout(input, p)
    return out if out is not None else DropoutFunction.apply(input, p=p)


def dropout_add(x, residual, p=0.5, training=True):
    """residual + dropout(x), a transformer block's residual connection: on a GPU one kernel reads x and the
    residual and writes the sum (kernels/dropout.cu), where dropout and then the add would write and read one more
    activation-sized array. Elsewhere, and for shapes that broadcast, it is exactly dropout(x) + residual.

    The model does not call it: the fusion was never timed on a GPU, and an unmeasured fusion does not get to hide
    the residual stream (gpt/model.py's Block reads `x = x + self.attn(self.ln_1(x))`, as the math does). If a
    GPU measurement shows it pays, Block calls it itself, where a reader sees it."""
    _check_dropout_p(p)
    if training and p > 0.0:
        out = fused.dropout_add(x, residual, p)
        if out is not None:
            return out
    return dropout(x, p, training) + residual


# ----------------------------------------------------------------------------- lookups and projections
class EmbeddingFunction(Function):
    """out = weight[idx]: a row lookup, which is what onehot(idx) @ weight computes.

    Backward: the rows of dweight gather the gradients of every position that looked them up (a scatter-add:
    a repeated id accumulates, it is not overwritten).
    """

    def __init__(self, idx, watched=()):
        super().__init__()
        self.idx, self.watched = idx, watched   # the integer ids (an array) and the tensor they came from

    def forward(self, weight):
        self.num_rows = weight.shape[0]
        return weight[self.idx]

    def backward(self, gy):
        return backend.scatter_add_rows(self.num_rows, self.idx.reshape(-1), gy.reshape(-1, gy.shape[-1]))


def embedding(input, weight):
    """Rows of weight looked up by the integer ids in input (torch.nn.functional.embedding's order)."""
    idx = input
    watched = (idx,) if isinstance(idx, Tensor) else ()
    data = idx.data if isinstance(idx, Tensor) else weight.xp.asarray(idx)
    if data.dtype.kind not in "iu":
        raise TypeError(f"embedding indices must be integers, got dtype {data.dtype}")
    if data.size:
        backend.device_assert((data.min() < 0) | (data.max() >= weight.shape[0]), lambda: IndexError(
            f"embedding index out of range: ids span [{int(data.min())}, {int(data.max())}] but the table has "
            f"{weight.shape[0]} rows"))
    out = fused.embedding(data, weight, watched)
    return out if out is not None else EmbeddingFunction.apply(weight, idx=data, watched=watched)


class LinearFunction(Function):
    """y = x @ W.T + b with W of shape (out, in), like torch.nn.functional.linear.

    Leading axes are flattened so each product is one 2-d GEMM on (B*T, in):
        dx = dy @ W,   dW = dy.T @ x,   db = sum of dy over rows.
    """

    def forward(self, x, weight, *bias):
        self.x_shape = x.shape
        x2 = x.reshape(-1, x.shape[-1])                               # (N, in)
        self.save_for_backward(x2, weight)
        y = x2 @ weight.T                                             # (N, out)
        if bias:
            y += bias[0]
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, gy):
        x2, weight = self.saved
        g2 = gy.reshape(-1, gy.shape[-1])                             # (N, out)
        gx = (g2 @ weight).reshape(self.x_shape) if self.needs_input_grad[0] else None
        gw = None
        if self.needs_input_grad[1]:   # (out, in): BLAS is faster with the larger of the two as the row count
            gw = g2.T @ x2 if weight.shape[0] >= weight.shape[1] else (x2.T @ g2).T
        grads = (gx, gw)
        return grads + ((g2.sum(axis=0),) if len(self.needs_input_grad) == 3 else ())


def linear(x, weight, bias=None):
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1]} features (shape {x.shape}) but weight of shape "
                         f"{weight.shape} expects {weight.shape[1]}")
    return LinearFunction.apply(x, weight, *(() if bias is None else (bias,)))


# ----------------------------------------------------------------------------- attention
_masks = {}


def causal_mask(xp, n_queries, n_keys, dtype):
    """Additive mask (0 where query i may see key j, -inf where j is in its future), aligned so that the last
    query is the last position: query i sits at position n_keys - n_queries + i (what a KV cache needs).
    Adding it is much faster than a boolean-mask write into the scores. Cached per shape."""
    key = (xp.__name__, n_queries, n_keys, np.dtype(dtype).str)
    if key not in _masks:
        offset = n_keys - n_queries
        allowed = xp.arange(n_keys)[None, :] <= xp.arange(n_queries)[:, None] + offset
        _masks[key] = xp.where(allowed, 0.0, -np.inf).astype(dtype)
    return _masks[key]


class ScaledDotProductAttentionFunction(Function):
    """O = dropout(softmax(Q K^T * scale + M)) V for q (B, H, T, D), k and v (B, H, S, D), with M the causal
    mask or an additive attn_mask (a fourth input, which may itself require grad).

    Backward, with P the attention probabilities and A = dropout(P):
        dV = A^T dO
        dA = dO V^T,  dP = dA * dropout mask
        dS = P * (dP - rowsum(dP * P))           (the softmax Jacobian-vector product)
        dQ = dS K * scale,  dK = dS^T Q * scale,  dM = dS
    rowsum(dP * P) equals rowsum(dO * O) (as in flash attention), a (T, D) product instead of a (T, S) one.
    """

    def __init__(self, is_causal, dropout_p, scale):
        super().__init__()
        self.is_causal, self.dropout_p, self.scale = is_causal, dropout_p, scale

    def forward(self, q, k, v, *attn_mask):
        xp = self.xp
        q_scaled = q * q.dtype.type(self.scale)                     # scaling q is T*D work, scaling scores T*S
        scores = q_scaled @ xp.swapaxes(k, -1, -2)                  # (B, H, T, S)
        if self.is_causal:
            scores += causal_mask(xp, q.shape[-2], k.shape[-2], q.dtype)
        if attn_mask:
            scores += attn_mask[0]
        scores -= scores.max(axis=-1, keepdims=True)
        probs = xp.exp(scores, out=scores)
        probs *= 1 / _row_sum(probs)                                # P
        drop = None
        if self.dropout_p > 0:
            keep = random.rng(backend.device_of(q)).random(probs.shape, dtype=q.dtype) >= self.dropout_p
            drop = keep.astype(q.dtype)
            drop *= 1.0 / (1.0 - self.dropout_p)
        attn = probs * drop if drop is not None else probs          # A
        out = attn @ v                                              # (B, H, T, D)
        self.save_for_backward(q_scaled, k, v, probs, drop, out)
        return out

    def backward(self, gy):
        q_scaled, k, v, probs, drop, out = self.saved
        xp = self.xp
        attn = probs * drop if drop is not None else probs
        gv = xp.swapaxes(attn, -1, -2) @ gy                         # (B, H, S, D)
        gs = gy @ xp.swapaxes(v, -1, -2)                            # dA (B, H, T, S)
        if drop is not None:
            gs *= drop                                              # dP
        gs -= _row_sum(gy * out)                                    # rowsum(dP * P) = rowsum(dO * O): T*D work
        gs *= probs                                                 # dS = P * (dP - rowsum(dP * P))
        gq = gs @ k
        gq *= q_scaled.dtype.type(self.scale)
        gk = xp.swapaxes(gs, -1, -2) @ q_scaled                     # q_scaled = q * scale carries the scale
        return (gq, gk, gv) + ((gs if self.needs_input_grad[3] else None,) if len(self.needs_input_grad) == 4
                               else ())


def _additive_mask(attn_mask, query, scores_shape):
    """attn_mask as a float tensor to add to the scores: a boolean mask (True: take part) becomes 0 / -inf, a
    float one is added as it is. It must broadcast to the scores' shape (..., T, S)."""
    mask = attn_mask if isinstance(attn_mask, Tensor) else Tensor(query.xp.asarray(attn_mask))
    try:
        fits = np.broadcast_shapes(mask.shape, scores_shape) == scores_shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"scaled_dot_product_attention: attn_mask of shape {mask.shape} does not broadcast to the "
                         f"attention scores' shape {scores_shape}")
    if mask.dtype == np.bool_:
        return Tensor(query.xp.where(mask.data, query.dtype.type(0), query.dtype.type(-np.inf)))
    if mask.dtype.kind != "f":
        raise TypeError(f"scaled_dot_product_attention: attn_mask must be boolean or floating, got {mask.dtype}")
    return mask if mask.dtype == query.dtype else mask.to(dtype=query.dtype)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """torch.nn.functional.scaled_dot_product_attention over (..., T, D) query and (..., S, D) key and value;
    scale defaults to 1/sqrt(D). attn_mask: boolean (True: the key takes part) or an additive float mask,
    broadcastable to (..., T, S). With is_causal, query i sees the keys up to its own position counted from the
    end (the last query the last key, what a KV cache needs; PyTorch counts from the start, the same when T == S).
    """
    q, k, v = query, key, value
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim or q.shape[-1] != k.shape[-1] or \
            k.shape[-2] != v.shape[-2] or q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        raise ValueError(f"scaled_dot_product_attention: q, k, v must be (..., T, D), (..., S, D), (..., S, Dv) "
                         f"with matching batch dims, got {q.shape}, {k.shape}, {v.shape}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal=True, not both (as PyTorch)")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if attn_mask is None:
        out = fused.attention(q, k, v, is_causal, scale, dropout_p)
        if out is not None:
            return out
    mask = () if attn_mask is None else (_additive_mask(attn_mask, q, q.shape[:-1] + (k.shape[-2],)),)
    return ScaledDotProductAttentionFunction.apply(q, k, v, *mask, is_causal=is_causal, dropout_p=dropout_p,
                                                   scale=scale)


class SplitHeadsFunction(Function):
    """Packed projections (B, T, n * C) -> n contiguous (B, H, T, D) tensors, D = C / H, in one copy.

    The chain it replaces (split, then a reshape and a transpose per piece) is seven graph nodes, leaves the
    heads as strided views that each batched matmul copies again, and copies three times more in backward.
    Backward lays the n gradients back out as (B, T, n * C): one copy.
    """

    def __init__(self, n_head, n):
        super().__init__()
        self.n_head, self.n = n_head, n

    def forward(self, x):
        B, T, packed = x.shape
        D = packed // (self.n * self.n_head)
        heads = x.reshape(B, T, self.n, self.n_head, D).transpose(2, 0, 3, 1, 4)    # (n, B, H, T, D), a view
        heads = self.xp.ascontiguousarray(heads)
        return tuple(heads[i] for i in range(self.n))

    def backward(self, *gys):
        B, H, T, D = gys[0].shape
        gx = self.xp.empty((B, T, self.n, H, D), dtype=gys[0].dtype)
        for i, gy in enumerate(gys):
            gx[:, :, i] = gy.transpose(0, 2, 1, 3)
        return gx.reshape(B, T, self.n * H * D)


def split_heads(x, n_head, n=3):
    """(B, T, n * C) packed projections (nanoGPT's c_attn output: q, k, v side by side) -> n tensors
    (B, n_head, T, C / n_head)."""
    if x.ndim != 3 or x.shape[-1] % (n * n_head):
        raise ValueError(f"split_heads: expected (B, T, {n} * C) with C divisible by n_head={n_head}, "
                         f"got shape {x.shape}")
    return SplitHeadsFunction.apply(x, n_head=n_head, n=n)


class MergeHeadsFunction(Function):
    """(B, H, T, D) -> (B, T, H * D): the heads side by side again. Backward hands attention a contiguous
    (B, H, T, D) gradient (a strided view would be copied by each of its batched matmuls)."""

    def __init__(self, n_head):
        super().__init__()
        self.n_head = n_head

    def forward(self, x):
        B, H, T, D = x.shape
        return x.transpose(0, 2, 1, 3).reshape(B, T, H * D)

    def backward(self, gy):
        B, T, _ = gy.shape
        return self.xp.ascontiguousarray(gy.reshape(B, T, self.n_head, -1).transpose(0, 2, 1, 3))


def merge_heads(x):
    """(B, H, T, D) -> (B, T, H * D), the inverse of one piece of split_heads."""
    if x.ndim != 4:
        raise ValueError(f"merge_heads: expected (B, H, T, D), got shape {x.shape}")
    return MergeHeadsFunction.apply(x, n_head=x.shape[1])


# ----------------------------------------------------------------------------- one-hot codes, squared error
def one_hot(tensor, num_classes=-1):
    """(..., num_classes) int64 with a 1 at each class index of `tensor` (integers in [0, num_classes)), as
    torch.nn.functional.one_hot; num_classes=-1 takes the largest index + 1. No gradient: its input is indices.
    Cast it (`.float()`) to multiply it with weights: one_hot(ids) @ W is what F.embedding(ids, W) computes."""
    ids = tensor.data if isinstance(tensor, Tensor) else np.asarray(tensor)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"one_hot takes integer class indices, got dtype {ids.dtype}")
    if not isinstance(num_classes, numbers.Integral) or num_classes < -1:
        raise ValueError(f"one_hot num_classes must be a non-negative integer or -1, got {num_classes!r}")
    if num_classes == -1:
        if ids.size == 0:
            raise ValueError("one_hot cannot infer num_classes from an empty tensor: pass num_classes")
        num_classes = int(ids.max()) + 1
    bad = (ids < 0) | (ids >= num_classes)
    backend.device_assert(bad.any(), lambda: IndexError(
        f"one_hot: class index {int(ids[bad].reshape(-1)[0])} is out of range for {num_classes} classes"))
    return Tensor((ids[..., None] == backend.xp_of(ids).arange(num_classes)).astype(np.int64))


def mse_loss(input, target, reduction="mean"):
    """The mean (or sum, or each, for reduction='none') of (input - target)^2, as torch.nn.functional.mse_loss.

    Built from primitives rather than one Function: its backward, 2 (input - target) / N, is theirs, with nothing
    to derive and no temporaries to save. Shapes that differ broadcast, with PyTorch's warning (it is usually a
    bug: (N, 1) against (N,) makes an (N, N) loss)."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"mse_loss reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if input.shape != target.shape:
        warnings.warn(f"mse_loss: target size {target.shape} differs from input size {input.shape}; they "
                      "broadcast, which is likely to give a wrong result. Make them the same size.", stacklevel=2)
    squared = (input - target) ** 2
    return squared.mean() if reduction == "mean" else squared.sum() if reduction == "sum" else squared
