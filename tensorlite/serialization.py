"""`tl.save(obj, path)` and `tl.load(path)`: state dicts on disk, as torch.save / torch.load, without pickle.

A file is one safetensors file (Hugging Face's format: a JSON header, then the raw bytes of every array), so
loading it can run no code, which a pickle can. The arrays sit under their dotted place in `obj`
(`model.state_dict()`'s names as they are, so the file is also an ordinary safetensors state dict); the header's
metadata holds the structure around them as JSON: dicts (with str, int, float, bool or None keys), lists, tuples,
numbers, strings and None. Tensors come back as Tensors (on their saved device, or `map_location`), NumPy and CuPy
arrays as NumPy arrays, NumPy scalars as NumPy scalars. Anything else (a Module, a function) is refused when
saving, naming where it sits in obj.

A safetensors file written by anyone else loads too, as a flat {name: Tensor} dict; any other file (a torch.save
pickle, a truncated file) is one LoadError saying what it is not.
"""
import collections
import contextlib
import json
import numbers
import os
import tempfile

import numpy as np
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

from . import backend
from .tensor import Tensor

FORMAT = "tensorlite.save"   # the metadata key whose JSON is the structure around the arrays
FORMAT_VERSION = 1
_SCALARS = (str, bool, numbers.Integral, numbers.Real, type(None))


class LoadError(RuntimeError):
    """A file tl.load cannot read: not a safetensors file, damaged, or of a newer format."""


def atomic_write(path, write):
    """write(binary file) into a temp file beside path, fsync, then replace path: readers see the old file or the
    new one, never half of one. On failure the temp file is removed and path is untouched."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


# ----------------------------------------------------------------------------- saving
def save(obj, f):
    """Write obj (a state dict: model.state_dict(), optimizer.state_dict(), or dicts and lists of tensors, arrays,
    numbers and strings) to `f`, a path (written atomically) or a binary file object."""
    arrays = {}
    structure = _encode(obj, "", arrays)
    metadata = {FORMAT: json.dumps({"version": FORMAT_VERSION, "structure": structure})}
    data = save_arrays(arrays, metadata=metadata)
    if hasattr(f, "write"):
        f.write(data)
    else:
        atomic_write(os.fspath(f), lambda out: out.write(data))


def _encode(value, where, arrays):
    """value as JSON, its arrays moved into `arrays` under names from `where` (the dotted path to them)."""
    if isinstance(value, Tensor):
        return {"tensor": _store(value.data, where, arrays), "device": value.device,
                "requires_grad": value.requires_grad}
    if isinstance(value, np.generic):
        return {"numpy_scalar": _store(np.asarray(value), where, arrays)}
    if hasattr(value, "__array__") and hasattr(value, "dtype") and hasattr(value, "shape"):   # NumPy or CuPy
        return {"array": _store(value, where, arrays)}
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, dict):
        pairs = []
        for key, item in value.items():
            if not isinstance(key, _SCALARS):
                raise TypeError(f"tl.save: a key of {where or 'obj'} is a {type(key).__name__}; keys must be "
                                "strings, numbers, bools or None")
            pairs.append([key, _encode(item, _join(where, key), arrays)])
        return {"ordered_dict" if isinstance(value, collections.OrderedDict) else "dict": pairs}
    if isinstance(value, (list, tuple)):
        items = [_encode(item, _join(where, i), arrays) for i, item in enumerate(value)]
        return {"tuple": items} if isinstance(value, tuple) else items
    raise TypeError(f"tl.save: {where or 'obj'} is a {type(value).__name__}; tl.save stores tensors, arrays, "
                    "numbers, strings, None and dicts, lists or tuples of them (a state_dict()), never pickles")


def _join(where, key):
    return f"{where}.{key}" if where else str(key)


def _store(array, where, arrays):
    """Put array under the name `where` (made unique) and return the name."""
    array = backend.to_numpy(array)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"tl.save: {where or 'obj'} is an array of dtype {array.dtype}; only bool, integer and "
                        "float arrays can be saved")
    name, n = where or "obj", 1
    while name in arrays:
        name, n = f"{where}#{n}", n + 1
    arrays[name] = array if array.flags.c_contiguous else array.copy(order="C")   # safetensors wants C order
    return name


# ----------------------------------------------------------------------------- loading
def load(f, map_location=None):
    """Read what `save` wrote to `f` (a path or a binary file object). Tensors go to `map_location` ('cpu',
    'cuda') when given, else back to the device they were saved from, as torch.load."""
    if map_location is not None and not isinstance(map_location, str):
        raise TypeError(f"tl.load map_location must be a device name ('cpu', 'cuda') or None, got "
                        f"{type(map_location).__name__}")
    if hasattr(f, "read"):
        name, data = getattr(f, "name", "the file object"), f.read()
    else:
        name = os.fspath(f)
        with open(name, "rb") as file:
            data = file.read()
    arrays, metadata = _read(data, name)
    if FORMAT not in metadata:                                  # someone else's safetensors file: flat names
        return {key: _tensor(array, "cpu", False, map_location) for key, array in arrays.items()}
    try:
        header = json.loads(metadata[FORMAT])
        if header["version"] != FORMAT_VERSION:
            raise LoadError(f"{name} was saved in tl.save format {header['version']}; this tensorlite reads "
                            f"format {FORMAT_VERSION}")
        return _decode(header["structure"], arrays, map_location)
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise LoadError(f"{name}: its tl.save structure is damaged ({type(err).__name__}: {err})") from None


def _read(data, name):
    """(name -> NumPy array, the header's metadata dict) of a safetensors file's bytes, or one LoadError."""
    try:
        header_size = int.from_bytes(data[:8], "little")
        if len(data) < 8 or header_size > len(data) - 8:
            raise ValueError("the header is longer than the file")
        metadata = json.loads(data[8:8 + header_size]).get("__metadata__") or {}
        return load_arrays(data), metadata
    except Exception as err:   # safetensors raises its own error type; NumPy a TypeError for bf16
        if data[:4] == b"PK\x03\x04":
            raise LoadError(f"{name} is a zip archive (torch.save writes a pickle in one), not a file from tl.save; "
                            "tensorlite never unpickles (a pickle can run code): save it with tl.save, or as "
                            "safetensors") from None
        raise LoadError(f"{name} is not a file tl.load can read: not a safetensors file of bool, integer or float "
                        f"arrays, or damaged ({type(err).__name__}: {err})") from None


def _decode(value, arrays, map_location):
    """The object `_encode` turned into `value`."""
    if isinstance(value, list):
        return [_decode(item, arrays, map_location) for item in value]
    if not isinstance(value, dict):
        return value
    if "tensor" in value:
        return _tensor(arrays[value["tensor"]], value["device"], value["requires_grad"], map_location)
    if "array" in value:
        return arrays[value["array"]]
    if "numpy_scalar" in value:
        return arrays[value["numpy_scalar"]][()]
    if "tuple" in value:
        return tuple(_decode(item, arrays, map_location) for item in value["tuple"])
    if "dict" in value or "ordered_dict" in value:
        pairs = ((key, _decode(item, arrays, map_location)) for key, item in value.get("dict", value.get(
            "ordered_dict")))
        return collections.OrderedDict(pairs) if "ordered_dict" in value else dict(pairs)
    raise ValueError(f"unknown entry {sorted(value)}")


def _tensor(array, device, requires_grad, map_location):
    return Tensor(array, requires_grad=requires_grad, device=map_location or device)
