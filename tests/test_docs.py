"""The documents cite real code, link to real anchors and images, and the derivation's formulas hold.

Citations: every `file::name` in docs/*.md names a definition in that file (a `Class.method` defined in that class's
own body, not inherited; a function defined, not merely called). Formulas: each formula of
docs/backprop_through_attention.md, written out here in NumPy, agrees with float64 central differences and with
tensorlite's backward (the attention head's formulas are checked by the walkthrough, tests/test_walkthrough.py).
"""
import ast
import glob
import math
import os
import re

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CITATION = re.compile(r"`([\w/]+\.(?:py|cu))::([\w.]+)`")
DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
DERIVATION = os.path.join(ROOT, "docs", "backprop_through_attention.md")
SECTIONS = ("notation", "engine", "linear", "softmax", "cross-entropy", "layernorm", "gelu", "attention", "heads",
            "residual", "embedding", "dropout", "flash")   # anchors other pages link to: keep them stable


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ----------------------------------------------------------------------------- citations, anchors, links
def citations():
    for doc in DOCS:
        for path, name in CITATION.findall(read(doc)):
            yield os.path.basename(doc), path, name


def _binds(node, name):
    """Does this statement define `name` (def, class, or an assignment to it) in its own scope?"""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    return False


def defined_in_python(source, dotted):
    """'Cls.method': a def of `method` in the body of class `Cls` at the module's top level (not inherited)."""
    scope = ast.parse(source).body
    for part in dotted.split("."):
        node = next((n for n in scope if _binds(n, part)), None)
        if node is None:
            return False
        scope = getattr(node, "body", [])
    return True


def defined_in_cuda(source, name):
    """A definition `<qualifiers and type> name(<parameters>) {`: not a call, not a prototype."""
    for match in re.finditer(rf'^[ \t]*(?:[\w"]+[ \t*&]+)+{re.escape(name)}\s*\(', source, re.M):
        depth, i = 1, match.end()
        while depth and i < len(source):
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            i += 1
        if source[i:].lstrip().startswith("{"):
            return True
    return False


def test_the_derivation_cites_code():
    cited = [c for c in citations() if c[0] == "backprop_through_attention.md"]
    assert len(cited) >= 25


@pytest.mark.parametrize("doc,path,name", list(citations()))
def test_cited_name_is_defined_there(doc, path, name):
    full = os.path.join(ROOT, path)
    assert os.path.isfile(full), f"{doc} cites missing file {path}"
    defined = defined_in_cuda if path.endswith(".cu") else defined_in_python
    assert defined(read(full), name), f"{doc} cites {path}::{name}, which is not defined there"


def test_the_definition_checks_reject_calls_inheritance_and_prototypes():
    python = "class A:\n    def f(self): pass\nclass B(A):\n    pass\ndef g():\n    return h()\n"
    assert defined_in_python(python, "A.f") and defined_in_python(python, "g")
    assert not defined_in_python(python, "B.f") and not defined_in_python(python, "h")
    cuda = ('__device__ float helper(int a);\nextern "C" __global__ void kern(const float* x,\n    int n) {\n'
            '    float y = helper(n);\n    return helper(n);\n}\n')
    assert defined_in_cuda(cuda, "kern")
    assert not defined_in_cuda(cuda, "helper")


def test_every_section_has_its_stable_anchor_and_every_link_resolves():
    text = read(DERIVATION)
    anchors = re.findall(r'<a id="([\w-]+)"></a>\n## ', text)
    assert tuple(anchors) == SECTIONS
    assert len(anchors) == len(re.findall(r"^## ", text, re.M)), "a section without an anchor"
    for target in re.findall(r"\]\(#([\w-]+)\)", text):
        assert target in anchors, f"link to #{target}, which is no anchor"


@pytest.mark.parametrize("doc", DOCS, ids=os.path.basename)
def test_doc_images_exist(doc):
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", read(doc)):
        assert os.path.isfile(os.path.join(os.path.dirname(doc), link)), f"{doc} shows missing {link}"


def test_the_derivations_code_snippets_run():
    snippets = re.findall(r"```python\n(.*?)```", read(DERIVATION), re.S)
    assert snippets
    for snippet in snippets:
        exec(compile(snippet, DERIVATION, "exec"), {})


def test_the_readmes_ten_lines_run():
    """README's "Ten lines" (its gradcheck of x.double(), a tensor that is not a leaf, once failed)."""
    block = re.search(r"## Ten lines\n\n```python\n(.*?)```", read(os.path.join(ROOT, "README.md")), re.S).group(1)
    assert len(block.strip().splitlines()) == 9
    for seed in range(3):
        tl.manual_seed(seed)
        exec(compile(block, "README.md", "exec"), {})


def test_readme_links_and_images_exist():
    """Every relative link and image of the README (Learn and Experiments pictures included) resolves."""
    text = read(os.path.join(ROOT, "README.md"))
    links = [link for link in re.findall(r"\]\(([^)#]+)\)", text) if "://" not in link]
    assert sum(link.endswith(".png") for link in links) >= 7
    for link in links:
        assert os.path.isfile(os.path.join(ROOT, link)), f"README links to missing {link}"


# ----------------------------------------------------------------------------- the formulas, numerically
rng = np.random.default_rng(0)


def central_differences(f, x, step=1e-6):
    """d f / d x for a scalar function f of one float64 array, one entry at a time."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        bump = np.zeros_like(x)
        bump[index] = step
        grad[index] = (f(x + bump) - f(x - bump)) / (2 * step)
    return grad


def jacobian(f, x, step=1e-6):
    """J[i, j] = ∂f(x)_i / ∂x_j for a vector function of a vector, by central differences."""
    return np.stack([central_differences(lambda z: f(z)[i], x, step) for i in range(f(x).size)])


def engine_grads(fn, arrays, upstream):
    """tensorlite's gradients of sum(fn(*tensors) * upstream) with respect to each array."""
    tensors = [tl.tensor(a, requires_grad=True) for a in arrays]
    fn(*tensors).backward(upstream)
    return [t.grad for t in tensors]


def close(*arrays, tol=1e-8):
    return all(np.allclose(arrays[0], a, atol=tol, rtol=0) for a in arrays[1:])


def np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_engine_sums_over_broadcast_axes_and_over_uses():
    b, y, g = rng.standard_normal(4), rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    db, = engine_grads(lambda t: t + tl.tensor(y), [b], g)
    assert close(db, g.sum(axis=(0, 1)), central_differences(lambda z: ((z + y) * g).sum(), b))
    x = rng.standard_normal(5)
    gx = rng.standard_normal(5)
    dx, = engine_grads(lambda t: t * t, [x], gx)              # one tensor, two uses: x * x
    assert close(dx, gx * x + x * gx, central_differences(lambda z: (z * z * gx).sum(), x))
    dx, = engine_grads(lambda t: t + t.tanh(), [x], gx)       # a residual branch: dx = dx_out + J_f^T dx_out
    assert close(dx, gx + (1 - np.tanh(x) ** 2) * gx, central_differences(lambda z: ((z + np.tanh(z)) * gx).sum(), x))


def test_linear():
    X, W, b, dY = rng.standard_normal((5, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4), \
        rng.standard_normal((5, 4))
    L = lambda X, W, b: ((X @ W.T + b) * dY).sum()            # noqa: E731
    dX, dW, db = dY @ W, dY.T @ X, dY.sum(axis=0)
    assert close(dX, central_differences(lambda z: L(z, W, b), X), engine_grads(F.linear, [X, W, b], dY)[0])
    assert close(dW, central_differences(lambda z: L(X, z, b), W), engine_grads(F.linear, [X, W, b], dY)[1])
    assert close(db, central_differences(lambda z: L(X, W, z), b), engine_grads(F.linear, [X, W, b], dY)[2])


def test_softmax_jacobian_vjp_and_zero_row_sums():
    x, dy = rng.standard_normal(5), rng.standard_normal(5)
    y = np_softmax(x)
    J = np.diag(y) - np.outer(y, y)                           # y_i (δ_ij - y_j), from the quotient rule
    assert close(J, jacobian(np_softmax, x)) and close(J, J.T)
    dx = y * (dy - (dy * y).sum())
    assert close(dx, J.T @ dy, J @ dy, central_differences(lambda z: (np_softmax(z) * dy).sum(), x))
    assert close(dx, engine_grads(lambda t: F.softmax(t, dim=-1), [x], dy)[0]) and abs(dx.sum()) < 1e-15
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(np.float32(89))) and np.isfinite(np_softmax(np.float32([1e4, 0])).sum())


def test_log_softmax_and_cross_entropy():
    x, dy = rng.standard_normal(5), rng.standard_normal(5)
    log_softmax = lambda z: z - np.log(np.exp(z).sum())       # noqa: E731
    s = np_softmax(x)
    J = np.eye(5) - np.outer(np.ones(5), s)                   # δ_ij - softmax(x)_j: not symmetric
    assert close(J, jacobian(log_softmax, x)) and not close(J, J.T)
    dx = dy - s * dy.sum()
    assert close(dx, J.T @ dy, central_differences(lambda z: (log_softmax(z) * dy).sum(), x))
    assert not close(dx, J @ dy)
    assert close(dx, engine_grads(lambda t: F.log_softmax(t, dim=-1), [x], dy)[0])
    target = 2
    onehot = np.eye(5)[target]
    minus = -onehot - s * (-onehot).sum()                     # dy = -onehot(target) gives softmax - onehot ...
    assert close(minus, s - onehot, central_differences(lambda z: -log_softmax(z)[target], x))
    assert abs((s - onehot).sum()) < 1e-15
    assert close(onehot - s * onehot.sum(), onehot - s)       # ... and dy = +onehot its negative
    logits, targets = rng.standard_normal((4, 5)), np.array([1, -1, 4, 1])   # row 1 ignored: N_valid = 3
    valid = targets != -1
    expected = (np_softmax(logits) - np.eye(5)[np.where(valid, targets, 0)]) * valid[:, None] / valid.sum()
    mean_loss = lambda z: -sum(log_softmax(z[r])[targets[r]] for r in range(4) if valid[r]) / valid.sum()  # noqa
    got, = engine_grads(lambda t: F.cross_entropy(t, targets, ignore_index=-1), [logits], np.float64(1.0))
    assert close(expected, got, central_differences(mean_loss, logits))


def np_layer_norm(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def test_layernorm_jacobian_vjp_and_checks():
    C, eps = 6, 1e-5
    x, w, b, dy = (rng.standard_normal(C), rng.standard_normal(C), rng.standard_normal(C), rng.standard_normal(C))
    mu, var = x.mean(), ((x - x.mean()) ** 2).mean()
    rstd = 1 / np.sqrt(var + eps)
    xhat = (x - mu) * rstd
    variance = lambda z: ((z - z.mean()) ** 2).mean()        # noqa: E731
    assert close(2 / C * (x - mu), central_differences(variance, x))            # mu's part drops out
    assert close(-rstd ** 3 * (x - mu) / C, central_differences(lambda z: 1 / np.sqrt(variance(z) + eps), x))
    J = rstd * (np.eye(C) - 1 / C) - rstd ** 3 * np.outer(x - mu, x - mu) / C
    assert close(J, rstd * (np.eye(C) - 1 / C - np.outer(xhat, xhat) / C), J.T)
    assert close(J, jacobian(lambda z: np_layer_norm(z, 1.0, 0.0, eps), x))
    dxhat = dy * w
    dx = rstd * (dxhat - dxhat.mean() - xhat * (dxhat * xhat).mean())
    L = lambda x, w, b: (np_layer_norm(x, w, b, eps) * dy).sum()   # noqa: E731
    got = engine_grads(lambda x, w, b: F.layer_norm(x, (C,), w, b, eps), [x[None], w, b], dy[None])
    assert close(dx, central_differences(lambda z: L(z, w, b), x), got[0][0])
    assert close(dy * xhat, central_differences(lambda z: L(x, z, b), w), got[1])
    assert close(dy, central_differences(lambda z: L(x, w, z), b), got[2])
    assert abs(dx.sum()) < 1e-12
    assert close((dx * xhat).sum(), rstd * (dxhat * xhat).sum() * eps / (var + eps), tol=1e-14)
    assert abs((dx * xhat).sum()) > 1e-12                     # eps breaks the scale invariance, a little
    rstd0 = 1 / np.sqrt(var)                                  # eps = 0: stretching a row changes nothing
    xhat0 = (x - mu) * rstd0
    dx0 = rstd0 * (dxhat - dxhat.mean() - xhat0 * (dxhat * xhat0).mean())
    assert abs((dx0 * xhat0).sum()) < 1e-12


def test_layernorm_uses_the_biased_variance_unlike_tensor_var():
    x = tl.tensor(rng.standard_normal((3, 6)))
    y = F.layer_norm(x, x.shape[-1:], eps=1e-5).numpy()
    for correction, same in ((0, True), (1, False)):
        by_hand = (x - x.mean(-1, True)) / (x.var(-1, keepdim=True, correction=correction) + 1e-5) ** 0.5
        assert np.allclose(y, by_hand.numpy(), atol=1e-12) == same


def test_gelu_two_tanh_forms_the_identity_and_the_exact_form():
    x = np.linspace(-4, 4, 17)
    u_prime = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x ** 2)
    t = np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))
    h = 0.5 * (1 + t)
    assert close(1 - t ** 2, 4 * h * (1 - h), tol=1e-15)
    tanh_u = lambda z: np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3))   # noqa: E731
    assert close((1 - t ** 2) * u_prime, central_differences(lambda z: tanh_u(z).sum(), x))
    kernel_form = 0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * u_prime
    saved_h_form = h * (1 + 2 * x * (1 - h) * u_prime)
    y = lambda z: 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))   # noqa: E731
    ones = np.ones_like(x)
    assert close(kernel_form, saved_h_form, central_differences(lambda z: y(z).sum(), x),
                 engine_grads(lambda z: F.gelu(z, approximate="tanh"), [x], ones)[0])
    Phi = 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x]))
    phi = np.exp(-x ** 2 / 2) / math.sqrt(2 * math.pi)
    exact = lambda z: sum(v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in z)   # noqa: E731
    assert close(Phi + x * phi, central_differences(exact, x),
                 engine_grads(lambda z: F.gelu(z, approximate="none"), [x], ones)[0])


def attention_by_the_formulas(Q, K, V, dO, keep=None):
    """The attention section's backward with the code's mask (j <= i + T_k - T) and Δ = rowsum(dO * O)."""
    T, T_k = Q.shape[0], K.shape[0]
    M = np.where(np.arange(T_k)[None, :] <= np.arange(T)[:, None] + (T_k - T), 0.0, -np.inf)
    P = np_softmax(Q @ K.T / np.sqrt(Q.shape[1]) + M)
    A = P if keep is None else P * keep
    O = A @ V
    dV = A.T @ dO
    dP = dO @ V.T if keep is None else (dO @ V.T) * keep
    assert close((dP * P).sum(axis=-1), (dO * O).sum(axis=-1))        # the identity joining the two forms
    dS = P * (dP - (dO * O).sum(axis=-1, keepdims=True))
    return O, dS @ K / np.sqrt(Q.shape[1]), dS.T @ Q / np.sqrt(Q.shape[1]), dV, dS


@pytest.mark.parametrize("T,T_k", [(4, 4), (2, 5)])    # (2, 5): two new queries against a KV cache of three
def test_attention_with_the_codes_mask_and_rowsum(T, T_k):
    D = 3
    Q, K, V, dO = rng.standard_normal((T, D)), rng.standard_normal((T_k, D)), rng.standard_normal((T_k, D)), \
        rng.standard_normal((T, D))
    _, dQ, dK, dV, dS = attention_by_the_formulas(Q, K, V, dO)
    L = lambda Q, K, V: (attention_by_the_formulas(Q, K, V, dO)[0] * dO).sum()   # noqa: E731
    got = engine_grads(lambda *t: F.scaled_dot_product_attention(*t, is_causal=True),
                       [a[None, None] for a in (Q, K, V)], dO[None, None])
    for mine, i, argument in ((dQ, 0, Q), (dK, 1, K), (dV, 2, V)):
        cd = central_differences(lambda z: L(*[z if j == i else a for j, a in enumerate((Q, K, V))]), argument)
        assert close(mine, cd, got[i][0, 0])
    assert np.abs(dS.sum(axis=-1)).max() < 1e-12 and np.abs(dK.sum(axis=0)).max() < 1e-12
    assert np.all(dS[np.arange(T_k)[None, :] > np.arange(T)[:, None] + (T_k - T)] == 0)


def test_unscaled_scores_have_variance_d():
    D = 16
    q, k = rng.standard_normal((2, 20000, D))
    assert abs((q * k).sum(axis=1).var() / D - 1) < 0.05
    assert abs(((q * k).sum(axis=1) / np.sqrt(D)).var() - 1) < 0.05


def test_attention_dropout_backward_and_rowsum_identity():
    T, D = 4, 3
    Q, K, V, dO = (rng.standard_normal((T, D)) for _ in range(4))
    keep = (rng.random((T, T)) >= 0.3) / 0.7                  # fixed multipliers: 0 or 1 / (1 - p)
    _, dQ, dK, dV, _ = attention_by_the_formulas(Q, K, V, dO, keep)
    L = lambda Q, K, V: (attention_by_the_formulas(Q, K, V, dO, keep)[0] * dO).sum()   # noqa: E731
    assert close(dQ, central_differences(lambda z: L(z, K, V), Q))
    assert close(dK, central_differences(lambda z: L(Q, z, V), K))
    assert close(dV, central_differences(lambda z: L(Q, K, z), V))


def test_residual_dropout_backward_masks_the_branch_only():
    x, r, g = (rng.standard_normal((3, 5)) for _ in range(3))

    def run(x, r):
        tl.manual_seed(0)                                     # the same mask each call
        return F.dropout_add(x, r, p=0.4)

    y = run(tl.tensor(x), tl.tensor(r)).numpy()
    keep = (y - r) / x                                        # the multipliers forward applied
    assert set(np.round(np.unique(keep), 12)) <= {0.0, round(1 / 0.6, 12)}
    dx, dr = engine_grads(run, [x, r], g)
    L = lambda x, r: (run(tl.tensor(x), tl.tensor(r)).numpy() * g).sum()   # noqa: E731
    assert close(dx, g * keep, central_differences(lambda z: L(z, r), x))
    assert close(dr, g, central_differences(lambda z: L(x, z), r))


def online_softmax(s, v, keep, tile=2):
    """The flash section's recurrences for one query row, tile by tile: (O, lse)."""
    m, l, acc = -np.inf, 0.0, np.zeros(v.shape[1])
    for start in range(0, len(s), tile):
        s_tile, keep_tile, v_tile = s[start:start + tile], keep[start:start + tile], v[start:start + tile]
        m_new = max(m, s_tile.max())
        l = l * np.exp(m - m_new) + np.exp(s_tile - m_new).sum()                      # every key, kept or not
        acc = acc * np.exp(m - m_new) + (np.exp(s_tile - m_new) * keep_tile) @ v_tile    # only the kept ones
        m = m_new
    return acc / l, m + np.log(l)


def test_online_softmax_rescaling_is_exact_and_lse_recovers_p():
    s, v = rng.standard_normal(7) * 3, rng.standard_normal((7, 3))
    s[0] = -50.0                                              # the max grows tile after tile
    P = np_softmax(s)
    for keep in (np.ones(7), (rng.random(7) >= 0.3) / 0.7):
        O, lse = online_softmax(s, v, keep)
        assert close(O, (P * keep) @ v, tol=1e-14)
        assert close(np.exp(s - lse), P, tol=1e-15)


def test_nine_primitive_nodes_against_two():
    B, T, H, D = 1, 3, 2, 2
    C = H * D

    def count_ops(y):
        return tl.viz.to_dot(y).count("shape=ellipse")

    x = tl.randn(B, T, 3 * C, requires_grad=True)
    q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in x.split(C, dim=2))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
    assert count_ops(y) == 9 + 1                              # + the attention itself
    y = F.merge_heads(F.scaled_dot_product_attention(*F.split_heads(x, H), is_causal=True))
    assert count_ops(y) == 2 + 1


def test_embedding_weight_tying_and_position_embedding():
    B, T, C, vocab = 2, 3, 4, 5
    idx = np.array([[1, 3, 1], [0, 1, 3]])                   # id 1 three times, id 3 twice
    targets = np.array([3, 0, 2, 1, 4, 4])
    wte, wpe = rng.standard_normal((vocab, C)), rng.standard_normal((T + 2, C))   # two positions unused

    def gpt_ends(wte, wpe, retained=None):
        tok = F.embedding(idx, wte).retain_grad()
        x = (tok + F.embedding(np.arange(T), wpe)).retain_grad()           # pos (T, C) broadcast over B
        x_f = F.layer_norm(x, (C,))
        logits = F.linear(x_f.reshape(B * T, C), wte).retain_grad()         # lm_head shares wte
        if retained is not None:
            retained.update(tok=tok, x=x, x_f=x_f, logits=logits)
        return F.cross_entropy(logits, targets)

    leaves, retained = [tl.tensor(wte, requires_grad=True), tl.tensor(wpe, requires_grad=True)], {}
    gpt_ends(*leaves, retained=retained).backward()
    dtok, dx, dlogits = (retained[name].grad.numpy() for name in ("tok", "x", "logits"))
    dwte, dwpe = (leaf.grad.numpy() for leaf in leaves)
    scatter = np.zeros_like(wte)
    np.add.at(scatter, idx.reshape(-1), dtok.reshape(-1, C))
    assert close(dwte, scatter + dlogits.T @ retained["x_f"].numpy().reshape(B * T, C))
    assert close(dwpe[:T], dx.sum(axis=0)) and np.all(dwpe[T:] == 0)
    assert tl.gradcheck(lambda a, b: gpt_ends(a, b), [tl.tensor(wte, requires_grad=True),
                                                      tl.tensor(wpe, requires_grad=True)])
