"""Build fastmlp: Cython extensions over the C kernels in src_c/, with OpenMP.

Design: every extension links the same C objects. The files under
src_c/kernels/avx2/ are compiled on x86-64 with -mavx2 -mfma, those under
src_c/kernels/avx512/ with -mavx512f -mavx512dq -mavx512bw -mavx512vl (per-file
flags, see FastmlpBuildExt); everything else targets the baseline ISA, and the
kernels are chosen at run time from the CPU's features (src_c/cpu.c). No
-march=native: the wheel must run on any x86-64 CPU.

Environment:
  FASTMLP_SANITIZE=1   build with -fsanitize=address,undefined (debugging)
  FASTMLP_NO_OPENMP=1  build without OpenMP (single-threaded kernels)
"""
import os
import platform
import sys
from glob import glob

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
IS_X86_64 = platform.machine().lower() in ("x86_64", "amd64")
IS_MSVC = sys.platform == "win32"
SANITIZE = os.environ.get("FASTMLP_SANITIZE", "") not in ("", "0")
OPENMP = os.environ.get("FASTMLP_NO_OPENMP", "") in ("", "0")


def c_sources():
    """Every C file under src_c/; files in an avx2/ or avx512/ folder only on x86-64."""
    srcs = sorted(glob("src_c/**/*.c", recursive=True))
    return [s for s in srcs if IS_X86_64 or _isa(s) is None]


def _isa(src):
    """The ISA folder a source file is in ("avx2", "avx512") or None."""
    parts = src.replace(os.sep, "/").split("/")
    return next((p for p in parts if p in ("avx2", "avx512")), None)


# Per-file flags of each ISA folder (GCC/clang; MSVC in isa_flags()).
ISA_FLAGS = {
    "avx2": ["-mavx2", "-mfma"],
    "avx512": ["-mavx2", "-mfma", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl"],
}


def isa_flags(src):
    isa = _isa(src)
    if isa is None:
        return []
    if IS_MSVC:
        return ["/arch:AVX2"] if isa == "avx2" else ["/arch:AVX512"]
    return ISA_FLAGS[isa]


def base_flags():
    if IS_MSVC:
        return ["/O2", "/openmp"] if OPENMP else ["/O2"]
    # -ffp-contract=off: floating-point expressions are evaluated as written
    # (FMAs only where a kernel asks for them with intrinsics), so results do
    # not change with the optimisation level (e.g. the -O1 sanitizer build).
    flags = ["-O3", "-std=c11", "-fno-strict-aliasing", "-ffp-contract=off", "-Wall",
             "-Wno-unused-function"]
    if OPENMP:
        flags.append("-fopenmp")
    if SANITIZE:
        flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
    return flags


def link_flags():
    if IS_MSVC:
        return []
    flags = ["-fopenmp"] if OPENMP else []
    if SANITIZE:
        flags.append("-fsanitize=address,undefined")
    return flags


def macros():
    return [("FM_BUILD_AVX2", "1"), ("FM_BUILD_AVX512", "1")] if IS_X86_64 else []


class FastmlpBuildExt(build_ext):
    """Compiles src_c/ once, with per-file ISA flags, and links it into each extension."""

    def build_extensions(self):
        objects = []
        inc = [os.path.join(HERE, "src_c")]
        for src in c_sources():
            extra = list(base_flags()) + isa_flags(src)
            objects += self.compiler.compile(
                [src], output_dir=self.build_temp, macros=macros(), include_dirs=inc,
                extra_postargs=extra, depends=glob("src_c/**/*.h", recursive=True))
        for ext in self.extensions:
            ext.extra_objects = list(objects)
        super().build_extensions()


def extension(name):
    return Extension(
        f"fastmlp._core.{name}",
        [f"fastmlp/_core/{name}.pyx"],
        include_dirs=["src_c", np.get_include()],
        define_macros=macros() + [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=base_flags(),
        extra_link_args=link_flags(),
    )


# One extension per Cython module in fastmlp/_core/.
EXTENSIONS = [extension(os.path.splitext(os.path.basename(p))[0])
              for p in sorted(glob("fastmlp/_core/*.pyx"))]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        compiler_directives={"language_level": 3, "embedsignature": True},
        include_path=["fastmlp/_core"],
    ),
    cmdclass={"build_ext": FastmlpBuildExt},
)
