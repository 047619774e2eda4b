"""Layers and models: Module, Parameter, PyTorch-shaped layers, and their initialisations (nn.init)."""
from . import init, utils
from .layers import (GELU, CrossEntropyLoss, Dropout, Embedding, Flatten, Identity, LayerNorm, Linear, LogSoftmax,
                     ModuleDict, ModuleList, MSELoss, ReLU, Sequential, Sigmoid, Softmax, Tanh)
from .module import Module, Parameter
from .. import functional  # noqa: F401  (PyTorch's torch.nn.functional: tl.nn.functional is tl.functional)

__all__ = ["Module", "Parameter", "Linear", "LayerNorm", "Embedding", "Dropout", "GELU", "ReLU", "Tanh", "Sigmoid",
           "Softmax", "LogSoftmax", "Identity", "Flatten", "CrossEntropyLoss", "MSELoss", "ModuleList", "ModuleDict",
           "Sequential", "init", "utils"]
