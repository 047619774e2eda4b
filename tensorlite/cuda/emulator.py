"""Run the CUDA kernels of kernels/*.cu on the CPU (tests, study, TENSORLITE_FUSED=emulate; never the hot path).

A source is compiled once per content hash with g++ and kernels/emulation/cuda_on_cpu.h, which gives every CUDA
thread its own fiber and real barrier and warp-shuffle semantics. Kernels are called like cudaLaunchKernel does:
a generated shim per `extern "C" __global__` function unpacks a void** argument array. Each global buffer is
copied into memory that ends at a guard page, so reading or writing past its end faults, and the fault comes
back as a KernelFault naming the kernel, the argument, the block and the thread (writes just before the start
land in padding that is checked afterwards).

A launch runs under a Schedule (the order of warps between barriers and warp operations: every one CUDA allows,
so tests run kernels under several) and, unless told otherwise, under the racecheck: two warps touching one word
of shared memory in the same barrier interval, one of them writing, raise SharedMemoryRace naming the array, the
index and both (warp, lane) pairs. The racecheck learns where each `__shared__` variable lives from the library's
symbol table (nm) and the declarations in the source.
"""
import contextlib
import ctypes
import hashlib
import json
import mmap
import os
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass

import numpy as np

from .launch import KERNEL_DEFINES
from .sources import kernel_dir as default_kernel_dir

HEADER = os.path.join("emulation", "cuda_on_cpu.h")
# -fsanitize=thread only makes g++ call the header's __tsan_* hooks before each memory access (nothing links the
# ThreadSanitizer runtime, and one launch runs at a time: statics need no thread-safe guards, which would call
# its atomics); hidden visibility keeps each library's template statics its own.
CXX_FLAGS = ("-std=c++17", "-O1", "-g", "-fPIC", "-DTL_EMULATION", "-Wno-unused-result", "-fvisibility=hidden",
             "-fno-gnu-unique", "-fno-threadsafe-statics", "-fsanitize=thread",
             "--param=tsan-instrument-func-entry-exit=0")
LINK_FLAGS = ("-shared", "-Wl,-z,defs")
PAGE = mmap.PAGESIZE
CANARY = 0xA5
POLICIES = ("lockstep", "warp-at-a-time", "reversed", "random")   # cuda_on_cpu.h's Policy enum, in its order
SCHEDULE_ENV = "TENSORLITE_EMULATOR_SCHEDULE"
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)
_SHARED = re.compile(r"__shared__\s+((?:\w+\s+)*?\w+)\s+(\w+)\s*((?:\[[^\]]*\])*)\s*;")
_DYNAMIC = re.compile(r"TL_DYNAMIC_SHARED\(\s*([^,]+?)\s*,\s*(\w+)\s*\)")
_SYMBOL = re.compile(r"^([0-9a-f]+) ([0-9a-f]+) [bBdDvVuU] (.*)::(\w+)$", re.M)
_ANCHOR = "tl_emu_count"
_C_SIZES = {"char": 1, "short": 2, "int": 4, "unsigned": 4, "float": 4, "long": 8, "double": 8}
_libraries = {}
_one_launch_at_a_time = threading.Lock()   # a library has one scheduler state, the process one SIGSEGV handler


class KernelFault(RuntimeError):
    """An emulated kernel accessed memory out of bounds, deadlocked, or was launched with a bad configuration."""


class SharedMemoryRace(KernelFault):
    """Two warps accessed one word of shared memory between the same two barriers, at least one of them writing."""


class EmulatorBuildError(RuntimeError):
    """g++ could not compile a kernel source for the emulator."""


@dataclass(frozen=True)
class Schedule:
    """The order in which a block's warps run between barriers and warp operations. CUDA promises none, so a
    correct kernel gives the same result under each (written as in TENSORLITE_EMULATOR_SCHEDULE):

        lockstep        every warp to its next barrier or warp operation, then round again (the default)
        warp-at-a-time  warp 0 as far as it can go (a barrier or its end), then warp 1, ...
        reversed        warp-at-a-time from the last warp to the first, lanes last to first
        random:SEED     a seeded random warp, and lane order, at every step (the same seed replays it)
    """
    policy: str = "lockstep"
    seed: int = 0

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"unknown emulator schedule {self.policy!r}: choose one of {', '.join(POLICIES)} "
                             "(random as random:SEED)")

    @classmethod
    def parse(cls, text):
        """'lockstep', 'warp-at-a-time', 'reversed' or 'random:SEED' (a Schedule passes through)."""
        if isinstance(text, Schedule):
            return text
        policy, _, seed = str(text).partition(":")
        if (policy == "random") != bool(seed) or (seed and not seed.isdigit()):
            raise ValueError(f"emulator schedule {text!r}: random takes a seed (random:7), the others none")
        return cls(policy, int(seed or 0))

    def __str__(self):
        return f"random:{self.seed}" if self.policy == "random" else self.policy


# Every policy, random with two seeds: the schedules tests run kernels under (tests/conftest.py), and a set to
# try a new kernel under.
STANDARD_SCHEDULES = (Schedule("lockstep"), Schedule("warp-at-a-time"), Schedule("reversed"), Schedule("random", 1),
                      Schedule("random", 2))
_schedule = None


def current_schedule():
    """The schedule of launches that name none: using_schedule's, else $TENSORLITE_EMULATOR_SCHEDULE, else lockstep."""
    global _schedule
    if _schedule is None:
        _schedule = Schedule.parse(os.environ.get(SCHEDULE_ENV, "lockstep"))
    return _schedule


@contextlib.contextmanager
def using_schedule(schedule):
    """Run the launches inside under `schedule` (a Schedule or its text, e.g. 'random:3')."""
    global _schedule
    previous, _schedule = current_schedule(), Schedule.parse(schedule)
    try:
        yield _schedule
    finally:
        _schedule = previous


def cache_dir():
    return os.environ.get("TENSORLITE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "tensorlite")


def parse_kernels(source_text):
    """[(name, [parameter types])] of every `extern "C" __global__ void name(...)` in (preprocessed) source."""
    kernels = []
    for name, params in _KERNEL.findall(source_text):
        types = []
        for param in (p.strip() for p in params.split(",") if p.strip()):
            words = param.replace("*", " * ").replace("__restrict__", "").split()
            types.append(" ".join(words[:-1]))          # drop the parameter's name
        kernels.append((name, types))
    return kernels


def _element_size(c_type):
    """Bytes of a scalar C type as spelled in a declaration ('unsigned int', 'float'); None for other types."""
    words = [w for w in c_type.split() if w not in ("const", "volatile", "signed", "unsigned")]
    return _C_SIZES.get(words[-1]) if words else 4


def shared_declarations(source_text):
    """{name: (element size or None, trailing extents)} of the `__shared__` variables of (preprocessed) source.
    Trailing extents: None for a scalar; for an array, its dimensions after the first when they are all literal
    numbers (so an element is named tile[2][5]), else [] (named by its flat index)."""
    declared = {}
    for c_type, name, dims in _SHARED.findall(source_text):
        extents = re.findall(r"\[([^\]]*)\]", dims)
        trailing = [int(e) for e in extents[1:]] if all(e.strip().isdigit() for e in extents[1:]) else []
        declared[name] = (_element_size(c_type), trailing if extents else None)
    return declared


def _preprocess(path, *include_dirs):
    """The source after the C preprocessor, so kernels whose parameters come from a macro parse too."""
    cmd = ["g++", "-E", "-P", "-x", "c++", "-DTL_EMULATION", *KERNEL_DEFINES, *[f"-I{d}" for d in include_dirs], path]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise EmulatorBuildError(f"the preprocessor failed on {path}:\n{result.stderr[-4000:]}")
    return result.stdout


def _wrapper(source_path, kernels):
    """C++ that includes the kernel source and adds one void** shim per kernel plus a name table."""
    lines = [f'#include "{source_path}"', ""]
    for name, types in kernels:
        call = ", ".join(f"*({t}*)a[{i}]" for i, t in enumerate(types))
        lines.append(f"static void tl_shim_{name}(void** a) {{ {name}({call}); }}")
    lines.append('extern "C" {')
    lines.append("#define TL_EXPORT __attribute__((visibility(\"default\")))")
    lines.append(f"TL_EXPORT int {_ANCHOR} = {len(kernels)};")
    lines.append("TL_EXPORT const char* tl_emu_names[] = {" + ", ".join(f'"{n}"' for n, _ in kernels) + "};")
    lines.append("static void (*tl_emu_shims[])(void**) = {" + ", ".join(f"tl_shim_{n}" for n, _ in kernels) + "};")
    lines.append("TL_EXPORT int tl_emu_launch(int k, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, "
                 "unsigned bz, size_t smem, void** args, const uintptr_t* guards, int n_guards, int policy, "
                 "unsigned long long seed, const uintptr_t* shared, int n_shared, tl_emu::Race* race, char* err, "
                 "int err_len) {")
    lines.append("  return tl_emu::launch(tl_emu_shims[k], tl_emu_names[k], dim3(gx, gy, gz), dim3(bx, by, bz), "
                 "smem, args, guards, n_guards, policy, seed, shared, n_shared, race, err, err_len);")
    lines.append("}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _symbol_table(library, source_text):
    """Where the library's `__shared__` variables are (offsets from its load address, from nm) and how to name an
    element of each, plus the offset of the anchor symbol that gives the load address at run time."""
    declared = shared_declarations(source_text)
    result = subprocess.run(["nm", "-C", "-S", "--defined-only", library], capture_output=True, text=True)
    if result.returncode != 0:
        raise EmulatorBuildError(f"nm failed on {library}:\n{result.stderr[-4000:]}")
    variables = [{"name": name, "offset": int(offset, 16), "size": int(size, 16), "element": declared[name][0],
                  "extents": declared[name][1]}
                 for offset, size, scope, name in _SYMBOL.findall(result.stdout)
                 if name in declared and not scope.startswith("tl_emu::")]
    anchor = re.search(rf"^([0-9a-f]+) [0-9a-f]+ [A-Za-z] {_ANCHOR}$", result.stdout, re.M)
    dynamic = [(_element_size(c_type), name) for c_type, name in _DYNAMIC.findall(source_text)]
    return {"anchor": int(anchor.group(1), 16), "shared": variables,
            "dynamic": {"names": sorted({n for _, n in dynamic}), "element": dynamic[0][0] if dynamic else None}}


@dataclass(frozen=True)
class Build:
    library: str        # the compiled .so
    kernels: list       # [(name, [parameter types])]
    symbols: str        # JSON: where its shared variables are (_symbol_table)


def build(source, kernel_dir=None):
    """Compile kernels/<source> for the emulator (once per content hash) into a Build."""
    kdir = os.path.abspath(kernel_dir or default_kernel_dir())
    main_dir = os.path.abspath(default_kernel_dir())
    path = os.path.join(kdir, source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no kernel source {source!r} in {kdir}")
    header = os.path.join(main_dir, HEADER)
    texts = [open(p, encoding="utf-8").read() for p in (path, header)]
    texts += [open(os.path.join(d, f), encoding="utf-8").read() for d in {kdir, main_dir}
              for f in sorted(os.listdir(d)) if f.endswith(".cuh")]
    preprocessed = _preprocess(path, kdir, main_dir)
    kernels = parse_kernels(preprocessed)
    if not kernels:
        raise EmulatorBuildError(f'{source} defines no extern "C" __global__ kernel')
    flags = CXX_FLAGS + KERNEL_DEFINES + LINK_FLAGS
    digest = hashlib.sha256("\0".join(texts + [" ".join(flags), path]).encode()).hexdigest()[:20]
    out_dir = os.path.join(cache_dir(), "emulator", f"{os.path.splitext(source)[0]}-{digest}")
    library, symbols = os.path.join(out_dir, "kernels.so"), os.path.join(out_dir, "symbols.json")
    if not os.path.exists(library):
        os.makedirs(out_dir, exist_ok=True)
        wrapper = os.path.join(out_dir, "wrapper.cpp")
        with open(wrapper, "w") as f:
            f.write(_wrapper(path, kernels))
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
        os.close(fd)
        obj = tmp[:-3] + ".o"
        compile_cmd = ["g++", *CXX_FLAGS, *KERNEL_DEFINES, "-include", header, "-I", kdir, "-I", main_dir, "-c",
                       wrapper, "-o", obj]
        try:
            for cmd in (compile_cmd, ["g++", *LINK_FLAGS, obj, "-o", tmp]):
                result = subprocess.run(cmd, capture_output=True, text=True)
                if result.returncode != 0:
                    raise EmulatorBuildError(f"g++ failed on {source}:\n{result.stderr[-4000:]}")
            table = json.dumps(_symbol_table(tmp, preprocessed))
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        finally:
            if os.path.exists(obj):
                os.remove(obj)
        with open(tmp + ".json", "w") as f:
            f.write(table)
        os.replace(tmp + ".json", symbols)
        os.replace(tmp, library)    # atomic, and last: a library in the cache has its symbol table beside it
    return Build(library, kernels, symbols)


class _Race(ctypes.Structure):
    """cuda_on_cpu.h's Race: the first race of a launch."""
    _fields_ = [("address", ctypes.c_uint64), ("dynamic", ctypes.c_int32), ("first_thread", ctypes.c_int32),
                ("first_write", ctypes.c_int32), ("second_thread", ctypes.c_int32), ("second_write", ctypes.c_int32),
                ("block", ctypes.c_uint32 * 3), ("count", ctypes.c_int64)]


@dataclass
class _Library:
    handle: ctypes.CDLL
    symbols: dict
    base: int           # the load address: symbol offsets + base are addresses
    ranges: ctypes.Array   # (start, end) address pairs of the shared variables, for the racecheck


def _load(built):
    if built.library not in _libraries:
        lib = ctypes.CDLL(built.library)
        lib.tl_emu_launch.restype = ctypes.c_int
        lib.tl_emu_launch.argtypes = [ctypes.c_int] + [ctypes.c_uint] * 6 + [
            ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_uint64), ctypes.c_int,
            ctypes.c_int, ctypes.c_ulonglong, ctypes.POINTER(ctypes.c_uint64), ctypes.c_int, ctypes.POINTER(_Race),
            ctypes.c_char_p, ctypes.c_int]
        with open(built.symbols) as f:
            symbols = json.load(f)
        base = ctypes.addressof(ctypes.c_int.in_dll(lib, _ANCHOR)) - symbols["anchor"]
        bounds = [a for v in symbols["shared"] for a in (base + v["offset"], base + v["offset"] + v["size"])]
        _libraries[built.library] = _Library(lib, symbols, base, (ctypes.c_uint64 * len(bounds))(*bounds))
    return _libraries[built.library]


def _element_name(name, element, extents, byte):
    """`scratch[3]`, `tile[2][5]` (extents: the dimensions after the first; None for a scalar) or `x (byte 6)` for
    an element type of unknown size."""
    if element is None:
        return f"{name} (byte {byte})"
    if extents is None:
        return name
    index, rest = [], byte // element
    for extent in reversed(extents):
        rest, i = divmod(rest, extent)
        index.insert(0, i)
    return name + "".join(f"[{i}]" for i in [rest] + index)


def _race_message(kernel, race, library, schedule):
    if race.dynamic:
        dynamic = library.symbols["dynamic"]
        where = _element_name("/".join(dynamic["names"]) or "dynamic shared memory", dynamic["element"], [],
                              race.address)
    else:
        variable = next(v for v in library.symbols["shared"]
                        if 0 <= race.address - library.base - v["offset"] < v["size"])
        where = _element_name(variable["name"], variable["element"], variable["extents"],
                              race.address - library.base - variable["offset"])

    def access(thread, write):
        return f"{'written' if write else 'read'} by warp {thread // 32} lane {thread % 32}"

    return (f"kernel {kernel}: shared-memory race on {where} in block ({', '.join(map(str, race.block))}): "
            f"{access(race.first_thread, race.first_write)}, then {access(race.second_thread, race.second_write)}, "
            f"with no __syncthreads() between them ({race.count} racing accesses in this launch; "
            f"schedule {schedule})")


_libc = ctypes.CDLL(None, use_errno=True)


class GuardedBuffer:
    """A copy of an array placed so that its last byte is followed by an inaccessible page."""

    def __init__(self, array):
        self.array = array
        nbytes = max(array.nbytes, 1)
        span = -(-nbytes // PAGE) * PAGE
        self.map = mmap.mmap(-1, span + PAGE)
        self.offset = span - nbytes
        base = ctypes.addressof(ctypes.c_char.from_buffer(self.map))
        self.address, self.guard = base + self.offset, base + span
        self.map[: self.offset] = bytes([CANARY]) * self.offset
        view = np.frombuffer(self.map, dtype=np.uint8, count=array.nbytes, offset=self.offset)
        view[:] = array.view(np.uint8).reshape(-1)
        del view
        if _libc.mprotect(ctypes.c_void_p(self.guard), PAGE, 0) != 0:
            raise OSError(ctypes.get_errno(), "mprotect failed for a guard page")

    def copy_back(self, name):
        if any(b != CANARY for b in self.map[: self.offset]):
            raise KernelFault(f"kernel {name} wrote before the start of an argument buffer")
        out = np.frombuffer(self.map, dtype=np.uint8, count=self.array.nbytes, offset=self.offset)
        self.array.view(np.uint8).reshape(-1)[:] = out
        del out

    def close(self):
        _libc.mprotect(ctypes.c_void_p(self.guard), PAGE, 3)
        self.map.close()


_SCALARS = {np.int32: ctypes.c_int32, np.uint32: ctypes.c_uint32, np.int64: ctypes.c_int64,
            np.float32: ctypes.c_float}


def _scalar(value):
    """A NumPy scalar as the C type of the same width: a Python int or float has no width, so it is refused."""
    if type(value) not in _SCALARS:
        raise TypeError(f"kernel scalar arguments must be np.int32, np.uint32, np.int64 or np.float32, got "
                        f"{type(value).__name__} ({value!r}): CUDA would read the wrong number of bytes")
    return _SCALARS[type(value)](value.item())


def launch(source, kernel, grid, block, shared_mem, args, kernel_dir=None, schedule=None, racecheck=True):
    """Run kernel `kernel` of kernels/<source> over grid x block threads, like CuPy's RawKernel call.

    args: C-contiguous NumPy arrays (written back in place) and np.int32/np.uint32/np.int64/np.float32 scalars,
    in the kernel's parameter order. schedule: a Schedule or its text (default: current_schedule()). racecheck:
    raise SharedMemoryRace (and write nothing back) when two warps race on shared memory."""
    schedule = current_schedule() if schedule is None else Schedule.parse(schedule)
    built = build(source, kernel_dir)
    library = _load(built)
    names = [n for n, _ in built.kernels]
    if kernel not in names:
        raise KeyError(f"kernel {kernel!r} is not in {source} (it has {', '.join(names)})")
    index = names.index(kernel)
    expected = len(built.kernels[index][1])
    if len(args) != expected:
        raise TypeError(f"kernel {kernel} takes {expected} arguments, got {len(args)}")
    grid, block = (tuple(grid) + (1, 1))[:3], (tuple(block) + (1, 1))[:3]
    buffers, holders, guards, arg_index = [], [], [], []
    try:
        for i, a in enumerate(args):
            if isinstance(a, np.ndarray):
                if not a.flags.c_contiguous:
                    raise ValueError(f"kernel {kernel} argument {i} must be C-contiguous")
                buf = GuardedBuffer(a)
                buffers.append(buf)
                holders.append(ctypes.c_void_p(buf.address))
                guards += [buf.guard, buf.guard + PAGE]
                arg_index.append(i)
            else:
                holders.append(_scalar(a))
        pointers = (ctypes.c_void_p * len(holders))(*[ctypes.cast(ctypes.pointer(h), ctypes.c_void_p)
                                                       for h in holders])
        guard_array = (ctypes.c_uint64 * (len(guards) + len(arg_index)))(*(guards + arg_index))
        err = ctypes.create_string_buffer(1024)
        race = _Race()
        with _one_launch_at_a_time:
            status = library.handle.tl_emu_launch(
                index, *grid, *block, int(shared_mem), pointers, guard_array, len(arg_index),
                POLICIES.index(schedule.policy), schedule.seed, library.ranges, len(library.ranges) // 2,
                ctypes.byref(race) if racecheck else None, err, len(err))
        if status != 0:
            raise KernelFault(f"{err.value.decode()} (schedule {schedule})")
        if race.count:
            raise SharedMemoryRace(_race_message(kernel, race, library, schedule))
        for buf in buffers:
            buf.copy_back(kernel)
    finally:
        for buf in buffers:
            buf.close()
