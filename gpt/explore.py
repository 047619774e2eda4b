"""The data behind the attention explorer page (examples/explore_attention.py): one prompt's forward and backward
through every layer and head, with the numbers tensorlite's own backward computes.

Forward: each head's attention probabilities P and the model's top next-token guesses at every position.
Backward: for a position t and a target token y, the loss L = -log p(y | tokens 0..t) is backpropagated by the
engine, and `Tensor.retain_grad()` keeps what it passes on the way: the gradients on P (dP) and on the masked
scores (dS), on the residual stream after each block, and on each token's embedding. Nothing in this module
differentiates anything by itself.

How the graph exposes P and S: each block's `attend` (the seam gpt/model.py leaves for experiments) is swapped for
the same causal attention written op by op (S = Q K^T * scale + M, P = softmax(S), O = P V), so S and P are
tensors of the graph. Only the rows the page shows (the window: the last `window` positions) go op by op; the
rows before it run through the single Function F.scaled_dot_product_attention. Attention rows are independent of
each other, so both halves together are the model's own attention; a 1024-token prompt then keeps (window x T)
matrices per head instead of (T x T).

Many backward passes, one graph: the prompt is copied once per (position, target), copy n carrying only the loss
of its own (t_n, y_n). No op mixes the sequences of a batch, so one backward of the summed loss gives every copy
exactly the gradients of its own loss.
"""
import base64
import contextlib
import inspect
import json
import math
import os
import re
import tempfile

import numpy as np
from tqdm import tqdm

import tensorlite as tl
import tensorlite.functional as F
from tensorlite import autograd
from .data import HEX_DIGITS

DEFAULT_WINDOW = 64          # positions the page shows (the cpu preset's block_size); the model reads them all
DEFAULT_TOP_K = 5            # next-token guesses per position; each is also a precomputed backward target
DEFAULT_BUDGET = 2_000_000   # float32 values of dP and dS the page may carry (4 bytes each, a third more in base64)
CHUNK_BYTES = 512 * 2 ** 20  # rough memory bound of one batched forward + backward
DOC = "docs/backprop_through_attention.md"
# the derivation's sections the panels cite, by their stable anchors (<a id="..."></a> above each heading)
DOC_SECTIONS = ("softmax", "cross-entropy", "attention", "residual", "embedding")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "explore_page")


# ----------------------------------------------------------------------------- the prompt
def encode_prompt(tokenizer, prompt, block_size):
    """(ids, notes): the prompt's token ids, at most block_size of them (its last ones), and what the page and the
    command line should say about them (a cut, characters written as bytes)."""
    if not prompt:
        raise ValueError("the prompt is empty: pass --prompt with at least one character")
    ids, notes = tokenizer.encode(prompt), []
    as_bytes = byte_fallback_chars(tokenizer, prompt)
    if as_bytes:
        notes.append(f"{len(as_bytes)} character(s) outside the tokenizer's vocabulary went in as their UTF-8 bytes, "
                     f"several tokens each: {' '.join(repr(c) for c in as_bytes)}")
    if len(ids) > block_size:
        notes.append(f"the prompt has {len(ids)} tokens, more than this model's block_size of {block_size}: "
                     f"it reads the last {block_size}")
        ids = ids[-block_size:]
    return ids, notes


def byte_fallback_chars(tokenizer, text):
    """The distinct characters of text that the tokenizer writes as bytes: as several tokens, or as one of the
    char tokenizer's byte-fallback ids (a character its training text never had)."""
    byte_ids = getattr(tokenizer, "id_to_byte", {})
    found = []
    for ch in dict.fromkeys(text):
        ids = tokenizer.encode(ch)
        if len(ids) > 1 or any(i in byte_ids for i in ids):
            found.append(ch)
    return found


def token_label(tokenizer, token_id):
    """What the page prints for one token: its text; <esc> for the char tokenizer's escape (a byte follows as two
    hex digits), <0xNN> for a lone byte that is not text by itself, <token N> for an id no text encodes to."""
    if token_id == getattr(tokenizer, "escape", None):
        return "<esc>"
    text = tokenizer.decode([token_id])
    if "\ufffd" not in text:
        return text
    byte = getattr(tokenizer, "id_to_byte", {}).get(token_id)
    if byte is None and getattr(tokenizer, "kind", "") == "byte":
        byte = token_id
    return f"<0x{byte:02X}>" if byte is not None else f"<token {token_id}>"


def token_labels(tokenizer, ids):
    """token_label of each of a sequence's ids, except the two hex digits after an escape, which read <hex D>:
    they spell a byte there, not their characters."""
    labels, escape = [token_label(tokenizer, i) for i in ids], getattr(tokenizer, "escape", None)
    for i, token_id in enumerate(ids[:-2]):
        if token_id == escape and max(ids[i + 1], ids[i + 2]) < HEX_DIGITS:
            labels[i + 1], labels[i + 2] = (f"<hex {d:X}>" for d in ids[i + 1:i + 3])
    return labels


# ----------------------------------------------------------------------------- the instrumented pass
def windowed_attention(start, kept):
    """A stand-in for CausalSelfAttention.attend: queries start..T-1 op by op, keeping (S, P, O) in kept, so that
    the backward leaves dS and dP on them; queries before start through the single Function."""
    def attend(q, k, v):                                                           # (B, H, T, D) each
        T = q.shape[-2]
        mask = tl.tensor(F.causal_mask(q.xp, T - start, T, q.dtype))              # (W, T): query i is position start+i
        scores = (q[:, :, start:] @ k.swapaxes(-1, -2)) * (1.0 / math.sqrt(q.shape[-1])) + mask  # (B, H, W, T)
        probs = F.softmax(scores, dim=-1)
        out = probs @ v                                                            # (B, H, W, D)
        kept.append((scores.retain_grad(), probs.retain_grad(), out))
        if start == 0:
            return out
        before = F.scaled_dot_product_attention(q[:, :, :start], k[:, :, :start], v[:, :, :start], is_causal=True)
        return tl.cat([before, out], 2)
    return attend


def retaining_forward(module, kept, leaf=False):
    """A stand-in for module.forward that keeps its output in kept with its gradient retained; with leaf, the
    output is cut from the graph below it and made a leaf that requires grad (the token embedding, whose gradient
    is the saliency: nothing below it is needed)."""
    forward = type(module).forward

    def keeping(*args, **kwargs):
        out = forward(module, *args, **kwargs)
        out = out.detach().requires_grad_() if leaf else out.retain_grad()
        kept.append(out)
        return out
    return keeping


@contextlib.contextmanager
def instrumented(model, start):
    """The model with its attention rows from start on, its block outputs and its token embeddings kept (yielded
    as a dict of lists); its parameters need no gradient meanwhile. Everything is put back on exit."""
    kept = {"attention": [], "blocks": [], "embedding": []}
    swaps = [(block.attn, "attend", windowed_attention(start, kept["attention"])) for block in model.transformer.h]
    swaps += [(block, "forward", retaining_forward(block, kept["blocks"])) for block in model.transformer.h]
    wte = model.transformer.wte
    swaps.append((wte, "forward", retaining_forward(wte, kept["embedding"], leaf=True)))
    params = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    model.eval()
    try:
        for p, _ in params:
            p.requires_grad_(False)
        for obj, name, value in swaps:
            setattr(obj, name, value)
        yield kept
    finally:
        for obj, name, _ in swaps:
            delattr(obj, name)                                                    # back to the class's own method
        for p, flag in params:
            p.requires_grad_(flag)
        model.train(was_training)


# ----------------------------------------------------------------------------- packing for the page
def packed_index(rows, earlier):
    """Row and column indices of the entries the page keeps of a (rows, earlier + rows) causal matrix: row i holds
    earlier + i + 1 of them (what query i sees), rows laid end to end. Row i starts at i * earlier + i (i + 1) / 2."""
    r = np.concatenate([np.full(earlier + i + 1, i) for i in range(rows)])
    c = np.concatenate([np.arange(earlier + i + 1) for i in range(rows)])
    return r, c


def with_earlier_column(m, start):
    """(..., W, T) -> (..., W, [1 +] W): the keys before the window summed into one leading column."""
    if start == 0:
        return m
    return np.concatenate([m[..., :start].sum(-1, keepdims=True), m[..., start:]], -1)


def position_norms(grad, start):
    """(N, T, C) gradients -> (N, [1 +] W) L2 norms per position, the positions before the window as one norm."""
    norms = np.sqrt((grad.astype(np.float64) ** 2).sum(-1))
    if start:
        norms = np.concatenate([np.sqrt((norms[:, :start] ** 2).sum(-1, keepdims=True)), norms[:, start:]], -1)
    return norms.astype(np.float32)


def backward_size(window_pos, earlier, n_targets, n_layer, n_head):
    """Values of dP and dS the page carries for one window position: rows 0..window_pos of every head."""
    rows = window_pos + 1
    return 2 * n_layer * n_head * n_targets * (rows * earlier + rows * (rows + 1) // 2)


# ----------------------------------------------------------------------------- what the page shows
def code_name(obj):
    """'file::qualname' of a function or class, relative to the repository root, as the derivation cites code."""
    path = os.path.relpath(inspect.getsourcefile(obj), ROOT).replace(os.sep, "/")
    return f"{path}::{obj.__qualname__}"


def doc_sections(root=ROOT):
    """{anchor: {"title", "text"}} of the cited sections, title as the document heads it ("2. Softmax"); both are
    None where the document did not ship (an install without the repository's docs/)."""
    path = os.path.join(root, DOC)
    text = open(path, encoding="utf-8").read() if os.path.isfile(path) else None
    sections = {}
    for anchor in DOC_SECTIONS:
        title = body = None
        if text is not None:
            marker = f'<a id="{anchor}"></a>\n## '
            if marker not in text:
                raise RuntimeError(f"{DOC} has no section anchored '{anchor}': update DOC_SECTIONS in {__name__}")
            title, body = text.split(marker, 1)[1].split("\n", 1)
            body = re.split(r"\n<a id=|\n## ", body, maxsplit=1)[0].strip()
        sections[anchor] = {"title": title, "text": body}
    return sections


def panels(model, functions):
    """Each panel's formula, the code that computes its numbers, and the derivation sections it follows.
    functions: the Functions of the instrumented pass that made P (softmax), O = P V (matmul) and the loss."""
    softmax, matmul, loss = functions["softmax"], functions["matmul"], functions["loss"]
    here, walk = code_name(windowed_attention), code_name(autograd.backward)
    return {
        "attention": dict(formula="P = softmax(Q Kᵀ / √D + M)", docs=["attention", "softmax"],
                          code=[here, code_name(softmax.forward)]),
        "guesses": dict(formula="p(· | tokens 0..t) = softmax(logits_t)", docs=["cross-entropy"],
                        code=[code_name(type(model).forward), code_name(F.log_softmax)]),
        "loss": dict(formula="L = −log p(y | tokens 0..t),  dL/dlogits_t = softmax(logits_t) − onehot(y)",
                     docs=["cross-entropy"], code=[code_name(explore), code_name(loss.backward)]),
        "dP": dict(formula="dP = dO Vᵀ", docs=["attention"], code=[code_name(matmul.backward), here]),
        "dS": dict(formula="dS = P ∘ (dP − rowsum(P ∘ dP))", docs=["softmax", "attention"],
                   code=[code_name(softmax.backward), here]),
        "residual": dict(formula="‖∂L/∂x_l[j]‖₂, x_l the residual stream after block l", docs=["residual"],
                         code=[walk, code_name(retaining_forward)]),
        "saliency": dict(formula="‖∂L/∂e_j‖₂, e_j = wte[token j] (the token's embedding)", docs=["embedding"],
                         code=[walk, code_name(retaining_forward)]),
    }


def explore(model, tokenizer, prompt, window=DEFAULT_WINDOW, top_k=DEFAULT_TOP_K, positions=None,
            budget=DEFAULT_BUDGET, progress=False):
    """Everything the page shows for one prompt, as a dict (numpy arrays where there are many numbers).

    positions: prompt positions (0-based, negative from the end, inside the window) to precompute backward for;
    by default the window's last positions, as many as fit `budget` values of dP and dS (at least one). At each,
    the targets are the real next token (where the prompt has one) and the model's top_k guesses other than it.
    """
    if window < 1 or top_k < 1:
        raise ValueError(f"window and top_k must be at least 1, got {window} and {top_k}")
    config = model.config
    ids, notes = encode_prompt(tokenizer, prompt, config.block_size)
    T = len(ids)
    start = max(0, T - window)
    W, earlier = T - start, int(start > 0)
    if start:
        notes.append(f"the page shows the last {W} of the {T} tokens the model read; the column '\u2026' of each "
                     f"matrix sums the {start} keys before them")
    real_next = [ids[t + 1] if t + 1 < T else None for t in range(start, T)]
    n_targets = [min(top_k + (y is not None), config.vocab_size) for y in real_next]
    chosen = _positions(positions, T, start, W, lambda p: backward_size(
        p, earlier, n_targets[p], config.n_layer, config.n_head), budget)
    seen = {}

    def forward_view(logits, kept):        # the first pass's first copy: what the forward panels show
        with tl.no_grad():
            seen["logprobs"] = F.log_softmax(tl.tensor(logits.data[0]), dim=-1).numpy()           # (T, V)
        seen["attention"] = np.stack([with_earlier_column(tl.tensor(p.data[0]).numpy(), start)
                                      for _, p, _ in kept["attention"]])
        ranked = np.argsort(-seen["logprobs"][start:], axis=-1, kind="stable")[:, :top_k + 1]   # (W, k + 1)
        seen["guesses"] = ranked[:, :top_k]
        seen["targets"] = {p: ([] if real_next[p] is None else [real_next[p]]) +
                           [int(y) for y in ranked[p] if y != real_next[p]][:n_targets[p] - (real_next[p] is not None)]
                           for p in chosen}
        return [(p, y) for p in chosen for y in seen["targets"][p]]

    grads, functions = _backward(model, ids, start, sum(n_targets[p] for p in chosen), forward_view, progress)
    logprobs, guesses = seen["logprobs"], seen["guesses"]
    rows, cols = packed_index(W, earlier)
    result = {
        "model": dict(config.to_dict(), n_params=model.num_params()),
        "prompt": prompt, "notes": notes, "n_tokens": T, "start": start, "earlier": earlier,
        "tokens": token_labels(tokenizer, ids)[start:], "ids": ids[start:],
        "next": [None if y is None else token_label(tokenizer, y) for y in real_next],
        "attention": seen["attention"][..., rows, cols],                            # (L, H, packed W rows)
        "guesses": [[[token_label(tokenizer, int(y)), float(np.exp(logprobs[start + p, y]))] for y in guesses[p]]
                    for p in range(W)],
        "next_prob": [None if y is None else float(np.exp(logprobs[start + p, y])) for p, y in enumerate(real_next)],
        "backward": [], "top_k": top_k, "budget": budget,
        "panels": panels(model, functions), "doc": DOC, "doc_sections": doc_sections(),
    }
    for p in chosen:
        entry = {"position": p, "targets": []}
        for y in seen["targets"][p]:
            dP, dS, residual, saliency = grads.pop((p, y))
            keep = rows <= p                                     # rows after p get no gradient from this loss
            entry["targets"].append(dict(
                dP=dP[..., rows[keep], cols[keep]], dS=dS[..., rows[keep], cols[keep]], residual=residual,
                saliency=saliency, id=y, label=token_label(tokenizer, y), real=y == real_next[p],
                loss=float(-logprobs[start + p, y]), prob=float(np.exp(logprobs[start + p, y])),
                rank=int((logprobs[start + p] > logprobs[start + p, y]).sum()) + 1))
        result["backward"].append(entry)
    return result


def _positions(requested, T, start, W, size_of, budget):
    """Window positions to precompute backward for: the requested prompt positions, or the last ones that fit."""
    if requested is not None:
        chosen = []
        for t in requested:
            absolute = t + T if t < 0 else t
            if not 0 <= absolute < T:
                raise ValueError(f"position {t} is outside the prompt's {T} tokens")
            if absolute < start:
                raise ValueError(f"position {t} is before the window (the page shows positions {start}..{T - 1}); "
                                 f"raise --window")
            chosen.append(absolute - start)
        return sorted(set(chosen))
    chosen, total = [], 0
    for p in range(W - 1, -1, -1):
        total += size_of(p)
        if chosen and total > budget:
            break
        chosen.append(p)
    return sorted(chosen)


def _backward(model, ids, start, n_jobs, first_pass, progress):
    """{(window position, target): (dP, dS, residual norms, saliency)} for n_jobs copies of the prompt, a batch
    of copies per backward. The jobs are known after the first forward: first_pass(logits, kept) returns them
    (it also reads the forward view off that pass). Also the Functions that computed P, O = P V and the loss."""
    config, T = model.config, len(ids)
    per_copy = 4 * config.n_layer * (6 * config.n_head * T * T + 16 * T * config.n_embd) + 12 * T * config.vocab_size
    chunk = max(1, CHUNK_BYTES // per_copy)
    device = model.transformer.wte.weight.device
    results, functions, jobs = {}, {}, None
    for first in tqdm(range(0, n_jobs, chunk), desc="backward", unit="batch", disable=not progress or n_jobs <= chunk):
        N = min(chunk, n_jobs - first)
        with instrumented(model, start) as kept:
            logits, _ = model(tl.tensor(np.repeat(np.asarray([ids], dtype=np.int64), N, 0), device=device))
            jobs = jobs or first_pass(logits, kept)
            batch = jobs[first:first + N]
            targets = np.full((N, T), -1, dtype=np.int64)
            for n, (p, y) in enumerate(batch):
                targets[n, start + p] = y
            loss = F.cross_entropy(logits.reshape(N * T, -1), tl.tensor(targets.reshape(-1), device=device),
                                   ignore_index=-1, reduction="sum")
            _, probs, out = kept["attention"][0]
            functions.update(softmax=type(probs.creator), matmul=type(out.creator), loss=type(loss.creator))
            loss.backward()
        dS = np.stack([s.grad.numpy() for s, _, _ in kept["attention"]], 1)   # (N, L, H, W, T)
        dP = np.stack([p.grad.numpy() for _, p, _ in kept["attention"]], 1)
        residual = np.stack([position_norms(b.grad.numpy(), start) for b in kept["blocks"]], 1)
        saliency = position_norms(kept["embedding"][0].grad.numpy(), start)
        for n, job in enumerate(batch):
            results[job] = (with_earlier_column(dP[n], start), with_earlier_column(dS[n], start), residual[n],
                            saliency[n])
    return results, functions


# ----------------------------------------------------------------------------- the HTML file
def check_writable(path):
    """Fail now, in one line, if the page could not be written to path (rather than after the computing)."""
    fd, tmp = _reserve(path)
    os.close(fd)
    os.remove(tmp)


def _reserve(path):
    if os.path.isdir(path):
        raise ValueError(f"cannot write the page to {path}: it is a directory")
    try:
        return tempfile.mkstemp(prefix=".explore-", suffix=".html.tmp", dir=os.path.dirname(os.path.abspath(path)))
    except OSError as err:
        raise ValueError(f"cannot write the page to {path}: {err.strerror or err}") from None


def _json_value(value):
    """numpy arrays travel as little-endian float32 in base64 (the page decodes them into Float32Arrays)."""
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value, dtype="<f4")
        return {"f32": base64.b64encode(data.tobytes()).decode("ascii"), "shape": list(data.shape)}
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot put {type(value).__name__} on the page")


def render_page(result):
    """The page as one string: the template with its style, script and data inline."""
    def asset(name):
        with open(os.path.join(PAGE_DIR, name), encoding="utf-8") as f:
            return f.read()
    data = json.dumps(result, default=_json_value, ensure_ascii=False).replace("<", "\\u003c")
    title = f"attention explorer: {result['prompt'][:40]!r}".replace("&", "&amp;").replace("<", "&lt;")
    page = asset("explore.html").replace("/*STYLE*/", asset("explore.css"), 1)
    page = page.replace("/*SCRIPT*/", asset("explore.js"), 1)
    return page.replace("/*DATA*/", data, 1).replace("<!--TITLE-->", title, 1)   # data has no "<": no placeholder


def write_page(result, path):
    """Write the page atomically (a temp file beside it, then a rename); return its absolute path."""
    page = render_page(result)
    fd, tmp = _reserve(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, path)
    except OSError as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise ValueError(f"cannot write the page to {path}: {err.strerror or err}") from None
    return os.path.abspath(path)
