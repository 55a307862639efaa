"""Builds binmark's C kernels (src/binmark/deploy/csrc/) during ``pip install``.

The extension has a plain C ABI loaded with ctypes: no torch and no Python headers are used, so
the build needs only a C compiler. Per-ISA code is selected inside the file with
``#pragma GCC target`` and dispatched at run time, so the library is never built for the build
machine's CPU (no -march=native). ``optional=True``: if it cannot build, the install still
succeeds and binmark runs binary layers in pure PyTorch (it warns once).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "binmark.deploy._bitconv",
            sources=[f"src/binmark/deploy/csrc/{name}.c" for name in ("bitconv", "engine", "bconv", "gemm")],
            depends=["src/binmark/deploy/csrc/engine.h", "src/binmark/deploy/csrc/popcount.h"],
            extra_compile_args=["-O3", "-fopenmp", "-fvisibility=hidden", "-std=c11"],
            extra_link_args=["-fopenmp"],
            optional=True,
        )
    ]
)
