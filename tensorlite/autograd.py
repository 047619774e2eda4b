"""The Function base class, the backward walk, and the version counters that keep in-place operations honest.

A Function computes on raw backend arrays (`self.xp` is numpy or cupy) and knows the local derivative of its
outputs with respect to its inputs. `Function.apply` wraps the result in Tensors that remember their creator, which
is all the graph there is. `backward` then visits the creators in reverse topological order, found with an
explicit stack (no recursion, so a 10,000-op chain is fine), and does the two chores no op should repeat:
un-broadcasting each gradient to its input's shape, and accumulating gradients that meet at one tensor.

In-place operations (tensorlite/inplace.py) change a tensor's array after Functions may have saved it. As in
PyTorch, each change bumps a version counter (shared by a tensor and its views), and backward refuses to use an
array that changed after it was saved. Kept cheap: a Function remembers only the value of one global clock, which
moves at each in-place change; backward looks closer only at Functions recorded before the clock last moved.
"""
import contextlib
import threading
import weakref

from . import backend
from .tensor import Tensor

_state = threading.local()
_clock = 0   # how many in-place changes this process has made (see the module docstring)


def is_grad_enabled():
    return getattr(_state, "grad_enabled", True)


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        self.previous = is_grad_enabled()
        _state.grad_enabled = self.enabled

    def __exit__(self, *exc):
        _state.grad_enabled = self.previous


def no_grad():
    """Context manager and decorator: ops inside record no graph (inference, optimizer updates)."""
    return _GradMode(False)


def enable_grad():
    return _GradMode(True)


class Function:
    """One differentiable operation. Subclasses define `forward(*arrays)` and `backward(*grads)`.

    An op's non-tensor parameters (dim, shape, ...) are the arguments of its own `__init__`, which stores them;
    `Cls.apply(*tensors, **params)` makes `Cls(**params)` and runs it on the tensors.
    `backward` gets one gradient per output and returns one per input (None where no gradient is needed); a
    gradient may keep the broadcast shape of the output: the engine sums it back to the input's shape.
    `backward` must not modify the gradients it is given: they may be shared with other branches.

    `saved` (save_for_backward) and `watched` (tensors whose arrays the Function keeps as parameters: index
    tensors, targets) are what backward reads; an in-place change to any of them after the forward makes
    backward raise. A Function whose output shares its input's memory (a view: indexing, reshape, permute) sets
    `is_view` and knows how to make that view again from a new base (`replay`).
    """
    saved = ()
    watched = ()
    is_view = False
    changed = None   # set by an in-place change to an array this Function saved as its output: what changed

    def __init__(self):
        pass

    def save_for_backward(self, *arrays):
        self.saved = arrays

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *gys):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params):
        fn = cls(**params)
        fn.xp = backend.xp_of(_check_inputs(cls, inputs))
        fn.needs_input_grad = needs = tuple([t.requires_grad for t in inputs])
        try:
            outputs = fn.forward(*[t.data for t in inputs])
        except ValueError as err:   # a NumPy/CuPy shape error: name the op and its input shapes
            shapes = " and ".join(str(t.shape) for t in inputs)
            raise ValueError(f"{cls.__name__} of shapes {shapes}: {err}") from None
        single = not isinstance(outputs, tuple)
        outputs = (outputs,) if single else outputs
        record = True in needs and is_grad_enabled()
        results = tuple([Tensor(y, requires_grad=record) for y in outputs])
        if record:
            fn.inputs = inputs
            fn.clock = _clock
            fn.output_meta = tuple([(y.shape, y.dtype) for y in outputs])
            fn.output_grads = [None] * len(outputs)
            for i, t in enumerate(results):
                t.creator, t.output_index = fn, i
        if fn.is_view:
            link_views(inputs[0], results, fn)
        return results[0] if single else results

    def __repr__(self):
        return f"<{type(self).__name__}>"


def _check_inputs(cls, tensors):
    """Inputs must be Tensors on one device; floating inputs must share one dtype. Errors name the op. Returns
    the first input's array."""
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"{cls.__name__} expects Tensors, got {', '.join(type(t).__name__ for t in tensors)}")
    if not tensors:
        raise TypeError(f"{cls.__name__} expects Tensors, got nothing")
    first = tensors[0].data
    for t in tensors[1:]:
        data = t.data
        if type(data) is not type(first):
            raise backend.DeviceError(f"{cls.__name__}: tensors on different devices "
                                      f"({', '.join(x.device for x in tensors)}); move them with .to(device) first")
        if data.dtype != first.dtype and data.dtype.kind == "f" and first.dtype.kind == "f":
            raise TypeError(f"{cls.__name__}: mixed floating dtypes ({', '.join(str(x.dtype) for x in tensors)}); "
                            "cast one side so both match")
    return first


# ----------------------------------------------------------------------------- versions and views
class Version:
    """A tensor's version counter, shared with every tensor that views its memory: `count` goes up at each
    in-place change (PyTorch's `t._version`), `changed_at` is the clock of the latest one, `views` are weak
    references to the views that a change in the graph may have to remake (tensorlite/inplace.py)."""
    __slots__ = ("count", "changed_at", "views")

    def __init__(self):
        self.count, self.changed_at, self.views = 0, 0, []


def version_of(t):
    """t's counter, made on first need (most tensors never need one)."""
    if t._vc is None:
        t._vc = Version()
    return t._vc


def _owner(array):
    """The array that owns `array`'s memory: the end of its chain of bases (NumPy points a view's base at the
    owner at once; a base that is not an array of the same library, a buffer or another library's tensor whose
    memory NumPy borrowed, ends the chain)."""
    ndarray = backend.xp_of(array).ndarray
    while True:
        base = array.base
        if not isinstance(base, ndarray):
            return array
        array = base


def _saves(fn, array):
    """Whether fn saved memory that overlaps `array` (bounds, as np.may_share_memory: parameters that are views of
    one optimizer buffer do not overlap each other)."""
    xp = backend.xp_of(array)
    return any(a is not None and hasattr(a, "base") and xp.may_share_memory(a, array) for a in fn.saved)


def link_views(x, results, fn):
    """Outputs of a view Function that share x's memory share x's version counter and remember how they were
    made (parent, Function, output index, grad mode), like PyTorch's views. Those made with grad mode on are
    listed on the counter: an in-place change in the graph makes them again (tensorlite/inplace.py)."""
    data = x.data
    x_owner = _owner(data)
    for i, t in enumerate(results):
        if t.data.base is None or _owner(t.data) is not x_owner:
            continue
        vc = t._vc = x._vc or version_of(x)
        grad_mode = is_grad_enabled()
        t._view = (x, fn, i, grad_mode)
        if grad_mode:
            views = vc.views
            views.append(weakref.ref(t))
            if len(views) >= 16 and not len(views) & (len(views) - 1):   # at powers of two: amortised O(1)
                views[:] = [ref for ref in views if ref() is not None]


def bump(t):
    """Record an in-place change of t's memory: its counter (and its views') goes up, and a Function that saved
    this memory as its output is marked, so that its backward refuses to run."""
    global _clock
    _clock += 1
    vc = version_of(t)
    vc.count += 1
    vc.changed_at = _clock
    chain = t
    while chain is not None:   # t and the tensors it views: a creator among them may have saved the memory
        fn = chain.creator
        if fn is not None and fn.inputs is not None and _saves(fn, t.data):
            fn.changed = f"output {chain.output_index} of {type(fn).__name__}"
        chain = chain._view[0] if chain._view is not None else None
    return _clock


def _modified_error(fn, what):
    return RuntimeError(f"one of the tensors needed for gradient computation has been modified by an in-place "
                        f"operation: {what}, saved by {type(fn).__name__} for its backward, changed after it was "
                        "saved. Make the change out of place (x = x * 2, not x *= 2), or clone() the tensor before "
                        "changing it")


def _check_saved(fn):
    """Raise if an array fn saved (an input's, an output's or a watched tensor's) changed after fn was recorded;
    point fn's inputs at the history they had then (a tensor changed in the graph since has a new creator)."""
    if fn.changed is not None:
        raise _modified_error(fn, fn.changed)
    for t in fn.watched:
        if t._vc is not None and t._vc.changed_at > fn.clock:
            raise _modified_error(fn, f"a tensor of shape {t.shape} (version {t._vc.count})")
    inputs = list(fn.inputs)
    for i, t in enumerate(inputs):
        if t._vc is not None and t._vc.changed_at > fn.clock and _saves(fn, t.data):
            raise _modified_error(fn, f"input {i} (a tensor of shape {t.shape}, now at version {t._vc.count})")
        if t._history is not None:
            inputs[i] = next((old for at, old in t._history if at > fn.clock), t)
    fn.inputs = tuple(inputs)


# ----------------------------------------------------------------------------- the backward walk
def unbroadcast(grad, shape):
    """Sum a gradient over the axes that broadcasting added or stretched, so it has `shape` again."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    stretched = tuple(extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1)
    summed = grad.sum(axis=tuple(range(extra)) + stretched, keepdims=True) if extra or stretched else grad
    if summed.size != _numel(shape):
        raise RuntimeError(f"gradient of shape {grad.shape} cannot be reduced to input shape {shape} (an op bug)")
    return summed.reshape(shape)


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _topological_order(root_fn):
    """Creators reachable from root_fn, each after every function that consumes its outputs (iterative DFS).
    Functions recorded before the latest in-place change are checked first (_check_saved), before any backward
    runs, so an error leaves every .grad as it was."""
    order, visited, stack = [], set(), [(root_fn, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if fn in visited:
            continue
        if fn.inputs is None:
            raise RuntimeError("backward through a graph a second time: an earlier backward freed this part of it "
                               f"(the saved arrays of {type(fn).__name__}); run the forward again")
        if fn.clock != _clock:
            _check_saved(fn)
        visited.add(fn)
        stack.append((fn, True))
        for t in fn.inputs:
            if t.creator is not None and t.creator not in visited:
                stack.append((t.creator, False))
    order.reverse()
    return order


def backward(root, grad):
    """Accumulate d(root)/d(leaf) * grad into every leaf that requires grad, then free the graph. The walk's
    gradients are arrays; a leaf's (or retained) .grad is a Tensor holding one."""
    if root.creator is None:
        _accumulate_leaf(root, grad, handed_out=set())
        return
    order = _topological_order(root.creator)
    root.creator.output_grads[root.output_index] = grad
    if root.retains_grad:
        root.grad = Tensor(grad)
    handed_out = set()
    for fn in order:
        gys = tuple(g if g is not None else fn.xp.zeros(shape, dtype)
                    for g, (shape, dtype) in zip(fn.output_grads, fn.output_meta))
        gxs = fn.backward(*gys)
        gxs = gxs if isinstance(gxs, tuple) else (gxs,)
        for t, g in zip(fn.inputs, gxs):
            if g is None or not t.requires_grad:
                continue
            g = unbroadcast(g, t.shape)
            if g.dtype != t.dtype:
                g = g.astype(t.dtype)
            if t.creator is None:
                _accumulate_leaf(t, g, handed_out)
            else:
                slot = t.creator.output_grads
                slot[t.output_index] = g if slot[t.output_index] is None else slot[t.output_index] + g
                if t.retains_grad:
                    t.grad = Tensor(slot[t.output_index])
            handed_out.add(id(g))
        fn.inputs = fn.output_grads = None  # free the graph: saved arrays and references to inputs
        fn.saved = fn.watched = ()


def _accumulate_leaf(t, g, handed_out):
    """Add g into t.grad. A grad that is a view or was handed to another tensor is copied, so that in-place
    updates of one leaf's grad (clipping, optimizers) can never change another's. A .grad that exists keeps its
    Tensor and gets the sum as its array (out of place: its old array may be shared with the walk)."""
    if t.grad is not None:
        t.grad.data = t.grad.data + g
    elif getattr(g, "base", None) is not None or id(g) in handed_out or not getattr(g.flags, "writeable", True):
        t.grad = Tensor(g.copy())
    else:
        t.grad = Tensor(g)
