"""The same bits on every machine: GEMM results of the reference, AVX2 and
AVX-512 kernels compared bitwise, and FASTMLP_KERNEL's choice and errors.

Every kernel gives each element one accumulator, one FMA per k step in k
order, K blocks of the fixed contract size (gemm.h FM_GEMM_KBLOCK) and the
same epilogue (float32 sigmoid/tanh: one polynomial for every ISA), so the
products must agree exactly, not within a tolerance -- whatever the tile
shapes (ref/AVX2 6x16 and 6x8, AVX-512 12x32 and 12x16), layouts or threads.
On a host without AVX-512 the AVX-512 cases skip with a reason (pytest -ra).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from fastmlp._core import _gemm

NAMES = _gemm.arch_names()
CODE = {name: code for code, name in NAMES.items()}
USABLE = [code for code in NAMES if _gemm.arch_usable(code)]
ACTS = {"none": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 3, "tanh": 4}
HAS_AVX512 = _gemm.arch_usable(CODE["avx512"])
needs_avx512 = pytest.mark.skipif(
    not HAS_AVX512, reason="no AVX-512 on this CPU (or OS): the AVX-512 kernels are not run here")

# m covers every M-edge height of a 12-row and of a 6-row tile, n every
# N-edge width of a 32-wide panel, k one, two and three K blocks.
SHAPES = [(1, 1, 1), (2, 33, 3), (5, 70, 17), (11, 31, 64), (12, 32, 8), (13, 65, 100),
          (23, 47, 9), (25, 100, 1025), (37, 17, 2500), (128, 256, 300), (200, 100, 100),
          (7, 300, 64), (64, 10, 5000)]


def _bits(x):
    return x.view(np.uint32 if x.dtype == np.float32 else np.uint64)


def _operands(rng, m, n, k, dtype, ta, tb):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return (a.T if ta else a), (b.T if tb else b)


def _run(arch, a, b, c0, beta, bias, act, nt):
    c = c0.copy()
    _gemm.gemm(a, b, c, alpha=0.75, beta=beta, bias=bias, act=act, slope=0.1, n_threads=nt,
               arch=arch)
    return c


@pytest.mark.skipif(len(USABLE) < 2, reason="only one kernel family usable on this CPU")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_every_kernel_family_gives_the_same_bits(rng, shape, dtype):
    m, n, k = shape
    for ta, tb in [(False, False), (True, False), (False, True)]:
        a, b = _operands(rng, m, n, k, dtype, ta, tb)
        c0 = rng.standard_normal((m, n)).astype(dtype)
        bias = rng.standard_normal(n).astype(dtype)
        for act in ACTS.values():
            for beta, bi in [(0.0, None), (0.5, bias)] if act else [(0.0, None), (0.5, None),
                                                                    (0.0, bias)]:
                ref = _run(CODE["ref"], a, b, c0, beta, bi, act, 1)
                for arch in USABLE:
                    for nt in (1, 2):
                        got = _run(arch, a, b, c0, beta, bi, act, nt)
                        assert np.array_equal(_bits(got), _bits(ref)), (
                            NAMES[arch], nt, ta, tb, act, beta, bi is not None,
                            float(np.max(np.abs(got.astype(float) - ref))))


@pytest.mark.skipif(len(USABLE) < 2, reason="only one kernel family usable on this CPU")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_kernel_families_agree_on_special_values(dtype):
    """NaN, inf, signed zeros, huge and tiny values go through every epilogue alike."""
    rng = np.random.default_rng(5)
    m, n, k = 14, 40, 6
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    a[0, 0], a[1, 1], a[2, 2], a[3, :] = np.nan, np.inf, -np.inf, 0.0
    a[4] *= 1e30 if dtype == np.float32 else 1e300
    a[5] *= 1e-30
    b[:, 3] = -0.0
    bias = np.linspace(-200, 200, n).astype(dtype)
    with np.errstate(all="ignore"):
        for act in ACTS.values():
            ref = _run(CODE["ref"], a, b, np.zeros((m, n), dtype), 0.0, bias, act, 1)
            for arch in USABLE:
                got = _run(arch, a, b, np.zeros((m, n), dtype), 0.0, bias, act, 2)
                same = (_bits(got) == _bits(ref)) | (np.isnan(got) & np.isnan(ref))
                assert same.all(), (NAMES[arch], act)


@needs_avx512
def test_avx512_is_the_default_where_its_fmas_are_full_width():
    # Intel and Zen 5 run 512-bit FMAs at twice the 256-bit rate: AVX-512 is
    # the default there; Zen 4 splits them in two halves and keeps AVX2
    # (measured faster there, same bits).
    import fastmlp
    full = fastmlp.get_config()["cpu_features"]["avx512_full_width"]
    if "FASTMLP_KERNEL" in os.environ:
        pytest.skip("FASTMLP_KERNEL is set: the default is not chosen from the CPU")
    for double in (False, True):
        assert _gemm.gemm_info(double)["arch"] == ("avx512" if full else "avx2")
        info = _gemm.gemm_info(double, CODE["avx512"])
        assert info["arch"] == "avx512" and info["mr"] == 12, info
        assert info["nr"] == (16 if double else 32)
        # the K block is the results contract, the same in every table
        assert info["kc"] == _gemm.gemm_info(double, CODE["ref"])["kc"]


def _vendor_family():
    vendor = family = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("vendor_id") and vendor is None:
                vendor = line.split(":")[1].strip()
            elif line.startswith("cpu family") and family is None:
                family = int(line.split(":")[1])
    return vendor, family


@needs_avx512
@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="no /proc/cpuinfo to compare with")
def test_full_width_rule_matches_the_cpu_vendor_and_family():
    import fastmlp
    vendor, family = _vendor_family()
    want = not (vendor == "AuthenticAMD" and family == 0x19)
    assert fastmlp.get_config()["cpu_features"]["avx512_full_width"] == want


def _import_with(kernel, cwd):
    # cwd away from the source tree: the child must import what pip installed
    code = ("import fastmlp; from fastmlp._core import _gemm; "
            "print(_gemm.gemm_info(False)['arch'], _gemm.gemm_info(True)['arch'])")
    env = dict(os.environ, FASTMLP_KERNEL=kernel)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("kernel", ["ref", "avx2", "avx512", "auto"])
def test_fastmlp_kernel_forces_a_family_or_says_why_not(kernel, tmp_path):
    r = _import_with(kernel, tmp_path)
    usable = kernel in ("ref", "auto") or _gemm.arch_usable(CODE[kernel])
    if usable:
        assert r.returncode == 0, r.stderr[-2000:]
        want = NAMES[_gemm.best_arch()] if kernel == "auto" else kernel
        assert r.stdout.split() == [want, want]
    else:
        assert r.returncode != 0
        assert f"RuntimeError: FASTMLP_KERNEL={kernel}: this CPU (or its OS) does not support" \
            in r.stderr, r.stderr[-2000:]


def test_fastmlp_kernel_unknown_name_is_an_error(tmp_path):
    r = _import_with("avx1024", tmp_path)
    assert r.returncode != 0
    assert "FASTMLP_KERNEL=avx1024: unknown kernel" in r.stderr, r.stderr[-2000:]
