"""Tensor: a backend array, its gradient, and the Function that created it.

A Tensor holds no math of its own: every operator delegates to a Function in `ops`, which is what lets the graph be
recorded in one place (`Function.apply`) and walked back in one place (`autograd.backward`). Most methods are the
ops functions themselves (`x.sum(1)` is `ops.sum(x, 1)`, see the end of this module), with PyTorch's names and
arguments; in-place methods (`x += v`, `x[i] = v`, `x.zero_()`) are tensorlite/inplace.py's.
"""
import functools

import numpy as np

from . import backend

DEFAULT_DTYPE = np.float32


def _as_array(data, dtype, device):
    """Turn lists, scalars, NumPy or CuPy arrays into an array of the requested dtype on the requested device."""
    if isinstance(data, Tensor):
        data = data.data
    if type(data) is np.ndarray and dtype is None and device is None:
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


def device_and_dtype(args, device, dtype):
    """`to`'s arguments as PyTorch takes them: to('cuda'), to(torch.float64), to(other_tensor), to(device, dtype)
    or keywords."""
    for arg in args:
        if isinstance(arg, Tensor):
            device, dtype = arg.device, arg.dtype
        elif arg is None or isinstance(arg, str):
            device = arg
        else:
            dtype = arg
    return device, dtype


class Tensor:
    """An n-dimensional array that records how it was computed, so gradients can flow back to it.

    `data` is the backend ndarray itself (numpy or cupy), not a Tensor as in PyTorch: every op computes on it, and
    code that wants the raw array (optimizers, kernels) reads it without a wrapper. `grad` is a Tensor (with no
    graph) of the same shape once backward has reached this tensor, or None.
    """
    __array_priority__ = 1000  # make `ndarray + Tensor` defer to Tensor.__radd__

    # Defaults shared by every tensor until one sets its own (most never do): creating a tensor stays cheap.
    creator = None        # the Function that produced this tensor (None for leaves)
    output_index = 0      # which of the creator's outputs this is
    retains_grad = False
    _grad = None
    _vc = None            # the version counter (autograd.Version), shared with views; made on first need
    _view = None          # (parent, view Function or None, output index, made in grad mode) for a view
    _history = None       # [(clock, tensor)]: what this tensor was before each in-place change in the graph

    def __init__(self, data, requires_grad=False, device=None, dtype=None):
        self.data = data if type(data) is np.ndarray and device is None and dtype is None else \
            _as_array(data, dtype, device)
        if requires_grad:
            if self.data.dtype.kind != "f":
                raise TypeError(f"only floating tensors can require grad, got dtype {self.data.dtype}")
            self.requires_grad = True
        else:
            self.requires_grad = False

    # ----- attributes
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    device = property(lambda self: backend.device_of(self.data))
    is_leaf = property(lambda self: self.creator is None)
    _version = property(lambda self: 0 if self._vc is None else self._vc.count)

    def size(self, dim=None):
        """The shape (a tuple), or the size of one dim, as torch's x.size() / x.size(d)."""
        return self.data.shape if dim is None else self.data.shape[ops.check_dim(dim, self.data.ndim)]

    def numel(self):
        return self.data.size

    nelement = numel

    def dim(self):
        return self.data.ndim

    def is_contiguous(self):
        return bool(self.data.flags.c_contiguous)

    def contiguous(self):
        """self if its array is C-contiguous, else a contiguous copy (which passes gradients back)."""
        return self if self.data.flags.c_contiguous else ops.clone(self)

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad must be a Tensor or None, got {type(value).__name__} (wrap an "
                                "array with tl.tensor(...))")
            if value.shape != self.shape or value.dtype != self.dtype or type(value.data) is not type(self.data):
                raise ValueError(f"assigned grad has shape {value.shape}, dtype {value.dtype} on {value.device}; "
                                 f"the tensor has shape {self.shape}, dtype {self.dtype} on {self.device}")
        self._grad = value

    def __len__(self):
        return len(self.data)

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

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

    def __format__(self, spec):
        """f"{loss:.4f}" formats a one-element tensor's value; other tensors take no format spec."""
        if spec and self.data.size == 1:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    # ----- autograd
    def backward(self, gradient=None):
        """Accumulate the gradient of this tensor into every leaf it depends on (seeded with `gradient`)."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no leaf it depends on has "
                               "requires_grad=True (or it was computed under no_grad)")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar output, got shape {self.shape}; "
                                   "pass a gradient of that shape")
            gradient = self.xp.ones(self.shape, dtype=self.dtype)
        else:
            gradient = _as_array(gradient, self.dtype, self.device).copy()
            if gradient.shape != self.shape:
                raise ValueError(f"backward(gradient): it has shape {gradient.shape}, the tensor has shape "
                                 f"{self.shape}")
        autograd.backward(self, gradient)

    def retain_grad(self):
        """Keep .grad on a non-leaf tensor too (like PyTorch)."""
        self.retains_grad = True
        return self

    def detach(self):
        """The same array, outside the graph; it shares this tensor's version counter, as in PyTorch."""
        out = Tensor(self.data)
        out._vc = autograd.version_of(self)
        out._view = (self, None, 0, autograd.is_grad_enabled())
        return out

    def zero_grad(self):
        self.grad = None

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require grad, got dtype {self.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    # ----- conversion
    @property
    def xp(self):
        return backend.xp_of(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        backend.flush_device_asserts()   # the host waits for the device here anyway: look at the deferred input checks
        return self.data.reshape(()).item()

    def __index__(self):
        """An integer tensor of one element as a Python int: a list index, a slice bound, range(t)."""
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError(f"only integer tensors of a single element can be converted to an index, got shape "
                            f"{self.shape} of dtype {self.dtype}")
        return int(self.item())

    def __int__(self):
        return int(self.item())

    def __float__(self):
        return float(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.data)

    def __array__(self, dtype=None, copy=None):
        """A CPU tensor's array, for NumPy (np.asarray(t), ndarray += t); a GPU tensor says to move it first."""
        if backend.is_cuda_array(self.data):
            raise TypeError("a cuda tensor can't become a NumPy array implicitly: call .cpu() or .numpy() first")
        array = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return array.copy() if copy else array

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """NumPy's ufuncs meeting a Tensor: `ndarray + t` (-, *, /, **, @, comparisons) is the Tensor op, what t's
        reflected operator gives; any other ufunc, and one writing into an array (`ndarray += t`, micrograd's
        `p.data += -lr * p.grad`), computes on the tensors' arrays and gives an array."""
        out = kwargs.get("out")
        if method == "__call__" and out is None and ufunc in ops.NUMPY_OPERATORS:
            return ops.NUMPY_OPERATORS[ufunc](*inputs)
        if out is not None and any(isinstance(o, Tensor) for o in out):
            raise TypeError(f"numpy.{ufunc.__name__} cannot write into a Tensor; use its in-place methods (t += x, "
                            "t.copy_(x))")
        arrays = tuple(x.__array__() if isinstance(x, Tensor) else x for x in inputs)
        return getattr(ufunc, method)(*arrays, **kwargs)

    @property
    def __cuda_array_interface__(self):
        """A GPU tensor's array, for CuPy (cupy_array += t); absent on the CPU."""
        if not backend.is_cuda_array(self.data):
            raise AttributeError("a cpu tensor has no __cuda_array_interface__")
        return self.data.__cuda_array_interface__

    def numpy(self):
        backend.flush_device_asserts()
        return backend.to_numpy(self.data)

    def tolist(self):
        return self.numpy().tolist()

    def to(self, *args, device=None, dtype=None):
        """A copy on another device and/or dtype (to('cuda'), to(tl.float64), to(other), to(device, dtype)); keeps
        the graph, so gradients flow back across it. Self when nothing changes."""
        device, dtype = device_and_dtype(args, device, dtype)
        if dtype is not None and self.dtype != np.dtype(dtype):
            return ops.cast(self, dtype).to(device)
        if device is None or backend.check_device(device) == self.device:
            return self
        return ops.to_device(self, backend.check_device(device))

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    # ----- operators whose reflected form swaps the operands (the others are ops functions, below)
    def __radd__(self, other): return ops.add(other, self)
    def __rsub__(self, other): return ops.sub(other, self)
    def __rmul__(self, other): return ops.mul(other, self)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __rpow__(self, other): return ops.pow(other, self)
    def __rfloordiv__(self, other): return ops.floor_divide(other, self)
    def __rmod__(self, other): return ops.remainder(other, self)
    def __rand__(self, other): return ops.logical_and(other, self)
    def __ror__(self, other): return ops.logical_or(other, self)
    def __rxor__(self, other): return ops.logical_xor(other, self)
    def __rmatmul__(self, other): return ops.matmul(ops.as_tensor(other, self), self)

    def __hash__(self):  # comparisons return tensors, so identity is the hash
        return id(self)

    def __getstate__(self):
        """Pickling (a spawned worker gets the module so) leaves out the version and view bookkeeping: it holds
        weak references, and it is about this process's tensors."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_vc", "_view", "_history")}

    # x.float(), x.long(), ...: to(dtype=...) (last in the class: these names hide the builtins below them)
    half = functools.partialmethod(to, dtype=np.float16)
    double = functools.partialmethod(to, dtype=np.float64)
    long = functools.partialmethod(to, dtype=np.int64)
    int = functools.partialmethod(to, dtype=np.int32)
    bool = functools.partialmethod(to, dtype=np.bool_)
    float = functools.partialmethod(to, dtype=np.float32)


from . import autograd, inplace, logical, ops  # noqa: E402  (they build on Tensor; Tensor's methods are theirs)

# Methods that are ops functions themselves: `x.sum(1)` is `ops.sum(x, 1)` with no call in between (the hot path
# pays for no wrapper), and the signature and docstring are the function's.
for _method, _function in {
        "__add__": ops.add, "__sub__": ops.sub, "__mul__": ops.mul, "__truediv__": ops.div, "__pow__": ops.pow,
        "__matmul__": ops.matmul, "__neg__": ops.neg, "__abs__": ops.abs, "__getitem__": ops.getitem, "__eq__": ops.eq,
        "__ne__": ops.ne, "__lt__": ops.lt, "__le__": ops.le, "__gt__": ops.gt, "__ge__": ops.ge,
        "__floordiv__": ops.floor_divide, "__mod__": ops.remainder, "__and__": ops.logical_and,
        "__or__": ops.logical_or, "__xor__": ops.logical_xor, "__invert__": ops.logical_not,
        "exp": ops.exp, "log": ops.log, "log2": ops.log2, "log10": ops.log10, "sqrt": ops.sqrt, "tanh": ops.tanh,
        "sigmoid": ops.sigmoid, "relu": ops.relu, "abs": ops.abs, "clamp": ops.clamp, "clip": ops.clip,
        "clone": ops.clone, "maximum": ops.maximum, "minimum": ops.minimum, "masked_fill": ops.masked_fill,
        "matmul": ops.matmul,
        "sum": ops.sum, "mean": ops.mean, "var": ops.var, "std": ops.std, "max": ops.max, "min": ops.min,
        "amax": ops.amax, "amin": ops.amin, "argmax": ops.argmax, "argmin": ops.argmin,
        "reshape": ops.reshape, "view": ops.view, "flatten": ops.flatten, "unsqueeze": ops.unsqueeze,
        "squeeze": ops.squeeze, "permute": ops.permute, "transpose": ops.transpose, "swapaxes": ops.swapaxes,
        "swapdims": ops.swapdims, "t": ops.t, "expand": ops.expand, "broadcast_to": ops.broadcast_to,
        "split": ops.split, "chunk": ops.chunk, "tril": ops.tril, "triu": ops.triu, "cumsum": ops.cumsum,
        "gather": ops.gather, "sort": ops.sort, "argsort": ops.argsort, "topk": ops.topk,
        "all": logical.all, "any": logical.any, "allclose": logical.allclose, "equal": logical.equal,
        "T": property(ops.reversed_dims), "mT": property(ops.matrix_transpose),
        # in place: the tensor itself changes (tensorlite/inplace.py says when that is allowed)
        "__iadd__": inplace.add_, "__isub__": inplace.sub_, "__imul__": inplace.mul_, "__itruediv__": inplace.div_,
        "__ipow__": inplace.pow_, "__setitem__": inplace.setitem, "add_": inplace.add_, "sub_": inplace.sub_,
        "mul_": inplace.mul_, "div_": inplace.div_, "pow_": inplace.pow_, "zero_": inplace.zero_,
        "fill_": inplace.fill_, "copy_": inplace.copy_, "masked_fill_": inplace.masked_fill_,
        "clamp_": inplace.clamp_, "clip_": inplace.clamp_, "normal_": inplace.normal_,
        "uniform_": inplace.uniform_}.items():
    setattr(Tensor, _method, _function)
