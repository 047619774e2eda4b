"""Gradient utilities."""
from .. import backend
from ..tensor import Tensor


def clip_grad_norm_(parameters, max_norm):
    """Scale all gradients in place so their global L2 norm is at most max_norm; return the norm before clipping.
    `parameters` is an iterable of tensors or one tensor, as in PyTorch.

    The norm stays a 0-d device array (wrapped in a Tensor) and the scale is applied on the device, so a GPU
    step does not wait for the host: call `.item()` only when you log it.
    """
    parameters = [parameters] if isinstance(parameters, Tensor) else parameters
    grads = [p.grad.data for p in parameters if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    xp = backend.xp_of(grads[0])
    total = xp.sqrt(sum(xp.vdot(g.reshape(-1), g.reshape(-1)) for g in grads))
    scale = xp.minimum(max_norm / (total + 1e-6), 1.0).astype(grads[0].dtype)
    for g in grads:
        g *= scale
    return Tensor(xp.asarray(total))


def zero_grads(parameters, set_to_none=True):
    """Drop each parameter's gradient (set_to_none=True, PyTorch's default: the next backward makes a fresh one),
    or zero it in place (set_to_none=False: the same arrays stay, for code that holds on to them)."""
    for p in parameters:
        if set_to_none:
            p.grad = None
        elif p.grad is not None:
            p.grad.zero_()
