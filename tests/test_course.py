"""The course's claims, checked: metrics, evaluation, n-gram counts, decoding, gradient accumulation, parameter
counts."""
import math

import numpy as np
import pytest

import tensorlite as tl
from gpt import GPT, PRESETS, CharTokenizer, GPTConfig, NGramModel, TextDataset, beam_search, evaluate, metrics
from gpt.decoding import sample_next


def test_metrics_against_hand_computed_values():
    m = metrics(math.log(4))
    assert m["perplexity"] == pytest.approx(4.0) and m["bpc"] == pytest.approx(2.0)
    assert metrics(0.0) == {"loss": 0.0, "perplexity": 1.0, "bpc": 0.0}


def test_ngram_counts_and_smoothed_probabilities():
    ids = [0, 1, 0, 1, 1]                  # "abab b" over a vocabulary of 3
    bigram = NGramModel(2, vocab_size=3, k=1.0).fit(ids)
    # pairs: (0,1) x2, (1,0) x1, (1,1) x1; contexts: 0 x2, 1 x2
    lp = np.exp(bigram.log_probs([0, 1, 1, 2]))
    np.testing.assert_allclose(lp, [(2 + 1) / (2 + 3), (1 + 1) / (2 + 3), (0 + 1) / (2 + 3)])
    unigram = NGramModel(1, vocab_size=3, k=0.0).fit(ids)
    np.testing.assert_allclose(np.exp(unigram.log_probs([0, 1, 2])), [2 / 5, 3 / 5, 0])
    trigram = NGramModel(3, vocab_size=3, k=0.5).fit(ids)   # contexts (0,1) x2 -> 0 once, 1 once
    np.testing.assert_allclose(np.exp(trigram.log_probs([0, 1, 0])), [(1 + 0.5) / (2 + 1.5)])
    assert bigram.evaluate([0, 1, 0])["loss"] == pytest.approx(-np.mean(np.log([3 / 5, 2 / 5])))


def tiny_model(**kw):
    tl.manual_seed(0)
    return GPT(GPTConfig(**{**dict(block_size=16, vocab_size=13, n_layer=2, n_head=2, n_embd=16), **kw}))


def test_greedy_is_deterministic_and_equals_top_k_1_and_beam_1():
    model, prompt = tiny_model(), tl.tensor([[1, 2, 3]])
    greedy = model.generate(prompt, 10, greedy=True).numpy()
    np.testing.assert_array_equal(greedy, model.generate(prompt, 10, greedy=True).numpy())
    tl.manual_seed(1)
    np.testing.assert_array_equal(greedy, model.generate(prompt, 10, top_k=1).numpy())
    beams, _ = beam_search(model, [1, 2, 3], 10, beam_width=1)
    np.testing.assert_array_equal(beams[0], greedy[0])
    tl.manual_seed(2)
    np.testing.assert_array_equal(greedy, model.generate(prompt, 10, top_p=1e-6).numpy())   # tiny top_p


def test_wider_beam_finds_at_least_the_greedy_log_probability():
    model = tiny_model()
    greedy_beam, greedy_score = beam_search(model, [4, 5], 8, beam_width=1)
    beams, scores = beam_search(model, [4, 5], 8, beam_width=4)
    assert scores[0] >= greedy_score[0] - 1e-9 and list(scores) == sorted(scores, reverse=True)
    # the reported score is the sum of the generated tokens' log-probabilities
    logits, _ = model(tl.tensor(beams[:1, :-1]))
    logp = logits.numpy()[0] - np.log(np.exp(logits.numpy()[0].astype(np.float64)).sum(-1, keepdims=True))
    recomputed = sum(logp[t - 1, beams[0, t]] for t in range(2, beams.shape[1]))
    assert recomputed == pytest.approx(scores[0], abs=1e-4)


def test_top_p_keeps_the_smallest_nucleus():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    drawn = {int(sample_next(logits, top_p=0.75)[0, 0]) for _ in range(200)}
    assert drawn == {0, 1}


@pytest.mark.parametrize("kwargs,message", [({"temperature": 0.0}, "temperature must be > 0"),
                                            ({"top_k": 0}, "top_k must be >= 1"),
                                            ({"top_p": 0.0}, "top_p must be in"),
                                            ({"top_p": 1.5}, "top_p must be in")])
def test_invalid_decoding_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_model().generate(tl.tensor([[1]]), 2, **kwargs)


def test_invalid_values_are_errors_before_any_token_is_drawn():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        tiny_model().generate(tl.tensor([[1]]), 0, temperature=-1.0)
    with pytest.raises(ValueError, match="token ids with T >= 1"):
        tiny_model().generate(tl.tensor(np.zeros((1, 0), dtype=np.int64)), 2)


def test_invalid_beam_arguments():
    with pytest.raises(ValueError, match="beam_width must be >= 1"):
        beam_search(tiny_model(), [1], 2, beam_width=0)
    with pytest.raises(ValueError, match="non-empty prompt"):
        beam_search(tiny_model(), [], 2, beam_width=2)


def test_gradient_accumulation_equals_one_big_batch_in_float64():
    B, N = 3, 4
    idx, targets = np.random.default_rng(0).integers(0, 13, (2, B * N, 16))
    big, acc = tiny_model().double(), tiny_model().double()
    opt_big = big.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
    opt_acc = acc.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
    big(tl.tensor(idx), tl.tensor(targets))[1].backward()
    for i in range(N):
        part = slice(i * B, (i + 1) * B)
        (acc(tl.tensor(idx[part]), tl.tensor(targets[part]))[1] * (1.0 / N)).backward()
    opt_big.step()
    opt_acc.step()
    for (name, p), q in zip(big.named_parameters(), acc.parameters()):
        assert p.dtype == np.float64
        np.testing.assert_allclose(q.numpy(), p.numpy(), atol=1e-10, rtol=0, err_msg=name)


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_num_params_of_the_presets_match_the_closed_form(preset):
    p, V = PRESETS[preset], 65
    C, L, T = p["n_embd"], p["n_layer"], p["block_size"]
    config = GPTConfig(block_size=T, vocab_size=V, n_layer=L, n_head=p["n_head"], n_embd=C, bias=p["bias"])
    # per block: qkv 3C^2, attention projection C^2, MLP 8C^2, two LayerNorm gains 2C (no biases in the presets)
    expected = V * C + T * C + L * (12 * C * C + 2 * C) + C
    assert GPT(config).num_params() == expected
    if preset == "gpu":   # nanoGPT prints "number of parameters: 10.65M" (it leaves out the position embedding)
        assert round((expected - T * C) / 1e6, 2) == 10.65


def test_evaluate_gives_the_mean_loss_of_its_batches_in_three_units():
    text = "to be or not to be, that is the question. " * 20
    tokenizer = CharTokenizer.from_text(text)
    dataset = TextDataset(text, tokenizer, block_size=8)
    model = tiny_model(block_size=8, vocab_size=tokenizer.vocab_size).train()
    result = evaluate(model, dataset, "val", eval_iters=3, batch_size=4, seed=7)
    rng = np.random.default_rng(7)
    assert model.training                      # evaluate puts the model back in training mode
    model.eval()
    by_hand = np.mean([model(*dataset.get_batch("val", 4, rng))[1].item() for _ in range(3)])
    assert result["loss"] == pytest.approx(by_hand, rel=1e-6)
    assert result["perplexity"] == pytest.approx(math.exp(by_hand), rel=1e-6)
    assert result["bpc"] == pytest.approx(by_hand / math.log(2), rel=1e-6)


def test_whole_split_evaluation_scores_every_window_once():
    text = "to be or not to be, that is the question. " * 20
    tokenizer = CharTokenizer.from_text(text)
    dataset = TextDataset(text, tokenizer, block_size=8)
    val = dataset.splits["val"]
    x, y = dataset.windows("val")
    assert x.shape == y.shape == ((len(val) - 1) // 8, 8)
    assert (x.reshape(-1) == val[:x.size]).all() and (y.reshape(-1) == val[1:x.size + 1]).all()
    model = tiny_model(block_size=8, vocab_size=tokenizer.vocab_size)
    model.eval()
    by_hand = model(tl.tensor(x), tl.tensor(y))[1].item()              # all windows in one batch
    for batch_size in (3, len(x)):                                     # a last, smaller batch weighs its share
        assert evaluate(model, dataset, "val", eval_iters=None, batch_size=batch_size)["loss"] == \
            pytest.approx(by_hand, rel=1e-6)
