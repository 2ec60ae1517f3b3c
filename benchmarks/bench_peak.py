"""The machine's limit, recorded with every run so results can be told apart.

fastmlp's speed means little without the hardware's: an AVX2-only host and an
AVX-512 host give different GFLOP/s for the same commit. These record what the
other suites are quoted against (``bench_gemm.py``'s ``track_percent_of_peak``):

* ``FmaPeak.track_fma_peak`` (params dtype x isa x threads): GFLOP/s of the
  FMA probe (src_c/peak.c, kernels/<isa>/peak_<isa>.c; fastmlp._peak), best of
  5 short runs, for each ISA this CPU can run (others are skipped);
* ``MachineIsa.track_widest_isa_bits``: 512 (AVX-512), 256 (AVX2+FMA) or 128
  (portable C) -- the width the peak belongs to;
* ``MachineIsa.track_gemm_kernel_bits``: the width of the GEMM kernels that
  ran (on AMD Zen 4, 256 although 512 is available: its 512-bit FMAs are two
  256-bit halves and the AVX2 kernels measured faster).
"""
from fastmlp import _peak
from fastmlp._core import _gemm

from .common import DTYPES, THREADS

_BITS = {"avx512": 512, "avx2": 256, "ref": 128}
_CODES = {name: code for code, name in _gemm.arch_names().items()}


class FmaPeak:
    params = [DTYPES, ("ref", "avx2", "avx512"), THREADS]
    param_names = ["dtype", "isa", "threads"]
    timeout = 60

    def setup(self, dtype, isa, threads):
        if not _gemm.arch_usable(_CODES[isa]):
            raise NotImplementedError(f"{isa} is not usable on this CPU")

    def track_fma_peak(self, dtype, isa, threads):
        return _peak.measure(dtype, threads, isa).gflops

    track_fma_peak.unit = "GFLOP/s"


class MachineIsa:
    def track_widest_isa_bits(self):
        return _BITS[_peak.widest_isa()]

    track_widest_isa_bits.unit = "bits"

    def track_gemm_kernel_bits(self):
        return _BITS[_gemm.gemm_info(False)["arch"]]

    track_gemm_kernel_bits.unit = "bits"
