"""The engine: accumulation, shared subexpressions, deep graphs, no_grad, detach, leaves, freeing, errors."""
import numpy as np
import pytest

import tensorlite as tl


def test_gradients_accumulate_across_backward_calls(device):
    x = tl.tensor([1.0, 2.0], device=device, requires_grad=True)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(tl.tensor(x.grad).numpy(), [3 + 2, 3 + 4])
    x.zero_grad()
    assert x.grad is None


def test_shared_subexpression_sums_both_paths(device):
    x = tl.tensor(3.0, device=device, requires_grad=True)
    y = x * x          # used twice below
    z = y * y + y      # x^4 + x^2
    z.backward()
    assert x.grad.item() == pytest.approx(4 * 27 + 2 * 3)


def test_deep_chain_does_not_recurse(device):
    x = tl.tensor(1.0, device=device, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001 ** 10_000, rel=1e-3)


def test_no_grad_records_nothing_and_works_as_decorator(device):
    x = tl.ones(2, device=device, requires_grad=True)
    with tl.no_grad():
        assert not tl.is_grad_enabled()
        y = x * 2
    assert tl.is_grad_enabled()
    assert not y.requires_grad and y.creator is None

    @tl.no_grad()
    def double(t):
        return t * 2
    assert not double(x).requires_grad


def test_detach_cuts_the_graph(device):
    x = tl.tensor([2.0], device=device, requires_grad=True)
    y = (x * x).detach() * x
    y.backward()
    assert x.grad.item() == pytest.approx(4.0)  # d/dx (c * x) with c = x^2 held constant


def test_only_leaves_keep_grad_unless_retained(device):
    x = tl.tensor([1.0, -2.0], device=device, requires_grad=True)
    h = x * 2
    k = (x * 3).retain_grad()
    (h * k).sum().backward()
    assert x.is_leaf and not h.is_leaf
    assert h.grad is None
    np.testing.assert_allclose(tl.tensor(k.grad).numpy(), tl.tensor(h.data).numpy())


def test_leaf_grads_never_alias(device):
    """Add hands the same gradient to both inputs; scaling one leaf's grad in place must not touch the other."""
    a = tl.ones(3, device=device, requires_grad=True)
    b = tl.ones(3, device=device, requires_grad=True)
    (a + b.reshape(3)).sum().backward()
    a.grad *= 5
    np.testing.assert_array_equal(tl.tensor(b.grad).numpy(), np.ones(3))


def test_graph_is_freed_after_backward(device):
    x = tl.ones(2, device=device, requires_grad=True)
    y = (x.exp() * 2).sum()
    fn = y.creator
    y.backward()
    assert fn.inputs is None and fn.saved == ()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_backward_through_a_subgraph_an_earlier_backward_freed_says_so():
    x = tl.ones(2, requires_grad=True)
    h = x.exp() * 2                                            # shared by two losses
    h.sum().backward()
    with pytest.raises(RuntimeError, match=r"second time: an earlier backward freed this part of it .*MulFunction"):
        (h * 3).sum().backward()


def test_a_functions_parameters_are_declared_by_its_init():
    """Function.__init__ takes no parameters: an op's own __init__ declares them, and apply passes them there."""
    class Double(tl.Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy * 2

    with pytest.raises(TypeError, match="unexpected keyword argument 'axis'"):
        Double.apply(tl.ones(2), axis=0)
    assert Double.apply(tl.ones(2)).numpy().tolist() == [2.0, 2.0]


def test_function_classes_are_named_function_and_never_share_a_name_with_a_module():
    from tensorlite import functional, ops  # noqa: F401  (every Function subclass is defined once imported)
    from tensorlite.cuda import fused  # noqa: F401
    found, stack = [], list(tl.Function.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("tensorlite."):
            found.append(cls.__name__)
    modules = {name for name in dir(tl.nn) if isinstance(getattr(tl.nn, name), type)}
    assert len(found) > 40 and all(name.endswith("Function") for name in found), sorted(found)
    assert not set(found) & modules


def test_unused_output_of_multi_output_op_gets_zero_grad(device):
    x = tl.arange(6.0, device=device, requires_grad=True)
    first, _ = x.split(3)
    first.sum().backward()
    np.testing.assert_array_equal(tl.tensor(x.grad).numpy(), [1, 1, 1, 0, 0, 0])


def test_backward_with_explicit_gradient(device):
    x = tl.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    (x * x).backward(grad=np.array([1.0, 0.0, -1.0], dtype=np.float32))
    np.testing.assert_allclose(tl.tensor(x.grad).numpy(), [2, 0, -6])


# ----- errors a user meets
def test_backward_on_non_scalar_without_grad_names_the_shape():
    with pytest.raises(RuntimeError, match=r"scalar output, got shape \(2, 3\)"):
        (tl.ones(2, 3, requires_grad=True) * 2).backward()


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tl.ones(2).sum().backward()


def test_backward_grad_of_wrong_shape():
    with pytest.raises(ValueError, match=r"grad has shape \(3,\), the tensor has shape \(2,\)"):
        (tl.ones(2, requires_grad=True) * 2).backward(grad=np.ones(3))


def test_mixed_float_dtypes_are_an_error():
    with pytest.raises(TypeError, match="float32.*float64"):
        tl.ones(2) + tl.ones(2, dtype=tl.float64)


def test_shape_mismatch_errors_name_shapes():
    with pytest.raises(ValueError, match=r"AddFunction of shapes \(2, 3\) and \(4,\): operands could not be broadcast"):
        tl.ones(2, 3) + tl.ones(4)
    with pytest.raises(ValueError, match=r"matmul shape mismatch: \(2, 3\) @ \(4, 5\)"):
        tl.ones(2, 3) @ tl.ones(4, 5)


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating"):
        tl.tensor([1, 2], requires_grad=True)


def test_gradcheck_names_the_input_and_worst_element_of_a_wrong_backward():
    class WrongSquare(tl.Function):
        def forward(self, x):
            self.save_for_backward(x)
            return x * x

        def backward(self, gy):
            x, = self.saved
            g = 2 * x * gy
            g[1] += 0.5             # a planted error in one element
            return g

    x = tl.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = tl.tensor(np.array([1.0, 1.0]), requires_grad=True)
    assert tl.gradcheck(lambda a, b: a.sum() * b, [x, y])
    with pytest.raises(AssertionError, match=r"input 0 \(shape \(3,\)\) at index \(1,\): backward gives "
                                             r"[-0-9.]+, central differences give [-0-9.]+"):
        tl.gradcheck(WrongSquare.apply, [x])
    with pytest.raises(TypeError, match="float64"):
        tl.gradcheck(lambda a: a * 2, [tl.ones(2, requires_grad=True)])
