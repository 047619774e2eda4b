"""gpt/explore.py, the data behind the attention explorer page, and examples/explore_attention.py.

The page's numbers are checked against a second route through the engine: the model's own attention (the single
Function F.scaled_dot_product_attention) with q, k, v and its output retained, and the closed forms of
docs/backprop_through_attention.md section 6 applied to them in NumPy.
"""
import importlib
import json
import math
import os
import re
import runpy
import types

import numpy as np
import pytest

import gpt
import tensorlite as tl
import tensorlite.functional as F
from gpt import GPT, CharTokenizer, GPTConfig, TrainConfig, Trainer
from gpt.explore import (DOC, DOC_SECTIONS, ROOT, backward_size, byte_fallback_chars, doc_sections, encode_prompt,
                         explore, packed_index, render_page, token_label, token_labels, write_page)
from gpt.data import ByteFallbackCharTokenizer

TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\nJULIET:\nAy me!\n"


def tiny_model(n_layer=2, n_head=2, n_embd=16, block_size=32, seed=0):
    """(GPT, CharTokenizer) with weights large enough for peaked attention and gradients far from zero."""
    tokenizer = CharTokenizer.from_text(TEXT)
    tl.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                          n_embd=n_embd)).eval()
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape).astype(np.float32) * 0.3
    return model, tokenizer


def unpack(packed, rows, earlier, width):
    """A packed causal matrix stack (..., n) -> (..., rows, earlier + width), zeros where nothing is stored."""
    r, c = packed_index(rows, earlier)
    full = np.zeros(packed.shape[:-1] + (rows, earlier + width), dtype=np.float64)
    full[..., r, c] = packed
    return full


def reference(model, ids, t, y):
    """The model run its own way, backward of -log p(y | ids[:t+1]); per layer the (T, T) P, dP, dS in NumPy from
    the retained q, k, v, dO, with dQ, dK, dV as the single attention Function computed them; the gradient norms
    on each block's output and on the token embeddings."""
    seen = {"attn": [], "blocks": [], "tok": []}

    def keep(store, fn):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            store.append((args, out.retain_grad()))
            return out
        return wrapped
    for block in model.transformer.h:
        block.attn.attend = keep(seen["attn"], lambda q, k, v, a=block.attn: type(a).attend(a, q.retain_grad(),
                                                                                          k.retain_grad(),
                                                                                          v.retain_grad()))
        block.forward = keep(seen["blocks"], lambda *a, b=block, **kw: type(b).forward(b, *a, **kw))
    wte = model.transformer.wte
    wte.forward = keep(seen["tok"], lambda *a: type(wte).forward(wte, *a))
    try:
        logits, _ = model(tl.tensor([ids]))
        targets = np.full(len(ids), -1)
        targets[t] = y
        F.cross_entropy(logits[0], tl.tensor(targets), ignore_index=-1, reduction="sum").backward()
    finally:
        for block in model.transformer.h:
            del block.attn.attend, block.forward
        del wte.forward
        for p in model.parameters():
            p.grad = None
    layers = []
    for (q, k, v), out in seen["attn"]:
        grads = dict(dQ=q.grad.data[0], dK=k.grad.data[0], dV=v.grad.data[0])                  # the single Function's backward
        q, k, v, d_out = (x.astype(np.float64) for x in (q.data[0], k.data[0], v.data[0], out.grad.data[0]))
        T, D = q.shape[-2:]
        s = q @ np.swapaxes(k, -1, -2) / math.sqrt(D) + np.triu(np.full((T, T), -np.inf), 1)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        dp = d_out @ np.swapaxes(v, -1, -2)                                     # (6) dP = dO V^T
        ds = p * (dp - (dp * p).sum(-1, keepdims=True))                          # (6) dS = P * (dP - rowsum(dP * P))
        layers.append(dict(P=p, dP=dp, dS=ds, q=q, k=k, dO=d_out, **grads))
    norms = lambda x: np.linalg.norm(x.grad.data[0].astype(np.float64), axis=-1)   # noqa: E731
    return layers, [norms(out) for _, out in seen["blocks"]], norms(seen["tok"][0][1])


def test_the_page_data_is_the_engines_backward():
    """dP and dS as explore() keeps them equal the closed forms on the single Function's own q, k, v and dO, and
    imply exactly its dQ, dK, dV; residual and embedding gradient norms are those of the model's own pass. Two
    positions in one batch: each copy's gradients are its own loss's."""
    model, tokenizer = tiny_model()
    prompt = "ROMEO:\nBut soft"
    ids = tokenizer.encode(prompt)
    result = explore(model, tokenizer, prompt, positions=[4, -2])
    assert [e["position"] for e in result["backward"]] == [4, len(ids) - 2] and result["start"] == 0
    W = len(ids)
    attention = unpack(result["attention"], W, 0, W)                           # (L, H, W, W)
    for entry in result["backward"]:
        t = entry["position"]
        target = entry["targets"][0]
        assert target["real"] and target["id"] == ids[t + 1] and target["label"] == prompt[t + 1]
        layers, residual, saliency = reference(model, ids, t, ids[t + 1])
        dP, dS = (unpack(target[name], t + 1, 0, W) for name in ("dP", "dS"))
        for layer, ref in enumerate(layers):
            scale = 1 / math.sqrt(ref["q"].shape[-1])
            np.testing.assert_allclose(attention[layer], ref["P"], rtol=1e-4, atol=1e-6)
            for name, mine in (("dP", dP[layer]), ("dS", dS[layer])):
                tol = 1e-4 * np.abs(ref[name]).max()
                np.testing.assert_allclose(mine, ref[name][:, :t + 1] * np.tril(np.ones((W, W)))[:t + 1], atol=tol)
            full_dS = np.zeros_like(ref["P"])
            full_dS[:, :t + 1] = dS[layer]
            np.testing.assert_allclose(full_dS @ ref["k"] * scale, ref["dQ"], atol=1e-4 * np.abs(ref["dQ"]).max())
            np.testing.assert_allclose(np.swapaxes(full_dS, -1, -2) @ ref["q"] * scale, ref["dK"],
                                       atol=1e-4 * np.abs(ref["dK"]).max())
            np.testing.assert_allclose(np.swapaxes(ref["P"], -1, -2) @ ref["dO"], ref["dV"],
                                       atol=1e-4 * np.abs(ref["dV"]).max())
            # the page's formula, on the page's own numbers: dS = P * (dP - rowsum(P * dP))
            p = attention[layer][:, :t + 1]
            np.testing.assert_allclose(dS[layer], p * (dP[layer] - (p * dP[layer]).sum(-1, keepdims=True)),
                                       atol=1e-4 * np.abs(dS[layer]).max())
        np.testing.assert_allclose(target["residual"], np.stack(residual), rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(target["saliency"], saliency, rtol=1e-4, atol=1e-7)
        assert np.all(target["saliency"][t + 1:] == 0) and target["saliency"][t] > 0     # causality
        last = target["residual"][-1]
        assert last[t] > 0 and np.all(np.delete(last, t) == 0)    # after the last block only position t matters


def test_the_model_is_left_as_it_was():
    model, tokenizer = tiny_model()
    idx = tl.tensor([tokenizer.encode("ROMEO:")])
    before = model(idx)[0].numpy()
    model.train()
    explore(model, tokenizer, "ROMEO:", top_k=2)
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
    assert not any(name in m.__dict__ for m in model.modules() for name in ("attend", "forward"))
    np.testing.assert_array_equal(model.eval()(idx)[0].numpy(), before)


def test_the_window_sums_earlier_keys_into_one_column():
    """With a window shorter than the prompt, each row's first column is the sum over the keys before it, for P
    and for dS alike, and the rest is the full run's."""
    model, tokenizer = tiny_model()
    prompt = "ROMEO:\nBut soft, what"
    T, window = len(tokenizer.encode(prompt)), 5
    full = explore(model, tokenizer, prompt, positions=[-1], top_k=2)
    cut = explore(model, tokenizer, prompt, window=window, positions=[-1], top_k=2)
    start = T - window
    assert (cut["start"], cut["earlier"], len(cut["tokens"])) == (start, 1, window)
    assert any("last 5 of the" in note for note in cut["notes"])
    p_full, p_cut = unpack(full["attention"], T, 0, T)[..., start:, :], unpack(cut["attention"], window, 1, window)
    np.testing.assert_allclose(p_cut.sum(-1), 1, rtol=1e-5)
    np.testing.assert_allclose(p_cut[..., 0], p_full[..., :start].sum(-1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(p_cut[..., 1:], p_full[..., start:], rtol=1e-5, atol=1e-7)
    g_full, g_cut = full["backward"][0]["targets"][0], cut["backward"][0]["targets"][0]
    assert g_full["id"] == g_cut["id"] and g_full["loss"] == pytest.approx(g_cut["loss"], rel=1e-6)
    ds_full = unpack(g_full["dS"], T, 0, T)[..., start:, :]
    ds_cut = unpack(g_cut["dS"], window, 1, window)
    tol = 1e-5 * np.abs(ds_full).max()
    np.testing.assert_allclose(ds_cut[..., 0], ds_full[..., :start].sum(-1), atol=tol)
    np.testing.assert_allclose(ds_cut[..., 1:], ds_full[..., start:], atol=tol)
    s_full = g_full["saliency"]
    np.testing.assert_allclose(g_cut["saliency"], np.r_[np.linalg.norm(s_full[:start]), s_full[start:]], rtol=1e-5)


def test_targets_guesses_and_the_budget():
    model, tokenizer = tiny_model()
    prompt = "ROMEO:\nBut"
    T = len(tokenizer.encode(prompt))
    result = explore(model, tokenizer, prompt, top_k=3)
    assert len(result["backward"]) == T                                       # short prompt: every position
    for entry in result["backward"]:
        targets = entry["targets"]
        guesses = [label for label, _ in result["guesses"][entry["position"]]]
        real = result["next"][entry["position"]]
        others = [t["label"] for t in targets if not t["real"]]       # the top_k guesses other than the real one
        assert len(others) == 3 and others[:len(guesses) - (real in guesses)] == [g for g in guesses if g != real]
        assert all(0 < t["prob"] <= 1 and t["loss"] == pytest.approx(-math.log(t["prob"]), rel=1e-5)
                   for t in targets)
        assert [t["real"] for t in targets] == ([True] if real else []) + [False] * (len(targets) - bool(real))
    assert result["next"][-1] is None and result["backward"][-1]["targets"][0]["rank"] == 1
    probs = [p for _, p in result["guesses"][0]]
    assert probs == sorted(probs, reverse=True)
    one = backward_size(T - 1, 0, 4, 2, 2)
    assert [e["position"] for e in explore(model, tokenizer, prompt, top_k=3, budget=one)["backward"]] == [T - 1]
    assert len(explore(model, tokenizer, prompt, top_k=3, budget=1)["backward"]) == 1     # at least one position
    with pytest.raises(ValueError, match="outside the prompt"):
        explore(model, tokenizer, prompt, positions=[T])
    with pytest.raises(ValueError, match="before the window"):
        explore(model, tokenizer, prompt, window=3, positions=[0])


def test_prompt_checks_and_token_labels():
    tokenizer = CharTokenizer.from_text(TEXT)
    with pytest.raises(ValueError, match="the prompt is empty"):
        encode_prompt(tokenizer, "", 8)
    ids, notes = encode_prompt(tokenizer, "ROMEO: and JULIET", 8)
    assert ids == tokenizer.encode("ROMEO: and JULIET")[-8:] and "it reads the last 8" in notes[0]
    ids, notes = encode_prompt(tokenizer, "Romé~o", 32)
    assert byte_fallback_chars(tokenizer, "Romé~o") == ["é", "~"] and "'é' '~'" in notes[0]
    assert token_labels(tokenizer, ids) == ["R", "o", "m", "<esc>", "<hex C>", "<hex 3>", "<esc>", "<hex A>",
                                            "<hex 9>", "<esc>", "<hex 7>", "<hex E>", "o"]
    assert token_label(tokenizer, tokenizer.escape) == "<esc>"
    assert token_label(tokenizer, tokenizer.vocab_size - 1) == f"<token {tokenizer.vocab_size - 1}>"  # unused id
    old = ByteFallbackCharTokenizer(tokenizer.chars)                # a format-1 checkpoint's: one token per byte
    assert token_labels(old, old.encode("mé~")) == ["m", "<0xC3>", "<0xA9>", "~"]


@pytest.mark.slow
def test_a_gpt2_shaped_model_with_a_1024_token_prompt():
    """12 layers x 12 heads reading 1024 tokens (the prompt cut to block_size), shown as a 64-token window."""
    model, tokenizer = tiny_model(n_layer=12, n_head=12, n_embd=24, block_size=1024)
    prompt = (TEXT * 20)[:1100]
    result = explore(model, tokenizer, prompt, positions=[-1], top_k=1)
    assert (result["n_tokens"], result["start"], len(result["tokens"])) == (1024, 960, 64)
    assert result["attention"].shape == (12, 12, 64 + 64 * 65 // 2)
    assert "it reads the last 1024" in result["notes"][0]
    target = result["backward"][0]["targets"][0]
    assert target["dS"].shape == target["dP"].shape == result["attention"].shape
    assert target["residual"].shape == (12, 65) and np.isfinite(target["residual"]).all()
    values = result["attention"].size + target["dP"].size + target["dS"].size
    assert len(render_page(result)) < values * 4 * 4 / 3 + 300_000      # float32 in base64, and little else


def test_the_page_is_self_contained(tmp_path):
    model, tokenizer = tiny_model()
    result = explore(model, tokenizer, "ROMEO:</script><b>")
    path = write_page(result, str(tmp_path / "page.html"))
    html = open(path, encoding="utf-8").read()
    assert html.count("</script>") == 2 and "<b>" not in html.split("<body>")[1].split("<script")[0]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)          # nothing fetched from anywhere
    data = json.loads(html.split('<script id="explorer-data" type="application/json">')[1].split("</script>")[0])
    assert data["prompt"] == "ROMEO:</script><b>" and data["attention"]["shape"] == list(result["attention"].shape)
    assert os.listdir(tmp_path) == ["page.html"]                               # no temp file left behind


def test_the_cited_sections_and_code_exist(tmp_path):
    text = open(os.path.join(ROOT, DOC), encoding="utf-8").read()
    sections = doc_sections()
    for anchor in DOC_SECTIONS:
        assert f'<a id="{anchor}"></a>\n## {sections[anchor]["title"]}\n' in text
        assert sections[anchor]["text"] in text and "\n## " not in sections[anchor]["text"]
    assert sections["attention"]["title"] == "6. Causal scaled dot-product attention"
    assert sections["attention"]["text"].startswith("For one head: Q, K, V")
    assert all(s["text"] is None for s in doc_sections(str(tmp_path)).values())    # an install without docs/
    model, tokenizer = tiny_model()
    for panel in explore(model, tokenizer, "RO", top_k=1)["panels"].values():
        assert set(panel["docs"]) <= set(DOC_SECTIONS)
        for citation in panel["code"]:
            path, name = citation.split("::")
            module = importlib.import_module(path[:-3].replace("/", "."))
            for part in name.split("."):
                module = getattr(module, part)


# ----------------------------------------------------------------------------- the command line
SCRIPT = os.path.join(ROOT, "examples", "explore_attention.py")


def load_script():
    """The script's functions (run as a module, not as __main__)."""
    return types.SimpleNamespace(**runpy.run_path(SCRIPT))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("explore") / "run")
    Trainer(TrainConfig.from_preset("tiny", out_dir=out, max_iters=10, eval_interval=10, eval_iters=1)).run(
        progress=False)
    return out


def test_the_command_writes_the_page(checkpoint, capsys):
    path = load_script().main(["--out-dir", checkpoint, "--prompt", "ROMEO:", "--no-progress"])
    assert path == os.path.join(checkpoint, "explore.html")
    assert f"file://{path}" in capsys.readouterr().out
    assert os.path.getsize(path) > 10_000


@pytest.mark.parametrize("args,message", [
    (["--prompt", ""], "error: the prompt is empty"),
    (["--output", "{file}/page.html"], "error: cannot write the page to"),
    (["--output", "{dir}"], "it is a directory"),
    (["--window", "0"], "window and top_k must be at least 1"),
    (["--positions", "99"], "position 99 is outside the prompt"),
])
def test_bad_input_is_one_line(checkpoint, tmp_path, capsys, args, message):
    (tmp_path / "a-file").write_text("x")
    args = [a.format(file=tmp_path / "a-file", dir=tmp_path) for a in args]
    script = load_script()
    with pytest.raises(SystemExit) as exit_:
        script.run_cli(lambda: script.main(["--out-dir", checkpoint, "--no-progress", *args]))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["a-file"]                          # nothing written, nothing lost


def test_no_checkpoint_is_one_line(tmp_path, capsys):
    script = load_script()
    with pytest.raises(SystemExit) as exit_:
        script.run_cli(lambda: script.main(["--out-dir", str(tmp_path), "--prompt", "RO"]))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"error: no checkpoint in {tmp_path}" in err and "train_char_gpt.py" in err


def test_long_prompts_and_unknown_characters_are_noted(checkpoint, tmp_path, capsys):
    out = str(tmp_path / "page.html")
    load_script().main(["--out-dir", checkpoint, "--prompt", "Ro\u00e9" + "a" * 40, "--output", out, "--no-progress"])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "'é'" in err[0] and "it reads the last 32" in err[1]    # the tiny preset's block_size
    assert os.path.isfile(out)


def test_init_from_explores_a_pretrained_gpt2_with_its_bpe(tiny_gpt2, tmp_path, monkeypatch, capsys):
    folder, _ = tiny_gpt2
    monkeypatch.chdir(tmp_path)
    prompt = "But soft, what light"
    path = load_script().main(["--init-from", folder, "--prompt", prompt, "--no-progress"])
    assert path == str(tmp_path / "explore.html") and f"file://{path}" in capsys.readouterr().out
    model, tokenizer = gpt.load_pretrained(folder)
    ids = tokenizer.encode(prompt)
    assert 1 < len(ids) < len(prompt)                                     # BPE tokens, not characters
    labels = [tokenizer.decode([i]) for i in ids]
    page = open(path, encoding="utf-8").read()
    assert '"tokens": ' + json.dumps(labels, ensure_ascii=False) in page
    assert f'"n_layer": {model.config.n_layer}' in page and f'"vocab_size": {tokenizer.vocab_size}' in page
    with pytest.raises(SystemExit):                                       # one model or the other, not both
        load_script().main(["--init-from", folder, "--out-dir", str(tmp_path)])
