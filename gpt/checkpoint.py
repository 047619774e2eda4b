"""Checkpoints as one .npz file: arrays for the model and optimizer, JSON for everything else. No pickle.

Written atomically (a temp file in the same directory, fsync, then os.replace), so a crash or Ctrl-C while
saving leaves the previous checkpoint whole.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

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
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint(path):
    """-> (model_state, optimizer_state, meta); CheckpointError naming the file if it cannot be read."""
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop(META_KEY)))
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a tensorlite checkpoint ({err})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {meta.get('format_version')}, "
                              f"this code reads version {FORMAT_VERSION}")
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    state = {}
    for key, value in arrays.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    for index, scalars in meta["optimizer"]["scalars"].items():
        state.setdefault(int(index), {}).update(scalars)
    optimizer_state = {"state": state, "param_groups": meta["optimizer"]["param_groups"]}
    return model_state, optimizer_state, meta


def load_model(out_dir, device="cpu"):
    """(GPT in eval mode, tokenizer) from out_dir/ckpt.npz, for sampling and inspection."""
    from .data import tokenizer_from_dict
    from .model import GPT, GPTConfig
    model_state, _, meta = load_checkpoint(os.path.join(out_dir, CHECKPOINT))
    model = GPT(GPTConfig(**meta["model_config"]))
    try:
        model.load_state_dict(model_state)
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"checkpoint in {out_dir} does not match its own config: {err}") from None
    return model.to(device).eval(), tokenizer_from_dict(meta["tokenizer"])
