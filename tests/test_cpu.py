"""tensorlite.cpu: passes over big buffers on every core, and the cores this process may use."""
import os
import threading

import numpy as np

from tensorlite import cpu


def test_in_slices_covers_every_element_once_across_threads(monkeypatch):
    monkeypatch.setattr(cpu, "usable_cores", lambda: 3)
    a, b = np.arange(10.0), np.zeros(10)
    calls = []

    def work(x, y):
        calls.append((len(x), threading.get_ident()))
        y += x * 2

    cpu.in_slices(work, a, b, min_size=3)                  # three slices of 3-4 elements, not all on this thread
    np.testing.assert_array_equal(b, a * 2)
    assert sorted(n for n, _ in calls) == [3, 3, 4] and len({t for _, t in calls}) > 1
    calls.clear()
    cpu.in_slices(work, a, b, min_size=8)                  # one slice: a plain call on this thread
    np.testing.assert_array_equal(b, a * 4)
    assert calls == [(10, threading.get_ident())]


def test_usable_cores_is_the_affinity_mask():
    want = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert cpu.usable_cores() == want >= 1


def blas_thread_counts():
    from threadpoolctl import threadpool_info
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_blas_threads_limits_blas_inside_and_restores_it_after(monkeypatch):
    """As a context; a small GPT's decoding runs under it (one position at a time: products too small to split),
    a large one's does not (a weight of ONE_THREAD_DECODING_BELOW elements or more: bandwidth-bound products)."""
    import gpt.model
    import tensorlite as tl
    before = blas_thread_counts()
    with cpu.blas_threads(1):
        assert set(blas_thread_counts()) == {1}
    assert blas_thread_counts() == before
    seen = []
    monkeypatch.setattr(gpt.model, "sample_next", lambda logits, *args: seen.append(blas_thread_counts()) or
                        np.zeros((logits.shape[0], 1), dtype=np.int64))
    tl.manual_seed(0)
    model = gpt.model.GPT(gpt.model.GPTConfig(block_size=4, vocab_size=5, n_layer=1, n_head=1, n_embd=4))
    model.generate(tl.tensor([[1]]), 6)                    # past block_size too: the window path
    assert seen and all(set(counts) == {1} for counts in seen) and blas_thread_counts() == before
    seen.clear()
    monkeypatch.setattr(gpt.model, "ONE_THREAD_DECODING_BELOW", 5 * 4)   # the embedding (5, 4) is "large" now
    model.generate(tl.tensor([[1]]), 2)
    assert seen and all(counts == before for counts in seen)
