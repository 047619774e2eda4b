"""Every .cu file compiles for sm_80 and sm_90 with nvcc: a syntax error in a kernel fails the suite.

Without nvcc these tests skip, unless TENSORLITE_REQUIRE_NVCC=1 (CI sets it), where a missing nvcc fails."""
import glob
import os
import shutil
import subprocess

import pytest

from tensorlite.cuda.sources import kernel_dir

SOURCES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(kernel_dir(), "*.cu")))
NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if os.path.exists("/usr/local/bin/nvcc") else None)


def test_there_are_kernels():
    assert {"flash_attention.cu", "softmax.cu"} <= set(SOURCES)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("source", SOURCES)
def test_kernel_compiles(source, arch, tmp_path):
    if NVCC is None:
        if os.environ.get("TENSORLITE_REQUIRE_NVCC") == "1":
            pytest.fail("nvcc is required (TENSORLITE_REQUIRE_NVCC=1) but was not found")
        pytest.skip("nvcc not found")
    cmd = [NVCC, "--ptx", f"-arch={arch}", "-std=c++17", "-I", kernel_dir(), os.path.join(kernel_dir(), source),
           "-o", str(tmp_path / "out.ptx")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert ".entry" in (tmp_path / "out.ptx").read_text()
