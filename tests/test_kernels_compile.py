"""Every .cu file compiles for sm_80 and sm_90: with nvcc (--ptx), and with NVRTC, the compiler CuPy's RawModule
uses at run time (with the same options as tensorlite/cuda/launch.py), so a kernel that nvcc accepts but NVRTC
rejects (no host headers there) fails here too, not on a user's GPU. And no kernel spills registers to local memory
(ptxas's own report, for both architectures): a performance property that needs no GPU to check. Every compiler gets
the tile sizes as launch.py's -D macros, and a source refuses to compile without them.

Without nvcc or NVRTC (the nvidia-cuda-nvrtc wheel of the cuda12/cuda13 extras) these tests skip, unless
TENSORLITE_REQUIRE_NVCC=1 (CI sets it), where a missing compiler fails."""
import ctypes
import glob
import os
import re
import shutil
import site
import subprocess

import pytest

from tensorlite.cuda.launch import KERNEL_DEFINES, KERNEL_MACROS, NVRTC_OPTIONS
from tensorlite.cuda.sources import kernel_dir

SOURCES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(kernel_dir(), "*.cu")))
NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if os.path.exists("/usr/local/bin/nvcc") else None)
ARCHES = ["80", "90"]


def _missing(what):
    if os.environ.get("TENSORLITE_REQUIRE_NVCC") == "1":
        pytest.fail(f"{what} is required (TENSORLITE_REQUIRE_NVCC=1) but was not found")
    pytest.skip(f"{what} not found")


def _nvrtc():
    found = [p for sp in site.getsitepackages() + [site.getusersitepackages()]
             for p in glob.glob(os.path.join(sp, "nvidia", "**", "libnvrtc.so*"), recursive=True)]
    return ctypes.CDLL(found[0]) if found else None


def test_there_are_kernels():
    assert {"flash_attention.cu", "softmax.cu", "layernorm.cu", "gelu.cu", "dropout.cu", "adamw.cu",
            "embedding.cu"} <= set(SOURCES)


@pytest.mark.parametrize("macro", sorted(KERNEL_MACROS))
def test_a_source_without_its_tile_sizes_does_not_compile(macro):
    """The tile sizes have one home (launch.py): a source that uses one stops, naming it, when it is not given."""
    users = [s for s in SOURCES if macro in open(os.path.join(kernel_dir(), s), encoding="utf-8").read()]
    assert users, f"no kernel uses {macro}: drop it from launch.KERNEL_MACROS"
    others = [d for d in KERNEL_DEFINES if not d.startswith(f"-D{macro}=")]
    for source in users:
        result = subprocess.run(["g++", "-E", "-x", "c++", *others, "-I", kernel_dir(),
                                 os.path.join(kernel_dir(), source)], capture_output=True, text=True)
        assert result.returncode != 0 and "#error" in result.stderr and macro in result.stderr, source


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("source", SOURCES)
def test_kernel_compiles_with_nvcc(source, arch, tmp_path):
    if NVCC is None:
        _missing("nvcc")
    cmd = [NVCC, "--ptx", f"-arch=sm_{arch}", "-std=c++17", *KERNEL_DEFINES, "-I", kernel_dir(),
           os.path.join(kernel_dir(), source), "-o", str(tmp_path / "out.ptx")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert ".entry" in (tmp_path / "out.ptx").read_text()


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("source", SOURCES)
def test_no_kernel_spills_registers(source, arch, tmp_path):
    if NVCC is None:
        _missing("nvcc")
    cmd = [NVCC, "-cubin", f"-arch=sm_{arch}", "-std=c++17", *KERNEL_DEFINES, "-Xptxas", "-v", "-I", kernel_dir(),
           os.path.join(kernel_dir(), source), "-o", str(tmp_path / "out.cubin")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = result.stderr   # per kernel: "Compiling entry function '...'", then its registers and spills
    kernels = re.findall(r"Compiling entry function '(\w+)'", report)
    spills = [int(n) for n in re.findall(r"(\d+) bytes spill (?:stores|loads)", report)]
    assert kernels and len(spills) == 2 * len(kernels), report
    assert not any(spills), f"register spills in {source} for sm_{arch}:\n{report}"


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("source", SOURCES)
def test_kernel_compiles_with_nvrtc(source, arch):
    lib = _nvrtc()
    if lib is None:
        _missing("NVRTC (pip install nvidia-cuda-nvrtc)")
    program = ctypes.c_void_p()
    code = open(os.path.join(kernel_dir(), source), "rb").read()
    assert lib.nvrtcCreateProgram(ctypes.byref(program), code, source.encode(), 0, None, None) == 0
    options = [o.encode() for o in NVRTC_OPTIONS + (f"-I{kernel_dir()}", f"--gpu-architecture=compute_{arch}")]
    status = lib.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(program, log)
    lib.nvrtcDestroyProgram(ctypes.byref(program))
    assert status == 0, log.value.decode()
