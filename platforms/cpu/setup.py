"""Builds the optional C++ kernels (``plinth_cpu._C``) from ``csrc/cpu`` of the repository.

The extension is optional: without a C++17 compiler, pybind11 or the ``csrc`` tree, the
pure-Python platform still installs and ``plinth platforms`` says why the kernels are off.
Set ``PLINTH_CPU_BUILD_EXT=0`` to skip the build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
CSRC = HERE.parent.parent / "csrc" / "cpu"
SOURCES = ("bindings.cpp", "isa_avx512.cpp", "isa_avx2.cpp", "isa_neon.cpp", "isa_portable.cpp")


class OptionalBuildExt(build_ext):
    """Compiles the ISA translation units in parallel and never fails the install."""

    def build_extensions(self) -> None:
        self.parallel = self.parallel or os.cpu_count() or 1
        super().build_extensions()

    def build_extension(self, ext) -> None:
        # sources are listed relative to this file (setuptools refuses absolute paths); compile
        # them by absolute path so the objects land inside build_temp, not next to csrc/
        listed = ext.sources
        ext.sources = [str((HERE / s).resolve()) for s in listed]
        try:
            super().build_extension(ext)
        finally:
            ext.sources = listed

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure leaves the pure-Python platform
            print(f"plinth-platform-cpu: C++ kernels not built ({exc}); the torch reference path will run",
                  file=sys.stderr)


def extensions() -> list:
    if os.environ.get("PLINTH_CPU_BUILD_EXT", "1") == "0" or not (CSRC / "bindings.cpp").exists():
        return []
    try:
        import pybind11
    except ImportError:
        print("plinth-platform-cpu: pybind11 missing; C++ kernels not built", file=sys.stderr)
        return []
    from setuptools import Extension

    openmp = [] if sys.platform == "darwin" else ["-fopenmp"]
    return [Extension(
        "plinth_cpu._C",
        sources=[f"../../csrc/cpu/{s}" for s in SOURCES],
        include_dirs=[pybind11.get_include(), str(CSRC)],
        depends=[f"../../csrc/cpu/{h.name}" for h in sorted(CSRC.glob("*.h"))],
        language="c++",
        extra_compile_args=["-std=c++17", "-O3", "-fvisibility=hidden", "-fno-math-errno", "-fno-trapping-math", *openmp],
        extra_link_args=openmp,
        optional=True,
    )]


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
