"""PyTorch's dtype names, each one NumPy's dtype: `tl.long` is `numpy.int64`, so `x.dtype == tl.long` and
`tl.tensor(ids, dtype=tl.long)` work as `torch.long` does, and any NumPy dtype is accepted wherever these are.

There is no `tl.bfloat16`: NumPy has no bfloat16 dtype, and tensorlite's arrays are NumPy's (or CuPy's, which
follows NumPy). Use float16 or float32.
"""
import numpy as np

float32 = float = np.float32
float64 = double = np.float64
float16 = half = np.float16
int64 = long = np.int64
int32 = int = np.int32
int16 = short = np.int16
int8 = np.int8
uint8 = np.uint8
bool = np.bool_

NAMES = ("float32", "float", "float64", "double", "float16", "half", "int64", "long", "int32", "int", "int16",
         "short", "int8", "uint8", "bool")
MISSING = {"bfloat16": "NumPy has no bfloat16 dtype, so neither does tensorlite; use tl.float16 or tl.float32"}
