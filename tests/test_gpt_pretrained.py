"""GPT-2 checkpoints in Hugging Face's layout: loaded against an independent NumPy GPT-2, saved back, bad input."""
import json
import sys
import types

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import tensorlite as tl
from gpt import GPT, GPTConfig
from gpt.bpe import BPETokenizer
from gpt.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gpt.pretrained import gpt2_shapes

N_LAYER, N_HEAD, N_EMBD, VOCAB, N_POSITIONS = 2, 2, 8, 11, 16
HF_CONFIG = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
             "layer_norm_epsilon": 1e-05, "n_embd": N_EMBD, "n_head": N_HEAD, "n_layer": N_LAYER,
             "n_positions": N_POSITIONS, "n_ctx": N_POSITIONS, "vocab_size": VOCAB, "resid_pdrop": 0.1,
             "embd_pdrop": 0.1, "attn_pdrop": 0.1, "bos_token_id": 10, "eos_token_id": 10}


def random_gpt2(seed=0):
    """GPT-2's tensors under Hugging Face's names and in its layout (Conv1D weights as (in, out)), random, float64.
    The shapes are written out here rather than taken from gpt.pretrained, so a wrong layout there shows."""
    rng = np.random.default_rng(seed)
    C = N_EMBD
    shapes = {"wte.weight": (VOCAB, C), "wpe.weight": (N_POSITIONS, C), "ln_f.weight": (C,), "ln_f.bias": (C,)}
    for i in range(N_LAYER):
        shapes.update({f"h.{i}.ln_1.weight": (C,), f"h.{i}.ln_1.bias": (C,), f"h.{i}.attn.c_attn.weight": (C, 3 * C),
                       f"h.{i}.attn.c_attn.bias": (3 * C,), f"h.{i}.attn.c_proj.weight": (C, C),
                       f"h.{i}.attn.c_proj.bias": (C,), f"h.{i}.ln_2.weight": (C,), f"h.{i}.ln_2.bias": (C,),
                       f"h.{i}.mlp.c_fc.weight": (C, 4 * C), f"h.{i}.mlp.c_fc.bias": (4 * C,),
                       f"h.{i}.mlp.c_proj.weight": (4 * C, C), f"h.{i}.mlp.c_proj.bias": (C,)})
    params = {name: rng.standard_normal(shape) * 0.3 for name, shape in shapes.items()}
    for name in params:
        if ".ln_" in name or name.startswith("ln_f"):
            params[name] = params[name] * 0.1 + (1.0 if name.endswith("weight") else 0.0)
    return params


def numpy_gpt2(p, ids):
    """GPT-2's forward in plain NumPy (after picoGPT): ids (B, T) -> logits (B, T, vocab)."""
    def layer_norm(x, g, b):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return g * (x - mean) / np.sqrt(var + 1e-5) + b

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def attention(x, w, b, w_proj, b_proj):                    # x (T, C)
        T = x.shape[0]
        q, k, v = np.split(x @ w + b, 3, axis=-1)
        heads = [np.split(t, N_HEAD, axis=-1) for t in (q, k, v)]
        mask = np.triu(np.full((T, T), -1e10), k=1)
        out = [softmax(qh @ kh.T / np.sqrt(qh.shape[-1]) + mask) @ vh for qh, kh, vh in zip(*heads)]
        return np.hstack(out) @ w_proj + b_proj

    logits = []
    for row in np.asarray(ids):
        x = p["wte.weight"][row] + p["wpe.weight"][:len(row)]
        for i in range(N_LAYER):
            h = f"h.{i}."
            x = x + attention(layer_norm(x, p[h + "ln_1.weight"], p[h + "ln_1.bias"]), p[h + "attn.c_attn.weight"],
                              p[h + "attn.c_attn.bias"], p[h + "attn.c_proj.weight"], p[h + "attn.c_proj.bias"])
            m = layer_norm(x, p[h + "ln_2.weight"], p[h + "ln_2.bias"])
            x = x + gelu(m @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"]) @ p[h + "mlp.c_proj.weight"] + \
                p[h + "mlp.c_proj.bias"]
        logits.append(layer_norm(x, p["ln_f.weight"], p["ln_f.bias"]) @ p["wte.weight"].T)
    return np.stack(logits)


def numpy_loss(p, ids, targets):
    logits = numpy_gpt2(p, ids).reshape(-1, VOCAB)
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return -log_probs[np.arange(len(logits)), np.asarray(targets).reshape(-1)].mean()


def write_checkpoint(folder, params, config=HF_CONFIG, layout="GPT2LMHeadModel"):
    """A folder as Hugging Face writes it. layout: GPT2LMHeadModel's names ("transformer." prefix, no lm_head: it is
    tied), GPT2Model's (no prefix, and older transformers' causal-mask buffers), or one that stores lm_head too."""
    tensors = {name: value.astype(np.float32) for name, value in params.items()}
    if layout == "GPT2LMHeadModel":
        tensors = {"transformer." + name: value for name, value in tensors.items()}
    elif layout == "GPT2Model with masks":
        for i in range(N_LAYER):
            tensors[f"h.{i}.attn.bias"] = np.tril(np.ones((1, 1, N_POSITIONS, N_POSITIONS), dtype=np.float32))
            tensors[f"h.{i}.attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
    elif layout == "with lm_head":
        tensors = {"transformer." + name: value for name, value in tensors.items()}
        tensors["lm_head.weight"] = tensors["transformer.wte.weight"].copy()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return str(folder)


IDS = np.array([[1, 5, 9, 3, 3, 0, 7], [10, 2, 4, 6, 8, 1, 1]])
TARGETS = np.array([[5, 9, 3, 3, 0, 7, 2], [2, 4, 6, 8, 1, 1, 10]])


@pytest.fixture(scope="module")
def params():
    return random_gpt2()


@pytest.fixture(scope="module")
def folder(params, tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("gpt2") / "tiny", params)


@pytest.mark.parametrize("layout", ["GPT2LMHeadModel", "GPT2Model with masks", "with lm_head"])
def test_logits_equal_an_independent_numpy_gpt2(params, tmp_path, layout):
    model = GPT.from_pretrained(write_checkpoint(tmp_path, params, layout=layout))
    c = model.config
    assert (c.n_layer, c.n_head, c.n_embd, c.vocab_size, c.block_size) == (N_LAYER, N_HEAD, N_EMBD, VOCAB, N_POSITIONS)
    assert c.bias and c.pos_encoding == "learned" and c.dropout == 0.0 and not model.training
    assert model.lm_head.weight is model.transformer.wte.weight
    logits, _ = model(IDS)
    np.testing.assert_allclose(logits.numpy(), numpy_gpt2(params, IDS), rtol=1e-4, atol=1e-4)


def test_loss_and_gradients_against_central_differences(params, folder):
    """The gradient of the loss with respect to a few of Hugging Face's own entries, by central differences of the
    NumPy GPT-2, against the tensorlite model's gradients (transposed back for the Conv1D weights). wte gets
    gradient from both of its uses, the embedding and the tied lm_head."""
    model = GPT.from_pretrained(folder).double()
    _, loss = model(IDS, TARGETS)
    assert loss.item() == pytest.approx(numpy_loss(params, IDS, TARGETS), rel=1e-6)   # float32 weights, exact maths
    loss.backward()
    p64 = {name: value.astype(np.float32).astype(np.float64) for name, value in params.items()}   # as loaded
    grads = {name: param.grad for name, param in model.named_parameters()}
    for hf_name, index in [("wte.weight", (5, 3)), ("wpe.weight", (1, 0)), ("h.0.attn.c_attn.weight", (2, 19)),
                           ("h.1.attn.c_attn.bias", (11,)), ("h.1.mlp.c_fc.weight", (7, 30)),
                           ("h.0.mlp.c_proj.bias", (4,)), ("h.0.ln_1.weight", (6,)), ("ln_f.bias", (2,))]:
        eps, saved = 1e-6, p64[hf_name][index]
        p64[hf_name][index] = saved + eps
        up = numpy_loss(p64, IDS, TARGETS)
        p64[hf_name][index] = saved - eps
        down = numpy_loss(p64, IDS, TARGETS)
        p64[hf_name][index] = saved
        grad = grads["transformer." + hf_name]
        ours = np.asarray(grad.T if hf_name.endswith(("c_attn.weight", "c_fc.weight")) else grad)[index]
        assert ours == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8), hf_name


def test_the_loaded_model_is_a_normal_gpt(folder, tmp_path, device):
    tl.manual_seed(0)
    model = GPT.from_pretrained(folder).to(device)
    ids, prompt = tl.tensor(IDS, device=device), tl.tensor(IDS[:1, :3], device=device)
    cached = model.generate(prompt, 10, greedy=True)
    uncached = model.generate(prompt, 10, greedy=True, use_cache=False)
    np.testing.assert_array_equal(cached.numpy(), uncached.numpy())
    assert cached.shape == (1, 13)
    # a tensorlite checkpoint of it loads into a GPT of the same config with the same logits
    save_checkpoint(str(tmp_path / "ckpt.npz"), model.state_dict(), {"state": {}, "param_groups": []},
                    {"model_config": model.config.to_dict()})
    state, _, meta = load_checkpoint(str(tmp_path / "ckpt.npz"))
    again = GPT(GPTConfig(**meta["model_config"])).to(device)
    again.load_state_dict(state)
    np.testing.assert_array_equal(again(ids)[0].numpy(), model(ids)[0].numpy())
    # and it trains: one AdamW step lowers the loss on its batch
    model.train()
    optimizer = model.configure_optimizers(weight_decay=0.0, learning_rate=1e-2, betas=(0.9, 0.99))
    targets = tl.tensor(TARGETS, device=device)
    _, before = model(ids, targets)
    before.backward()
    optimizer.step()
    assert model(ids, targets)[1].item() < before.item()


def test_block_size_and_dropout_overrides(params, folder):
    model = GPT.from_pretrained(folder, dropout=0.1, block_size=8)
    assert model.config.block_size == 8 and model.config.dropout == 0.1
    assert model.transformer.wpe.weight.shape == (8, N_EMBD)
    np.testing.assert_allclose(model(IDS)[0].numpy(), numpy_gpt2(params, IDS), rtol=1e-4, atol=1e-4)   # eval mode
    for bad in (0, N_POSITIONS + 1):
        with pytest.raises(CheckpointError, match=f"block_size {bad} does not fit: .* has 16 learned positions"):
            GPT.from_pretrained(folder, block_size=bad)


@pytest.mark.parametrize("bias", [True, False])
def test_save_pretrained_writes_hugging_faces_layout(tmp_path, bias):
    """Read back by the NumPy GPT-2 straight from the file (so the layout is GPT-2's, not only self-consistent), and
    by from_pretrained; a model without biases gets zero biases, which change nothing."""
    tl.manual_seed(1)
    model = GPT(GPTConfig(block_size=N_POSITIONS, vocab_size=VOCAB, n_layer=N_LAYER, n_head=N_HEAD, n_embd=N_EMBD,
                          bias=bias))
    for p in model.parameters():                       # away from the init's zero biases and unit gains
        p.data[...] += np.random.default_rng(2).standard_normal(p.shape).astype(np.float32) * 0.1
    model.save_pretrained(str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["n_positions"] == N_POSITIONS and config["eos_token_id"] is None
    tensors = load_file(str(tmp_path / "model.safetensors"))
    assert "lm_head.weight" not in tensors and tensors["transformer.h.0.attn.c_attn.weight"].shape == (8, 24)
    if not bias:
        assert not tensors["transformer.h.1.mlp.c_fc.bias"].any() and not tensors["transformer.ln_f.bias"].any()
    hf = {name[len("transformer."):]: value.astype(np.float64) for name, value in tensors.items()}
    expected = model(IDS)[0].numpy()
    np.testing.assert_allclose(numpy_gpt2(hf, IDS), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(GPT.from_pretrained(str(tmp_path))(IDS)[0].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_save_pretrained_with_a_tokenizer_and_its_errors(tmp_path):
    tok = BPETokenizer.train("hug hug hug pug", 257 + 4, verbose=False)
    model = GPT(GPTConfig(block_size=8, vocab_size=tok.vocab_size, n_layer=1, n_head=1, n_embd=4))
    model.save_pretrained(str(tmp_path), tokenizer=tok)
    assert json.loads((tmp_path / "config.json").read_text())["eos_token_id"] == tok.eot_token == 260
    assert BPETokenizer.from_pretrained(str(tmp_path)).merges == tok.merges
    with pytest.raises(ValueError, match="the tokenizer has 261 tokens but the model's vocab_size is 11"):
        GPT(GPTConfig(vocab_size=11, n_layer=1, n_head=1, n_embd=4)).save_pretrained(str(tmp_path), tok)
    with pytest.raises(ValueError, match="GPT-2's layout, which has learned positions; .*'sinusoidal'"):
        GPT(GPTConfig(n_layer=1, n_head=1, n_embd=4, pos_encoding="sinusoidal")).save_pretrained(str(tmp_path))


def _edited(params, tmp_path, config=None, drop=(), add=None, change=None, layout="GPT2LMHeadModel"):
    params = {name: value for name, value in params.items() if name not in drop}
    params.update(add or {})
    params.update(change or {})
    return write_checkpoint(tmp_path / "edited", params, dict(HF_CONFIG, **(config or {})), layout)


@pytest.mark.parametrize("edit, message", [
    (dict(config={"model_type": "llama"}), "describes a 'llama' model; only GPT-2 \\(model_type 'gpt2'\\)"),
    (dict(config={"activation_function": "relu"}), "sets activation_function='relu'; .* has the tanh GELU"),
    (dict(config={"layer_norm_epsilon": 1e-6}), "sets layer_norm_epsilon=1e-06; .* has LayerNorm eps 1e-05"),
    (dict(config={"n_inner": 12}), "sets n_inner=12; tensorlite's GPT has an MLP of 4 \\* n_embd"),
    (dict(config={"scale_attn_by_inverse_layer_idx": True}), "sets scale_attn_by_inverse_layer_idx=True"),
    (dict(config={"n_head": 3}), "n_embd \\(8\\) must be divisible by n_head \\(3\\)"),
    (dict(config={"n_layer": 3}), "lacks h.2.ln_1.weight \\(12 in all\\) for the GPT-2 its config.json describes "
                                  "\\(n_layer=3, n_embd=8\\)"),
    (dict(drop=("h.1.mlp.c_fc.bias",)), "lacks h.1.mlp.c_fc.bias \\(1 in all\\)"),
    (dict(add={"h.0.attn.q_proj.weight": np.zeros((8, 8))}), "has tensors GPT-2 does not have, such as "
                                                              "h.0.attn.q_proj.weight"),
    (dict(config={"vocab_size": 12}), "wte.weight has shape \\(11, 8\\), but config.json .* needs \\(12, 8\\)"),
    (dict(change={"h.0.attn.c_attn.weight": np.zeros((24, 8))}),   # stored as nn.Linear would: not GPT-2's layout
     "h.0.attn.c_attn.weight has shape \\(24, 8\\), .* needs \\(8, 24\\)"),
], ids=["model_type", "activation", "eps", "n_inner", "layer_scale", "n_head", "n_layer", "missing", "extra",
        "vocab_size", "linear_layout"])
def test_bad_checkpoints_get_one_clear_error(params, tmp_path, edit, message):
    with pytest.raises(CheckpointError, match=message):
        GPT.from_pretrained(_edited(params, tmp_path, **edit))


def test_an_untied_head_and_unreadable_files(params, tmp_path):
    folder = _edited(params, tmp_path, layout="with lm_head")
    tensors = load_file(f"{folder}/model.safetensors")
    tensors["lm_head.weight"] = tensors["lm_head.weight"] + 1
    save_file(tensors, f"{folder}/model.safetensors")
    with pytest.raises(CheckpointError, match="lm_head.weight differs from wte.weight; .* ties the two"):
        GPT.from_pretrained(folder)
    (tmp_path / "edited" / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(CheckpointError, match="is not a safetensors file of float tensors NumPy reads"):
        GPT.from_pretrained(folder)
    (tmp_path / "edited" / "config.json").write_text("{", encoding="utf-8")
    with pytest.raises(CheckpointError, match="cannot read .*config.json"):
        GPT.from_pretrained(folder)
    (tmp_path / "edited" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="has no GPT-2 checkpoint: it needs config.json \\+ model.safetensors"):
        GPT.from_pretrained(folder)
    with pytest.raises(CheckpointError, match="'gpt3' is neither a folder nor a GPT-2 hub name \\(gpt2, gpt2-medium"):
        GPT.from_pretrained("gpt3")


def _fake_hub(monkeypatch, download):
    hub = types.ModuleType("huggingface_hub")
    hub.hf_hub_download = download
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)


def test_hub_names_download_with_huggingface_hub(params, folder, monkeypatch):
    """The hub path, without network: a stand-in huggingface_hub that hands out the local files (as its cache
    would), one that fails as it does offline, and none at all."""
    asked = []
    _fake_hub(monkeypatch, lambda repo, filename: asked.append((repo, filename)) or f"{folder}/{filename}")
    model = GPT.from_pretrained("gpt2-medium")
    assert asked == [("gpt2-medium", "config.json"), ("gpt2-medium", "model.safetensors")]
    np.testing.assert_allclose(model(IDS)[0].numpy(), numpy_gpt2(params, IDS), rtol=1e-4, atol=1e-4)

    def offline(repo, filename):
        raise ConnectionError("Name or service not known")
    _fake_hub(monkeypatch, offline)
    with pytest.raises(CheckpointError, match="could not download 'gpt2' from the Hugging Face hub \\(ConnectionError"
                                              "\\); the download needs network access, or give a local folder with "
                                              "config.json \\+ model.safetensors"):
        GPT.from_pretrained("gpt2")
    with pytest.raises(CheckpointError, match="could not download 'gpt2-xl' .* with vocab.json \\+ merges.txt"):
        BPETokenizer.from_pretrained("gpt2-xl")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)      # import fails, as without the extra
    with pytest.raises(CheckpointError, match="loading 'gpt2' from the Hugging Face hub needs huggingface_hub "
                                              "\\(pip install -e \"\\.\\[hub\\]\"\\)"):
        GPT.from_pretrained("gpt2")


def test_gpt2_shapes_count_gpt2_small():
    """124M parameters in GPT-2 small's shape (its published count, with the tied head counted once)."""
    shapes = gpt2_shapes(n_layer=12, n_embd=768, vocab_size=50257, n_positions=1024)
    assert sum(int(np.prod(s)) for s in shapes.values()) == 124_439_808


def test_transformers_loads_what_save_pretrained_writes_and_the_reverse(tmp_path):
    """Parity with Hugging Face's own GPT2LMHeadModel (skips without torch and transformers, which are never
    dependencies)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tl.manual_seed(3)
    model = GPT(GPTConfig(block_size=N_POSITIONS, vocab_size=VOCAB, n_layer=N_LAYER, n_head=N_HEAD, n_embd=N_EMBD,
                          bias=False))
    model.save_pretrained(str(tmp_path / "ours"))
    theirs = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path / "ours")).eval()
    with torch.no_grad():
        their_logits = theirs(torch.from_numpy(IDS)).logits.numpy()
    np.testing.assert_allclose(their_logits, model(IDS)[0].numpy(), rtol=1e-4, atol=1e-5)

    torch.manual_seed(0)
    hf_model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**{k: v for k, v in HF_CONFIG.items()
                                                                       if k != "architectures"})).eval()
    with torch.no_grad():
        for p in hf_model.parameters():
            p.add_(torch.randn_like(p) * 0.1)          # biases and LayerNorm off their init, to be seen
        hf_logits = hf_model(torch.from_numpy(IDS)).logits.numpy()
    hf_model.save_pretrained(str(tmp_path / "theirs"))
    np.testing.assert_allclose(GPT.from_pretrained(str(tmp_path / "theirs"))(IDS)[0].numpy(), hf_logits,
                               rtol=1e-4, atol=1e-5)
