"""Packaging: the engine, the GPT built on it, and the CUDA sources it compiles at run time."""
from setuptools import find_packages, setup

setup(
    name="tensorlite",
    version="0.1.0",
    description="A small, readable reverse-mode autograd framework on NumPy and CuPy, with a GPT built on it",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    # exercises/ is not packaged: a learner edits its files in the checkout, where `python -m exercises` grades
    # them; an installed copy would be a second set of stubs, graded instead of the ones being edited.
    packages=find_packages(include=["tensorlite", "tensorlite.*", "gpt", "gpt.*"]) + ["tensorlite._kernels"],
    # The .cu sources live at the top level (kernels/) in a checkout; installed, they ride along as package data.
    package_dir={"tensorlite._kernels": "kernels"},
    # the explorer page's template, style and script (gpt/explore.py inlines them into each page it writes)
    package_data={"tensorlite._kernels": ["*.cu", "*.cuh", "emulation/*.h"], "gpt": ["explore_page/*"]},
    # regex: GPT-2's pre-tokenizer needs \p{L} and \p{N}; safetensors: Hugging Face's weight files, read by NumPy
    install_requires=["numpy>=1.22", "tqdm", "matplotlib", "threadpoolctl", "regex", "safetensors"],
    extras_require={
        # tiktoken: the reference the BPE tests compare against; playwright drives Debian's chromium
        # (/usr/bin/chromium) in the explorer page's browser tests, and never downloads a browser of its own
        "dev": ["pytest", "hypothesis", "tiktoken", "playwright"],
        "hub": ["huggingface_hub"],                   # GPT.from_pretrained("gpt2"): downloads, needs network
        # NVRTC is what CuPy's RawModule compiles the kernels with (the tests compile with it too)
        "cuda12": ["cupy-cuda12x", "nvidia-cuda-nvrtc-cu12"],
        "cuda13": ["cupy-cuda13x", "nvidia-cuda-nvrtc"],
    },
)
