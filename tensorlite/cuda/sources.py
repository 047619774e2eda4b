"""Where the .cu sources are: kernels/ beside the package in a checkout, tensorlite/_kernels once installed."""
import os


def kernel_dir():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))     # .../tensorlite
    for candidate in (os.path.join(os.path.dirname(here), "kernels"), os.path.join(here, "_kernels")):
        if os.path.isfile(os.path.join(candidate, "common.cuh")):
            return candidate
    raise FileNotFoundError("the CUDA sources (kernels/*.cu) are missing: reinstall tensorlite, or run from a "
                            "checkout that has the kernels/ folder")


def read_source(name):
    with open(os.path.join(kernel_dir(), name), encoding="utf-8") as f:
        return f.read()
