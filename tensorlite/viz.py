"""See the graph behind a tensor: Graphviz dot text of its Functions and tensors, with shapes.

Call before backward (backward frees the graph). `to_dot(loss)` returns the text; `render(loss, "graph")` writes
graph.png when the Graphviz `dot` program exists, and graph.dot (the text) otherwise.
"""
import os
import shutil
import subprocess

from .tensor import Tensor


def _label(t, names):
    name = names.get(id(t))
    kind = "param" if t.requires_grad and t.is_leaf else "const" if t.is_leaf else ""
    head = f"{name}\\n" if name else (f"{kind}\\n" if kind else "")
    return f"{head}{tuple(t.shape)} {t.dtype}"


def to_dot(tensor, names=None):
    """Dot text: one box per tensor (shape, dtype), one ellipse per op, edges in the direction data flows.

    names: optional {name: Tensor} (e.g. dict(model.named_parameters())) to label parameters."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot expects a Tensor, got {type(tensor).__name__}")
    names = {id(t): n for n, t in (names or {}).items()}
    lines = ["digraph tensorlite {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    seen, stack = set(), [tensor]
    lines.append(f'  t{id(tensor)} [shape=box, style=filled, fillcolor="#ffd9a0", label="{_label(tensor, names)}"];')
    seen.add(id(tensor))
    while stack:
        t = stack.pop()
        fn = t.creator
        if fn is None or fn.inputs is None:
            continue
        fid = f"f{id(fn)}"
        if fid not in seen:
            seen.add(fid)
            lines.append(f'  {fid} [shape=ellipse, style=filled, fillcolor="#cfe3ff", label="{type(fn).__name__}"];')
            for inp in fn.inputs:
                if id(inp) not in seen:
                    seen.add(id(inp))
                    color = "#d8f5d0" if inp.is_leaf and inp.requires_grad else "#eeeeee"
                    lines.append(f'  t{id(inp)} [shape=box, style=filled, fillcolor="{color}", '
                                 f'label="{_label(inp, names)}"];')
                    stack.append(inp)
                lines.append(f"  t{id(inp)} -> {fid};")
        lines.append(f"  {fid} -> t{id(t)};")
    lines.append("}")
    return "\n".join(dict.fromkeys(lines)) + "\n"   # an op with several outputs adds its edges once


def render(tensor, path, names=None):
    """Write path.png with Graphviz if `dot` is installed, else path.dot; return the file written."""
    text = to_dot(tensor, names)
    base = os.path.splitext(path)[0]
    dot = shutil.which("dot")
    if dot:
        subprocess.run([dot, "-Tpng", "-o", base + ".png"], input=text, text=True, check=True)
        return base + ".png"
    with open(base + ".dot", "w") as f:
        f.write(text)
    return base + ".dot"
