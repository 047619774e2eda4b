"""Count-based character n-gram models: the baselines a GPT has to beat.

P(next | previous n-1 tokens) = (count(context, next) + k) / (count(context) + k V), add-k smoothing, counts
from the train split. Counts are kept sparse (sorted codes of context*V + next), so n = 3 over a 256-symbol
vocabulary needs no V^3 table.
"""
import math

import numpy as np


def metrics(mean_nll):
    """Mean negative log-likelihood (nats) -> loss, perplexity (e^loss) and bits per character (loss / ln 2)."""
    return {"loss": float(mean_nll), "perplexity": math.exp(mean_nll), "bpc": mean_nll / math.log(2)}


class NGramModel:
    def __init__(self, n, vocab_size, k=1.0):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if k < 0:
            raise ValueError(f"add-k smoothing needs k >= 0, got {k}")
        self.n, self.vocab_size, self.k = n, vocab_size, k

    def _codes(self, ids):
        """(context codes, next ids) for every position that has n-1 tokens before it."""
        ids = np.asarray(ids, dtype=np.int64)
        context = np.zeros(len(ids) - self.n + 1, dtype=np.int64)
        for offset in range(self.n - 1):
            context = context * self.vocab_size + ids[offset:len(ids) - self.n + 1 + offset]
        return context, ids[self.n - 1:]

    def fit(self, ids):
        context, nxt = self._codes(ids)
        self.pair_codes, self.pair_counts = np.unique(context * self.vocab_size + nxt, return_counts=True)
        self.context_codes, self.context_counts = np.unique(context, return_counts=True)
        return self

    @staticmethod
    def _lookup(codes, counts, queries):
        at = np.clip(np.searchsorted(codes, queries), 0, len(codes) - 1)
        return np.where(codes[at] == queries, counts[at], 0)

    def log_probs(self, ids):
        """log P(token_t | the n-1 before it) for t = n-1 .. len(ids)-1."""
        context, nxt = self._codes(ids)
        pair = self._lookup(self.pair_codes, self.pair_counts, context * self.vocab_size + nxt)
        total = self._lookup(self.context_codes, self.context_counts, context)
        with np.errstate(divide="ignore"):
            return np.log(pair + self.k) - np.log(total + self.k * self.vocab_size)

    def evaluate(self, ids):
        return metrics(-self.log_probs(ids).mean())
