"""Programs written for PyTorch, ported to tensorlite by changing their imports and nothing else.

Each file here is one of the programs people arrive with (nanoGPT's model.py and sample.py, "Let's build GPT"'s
bigram.py, makemore parts 3 and 4, whose shared data cells are makemore_data.py), written out line for line in
its own idioms, with PyTorch's imports swapped
for tensorlite's. `source(name, "torch")` swaps them back, so the very same text runs in PyTorch too (the parity
tests do that where torch is importable): the import lines are the whole difference, and a test checks it.

A line that had to change on purpose ends with `# differs: <name>: <why>`; docs/coming_from_pytorch.md gives each
name.
"""
import contextlib
import os
import pickle
import re
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "data", "tinyshakespeare.txt")

# (tensorlite's line, PyTorch's line): the only edits a port makes to the original
IMPORTS = (
    ("import tensorlite as torch", "import torch"),
    ("import tensorlite.nn as nn", "import torch.nn as nn"),
    ("from tensorlite import functional as F", "from torch.nn import functional as F"),
    ("import tensorlite.functional as F", "import torch.nn.functional as F"),
)
PORTS = ("nanogpt_model", "nanogpt_sample", "bigram", "makemore_data", "makemore_bn", "makemore_backprop")
# what a port imports from another (sample.py's `from model import GPT`): {port: {import name: port}}
DEPENDS = {"nanogpt_sample": {"model": "nanogpt_model"}, "makemore_bn": {"makemore_data": "makemore_data"},
           "makemore_backprop": {"makemore_data": "makemore_data"}}
DIFFERS = re.compile(r"#\s*differs:\s*(.+)$")


def write_names(directory, chars=100_000):
    """makemore reads names.txt, one word a line; here, the distinct lowercase words of the start of Tiny
    Shakespeare (the names dataset is not in this repository)."""
    with open(DATA, encoding="utf-8") as f:
        text = f.read()[:chars].lower()
    words = sorted({w for w in re.findall(r"[a-z]+", text) if len(w) > 1})
    with open(os.path.join(directory, "names.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(words))
    return words


def path(name):
    return os.path.join(HERE, name + ".py")


def source(name, framework="tensorlite"):
    """The port's text; for "torch", with each tensorlite import line put back to PyTorch's."""
    with open(path(name), encoding="utf-8") as f:
        text = f.read()
    if framework == "torch":
        swap = dict(IMPORTS)
        text = "\n".join(swap.get(line, line) for line in text.split("\n"))
    return text


def title(reason):
    """A difference's short name (before its ':'), the words docs/coming_from_pytorch.md uses for it."""
    return reason.split(":")[0].strip()


def char_vocabulary():
    """Tiny Shakespeare and its 65 characters, as nanoGPT's shakespeare_char prepare.py makes them."""
    with open(DATA, encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    return text, {ch: i for i, ch in enumerate(chars)}, {i: ch for i, ch in enumerate(chars)}


def differing_lines(name):
    """(line, reason) for each line the port changed on purpose, beyond its imports."""
    return [(line.strip(), m.group(1).strip()) for line in source(name).split("\n")
            for m in [DIFFERS.search(line)] if m]


@contextlib.contextmanager
def _argv_and_modules(argv, modules):
    saved_argv, saved_modules = sys.argv, {k: sys.modules.get(k) for k in modules}
    sys.argv = [sys.argv[0], *argv]
    sys.modules.update(modules)
    try:
        yield
    finally:
        sys.argv = saved_argv
        for k, m in saved_modules.items():
            if m is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = m


def run(name, framework="tensorlite", argv=(), modules=None):
    """Execute a port as a fresh module (a script runs to its end) and return it, its globals inspectable.

    `argv` is what the script sees after its name (nanoGPT's configurator reads `--key=value` from it);
    `modules` maps names the script imports to modules already run; the other ports it imports (DEPENDS) are
    run here, in the same framework, unless given."""
    modules = dict(modules or {})
    for imported, port in DEPENDS.get(name, {}).items():
        if imported not in modules:
            modules[imported] = run(port, framework)
    module = types.ModuleType(f"pytorch_ports.{name}_{framework}")
    module.__file__ = path(name)
    code = compile(source(name, framework), path(name), "exec")
    sys.modules[module.__name__] = module      # dataclasses look their module up here
    with _argv_and_modules(list(argv), modules):
        exec(code, module.__dict__)
    return module


# ----------------------------------------------------------------------------- for nanoGPT's model and sample
SMALL = dict(block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0, bias=True)   # GPTConfig, + vocab_size
SAMPLE_ARGS = ["--out_dir=out", "--start=ROMEO:", "--num_samples=2", "--max_new_tokens=30", "--top_k=10"]


def shakespeare_ids(chars=20_000):
    text, stoi, _ = char_vocabulary()
    return np.array([stoi[c] for c in text[:chars]], dtype=np.int64)


def batch(data, batch_size=8, block_size=16, seed=0):
    """(x, y) int64 NumPy arrays as nanoGPT's get_batch makes them, at offsets of a seeded NumPy generator (so
    both frameworks can be given the same batch)."""
    ix = np.random.default_rng(seed).integers(0, len(data) - block_size, batch_size)
    return (np.stack([data[i:i + block_size] for i in ix]), np.stack([data[i + 1:i + 1 + block_size] for i in ix]))


def as_array(t):
    """Either framework's tensor (or an array) as a float64 NumPy array."""
    return np.array(t.tolist(), dtype=np.float64)


def write_checkpoint(nanogpt, directory, save):
    """What nanoGPT's train.py leaves in out_dir (a compiled model's '_orig_mod.' prefix included) and the
    dataset's meta.pkl that its prepare.py writes; `save` is the framework's save. Returns (model, itos)."""
    _, stoi, itos = char_vocabulary()
    os.makedirs(os.path.join(directory, "data", "shakespeare_char"))
    with open(os.path.join(directory, "data", "shakespeare_char", "meta.pkl"), "wb") as f:
        pickle.dump({"vocab_size": len(stoi), "itos": itos, "stoi": stoi}, f)
    model_args = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, bias=False, vocab_size=len(stoi), dropout=0.0)
    model = nanogpt.GPT(nanogpt.GPTConfig(**model_args))
    checkpoint = {"model": {"_orig_mod." + k: v for k, v in model.state_dict().items()}, "model_args": model_args,
                  "iter_num": 0, "best_val_loss": 1e9, "config": {"dataset": "shakespeare_char"}}
    os.makedirs(os.path.join(directory, "out"))
    save(checkpoint, os.path.join(directory, "out", "ckpt.pt"))
    return model, itos
