"""Build and run-time configuration report (``fastmlp.show_config()``)."""
import os

from fastmlp import _peak
from fastmlp._core import _gemm, _runtime
from fastmlp._threads import get_num_threads
from fastmlp._version import __version__


def get_config():
    """Dict of what fastmlp was built with and what it uses on this machine."""
    omp = _runtime.openmp_version()
    return {
        "version": __version__,
        "compiler": _runtime.compiler(),
        "openmp": bool(omp),
        "openmp_version": omp,
        "cpu_features": _runtime.cpu_features(),
        "kernels_compiled": [name for code, name in _gemm.arch_names().items()
                             if _gemm.arch_compiled(code)],
        "gemm_float32": _gemm.gemm_info(False),
        "gemm_float64": _gemm.gemm_info(True),
        "num_threads": get_num_threads(),
        "cpu_count": _runtime.omp_num_procs(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "FASTMLP_KERNEL": os.environ.get("FASTMLP_KERNEL"),
    }


def show_config(file=None):
    """Print the compiler, OpenMP, CPU features, chosen GEMM kernels and their blocking,
    the measured FMA peak of the widest ISA, and the thread count."""
    c = get_config()
    feats = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in c["cpu_features"].items())

    def kern(info):
        return (f"{info['name']} (MR={info['mr']} NR={info['nr']} MC={info['mc']} "
                f"KC={info['kc']} NC={info['nc']}; no packing for m <= {info['smallm']})")

    f = c["cpu_features"]
    if c["FASTMLP_KERNEL"] not in (None, "", "auto"):
        why = f"forced by FASTMLP_KERNEL={c['FASTMLP_KERNEL']}"
    elif f["avx512"] and not f["avx512_full_width"]:
        why = ("AVX-512 present but its 512-bit FMAs are two 256-bit halves on this CPU "
               "(AMD Zen 4), where the AVX2 kernels are faster; FASTMLP_KERNEL=avx512 forces it")
    else:
        why = "the widest ISA this CPU and OS support"
    p1, pn = _peak.measure("float32", 1), _peak.measure("float32", c["num_threads"])
    d1 = _peak.measure("float64", 1)
    peak_line = (f"{p1.gflops:.1f} GFLOP/s float32 on 1 thread, {pn.gflops:.1f} on "
                 f"{pn.threads}; float64 {d1.gflops:.1f} on 1 (measured, {p1.isa} FMA probe, "
                 f"the widest ISA here)")
    lines = [
        f"fastmlp {c['version']}",
        f"  compiler:        {c['compiler']}",
        "  OpenMP:          " + (f"on (version {c['openmp_version']})" if c["openmp"] else "off"),
        f"  CPU features:    {feats}",
        f"  kernels built:   {', '.join(c['kernels_compiled'])}",
        f"  kernel choice:   {c['gemm_float32']['arch']} ({why})",
        f"  GEMM float32:    {kern(c['gemm_float32'])}",
        f"  GEMM float64:    {kern(c['gemm_float64'])}",
        f"  FMA peak:        {peak_line}",
        f"  threads:         {c['num_threads']} (cores: {c['cpu_count']}, "
        f"OMP_NUM_THREADS={c['OMP_NUM_THREADS'] or 'unset'})",
    ]
    print("\n".join(lines), file=file)
