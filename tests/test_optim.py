"""Optimizers against their update equations written out by hand, state dicts, and the LR schedule."""
import math

import numpy as np
import pytest

import tensorlite as tl
from tensorlite import optim


def quadratic_grads(p, target):
    return 2 * (p - target)


def run(opt_factory, steps=5, n_params=2, with_grad=None):
    rng = np.random.default_rng(0)
    params = [tl.tensor(rng.standard_normal(3), dtype=tl.float64, requires_grad=True) for _ in range(n_params)]
    opt = opt_factory(params)
    history = []
    for _ in range(steps):
        for p in params[:with_grad]:
            p.grad = quadratic_grads(p.data, 1.0)
        grads = [p.grad.copy() for p in params[:with_grad]]
        opt.step()
        for p, g in zip(params, grads):
            np.testing.assert_array_equal(p.grad, g)          # step reads the gradients, never changes them
        history.append([p.numpy().copy() for p in params])
    return params, history, rng


@pytest.mark.parametrize("with_grad", [None, 1])   # every grad: the flat group path; a missing one: per parameter
def test_adamw_matches_the_equations(with_grad):
    lr, (b1, b2), eps, wd = 0.1, (0.9, 0.99), 1e-8, 0.05
    _, history, _ = run(lambda ps: optim.AdamW(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd),
                        with_grad=with_grad)
    p = np.random.default_rng(0).standard_normal(3)
    m = v = np.zeros(3)
    for t in range(1, 6):
        g = quadratic_grads(p, 1.0)
        p = p * (1 - lr * wd)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        np.testing.assert_allclose(history[t - 1][0], p, rtol=1e-12)
    if with_grad == 1:
        np.testing.assert_array_equal(history[-1][1], np.random.default_rng(0).standard_normal((2, 3))[1])


@pytest.mark.parametrize("momentum,wd", [(0.0, 0.0), (0.9, 0.0), (0.9, 0.1)])
def test_sgd_matches_the_equations(momentum, wd):
    lr = 0.05
    _, history, _ = run(lambda ps: optim.SGD(ps, lr=lr, momentum=momentum, weight_decay=wd))
    p, buf = np.random.default_rng(0).standard_normal(3), None
    for t in range(5):
        g = quadratic_grads(p, 1.0) + wd * p
        buf = g if buf is None else momentum * buf + g
        p = p - lr * (buf if momentum else g)
        np.testing.assert_allclose(history[t][0], p, rtol=1e-12)


def test_param_groups_have_their_own_options_and_lr_is_settable():
    a = tl.tensor([1.0, 1.0], requires_grad=True)
    b = tl.tensor([1.0, 1.0], requires_grad=True)
    opt = optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "weight_decay": 1.0}], lr=0.5)
    a.grad, b.grad = np.ones(2, np.float32), np.ones(2, np.float32)
    opt.step()
    np.testing.assert_allclose(a.numpy(), [0.9, 0.9])
    np.testing.assert_allclose(b.numpy(), [0.0, 0.0])     # 1 - 0.5 * (1 + 1 * 1)
    opt.param_groups[0]["lr"] = 0.0
    opt.step()
    np.testing.assert_allclose(a.numpy(), [0.9, 0.9])
    with pytest.raises(ValueError, match="unknown optimizer option"):
        optim.SGD([{"params": [a], "betas": (0.9, 0.9)}], lr=0.1)


def test_adamw_state_dict_round_trip_continues_identically():
    """3 steps, save, load into a fresh optimizer over copied parameters: the next steps match exactly."""
    def make(ps):
        return optim.AdamW(ps, lr=0.05, betas=(0.9, 0.95))

    def steps(opt, ps, n):
        for _ in range(n):
            for p in ps:
                p.grad = quadratic_grads(p.data, 1.0)
            opt.step()

    ref, _, _ = run(make, steps=0)
    opt_ref = make(ref)
    steps(opt_ref, ref, 3)
    sd = opt_ref.state_dict()
    copies = [tl.tensor(p.numpy().copy(), requires_grad=True) for p in ref]
    opt_copy = make(copies)
    opt_copy.load_state_dict(sd)
    steps(opt_ref, ref, 2)
    steps(opt_copy, copies, 2)
    for p, q in zip(ref, copies):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    assert sd["state"][0]["step"] == 3 and sd["param_groups"][0]["params"] == [0, 1]


def test_load_state_dict_rejects_mismatched_shapes():
    a = tl.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.AdamW([a])
    a.grad = np.ones(2, np.float32)
    opt.step()
    sd = opt.state_dict()
    other = optim.AdamW([tl.tensor([1.0, 2.0, 3.0], requires_grad=True)])
    with pytest.raises(ValueError, match=r"shape \(2,\), the parameter has shape \(3,\)"):
        other.load_state_dict(sd)


def test_warmup_cosine_schedule():
    lr = [optim.warmup_cosine_lr(it, 1.0, 0.1, warmup_iters=10, decay_iters=110) for it in range(130)]
    assert lr[0] == pytest.approx(1 / 11) and lr[9] == pytest.approx(10 / 11)
    assert lr[10] == pytest.approx(1.0) and lr[60] == pytest.approx(0.55)
    assert lr[110] == pytest.approx(0.1) and lr[129] == 0.1
    assert all(a >= b for a, b in zip(lr[10:], lr[11:]))
    assert math.isclose(max(lr), 1.0)


def test_adamw_over_a_buffer_sliced_across_cores_is_the_same_update(monkeypatch):
    from tensorlite import backend
    results = []
    for cores in (1, 2):                                       # one plain pass, or one slice per core (threads)
        monkeypatch.setattr(backend, "usable_cores", lambda: cores)
        rng = np.random.default_rng(0)
        params = [tl.tensor(rng.standard_normal(n).astype(np.float32), requires_grad=True) for n in (2 ** 19 + 7, 5)]
        opt = optim.AdamW(params, lr=0.1, weight_decay=0.05)
        for _ in range(3):
            for p in params:
                p.grad = quadratic_grads(p.data, 1.0)
            opt.step()
        results.append([p.numpy() for p in params])
    for sliced, plain in zip(results[1], results[0]):
        np.testing.assert_array_equal(sliced, plain)
