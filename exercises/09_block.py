"""Exercise 9: a whole GPT block by hand, every intermediate's gradient written by you and checked beside autograd's.

Read:      docs/backprop_through_attention.md#residual (the walk of one block), and the sections of exercises 1-8
Check:     python -m exercises check block     (a table: each gradient exact, approximate (max diff) or wrong)
Solution:  the engine's own: tensorlite/autograd.py::backward walking gpt/model.py::Block.forward; by hand, the
           solutions of exercises 1, 2, 4, 5 and 7 in reverse order (exercises/grader/block.py::engine_walk)

The forward, gpt/model.py::Block.forward one line at a time (C = n_embd, H heads of size D = C / H, every cache
entry below is an array of that name; params use nanoGPT's names):

    ln1      = layer_norm(x, ln_1.weight, ln_1.bias)            (B, T, C)   cache: ln1_xhat, ln1_rstd (B, T, 1)
    qkv      = ln1 @ attn.c_attn.weight.T + attn.c_attn.bias    (B, T, 3C)
    q, k, v  = split_heads(qkv, H)                              (B, H, T, D) each
    scores   = q @ k^T / sqrt(D)                                (B, H, T, T)
    masked   = scores + M                                       M: 0 where key <= query, -inf after (causal)
    probs    = softmax(masked, -1)                              (B, H, T, T)
    att      = probs @ v                                        (B, H, T, D)
    merged   = merge_heads(att)                                 (B, T, C)
    attn_out = merged @ attn.c_proj.weight.T + attn.c_proj.bias (B, T, C)
    x1       = x + attn_out                                     the residual stream
    ln2      = layer_norm(x1, ln_2.weight, ln_2.bias)           cache: ln2_xhat, ln2_rstd
    fc       = ln2 @ mlp.c_fc.weight.T + mlp.c_fc.bias          (B, T, 4C)
    act      = gelu(fc)                                         the tanh form
    mlp_out  = act @ mlp.c_proj.weight.T + mlp.c_proj.bias      (B, T, C)
    out      = x1 + mlp_out
"""
import numpy as np  # noqa: F401  (yours to use)


def block_backward(cache, params, dout):
    """Every gradient of the block, given dout = dL/dout.

    cache   {name: array}   the forward's intermediates above (x, ln1, ..., out, and the LayerNorm statistics)
    params  {name: array}   the twelve parameters: ln_1.weight, ..., mlp.c_proj.bias
    dout    (B, T, C)

    Return a dict: for each intermediate (mlp_out, act, fc, ln2, x1, attn_out, merged, att, probs, masked, scores,
    v, k, q, qkv, ln1, x) and each parameter name, the gradient of L with respect to it, an array of its shape
    and dtype. Work from the output down; the table shows what is right so far, and the first wrong one.
    """
    grads = {"mlp_out": dout}
    # grads["act"] = ...
    raise NotImplementedError   # delete this line when you start; return what you have, the table grades it
    return grads
