"""The attention walkthrough: it passes, its formulas are the document's, and it fails loudly when one is wrong."""
import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "attention_backprop_walkthrough.py")
DOC = os.path.join(ROOT, "docs", "backprop_through_attention.md")


def load_walkthrough():
    spec = importlib.util.spec_from_file_location("attention_backprop_walkthrough", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def doc_sections():
    """{'6': text of '## 6. ...' up to the next heading}, whitespace collapsed."""
    text = open(DOC, encoding="utf-8").read()
    parts = re.split(r"^## (\d+)\.", text, flags=re.M)
    return {number: " ".join(body.split()) for number, body in zip(parts[1::2], parts[2::2])}


def test_walkthrough_script_passes_and_prints_the_forward():
    result = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stdout + result.stderr
    for shown in ("scores S", "causal mask", "probabilities P", "output O", "dS = P * (dP - rowsum(dP * P))"):
        assert shown in result.stdout, shown
    assert "too large" not in result.stdout and result.stdout.rstrip().endswith("OK")


@pytest.mark.parametrize("name,section,formula",
                         [(n, s, f) for n, (s, f) in load_walkthrough().FORMULAS.items()])
def test_each_formula_is_written_in_the_cited_section(name, section, formula):
    sections = doc_sections()
    assert section in sections, f"{name} cites section {section}, which the document lacks"
    assert formula in sections[section], f"{name}: '{formula}' is not in section {section} of the document"


def test_a_wrong_hand_gradient_makes_it_exit_non_zero(monkeypatch, capsys):
    walkthrough = load_walkthrough()
    right = walkthrough.by_hand

    def off_by_a_little(*args):
        grads = right(*args)
        grads["dS"] = grads["dS"] + 1e-6     # a softmax backward that is wrong in the 6th decimal
        return grads

    monkeypatch.setattr(walkthrough, "by_hand", off_by_a_little)
    assert walkthrough.main([]) == 1
    out = capsys.readouterr().out
    assert "dS" in out.split("too large")[0].splitlines()[-1] and "FAILED" in out
