"""Optimizers (SGD, AdamW) with parameter groups, and nanoGPT's warmup + cosine learning-rate schedule.

Updates run in place on the parameters' arrays (NumPy or CuPy): no host round trip, and the Parameter objects
never change, so a model and its optimizer stay linked.
"""
import math
import numbers

import numpy as np

from . import backend, cpu
from .cuda import fused
from .nn.module import Module
from .nn.utils import zero_grads
from .tensor import Tensor


class Optimizer:
    """Holds param_groups (dicts with 'params' and hyper-parameters) and per-parameter state.

    The state (momentum, AdamW's moments) follows each parameter's dtype and device, so a model cast or moved
    after a step (model.double(), model.to('cuda')) keeps training with its optimizer.
    """

    def __init__(self, params, defaults):
        name = type(self).__name__
        if isinstance(params, Module):
            raise TypeError(f"{name} got the module itself: pass model.parameters()")
        if isinstance(params, Tensor):
            raise TypeError(f"{name} got one Tensor: pass an iterable of parameters ([p]) or of parameter groups")
        params = list(params)
        if not params:
            raise ValueError(f"{name} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        seen = set()
        for group in groups:
            if not isinstance(group, dict):
                raise TypeError(f"{name}: give either parameters or parameter groups (dicts), not a mix of both")
            unknown = set(group) - set(defaults) - {"params"}
            if unknown:
                raise ValueError(f"unknown optimizer option(s) {sorted(unknown)}; expected {sorted(defaults)}")
            members = group["params"]
            group = {**defaults, **group, "params": [members] if isinstance(members, Tensor) else list(members)}
            for p in group["params"]:
                _check_param(name, p, seen)
            self._check_options(group)
            self.param_groups.append(group)
        self.state = {}   # id(param) -> dict of arrays and the step count

    def _check_options(self, group):
        """Raise a ValueError naming an option of `group` that has no meaning (PyTorch's checks)."""

    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none=True):
        """Every parameter's gradient dropped (PyTorch's default) or, with set_to_none=False, zeroed in place."""
        zero_grads(self._params(), set_to_none)

    def state_dict(self):
        """{'state': {index: {name: NumPy array or number}}, 'param_groups': [options + param indices]}."""
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {index[pid]: {k: backend.to_numpy(v).copy() if hasattr(v, "shape") else v for k, v in s.items()}
                 for pid, s in self.state.items()}
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": list(range(start, start + n))})
            start += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Options and state from state_dict (NumPy arrays, Tensors or numbers), arrays cast and moved to their
        parameter's dtype and device."""
        params = self._params()
        groups = state_dict["param_groups"]
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("optimizer state_dict has a different number of parameter groups or parameters")
        for group, saved in zip(self.param_groups, groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            entry = {}
            for k, v in s.items():
                v = v.data if isinstance(v, Tensor) else v
                if hasattr(v, "shape") and np.ndim(v) > 0:
                    if tuple(v.shape) != p.shape:
                        raise ValueError(f"optimizer state {k!r} of parameter {i} has shape {tuple(v.shape)}, "
                                         f"the parameter has shape {p.shape}")
                    entry[k] = _like(p, v)
                else:
                    entry[k] = v.item() if hasattr(v, "item") else v
            self.state[id(p)] = entry


def _check_param(optimizer, p, seen):
    if not isinstance(p, Tensor):
        raise TypeError(f"{optimizer} can only optimize Tensors, got {type(p).__name__}")
    if not p.is_leaf:
        raise ValueError(f"{optimizer} can't optimize a non-leaf Tensor (one computed from others)")
    if id(p) in seen:
        raise ValueError(f"{optimizer}: a parameter of shape {p.shape} is listed twice; list each parameter once "
                         "(in one group)")
    seen.add(id(p))


def _check_range(optimizer, name, value, below=None):
    """value must be a finite number >= 0 (and < below, where given)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    if not ok or (below is not None and value >= below):
        wanted = f"in [0, {below})" if below is not None else "a finite number >= 0"
        raise ValueError(f"{optimizer}: {name} must be {wanted}, got {value!r}")


def _like(p, array):
    """array in p's dtype and on p's device: optimizer state after the model was cast or moved (model.double(),
    model.to('cuda')) or loaded from a checkpoint."""
    if array.dtype == p.dtype and backend.device_of(array) == p.device:
        return array
    return p.xp.asarray(backend.to_device(array, p.device), dtype=p.dtype)


class SGD(Optimizer):
    """p -= lr * buf, buf = momentum * buf + (grad + weight_decay * p) (PyTorch's formulation)."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    def _check_options(self, group):
        for name in ("lr", "momentum", "weight_decay"):
            _check_range("SGD", name, group[name])

    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data + group["weight_decay"] * p.data if group["weight_decay"] else p.grad.data
                if group["momentum"]:
                    state = self.state.setdefault(id(p), {})
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.copy()
                    else:
                        buf = state["momentum_buffer"] = _like(p, state["momentum_buffer"])
                        buf *= group["momentum"]
                        buf += g
                    g = state["momentum_buffer"]
                p.data -= group["lr"] * g


class AdamW(Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW:

        p *= 1 - lr * weight_decay
        m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
        p -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.flat_groups = {}   # group index -> flat buffers of its parameters and moments (see _flat_buffers)

    def _check_options(self, group):
        for name in ("lr", "eps", "weight_decay"):
            _check_range("AdamW", name, group[name])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"AdamW: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            _check_range("AdamW", f"betas[{i}]", beta, below=1.0)
        group["betas"] = tuple(betas)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self.flat_groups = {}   # the loaded moments are not views of the old buffers: made again on the next step

    def step(self):
        for index, group in enumerate(self.param_groups):
            params = group["params"]
            if params and all(p.grad is not None for p in params) and \
                    len({(p.device, p.dtype) for p in params}) == 1:
                self._flat_step(index, group)   # the whole group at once: a few big array ops (or one kernel)
            else:
                for p in params:
                    if p.grad is not None:
                        self._step_one(p, group)

    def _state(self, p):
        """p's step count and moments (made on its first step), the moments in p's dtype and on its device."""
        state = self.state.get(id(p))
        if state is None:
            state = self.state[id(p)] = {"step": 0, "exp_avg": p.xp.zeros_like(p.data),
                                         "exp_avg_sq": p.xp.zeros_like(p.data)}
        state["exp_avg"], state["exp_avg_sq"] = _like(p, state["exp_avg"]), _like(p, state["exp_avg_sq"])
        return state

    def _step_one(self, p, group):
        state = self._state(p)
        state["step"] += 1
        _adamw_update(p.data, p.grad.data, state["exp_avg"], state["exp_avg_sq"], group, state["step"])

    def _flat_buffers(self, index, group):
        """The group's parameters and moments in three flat buffers; each Parameter's data (and its state) is a
        view into them, so the model, state_dict and the kernel all see the same numbers.

        Made on the group's first step, and made again from the parameters' current arrays whenever one of them
        is no longer the view it was given: a Module.to / .float() / .double() after a step (or any assignment
        to p.data) gave it a new array, which is then what the optimizer must update."""
        params = group["params"]
        flat = self.flat_groups.get(index)
        if flat is not None and len(flat["views"]) == len(params) and \
                all(p.data is view for p, view in zip(params, flat["views"])):
            return flat
        xp = params[0].xp
        states = [self._state(p) for p in params]
        flat = {"p": xp.concatenate([p.data.reshape(-1) for p in params])}
        for name in ("exp_avg", "exp_avg_sq"):
            flat[name] = xp.concatenate([s[name].reshape(-1) for s in states])
        start = 0
        for p, state in zip(params, states):
            view = slice(start, start + p.numel())
            p.data = flat["p"][view].reshape(p.shape)
            for name in ("exp_avg", "exp_avg_sq"):
                state[name] = flat[name][view].reshape(p.shape)
            start += p.numel()
        flat["views"] = [p.data for p in params]
        self.flat_groups[index] = flat
        return flat

    def _flat_step(self, index, group):
        """One update of the whole group over its flat buffers: kernels/adamw.cu in one launch where it applies,
        else the same update as ~13 NumPy/CuPy passes over the group instead of ~13 per parameter (on the CPU,
        one slice of the buffers per core)."""
        flat, params = self._flat_buffers(index, group), group["params"]
        grads = params[0].xp.concatenate([p.grad.data.reshape(-1) for p in params])
        for p in params:
            self.state[id(p)]["step"] += 1
        step = self.state[id(params[0])]["step"]
        buffers = (flat["p"], grads, flat["exp_avg"], flat["exp_avg_sq"])
        if not fused.adamw_step(*buffers, group["lr"], *group["betas"], group["eps"], group["weight_decay"], step):
            cpu.in_slices(lambda *arrays: _adamw_update(*arrays, group, step), *buffers)


def _adamw_update(p, g, m, v, group, t):
    """One AdamW step in place on the arrays p, m, v (the equations in AdamW's docstring), with one scratch
    array; g is left as it is."""
    lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
    xp = backend.xp_of(p)
    if decay:
        p *= 1 - lr * decay
    scratch = xp.multiply(g, 1 - beta1)
    m *= beta1
    m += scratch
    xp.multiply(g, g, out=scratch)
    scratch *= 1 - beta2
    v *= beta2
    v += scratch
    denom = xp.sqrt(v, out=scratch)
    denom *= 1 / math.sqrt(1 - beta2 ** t)
    denom += eps
    update = xp.divide(m, denom, out=scratch)
    update *= lr / (1 - beta1 ** t)
    p -= update


def warmup_cosine_lr(it, max_lr, min_lr, warmup_iters, decay_iters):
    """nanoGPT's schedule: linear warmup to max_lr, cosine decay to min_lr at decay_iters, then min_lr."""
    if it < warmup_iters:
        return max_lr * (it + 1) / (warmup_iters + 1)
    if it > decay_iters:
        return min_lr
    progress = (it - warmup_iters) / max(decay_iters - warmup_iters, 1)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)
