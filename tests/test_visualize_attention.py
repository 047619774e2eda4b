"""visualize_attention.py on a tiny checkpoint trained inside the test."""
import os

import numpy as np

import tensorlite as tl
from gpt import TrainConfig, Trainer, load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_attention_png_for_a_tiny_checkpoint(tmp_path):
    import sys
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import visualize_attention
    out = str(tmp_path / "run")
    Trainer(TrainConfig.from_preset("tiny", out_dir=out, max_iters=10, eval_interval=10, eval_iters=1)).run(
        progress=False)
    path = visualize_attention.main(["--out-dir", out, "--prompt", "ROMEO:"])
    assert os.path.getsize(path) > 5000
    model, tokenizer = load_model(out)
    maps = visualize_attention.attention_maps(model, tl.tensor([tokenizer.encode("ROMEO:")]))
    assert maps.shape == (2, 2, 6, 6)
    np.testing.assert_allclose(maps.sum(-1), 1, atol=1e-5)
    assert np.all(np.triu(maps, 1) == 0)    # causal: nothing above the diagonal
