"""Optimizers (SGD, AdamW) with parameter groups, and nanoGPT's warmup + cosine learning-rate schedule.

Updates run in place on the parameters' own arrays (NumPy or CuPy): no host round trip, and the Parameter
objects never change, so a model and its optimizer stay linked.
"""
import math

import numpy as np

from . import backend
from .cuda import fused, launch


class Optimizer:
    """Holds param_groups (dicts with 'params' and hyper-parameters) and per-parameter state."""

    def __init__(self, params, defaults):
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        for group in groups:
            unknown = set(group) - set(defaults) - {"params"}
            if unknown:
                raise ValueError(f"unknown optimizer option(s) {sorted(unknown)}; expected {sorted(defaults)}")
            self.param_groups.append({**defaults, **group, "params": list(group["params"])})
        self.state = {}   # id(param) -> dict of arrays and the step count

    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self):
        for p in self._params():
            p.grad = None

    def state_dict(self):
        """{'state': {index: {name: NumPy array or number}}, 'param_groups': [options + param indices]}."""
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {index[pid]: {k: backend.to_numpy(v).copy() if hasattr(v, "shape") else v for k, v in s.items()}
                 for pid, s in self.state.items()}
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": list(range(start, start + n))})
            start += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        self.flat_groups = {}     # rebuilt from the loaded state on the next step (AdamW's fused path)
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
                if hasattr(v, "shape") and np.ndim(v) > 0:
                    if tuple(v.shape) != p.shape:
                        raise ValueError(f"optimizer state {k!r} of parameter {i} has shape {tuple(v.shape)}, "
                                         f"the parameter has shape {p.shape}")
                    entry[k] = p.xp.asarray(v, dtype=p.dtype)
                else:
                    entry[k] = v.item() if hasattr(v, "item") else v
            self.state[id(p)] = entry


class SGD(Optimizer):
    """p -= lr * buf, buf = momentum * buf + (grad + weight_decay * p) (PyTorch's formulation)."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p.data if group["weight_decay"] else p.grad
                if group["momentum"]:
                    state = self.state.setdefault(id(p), {})
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.copy()
                    else:
                        buf = state["momentum_buffer"]
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
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))
        self.flat_groups = {}

    def step(self):
        for index, group in enumerate(self.param_groups):
            params = group["params"]
            if params and all(p.grad is not None for p in params):
                self._flat_step(index, group)   # the whole group at once: a few big array ops (or one kernel)
            else:
                for p in params:
                    if p.grad is not None:
                        self._step_one(p, group)

    def _state(self, p):
        state = self.state.get(id(p))
        if state is None:
            state = self.state[id(p)] = {"step": 0, "exp_avg": p.xp.zeros_like(p.data),
                                         "exp_avg_sq": p.xp.zeros_like(p.data)}
        return state

    def _step_one(self, p, group):
        state = self._state(p)
        state["step"] += 1
        _adamw_update(p.data, p.grad, state["exp_avg"], state["exp_avg_sq"], group, state["step"])

    def _flatten(self, group):
        """Move a group's parameters and moments into flat buffers; each Parameter's data (and its state)
        becomes a view into them, so the model, state_dict and the kernel all see the same numbers."""
        params = group["params"]
        xp = params[0].xp
        flat = {name: xp.concatenate([(p.data if name == "p" else self._state(p)[name]).reshape(-1)
                                      for p in params]) for name in ("p", "exp_avg", "exp_avg_sq")}
        start = 0
        for p in params:
            view = slice(start, start + p.size)
            p.data = flat["p"][view].reshape(p.shape)
            self.state[id(p)]["exp_avg"] = flat["exp_avg"][view].reshape(p.shape)
            self.state[id(p)]["exp_avg_sq"] = flat["exp_avg_sq"][view].reshape(p.shape)
            start += p.size
        return flat

    def _flat_step(self, index, group):
        """The group's parameters, moments and gradients as flat buffers: kernels/adamw.cu in one launch on a
        GPU, else the same update as ~13 NumPy/CuPy passes over the whole group instead of ~13 per parameter."""
        if index not in self.flat_groups:
            self.flat_groups[index] = self._flatten(group)
        flat, params = self.flat_groups[index], group["params"]
        grads = params[0].xp.concatenate([p.grad.reshape(-1) for p in params])
        for p in params:
            self.state[id(p)]["step"] += 1
        step = self.state[id(params[0])]["step"]
        if fused.applies_to_arrays(flat["p"]):
            launch.run(launch.adamw_step(flat["p"], grads, flat["exp_avg"], flat["exp_avg_sq"], group["lr"],
                                         *group["betas"], group["eps"], group["weight_decay"], step))
        else:   # on the CPU, one slice of the buffers per core
            backend.in_slices(lambda *arrays: _adamw_update(*arrays, group, step),
                              flat["p"], grads, flat["exp_avg"], flat["exp_avg_sq"])


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
