"""The idiom census: everyday lines of "Zero to Hero" (micrograd, makemore 1-4, "Let's build GPT") and of nanoGPT
(model.py, train.py, sample.py), each a short snippet whose last line is its result, as a notebook cell shows it.

`expect` is what PyTorch gives (the parity test checks the table against torch itself where it is importable);
tensorlite must give the same. An idiom tensorlite spells the same but answers differently *on purpose* carries
`differs` ("<name>: <why>"; docs/coming_from_pytorch.md gives the name and the why) and `tensorlite` (what it answers instead).
Snippets see `torch`, `nn` and `F` (tensorlite's or PyTorch's), and `math`, `np`, `inspect`, `os`, `tempfile`.
"""
import ast
import inspect
import math
import os
import tempfile
import textwrap
from dataclasses import dataclass

import numpy as np

INF = float("inf")


# ----------------------------------------------------------------------------- what a result is expected to be
@dataclass(frozen=True)
class T:
    """A tensor with these values (nested lists) and this dtype."""
    values: object
    dtype: str = "float32"


@dataclass(frozen=True)
class S:
    """A tensor of this shape and dtype, its values not compared (random draws)."""
    shape: tuple
    dtype: str = "float32"


@dataclass(frozen=True)
class Raises:
    """The snippet raises an exception whose message matches this regular expression (case-insensitive)."""
    pattern: str


@dataclass(frozen=True)
class Idiom:
    id: str
    source: str
    code: str
    expect: object
    differs: str = None      # why tensorlite answers otherwise, on purpose
    tensorlite: object = None  # what it answers instead


def I(id, source, code, expect, differs=None, tensorlite=None):  # noqa: E741 (the table reads better short)
    return Idiom(id, source, textwrap.dedent(code).strip(), expect, differs, tensorlite)


# ----------------------------------------------------------------------------- running and comparing
@dataclass(frozen=True)
class Tensorish:
    shape: tuple
    dtype: str
    values: object


def namespace(framework):
    if framework == "torch":
        import torch
        return dict(torch=torch, nn=torch.nn, F=torch.nn.functional, math=math, np=np, inspect=inspect, os=os,
                    tempfile=tempfile)
    import tensorlite
    return dict(torch=tensorlite, nn=tensorlite.nn, F=tensorlite.functional, math=math, np=np, inspect=inspect,
                os=os, tempfile=tempfile)


def run(idiom, framework):
    """The value of the snippet's last line (None if it is a statement), run in a fresh namespace of `framework`."""
    tree = ast.parse(idiom.code)
    *body, last = tree.body
    if not isinstance(last, ast.Expr):       # a statement: run it too; the result is None
        body, last = tree.body, ast.parse("None").body[0]
    ns = namespace(framework)
    exec(compile(ast.Module(body, type_ignores=[]), f"<idiom {idiom.id}>", "exec"), ns)
    return eval(compile(ast.Expression(last.value), f"<idiom {idiom.id}>", "eval"), ns)


def dtype_name(d):
    text = str(d)
    if text.startswith("torch."):
        return text[len("torch."):]
    return np.dtype(d).name


def is_dtype(x):
    return (isinstance(x, type) and issubclass(x, np.generic)) or isinstance(x, np.dtype) or \
        (type(x).__name__ == "dtype" and str(x).startswith("torch."))


def normalize(x):
    """Both frameworks' results in one vocabulary: tensors and arrays -> Tensorish, dtypes -> names, sequences ->
    tuples, NumPy scalars -> Python ones."""
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, np.generic):
        return x.item()
    if is_dtype(x):
        return dtype_name(x)
    if hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "tolist"):
        return Tensorish(tuple(int(n) for n in x.shape), dtype_name(x.dtype), np.asarray(x.tolist()))
    if isinstance(x, (tuple, list)):
        return tuple(normalize(v) for v in x)
    if isinstance(x, dict):
        return {k: normalize(v) for k, v in x.items()}
    raise TypeError(f"no comparison for a result of type {type(x).__name__}")


def _close(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)


def mismatch(expected, got, values=True):
    """None when `got` (normalized) is what `expected` says, else a one-line reason. values=False compares only
    the shapes and dtypes of tensors (two frameworks' random draws)."""
    if isinstance(expected, (T, S)):
        if not isinstance(got, Tensorish):
            return f"expected a tensor, got {got!r}"
        shape = np.asarray(expected.values).shape if isinstance(expected, T) else tuple(expected.shape)
        if got.shape != shape or got.dtype != expected.dtype:
            return f"expected shape {shape} {expected.dtype}, got shape {got.shape} {got.dtype}"
        if values and isinstance(expected, T) and not _close(expected.values, got.values):
            return f"expected values {expected.values}, got {got.values.tolist()}"
        return None
    if isinstance(expected, Tensorish):        # one framework's result against the other's
        return mismatch(T(expected.values.tolist(), expected.dtype) if values else S(expected.shape, expected.dtype),
                        got, values)
    if isinstance(expected, tuple):
        if not isinstance(got, tuple) or len(got) != len(expected):
            return f"expected {len(expected)} results, got {got!r}"
        return next((m for e, g in zip(expected, got) for m in [mismatch(e, g, values)] if m), None)
    if isinstance(expected, bool) or isinstance(got, bool) or isinstance(expected, str):
        return None if type(got) is type(expected) and got == expected else f"expected {expected!r}, got {got!r}"
    if isinstance(expected, float):
        ok = isinstance(got, (int, float)) and math.isclose(got, expected, rel_tol=1e-5, abs_tol=1e-6)
        return None if ok else f"expected {expected!r}, got {got!r}"
    return None if got == expected else f"expected {expected!r}, got {got!r}"


def outcome(idiom, framework, expected):
    """None when running the idiom in `framework` gives `expected` (a value or a Raises), else why not."""
    if isinstance(expected, Raises):
        try:
            got = run(idiom, framework)
        except Exception as err:   # noqa: BLE001 (any exception is an answer; its message is what is checked)
            import re
            return None if re.search(expected.pattern, str(err), re.I) else \
                f"raised {type(err).__name__}: {err} (expected a message matching {expected.pattern!r})"
        return f"expected an error matching {expected.pattern!r}, got {got!r}"
    return mismatch(expected, normalize(run(idiom, framework)))


# ----------------------------------------------------------------------------- the table
M1, M2, M3, M4 = "makemore part 1", "makemore part 2", "makemore part 3", "makemore part 4"
MG, GD, BG, NG = "micrograd", "Let's build GPT", "bigram.py", "Let's build GPT, gpt.py"
NM, NT, NS = "nanoGPT model.py", "nanoGPT train.py", "nanoGPT sample.py"
BOOL = "bool"
TIED = textwrap.dedent("""
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(5, 3)
            self.lm_head = nn.Linear(3, 5, bias=False)
            self.wte.weight = self.lm_head.weight""").strip()     # nanoGPT's weight tying, in small

IDIOMS = [
    # --- making tensors
    I("tensor-long", BG, "torch.tensor([1, 2, 3], dtype=torch.long)", T([1, 2, 3], "int64")),
    I("tensor-floats-are-float32", GD, "torch.tensor([0.1, -0.2])", T([0.1, -0.2])),
    I("tensor-ints-are-int64", M2, "torch.tensor([[0, 0, 5], [0, 5, 13]])", T([[0, 0, 5], [0, 5, 13]], "int64")),
    I("Tensor-class-double", MG, "torch.Tensor([2.0]).double()", T([2.0], "float64")),
    I("zeros-tuple-int32", M1, "torch.zeros((2, 3), dtype=torch.int32)", T([[0] * 3] * 2, "int32")),
    I("zeros-long-context", BG, "torch.zeros((1, 1), dtype=torch.long, device='cpu')", T([[0]], "int64")),
    I("zeros-like", M4, "torch.zeros_like(torch.ones(2, 3))", T([[0.0] * 3] * 2)),
    I("ones-like", M4, "torch.ones_like(torch.zeros(2, dtype=torch.float64))", T([1.0, 1.0], "float64")),
    I("arange-long-device", NM, "torch.arange(0, 5, dtype=torch.long, device='cpu')", T([0, 1, 2, 3, 4], "int64")),
    I("arange-float", GD, "torch.arange(4.)", T([0.0, 1.0, 2.0, 3.0])),
    I("linspace", M2, "torch.linspace(-3, 0, 4)", T([-3.0, -2.0, -1.0, 0.0])),
    I("rpow-linspace", M2, "lre = torch.linspace(-3, 0, 4)\nlrs = 10**lre\nlrs", T([0.001, 0.01, 0.1, 1.0])),
    I("randn-generator", M2, """
        g = torch.Generator().manual_seed(2147483647)
        torch.randn((27, 10), generator=g)""", S((27, 10))),
    I("generator-reproducible", M2, """
        g = torch.Generator().manual_seed(42)
        a = torch.randn(3, generator=g)
        g = torch.Generator().manual_seed(42)
        torch.equal(a, torch.randn(3, generator=g))""", True),
    I("manual-seed-reproducible", NT, """
        torch.manual_seed(1337)
        a = torch.randn(2, 3)
        torch.manual_seed(1337)
        torch.allclose(a, torch.randn(2, 3))""", True),
    I("rand-generator-normalized", M1, """
        g = torch.Generator().manual_seed(2147483647)
        p = torch.rand(3, generator=g)
        p = p / p.sum()
        (p.shape, round(p.sum().item(), 5), bool((p > 0).all()))""", ((3,), 1.0, True)),
    I("randint-high-size", BG, """
        ix = torch.randint(100 - 8, (32,))
        (ix.shape, ix.dtype, ix.min().item() >= 0, ix.max().item() < 92)""", ((32,), "int64", True, True)),
    I("randint-low-high-generator", M2, """
        g = torch.Generator().manual_seed(2147483647)
        ix = torch.randint(0, 10, (32,), generator=g)
        (ix.shape, ix.min().item() >= 0, ix.max().item() < 10)""", ((32,), True, True)),
    I("randint-float", GD, "torch.randint(0, 10, (3, 2)).float().dtype", "float32"),
    I("randperm", "makemore (makemore.py)", "sorted(torch.randperm(5).tolist())", (0, 1, 2, 3, 4)),
    I("from-numpy", NT, "torch.from_numpy(np.arange(3).astype(np.int64))", T([0, 1, 2], "int64")),
    I("from-numpy-shares-memory", NT, """
        a = np.zeros(3, dtype=np.float32)
        t = torch.from_numpy(a)
        a[0] = 5
        t[0].item()""", 5.0),
    I("dtype-names", NS, "(torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.long, "
      "torch.bool)", ("float32", "float64", "float16", "int64", "int32", "int64", "bool")),
    I("dtype-aliases", NT, "(torch.float, torch.double, torch.int)", ("float32", "float64", "int32")),
    I("dtype-compare", M2, "(torch.tensor([1, 2]).dtype == torch.long, torch.ones(1).dtype == torch.float32)",
      (True, True)),

    # --- attributes and conversions
    I("shape", M2, "torch.zeros(2, 3).shape", (2, 3)),
    I("size", NM, "torch.zeros(2, 3, 4).size()", (2, 3, 4)),
    I("size-dim", NM, "torch.zeros(2, 3, 4).size(-1)", 4),
    I("size-unpack", NM, "B, T, C = torch.zeros(2, 3, 4).size()\n(B, T, C)", (2, 3, 4)),
    I("numel", NM, "torch.zeros(2, 3).numel()", 6),
    I("nelement", M2, "sum(p.nelement() for p in [torch.zeros(27, 10), torch.zeros(30)])", 300),
    I("dim", NM, "(torch.zeros(2, 3).dim(), torch.zeros(3).dim() >= 2)", (2, False)),
    I("ndim", M3, "torch.zeros(2, 3).ndim", 2),
    I("len", BG, "data = torch.arange(10)\nn = int(0.9*len(data))\n(n, data[:n].shape, data[n:].tolist())",
      (9, (9,), (9,))),
    I("tuple-shape", M3, "tuple(torch.zeros(2, 3).shape)", (2, 3)),
    I("item", M4, "torch.tensor([[3.5]]).item()", 3.5),
    I("tolist", BG, "torch.tensor([[1, 2], [3, 4]])[0].tolist()", (1, 2)),
    I("float", M1, "torch.tensor([1, 2]).float()", T([1.0, 2.0])),
    I("long", NT, "torch.tensor([1.7, 2.2]).long()", T([1, 2], "int64")),
    I("int", M1, "torch.tensor([1.7]).int()", T([1], "int32")),
    I("bool", M3, "torch.tensor([0, 2]).bool()", T([False, True], BOOL)),
    I("to-dtype", NT, "torch.ones(2).to(torch.float64)", T([1.0, 1.0], "float64")),
    I("to-device-is-self", BG, "x = torch.ones(2)\nx.to('cpu') is x", True),
    I("device-str", NM, "str(torch.ones(2).device)", "cpu"),
    I("cuda-is-available", BG, "isinstance(torch.cuda.is_available(), bool)", True),
    I("device-choice", BG, """
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
        torch.zeros(1, device=device).sum().item()""", 0.0),
    I("leaf-and-requires-grad", M2, """
        W = torch.randn((3, 3), requires_grad=True)
        (W.is_leaf, W.requires_grad, (W * 2).is_leaf, (W * 2).requires_grad)""", (True, True, False, True)),
    I("format-spec", NT, "loss = torch.tensor(2.34567)\nf\"{loss:.4f}\"", "2.3457"),
    I("percent-format", M3, "'%.2f' % torch.tensor(1.2345)", "1.23"),
    I("float-int-of-tensor", M1, "(float(torch.tensor(2.5)), int(torch.tensor(3)))", (2.5, 3)),
    I("tensor-indexes-a-list", M1, "['a', 'b', 'c'][torch.tensor(2)]", "c"),
    I("iterate-tensor", BG, "[int(i) for i in torch.tensor([3, 1])]", (3, 1)),

    # --- shapes
    I("view-transpose-heads", NM, """
        x = torch.arange(24.).view(1, 4, 6)
        B, T, C = x.size()
        k = x.view(B, T, 2, C // 2).transpose(1, 2)
        (k.shape, k[0, 1, 2].tolist())""", ((1, 2, 4, 3), (15.0, 16.0, 17.0))),
    I("transpose-2d-swaps", "issue 20", "torch.tensor([[1, 2, 3], [4, 5, 6]]).transpose(0, 1)",
      T([[1, 4], [2, 5], [3, 6]], "int64")),
    I("transpose-last-two", NM, "torch.arange(6.).view(1, 2, 3).transpose(-2, -1).shape", (1, 3, 2)),
    I("T", M4, "torch.tensor([[1, 2], [3, 4]]).T", T([[1, 3], [2, 4]], "int64")),
    I("mT", NM, "torch.zeros(2, 3, 4).mT.shape", (2, 4, 3)),
    I("permute", NM, "torch.zeros(2, 3, 4).permute(2, 0, 1).shape", (4, 2, 3)),
    I("contiguous-view", NM, "torch.arange(6).view(2, 3).transpose(0, 1).contiguous().view(6)",
      T([0, 3, 1, 4, 2, 5], "int64")),
    I("view-minus-one", NM, "logits = torch.zeros(2, 3, 5)\nlogits.view(-1, logits.size(-1)).shape", (6, 5)),
    I("view-BT-C", BG, "logits = torch.zeros(4, 8, 65)\nB, T, C = logits.shape\nlogits.view(B*T, C).shape",
      (32, 65)),
    I("view-concat-emb", M2, "emb = torch.zeros(32, 3, 10)\nemb.view(emb.shape[0], -1).shape", (32, 30)),
    I("reshape", M2, "torch.arange(6).reshape(3, 2)", T([[0, 1], [2, 3], [4, 5]], "int64")),
    I("flatten", NM, "x = torch.zeros(2, 3, 4)\n(x.flatten().shape, x.flatten(1).shape)", ((24,), (2, 12))),
    I("unsqueeze-squeeze", GD, """
        (torch.zeros(3).unsqueeze(0).shape, torch.zeros(1, 3, 1).squeeze().shape,
         torch.zeros(1, 3, 1).squeeze(-1).shape)""", ((1, 3), (3,), (1, 3))),
    I("none-ellipsis", NS, "torch.tensor([1, 2, 3], dtype=torch.long, device='cpu')[None, ...]",
      T([[1, 2, 3]], "int64")),
    I("list-index-keeps-dim", NM, "torch.arange(24.).view(2, 3, 4)[:, [-1], :].shape", (2, 1, 4)),
    I("last-time-step", BG, "torch.arange(24.).view(2, 3, 4)[:, -1, :]",
      T([[8.0, 9.0, 10.0, 11.0], [20.0, 21.0, 22.0, 23.0]])),
    I("crop-context", NG, "block_size = 4\ntorch.arange(10).view(1, 10)[:, -block_size:]", T([[6, 7, 8, 9]], "int64")),
    I("split-dim", NM, """
        q, k, v = torch.arange(12.).view(1, 2, 6).split(2, dim=2)
        (q.shape, v[0, 1].tolist())""", ((1, 2, 2), (10.0, 11.0))),
    I("chunk", NT, "torch.arange(6).chunk(3)", (T([0, 1], "int64"), T([2, 3], "int64"), T([4, 5], "int64"))),
    I("cat-dim1", BG, """
        idx = torch.zeros((1, 2), dtype=torch.long)
        idx_next = torch.ones((1, 1), dtype=torch.long)
        torch.cat((idx, idx_next), dim=1)""", T([[0, 0, 1]], "int64")),
    I("cat-list-last-dim", NG, "torch.cat([torch.ones(2, 3), torch.zeros(2, 1)], dim=-1).shape", (2, 4)),
    I("stack-slices-at-tensor-offsets", BG, """
        data = torch.arange(20)
        ix = torch.tensor([0, 5])
        torch.stack([data[i:i+3] for i in ix])""", T([[0, 1, 2], [5, 6, 7]], "int64")),
    I("numpy-slice-at-tensor-offset", NT, """
        data = np.arange(10, dtype=np.uint16)
        ix = torch.randint(len(data) - 2, (4,))
        x = torch.stack([torch.from_numpy((data[i:i+2]).astype(np.int64)) for i in ix])
        (x.shape, x.dtype, bool((x[:, 1] - x[:, 0] == 1).all()))""", ((4, 2), "int64", True)),

    # --- reductions
    I("sum-keepdim", M1, "torch.tensor([[1., 2.], [3., 4.]]).sum(1, keepdim=True)", T([[3.0], [7.0]])),
    I("sum-keepdims-alias", M1, "torch.tensor([[1., 2.], [3., 4.]]).sum(1, keepdims=True)", T([[3.0], [7.0]])),
    I("sum-dim0", M4, "torch.tensor([[1., 2.], [3., 4.]]).sum(0)", T([4.0, 6.0])),
    I("sum-dim-keyword", NM, "torch.tensor([[1., 2.], [3., 4.]]).sum(dim=-1)", T([3.0, 7.0])),
    I("sum-all", M1, "torch.tensor([[1., 2.], [3., 4.]]).sum()", T(10.0)),
    I("torch-sum", GD, "a = torch.tensor([[1., 3.], [2., 2.]])\na / torch.sum(a, 1, keepdim=True)",
      T([[0.25, 0.75], [0.5, 0.5]])),
    I("mean-keepdim", M3, "torch.tensor([[1., 2.], [3., 4.]]).mean(0, keepdim=True)", T([[2.0, 3.0]])),
    I("torch-mean", GD, "torch.mean(torch.tensor([[1., 2.], [3., 4.]]), 0)", T([2.0, 3.0])),
    I("var-unbiased-default", GD, "torch.tensor([1., 2., 3., 4.]).var()", T(5 / 3)),
    I("var-keepdim", M3, "torch.tensor([[1., 2.], [3., 6.]]).var(0, keepdim=True)", T([[2.0, 8.0]])),
    I("var-unbiased-keyword", M4, "torch.tensor([[1., 2.], [3., 6.]]).var(0, keepdim=True, unbiased=True)",
      T([[2.0, 8.0]])),
    I("std-unbiased-default", M3, "torch.tensor([1., 2., 3., 4.]).std()", T(math.sqrt(5 / 3))),
    I("std-keepdim", M3, "torch.tensor([[1., 2.], [3., 6.]]).std(0, keepdim=True)", T([[math.sqrt(2), math.sqrt(8)]])),
    I("max-values", M4, "torch.tensor([[1., 5.], [7., 2.]]).max(1, keepdim=True).values", T([[5.0], [7.0]])),
    I("max-indices", M4, "torch.tensor([[1., 5.], [7., 2.]]).max(1).indices", T([1, 0], "int64")),
    I("max-unpack", M4, "v, i = torch.tensor([[1., 5.], [7., 2.]]).max(dim=1)\n(v, i)",
      (T([5.0, 7.0]), T([1, 0], "int64"))),
    I("max-all", M4, "torch.tensor([[1., 5.], [7., 2.]]).max()", T(7.0)),
    I("min-dim", M4, "torch.tensor([[1., 5.], [7., 2.]]).min(dim=0).values", T([1.0, 2.0])),
    I("argmax-dim", NS, "torch.tensor([[1., 5.], [7., 2.]]).argmax(dim=-1)", T([1, 0], "int64")),
    I("argmax-all", NS, "torch.tensor([[1., 5.], [7., 2.]]).argmax()", T(2, "int64")),
    I("abs-max-item", M4, "(torch.tensor([1., -3.]) - torch.tensor([0.5, 0.])).abs().max().item()", 3.0),

    # --- elementwise
    I("torch-tanh", M4, "torch.tanh(torch.tensor([0., 1.]))", T([0.0, math.tanh(1.0)])),
    I("torch-exp-log-sqrt", M1, "(torch.exp(torch.tensor([0.])), torch.log(torch.tensor([math.e])), "
      "torch.sqrt(torch.tensor([4.])))", (T([1.0]), T([1.0]), T([2.0]))),
    I("exp-log-methods", M1, "torch.tensor([0., 1.]).exp().log()", T([0.0, 1.0])),
    I("pow-minus-half", M4, "(torch.tensor([3.]) + 1e-5 * 0)**-0.5", T([3 ** -0.5])),
    I("pow-minus-one", M4, "torch.tensor([[2.], [4.]])**-1", T([[0.5], [0.25]])),
    I("rdiv", M4, "1.0 / torch.tensor([2., 4.])", T([0.5, 0.25])),
    I("log10", M3, "torch.tensor([100., 0.001]).log10()", T([2.0, -3.0])),
    I("log2", M3, "torch.tensor([8.]).log2()", T([3.0])),
    I("clamp-min", NT, "torch.tensor([-1., 2.]).clamp(min=0)", T([0.0, 2.0])),
    I("clamp-min-max", NT, "torch.tensor([-2., 0.5, 3.]).clamp(-1, 1)", T([-1.0, 0.5, 1.0])),
    I("torch-sigmoid", M3, "torch.sigmoid(torch.tensor([0.]))", T([0.5])),
    I("F-relu", NG, "F.relu(torch.tensor([-1., 2.]))", T([0.0, 2.0])),
    I("saturation-percent", M3, "t = torch.tensor([0.5, 0.99, -0.98, 0.1])\n(t.abs() > 0.97).float().mean()*100",
      T(50.0)),
    I("scaled-scores", NG, "k = torch.ones(4, 8)\n(k @ k.transpose(-2, -1) * k.shape[-1]**-0.5)[0, 0].item()",
      8 * 8 ** -0.5),
    I("int-times-float-tensor", M4, "torch.tensor([1, 2]) * torch.tensor([0.5, 0.5])", T([0.5, 1.0])),
    I("int-true-division", GD, "torch.arange(4) / 2", T([0.0, 0.5, 1.0, 1.5])),
    I("int-times-python-float", M1, "torch.tensor([1, 2]) * 0.5", T([0.5, 1.0])),
    I("int-plus-int", M1, "torch.tensor([1, 2]) + 1", T([2, 3], "int64")),

    # --- masks and triangles
    I("tril", GD, "torch.tril(torch.ones(3, 3))", T([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])),
    I("triu-diagonal", GD, "torch.triu(torch.ones(3, 3), diagonal=1)",
      T([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])),
    I("tril-buffer-view", NM, "torch.tril(torch.ones(4, 4)).view(1, 1, 4, 4)[:, :, :2, :2]",
      T([[[[1.0, 0.0], [1.0, 1.0]]]])),
    I("masked-fill-softmax", GD, """
        T = 3
        tril = torch.tril(torch.ones(T, T))
        wei = torch.zeros((T,T))
        wei = wei.masked_fill(tril == 0, float('-inf'))
        F.softmax(wei, dim=-1)""", T([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])),
    I("weighted-average-matmul", GD, """
        wei = torch.tril(torch.ones(3, 3))
        wei = wei / wei.sum(1, keepdim=True)
        wei @ torch.tensor([[1.], [2.], [3.]])""", T([[1.0], [1.5], [2.0]])),
    I("eq-gives-bool", M4, "torch.tensor([1, 2]) == torch.tensor([1, 3])", T([True, False], BOOL)),
    I("torch-where", NT, "torch.where(torch.tensor([True, False]), torch.tensor([1., 2.]), torch.tensor([3., 4.]))",
      T([1.0, 4.0])),
    I("all-any", M4, "(torch.all(torch.tensor([1., 2.]) == torch.tensor([1., 2.])).item(), "
      "torch.any(torch.tensor([False, True])).item())", (True, True)),
    I("allclose", M4, "(torch.allclose(torch.tensor([1.0]), torch.tensor([1.0 + 1e-7])), "
      "torch.allclose(torch.tensor([1.0]), torch.tensor([1.1])))", (True, False)),
    I("equal", GD, "(torch.equal(torch.tensor([1, 2]), torch.tensor([1, 2])), "
      "torch.equal(torch.tensor([1, 2]), torch.tensor([1, 3])))", (True, False)),
    I("boolean-mask-assign", NM, "logits = torch.tensor([[1., 3., 2.]])\nlogits[logits < 2.5] = -float('Inf')\nlogits",
      T([[-INF, 3.0, -INF]])),

    # --- indexing and writing into tensors
    I("embedding-lookup", M2, "C = torch.arange(6.).view(3, 2)\nC[torch.tensor([[0, 2], [1, 1]])]",
      T([[[0.0, 1.0], [4.0, 5.0]], [[2.0, 3.0], [2.0, 3.0]]])),
    I("pick-arange-rows", M2, """
        prob = torch.tensor([[0.1, 0.9], [0.8, 0.2]])
        Y = torch.tensor([1, 0])
        -prob[torch.arange(2), Y].log().mean()""", T(-(math.log(0.9) + math.log(0.8)) / 2)),
    I("pick-range-rows", M4, """
        logprobs = torch.tensor([[-1., -2.], [-3., -4.]])
        Yb = torch.tensor([1, 0])
        -logprobs[range(2), Yb].mean()""", T(2.5)),
    I("setitem-range-rows", M4, """
        n = 2
        dlogprobs = torch.zeros(2, 3)
        dlogprobs[range(n), torch.tensor([2, 0])] = -1.0/n
        dlogprobs""", T([[0.0, 0.0, -0.5], [-0.5, 0.0, 0.0]])),
    I("setitem-item", BG, "losses = torch.zeros(3)\nfor k in range(3):\n    losses[k] = float(k)\nlosses.mean()",
      T(1.0)),
    I("count-pairs", M1, """
        N = torch.zeros((3, 3), dtype=torch.int32)
        for ix1, ix2 in [(0, 1), (0, 1), (2, 0)]:
            N[ix1, ix2] += 1
        N""", T([[0, 2, 0], [0, 0, 0], [1, 0, 0]], "int32")),
    I("setitem-scalar", M3, "x = torch.zeros(3)\nx[0] = 5.0\nx", T([5.0, 0.0, 0.0])),
    I("scatter-by-tensor-index", M4, """
        dC = torch.zeros(3, 2)
        demb = torch.ones(1, 2, 2)
        Xb = torch.tensor([[1, 1]])
        for k in range(Xb.shape[0]):
          for j in range(Xb.shape[1]):
            ix = Xb[k,j]
            dC[ix] += demb[k,j]
        dC""", T([[0.0, 0.0], [2.0, 2.0], [0.0, 0.0]])),
    I("divide-in-place", M4, "d = torch.tensor([2., 4.])\nd /= 2\nd", T([1.0, 2.0])),
    I("normalize-rows-in-place", M1, "P = (torch.tensor([[1, 3], [0, 1]])+1).float()\nP /= P.sum(1, keepdims=True)\nP",
      T([[1 / 3, 2 / 3], [1 / 3, 2 / 3]])),

    # --- sampling, sorting
    I("multinomial-shape", BG, """
        probs = F.softmax(torch.zeros(2, 5), dim=-1)
        idx_next = torch.multinomial(probs, num_samples=1)
        (idx_next.shape, idx_next.dtype)""", ((2, 1), "int64")),
    I("multinomial-certain", NM, "torch.multinomial(torch.tensor([[0., 0., 1.], [1., 0., 0.]]), num_samples=1)",
      T([[2], [0]], "int64")),
    I("multinomial-frequencies", M1, """
        g = torch.Generator().manual_seed(2147483647)
        s = torch.multinomial(torch.tensor([0.2, 0.8]), num_samples=4000, replacement=True, generator=g)
        (s.shape, abs(s.float().mean().item() - 0.8) < 0.03)""", ((4000,), True)),
    I("multinomial-item", M2, """
        g = torch.Generator().manual_seed(2147483647 + 10)
        ix = torch.multinomial(torch.tensor([[0.5, 0.5]]), num_samples=1, generator=g).item()
        ix in (0, 1)""", True),
    I("topk", NM, "v, ix = torch.topk(torch.tensor([[1., 5., 3., 4.]]), 2)\n(v, ix)",
      (T([[5.0, 4.0]]), T([[1, 3]], "int64"))),
    I("topk-crop", NM, """
        logits = torch.tensor([[1., 5., 3., 4.]])
        v, _ = torch.topk(logits, min(2, logits.size(-1)))
        logits[logits < v[:, [-1]]] = -float('Inf')
        logits""", T([[-INF, 5.0, -INF, 4.0]])),
    I("sort-descending", NS, "torch.sort(torch.tensor([3., 1., 2.]), descending=True)",
      (T([3.0, 2.0, 1.0]), T([0, 2, 1], "int64"))),
    I("argsort", NS, "torch.argsort(torch.tensor([3., 1., 2.]))", T([1, 2, 0], "int64")),
    I("cumsum", NS, "torch.cumsum(torch.tensor([0.5, 0.25, 0.25]), dim=-1)", T([0.5, 0.75, 1.0])),

    # --- functional
    I("softmax-dim", NM, "F.softmax(torch.tensor([[1., 2., 3.]]), dim=-1)",
      T([[0.09003057, 0.24472847, 0.66524096]])),
    I("softmax-positional-dim", M4, "F.softmax(torch.tensor([[1., 2., 3.]]), 1)",
      T([[0.09003057, 0.24472847, 0.66524096]])),
    I("torch-softmax", GD, "torch.softmax(torch.tensor([0.1, -0.2, 0.3, -0.2, 0.5]), dim=-1)",
      T([math.exp(v) / sum(math.exp(u) for u in (0.1, -0.2, 0.3, -0.2, 0.5)) for v in (0.1, -0.2, 0.3, -0.2, 0.5)])),
    I("log-softmax", M4, "F.log_softmax(torch.tensor([[0., 0.]]), dim=-1)", T([[-math.log(2)] * 2])),
    I("cross-entropy", BG, "F.cross_entropy(torch.tensor([[1., 2.], [3., 4.]]), torch.tensor([0, 1]))",
      T((math.log(1 + math.e) + math.log(1 + math.exp(-1))) / 2)),
    I("cross-entropy-ignores-minus-100", NM, "F.cross_entropy(torch.tensor([[1., 2.], [3., 4.]]), "
      "torch.tensor([0, -100]))", T(math.log(1 + math.e))),
    I("cross-entropy-ignore-index", NM, "F.cross_entropy(torch.tensor([[1., 2.], [3., 4.]]), torch.tensor([-1, 1]), "
      "ignore_index=-1)", T(math.log(1 + math.exp(-1)))),
    I("one-hot", M1, "F.one_hot(torch.tensor([0, 2]), num_classes=3)", T([[1, 0, 0], [0, 0, 1]], "int64")),
    I("one-hot-float", M1, "F.one_hot(torch.tensor([1]), num_classes=3).float()", T([[0.0, 1.0, 0.0]])),
    I("one-hot-times-float", M4, """
        logits = torch.tensor([[1., 5.], [7., 2.]])
        F.one_hot(logits.max(1).indices, num_classes=logits.shape[1]) * torch.tensor([[0.5], [2.]])""",
      T([[0.0, 0.5], [2.0, 0.0]])),
    I("gelu-exact-default", NM, "F.gelu(torch.tensor([1.0]))", T([0.8413447])),
    I("gelu-tanh", NM, "F.gelu(torch.tensor([1.0]), approximate='tanh')", T([0.8411920])),
    I("nn-GELU-exact", NM, "nn.GELU()(torch.tensor([1.0]))", T([0.8413447])),
    I("layer-norm-shape", GD, "F.layer_norm(torch.tensor([[1., 2., 3.]]), (3,))",
      T([[-1.2247357, 0.0, 1.2247357]])),
    I("layer-norm-weight-shape-no-bias", NM, """
        weight = torch.ones(3) * 2
        F.layer_norm(torch.tensor([[1., 2., 3.]]), weight.shape, weight, None, 1e-5)""",
      T([[-2.4494714, 0.0, 2.4494714]])),
    I("sdpa-causal-is-manual", NM, """
        q, k, v = ((torch.arange(24.).view(1, 2, 3, 4) * s - 1).tanh() for s in (0.1, 0.2, 0.3))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(torch.tril(torch.ones(3, 3)).view(1, 1, 3, 3) == 0, float('-inf'))
        torch.allclose(y, F.softmax(att, dim=-1) @ v, atol=1e-6)""", True),
    I("sdpa-bool-mask", NM, """
        q, k, v = ((torch.arange(24.).view(1, 2, 3, 4) * s - 2).tanh() for s in (0.3, 0.2, 0.1))
        mask = torch.tril(torch.ones(3, 3, dtype=torch.bool))
        torch.allclose(F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                       F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-6)""", True),
    I("sdpa-flash-check", NM, "hasattr(torch.nn.functional, 'scaled_dot_product_attention')", True),
    I("mse-loss", "issue 20", "F.mse_loss(torch.tensor([1., 2.]), torch.tensor([0., 0.]))",
      T(2.5)),
    I("dropout-eval-is-identity", NM, "d = nn.Dropout(0.5)\nd.eval()\ntorch.equal(d(torch.ones(4)), torch.ones(4))",
      True),

    # --- nn
    I("linear-shapes", NM, "lin = nn.Linear(3, 2)\n(lin.weight.shape, lin.bias.shape)", ((2, 3), (2,))),
    I("linear-no-bias", NM, "nn.Linear(3, 2, bias=False).bias is None", True),
    I("linear-batched", NM, "nn.Linear(3, 2)(torch.zeros(4, 5, 3)).shape", (4, 5, 2)),
    I("embedding", BG, "nn.Embedding(10, 4)(torch.tensor([[1, 2, 3]])).shape", (1, 3, 4)),
    I("nn-LayerNorm", NG, "nn.LayerNorm(3)(torch.tensor([[1., 2., 3.]]))", T([[-1.2247357, 0.0, 1.2247357]])),
    I("sequential-relu", NG, """
        net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1), nn.Dropout(0.0))
        net(torch.zeros(3, 2)).shape""", (3, 1)),
    I("sequential-star-identity", NG, "nn.Sequential(*[nn.Identity() for _ in range(3)])(torch.ones(2))",
      T([1.0, 1.0])),
    I("activation-modules", M3, "(nn.Tanh()(torch.tensor([0.])), nn.Sigmoid()(torch.tensor([0.])), "
      "nn.Softmax(dim=-1)(torch.tensor([0., 0.])))", (T([0.0]), T([0.5]), T([0.5, 0.5]))),
    I("flatten-module", "makemore part 5 (its own Flatten)", "nn.Flatten()(torch.zeros(2, 3, 4)).shape", (2, 12)),
    I("module-list-parameters", NG, """
        class MultiHead(nn.Module):
            def __init__(self):
                super().__init__()
                self.heads = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
        len(list(MultiHead().parameters()))""", 6),
    I("named-parameters", NM, """
        class GPT(nn.Module):
            def __init__(self):
                super().__init__()
                self.transformer = nn.ModuleDict(dict(wte = nn.Embedding(5, 2), h = nn.ModuleList([nn.Linear(2, 2)])))
        [pn for pn, p in GPT().named_parameters()]""", ("transformer.wte.weight", "transformer.h.0.weight",
                                                      "transformer.h.0.bias")),
    I("register-buffer", NG, """
        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer('tril', torch.tril(torch.ones(2, 2)))
        (list(Head().state_dict().keys()), len(list(Head().parameters())))""", (("tril",), 0)),
    I("buffer-stays-buffer", NM, """
        class Attn(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("bias", torch.tril(torch.ones(4, 4)).view(1, 1, 4, 4))
        attn = Attn()
        attn.bias = attn.bias[:,:,:2,:2]
        (list(attn.state_dict().keys()), attn.state_dict()['bias'].shape)""", (("bias",), (1, 1, 2, 2))),
    I("weight-tying-counted-once", NM, TIED + "\nt = Tied()\n"
      "(t.wte.weight is t.lm_head.weight, sum(p.numel() for p in t.parameters()))", (True, 15)),
    I("apply-init", NM, """
        def _init_weights(module):
            if isinstance(module, nn.Linear):
                torch.nn.init.zeros_(module.weight)
        net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
        (net.apply(_init_weights) is net, net[1].weight.abs().sum().item())""", (True, 0.0)),
    I("init-normal", NM, """
        w = torch.zeros(200, 100)
        (torch.nn.init.normal_(w, mean=0.0, std=0.02) is w, abs(w.std().item() - 0.02) < 0.001)""", (True, True)),
    I("init-zeros-keeps-parameter", NM, """
        lin = nn.Linear(2, 2)
        b = lin.bias
        torch.nn.init.zeros_(lin.bias)
        (lin.bias is b, lin.bias.tolist(), 'bias' in dict(lin.named_parameters()))""", (True, (0.0, 0.0), True)),
    I("init-ones", NM, "w = torch.zeros(2)\ntorch.nn.init.ones_(w)\nw", T([1.0, 1.0])),
    I("init-uniform", NM, """
        w = torch.zeros(1000)
        torch.nn.init.uniform_(w, -0.1, 0.1)
        (w.min().item() >= -0.1, w.max().item() <= 0.1, w.std().item() > 0.05)""", (True, True, True)),
    I("init-xavier-uniform", M3, """
        w = torch.zeros(50, 30)
        torch.nn.init.xavier_uniform_(w)
        (w.abs().max().item() <= math.sqrt(6 / 80), w.abs().max().item() > 0.9 * math.sqrt(6 / 80))""",
      (True, True)),
    I("init-kaiming-normal", M3, """
        w = torch.zeros(400, 100)
        torch.nn.init.kaiming_normal_(w)
        abs(w.std().item() - math.sqrt(2 / 100)) < 0.01""", True),
    I("train-eval-flags", BG, "m = nn.Sequential(nn.Dropout(0.1))\nm.eval()\n(m.training, m[0].training)",
      (False, False)),
    I("module-to-is-self", BG, "model = nn.Linear(2, 2)\nm = model.to('cpu')\nm is model", True),
    I("parameter", NM, "p = nn.Parameter(torch.ones(3))\n(p.requires_grad, isinstance(p, torch.Tensor))",
      (True, True)),
    I("load-state-dict", NS, """
        a, b = nn.Linear(2, 2), nn.Linear(2, 2)
        b.load_state_dict(a.state_dict())
        torch.equal(a.weight, b.weight)""", True),

    # --- autograd
    I("micrograd-neuron", MG, """
        x1 = torch.Tensor([2.0]).double()                ; x1.requires_grad = True
        x2 = torch.Tensor([0.0]).double()                ; x2.requires_grad = True
        w1 = torch.Tensor([-3.0]).double()               ; w1.requires_grad = True
        w2 = torch.Tensor([1.0]).double()                ; w2.requires_grad = True
        b = torch.Tensor([6.8813735870195432]).double()  ; b.requires_grad = True
        n = x1*w1 + x2*w2 + b
        o = torch.tanh(n)
        o.backward()
        (o.data.item(), x2.grad.item(), w2.grad.item(), x1.grad.item(), w1.grad.item())""",
      (0.7071067811865476, 0.5, 0.0, -1.5, 1.0)),
    I("retain-grad", M4, """
        a = torch.tensor([1., 2.], requires_grad=True)
        b = a * 3
        b.retain_grad()
        (b ** 2).sum().backward()
        b.grad""", T([6.0, 12.0])),
    I("leaf-grad", M1, "x = torch.tensor([1., 2., 3.], requires_grad=True)\n(x ** 2).sum().backward()\nx.grad",
      T([2.0, 4.0, 6.0])),
    I("grad-accumulates", M1, """
        x = torch.tensor([1., 2., 3.], requires_grad=True)
        (x ** 2).sum().backward()
        (x ** 2).sum().backward()
        x.grad""", T([4.0, 8.0, 12.0])),
    I("grad-set-to-none", M1, """
        W = torch.randn((2, 2), requires_grad=True)
        (W * 2).sum().backward()
        W.grad = None
        W.grad is None""", True),
    I("requires-grad-attribute", M2, """
        parameters = [torch.randn(3), torch.randn(2)]
        for p in parameters:
          p.requires_grad = True
        sum((p * 2).sum() for p in parameters).backward()
        parameters[0].grad""", T([2.0, 2.0, 2.0])),
    I("no-grad-block", M3, """
        x = torch.ones(2, requires_grad=True)
        with torch.no_grad():
            y = x * 2
        y.requires_grad""", False),
    I("no-grad-decorator", BG, """
        @torch.no_grad()
        def estimate(x):
            return x * 2
        estimate(torch.ones(2, requires_grad=True)).requires_grad""", False),
    I("detach", M4, "torch.ones(2, requires_grad=True).detach().requires_grad", False),
    I("requires-grad-underscore", NT, "torch.zeros(2).requires_grad_().requires_grad", True),
    I("grad-is-a-constant", MG, """
        x = torch.tensor(2.0, requires_grad=True)
        (x ** 3).backward()
        (x.grad.item(), x.grad.requires_grad)""", (12.0, False)),
    I("grad-statistics", M3, """
        x = torch.tensor([1., 2., 3.], requires_grad=True)
        (x * torch.tensor([1., 2., 4.])).sum().backward()
        (x.grad.std().item(), x.grad.mean().item(), x.grad.shape)""", (math.sqrt(7 / 3), 7 / 3, (3,))),
    I("update-to-data-ratio", M3, """
        p = torch.tensor([[1., 2., 3.], [4., 5., 6.]], requires_grad=True)
        (p * torch.tensor([[1., 0., 2.], [0., 3., 1.]])).sum().backward()
        lr = 0.1
        with torch.no_grad():
            ud = ((lr*p.grad).std() / p.data.std()).log10().item()
        ud""", math.log10(0.1 * np.std([1, 0, 2, 0, 3, 1], ddof=1) / np.std([1, 2, 3, 4, 5, 6], ddof=1)),
      differs=".data is the backend array: its std() is NumPy's, dividing by n, not n - 1",
      tensorlite=math.log10(0.1 * np.std([1, 0, 2, 0, 3, 1], ddof=1) / np.std([1, 2, 3, 4, 5, 6], ddof=0))),

    # --- in place
    I("no-grad-scale-keeps-parameter", M3, """
        layer = nn.Linear(2, 2)
        w = layer.weight
        before = w.tolist()
        with torch.no_grad():
            layer.weight *= 0.1
        (layer.weight is w, 'weight' in dict(layer.named_parameters()), layer.weight.requires_grad,
         torch.allclose(layer.weight, torch.tensor(before) * 0.1))""", (True, True, True, True)),
    I("sgd-by-hand-in-place", M2, """
        p = torch.ones(2, requires_grad=True)
        (p * 3).sum().backward()
        with torch.no_grad():
            p += -0.1 * p.grad
        (p, p.requires_grad, p.is_leaf)""", (T([0.7, 0.7]), True, True)),
    I("data-update", M1, """
        W = torch.ones(2, requires_grad=True)
        (W * 2).sum().backward()
        W.data += -50 * W.grad
        (W.tolist(), W.requires_grad)""", ((-99.0, -99.0), True)),
    I("zero-fill", NT, "x = torch.ones(3)\nx.zero_()\ny = torch.zeros(2)\ny.fill_(7.)\n(x, y)",
      (T([0.0, 0.0, 0.0]), T([7.0, 7.0]))),
    I("copy-into-parameter", NM, """
        lin = nn.Linear(2, 2)
        w = lin.weight
        with torch.no_grad():
            lin.weight.copy_(torch.ones(2, 2).t())
        (lin.weight is w, lin.weight.sum().item())""", (True, 4.0)),
    I("masked-fill-in-place", GD, "x = torch.zeros(3)\nx.masked_fill_(torch.tensor([True, False, True]), -1.0)\nx",
      T([-1.0, 0.0, -1.0])),
    I("normal-method", NM, "x = torch.zeros(1000)\n(x.normal_(0, 0.02) is x, abs(x.std().item() - 0.02) < 0.002)",
      (True, True)),
    I("uniform-method", NM, "x = torch.zeros(100)\nx.uniform_(-1, 1)\n(x.min().item() >= -1, x.max().item() <= 1)",
      (True, True)),
    I("in-place-in-the-graph", M4, """
        counts = torch.tensor([[1., 2.]], requires_grad=True).exp()
        dcounts = counts * 2
        dcounts += torch.ones_like(counts)
        dcounts""", T([[2 * math.e + 1, 2 * math.exp(2) + 1]])),
    I("in-place-on-a-saved-output-until-backward", M4, """
        logits = torch.tensor([[1., 2.], [3., 4.]], requires_grad=True)
        n = 2
        dlogits = F.softmax(logits, 1)
        dlogits[range(n), torch.tensor([1, 0])] -= 1
        dlogits /= n
        dlogits""", T([[0.5 / (1 + math.e), -0.5 / (1 + math.e)], [-0.5 * math.e / (1 + math.e),
                                                                      0.5 * math.e / (1 + math.e)]])),
    I("in-place-on-saved-tensor-is-caught", "issue 20 (PyTorch's rule)", """
        a = torch.ones(3, requires_grad=True)
        b = a * 2
        c = b ** 2
        with torch.no_grad():
            b += 1
        c.sum().backward()""", Raises(r"in-?place")),
    I("in-place-on-leaf-is-caught", "issue 20 (PyTorch's rule)", "a = torch.ones(2, requires_grad=True)\na += 1",
      Raises(r"in-?place")),

    # --- optimizers
    I("sgd-step", M2, """
        p = nn.Parameter(torch.tensor([1., 2.]))
        optimizer = torch.optim.SGD([p], lr=0.1)
        (p * p).sum().backward()
        optimizer.step()
        p""", T([0.8, 1.6])),
    I("adamw-first-step", BG, """
        p = nn.Parameter(torch.tensor([1., -1.]))
        optimizer = torch.optim.AdamW([p], lr=0.1, weight_decay=0.0)
        (p * torch.tensor([2., 3.])).sum().backward()
        optimizer.step()
        p""", T([0.9, -1.1])),
    I("zero-grad-set-to-none", BG, """
        p = nn.Parameter(torch.tensor([1., 2.]))
        optimizer = torch.optim.AdamW([p], lr=1e-3)
        p.sum().backward()
        optimizer.zero_grad(set_to_none=True)
        p.grad is None""", True),
    I("zero-grad-to-zeros", BG, """
        p = nn.Parameter(torch.tensor([1., 2.]))
        optimizer = torch.optim.SGD([p], lr=1e-3)
        p.sum().backward()
        optimizer.zero_grad(set_to_none=False)
        p.grad""", T([0.0, 0.0])),
    I("set-lr-per-group", NT, """
        optimizer = torch.optim.AdamW([nn.Parameter(torch.ones(2))], lr=1e-3)
        for param_group in optimizer.param_groups:
            param_group['lr'] = 0.5
        optimizer.param_groups[0]['lr']""", 0.5),
    I("param-groups-weight-decay", NM, """
        optim_groups = [
            {'params': [nn.Parameter(torch.ones(2, 2))], 'weight_decay': 0.1},
            {'params': [nn.Parameter(torch.ones(2))], 'weight_decay': 0.0}
        ]
        optimizer = torch.optim.AdamW(optim_groups, lr=6e-4, betas=(0.9, 0.95))
        [g['weight_decay'] for g in optimizer.param_groups]""", (0.1, 0.0)),
    I("clip-grad-norm", NT, """
        p = nn.Parameter(torch.tensor([3., 4.]))
        (p * torch.tensor([3., 4.])).sum().backward()
        norm = torch.nn.utils.clip_grad_norm_([p], 1.0)
        (float(norm), p.grad)""", (5.0, T([0.6, 0.8]))),

    # --- saving and loading
    I("save-load-state-dict", NT, """
        path = os.path.join(tempfile.mkdtemp(), 'ckpt.pt')
        lin = nn.Linear(2, 2)
        torch.save(lin.state_dict(), path)
        lin2 = nn.Linear(2, 2)
        lin2.load_state_dict(torch.load(path))
        torch.equal(lin.weight, lin2.weight)""", True),
    I("save-load-checkpoint-dict", NT, """
        path = os.path.join(tempfile.mkdtemp(), 'ckpt.pt')
        checkpoint = {'model': nn.Linear(2, 2).state_dict(), 'model_args': dict(n_layer=2, bias=True),
                      'iter_num': 5, 'best_val_loss': 1.5, 'config': {'dataset': 'shakespeare_char'}}
        torch.save(checkpoint, path)
        ck = torch.load(path, map_location='cpu')
        (ck['iter_num'], ck['best_val_loss'], ck['model_args'], ck['config']['dataset'], ck['model']['weight'].shape)""",
      (5, 1.5, {"n_layer": 2, "bias": True}, "shakespeare_char", (2, 2))),

    # --- deliberate differences
    I("random-streams", NT, "torch.manual_seed(1337)\ntorch.randn(3)", T([-2.0259922, -2.0655088, -1.2053628]),
      differs="random streams: NumPy's generators, not PyTorch's, so the same seed draws other numbers",
      tensorlite=S((3,))),
    I("no-bfloat16", NT, "hasattr(torch, 'bfloat16')", True,
      differs="no bfloat16: NumPy has no such dtype", tensorlite=False),
    I("no-gradient-of-a-gradient", MG, """
        x = torch.tensor(2.0, requires_grad=True)
        y = x ** 3
        y.backward(create_graph=True)
        x.grad.requires_grad""", True,
      differs="no gradient of a gradient: backward computes on raw arrays, gradients are constants",
      tensorlite=Raises("create_graph")),
    I("data-is-the-array", M1, "type(torch.ones(2).data).__name__", "Tensor",
      differs=".data is the backend array: numpy or cupy, not a Tensor", tensorlite="ndarray"),
    I("no-mixed-float-dtypes", MG, "(torch.ones(2) + torch.ones(2, dtype=torch.float64)).dtype", "float64",
      differs="float32 and float64 do not mix silently: tensorlite raises instead of promoting",
      tensorlite=Raises("mixed floating dtypes")),
    I("no-fused-switch", NM, "'fused' in inspect.signature(torch.optim.AdamW).parameters", True,
      differs="no fused= switch: AdamW steps each group's parameters at once by itself", tensorlite=False),
    I("weight-tying-state-dict-names", NM, TIED + "\nsorted(Tied().state_dict().keys())",
      ("lm_head.weight", "wte.weight"),
      differs="a tied weight is saved once: state_dict() lists it under its first name, load_state_dict takes any",
      tensorlite=("wte.weight",)),
    I("state-dict-holds-copies", NM, "type(nn.Linear(2, 2).state_dict()['weight']).__name__", "Tensor",
      differs="state_dict() holds copies: NumPy arrays, not live views of the parameters", tensorlite="ndarray"),
]
