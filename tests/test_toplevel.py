"""tl.tanh(x), tl.sum(x), tl.softmax(x, d) ...: PyTorch's top-level functions are the engine's own, not copies."""
import pytest

import tensorlite as tl
import tensorlite.functional as F
from tensorlite import logical, ops


@pytest.mark.parametrize("name", ["abs", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "sum", "mean", "var", "max",
                                  "min", "maximum", "pow", "neg", "reshape", "transpose", "squeeze", "unsqueeze",
                                  "masked_fill", "cat", "stack", "split", "chunk", "where", "matmul", "tril", "triu",
                                  "cumsum", "gather", "sort", "argsort", "topk"])
def test_top_level_function_is_the_op(name):
    assert getattr(tl, name) is getattr(ops, name)


def test_the_rest_come_from_their_modules():
    assert tl.softmax is F.softmax and tl.log_softmax is F.log_softmax
    assert (tl.all, tl.any, tl.equal, tl.allclose) == (logical.all, logical.any, logical.equal, logical.allclose)
    assert tl.tanh(tl.tensor([0.0])).tolist() == [0.0] and tl.sum(tl.ones(2, 3), 0).tolist() == [2, 2, 2]
