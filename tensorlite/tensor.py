"""Tensor: a backend array, its gradient, and the Function that created it.

A Tensor holds no math of its own: every operator delegates to a Function in `ops`, which is what lets the graph be
recorded in one place (`Function.apply`) and walked back in one place (`autograd.backward`).
"""
import numpy as np

from . import backend

DEFAULT_DTYPE = np.float32


def _as_array(data, dtype, device):
    """Turn lists, scalars, NumPy or CuPy arrays into an array of the requested dtype on the requested device."""
    if isinstance(data, Tensor):
        data = data.data
    if type(data) is np.ndarray and dtype is None and device is None:  # the hot path: an op's output
        return data
    if not hasattr(data, "dtype") or isinstance(data, np.generic):
        # Python scalars and lists: floats default to float32 like PyTorch. NumPy scalars become 0-d arrays.
        is_python = not hasattr(data, "dtype")
        source, data = data, np.asarray(data)
        check_numeric(data, source)
        if dtype is None and is_python and data.dtype.kind == "f":
            dtype = DEFAULT_DTYPE
    if device is not None:
        data = backend.to_device(data, backend.check_device(device))
    if dtype is not None and data.dtype != np.dtype(dtype):
        data = data.astype(dtype)
    return data


def check_numeric(array, source):
    """A tensor holds booleans, integers or floats: strings, None or dicts (an object array) fail here, at once,
    not later inside an op."""
    if array.dtype.kind in "biuf":
        return
    got = type(source).__name__
    if array.dtype.kind in "US":
        got = "strings"
    elif hasattr(source, "dtype"):
        got += f" of dtype {array.dtype}"
    raise TypeError(f"a tensor holds numbers (bool, int or float), or nested lists or arrays of them; got {got}")


class Tensor:
    """An n-dimensional array that records how it was computed, so gradients can flow back to it.

    `data` is the backend ndarray (numpy or cupy) and may be updated in place (optimizers do); `grad` is an
    ndarray of the same shape once backward has reached this tensor, or None.
    """
    __array_priority__ = 1000  # make `ndarray + Tensor` defer to Tensor.__radd__

    def __init__(self, data, requires_grad=False, device=None, dtype=None):
        self.data = _as_array(data, dtype, device)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require grad, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self.creator = None       # the Function that produced this tensor (None for leaves)
        self.output_index = 0     # which of the creator's outputs this is
        self.retains_grad = False

    # ----- attributes
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    device = property(lambda self: backend.device_of(self.data))
    is_leaf = property(lambda self: self.creator is None)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", precision=4, threshold=20, prefix="tensor(")
        extras = [f"device='{self.device}'"] if self.device != "cpu" else []
        if self.dtype != DEFAULT_DTYPE:
            extras.append(f"dtype={self.dtype}")
        if self.creator is not None:
            extras.append(f"grad_fn={type(self.creator).__name__}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}{''.join(', ' + e for e in extras)})"

    # ----- autograd
    def backward(self, grad=None):
        """Accumulate the gradient of this tensor into every leaf it depends on (seeded with `grad`)."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no leaf it depends on has "
                               "requires_grad=True (or it was computed under no_grad)")
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar output, got shape {self.shape}; "
                                   "pass grad= of that shape")
            grad = self.xp.ones(self.shape, dtype=self.dtype)
        else:
            grad = _as_array(grad, self.dtype, self.device).copy()
            if grad.shape != self.shape:
                raise ValueError(f"backward(grad): grad has shape {grad.shape}, the tensor has shape {self.shape}")
        autograd.backward(self, grad)

    def retain_grad(self):
        """Keep .grad on a non-leaf tensor too (like PyTorch)."""
        self.retains_grad = True
        return self

    def detach(self):
        return Tensor(self.data)

    def zero_grad(self):
        self.grad = None

    def requires_grad_(self, flag=True):
        if flag and self.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require grad, got dtype {self.dtype}")
        self.requires_grad = bool(flag)
        return self

    # ----- conversion
    @property
    def xp(self):
        return backend.xp_of(self.data)

    def item(self):
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        backend.flush_device_asserts()   # the host waits for the device here anyway: look at the deferred input checks
        return self.data.reshape(()).item()

    def numpy(self):
        backend.flush_device_asserts()
        return backend.to_numpy(self.data)

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device=None, dtype=None):
        """A copy on another device and/or dtype; keeps the graph, so gradients flow back across it."""
        if dtype is not None and self.dtype != np.dtype(dtype):
            return ops.cast(self, dtype).to(device)
        if device is None or backend.check_device(device) == self.device:
            return self
        return ops.to_device(self, backend.check_device(device))

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)


    # ----- operators: each delegates to a Function in ops
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __pow__(self, other): return ops.pow(self, other)
    def __rpow__(self, other): return ops.pow(other, self)
    def __matmul__(self, other): return ops.matmul(self, ops.as_tensor(other, self))
    def __rmatmul__(self, other): return ops.matmul(ops.as_tensor(other, self), self)
    def __neg__(self): return ops.neg(self)
    def __getitem__(self, index): return ops.getitem(self, index)
    def __eq__(self, other): return ops.eq(self, other)
    def __ne__(self, other): return ops.ne(self, other)
    def __lt__(self, other): return ops.lt(self, other)
    def __le__(self, other): return ops.le(self, other)
    def __gt__(self, other): return ops.gt(self, other)
    def __ge__(self, other): return ops.ge(self, other)

    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def sqrt(self): return ops.sqrt(self)
    def tanh(self): return ops.tanh(self)
    def sigmoid(self): return ops.sigmoid(self)
    def relu(self): return ops.relu(self)
    def abs(self): return ops.abs(self)
    def sum(self, axis=None, keepdims=False): return ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return ops.mean(self, axis, keepdims)
    def var(self, axis=None, keepdims=False, correction=1): return ops.var(self, axis, keepdims, correction)
    def max(self, axis=None, keepdims=False): return ops.max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return ops.min(self, axis, keepdims)
    def reshape(self, *shape): return ops.reshape(self, *shape)
    view = reshape
    def transpose(self, *axes): return ops.transpose(self, *axes)
    permute = transpose
    def swapaxes(self, a, b): return ops.swapaxes(self, a, b)
    def unsqueeze(self, axis): return ops.unsqueeze(self, axis)
    def squeeze(self, axis=None): return ops.squeeze(self, axis)
    def expand(self, *shape): return ops.broadcast_to(self, *shape)
    broadcast_to = expand
    def masked_fill(self, mask, value): return ops.masked_fill(self, mask, value)
    def split(self, split_size_or_sections, axis=0): return ops.split(self, split_size_or_sections, axis)
    def chunk(self, chunks, axis=0): return ops.chunk(self, chunks, axis)
    T = property(lambda self: ops.transpose(self))

    # ----- PyTorch's functions as methods too (x.tril() is tl.tril(x)); the arguments and defaults are the function's
    def tril(self, *args, **kwargs): return ops.tril(self, *args, **kwargs)
    def triu(self, *args, **kwargs): return ops.triu(self, *args, **kwargs)
    def cumsum(self, *args, **kwargs): return ops.cumsum(self, *args, **kwargs)
    def gather(self, *args, **kwargs): return ops.gather(self, *args, **kwargs)
    def sort(self, *args, **kwargs): return ops.sort(self, *args, **kwargs)
    def argsort(self, *args, **kwargs): return ops.argsort(self, *args, **kwargs)
    def topk(self, *args, **kwargs): return ops.topk(self, *args, **kwargs)
    def all(self, *args, **kwargs): return logical.all(self, *args, **kwargs)
    def any(self, *args, **kwargs): return logical.any(self, *args, **kwargs)
    def allclose(self, *args, **kwargs): return logical.allclose(self, *args, **kwargs)
    def equal(self, *args, **kwargs): return logical.equal(self, *args, **kwargs)

    def __hash__(self):  # comparisons return tensors, so identity is the hash
        return id(self)

    def __bool__(self):
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.data)


from . import autograd, logical, ops  # noqa: E402  (they build on Tensor; Tensor's operators delegate to them)
