"""visualize_attention.py on a tiny checkpoint trained inside the test."""
import importlib.util
import os

import numpy as np

import tensorlite as tl
from gpt import TrainConfig, Trainer, load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script():
    spec = importlib.util.spec_from_file_location("visualize_attention",
                                                  os.path.join(ROOT, "examples", "visualize_attention.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_attention_png_for_a_tiny_checkpoint(tmp_path):
    script = load_script()
    out = str(tmp_path / "run")
    Trainer(TrainConfig.from_preset("tiny", out_dir=out, max_iters=10, eval_interval=10, eval_iters=1)).run(
        progress=False)
    path = script.main(["--out-dir", out, "--prompt", "ROMEO:"])
    assert path == os.path.join(out, "attention.png")
    with open(path, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

    model, tokenizer = load_model(out)
    idx = tl.tensor([tokenizer.encode("ROMEO:")])
    maps = script.attention_maps(model, idx)
    assert maps.shape == (2, 2, 6, 6)                     # (n_layer, n_head, T, T) of the tiny preset
    np.testing.assert_allclose(maps.sum(-1), 1, atol=1e-5)
    assert np.all(np.triu(maps, 1) == 0)                 # causal: nothing above the diagonal
    assert all("attend" not in block.attn.__dict__ for block in model.transformer.h)   # the model is restored


def test_recorded_attention_is_the_models_own():
    """Swapping in the recording attend changes nothing the model computes, so the maps are what it uses."""
    script = load_script()
    from gpt import GPT, GPTConfig
    tl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)).eval()
    idx = tl.tensor([[1, 4, 2, 9, 3]])
    with tl.no_grad():
        expected = model(idx)[0].numpy()
        maps = []
        for block in model.transformer.h:
            block.attn.attend = script.recording_attention(maps)
        recorded = model(idx)[0].numpy()
    np.testing.assert_allclose(recorded, expected, rtol=1e-5, atol=1e-6)
    assert len(maps) == 2 and maps[0].shape == (2, 5, 5)
