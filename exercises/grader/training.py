"""The last stage of a Python exercise: a tiny GPT trained with the learner's backward in the engine.

The same model, seed and batches train twice, once with the engine's own backward and once with the learner's
plugged in; the two loss curves must agree (float32 rounding may differ in the last digits: the learner's formula
need not round like the engine's). "Your softmax backward trains a GPT."
"""
import functools
import math
import os

import numpy as np

import tensorlite as tl
from gpt import GPT, GPTConfig
from tensorlite.cuda.mode import fused_mode

from .core import Failure

STEPS, BATCH, LEARNING_RATE = 50, 8, 3e-3
CONFIG = dict(block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0)
TOLERANCE = 1e-3      # the largest difference of the two loss curves (nats) that is still float32 rounding
TEXT_CHARS = 20_000   # the start of Tiny Shakespeare is enough for 50 steps of 8 x 16 characters
TEXT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "data",
                    "tinyshakespeare.txt")


@functools.lru_cache(maxsize=1)
def _batches():
    with open(TEXT, encoding="utf-8") as f:
        text = f.read(TEXT_CHARS)
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text], dtype=np.int64)
    starts = np.random.default_rng(0).integers(0, len(ids) - CONFIG["block_size"] - 1, size=(STEPS, BATCH))
    windows = ids[starts[..., None] + np.arange(CONFIG["block_size"] + 1)]          # (STEPS, BATCH, T + 1)
    return len(chars), windows


def losses():
    """The training loss at each of STEPS AdamW steps (the reference path: no fused kernels)."""
    vocab_size, windows = _batches()
    with fused_mode("0"):
        tl.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=vocab_size, **CONFIG))
        optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=LEARNING_RATE, betas=(0.9, 0.95))
        curve = []
        for step in range(STEPS):
            _, loss = model(windows[step, :, :-1], windows[step, :, 1:])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            curve.append(loss.item())
    return curve


@functools.lru_cache(maxsize=1)
def reference():
    return tuple(losses())


def train_stage(piece, plug, report):
    """Train with plug() active; fail unless the losses follow the engine's own to TOLERANCE."""
    engine = reference()
    with plug():
        mine = losses()
    broken = next((i for i, v in enumerate(mine) if not math.isfinite(v)), None)
    if broken is not None:
        raise Failure(f"with {piece} in the engine, the GPT's loss became {mine[broken]} at step {broken + 1} "
                      f"(the engine's own: {engine[broken]:.4f})")
    diff = max(abs(a - b) for a, b in zip(mine, engine))
    step = int(np.argmax([abs(a - b) for a, b in zip(mine, engine)]))
    if diff > TOLERANCE:
        raise Failure(f"with {piece} in the engine, the GPT trains to a different loss: {mine[step]:.4f} at step "
                      f"{step + 1}, the engine's own backward {engine[step]:.4f} (a difference of {diff:.2g}; "
                      f"rounding stays below {TOLERANCE})")
    report.ok(f"{piece} trains a GPT: {STEPS} AdamW steps of a {CONFIG['n_layer']}-layer char GPT on Tiny "
              f"Shakespeare, loss {mine[0]:.3f} -> {mine[-1]:.3f}, as with the engine's own backward "
              f"({engine[-1]:.3f}; largest difference {diff:.1g})")
