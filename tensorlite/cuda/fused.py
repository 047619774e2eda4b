"""The engine's one door to the kernels: autograd Functions around them, and the entry points that
tensorlite.functional and tensorlite.optim try first.

Each entry point returns None (adamw_step: False) when its kernel does not apply (mode, device, dtype or shape),
and the caller then takes its reference path: the fused kernels plug in behind the same call, with the same
signature. Each public entry point sits right under its Function.
"""
import numpy as np

from .. import backend, random
from ..autograd import Function
from . import launch
from .mode import runs_fused


def _applies(array):
    """Whether the fused kernels handle this array: float32, on a device the mode (TENSORLITE_FUSED) sends to them."""
    return runs_fused(backend.is_cuda_array(array)) and array.dtype == np.float32


def _contiguous(xp, a):
    return xp.ascontiguousarray(a, dtype=np.float32)


class FlashAttentionFunction(Function):
    """Attention by kernels/flash_attention.cu: O and the logsumexp forward; dQ, dK, dV recomputed from them."""

    def __init__(self, scale, causal, dropout_p, seed):
        super().__init__()
        self.scale, self.causal, self.dropout_p, self.seed = scale, causal, dropout_p, seed

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


def attention(q, k, v, is_causal, scale, dropout_p):
    if not (_applies(q.data) and q.ndim == 4 and q.shape == k.shape == v.shape
            and q.shape[-1] in launch.FA_HEAD_SIZES and q.shape[0] * q.shape[1] <= launch.MAX_GRID_Y):
        return None
    seed = random.kernel_seed(q.device) if dropout_p > 0 else 0
    return FlashAttentionFunction.apply(q, k, v, scale=scale, causal=bool(is_causal), dropout_p=float(dropout_p),
                                        seed=seed)


class FusedSoftmaxFunction(Function):
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


def softmax(x, dim):
    if not (_applies(x.data) and x.ndim >= 1 and dim in (-1, x.ndim - 1) and x.numel() > 0):
        return None
    return FusedSoftmaxFunction.apply(x)


class FusedSoftmaxCrossEntropyFunction(Function):
    """Per-row loss and dlogits = softmax - onehot in one pass; backward only scales the saved dlogits."""

    def __init__(self, targets, ignore_index, reduction):
        super().__init__()
        self.targets, self.ignore_index, self.reduction = targets, ignore_index, reduction

    def forward(self, logits):
        xp = self.xp
        self.logits_shape = logits.shape
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


def cross_entropy(logits, targets, ignore_index, reduction):
    if not (_applies(logits.data) and logits.numel() > 0):
        return None
    return FusedSoftmaxCrossEntropyFunction.apply(logits, targets=targets, ignore_index=ignore_index,
                                                  reduction=reduction)


class FusedLayerNormFunction(Function):
    """LayerNorm by kernels/layernorm.cu: saves the per-row mean and rstd, not xhat. Backward's kernel leaves
    dw and db as one row of partial sums per block of rows, added up here in a fixed order."""

    def __init__(self, eps, has_bias):
        super().__init__()
        self.eps, self.has_bias = eps, has_bias

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


def layer_norm(x, weight, bias, eps):
    if not (_applies(x.data) and weight is not None and weight.dtype == np.float32 and x.numel() > 0):
        return None
    return FusedLayerNormFunction.apply(x, weight, *(() if bias is None else (bias,)), eps=eps,
                                        has_bias=bias is not None)


class FusedGELUFunction(Function):
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


def gelu(x, approximate):
    if not (_applies(x.data) and approximate == "tanh" and x.numel() > 0):
        return None
    return FusedGELUFunction.apply(x)


class FusedDropoutFunction(Function):
    """Inverted dropout by kernels/dropout.cu: the keep decisions are a hash of (seed, index), regenerated in
    backward, so no mask is stored."""

    def __init__(self, p, seed):
        super().__init__()
        self.p, self.seed = p, seed

    def forward(self, x):
        x = _contiguous(self.xp, x)
        y = self.xp.empty_like(x)
        launch.run(launch.dropout_mul(x, y, self.p, self.seed))
        return y

    def backward(self, gy):
        dx = self.xp.empty(gy.shape, dtype=np.float32)
        launch.run(launch.dropout_mul(_contiguous(self.xp, gy), dx, self.p, self.seed))
        return dx


def dropout(x, p):
    if not (_applies(x.data) and x.numel() > 0):
        return None
    return FusedDropoutFunction.apply(x, p=p, seed=random.kernel_seed(x.device))


class FusedDropoutAddFunction(FusedDropoutFunction):
    """residual + dropout(x) by kernels/dropout.cu in one pass; backward: dropout's (the same regenerated mask)
    for x, and the gradient unchanged for the residual."""

    def forward(self, x, residual):
        x, residual = _contiguous(self.xp, x), _contiguous(self.xp, residual)
        y = self.xp.empty_like(x)
        launch.run(launch.dropout_add(x, residual, y, self.p, self.seed))
        return y

    def backward(self, gy):
        return super().backward(gy), gy


def dropout_add(x, residual, p):
    if not (_applies(x.data) and _applies(residual.data) and x.shape == residual.shape and x.numel() > 0):
        return None
    return FusedDropoutAddFunction.apply(x, residual, p=p, seed=random.kernel_seed(x.device))


class FusedEmbeddingFunction(Function):
    """A row lookup whose backward is kernels/embedding.cu: deterministic, no atomics. The sort and the run table
    are fixed-size array ops, so nothing waits for the host (ids outside the table fall outside every run;
    F.embedding's device assertion reports them)."""

    def __init__(self, idx, watched=()):
        super().__init__()
        self.idx, self.watched = idx, watched

    def forward(self, weight):
        self.num_rows = weight.shape[0]
        return weight[self.idx]

    def backward(self, gy):
        xp = self.xp
        dy, ids = _contiguous(xp, gy.reshape(-1, gy.shape[-1])), self.idx.reshape(-1)      # (N, C), (N,)
        order = xp.argsort(ids, kind="stable")
        starts = xp.searchsorted(ids[order], xp.arange(self.num_rows + 1))
        dweight = xp.empty((self.num_rows, dy.shape[1]), dtype=np.float32)
        launch.run(launch.embedding_backward(dy, order.astype(np.int64, copy=False),
                                             starts.astype(np.int64, copy=False), dweight))
        return dweight


def embedding(idx, weight, watched=()):
    """The kernel runs a block per table row and 32 columns, so a table with more rows than the batch has
    positions (most runs empty, as for a GPT-2-sized vocabulary) keeps the reference path's atomic scatter."""
    if not (_applies(weight.data) and weight.ndim == 2 and weight.shape[1] > 0 and 0 < weight.shape[0] <= idx.size):
        return None
    return FusedEmbeddingFunction.apply(weight, idx=idx, watched=watched)


def adamw_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """One AdamW update of a flat parameter group in place (p, m, v) by kernels/adamw.cu; step is the 1-based
    step count. False, and nothing done, where the kernel does not apply: the caller takes its reference path."""
    if not _applies(p):
        return False
    launch.run(launch.adamw_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step))
    return True
