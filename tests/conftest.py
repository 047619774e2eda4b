"""Shared fixtures: every backend-parametrized test runs on cpu, and on cuda where a GPU answers (else skips)."""
import pytest
from hypothesis import HealthCheck, settings

import tensorlite as tl
from tensorlite.cuda import emulator

# CI has 2 cores and minutes, not hours: few, small examples per property, no deadline (first calls compile).
settings.register_profile("ci", max_examples=12, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile("ci")


def _device_param(name):
    marks = [] if name == "cpu" else [pytest.mark.gpu, pytest.mark.skipif(not tl.cuda_available(),
                                                                         reason="no CuPy/GPU on this machine")]
    return pytest.param(name, marks=marks, id=name)


@pytest.fixture(params=[_device_param("cpu"), _device_param("cuda")])
def device(request):
    """The device a test runs on; the cuda case skips cleanly without a GPU."""
    return request.param


@pytest.fixture(params=emulator.STANDARD_SCHEDULES, ids=str)
def schedule(request):
    """Run the test's emulated launches under one emulator schedule: CUDA orders no warp before another, so every
    schedule must give the same result. A failing test's id names the schedule (and seed) that replays it."""
    with emulator.using_schedule(request.param) as chosen:
        yield chosen


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    """(folder, text): a GPT-2-shaped Hugging Face folder as --init-from reads it (config.json, model.safetensors,
    vocab.json, merges.txt: random weights, 2 layers of width 16, 32 positions, and a BPE of 300 tokens learned on
    `text`, the first 20,000 characters of Tiny Shakespeare), and that text's path."""
    import os

    from gpt import GPT, BPETokenizer, GPTConfig
    from gpt.data import DEFAULT_DATA
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    text = open(DEFAULT_DATA, encoding="utf-8").read()[:20000]
    (folder / "text.txt").write_text(text, encoding="utf-8")
    tokenizer = BPETokenizer.train(text, 300, verbose=False)
    tl.manual_seed(5)
    model = GPT(GPTConfig(block_size=32, vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=16))
    model.save_pretrained(os.path.join(folder, "gpt2"), tokenizer=tokenizer)
    return os.path.join(folder, "gpt2"), os.path.join(folder, "text.txt")
