"""Run the CUDA kernels of kernels/*.cu on the CPU (tests, study, TENSORLITE_FUSED=emulate; never the hot path).

A source is compiled once per content hash with g++ and kernels/emulation/cuda_on_cpu.h, which gives every CUDA
thread its own fiber and real barrier and warp-shuffle semantics. Kernels are called like cudaLaunchKernel does:
a generated shim per `extern "C" __global__` function unpacks a void** argument array. Each global buffer is
copied into memory that ends at a guard page, so reading or writing past its end faults, and the fault comes
back as a KernelFault naming the kernel, the argument, the block and the thread (writes just before the start
land in padding that is checked afterwards).
"""
import ctypes
import hashlib
import mmap
import os
import re
import subprocess
import tempfile

import numpy as np

from .launch import KERNEL_DEFINES
from .sources import kernel_dir as default_kernel_dir

HEADER = os.path.join("emulation", "cuda_on_cpu.h")
CXX_FLAGS = ("-std=c++17", "-O1", "-g", "-fPIC", "-shared", "-DTL_EMULATION", "-Wno-unused-result")
PAGE = mmap.PAGESIZE
CANARY = 0xA5
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)
_libraries = {}


class KernelFault(RuntimeError):
    """An emulated kernel accessed memory out of bounds, deadlocked, or was launched with a bad configuration."""


class EmulatorBuildError(RuntimeError):
    """g++ could not compile a kernel source for the emulator."""


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
    lines.append(f"int tl_emu_count = {len(kernels)};")
    lines.append("const char* tl_emu_names[] = {" + ", ".join(f'"{n}"' for n, _ in kernels) + "};")
    lines.append("static void (*tl_emu_shims[])(void**) = {" + ", ".join(f"tl_shim_{n}" for n, _ in kernels) + "};")
    lines.append("int tl_emu_launch(int k, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, "
                 "unsigned bz, size_t smem, void** args, const uintptr_t* guards, int n_guards, char* err, "
                 "int err_len) {")
    lines.append("  return tl_emu::launch(tl_emu_shims[k], tl_emu_names[k], dim3(gx, gy, gz), dim3(bx, by, bz), "
                 "smem, args, guards, n_guards, err, err_len);")
    lines.append("}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def build(source, kernel_dir=None):
    """Compile kernels/<source> for the emulator (once per content hash); return (library path, kernels)."""
    kdir = os.path.abspath(kernel_dir or default_kernel_dir())
    main_dir = os.path.abspath(default_kernel_dir())
    path = os.path.join(kdir, source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no kernel source {source!r} in {kdir}")
    header = os.path.join(main_dir, HEADER)
    texts = [open(p, encoding="utf-8").read() for p in (path, header)]
    texts += [open(os.path.join(d, f), encoding="utf-8").read() for d in {kdir, main_dir}
              for f in sorted(os.listdir(d)) if f.endswith(".cuh")]
    kernels = parse_kernels(_preprocess(path, kdir, main_dir))
    if not kernels:
        raise EmulatorBuildError(f'{source} defines no extern "C" __global__ kernel')
    digest = hashlib.sha256("\0".join(texts + [" ".join(CXX_FLAGS + KERNEL_DEFINES), path]).encode()).hexdigest()[:20]
    out_dir = os.path.join(cache_dir(), "emulator", f"{os.path.splitext(source)[0]}-{digest}")
    library = os.path.join(out_dir, "kernels.so")
    if not os.path.exists(library):
        os.makedirs(out_dir, exist_ok=True)
        wrapper = os.path.join(out_dir, "wrapper.cpp")
        with open(wrapper, "w") as f:
            f.write(_wrapper(path, kernels))
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
        os.close(fd)
        cmd = ["g++", *CXX_FLAGS, *KERNEL_DEFINES, "-include", header, "-I", kdir, "-I", main_dir, wrapper, "-o", tmp]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            os.remove(tmp)
            raise EmulatorBuildError(f"g++ failed on {source}:\n{result.stderr[-4000:]}")
        os.replace(tmp, library)    # atomic: a concurrent build of the same hash produces the same file
    return library, kernels


def _load(library):
    if library not in _libraries:
        lib = ctypes.CDLL(library)
        lib.tl_emu_launch.restype = ctypes.c_int
        lib.tl_emu_launch.argtypes = [ctypes.c_int] + [ctypes.c_uint] * 6 + [
            ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_uint64), ctypes.c_int,
            ctypes.c_char_p, ctypes.c_int]
        _libraries[library] = lib
    return _libraries[library]


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


def launch(source, kernel, grid, block, shared_mem, args, kernel_dir=None):
    """Run kernel `kernel` of kernels/<source> over grid x block threads, like CuPy's RawKernel call.

    args: C-contiguous NumPy arrays (written back in place) and np.int32/np.uint32/np.int64/np.float32 scalars,
    in the kernel's parameter order."""
    library, kernels = build(source, kernel_dir)
    names = [n for n, _ in kernels]
    if kernel not in names:
        raise KeyError(f"kernel {kernel!r} is not in {source} (it has {', '.join(names)})")
    index = names.index(kernel)
    expected = len(kernels[index][1])
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
        status = _load(library).tl_emu_launch(index, *grid, *block, int(shared_mem), pointers, guard_array,
                                              len(arg_index), err, len(err))
        if status != 0:
            raise KernelFault(err.value.decode())
        for buf in buffers:
            buf.copy_back(kernel)
    finally:
        for buf in buffers:
            buf.close()
