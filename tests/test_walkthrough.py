"""The walkthroughs: the attention one passes from a bare checkout, prints every number, quotes the document's
formulas and table, and fails loudly when a formula is wrong; the block walk records the engine's real order."""
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
DOC = os.path.join(ROOT, "docs", "backprop_through_attention.md")


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def doc_sections():
    """{anchor: text of its section up to the next anchor}, whitespace collapsed."""
    with open(DOC, encoding="utf-8") as f:
        parts = re.split(r'<a id="([\w-]+)"></a>', f.read())
    return {anchor: " ".join(body.split()) for anchor, body in zip(parts[1::2], parts[2::2])}


@pytest.fixture(scope="module")
def walkthrough_output(tmp_path_factory):
    """A plain `python examples/attention_backprop_walkthrough.py`, from elsewhere and without PYTHONPATH: the
    script finds the checkout by itself."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, os.path.join(EXAMPLES, "attention_backprop_walkthrough.py")],
                            capture_output=True, text=True, env=env, cwd=tmp_path_factory.mktemp("elsewhere"))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_walkthrough_passes_and_prints_every_input_and_intermediate(walkthrough_output):
    out = walkthrough_output
    for shown in ("X (T, C)", "Wq (C, C)", "Wk (C, C)", "Wv (C, C)", "G = dY (T, C)", "K = X Wk^T", "V = X Wv^T",
                  "S = Q K^T / sqrt(D)", "P = softmax(S + M)", "O = P V"):
        assert shown in out, shown
    for name, (_, formula) in load("attention_backprop_walkthrough").FORMULAS.items():
        assert f"{name}: {formula}" in out, name
    mask = out.split("the additive causal mask")[1].split("\n\n")[0].split("\n", 1)[1]
    assert re.findall(r"-inf|0", mask) == ["0", "-inf", "-inf", "0", "0", "-inf", "0", "0", "0"], mask
    assert "head 1:" in out and "too large" not in out and out.rstrip().endswith("OK")
    assert out.count("  ok   ") == 5 and "FAIL " not in out


def test_the_central_difference_column_agrees(walkthrough_output):
    rows = [line.split() for line in walkthrough_output.splitlines() if re.match(r"d[A-Z]\w* +\[", line)]
    assert len(rows) == 10
    for row in rows:
        hand, op_by_op, central = (float(v) for v in row[-6:-3])
        assert abs(hand - central) < 1e-8 and abs(hand - op_by_op) < 1e-12
        assert float(row[-1]) < 1e-8


@pytest.mark.parametrize("name,anchor,formula",
                         [(n, a, f) for n, (a, f) in load("attention_backprop_walkthrough").FORMULAS.items()])
def test_each_formula_is_written_in_the_cited_section(name, anchor, formula):
    sections = doc_sections()
    assert anchor in sections, f"{name} cites section #{anchor}, which the document lacks"
    assert formula in sections[anchor], f"{name}: '{formula}' is not in section #{anchor} of the document"


def test_the_documents_table_is_the_walkthroughs():
    walkthrough = load("attention_backprop_walkthrough")
    values = walkthrough.forward(walkthrough.make_inputs())
    table = walkthrough.p_dp_ds_table(values, walkthrough.by_hand(values))
    with open(DOC, encoding="utf-8") as f:
        assert f"```\n{table}\n```" in f.read(), "paste the walkthrough's P, dP, dS table into the document:\n" + table


def test_the_walkthroughs_shapes_hide_nothing():
    walkthrough = load("attention_backprop_walkthrough")
    assert walkthrough.C != walkthrough.D and walkthrough.H == 2 and walkthrough.T == 3


def test_a_wrong_hand_gradient_makes_it_exit_non_zero(monkeypatch, capsys):
    walkthrough = load("attention_backprop_walkthrough")
    right = walkthrough.by_hand

    def off_by_a_little(*args):
        grads = right(*args)
        grads["dS"] = grads["dS"] + 1e-6     # a softmax backward that is wrong in the 6th decimal
        return grads

    monkeypatch.setattr(walkthrough, "by_hand", off_by_a_little)
    assert walkthrough.main([]) == 1
    out = capsys.readouterr().out
    assert "dS" in out.split("too large")[0].splitlines()[-1] and "FAILED" in out
    assert "FAIL every row of dS sums to 0" in out


def test_block_walk_visits_each_residual_sum_after_both_its_parts(tmp_path, capsys):
    walk = load("block_backward_walk")
    assert walk.main(["--out", str(tmp_path / "walk.png")]) == 0
    assert (tmp_path / "walk.png").stat().st_size > 10_000
    block = walk.Block(walk.CONFIG, layer=0)
    x = walk.tl.randn(walk.B, walk.T, walk.CONFIG.n_embd, requires_grad=True)
    steps = walk.record_walk(block, x)
    edges = walk.walk_edges(steps, x)
    sums = walk.summed(edges)
    assert len(sums) == 2 and len(steps) in sums                 # x, and the attention sub-block's output
    for dst, sources in sums.items():
        assert len(sources) == 2 and all(src < dst for src in sources)
    names = [type(s["op"]).__name__ for s in steps]
    assert names[0].startswith("Add") and names[-1].startswith("LayerNorm") and steps[-1]["module"] == "ln_1"
    assert x.grad is not None and np.isfinite(x.grad).all()
    out = capsys.readouterr().out
    assert "the block's input x feeds 2 ops" in out
