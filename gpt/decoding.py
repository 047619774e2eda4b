"""Choosing the next token from logits: greedy, temperature, top-k, top-p (nucleus) sampling, and beam search.

Sampling draws from tensorlite's seeded generator on the logits' device, so `tl.manual_seed` makes it repeatable.
"""
import numpy as np

import tensorlite as tl
from tensorlite import backend


def check_decoding_args(temperature=1.0, top_k=None, top_p=None, greedy=False):
    if not greedy and not temperature > 0:
        raise ValueError(f"temperature must be > 0 (or use greedy decoding), got {temperature}")
    if top_k is not None and int(top_k) < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def _log_softmax(xp, logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, greedy=False):
    """logits (B, V) raw array -> next ids (B, 1) int64 array on the same device."""
    check_decoding_args(temperature, top_k, top_p, greedy)
    xp = backend.xp_of(logits)
    if greedy:
        return logits.argmax(axis=-1)[:, None].astype(np.int64)
    logits = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = -xp.sort(-logits, axis=-1)[:, int(top_k) - 1:int(top_k)]            # (B, 1) k-th largest
        logits = xp.where(logits < kth, -np.inf, logits)
    probs = xp.exp(_log_softmax(xp, logits))
    if top_p is not None and top_p < 1.0:
        order = xp.argsort(-probs, axis=-1)
        sorted_probs = xp.take_along_axis(probs, order, axis=-1)
        # keep the smallest prefix whose mass reaches top_p (the first token is always kept)
        keep_sorted = (xp.cumsum(sorted_probs, axis=-1) - sorted_probs) < top_p
        keep = xp.zeros_like(keep_sorted)
        xp.put_along_axis(keep, order, keep_sorted, axis=-1)
        probs = xp.where(keep, probs, 0.0)
        probs /= probs.sum(axis=-1, keepdims=True)
    u = tl.rand(probs.shape[0], 1, dtype=np.float64, device=backend.device_of(logits)).data   # (B, 1) in [0, 1)
    cdf = xp.cumsum(probs, axis=-1)
    return xp.minimum((cdf < u).sum(axis=-1, keepdims=True), probs.shape[-1] - 1).astype(np.int64)


@tl.no_grad()
def beam_search(model, idx, max_new_tokens, beam_width):
    """Keep the beam_width continuations of highest total log-probability, one token at a time.

    idx (1, T) or (T,) prompt. Returns (sequences (beam_width, T + max_new_tokens), total log-probs
    (beam_width,)), best first; the log-probabilities are of the generated tokens given the prompt.
    """
    if int(beam_width) < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    prompt = backend.to_numpy(idx.data if isinstance(idx, tl.Tensor) else np.asarray(idx)).reshape(-1)
    if prompt.size == 0:
        raise ValueError("beam search needs a non-empty prompt")
    was_training = model.training
    model.eval()
    beams, scores = prompt[None, :].astype(np.int64), np.zeros(1)
    block = model.config.block_size
    for _ in range(max_new_tokens):
        logits, _ = model(tl.tensor(beams[:, -block:], device=_device(model)))
        logp = backend.to_numpy(_log_softmax(logits.xp, logits.data[:, -1, :].astype(np.float64)))  # (beams, V)
        total = (scores[:, None] + logp).reshape(-1)
        best = np.argsort(-total, kind="stable")[:beam_width]
        vocab = logp.shape[1]
        beams = np.concatenate([beams[best // vocab], (best % vocab)[:, None]], axis=1)
        scores = total[best]
    model.train(was_training)
    return beams, scores


def _device(model):
    return model.parameters()[0].device
