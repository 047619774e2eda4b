"""The backend module: devices, errors without CuPy, deferred device-side assertions, and that CuPy has every
`xp.` function the code calls."""
import ast
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import tensorlite as tl
from tensorlite import backend

PACKAGE = pathlib.Path(tl.__file__).parent


def test_importing_tensorlite_never_imports_cupy():
    code = ("import importlib, pkgutil, sys, tensorlite\n"
            "for m in pkgutil.walk_packages(tensorlite.__path__, 'tensorlite.'): importlib.import_module(m.name)\n"
            "print('cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_only_backend_imports_cupy():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] in ("cupy", "cupyx") for n in names) and path.name != "backend.py":
                offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_unknown_device_is_named():
    with pytest.raises(backend.DeviceError, match="unknown device 'gpu'.*cpu, cuda"):
        backend.get_xp("gpu")


def _xp_attributes():
    """Every name the package reaches through an array module: `xp.name`, `self.xp.name`, `np.name` in ops."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, (ast.Name, ast.Attribute)):
                owner = node.value.id if isinstance(node.value, ast.Name) else node.value.attr
                if owner == "xp":
                    names.add(node.attr)
    return sorted(names)


def test_cupy_has_every_xp_function_the_code_uses():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install -e '.[dev,cuda13]')")
    missing = [name for name in _xp_attributes() if not hasattr(cupy, name)]
    assert _xp_attributes(), "the scan found no xp.<name> uses at all: the scan is broken"
    assert missing == []


def test_device_asserts_on_a_gpu_wait_for_the_hosts_next_read(monkeypatch):
    scalar = tl.tensor(1.0)
    monkeypatch.setattr(backend, "is_cuda_array", lambda array: True)      # flags as if on a GPU, read by NumPy
    monkeypatch.setattr(backend, "get_xp", lambda device: np)
    monkeypatch.setattr(backend, "to_device", lambda array, device: np.asarray(array))
    backend.device_assert(np.bool_(False), lambda: IndexError("fine"))
    backend.device_assert(np.bool_(True), lambda: IndexError("first bad"))
    backend.device_assert(np.bool_(True), lambda: IndexError("second bad"))       # nothing raised yet: no host sync
    with pytest.raises(IndexError, match="first bad"):
        scalar.item()                                                      # the host reads: the checks are due
    assert scalar.item() == 1.0                                            # looked at once, then forgotten
    for _ in range(backend.MAX_DEFERRED_ASSERTS - 1):
        backend.device_assert(np.bool_(False), lambda: IndexError("never"))
    with pytest.raises(IndexError, match="the last one"):                  # at most MAX_DEFERRED_ASSERTS wait
        backend.device_assert(np.bool_(True), lambda: IndexError("the last one"))
