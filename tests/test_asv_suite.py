"""The asv suite (benchmarks/) imports and validates against the installed fastmlp, and its
machine-limit records (bench_peak.py) say which ISA a result came from."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fastmlp import _peak
from fastmlp._core import _gemm

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (ROOT / "benchmarks" / "bench_peak.py").exists(),
                                reason="the asv suite is not in this tree")


def _load(name):
    # benchmarks/ is a package using relative imports: load it by path, not via sys.path
    pkg = importlib.util.spec_from_file_location(
        "benchmarks", ROOT / "benchmarks" / "__init__.py",
        submodule_search_locations=[str(ROOT / "benchmarks")])
    mod = importlib.util.module_from_spec(pkg)
    sys.modules.setdefault("benchmarks", mod)
    pkg.loader.exec_module(sys.modules["benchmarks"])
    return importlib.import_module(f"benchmarks.{name}")


def test_asv_check_finds_no_problem():
    asv = shutil.which("asv") or pytest.skip("asv is not installed")
    r = subprocess.run([asv, "check", "--python=same"], cwd=ROOT, capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0 and "No problems found" in r.stdout, r.stdout + r.stderr


def test_peak_records_name_the_isa():
    bp = _load("bench_peak")
    m = bp.MachineIsa()
    assert m.track_widest_isa_bits() == {"avx512": 512, "avx2": 256, "ref": 128}[_peak.widest_isa()]
    arch = _gemm.gemm_info(False)["arch"]
    assert m.track_gemm_kernel_bits() == {"avx512": 512, "avx2": 256, "ref": 128}[arch]
    f = bp.FmaPeak()
    f.setup("float32", "ref", 1)
    assert f.track_fma_peak("float32", "ref", 1) == _peak.measure("float32", 1, "ref").gflops > 0
    for isa in ("avx2", "avx512"):
        code = {v: k for k, v in _gemm.arch_names().items()}[isa]
        if not _gemm.arch_usable(code):
            with pytest.raises(NotImplementedError, match="not usable"):
                f.setup("float32", isa, 1)
