"""tl.viz: the dot text of a small attention graph names its ops and shapes; render writes PNG or dot text."""
import shutil

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F


def test_to_dot_names_the_ops_of_an_attention_head():
    x = tl.randn(1, 4, 6)
    w_qkv = tl.randn(18, 6, requires_grad=True)
    q, k, v = F.linear(x, w_qkv).split(6, dim=2)
    heads = [t.view(1, 4, 2, 3).transpose(1, 2) for t in (q, k, v)]
    loss = F.scaled_dot_product_attention(*heads, is_causal=True).sum()
    text = tl.viz.to_dot(loss, names={"w_qkv": w_qkv})
    assert text.startswith("digraph")
    for op in ("LinearFunction", "SplitFunction", "ReshapeFunction", "PermuteFunction",
               "ScaledDotProductAttentionFunction", "SumFunction"):
        assert f'label="{op}"' in text, op
    assert "w_qkv\\n(18, 6) float32" in text and "(1, 2, 4, 3)" in text
    assert text.count("-> f") >= 6


def small_graph():
    a = tl.tensor(np.ones(3), requires_grad=True)
    return (a * 2).sum()


def test_render_writes_the_dot_text_without_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    out = tl.viz.render(small_graph(), str(tmp_path / "graph.png"))
    assert out == str(tmp_path / "graph.dot")
    assert open(out).read().startswith("digraph") and 'label="MulFunction"' in open(out).read()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_render_writes_a_png_with_graphviz(tmp_path):
    out = tl.viz.render(small_graph(), str(tmp_path / "graph"))
    assert out.endswith(".png") and open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
