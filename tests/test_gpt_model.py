"""The GPT: shapes, names, init, loss at init, overfitting one batch, KV-cache generation, causality."""
import math

import numpy as np
import pytest

import tensorlite as tl
from gpt import GPT, GPTConfig
from gpt.config import ConfigError


def tiny(**kw):
    tl.manual_seed(0)
    return GPT(GPTConfig(**{**dict(block_size=16, vocab_size=11, n_layer=2, n_head=2, n_embd=16), **kw}))


def test_shapes_and_gpt2_names():
    model = tiny()
    logits, loss = model(tl.tensor(np.zeros((3, 7), dtype=np.int64)))
    assert logits.shape == (3, 7, 11) and loss is None
    names = [n for n, _ in model.named_parameters()]
    for expected in ("transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
                     "transformer.h.0.attn.c_attn.weight", "transformer.h.1.attn.c_proj.weight",
                     "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_proj.bias", "transformer.ln_f.bias"):
        assert expected in names
    assert model.lm_head.weight is model.transformer.wte.weight     # tied, listed once
    assert "lm_head.weight" not in names


def test_nanogpt_initialisation():
    model = tiny(n_embd=64, n_layer=4, vocab_size=200)
    params = dict(model.named_parameters())
    assert abs(params["transformer.h.0.attn.c_attn.weight"].numpy().std() - 0.02) < 0.002
    assert abs(params["transformer.h.0.mlp.c_proj.weight"].numpy().std() - 0.02 / math.sqrt(8)) < 0.001
    assert (params["transformer.h.0.attn.c_attn.bias"].numpy() == 0).all()
    assert (params["transformer.h.0.ln_1.weight"].numpy() == 1).all()


def test_loss_at_init_is_about_ln_vocab():
    model = tiny(vocab_size=50)
    idx, targets = np.random.default_rng(0).integers(0, 50, (2, 4, 16))
    _, loss = model(tl.tensor(idx), tl.tensor(targets))
    assert abs(loss.item() - math.log(50)) < 0.1


def test_sequence_longer_than_block_size_is_an_error():
    with pytest.raises(ValueError, match="longer than block_size 16"):
        tiny()(tl.tensor(np.zeros((1, 17), dtype=np.int64)))


def test_ids_that_are_not_b_by_t_are_an_error():
    model = tiny()
    with pytest.raises(ValueError, match=r"GPT takes \(B, T\) token ids with T >= 1, got shape \(5,\) \(one sequence: "
                                         r"pass idx\[None\]\)"):
        model(tl.tensor(np.zeros(5, dtype=np.int64)))
    with pytest.raises(ValueError, match=r"got shape \(2, 0\)$"):
        model(tl.tensor(np.zeros((2, 0), dtype=np.int64)))
    with pytest.raises(ValueError, match=r"generate takes \(B, T\) token ids with T >= 1, got shape \(1, 0\)"):
        model.generate(np.zeros((1, 0), dtype=np.int64), 3)


def test_bad_configs_are_errors():
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="pos_encoding must be one of learned, sinusoidal, none, got 'rotary'"):
        GPTConfig(pos_encoding="rotary")
    for kwargs, message in [(dict(block_size=2.5), "block_size must be an integer, got 2.5"),
                            (dict(n_layer=True), "n_layer must be an integer, got True"),
                            (dict(n_head=0), "n_head must be >= 1, got 0"),
                            (dict(dropout=float("nan")), "dropout must be a finite number, got nan"),
                            (dict(bias="no"), "bias must be True or False, got 'no'")]:
        with pytest.raises(ConfigError) as err:
            GPTConfig(**kwargs)
        assert str(err.value) == message and err.value.field == next(iter(kwargs))
    assert GPTConfig(block_size=np.int64(8)).block_size == 8   # NumPy integers are integers


@pytest.mark.parametrize("pos_encoding", ["learned", "sinusoidal", "none"])
def test_tiny_model_overfits_one_batch(device, pos_encoding):
    model = tiny(pos_encoding=pos_encoding).to(device)
    idx = tl.tensor(np.random.default_rng(1).integers(0, 11, (2, 16)), device=device)
    opt = model.configure_optimizers(0.0, 3e-3, (0.9, 0.99))
    for _ in range(200):
        _, loss = model(idx[:, :-1], idx[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2     # from ln(11) = 2.4


def test_optimizer_groups_decay_only_matrices():
    opt = tiny().configure_optimizers(0.1, 1e-3, (0.9, 0.95))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and all(p.ndim >= 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.ndim < 2 for p in no_decay["params"])


def test_cached_generation_equals_uncached(device):
    model = tiny().to(device)
    prompt = tl.tensor([[1, 2, 3]], device=device)
    outputs = []
    for use_cache in (True, False):
        tl.manual_seed(5)
        outputs.append(model.generate(prompt, 20, temperature=1.0, top_k=5, use_cache=use_cache).numpy())
    np.testing.assert_array_equal(outputs[0], outputs[1])     # 23 tokens: crosses block_size 16 too
    assert outputs[0].shape == (1, 23)


def test_cache_gives_the_same_logits_as_the_full_forward():
    from gpt.model import KVCache
    model = tiny().eval()
    idx = tl.tensor(np.random.default_rng(2).integers(0, 11, (2, 10)))
    full, _ = model(idx)
    cache = KVCache(model.config.n_layer)
    steps = [model(idx[:, :4], cache=cache)[0]] + [model(idx[:, t:t + 1], cache=cache)[0] for t in range(4, 10)]
    np.testing.assert_allclose(tl.cat(steps, axis=1).numpy(), full.numpy(), atol=1e-5)


def test_model_is_causal():
    model = tiny().eval()
    a = np.random.default_rng(3).integers(0, 11, (1, 12))
    b = a.copy()
    b[0, 6:] = (b[0, 6:] + 1) % 11
    la, lb = model(tl.tensor(a))[0].numpy(), model(tl.tensor(b))[0].numpy()
    np.testing.assert_allclose(la[0, :6], lb[0, :6], atol=1e-6)
    assert not np.allclose(la[0, 6:], lb[0, 6:])


def test_num_params_breakdown_matches_closed_form():
    C, L, V, T = 16, 2, 11, 16
    counts = tiny().num_params(breakdown=True)
    assert counts["token_embedding"] == V * C and counts["position_embedding"] == T * C
    assert counts["attention"] == L * (C * 3 * C + 3 * C + C * C + C)
    assert counts["mlp"] == L * (C * 4 * C + 4 * C + 4 * C * C + C)
    assert counts["layernorm"] == (2 * L + 1) * 2 * C
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total") == tiny().num_params()
