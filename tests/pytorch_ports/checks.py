"""What a port's printed output must show, checked the same way for tensorlite and (in the parity tests) for
PyTorch, so each bound is one PyTorch itself meets on the same program.

The loss bounds were set from PyTorch running these same files over several seeds, with a margin for tensorlite
drawing other random numbers; test_pytorch_parity.py checks that PyTorch still meets them.
"""
import math
import re

import numpy as np

BIGRAM_VAL_LOSS_BOUND = 2.85
BATCHNORM_TRAIN_LOSS_BOUND = 3.2

# makemore part 4's cmp lines, in the notebook's order: exercise 1, then the fused cross-entropy and batchnorm
CMP_NAMES = ("logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits", "logit_maxes", "logits",
             "h", "W2", "b2", "hpreact", "bngain", "bnbias", "bnraw", "bnvar_inv", "bnvar", "bndiff2", "bndiff",
             "bnmeani", "hprebn", "embcat", "W1", "b1", "emb", "C", "logits", "hprebn")
CMP_LINE = re.compile(r"^(\S+)\s+\| exact: (True|False)\s*\| approximate: (True|False)\s*\| maxdiff: (\S+)$", re.M)


def split_losses(out):
    return {split: float(v) for split, v in re.findall(r"^(train|val) ([\d.]+)$", out, re.M)}


def check_backprop(out):
    """Every manual gradient of the notebook at least approximately equals autograd's, as the notebook shows."""
    rows = CMP_LINE.findall(out)
    assert tuple(name for name, *_ in rows) == CMP_NAMES, f"cmp lines: {[r[0] for r in rows]}"
    for name, exact, approximate, maxdiff in rows:
        assert approximate == "True" and float(maxdiff) < 1e-6, f"cmp {name}: approximate {approximate}, " \
                                                               f"maxdiff {maxdiff}"
    fast, slow = re.search(r"^(\S+) diff: (\S+)$", out, re.M).groups()
    assert abs(float(slow)) < 1e-5 and 2.5 < float(fast) < 4.5         # F.cross_entropy is the long-hand loss
    assert float(re.search(r"^max diff: tensor\(([-+.e\d]+)", out, re.M).group(1)) < 1e-5   # so is batchnorm's


def check_bigram(out):
    """The loss falls from about ln(65) + 1/2 (N(0, 1) logits) below the bound; the sample is 201 characters."""
    steps = list(re.finditer(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)\n", out, re.M))
    assert [int(s.group(1)) for s in steps] == [0, 100, 200, 299]
    train = [float(s.group(2)) for s in steps]
    assert 4.2 < train[0] < 5.2 and all(a > b for a, b in zip(train, train[1:])), train
    assert float(steps[-1].group(3)) < BIGRAM_VAL_LOSS_BOUND, steps[-1].group(0)
    sample = out[steps[-1].end():]
    assert len(sample) == 201 + 1                      # the context's first character, 200 new, print's newline


def ratio(p, lr):
    """log10 of (lr * p.grad).std() / p.data.std(): a Tensor's std is Bessel-corrected, as PyTorch's; tensorlite's
    p.data is a NumPy array, whose std divides by n (docs/coming_from_pytorch.md)."""
    as_array = lambda t: np.array(t.tolist(), dtype=np.float64)   # noqa: E731 (either framework's tensor)
    data_ddof = 0 if isinstance(p.data, np.ndarray) else 1
    return math.log10(np.std(lr * as_array(p.grad), ddof=1) / np.std(as_array(p.data), ddof=data_ddof))


def check_batchnorm(out, module):
    """The update-to-data ratios are what the formula says, the statistics print, and the loss falls."""
    assert len(module.ud) == module.max_debug_steps + 1
    assert all(len(row) == len(module.parameters) and all(math.isfinite(v) for v in row) for row in module.ud)
    expected = [ratio(p, module.lr) for p in module.parameters]
    assert np.allclose(module.ud[-1], expected, atol=1e-4), (module.ud[-1], expected)
    assert len(re.findall(r"^layer \d+ \(      Tanh\): mean [+-]\d\.\d\d, std \d\.\d\d, saturated: \d+\.\d\d%$",
                          out, re.M)) == 5
    assert len(re.findall(r"^layer \d+ \(      Tanh\): mean [+-]\d\.\d{6}, std \d\.\d{6}e[+-]\d\d$", out, re.M)) == 5
    assert len(re.findall(r"^weight +\(\d+, \d+\) \| mean [+-]", out, re.M)) == 7
    assert split_losses(out)["train"] < BATCHNORM_TRAIN_LOSS_BOUND
    first = float(re.search(r"^ +0/ *\d+: ([\d.]+)$", out, re.M).group(1))
    assert first > BATCHNORM_TRAIN_LOSS_BOUND


def check_samples(out, start, num_samples, max_new_tokens, vocab):
    """sample.py printed num_samples completions of `start`, each max_new_tokens characters of the vocabulary."""
    samples = out.split("Loading meta from", 1)[1].split("\n", 1)[1].split("\n---------------\n")
    assert samples[-1] == "" and len(samples) == num_samples + 1, samples
    for s in samples[:-1]:
        assert s.startswith(start) and len(s) == len(start) + max_new_tokens and set(s) <= set(vocab), s
    return samples[:-1]
