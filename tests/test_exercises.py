"""The exercise track works without any learner: every untouched stub fails with a helpful message, the engine's
solution passes, a correct answer written here (not the engine's code) passes too, and each common mistake,
written here as a wrong answer, fails with its hint. The grader's own answers to what is not even wrong (None, a
Tensor, a wrong shape or dtype, an exception, an endless loop) are one line each, never a traceback.

The answers are written into a temporary folder and graded there: nothing here reads or changes the learner's
files in exercises/ (the stubs are taken from them with every function body, or kernel part, emptied again)."""
import ast
import json
import os
import re
import subprocess
import sys

import pytest

from exercises.grader import TRACK, find, grade
from exercises.grader.core import DERIVATION, EXERCISES_DIR
from exercises.grader.kernels import BEGIN, END
from tensorlite.cuda.launch import KERNEL_DEFINES
from tensorlite.cuda.sources import kernel_dir
from tests.test_kernels_compile import NVCC, _missing

ROOT = os.path.dirname(EXERCISES_DIR)


def stub_text(exercise):
    """The exercise's file as shipped: each of its functions' bodies back to the docstring and a raise, or the
    'your code' parts of a kernel emptied."""
    with open(exercise.path(), encoding="utf-8") as f:
        text = f.read()
    if exercise.extension == ".cu":
        return re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), BEGIN + "\n" + END, text, flags=re.S)
    lines = text.splitlines()
    functions = [n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name in exercise.functions]
    for node in reversed(functions):                     # bottom up: the line numbers above stay valid
        has_docstring = isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
        start = node.body[0].end_lineno if has_docstring else node.lineno
        lines[start:node.body[-1].end_lineno] = ["    raise NotImplementedError"]
    return "\n".join(lines) + "\n"


def write(tmp_path, exercise, text):
    path = tmp_path / exercise.filename
    path.write_text(text)
    return str(path)


def graded(tmp_path, name, text):
    exercise = find(name)
    return grade(exercise, write(tmp_path, exercise, text), out=lambda line: None)


def assert_one_line_each(result):
    assert not any("Traceback" in line or line.startswith('  File "') for line in result.lines), result.lines


# ----------------------------------------------------------------------------- answers a learner could write
NUMPY = "import math\n\nimport numpy as np\n\n\n"

RIGHT = {
    "linear": NUMPY + '''def linear_backward(x, weight, dy):
    rows, grad_rows = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    return dy @ weight, grad_rows.T @ rows, grad_rows.sum(axis=0)
''',
    "softmax": NUMPY + '''def softmax_backward(y, dy, dim):
    return y * (dy - (dy * y).sum(axis=dim, keepdims=True))
''',
    "cross_entropy": NUMPY + '''def cross_entropy_backward(logits, targets, ignore_index):
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    valid = targets != ignore_index
    p[np.arange(len(targets))[valid], targets[valid]] -= 1
    p[~valid] = 0
    return p / max(int(valid.sum()), 1)
''',
    "layernorm": NUMPY + '''def layer_norm_backward(dy, xhat, rstd, weight):
    g = dy * weight
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    C = dy.shape[-1]
    return dx, (dy * xhat).reshape(-1, C).sum(axis=0), dy.reshape(-1, C).sum(axis=0)
''',
    "gelu": NUMPY + '''def gelu_backward(x, dy):
    c = math.sqrt(2 / math.pi)
    t = np.tanh(c * (x + 0.044715 * x ** 3))
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x))
''',
    "attention": NUMPY + '''def attention_backward(q, k, v, p, do):
    scale = 1 / math.sqrt(q.shape[-1])
    dv = np.swapaxes(p, -1, -2) @ do
    dp = do @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    return ds @ k * scale, np.swapaxes(ds, -1, -2) @ q * scale, dv
''',
    "heads": NUMPY + '''def split_heads_backward(dq, dk, dv):
    B, H, T, D = dq.shape
    return np.concatenate([d.transpose(0, 2, 1, 3).reshape(B, T, H * D) for d in (dq, dk, dv)], axis=-1)


def merge_heads_backward(dy, n_head):
    B, T, C = dy.shape
    return dy.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)
''',
    "embedding": NUMPY + '''def embedding_backward(ids, dout, num_embeddings):
    dweight = np.zeros((num_embeddings, dout.shape[-1]), dout.dtype)
    np.add.at(dweight, ids.reshape(-1), dout.reshape(-1, dout.shape[-1]))
    return dweight
''',
    "block": NUMPY + '''def linear(x, w, dy):
    rows, grad_rows = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    return dy @ w, grad_rows.T @ rows, grad_rows.sum(axis=0)


def layer_norm(dy, xhat, rstd, w):
    g = dy * w
    C = dy.shape[-1]
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, (dy * xhat).reshape(-1, C).sum(axis=0), dy.reshape(-1, C).sum(axis=0)


def block_backward(cache, params, dout):
    c, p, g = cache, params, {"mlp_out": dout}
    B, H, T, D = c["q"].shape
    g["act"], g["mlp.c_proj.weight"], g["mlp.c_proj.bias"] = linear(c["act"], p["mlp.c_proj.weight"], dout)
    x, k = c["fc"], math.sqrt(2 / math.pi)
    t = np.tanh(k * (x + 0.044715 * x ** 3))
    g["fc"] = g["act"] * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x))
    g["ln2"], g["mlp.c_fc.weight"], g["mlp.c_fc.bias"] = linear(c["ln2"], p["mlp.c_fc.weight"], g["fc"])
    dx1, g["ln_2.weight"], g["ln_2.bias"] = layer_norm(g["ln2"], c["ln2_xhat"], c["ln2_rstd"], p["ln_2.weight"])
    g["x1"] = dout + dx1
    g["attn_out"] = g["x1"]
    g["merged"], g["attn.c_proj.weight"], g["attn.c_proj.bias"] = linear(c["merged"], p["attn.c_proj.weight"],
                                                                         g["x1"])
    g["att"] = g["merged"].reshape(B, T, H, D).transpose(0, 2, 1, 3)
    g["probs"] = g["att"] @ np.swapaxes(c["v"], -1, -2)
    g["v"] = np.swapaxes(c["probs"], -1, -2) @ g["att"]
    P = c["probs"]
    g["masked"] = P * (g["probs"] - (g["probs"] * P).sum(axis=-1, keepdims=True))
    g["scores"] = g["masked"]
    g["q"] = g["scores"] @ c["k"] / math.sqrt(D)
    g["k"] = np.swapaxes(g["scores"], -1, -2) @ c["q"] / math.sqrt(D)
    g["qkv"] = np.concatenate([g[n].transpose(0, 2, 1, 3).reshape(B, T, H * D) for n in "qkv"], axis=-1)
    g["ln1"], g["attn.c_attn.weight"], g["attn.c_attn.bias"] = linear(c["ln1"], p["attn.c_attn.weight"], g["qkv"])
    dx, g["ln_1.weight"], g["ln_1.bias"] = layer_norm(g["ln1"], c["ln1_xhat"], c["ln1_rstd"], p["ln_1.weight"])
    g["x"] = g["x1"] + dx
    return g
''',
    "flash_tiles": NUMPY + '''TILE = 16


def flash_backward(q, k, v, o, lse, do, scale):
    T = q.shape[-2]
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    delta = (do * o).sum(axis=-1)
    for i0 in range(0, T, TILE):
        i1 = min(i0 + TILE, T)
        for j0 in range(0, i1, TILE):
            j1 = min(j0 + TILE, T)
            s = q[..., i0:i1, :] @ np.swapaxes(k[..., j0:j1, :], -1, -2) * scale
            visible = np.arange(j0, j1)[None, :] <= np.arange(i0, i1)[:, None]
            p = np.where(visible, np.exp(s - lse[..., i0:i1, None]), 0)
            dp = do[..., i0:i1, :] @ np.swapaxes(v[..., j0:j1, :], -1, -2)
            ds = p * (dp - delta[..., i0:i1, None])
            dv[..., j0:j1, :] += np.swapaxes(p, -1, -2) @ do[..., i0:i1, :]
            dq[..., i0:i1, :] += ds @ k[..., j0:j1, :] * scale
            dk[..., j0:j1, :] += np.swapaxes(ds, -1, -2) @ q[..., i0:i1, :] * scale
    return dq, dk, dv
''',
}

SOFTMAX_KERNEL = '''
    float m = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, in[c]);
    m = reduce(m, scratch, true);
    float sum = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float e = expf(in[c] - m);
        out[c] = e;
        sum += e;
    }
    const float inv = 1.0f / reduce(sum, scratch, false);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) out[c] *= inv;
'''
SOFTMAX_REDUCE = '''
__device__ float reduce(float v, float* scratch, bool is_max) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    v = is_max ? warp_max(v) : warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float total = lane < n_warps ? scratch[lane] : (is_max ? -INFINITY : 0.0f);
    total = is_max ? warp_max(total) : warp_sum(total);
    __syncthreads();   // before scratch is written again
    return total;
}
'''
FLASH_TILE = '''
        for (int e = threadIdx.x; e < FA_TILE * HEAD; e += blockDim.x) {
            const int row = start + e / HEAD;
            k_tile[e] = row < T ? K[base + (size_t)row * HEAD + e % HEAD] : 0.0f;
            v_tile[e] = row < T ? V[base + (size_t)row * HEAD + e % HEAD] : 0.0f;
        }
        __syncthreads();
        for (int c = 0; c < FA_TILE; ++c) {
            const int j = start + c;
            float s = 0.0f, dp = 0.0f;
            for (int d = 0; d < HEAD; ++d) {
                s += q[d] * k_tile[c * HEAD + d];
                dp += g[d] * v_tile[c * HEAD + d];
            }
            const bool visible = active && j < T && (!causal || j <= i);
            const float p = visible ? expf(s * scale - lse) : 0.0f;
            const float ds = p * (dp - delta);
            for (int d = 0; d < HEAD; ++d) dq[d] += ds * k_tile[c * HEAD + d];
        }
        __syncthreads();   // before the next tile overwrites k_tile and v_tile
'''


def kernel_answer(name, body, helper=""):
    text = stub_text(find(name)).replace(BEGIN + "\n" + END, BEGIN + body + END)
    return text.replace('#include "common.cuh"\n', '#include "common.cuh"\n' + helper)


RIGHT["softmax_kernel"] = kernel_answer("softmax_kernel", SOFTMAX_KERNEL, SOFTMAX_REDUCE)
RIGHT["flash_backward"] = kernel_answer("flash_backward", FLASH_TILE)


def changed(name, old, new, count=1):
    """RIGHT[name] with one mistake made: `old` replaced by `new` (and the change must happen)."""
    assert RIGHT[name].count(old) >= count, (name, old)
    return RIGHT[name].replace(old, new)


# (exercise, the wrong answer, what its hint must say)
MISTAKES = [
    ("linear", changed("linear", "return dy @ weight,", "return dy @ weight.T,"), "dx = dy @ weight"),
    ("linear", changed("linear", "grad_rows.T @ rows,", "rows.T @ grad_rows,"), "dW transposed"),
    ("linear", changed("linear", "grad_rows.sum(axis=0)", "dy.sum(axis=0)"), "every leading axis"),
    ("linear", changed("linear", "grad_rows.sum(axis=0)", "grad_rows.mean(axis=0)"), "not its mean"),
    ("softmax", changed("softmax", "y * (dy - (dy * y).sum(axis=dim, keepdims=True))", "y * dy"), "rowsum term"),
    ("softmax", changed("softmax", "y * (dy - (dy * y).sum(axis=dim, keepdims=True))", "y * (1 - y) * dy"),
     "diagonal"),
    ("softmax", changed("softmax", "(dy * y).sum(axis=dim, keepdims=True)", "(dy * y).sum()"), "over `dim` only"),
    ("softmax", changed("softmax", "axis=dim", "axis=-1"), "need not be the last axis"),
    ("cross_entropy", changed("cross_entropy", "z = logits - logits.max(axis=1, keepdims=True)", "z = logits"),
     "subtract each row's max"),
    ("cross_entropy", changed("cross_entropy", "return p / max(int(valid.sum()), 1)", "return p"), "the mean"),
    ("cross_entropy", changed("cross_entropy", "max(int(valid.sum()), 1)", "len(p)"), "not by every row"),
    ("cross_entropy", changed("cross_entropy", "    p[~valid] = 0\n", ""), "ignore_index adds nothing"),
    ("layernorm", changed("layernorm", "rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, "
                          "keepdims=True))", "rstd * g"), "mean and variance depend on x"),
    ("layernorm", changed("layernorm", " - xhat * (g * xhat).mean(axis=-1, keepdims=True)", ""),
     "the variance depends on x too"),
    ("layernorm", changed("layernorm", "(g - g.mean(axis=-1, keepdims=True) -", "(g -"), "the mean depends on x too"),
    ("layernorm", changed("layernorm", "g = dy * weight", "g = dy"), "dy * weight"),
    ("gelu", changed("gelu", " + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)", ""), "product rule"),
    ("gelu", changed("gelu", " * c * (1 + 3 * 0.044715 * x * x)", " * c"), "inner polynomial"),
    ("gelu", NUMPY + '''def gelu_backward(x, dy):
    phi = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    erf = np.vectorize(math.erf)(x / math.sqrt(2)).astype(x.dtype)
    return dy * (0.5 * (1 + erf) + x * phi)
''', "exact (erf)"),
    ("attention", changed("attention", "scale = 1 / math.sqrt(q.shape[-1])", "scale = 1"), "scale is in the backward"),
    ("attention", changed("attention", "    dv = np.swapaxes(p, -1, -2) @ do\n", '''\
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    dv = np.swapaxes(p, -1, -2) @ do
'''), "leaks through the mask"),
    ("attention", changed("attention", "p * (dp - (dp * p).sum(axis=-1, keepdims=True))", "p * dp"), "rowsum term"),
    ("attention", changed("attention", "np.swapaxes(ds, -1, -2) @ q * scale", "ds @ q * scale"),
     "transposed for dK"),
    ("heads", changed("heads", "d.transpose(0, 2, 1, 3).reshape(B, T, H * D)", "d.reshape(B, T, H * D)"),
     "a reshape is not a transpose"),
    ("heads", changed("heads", "dy.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)",
                      "dy.reshape(B, n_head, T, C // n_head)"), "a reshape is not a transpose"),
    ("heads", changed("heads", "return np.concatenate([d.transpose(0, 2, 1, 3).reshape(B, T, H * D) for d in (dq, dk, "
                      "dv)], axis=-1)", "return np.stack([d.transpose(0, 2, 1, 3) for d in (dq, dk, dv)], axis=3)"
                      ".reshape(B, T, 3 * H * D)"), "side by side"),
    ("embedding", changed("embedding", "np.add.at(dweight, ids.reshape(-1), dout.reshape(-1, dout.shape[-1]))",
                          "dweight[ids.reshape(-1)] = dout.reshape(-1, dout.shape[-1])"), "repeats"),
    ("embedding", changed("embedding", "np.add.at(dweight, ids.reshape(-1), dout.reshape(-1, dout.shape[-1]))",
                          "dweight[ids.reshape(-1)] += dout.reshape(-1, dout.shape[-1])"), "NumPy buffers"),
    ("block", changed("block", 'g["x1"] = dout + dx1', 'g["x1"] = dx1'), "feeds two ops"),
    ("block", changed("block", 'P * (g["probs"] - (g["probs"] * P).sum(axis=-1, keepdims=True))', 'P * g["probs"]'),
     "rowsum term"),
    ("block", changed("block", "def layer_norm(dy, xhat, rstd, w):\n    g = dy * w\n    C = dy.shape[-1]\n",
                      "def layer_norm(dy, xhat, rstd, w):\n    g = dy * w\n    C = dy.shape[-1]\n"
                      "    return rstd * g, (dy * xhat).reshape(-1, C).sum(axis=0), dy.reshape(-1, C).sum(axis=0)\n"),
     "mean and variance depend on its input"),
    ("flash_tiles", NUMPY + '''def flash_backward(q, k, v, o, lse, do, scale):
    T = q.shape[-2]
    s = q @ np.swapaxes(k, -1, -2) * scale
    p = np.where(np.tril(np.ones((T, T), bool)), np.exp(s - lse[..., None]), 0)
    dp = do @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (do * o).sum(axis=-1, keepdims=True))
    return ds @ k * scale, np.swapaxes(ds, -1, -2) @ q * scale, np.swapaxes(p, -1, -2) @ do
''', "walk the keys (and queries) in tiles"),
    ("flash_tiles", changed("flash_tiles", "ds = p * (dp - delta[..., i0:i1, None])", "ds = p * dp"), "the D term"),
    ("flash_tiles", changed("flash_tiles", "@ np.swapaxes(k[..., j0:j1, :], -1, -2) * scale",
                            "@ np.swapaxes(k[..., j0:j1, :], -1, -2)"), "scaled scores"),
    ("flash_tiles", changed("flash_tiles", "np.where(visible, np.exp(s - lse[..., i0:i1, None]), 0)",
                            "np.exp(s - lse[..., i0:i1, None])"), "leaks through the mask"),
    ("softmax_kernel", changed("softmax_kernel", "    __syncthreads();   // before scratch is written again\n", ""),
     "__syncthreads() is missing"),
    ("softmax_kernel", changed("softmax_kernel", "expf(in[c] - m)", "expf(in[c])"), "exp overflowed"),
    ("softmax_kernel", changed("softmax_kernel", "c += blockDim.x", "c += cols", count=3).replace(
        "c += blockDim.x", "c += cols"), "strides over the row"),
    ("flash_backward", changed("flash_backward", "        __syncthreads();   // before the next tile overwrites k_tile "
                               "and v_tile\n", ""), "__syncthreads() is missing"),
    ("flash_backward", changed("flash_backward", "p * (dp - delta)", "p * dp"), "the delta"),
    ("flash_backward", changed("flash_backward", "active && j < T && (!causal || j <= i)", "active && j < T"),
     "leaks through the mask"),
]


# ----------------------------------------------------------------------------- the track
def test_the_track_follows_the_issue_and_the_derivation():
    assert [e.filename for e in TRACK] == [
        "01_linear.py", "02_softmax.py", "03_cross_entropy.py", "04_layernorm.py", "05_gelu.py", "06_attention.py",
        "07_heads.py", "08_embedding.py", "09_block.py", "10_flash_tiles.py", "11_softmax_kernel.cu",
        "12_flash_backward.cu"]
    with open(os.path.join(ROOT, DERIVATION), encoding="utf-8") as f:
        doc = f.read()
    for exercise in TRACK:
        assert os.path.isfile(exercise.path()), exercise.filename
        assert f'<a id="{exercise.section}"></a>' in doc, exercise.section
        section = doc.split(f'<a id="{exercise.section}"></a>')[1].split('<a id="')[0]
        assert f"(../exercises/{exercise.filename})" in section, f"{exercise.section} does not link {exercise.filename}"
        solution_file = exercise.solution_ref.split("::")[0]
        assert os.path.isfile(os.path.join(ROOT, solution_file)), exercise.solution_ref
    assert find("2") is find("02") is find("softmax") is find("exercises/02_softmax.py")
    with pytest.raises(LookupError, match="the track is linear, softmax"):
        find("backprop")


@pytest.mark.parametrize("exercise", TRACK, ids=lambda e: e.name)
def test_the_untouched_stub_fails_with_a_helpful_message(exercise, tmp_path):
    path = write(tmp_path, exercise, stub_text(exercise))
    assert exercise.untouched(path)
    result = grade(exercise, path, out=lambda line: None)
    assert result.status == "not started", result.lines
    assert any("NotImplementedError" in line or "still empty" in line for line in result.lines), result.lines
    assert exercise.filename in result.text
    assert exercise.solution_ref in result.lines[-1]            # where to look, when the learner wants to
    assert_one_line_each(result)


@pytest.mark.parametrize("exercise", TRACK, ids=lambda e: e.name)
def test_the_engines_solution_passes(exercise):
    result = grade(exercise, solution=True, out=lambda line: None)
    assert result.status == "passed", result.text
    if exercise.extension == ".py":
        assert "trains a GPT" in result.text


@pytest.mark.parametrize("name", list(RIGHT))
def test_a_correct_answer_of_a_learners_own_passes(name, tmp_path):
    result = graded(tmp_path, name, RIGHT[name])
    assert result.status == "passed", result.text
    assert not find(name).untouched(str(tmp_path / find(name).filename))


@pytest.mark.parametrize("name,answer,hint", MISTAKES, ids=[f"{m[0]}-{m[2]}" for m in MISTAKES])
def test_each_common_mistake_fails_with_its_hint(name, answer, hint, tmp_path):
    result = graded(tmp_path, name, answer)
    assert result.status == "failed", result.text
    assert hint in result.text, result.text
    assert_one_line_each(result)


def test_every_exercise_lists_two_or_more_known_mistakes():
    for name in {m[0] for m in MISTAKES} | set(RIGHT):
        assert sum(m[0] == name for m in MISTAKES) >= 2, name


# ----------------------------------------------------------------------------- not even wrong: one line each
@pytest.mark.parametrize("body,says", [
    ("return None", "returned None for dx; expected an array of shape"),
    ("import tensorlite as tl\n    return tl.Tensor(y)", "returned a tensorlite Tensor for dx"),
    ("return y[..., :1]", "of shape"),
    ("return (y * (dy - (dy * y).sum(axis=dim, keepdims=True))).astype(np.float64)", "keep the inputs' dtype"),
    ("return y * (dy - (dy * y).sum(axis=dim, keepdims=True)) * np.sqrt(1.0)", "NumPy float64 scalar"),
    ("return y / 0 if False else [1.0]", "returned a list for dx"),
    ("return 1 // 0", "raised ZeroDivisionError: integer division or modulo by zero (line 7 of"),
    ("dy -= (dy * y).sum(axis=dim, keepdims=True)\n    return y * dy", "changed its argument 2 in place"),
])
def test_an_answer_that_is_not_even_wrong_gets_one_line(body, says, tmp_path):
    result = graded(tmp_path, "softmax", NUMPY + f"def softmax_backward(y, dy, dim):\n    {body}\n")
    assert result.status == "failed" and says in result.text, result.text
    assert_one_line_each(result)


@pytest.mark.parametrize("text,says", [
    ("def softmax_backward(y, dy, dim)\n    return y\n", "does not load: SyntaxError at line 1"),
    ("import no_such_module\n", "does not load: ModuleNotFoundError"),
    ("def softmax_grad(y, dy, dim):\n    return y\n", "defines no function softmax_backward()"),
])
def test_a_file_that_does_not_load_gets_one_line(text, says, tmp_path):
    result = graded(tmp_path, "softmax", text)
    assert result.status == "failed" and says in result.text, result.text
    assert_one_line_each(result)


@pytest.mark.parametrize("name", ["softmax_kernel", "flash_backward"])
def test_a_kernel_exercise_answered_is_real_cuda(name, tmp_path):
    """The emulator's g++ is not the only judge: the stub's frame, filled in, compiles with nvcc for a GPU."""
    if NVCC is None:
        _missing("nvcc")
    path = write(tmp_path, find(name), RIGHT[name])
    result = subprocess.run([NVCC, "--ptx", "-arch=sm_80", "-std=c++17", *KERNEL_DEFINES, "-I", kernel_dir(), path,
                             "-o", str(tmp_path / "out.ptx")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_kernel_that_does_not_compile_gets_its_first_error_line(tmp_path):
    result = graded(tmp_path, "softmax_kernel", kernel_answer("softmax_kernel", "\n    oops;\n"))
    assert result.status == "failed" and re.search(r"does not compile: .*11_softmax_kernel\.cu:\d+", result.text)
    assert_one_line_each(result)


def test_a_kernel_that_reads_out_of_bounds_names_the_block_and_thread(tmp_path):
    result = graded(tmp_path, "softmax_kernel", kernel_answer("softmax_kernel", "\n    out[cols] = in[cols];\n"))
    assert result.status == "failed" and re.search(r"out of bounds.*block \(\d+, 0, 0\), thread \(\d+", result.text)


def test_a_wrong_kernel_names_the_first_wrong_element_with_its_block_and_thread(tmp_path):
    result = graded(tmp_path, "softmax_kernel", changed("softmax_kernel", "out[c] *= inv;", "out[c] *= inv * 2;"))
    assert re.search(r"y\[0, 0\] is .*block \(0, 0, 0\), thread \(0, 0, 0\)", result.text), result.text


def test_a_bug_of_the_graders_own_is_one_line_too(tmp_path, monkeypatch):
    exercise = find("gelu")
    monkeypatch.setattr(type(exercise), "grade", lambda self, learner, report: {}["no such key"])
    result = grade(exercise, write(tmp_path, exercise, RIGHT["gelu"]), out=lambda line: None)
    assert result.status == "grader error" and "KeyError: 'no such key'" in result.text
    assert "the grader's fault, not yours" in result.text
    assert_one_line_each(result)


# ----------------------------------------------------------------------------- the command line
def exercises_cli(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "exercises", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_listing_shows_each_exercise_and_its_status(tmp_path):
    for exercise in TRACK:
        write(tmp_path, exercise, stub_text(exercise))
    write(tmp_path, find("gelu"), RIGHT["gelu"])
    write(tmp_path, find("softmax"), RIGHT["softmax"].replace("axis=dim", "axis=-1"))
    checked = exercises_cli("--dir", str(tmp_path), "check", "gelu")
    assert checked.returncode == 0 and "-> passed" in checked.stdout, checked.stdout + checked.stderr
    assert exercises_cli("--dir", str(tmp_path), "check", "2").returncode == 1
    listing = exercises_cli("--dir", str(tmp_path)).stdout
    status = dict(re.findall(r"^  (\d\d_\w+\.(?:py|cu))\s+(passed|failed|not started|not checked)", listing, re.M))
    assert len(status) == 12 and status["05_gelu.py"] == "passed" and status["02_softmax.py"] == "failed"
    assert status["01_linear.py"] == "not started"
    (tmp_path / "05_gelu.py").write_text(RIGHT["gelu"] + "\n# edited since\n")
    status = dict(re.findall(r"^  (\d\d_\w+\.py)\s+(passed|failed|not checked)", exercises_cli(
        "--dir", str(tmp_path)).stdout, re.M))
    assert status["05_gelu.py"] == "not checked"
    assert "python -m exercises check NAME" in listing and "check --all" in listing


def test_an_endless_loop_is_stopped_at_the_time_limit(tmp_path):
    write(tmp_path, find("gelu"), "def gelu_backward(x, dy):\n    while True:\n        pass\n")
    done = exercises_cli("--dir", str(tmp_path), "check", "gelu", "--time-limit", "5")
    assert done.returncode == 1 and "did not finish within 5 s" in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_check_all_counts_and_a_bad_name_is_one_line(tmp_path):
    for exercise in TRACK:
        write(tmp_path, exercise, stub_text(exercise))
    done = exercises_cli("--dir", str(tmp_path), "check", "--all")
    assert done.returncode == 1 and re.search(r"12 exercises: 12 not started +\(\d+ s\)", done.stdout), done.stdout
    solution = exercises_cli("--dir", str(tmp_path), "check", "1", "--solution")
    assert solution.returncode == 0 and "tensorlite/functional.py::LinearFunction.backward" in solution.stdout
    progress = json.loads((tmp_path / ".progress.json").read_text())
    assert progress["01_linear.py"]["status"] == "not started"        # the engine's pass is not the learner's
    bad = exercises_cli("check", "backprop")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "the track is" in bad.stderr
