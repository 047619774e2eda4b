"""In-place operations: `x += v`, `x[i] = v`, `x.zero_()`, `x.copy_(y)` ... change the tensor itself, as in
PyTorch, so that `with no_grad(): layer.weight *= 0.1` leaves the layer's weight the same Parameter.

One rule decides what an in-place operation does:
- outside the graph (under no_grad, or when neither the tensor nor the value requires grad) it writes into the
  tensor's array, and its views see the change;
- on a leaf that requires grad (a parameter) with grad mode on, it raises, as PyTorch does: the change would
  have no gradient. Optimizer steps and initialisation run under no_grad;
- otherwise (a tensor inside the graph, or a value that requires grad: makemore's `dlogits[range(n), Yb] -= 1`,
  `dC[ix] += demb[k, j]`) it is recorded: the tensor's new value is the out-of-place op (add, SetItem, ...) of
  what it was, written into its own array, and the tensor takes that op as its creator. Functions recorded
  earlier keep the tensor as it was (autograd's history, resolved by the clock). A change made through a view
  made by indexing is recorded on its base too, and the base's other views are made again from it.

Every change bumps the tensor's version counter, so a backward that would read a changed array raises instead.
"""
import numpy as np

from . import autograd, backend, ops, random
from .autograd import bump, is_grad_enabled
from .tensor import Tensor


def _needs_recording(t, operands):
    return is_grad_enabled() and (t.requires_grad or any(isinstance(v, Tensor) and v.requires_grad
                                                         for v in operands))


def _raw(t, value):
    """value as what NumPy/CuPy can write into t's array."""
    if isinstance(value, Tensor):
        if type(value.data) is not type(t.data):
            raise backend.DeviceError(f"an in-place operation on a {t.device} tensor got a value on {value.device}; "
                                      "move it with .to(device) first")
        return value.data
    return value


def _operand(value, old):
    """value as a Tensor for the recorded op on `old`: floating values in old's dtype (the cast is recorded)."""
    value = ops.as_tensor(value, old)
    if value.dtype != old.dtype and value.dtype.kind == "f" and old.dtype.kind == "f":
        value = ops.cast(value, old.dtype)
    return value


def _change(t, name, operands, in_place, out_of_place):
    """The one rule (module docstring): in_place() writes into t.data; out_of_place(old) is the recorded op."""
    if _needs_recording(t, operands):
        _record(t, name, out_of_place)
        return t
    if is_grad_enabled():
        _check_not_a_no_grad_view(t, name)
    try:
        in_place()
    except TypeError as err:   # NumPy's casting error: int += float, bool *= 2.5
        raise TypeError(f"{name} on a tensor of dtype {t.dtype}: the result cannot be written into it ({err})") \
            from None
    except ValueError as err:  # a value that broadcasts to a larger shape, a read-only (expanded) tensor
        raise ValueError(f"{name} on a tensor of shape {t.shape}: {err}") from None
    bump(t)
    return t


# ----------------------------------------------------------------------------- recording a change in the graph
def _root(t):
    while t._view is not None:
        t = t._view[0]
    return t


def _check_recordable(t, name):
    if t.is_leaf and t.requires_grad:
        raise RuntimeError(f"{name}: a leaf tensor that requires grad is being used in an in-place operation; "
                           "change it under `with tl.no_grad():` (as an optimizer step or an initialisation does)")
    if t._view is None:
        return
    parent, fn, _, made_in_grad_mode = t._view
    root = _root(t)
    if root.is_leaf and root.requires_grad:
        raise RuntimeError(f"{name}: a view of a leaf tensor that requires grad is being used in an in-place "
                           "operation; change it under `with tl.no_grad():`")
    if fn is None:   # detach(): the same memory, not a view for the graph
        return
    _check_not_a_no_grad_view(t, name)
    if not isinstance(fn, ops.GetItemFunction):
        raise RuntimeError(f"{name}: changing in place, inside the graph, a view made by {type(fn).__name__} is "
                           "not supported (only views made by indexing are); clone() it first, or change the tensor "
                           "it views")


def _check_not_a_no_grad_view(t, name):
    """A view made under no_grad of a tensor in the graph, changed with grad mode on, would change the graph's
    values behind its back: PyTorch's error."""
    if t._view is not None and t._view[1] is not None and not t._view[3] and _root(t).requires_grad:
        raise RuntimeError(f"{name}: a view made under no_grad is being changed in place with grad mode on; "
                           "make the view with grad mode on, or change it under no_grad")


def _snapshot(t, copy):
    """A tensor standing for t as it is now (its creator and output index), for the Functions that used it."""
    old = Tensor(t.data.copy() if copy else t.data, requires_grad=t.requires_grad)
    old.creator, old.output_index = t.creator, t.output_index
    return old


def _take_history(t, new, old, clock):
    t._history = (t._history or []) + [(clock, old)]
    t.creator, t.output_index, t.requires_grad = new.creator, new.output_index, new.requires_grad


def _record(t, name, out_of_place, remade=None):
    """t = out_of_place(t as it was), recorded, in t's own array. The copy in `old` keeps what the new op saves
    intact while t's array changes."""
    _check_recordable(t, name)
    old = _snapshot(t, copy=True)
    new = out_of_place(old)
    if new.shape != t.shape:
        raise RuntimeError(f"{name}: the result has shape {new.shape}, the tensor {t.shape}; an in-place operation "
                           "cannot change a tensor's shape")
    if new.dtype != t.dtype:
        raise TypeError(f"{name}: the result has dtype {new.dtype}, which cannot be written into a tensor of dtype "
                        f"{t.dtype}")
    t.data[...] = new.data
    _take_history(t, new, old, bump(t))
    top = remade is None
    remade = [] if top else remade
    remade.append(t)
    if t._view is not None and t._view[1] is not None:   # a view made by indexing: its base changed too
        parent, fn, _, _ = t._view
        _record(parent, name, lambda base: ops.SetItemFunction.apply(base, t, index=fn.index, watched=fn.watched),
                remade)
    if top:
        _remake_views(t, remade)


def _remake_views(t, remade):
    """The other live views of the memory t shares, made again from their (changed) bases, in the order they
    were made (a view's base before the view): their values changed with t's array, their history must too."""
    vc = t._vc
    xp = t.xp
    for ref in list(vc.views):
        view = ref()
        if view is None or any(view is r for r in remade) or not view._view[3] or \
                not xp.may_share_memory(view.data, t.data):
            continue
        parent, fn, index, _ = view._view
        new = fn.replay(parent)
        new = new[index] if isinstance(new, tuple) else new
        _take_history(view, new, _snapshot(view, copy=False), autograd._clock)
        remade.append(view)


# ----------------------------------------------------------------------------- the operations
def add_(t, other, *, alpha=1):
    """t += alpha * other."""
    value = other if alpha == 1 else other * alpha

    def in_place():
        t.data += _raw(t, value)
    return _change(t, "add_", (value,), in_place, lambda old: ops.add(old, _operand(value, old)))


def sub_(t, other, *, alpha=1):
    """t -= alpha * other."""
    value = other if alpha == 1 else other * alpha

    def in_place():
        t.data -= _raw(t, value)
    return _change(t, "sub_", (value,), in_place, lambda old: ops.sub(old, _operand(value, old)))


def mul_(t, other):
    def in_place():
        t.data *= _raw(t, other)
    return _change(t, "mul_", (other,), in_place, lambda old: ops.mul(old, _operand(other, old)))


def div_(t, other):
    def in_place():
        t.data /= _raw(t, other)
    return _change(t, "div_", (other,), in_place, lambda old: ops.div(old, _operand(other, old)))


def pow_(t, exponent):
    def in_place():
        t.data **= _raw(t, exponent)
    return _change(t, "pow_", (exponent,), in_place, lambda old: ops.pow(old, _operand(exponent, old)))


def clamp_(t, min=None, max=None):
    ops.check_clamp_bounds(min, max)

    def in_place():
        t.xp.clip(t.data, min, max, out=t.data)
    return _change(t, "clamp_", (), in_place, lambda old: ops.clamp(old, min, max))


def _write(t, name, index, watched, value):
    """t[index] = value (index already raw), by the one rule."""
    def in_place():
        t.data[index] = _raw(t, value)
    return _change(t, name, (value,), in_place, lambda old: ops.SetItemFunction.apply(
        old, _operand(value, old), index=index, watched=watched))


def setitem(t, index, value):
    """t[index] = value: integers, slices, integer arrays or a boolean mask (nanoGPT's
    `logits[logits < v[:, [-1]]] = -float('Inf')`)."""
    index, _, watched = ops.raw_index(index)
    _write(t, "setitem", index, watched, value)


def fill_(t, value):
    return _write(t, "fill_", Ellipsis, (), value)


def zero_(t):
    return _write(t, "zero_", Ellipsis, (), 0)


def copy_(t, src):
    """t's values become src's (broadcast, cast to t's dtype, moved from src's device)."""
    if isinstance(src, Tensor) and src.device != t.device:
        src = src.to(t.device)
    return _write(t, "copy_", Ellipsis, (), src)


def masked_fill_(t, mask, value):
    """t where mask is True becomes value (mask broadcast to t's shape)."""
    watched = (mask,) if isinstance(mask, Tensor) else ()
    mask = mask.data if isinstance(mask, Tensor) else t.xp.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"masked_fill_ needs a boolean mask, got dtype {mask.dtype}")
    return _write(t, "masked_fill_", t.xp.broadcast_to(mask, t.shape), watched, value)


def _fill_random(t, name, draw):
    """t's values become draw(shape, dtype, device): samples from tensorlite/random.py's normal or uniform."""
    if t.dtype.kind != "f":
        raise TypeError(f"{name} fills floating tensors, got dtype {t.dtype}")
    return _write(t, name, Ellipsis, (), Tensor(draw(t.shape, t.dtype, t.device)))


def normal_(t, mean=0.0, std=1.0, *, generator=None):
    """Fill with N(mean, std^2) samples (from `generator`, else the framework's, seeded by tl.manual_seed)."""
    return _fill_random(t, "normal_", lambda shape, dtype, device:
                        random.normal(shape, mean, std, dtype, device, generator))


def uniform_(t, a=0.0, b=1.0, *, generator=None):
    """Fill with U(a, b) samples (from `generator`, else the framework's, seeded by tl.manual_seed)."""
    return _fill_random(t, "uniform_", lambda shape, dtype, device:
                        random.uniform(shape, a, b, dtype, device, generator))
