"""The CUDA-on-CPU emulator: barriers, shuffles, shared memory, atomics, schedules, the racecheck, and the bugs it
must catch."""
import os

import numpy as np
import pytest

from tensorlite.cuda import emulator

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "emulation_kernels")


def launch(kernel, grid, block, args, shared_mem=0, **options):
    emulator.launch("harness.cu", kernel, grid, block, shared_mem, args, kernel_dir=HERE, **options)


def test_warp_shuffle_reductions(schedule):
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
def test_shared_memory_transpose_any_size(rows, cols, schedule):
    a = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
    out = np.zeros((cols, rows), np.float32)
    launch("transpose", (-(-cols // 16), -(-rows // 16)), (16, 16), [a, out, np.int32(rows), np.int32(cols)])
    np.testing.assert_array_equal(out, a.T)


def test_barrier_dependent_exchange_and_missing_barrier(schedule):
    x = np.arange(128, dtype=np.float32)
    good, bad = np.zeros(128, np.float32), np.zeros(128, np.float32)
    launch("rotate", (2,), (64,), [x, good, np.int32(1)], shared_mem=64 * 4)
    expected = np.concatenate([np.roll(x[:64], -1), np.roll(x[64:], -1)])
    np.testing.assert_array_equal(good, expected)
    # the planted bug, no barrier: thread 31 (warp 0) reads the slot thread 32 (warp 1) writes, or thread 63 thread 0's
    with pytest.raises(emulator.SharedMemoryRace, match=r"kernel rotate: shared-memory race on slots\[(32|0)\] in "
                                                        r"block \(0, 0, 0\): (read|written) by warp [01] lane (31|0), "
                                                        rf"then .* warp [01] lane (0|31).* schedule {schedule}\)"):
        launch("rotate", (2,), (64,), [x, bad, np.int32(0)], shared_mem=64 * 4)
    launch("rotate", (2,), (64,), [x, bad, np.int32(0)], shared_mem=64 * 4, racecheck=False)
    assert not np.array_equal(bad, expected)          # and without the racecheck, stale slots in the result


def test_race_across_a_shuffle_is_reported_whatever_the_schedule(schedule):
    """block_reduce without its second barrier: warps race on scratch across warp shuffles, which order nothing
    between warps. The racecheck reports it under every schedule; the result is wrong only under some."""
    x = np.random.default_rng(2).standard_normal(128).astype(np.float32)
    out = np.zeros(8, np.float32)                     # (first sum, second sum) from each of the 4 warps
    with pytest.raises(emulator.SharedMemoryRace, match=r"kernel two_sums_one_barrier: shared-memory race on "
                                                        r"scratch\[[0-3]\] .*warp [0-3] lane [0-3], then "
                                                        r"(read|written) by warp [0-3] lane [0-3]"):
        launch("two_sums_one_barrier", (1,), (128,), [x, out])
    assert not out.any()                              # a raced launch writes nothing back
    launch("two_sums_one_barrier", (1,), (128,), [x, out], racecheck=False)
    right = np.allclose(out, np.tile([x.sum(), 2 * x.sum()], 4), rtol=1e-5)
    if schedule.policy == "lockstep":
        assert right                                  # lockstep hides this race: no warp gets ahead of another
    elif schedule.policy != "random":
        assert not right                              # the first warp to run overwrites scratch for the others


def test_write_write_race_is_reported(schedule):
    out = np.zeros(1, np.int32)
    with pytest.raises(emulator.SharedMemoryRace, match=r"kernel last_warp_wins: shared-memory race on winner in "
                                                        r"block \(0, 0, 0\): written by warp \d lane 0, then "
                                                        r"written by warp \d lane 0"):
        launch("last_warp_wins", (1,), (96,), [out])
    launch("last_warp_wins", (1,), (96,), [out], racecheck=False)
    if schedule.policy != "random":
        assert out[0] == {"lockstep": 2, "warp-at-a-time": 2, "reversed": 0}[schedule.policy]


def test_warp_synchronous_code_and_atomics_are_no_race(schedule):
    x = np.arange(96, dtype=np.float32)
    out = np.zeros(96, np.float32)
    launch("swap_neighbours_in_warp", (1,), (96,), [x, out])
    np.testing.assert_array_equal(out, x.reshape(-1, 2)[:, ::-1].reshape(-1))
    counts = np.zeros(2, np.int32)
    launch("shared_atomic_count", (2,), (160,), [counts])
    np.testing.assert_array_equal(counts, [160, 160])


def test_schedules_are_named_and_checked(monkeypatch):
    assert str(emulator.Schedule.parse("random:7")) == "random:7" and emulator.Schedule.parse("reversed").seed == 0
    with pytest.raises(ValueError, match="random takes a seed"):
        emulator.Schedule.parse("random")
    with pytest.raises(ValueError, match="unknown emulator schedule 'sideways'"):
        emulator.Schedule.parse("sideways")
    monkeypatch.setenv(emulator.SCHEDULE_ENV, "random:5")
    monkeypatch.setattr(emulator, "_schedule", None)                 # as in a fresh process
    assert emulator.current_schedule() == emulator.Schedule("random", 5)
    with emulator.using_schedule("reversed"):
        assert str(emulator.current_schedule()) == "reversed"
    assert str(emulator.current_schedule()) == "random:5"


def test_block_reduce_from_common_header(schedule):
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


@pytest.mark.parametrize("threads", [32, 64])   # 64: warp 1 passes its shuffle and ends, warp 0 stays stuck
def test_deadlock_is_reported(threads, schedule):
    with pytest.raises(emulator.KernelFault, match=rf"deadlocked in block \(0, 0, 0\).*schedule {schedule}"):
        launch("divergent_barrier", (1,), (threads,), [np.zeros(threads, np.float32)])


def test_atomic_add_and_argument_checks(schedule):
    counter = np.zeros(1, np.float32)
    launch("atomic_count", (3,), (64,), [counter])
    assert counter[0] == 192
    with pytest.raises(TypeError, match="np.int32, np.uint32"):
        launch("warp_sums", (1,), (32,), [np.zeros(32, np.float32), np.zeros(1, np.float32), 32])
    with pytest.raises(TypeError, match="takes 3 arguments"):
        launch("warp_sums", (1,), (32,), [np.zeros(32, np.float32)])
    with pytest.raises(KeyError, match="no_such_kernel"):
        launch("no_such_kernel", (1,), (32,), [])
