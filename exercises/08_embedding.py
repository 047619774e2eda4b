"""Exercise 8: the embedding's backward, a scatter-add (an id that repeats adds up).

Read:      docs/backprop_through_attention.md#embedding
Check:     python -m exercises check embedding
Solution:  tensorlite/functional.py::EmbeddingFunction.backward (the engine's own code, for when you want to look)

The forward is a row lookup, out = weight[ids]: GPT's token table (wte, ids the tokens) and position table (wpe,
ids 0 .. T-1).
"""
import numpy as np  # noqa: F401  (yours to use)


def embedding_backward(ids, dout, num_embeddings):
    """d weight for out = weight[ids].

    ids             (...)      integer rows of the table; the same id may appear many times
    dout            (..., C)   the gradient of the output, with ids' shape in front
    num_embeddings  int        the table's number of rows

    Return dweight: an array of shape (num_embeddings, C), in dout's dtype.
    """
    raise NotImplementedError
