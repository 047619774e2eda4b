"""Each experiment script runs at its --quick setting and writes a PNG; the baselines table holds its promises."""
import importlib
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples", "experiments"))
sys.path.insert(0, os.path.join(ROOT, "examples"))

EXPERIMENTS = ["attention_scaling", "causal_mask", "positional_encoding", "precision", "kv_cache",
               "one_hot_embedding"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_writes_a_png(name, tmp_path, capsys):
    out = tmp_path / f"{name}.png"
    importlib.import_module(name).main(["--quick", "--out", str(out)])
    assert out.stat().st_size > 5000
    assert "wrote" in capsys.readouterr().out


def test_baselines_table_and_neural_bigram_matches_count_bigram(tmp_path):
    import baselines
    data = tmp_path / "text.txt"
    data.write_text(open(os.path.join(ROOT, "data", "tinyshakespeare.txt"), encoding="utf-8").read()[:300000])
    rows = dict(baselines.main(["--data", str(data), "--bigram-steps", "400"]))
    count, neural = rows["bigram counts (add-0.01)"]["loss"], rows["neural bigram (tensorlite)"]["loss"]
    assert abs(neural - count) < 0.02
    losses = [m["loss"] for m in rows.values()]
    assert losses[0] > losses[1] > losses[2] > losses[3]     # uniform > unigram > bigram > trigram
