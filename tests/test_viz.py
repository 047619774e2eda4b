"""tl.viz: the dot text of a small attention graph names its ops and shapes."""
import numpy as np

import tensorlite as tl
import tensorlite.functional as F
from tensorlite import viz


def test_to_dot_names_the_ops_of_an_attention_head():
    x = tl.randn(1, 4, 6)
    w_qkv = tl.randn(18, 6, requires_grad=True)
    q, k, v = F.linear(x, w_qkv).split(6, axis=2)
    heads = [t.reshape(1, 4, 2, 3).transpose(0, 2, 1, 3) for t in (q, k, v)]
    loss = F.scaled_dot_product_attention(*heads, is_causal=True).sum()
    text = viz.to_dot(loss, names={"w_qkv": w_qkv})
    assert text.startswith("digraph")
    for op in ("Linear", "Split", "Reshape", "Transpose", "ScaledDotProductAttention", "Sum"):
        assert f'label="{op}"' in text, op
    assert "w_qkv\\n(18, 6) float32" in text and "(1, 2, 4, 3)" in text
    assert text.count("-> f") >= 6


def test_render_writes_dot_text_or_png(tmp_path):
    a = tl.tensor(np.ones(3), requires_grad=True)
    out = viz.render((a * 2).sum(), str(tmp_path / "graph"))
    assert out.endswith((".png", ".dot")) and (tmp_path / out.split("/")[-1]).stat().st_size > 0
