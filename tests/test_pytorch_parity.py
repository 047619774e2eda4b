"""tensorlite against PyTorch itself, where torch is importable (it is never a dependency: `pip install
torch==2.13.0`); without it this file skips.

- The idiom census: the table's expectations are PyTorch's answers, and each idiom tensorlite spells the same
  gives the same values, shapes and dtypes in both (random draws: shapes and dtypes only).
- The ports run unchanged in PyTorch (their imports swapped back) and meet the same checks, bounds included.
- nanoGPT's model, the same file in both with the same weights: the same logits, loss and gradients, the same
  weights after an AdamW step, the same greedy generation, on both attention branches.
"""
import numpy as np
import pytest

import pytorch_ports as ports
import tensorlite as tl
from pytorch_ports import checks, idioms

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings(            # PyTorch's own advice on lines the programs write as they do
    "ignore:Converting a tensor with requires_grad=True to a scalar:UserWarning",
    "ignore:Using backward\\(\\) with create_graph=True:UserWarning")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Two cores shared by several test processes: torch's own thread pool only gets in the way."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- the census
def draws(expected):
    """Does an expectation leave values open (random draws)?"""
    if isinstance(expected, tuple):
        return any(draws(e) for e in expected)
    return isinstance(expected, idioms.S)


@pytest.mark.parametrize("idiom", [pytest.param(i, id=i.id) for i in idioms.IDIOMS])
def test_idiom_as_pytorch_answers_it(idiom):
    problem = idioms.outcome(idiom, "torch", idiom.expect)
    assert problem is None, f"the table is wrong about PyTorch: {idiom.id}: {problem}"
    if idiom.differs or isinstance(idiom.expect, idioms.Raises):
        return                                   # checked against the table by test_pytorch_idioms.py
    theirs = idioms.normalize(idioms.run(idiom, "torch"))
    ours = idioms.normalize(idioms.run(idiom, "tensorlite"))
    problem = idioms.mismatch(theirs, ours, values=not draws(idiom.expect))
    assert problem is None, f"{idiom.source}: {idiom.code!r}: {problem}"


# ----------------------------------------------------------------------------- the ports, in PyTorch
def test_bigram_py_in_pytorch_meets_the_same_checks(capsys):
    ports.run("bigram", "torch")
    checks.check_bigram(capsys.readouterr().out)


def test_makemore_part4_in_pytorch_meets_the_same_checks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ports.write_names(tmp_path)
    ports.run("makemore_backprop", "torch")
    checks.check_backprop(capsys.readouterr().out)


def test_makemore_part3_in_pytorch_meets_the_same_checks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ports.write_names(tmp_path)
    module = ports.run("makemore_bn", "torch")
    checks.check_batchnorm(capsys.readouterr().out, module)


@pytest.fixture(scope="module")
def both():
    return ports.run("nanogpt_model", "tensorlite"), ports.run("nanogpt_model", "torch")


def test_sample_py_in_pytorch_meets_the_same_checks(both, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _, itos = ports.write_checkpoint(both[1], tmp_path, torch.save)
    capsys.readouterr()
    ports.run("nanogpt_sample", "torch", argv=ports.SAMPLE_ARGS, modules={"model": both[1]})
    checks.check_samples(capsys.readouterr().out, "ROMEO:", 2, 30, itos.values())


# ----------------------------------------------------------------------------- nanoGPT, the same weights in both
def twin_models(both, monkeypatch, flash, **overrides):
    """The port built in each framework, PyTorch's weights copied into tensorlite's."""
    built = []
    for module in both:
        config = module.GPTConfig(**{**ports.SMALL, "vocab_size": 65, **overrides})
        with monkeypatch.context() as m:
            if not flash:
                m.delattr(module.torch.nn.functional, "scaled_dot_product_attention")
            built.append(module.GPT(config))
    ours, theirs = built
    missing, _ = ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()}, strict=False)
    assert not missing
    return ours, theirs


@pytest.mark.parametrize("flash", [True, False], ids=["flash", "manual"])
def test_nanogpt_same_weights_same_logits_loss_gradients_and_step(both, monkeypatch, flash):
    ours, theirs = twin_models(both, monkeypatch, flash)
    x, y = ports.batch(ports.shakespeare_ids())
    (logits, loss), (t_logits, t_loss) = ours(tl.tensor(x), tl.tensor(y)), theirs(torch.from_numpy(x),
                                                                                   torch.from_numpy(y))
    assert np.allclose(ports.as_array(logits), t_logits.detach().numpy(), atol=1e-5)
    assert abs(loss.item() - t_loss.item()) < 1e-5
    loss.backward()
    t_loss.backward()
    their_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert np.allclose(ports.as_array(p.grad), their_params[name].grad.numpy(), rtol=1e-4, atol=1e-6), name
    lr = 1e-3
    for model in (ours, theirs):
        model.configure_optimizers(0.1, lr, (0.9, 0.95), "cpu").step()
    for name, p in ours.named_parameters():   # Adam's first step is about lr * sign(g): float32 roundoff can move
        #                                       it where g is near 0, by a small part of lr
        assert np.allclose(ports.as_array(p), their_params[name].detach().numpy(), rtol=0, atol=0.05 * lr), name


def test_nanogpt_same_greedy_generation_without_biases(both, monkeypatch):
    ours, theirs = twin_models(both, monkeypatch, flash=True, bias=False)
    ours.eval()
    theirs.eval()
    start = [[18, 47, 56]]
    mine = ours.generate(tl.tensor(start), 24, top_k=1)[0].tolist()      # past block_size: cropped contexts
    assert mine == theirs.generate(torch.tensor(start), 24, top_k=1)[0].tolist()
