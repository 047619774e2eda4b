"""Autograd Functions around the fused kernels, and the entry points tensorlite.functional tries first.

Each entry point returns None when its kernel does not apply (mode, device, dtype or shape), and F then takes its
reference path: the fused kernels plug in behind the same call, with the same signature.
"""
import numpy as np

from .. import backend
from ..autograd import Function
from . import launch
from .mode import runs_fused


def _contiguous(xp, a):
    return xp.ascontiguousarray(a, dtype=np.float32)


class FlashAttention(Function):
    """Attention by kernels/flash_attention.cu: O and the logsumexp forward; dQ, dK, dV recomputed from them."""

    def forward(self, q, k, v):
        xp = self.xp
        q, k, v = (_contiguous(xp, a) for a in (q, k, v))
        o = xp.empty_like(q)
        lse = xp.empty(q.shape[:3], dtype=np.float32)
        launch.run(launch.flash_forward(q, k, v, o, lse, self.scale, self.causal, self.dropout_p, self.seed))
        self.save_for_backward(q, k, v, o, lse)
        return o

    def backward(self, do):
        xp = self.xp
        q, k, v, o, lse = self.saved
        do = _contiguous(xp, do)
        dvec = xp.empty(lse.shape, dtype=np.float32)
        dq, dk, dv = xp.empty_like(q), xp.empty_like(k), xp.empty_like(v)
        args = (self.scale, self.causal, self.dropout_p, self.seed)
        launch.run(launch.flash_backward_dot(do, o, dvec))
        launch.run(launch.flash_backward_dkdv(q, k, v, do, lse, dvec, dk, dv, *args))
        launch.run(launch.flash_backward_dq(q, k, v, do, lse, dvec, dq, *args))
        return dq, dk, dv


class FusedSoftmax(Function):
    """Row softmax over the last axis by kernels/softmax.cu."""

    def forward(self, x):
        x2 = _contiguous(self.xp, x.reshape(-1, x.shape[-1]))
        y = self.xp.empty_like(x2)
        launch.run(launch.softmax_forward(x2, y))
        self.save_for_backward(y)
        return y.reshape(x.shape)

    def backward(self, gy):
        y, = self.saved
        dy = _contiguous(self.xp, gy.reshape(y.shape))
        dx = self.xp.empty_like(y)
        launch.run(launch.softmax_backward(y, dy, dx))
        return dx.reshape(gy.shape)


class FusedSoftmaxCrossEntropy(Function):
    """Per-row loss and dlogits = softmax - onehot in one pass; backward only scales the saved dlogits."""

    def forward(self, logits):
        xp = self.xp
        flat = _contiguous(xp, logits.reshape(-1, logits.shape[-1]))
        targets = xp.ascontiguousarray(self.targets.reshape(-1), dtype=np.int64)
        losses = xp.empty(flat.shape[0], dtype=np.float32)
        dlogits = xp.empty_like(flat)
        launch.run(launch.softmax_xent(flat, targets, losses, dlogits, self.ignore_index))
        valid = targets != self.ignore_index
        self.n_valid = xp.maximum(valid.sum(), 1).astype(np.float32)    # stays on the device: no host sync
        self.save_for_backward(dlogits)
        if self.reduction == "none":
            return losses.reshape(self.targets.shape)
        total = losses.sum()
        return total if self.reduction == "sum" else total / self.n_valid

    def backward(self, gy):
        dlogits, = self.saved
        if self.reduction == "none":
            dlogits *= gy.reshape(-1, 1)
        else:
            dlogits *= gy / self.n_valid if self.reduction == "mean" else gy
        return dlogits.reshape(self.logits_shape)


class FusedLayerNorm(Function):
    """LayerNorm by kernels/layernorm.cu: saves the per-row mean and rstd, not xhat. Backward's kernel leaves
    dw and db as one row of partial sums per block of rows, added up here in a fixed order."""

    def forward(self, x, weight, *bias):
        xp = self.xp
        x2 = _contiguous(xp, x.reshape(-1, x.shape[-1]))
        y = xp.empty_like(x2)
        mean, rstd = xp.empty(x2.shape[0], np.float32), xp.empty(x2.shape[0], np.float32)
        launch.run(launch.layernorm_forward(x2, weight, bias[0] if bias else None, y, mean, rstd, self.eps))
        self.save_for_backward(x2, weight, mean, rstd)
        return y.reshape(x.shape)

    def backward(self, gy):
        xp = self.xp
        x2, weight, mean, rstd = self.saved
        dy = _contiguous(xp, gy.reshape(x2.shape))
        partial_shape = (launch.layernorm_backward_blocks(x2.shape[0]), x2.shape[1])
        dx = xp.empty_like(x2)
        dw_partial, db_partial = xp.empty(partial_shape, np.float32), xp.empty(partial_shape, np.float32)
        launch.run(launch.layernorm_backward(x2, weight, mean, rstd, dy, dx, dw_partial, db_partial))
        return (dx.reshape(gy.shape), dw_partial.sum(axis=0)) + ((db_partial.sum(axis=0),) if self.has_bias else ())


class FusedGELU(Function):
    """tanh GELU by kernels/gelu.cu: one pass forward, one pass backward (recomputing tanh)."""

    def forward(self, x):
        x = _contiguous(self.xp, x)
        y = self.xp.empty_like(x)
        launch.run(launch.gelu_forward(x, y))
        self.save_for_backward(x)
        return y

    def backward(self, gy):
        x, = self.saved
        dx = self.xp.empty_like(x)
        launch.run(launch.gelu_backward(x, _contiguous(self.xp, gy), dx))
        return dx


class FusedDropout(Function):
    """Inverted dropout by kernels/dropout.cu: the keep decisions are a hash of (seed, index), regenerated in
    backward, so no mask is stored."""

    def forward(self, x):
        x = _contiguous(self.xp, x)
        y = self.xp.empty_like(x)
        launch.run(launch.dropout_mul(x, y, self.p, self.seed))
        return y

    def backward(self, gy):
        dx = self.xp.empty(gy.shape, dtype=np.float32)
        launch.run(launch.dropout_mul(_contiguous(self.xp, gy), dx, self.p, self.seed))
        return dx


class FusedDropoutAdd(FusedDropout):
    """residual + dropout(x) by kernels/dropout.cu in one pass; backward: dropout's (the same regenerated mask)
    for x, and the gradient unchanged for the residual."""

    def forward(self, x, residual):
        x, residual = _contiguous(self.xp, x), _contiguous(self.xp, residual)
        y = self.xp.empty_like(x)
        launch.run(launch.dropout_add(x, residual, y, self.p, self.seed))
        return y

    def backward(self, gy):
        return super().backward(gy), gy


def _applies(x):
    return runs_fused(backend.is_cuda_array(x.data)) and x.dtype == np.float32


def attention(q, k, v, is_causal, scale, dropout_p):
    if not (_applies(q) and q.ndim == 4 and q.shape == k.shape == v.shape and q.shape[-1] in launch.FA_HEAD_SIZES
            and q.shape[0] * q.shape[1] <= launch.MAX_GRID_Y):
        return None
    seed = backend.kernel_seed(q.device) if dropout_p > 0 else 0
    return FlashAttention.apply(q, k, v, scale=scale, causal=bool(is_causal), dropout_p=float(dropout_p), seed=seed)


def dropout(x, p):
    if not (_applies(x) and x.size > 0):
        return None
    return FusedDropout.apply(x, p=p, seed=backend.kernel_seed(x.device))


def dropout_add(x, residual, p):
    if not (_applies(x) and _applies(residual) and x.shape == residual.shape and x.size > 0):
        return None
    return FusedDropoutAdd.apply(x, residual, p=p, seed=backend.kernel_seed(x.device))


def layer_norm(x, weight, bias, eps):
    if not (_applies(x) and weight is not None and weight.dtype == np.float32 and x.size > 0):
        return None
    return FusedLayerNorm.apply(x, weight, *(() if bias is None else (bias,)), eps=eps, has_bias=bias is not None)


def gelu(x, approximate):
    if not (_applies(x) and approximate == "tanh" and x.size > 0):
        return None
    return FusedGELU.apply(x)


def embedding_backward(num_rows, ids, dy):
    """dweight (num_rows, C) of a row lookup from dy (N, C) and the N ids by kernels/embedding.cu (deterministic:
    no atomics), or None where it does not apply. The sort and the run table are fixed-size array ops: nothing
    waits for the host (ids outside the table fall outside every run; F.embedding's check reports them).
    The kernel runs a block per table row and 32 columns, so a table with more rows than the batch has positions
    (most runs empty, as for a GPT-2-sized vocabulary) keeps the reference path's atomic scatter."""
    if not (applies_to_arrays(dy) and dy.ndim == 2 and dy.size > 0 and 0 < num_rows <= dy.shape[0]):
        return None
    xp = backend.xp_of(dy)
    order = xp.argsort(ids, kind="stable")
    starts = xp.searchsorted(ids[order], xp.arange(num_rows + 1))
    dweight = xp.empty((num_rows, dy.shape[1]), dtype=np.float32)
    launch.run(launch.embedding_backward(_contiguous(xp, dy), order.astype(np.int64, copy=False),
                                         starts.astype(np.int64, copy=False), dweight))
    return dweight


def applies_to_arrays(array):
    """Whether fused kernels handle arrays like this one (the optimizer asks before flattening a group)."""
    return runs_fused(backend.is_cuda_array(array)) and array.dtype == np.float32


def softmax(x, axis):
    if not (_applies(x) and x.ndim >= 1 and axis in (-1, x.ndim - 1) and x.size > 0):
        return None
    return FusedSoftmax.apply(x)


def cross_entropy(logits, targets, ignore_index, reduction):
    if not (_applies(logits) and logits.size > 0):
        return None
    return FusedSoftmaxCrossEntropy.apply(logits, targets=targets, ignore_index=ignore_index, reduction=reduction,
                                          logits_shape=logits.shape)
