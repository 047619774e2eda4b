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
