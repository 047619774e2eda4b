"""Layers and models: Module, Parameter and PyTorch-shaped layers."""
from . import utils
from .layers import GELU, Dropout, Embedding, LayerNorm, Linear, ModuleDict, ModuleList, ReLU, Sequential
from .module import Module, Parameter
from .. import functional  # noqa: F401  (PyTorch's torch.nn.functional: tl.nn.functional is tl.functional)

__all__ = ["Module", "Parameter", "Linear", "LayerNorm", "Embedding", "Dropout", "GELU", "ReLU", "ModuleList", "ModuleDict",
           "Sequential", "utils"]
