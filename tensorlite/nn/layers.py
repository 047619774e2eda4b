"""Layers with PyTorch's names, shapes and default initialisations."""
import inspect
import math

import numpy as np

from .. import random
from .. import functional as F
from .module import Module, Parameter


def _uniform(shape, bound):
    """U(-bound, bound) from the framework's seeded generator, float32 (PyTorch's Linear default init)."""
    return (random.rng("cpu").random(shape, dtype="float32") * 2 - 1) * bound


class Linear(Module):
    """y = x W^T + b with W (out_features, in_features); init U(-1/sqrt(in), 1/sqrt(in)) for both, like PyTorch."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features) if in_features else 0.0
        self.weight = Parameter(_uniform((out_features, in_features), bound))
        self.bias = Parameter(_uniform((out_features,), bound)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class LayerNorm(Module):
    """Normalise the trailing dims `normalized_shape` (an int or a tuple) to zero mean and unit variance, then
    scale (ones) and shift (zeros), like torch.nn.LayerNorm."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = Parameter(np.ones(shape, dtype="float32")) if elementwise_affine else None
        self.bias = Parameter(np.zeros(shape, dtype="float32")) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}, " \
               f"bias={self.bias is not None}"


class Embedding(Module):
    """A table of num_embeddings rows of size embedding_dim, looked up by integer ids; init N(0, 1)."""

    def __init__(self, num_embeddings, embedding_dim):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(random.rng("cpu").standard_normal((num_embeddings, embedding_dim),
                                                                   dtype="float32"))

    def forward(self, idx):
        return F.embedding(idx, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Dropout(Module):
    def __init__(self, p=0.5):
        super().__init__()
        F._check_dropout_p(p)
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class GELU(Module):
    """Exact (erf) GELU by default, as PyTorch's; approximate='tanh' for GPT-2's."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class ModuleList(Module):
    """A list of modules, registered under the names '0', '1', ... (so parameters are named `h.0.attn...`)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    """Modules registered under given names (nanoGPT's `transformer = ModuleDict(wte=..., h=...)`)."""

    def __init__(self, modules=None, **named):
        super().__init__()
        for name, module in {**(modules or {}), **named}.items():
            setattr(self, name, module)

    def __getitem__(self, name):
        return self._modules[name]

    def __contains__(self, name):
        return name in self._modules

    def keys(self):
        return self._modules.keys()


class Sequential(ModuleList):
    """Modules applied one after another."""

    def __init__(self, *modules):
        super().__init__(modules)

    def forward(self, x):
        for m in self:
            x = m(x)
        return x


# ----------------------------------------------------------------------------- activations and plumbing
class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Softmax(Module):
    """softmax over `dim`. PyTorch's default dim=None (a guess from the input's shape, deprecated) is not offered:
    give the dim."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log_softmax over `dim`."""

    def forward(self, x):
        return F.log_softmax(x, self.dim)


class Identity(Module):
    """Returns its input; takes and ignores any arguments, as PyTorch's (a stand-in where a layer is optional)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Flatten(Module):
    """Dims start_dim .. end_dim merged into one (by default all but the batch dim), as nn.Flatten."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


# ----------------------------------------------------------------------------- losses
class _Loss(Module):
    """A loss layer: an F loss function with options fixed when the layer is made. The options and their defaults
    are the function's own (one home for each): an unknown option fails here, at construction."""

    function = None   # the F function, set by each subclass

    def __init__(self, **options):
        super().__init__()
        inspect.signature(self.function).bind(None, None, **options)
        self.options = options

    def forward(self, input, target):
        return self.function(input, target, **self.options)

    def extra_repr(self):
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())


class CrossEntropyLoss(_Loss):
    """F.cross_entropy as a layer: `nn.CrossEntropyLoss(ignore_index=..., reduction=...)(logits, targets)`."""

    function = staticmethod(F.cross_entropy)


class MSELoss(_Loss):
    """F.mse_loss as a layer: `nn.MSELoss(reduction=...)(input, target)`."""

    function = staticmethod(F.mse_loss)
