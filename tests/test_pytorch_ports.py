"""Programs written for PyTorch run on tensorlite with only their imports changed (issue 20).

The programs live in tests/pytorch_ports/: nanoGPT's model.py and sample.py, "Let's build GPT"'s bigram.py,
makemore part 3's statistics cells and part 4's manual backprop. Here they are run on tensorlite: the model's
forward, training with its own optimizer groups, generation, model surgery and both attention branches; the
scripts end to end, checked on what they print. test_pytorch_parity.py runs the same files in PyTorch.
"""
import ast
import math
import os

import numpy as np
import pytest

import pytorch_ports as ports
import tensorlite as tl
from pytorch_ports import checks

DOC = os.path.join(ports.ROOT, "docs", "coming_from_pytorch.md")
SMALL = ports.SMALL


def imported_modules(text):
    names = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module)
    return names


@pytest.mark.parametrize("name", ports.PORTS)
def test_each_port_differs_from_pytorch_only_in_its_imports(name):
    ours, theirs = ports.source(name).split("\n"), ports.source(name, "torch").split("\n")
    changed = [(a, b) for a, b in zip(ours, theirs) if a != b]
    assert len(ours) == len(theirs) and changed and all(pair in ports.IMPORTS for pair in changed)
    assert not any(m.startswith("tensorlite") for m in imported_modules("\n".join(theirs)))
    assert not any(m.startswith("torch") for m in imported_modules("\n".join(ours)))
    with open(DOC, encoding="utf-8") as f:
        doc = f.read().lower().replace("`", "").replace("*", "")
    for line, reason in ports.differing_lines(name):    # a line changed on purpose says why, and the doc too
        assert ports.title(reason).lower() in doc, f"{name}: `{line}` differs for a reason the doc does not give"


# ----------------------------------------------------------------------------- nanoGPT's model.py
@pytest.fixture(scope="module")
def nanogpt():
    return ports.run("nanogpt_model")


@pytest.fixture(scope="module")
def shakespeare():
    return ports.shakespeare_ids(), len(ports.char_vocabulary()[1])


def batch(data, **sizes):
    x, y = ports.batch(data, **sizes)
    return tl.tensor(x), tl.tensor(y)


def gpt(nanogpt, vocab_size, seed=1337, **overrides):
    tl.manual_seed(seed)
    return nanogpt.GPT(nanogpt.GPTConfig(**{**SMALL, "vocab_size": vocab_size, **overrides}))


def test_forward_gives_logits_and_loss_and_the_inference_path_the_last_position(nanogpt, shakespeare, capsys):
    data, V = shakespeare
    model = gpt(nanogpt, V)
    assert "number of parameters: 0.03M" in capsys.readouterr().out
    x, y = batch(data)
    logits, loss = model(x, y)
    assert logits.shape == (8, 16, V) and loss.shape == ()
    assert abs(loss.item() - math.log(V)) < 0.1          # N(0, 0.02) weights: close to uniform at init
    model.eval()
    last, no_loss = model(x)
    assert no_loss is None and last.shape == (8, 1, V)
    assert np.allclose(ports.as_array(last)[:, 0], ports.as_array(logits)[:, -1], atol=1e-6)


def test_init_tying_and_parameter_count(nanogpt, shakespeare):
    _, V = shakespeare
    model = gpt(nanogpt, V)
    C, L, block = SMALL["n_embd"], SMALL["n_layer"], SMALL["block_size"]
    assert model.transformer.wte.weight is model.lm_head.weight
    named = dict(model.named_parameters())
    assert "transformer.wte.weight" in named and "lm_head.weight" not in named      # the tied one, once
    per_block = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C) + (4 * C * C + C)
    total = V * C + block * C + L * per_block + 2 * C
    assert model.get_num_params(non_embedding=False) == total and model.get_num_params() == total - block * C
    assert math.isclose(model.estimate_mfu(12, 0.5), (6 * (total - block * C) + 12 * L * SMALL["n_head"] *
                                                      (C // SMALL["n_head"]) * block) * block * 12 / 0.5 / 312e12)
    for name, p in named.items():
        w = ports.as_array(p)
        if name.endswith("c_proj.weight"):
            assert abs(w.std() / (0.02 / math.sqrt(2 * L)) - 1) < 0.15, name
        elif name.endswith(("c_attn.weight", "c_fc.weight", "wte.weight", "wpe.weight")):
            assert abs(w.std() / 0.02 - 1) < 0.15, name
        elif "ln_" in name:
            assert np.all(w == (1.0 if name.endswith("weight") else 0.0)), name
        else:
            assert name.endswith("bias") and np.all(w == 0.0), name


def test_trains_with_its_own_optimizer_groups(nanogpt, shakespeare, capsys):
    data, V = shakespeare
    model = gpt(nanogpt, V)
    capsys.readouterr()
    optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=3e-3, betas=(0.9, 0.95),
                                           device_type="cpu")
    out = capsys.readouterr().out
    assert "num decayed parameter tensors: 10," in out and "using fused AdamW: False" in out
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and all(p.dim() >= 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.dim() < 2 for p in no_decay["params"])
    x, y = batch(data)
    losses = []
    for _ in range(30):
        logits, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        tl.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_the_fused_check_passes_nothing_on_a_cuda_config_either(nanogpt, shakespeare, capsys):
    """nanoGPT asks inspect.signature(AdamW) for `fused`: tensorlite's AdamW has no such switch, so the same line
    makes a plain AdamW whatever the device_type."""
    model = gpt(nanogpt, shakespeare[1])
    model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), device_type="cuda")
    assert "using fused AdamW: False" in capsys.readouterr().out


def test_generate_with_temperature_and_top_k(nanogpt, shakespeare):
    data, V = shakespeare
    model = gpt(nanogpt, V)
    model.eval()
    idx = tl.zeros((2, 1), dtype=tl.long)
    tl.manual_seed(0)
    out = model.generate(idx, 40, temperature=0.8, top_k=5)     # longer than block_size: the crop path
    assert out.shape == (2, 41) and out.dtype == tl.long
    assert out.min().item() >= 0 and out.max().item() < V
    tl.manual_seed(0)
    assert tl.equal(model.generate(idx, 40, temperature=0.8, top_k=5), out)
    seq = model.generate(idx[:1], 12, temperature=2.0, top_k=3)[0].tolist()
    for t in range(1, len(seq)):                                 # every token among its step's 3 likeliest
        logits, _ = model(tl.tensor([seq[max(0, t - 16):t]]))
        assert seq[t] in np.argsort(ports.as_array(logits)[0, -1])[-3:], t
    greedy, context = model.generate(idx[:1], 20, top_k=1)[0].tolist(), [0]
    for _ in range(20):                                          # top_k=1: the argmax each step
        logits, _ = model(tl.tensor([context[-16:]]))
        context.append(int(np.argmax(ports.as_array(logits)[0, -1])))
    assert greedy == context


def test_the_manual_attention_branch_matches_the_flash_branch(nanogpt, shakespeare, monkeypatch, capsys):
    data, V = shakespeare
    flash = gpt(nanogpt, V)
    with monkeypatch.context() as m:          # as on a PyTorch without it: the masked_fill branch and its buffer
        m.delattr(nanogpt.torch.nn.functional, "scaled_dot_product_attention")
        manual = gpt(nanogpt, V, seed=1)
    assert "WARNING: using slow attention" in capsys.readouterr().out
    assert all(b.attn.flash for b in flash.transformer.h) and not any(b.attn.flash for b in manual.transformer.h)
    missing, unexpected = manual.load_state_dict(flash.state_dict(), strict=False)
    assert list(missing) == [f"transformer.h.{i}.attn.bias" for i in range(SMALL["n_layer"])] and not unexpected
    x, y = batch(data)
    (logits_f, loss_f), (logits_m, loss_m) = flash(x, y), manual(x, y)
    assert np.allclose(ports.as_array(logits_f), ports.as_array(logits_m), atol=1e-5)
    loss_f.backward()
    loss_m.backward()
    grads_m = dict(manual.named_parameters())
    for name, p in flash.named_parameters():
        assert np.allclose(ports.as_array(p.grad), ports.as_array(grads_m[name].grad), rtol=1e-4, atol=1e-6), name


def test_dropout_draws_in_training_and_not_in_eval(nanogpt, shakespeare):
    data, V = shakespeare
    model = gpt(nanogpt, V, dropout=0.2)
    x, y = batch(data)
    assert model(x, y)[1].item() != model(x, y)[1].item()
    model.eval()
    assert model(x, y)[1].item() == model(x, y)[1].item()


def test_crop_block_size_keeps_a_parameter_and_the_mask_buffer(nanogpt, shakespeare, monkeypatch):
    data, V = shakespeare
    with monkeypatch.context() as m:
        m.delattr(nanogpt.torch.nn.functional, "scaled_dot_product_attention")
        model = gpt(nanogpt, V)
    model.crop_block_size(8)
    wpe = model.transformer.wpe.weight
    assert wpe.shape == (8, SMALL["n_embd"]) and isinstance(wpe, tl.nn.Parameter)
    assert dict(model.named_parameters())["transformer.wpe.weight"] is wpe
    state = model.state_dict()
    assert state["transformer.h.0.attn.bias"].shape == (1, 1, 8, 8)
    x, y = batch(data, block_size=8)
    assert model(x, y)[0].shape == (8, 8, V)
    with pytest.raises(AssertionError, match="Cannot forward sequence of length 9"):
        model(*batch(data, block_size=9))


def test_without_biases(nanogpt, shakespeare):
    data, V = shakespeare
    model = gpt(nanogpt, V, bias=False)
    assert model.transformer.h[0].ln_1.bias is None and model.transformer.h[0].attn.c_attn.bias is None
    assert not any(name.endswith(".bias") for name, _ in model.named_parameters())
    logits, loss = model(*batch(data))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


# ----------------------------------------------------------------------------- nanoGPT's sample.py
def test_sample_py_loads_the_checkpoint_and_samples(nanogpt, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model, itos = ports.write_checkpoint(nanogpt, tmp_path, tl.save)
    capsys.readouterr()
    sample = ports.run("nanogpt_sample", argv=ports.SAMPLE_ARGS, modules={"model": nanogpt})
    samples = checks.check_samples(capsys.readouterr().out, "ROMEO:", 2, 30, itos.values())
    loaded = sample.model.state_dict()
    assert loaded.keys() == model.state_dict().keys()
    assert all(np.array_equal(loaded[k], v) for k, v in model.state_dict().items())
    ports.run("nanogpt_sample", argv=ports.SAMPLE_ARGS, modules={"model": nanogpt})
    assert checks.check_samples(capsys.readouterr().out, "ROMEO:", 2, 30, itos.values()) == samples   # seeded


# ----------------------------------------------------------------------------- the scripts
def test_bigram_py_trains_below_the_bound_and_samples(capsys):
    ports.run("bigram")
    checks.check_bigram(capsys.readouterr().out)


def test_makemore_part4_every_manual_gradient_matches_autograd(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ports.write_names(tmp_path)
    ports.run("makemore_backprop")
    checks.check_backprop(capsys.readouterr().out)


def test_makemore_part3_statistics_and_update_to_data_ratios(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ports.write_names(tmp_path)
    module = ports.run("makemore_bn")
    checks.check_batchnorm(capsys.readouterr().out, module)
