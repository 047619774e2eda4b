"""PyTorch's dtype names are NumPy's dtypes: tl.long, tl.float, tl.bool ... and no bfloat16, with the reason."""
import numpy as np
import pytest

import tensorlite as tl

NAMES = {"float32": np.float32, "float": np.float32, "float64": np.float64, "double": np.float64,
         "float16": np.float16, "half": np.float16, "int64": np.int64, "long": np.int64, "int32": np.int32,
         "int": np.int32, "int16": np.int16, "short": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}


@pytest.mark.parametrize("name", sorted(NAMES))
def test_each_name_is_the_numpy_dtype_pytorch_means(name):
    dtype = getattr(tl, name)
    assert np.dtype(dtype) == np.dtype(NAMES[name])
    t = tl.tensor([0, 1], dtype=dtype)
    assert t.dtype == dtype and t.dtype == NAMES[name]


def test_makemore_and_nanogpt_spellings():
    assert tl.tensor([1, 2]).dtype == tl.long                                  # integer lists are int64, as torch
    assert tl.zeros((1, 1), dtype=tl.long).dtype == tl.int64                   # sample.py's starting context
    assert tl.tensor([1.5]).dtype == tl.float
    assert (tl.tensor([1, 2]) > 1).dtype == tl.bool


def test_bfloat16_is_missing_with_the_reason():
    with pytest.raises(AttributeError, match="NumPy has no bfloat16"):
        tl.bfloat16
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        tl.no_such_name


def test_builtin_names_stay_out_of_star_imports():
    namespace = {}
    exec("from tensorlite import *", namespace)
    for name in ("sum", "max", "min", "abs", "all", "any", "pow", "float", "int", "bool"):
        assert name not in namespace
    assert namespace["long"] is np.int64 and namespace["tril"] is tl.tril
