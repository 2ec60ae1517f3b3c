"""The measured FMA peak (src_c/peak.c, kernels/<isa>/peak_<isa>.c, fastmlp/_peak.py).

No timing is asserted against a target: the checks are that the probe does the work it
counts (its rate is bounded above by what any core can do, so a loop the compiler dropped
fails, and below by the flops over the wall time the call took from Python) and that the
peak belongs to the widest usable ISA."""
import time

import pytest

from fastmlp import _peak
from fastmlp._core import _gemm, _runtime

ARCHS = ("ref", "avx2", "avx512")
CODES = {name: code for code, name in _gemm.arch_names().items()}
LANES = {("ref", False): 4, ("ref", True): 4, ("avx2", False): 8, ("avx2", True): 4,
         ("avx512", False): 16, ("avx512", True): 8}


def _usable(arch):
    return _gemm.arch_usable(CODES[arch])


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("arch", ARCHS)
def test_probe_does_the_flops_it_counts(arch, double):
    if not _usable(arch):
        pytest.skip(f"{arch} is not usable on this CPU/build")
    assert _runtime.fma_lanes(arch, double) == LANES[arch, double]
    iters, nt = 200_000, 1
    flops = iters * 12 * LANES[arch, double] * 2          # 12 chains, 2 flops per lane-FMA
    _runtime.fma_peak(arch, double, nt, 1000)
    t0 = time.perf_counter()
    g = _runtime.fma_peak(arch, double, nt, iters)
    wall = time.perf_counter() - t0
    # lower bound: the C timer runs inside the Python call
    assert g * 1e9 * wall >= flops * 0.999
    # upper bound: 4 FMA pipes x 6 GHz per core would be beyond any x86 core today; a
    # probe whose loop was optimised away reports far more
    assert g <= nt * LANES[arch, double] * 2 * 4 * 6.0


@pytest.mark.parametrize("arch", ARCHS)
def test_unusable_or_unknown_arch_is_a_clear_error(arch):
    if _usable(arch):
        with pytest.raises(ValueError, match="n_threads and iters must be >= 1"):
            _runtime.fma_peak(arch, False, 0, 10)
        with pytest.raises(ValueError, match="n_threads and iters must be >= 1"):
            _runtime.fma_peak(arch, False, 1, 0)
    else:
        with pytest.raises(ValueError, match="not usable"):
            _runtime.fma_peak(arch, False, 1, 10)
    with pytest.raises(ValueError, match="unknown arch"):
        _runtime.fma_peak("sse9", False, 1, 10)


def test_peak_is_of_the_widest_usable_isa_and_cached():
    f = _runtime.cpu_features()
    expect = "avx512" if f["avx512"] else ("avx2" if f["avx2"] and f["fma"] else "ref")
    assert _peak.widest_isa() == expect and _usable(expect)
    p = _peak.measure("float32", 1)
    assert p.isa == expect and p.threads == 1 and p.dtype == "float32" and p.gflops > 0
    assert _peak.measure("float32", 1) is p                   # once per process
    many = _peak.measure("float64", 10_000)
    assert many.threads == _runtime.omp_num_procs()           # no FMA units beyond the cores
    with pytest.raises(ValueError, match="float32 or float64"):
        _peak.measure("int8", 1)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        _peak.measure("float32", 0)
