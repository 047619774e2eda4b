"""The CUDA-on-CPU emulator: barriers, shuffles, shared memory, atomics, and the bugs it must catch."""
import os

import numpy as np
import pytest

from tensorlite.cuda import emulator

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "emulation_kernels")


def launch(kernel, grid, block, args, shared_mem=0):
    emulator.launch("harness.cu", kernel, grid, block, shared_mem, args, kernel_dir=HERE)


def test_warp_shuffle_reductions():
    x = np.random.default_rng(0).standard_normal(96).astype(np.float32)
    out = np.zeros(3, np.float32)
    launch("warp_sums", (1,), (96,), [x, out, np.int32(90)])
    expected = [x[:32].sum(), x[32:64].sum(), x[64:90].sum()]
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    down = np.zeros(3, np.float32)
    launch("warp_sums_down", (3,), (32,), [x, down])
    np.testing.assert_allclose(down, x.reshape(3, 32).sum(1), rtol=1e-5)
    every = np.zeros(96, np.float32)
    launch("warp_sums_every_lane", (1,), (96,), [x, every])
    np.testing.assert_allclose(every, np.repeat(x.reshape(3, 32).sum(1), 32), rtol=1e-5)


@pytest.mark.parametrize("rows,cols", [(16, 16), (5, 37), (33, 17)])
def test_shared_memory_transpose_any_size(rows, cols):
    a = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
    out = np.zeros((cols, rows), np.float32)
    launch("transpose", (-(-cols // 16), -(-rows // 16)), (16, 16), [a, out, np.int32(rows), np.int32(cols)])
    np.testing.assert_array_equal(out, a.T)


def test_barrier_dependent_exchange_and_missing_barrier():
    x = np.arange(128, dtype=np.float32)
    good, bad = np.zeros(128, np.float32), np.zeros(128, np.float32)
    launch("rotate", (2,), (64,), [x, good, np.int32(1)], shared_mem=64 * 4)
    expected = np.concatenate([np.roll(x[:64], -1), np.roll(x[64:], -1)])
    np.testing.assert_array_equal(good, expected)
    launch("rotate", (2,), (64,), [x, bad, np.int32(0)], shared_mem=64 * 4)   # the planted bug: no barrier
    assert not np.array_equal(bad, expected)


def test_block_reduce_from_common_header():
    x = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    out = np.zeros(1, np.float32)
    launch("block_sum", (1,), (256,), [x, out, np.int32(1000)])
    np.testing.assert_allclose(out[0], x.sum(), rtol=1e-4)


def test_out_of_bounds_read_is_caught_with_the_kernel_name():
    x, out = np.ones(32, np.float32), np.zeros(1, np.float32)
    with pytest.raises(emulator.KernelFault, match=r"kernel off_by_one accessed global memory out of bounds: "
                                                   r"argument 0, 0 bytes past its end, in block \(1, 0, 0\), "
                                                   r"thread \(0, 0, 0\)"):
        launch("off_by_one", (2,), (32,), [x, out, np.int32(32)])  # `i <= n` reads x[32]
    launch("off_by_one", (2,), (32,), [x, out, np.int32(31)])      # the correct bound: fine
    assert out[0] == 32


def test_deadlock_is_reported():
    with pytest.raises(emulator.KernelFault, match="deadlocked"):
        launch("divergent_barrier", (1,), (32,), [np.zeros(32, np.float32)])


def test_atomic_add_and_argument_checks():
    counter = np.zeros(1, np.float32)
    launch("atomic_count", (3,), (64,), [counter])
    assert counter[0] == 192
    with pytest.raises(TypeError, match="np.int32, np.uint32"):
        launch("warp_sums", (1,), (32,), [np.zeros(32, np.float32), np.zeros(1, np.float32), 32])
    with pytest.raises(TypeError, match="takes 3 arguments"):
        launch("warp_sums", (1,), (32,), [np.zeros(32, np.float32)])
    with pytest.raises(KeyError, match="no_such_kernel"):
        launch("no_such_kernel", (1,), (32,), [])
