"""The Function base class and the backward walk.

A Function computes on raw backend arrays (`self.xp` is numpy or cupy) and knows the local derivative of its
outputs with respect to its inputs. `Function.apply` wraps the result in Tensors that remember their creator, which
is all the graph there is. `backward` then visits the creators in reverse topological order, found with an
explicit stack (no recursion, so a 10,000-op chain is fine), and does the two chores no op should repeat:
un-broadcasting each gradient to its input's shape, and accumulating gradients that meet at one tensor.
"""
import contextlib
import threading

from . import backend
from .tensor import Tensor

_state = threading.local()


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

    An op's non-tensor parameters (axis, shape, ...) are the arguments of its own `__init__`, which stores them;
    `Cls.apply(*tensors, **params)` makes `Cls(**params)` and runs it on the tensors.
    `backward` gets one gradient per output and returns one per input (None where no gradient is needed); a
    gradient may keep the broadcast shape of the output: the engine sums it back to the input's shape.
    `backward` must not modify the gradients it is given: they may be shared with other branches.
    """

    def __init__(self):
        self.saved = ()

    def save_for_backward(self, *arrays):
        self.saved = arrays

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *gys):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params):
        fn = cls(**params)
        _check_inputs(cls.__name__, inputs)
        fn.xp = backend.xp_of(inputs[0].data)
        fn.needs_input_grad = tuple(t.requires_grad for t in inputs)
        outputs = _forward(fn, inputs)
        single = not isinstance(outputs, tuple)
        outputs = (outputs,) if single else outputs
        record = is_grad_enabled() and any(fn.needs_input_grad)
        results = tuple(Tensor(y, requires_grad=record) for y in outputs)
        if record:
            fn.inputs = inputs
            fn.output_meta = tuple((y.shape, y.dtype) for y in outputs)
            fn.output_grads = [None] * len(outputs)
            for i, t in enumerate(results):
                t.creator, t.output_index = fn, i
        return results[0] if single else results

    def __repr__(self):
        return f"<{type(self).__name__}>"


def _check_inputs(op, tensors):
    """Inputs must be Tensors on one device; floating inputs must share one dtype. Errors name the op."""
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(f"{op} expects Tensors, got {', '.join(type(t).__name__ for t in tensors) or 'nothing'}")
    first = tensors[0].data
    for t in tensors[1:]:
        if type(t.data) is not type(first):
            raise backend.DeviceError(f"{op}: tensors on different devices ({', '.join(x.device for x in tensors)})"
                                      "; move them with .to(device) first")
        if t.data.dtype != first.dtype and t.data.dtype.kind == "f" and first.dtype.kind == "f":
            raise TypeError(f"{op}: mixed floating dtypes ({', '.join(str(x.dtype) for x in tensors)}); "
                            "cast one side so both match")


def _forward(fn, tensors):
    """Run fn.forward, turning a NumPy/CuPy shape error into one that names the op and its input shapes."""
    try:
        return fn.forward(*(t.data for t in tensors))
    except ValueError as err:
        shapes = " and ".join(str(t.shape) for t in tensors)
        raise ValueError(f"{type(fn).__name__} of shapes {shapes}: {err}") from None


def unbroadcast(grad, shape):
    """Sum a gradient over the axes that broadcasting added or stretched, so it has `shape` again."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    stretched = tuple(extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1)
    summed = grad.sum(axis=tuple(range(extra)) + stretched, keepdims=True) if extra or stretched else grad
    if summed.size != _size(shape):
        raise RuntimeError(f"gradient of shape {grad.shape} cannot be reduced to input shape {shape} (an op bug)")
    return summed.reshape(shape)


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _topological_order(root_fn):
    """Creators reachable from root_fn, each after every function that consumes its outputs (iterative DFS)."""
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
        visited.add(fn)
        stack.append((fn, True))
        for t in fn.inputs:
            if t.creator is not None and t.creator not in visited:
                stack.append((t.creator, False))
    order.reverse()
    return order


def backward(root, grad):
    """Accumulate d(root)/d(leaf) * grad into every leaf that requires grad, then free the graph."""
    if root.creator is None:
        _accumulate_leaf(root, grad, handed_out=set())
        return
    order = _topological_order(root.creator)
    root.creator.output_grads[root.output_index] = grad
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
                    t.grad = slot[t.output_index]
            handed_out.add(id(g))
        fn.inputs = fn.output_grads = None  # free the graph: saved arrays and references to inputs
        fn.saved = ()


def _accumulate_leaf(t, g, handed_out):
    """Add g into t.grad. A grad that is a view or was handed to another tensor is copied, so that in-place
    updates of one leaf's grad (clipping, optimizers) can never change another's."""
    if t.grad is not None:
        t.grad = t.grad + g
    elif getattr(g, "base", None) is not None or id(g) in handed_out or not getattr(g.flags, "writeable", True):
        t.grad = g.copy()
    else:
        t.grad = g
