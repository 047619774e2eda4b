"""Module and Parameter: the bookkeeping that turns a pile of tensors into a model.

Assigning a Parameter or a Module to an attribute registers it, in order, so `named_parameters()` can produce
PyTorch's dotted names (`transformer.h.0.attn.c_attn.weight`) and `state_dict()` can save by them.
"""
from collections import OrderedDict

import numpy as np

from .. import backend
from ..tensor import Tensor, device_and_dtype
from .utils import zero_grads


class Parameter(Tensor):
    """A Tensor that is a trainable weight: requires grad, and is registered by the Module that holds it."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers and models: subclasses set attributes in __init__ and define forward()."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() before setting "
                                 f"attributes (setting {name!r})")
        # A name set again keeps its place and kind: `layer.weight *= 0.1` and `self.buffer += 1` set it again.
        if isinstance(value, Parameter):
            registry = self._parameters
        elif isinstance(value, Module):
            registry = self._modules
        else:
            registry = self._buffers if name in self._buffers and isinstance(value, Tensor) else None
        for other in (self._parameters, self._modules, self._buffers):
            if other is not registry:
                other.pop(name, None)
        if registry is self._buffers:
            self._buffers[name] = (value, self._buffers[name][1])
        elif registry is not None:
            registry[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, tensor, persistent=True):
        """A non-trainable tensor that moves with the module (and is saved in state_dict when persistent)."""
        setattr(self, name, tensor)
        self._buffers[name] = (tensor, persistent)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ----- traversal
    def named_modules(self, prefix=""):
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items()]
            stack.extend(reversed(children))

    def modules(self):
        return (m for _, m in self.named_modules())

    def children(self):
        return iter(self._modules.values())

    def named_children(self):
        """(name, module) of each direct submodule; one registered twice appears once, under its first name."""
        seen = set()
        for name, module in self._modules.items():
            if id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def apply(self, fn):
        """fn(module) on every submodule, children before their parent, then on self; returns self, as PyTorch's
        (nanoGPT's `self.apply(self._init_weights)`)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def named_parameters(self, remove_duplicate=True):
        """(dotted name, Parameter) pairs; a shared (tied) parameter appears once, under its first name (under each
        of its names with remove_duplicate=False, as PyTorch's)."""
        seen = set()
        for prefix, module in self.named_modules():
            for name, p in module._parameters.items():
                if not (remove_duplicate and id(p) in seen):
                    seen.add(id(p))
                    yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def _named_buffer_entries(self):
        for prefix, module in self.named_modules():
            for name, (tensor, persistent) in module._buffers.items():
                yield (f"{prefix}.{name}" if prefix else name), tensor, persistent

    def named_buffers(self):
        """(dotted name, tensor) of every buffer, persistent or not."""
        return ((name, tensor) for name, tensor, _ in self._named_buffer_entries())

    def buffers(self):
        return [tensor for _, tensor in self.named_buffers()]

    def _named_persistent_buffers(self):
        return ((name, tensor) for name, tensor, persistent in self._named_buffer_entries() if persistent)

    # ----- modes and devices
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Every parameter's gradient dropped (PyTorch's default) or, with set_to_none=False, zeroed in place."""
        zero_grads(self.parameters(), set_to_none)

    def requires_grad_(self, requires_grad=True):
        """Switch gradients on or off for every parameter (freezing a model: requires_grad_(False)); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, *args, device=None, dtype=None):
        """Move every parameter and buffer to `device` and/or cast floating ones to `dtype`, in place
        (the Parameter objects stay the same, so optimizers made afterwards see the new arrays): to('cuda'),
        to(tl.float64), to(device, dtype), as PyTorch's."""
        device, dtype = device_and_dtype(args, device, dtype)
        device = None if device is None else backend.check_device(device)
        for m in self.modules():
            tensors = list(m._parameters.values()) + [t for t, _ in m._buffers.values()]
            for t in tensors:
                data = t.data if device is None else backend.to_device(t.data, device)
                t.data = data.astype(dtype) if dtype is not None and data.dtype.kind == "f" else data
                t.grad = None
        return self

    def double(self):
        return self.to(dtype=np.float64)

    def float(self):
        return self.to(dtype=np.float32)

    # ----- saving and loading
    def state_dict(self):
        """Name -> NumPy array copy of every parameter and persistent buffer. A tied parameter is listed once,
        under its first name (PyTorch lists it under each): each entry is a copy, so a second name would double
        the tied matrix in every checkpoint. load_state_dict accepts it under any of its names."""
        entries = list(self.named_parameters()) + list(self._named_persistent_buffers())
        return OrderedDict((name, backend.to_numpy(t.data).copy()) for name, t in entries)

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (NumPy, CuPy or Tensors) into the existing parameters in place (so optimizers keep
        pointing at them).

        Shape mismatches are always errors; missing or unexpected keys are errors when strict.
        Returns (missing_keys, unexpected_keys)."""
        own = OrderedDict(list(self.named_parameters()) + list(self._named_persistent_buffers()))
        names_of = {}   # id(tensor) -> every name it goes by (a tied parameter has several)
        for name, t in list(self.named_parameters(remove_duplicate=False)) + list(own.items()):
            names_of.setdefault(id(t), []).append(name)
        by_name = {name: t for name, t in self.named_parameters(remove_duplicate=False)} | own
        missing = [k for k, t in own.items() if not any(n in state_dict for n in names_of[id(t)])]
        unexpected = [k for k in state_dict if k not in by_name]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, tensor in by_name.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            value = np.asarray(backend.to_numpy(value.data if isinstance(value, Tensor) else value))
            if value.shape != tensor.shape:
                raise ValueError(f"load_state_dict: {name} has shape {value.shape} in the state dict but "
                                 f"{tensor.shape} in the model")
            tensor.data[...] = tensor.xp.asarray(value, dtype=tensor.dtype)
        return missing, unexpected

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    def extra_repr(self):
        return ""
