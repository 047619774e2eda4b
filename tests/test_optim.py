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
            p.grad = tl.tensor(quadratic_grads(p.data, 1.0))
        grads = [p.grad.numpy().copy() for p in params[:with_grad]]
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
    a.grad, b.grad = tl.ones(2), tl.ones(2)
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
                p.grad = tl.tensor(quadratic_grads(p.data, 1.0))
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
    a.grad = tl.ones(2)
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
    from tensorlite import cpu
    results = []
    for cores in (1, 2):                                       # one plain pass, or one slice per core (threads)
        monkeypatch.setattr(cpu, "usable_cores", lambda: cores)
        rng = np.random.default_rng(0)
        params = [tl.tensor(rng.standard_normal(n).astype(np.float32), requires_grad=True) for n in (2 ** 19 + 7, 5)]
        opt = optim.AdamW(params, lr=0.1, weight_decay=0.05)
        for _ in range(3):
            for p in params:
                p.grad = tl.tensor(quadratic_grads(p.data, 1.0))
            opt.step()
        results.append([p.numpy() for p in params])
    for sliced, plain in zip(results[1], results[0]):
        np.testing.assert_array_equal(sliced, plain)


def _linear_and_adamw(lr=0.1):
    tl.manual_seed(0)
    model = tl.nn.Linear(4, 1)
    return model, optim.AdamW(model.parameters(), lr=lr)


def _step(model, opt, x):
    opt.zero_grad()
    (model(x) ** 2).sum().backward()
    opt.step()


@pytest.mark.parametrize("cast", [lambda m: m.float(), lambda m: m.double(),
                                  lambda m: m.to(dtype=np.float64)], ids=["float", "double", "to_dtype"])
def test_adamw_keeps_updating_the_parameters_after_the_model_is_cast(cast):
    """After a step, model.float()/.double()/.to(dtype=) give the parameters new arrays: the optimizer must update
    those (not its old flat copy), with its moments cast along, exactly as a fresh optimizer loaded from its
    state_dict would."""
    x = tl.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))
    model, opt = _linear_and_adamw()
    _step(model, opt, x)
    cast(model)
    dtype = model.weight.dtype
    before = [p.numpy().copy() for p in model.parameters()]
    twin = tl.nn.Linear(4, 1).to(dtype=dtype)                  # the same state, set up by hand
    twin.load_state_dict(model.state_dict())
    twin_opt = optim.AdamW(twin.parameters(), lr=0.1)
    twin_opt.load_state_dict(opt.state_dict())
    xs = x.to(dtype=dtype)
    _step(model, opt, xs)
    _step(twin, twin_opt, xs)
    for p, q, old in zip(model.parameters(), twin.parameters(), before):
        assert p.dtype == dtype and not np.array_equal(p.numpy(), old)      # updated, in the new dtype
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    state = opt.state_dict()["state"]
    assert state[0]["step"] == 2 and state[0]["exp_avg"].dtype == dtype
    _step(model, opt, xs)                                      # and it goes on: a third step moves them again
    assert not np.array_equal(model.weight.numpy(), twin.weight.numpy())


def test_adamw_moments_follow_a_cast_on_the_per_parameter_path_too():
    a, b = tl.tensor([1.0, 2.0], requires_grad=True), tl.tensor([3.0], requires_grad=True)
    opt = optim.AdamW([a, b], lr=0.1)
    a.grad = tl.ones(2)                            # b has no gradient: one parameter at a time
    opt.step()
    a.data = a.data.astype(np.float64)
    a.grad = tl.ones(2, dtype=tl.float64)
    opt.step()
    assert a.dtype == np.float64 and opt.state[id(a)]["exp_avg"].dtype == np.float64
    start = np.array([1.0, 2.0])                              # constant gradients: each step moves by lr, after decay
    np.testing.assert_allclose(a.numpy(), (start * (1 - 0.1 * 0.01) - 0.1) * (1 - 0.1 * 0.01) - 0.1, rtol=1e-6)


def test_optimizer_load_state_dict_accepts_tensor_values():
    a = tl.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.AdamW([a], lr=0.1)
    a.grad = tl.ones(2)
    opt.step()
    sd = opt.state_dict()
    sd["state"][0] = {k: tl.tensor(v) for k, v in sd["state"][0].items()}
    other = optim.AdamW([tl.tensor([1.0, 2.0], requires_grad=True)], lr=0.1)
    other.load_state_dict(sd)
    assert other.state_dict()["state"][0]["step"] == 1
    np.testing.assert_array_equal(other.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_a_parameter_listed_twice_is_rejected():
    p, q = tl.tensor([1.0], requires_grad=True), tl.tensor([2.0], requires_grad=True)
    for make in (optim.AdamW, lambda ps: optim.SGD(ps, lr=0.1)):
        with pytest.raises(ValueError, match="listed twice"):
            make([p, p])
        with pytest.raises(ValueError, match="listed twice"):
            make([{"params": [p, q]}, {"params": [p]}])


def test_a_group_of_one_tensor_is_that_parameter():
    p = tl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    opt = optim.SGD([{"params": p}], lr=0.5)
    assert opt.param_groups[0]["params"] == [p]                 # not its two rows


def test_optimizers_name_what_they_were_given_by_mistake():
    model = tl.nn.Linear(2, 1)
    with pytest.raises(TypeError, match=r"pass model.parameters\(\)"):
        optim.AdamW(model)
    with pytest.raises(TypeError, match="one Tensor"):
        optim.AdamW(model.weight)
    with pytest.raises(TypeError, match="only optimize Tensors, got ndarray"):
        optim.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.AdamW([model.weight * 2])


@pytest.mark.parametrize("options,message", [
    (dict(lr=-1), "lr must be a finite number >= 0, got -1"),
    (dict(lr=float("nan")), "lr must be a finite number >= 0, got nan"),
    (dict(lr=float("inf")), "lr must be a finite number >= 0, got inf"),
    (dict(betas=(1.5, 0.9)), r"betas\[0\] must be in \[0, 1.0\), got 1.5"),
    (dict(betas=(-3, 0.9)), r"betas\[0\] must be in \[0, 1.0\), got -3"),
    (dict(betas=(0.9, 1.0)), r"betas\[1\] must be in \[0, 1.0\), got 1.0"),
    (dict(betas=(0.9,)), "betas must be a pair"),
    (dict(eps=-1e-8), "eps must be a finite number >= 0"),
    (dict(weight_decay=-0.1), "weight_decay must be a finite number >= 0"),
    (dict(weight_decay=float("nan")), "weight_decay must be a finite number >= 0, got nan"),
])
def test_adamw_rejects_meaningless_options_at_construction(options, message):
    p = tl.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match=message):
        optim.AdamW([p], **options)
    with pytest.raises(ValueError, match=message):               # a group's own options are checked too
        optim.AdamW([{"params": [p], **options}])


@pytest.mark.parametrize("options", [dict(lr=-0.1), dict(lr=float("nan")), dict(lr=0.1, momentum=-0.9),
                                     dict(lr=0.1, weight_decay=float("inf"))])
def test_sgd_rejects_meaningless_options_at_construction(options):
    with pytest.raises(ValueError, match="SGD: .* must be a finite number >= 0"):
        optim.SGD([tl.tensor([1.0], requires_grad=True)], **options)
