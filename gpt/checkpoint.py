"""Checkpoints as one .npz file: arrays for the model and optimizer, JSON for everything else. No pickle.

Written atomically (a temp file in the same directory, fsync, then os.replace), so a crash, a full disk or Ctrl-C
while saving leaves the previous checkpoint whole. Read defensively: every field of the JSON is checked where it
is read (`meta_field`), so a damaged or foreign file is one CheckpointError naming the field, not a traceback.
"""
import contextlib
import json
import numbers
import os
import zipfile
from dataclasses import fields

import numpy as np

from tensorlite.serialization import atomic_write

from .data import tokenizer_from_dict
from .model import GPT, GPTConfig

CHECKPOINT = "ckpt.npz"   # the file name inside a run's out_dir
FORMAT_VERSION = 1
META_KEY = "__meta__"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, or does not fit the model it is loaded into."""


def save_checkpoint(path, model_state, optimizer_state, meta):
    """model_state: name -> array; optimizer_state: Optimizer.state_dict(); meta: JSON-able dict."""
    arrays = {f"model/{name}": value for name, value in model_state.items()}
    scalar_state = {}
    for index, entries in optimizer_state["state"].items():
        for key, value in entries.items():
            if hasattr(value, "shape") and np.ndim(value) > 0:
                arrays[f"optim/{index}/{key}"] = value
            else:
                scalar_state.setdefault(str(index), {})[key] = value
    meta = dict(meta, format_version=FORMAT_VERSION,
                optimizer={"param_groups": optimizer_state["param_groups"], "scalars": scalar_state})
    arrays[META_KEY] = np.array(json.dumps(meta))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: np.savez(f, **arrays))


@contextlib.contextmanager
def _archive(path):
    """The open .npz archive; CheckpointError naming the file when it is missing or not one."""
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path}")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} is not a file, so not a checkpoint")
    if not zipfile.is_zipfile(path):   # before np.load, which would suggest allow_pickle for any other bytes
        raise CheckpointError(f"checkpoint {path} is corrupt or not a tensorlite checkpoint (not a .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            yield data
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a tensorlite checkpoint ({err})") from None


def _meta(data, path):
    meta = json.loads(str(data[META_KEY]))
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path}: its metadata is a JSON {type(meta).__name__}, not an object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {meta.get('format_version')}, "
                              f"this code reads version {FORMAT_VERSION}")
    return meta


def read_meta(path):
    """The checkpoint's JSON metadata alone (no arrays read)."""
    with _archive(path) as data:
        return _meta(data, path)


def load_checkpoint(path):
    """-> (model_state, optimizer_state, meta); CheckpointError naming the file if it cannot be read."""
    with _archive(path) as data:
        meta = _meta(data, path)
        arrays = {k: data[k] for k in data.files if k != META_KEY}
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optimizer = meta_field(meta, path, "optimizer")
    state = {}
    for key, value in arrays.items():
        if key.startswith("optim/"):
            index, _, name = key[len("optim/"):].partition("/")
            state.setdefault(_index(index, path, key), {})[name] = value
    for index, scalars in optimizer["scalars"].items():
        state.setdefault(_index(index, path, "optimizer.scalars"), {}).update(scalars)
    optimizer_state = {"state": state, "param_groups": optimizer["param_groups"]}
    return model_state, optimizer_state, meta


def _index(text, path, where):
    if not text.isdigit():
        raise CheckpointError(f"checkpoint {path}: {where!r} names parameter {text!r}, not a parameter index")
    return int(text)


def meta_field(meta, path, name):
    """meta[name] after checking it; 'model_config' comes back as a GPTConfig, 'tokenizer' as a tokenizer.
    CheckpointError naming the field when it is missing or malformed."""
    if name not in meta:
        raise CheckpointError(f"checkpoint {path} has no {name!r} field")
    try:
        return _FIELDS[name](meta[name])
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        detail = f"no key {err}" if isinstance(err, KeyError) else str(err)
        raise CheckpointError(f"checkpoint {path}: field {name!r} is not valid ({detail})") from None


def _integer(value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected an integer >= 0, got {value!r}")
    return value


def _number(value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return value


def _obj(value):
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {value!r:.80}")
    return value


def _optimizer(value):
    groups, scalars = _obj(value)["param_groups"], _obj(value["scalars"])
    if not isinstance(groups, list) or not all(isinstance(_obj(g)["params"], list) for g in groups):
        raise ValueError("param_groups must be a list of objects, each with a list of 'params'")
    for entries in scalars.values():
        _obj(entries)
    return value


def _rng(value):
    for stream in ("batches", "framework"):   # numpy generator states: setting one checks it
        np.random.default_rng().bit_generator.state = _obj(value)[stream]
    return value


def _model_config(value):
    known = {f.name for f in fields(GPTConfig)}
    unknown, missing = sorted(set(_obj(value)) - known), sorted(known - set(value))
    if unknown or missing:
        raise ValueError(", ".join(([f"unknown key(s) {unknown}"] if unknown else []) +
                                   ([f"missing key(s) {missing}"] if missing else [])))
    return GPTConfig(**value)


_FIELDS = {"iter_num": _integer, "best_val_loss": _number, "train_config": _obj, "optimizer": _optimizer,
           "rng": _rng, "model_config": _model_config, "tokenizer": tokenizer_from_dict}


def load_model(out_dir, device="cpu"):
    """(GPT in eval mode, tokenizer) from out_dir/ckpt.npz, for sampling and inspection."""
    path = os.path.join(out_dir, CHECKPOINT)
    model_state, _, meta = load_checkpoint(path)
    model = GPT(meta_field(meta, path, "model_config"))
    try:
        model.load_state_dict(model_state)
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"checkpoint in {out_dir} does not match its own config: {err}") from None
    return model.to(device).eval(), meta_field(meta, path, "tokenizer")


def load_pretrained(name_or_path, device="cpu", dropout=0.0, block_size=None):
    """(GPT in eval mode, its BPETokenizer) of a pretrained GPT-2: a hub name (gpt2, gpt2-medium, ...) or a Hugging
    Face folder. What the sampler, the explorer and the trainer's --init-from load; block_size below the model's
    keeps only its first positions."""
    from .bpe import BPETokenizer   # here, not at the top: bpe.py imports this module (CheckpointError)
    model = GPT.from_pretrained(name_or_path, dropout=dropout, block_size=block_size)
    tokenizer = BPETokenizer.from_pretrained(name_or_path)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise CheckpointError(f"{name_or_path}: its tokenizer has {tokenizer.vocab_size} tokens but its model's "
                              f"vocab_size is {model.config.vocab_size}")
    return model.to(device).eval(), tokenizer
