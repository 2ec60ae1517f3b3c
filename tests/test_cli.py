"""Command line (python -m fastmlp) and the configuration report."""
import os
import re
import subprocess
import sys

import fastmlp
from fastmlp._core import _gemm, _runtime


def _run(args, tmp_path, timeout=120):
    # cwd outside the source tree, so the installed package is the one run
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    return subprocess.run([sys.executable, "-m", "fastmlp", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_demo_trains_an_accurate_classifier(tmp_path):
    r = _run(["demo", "--epochs", "30"], tmp_path)
    assert r.returncode == 0, r.stderr
    m = re.search(r"test accuracy (\d+(?:\.\d+)?)", r.stdout)
    assert m, r.stdout
    acc = float(m.group(1))
    assert 0.9 <= acc <= 1.0, r.stdout
    assert re.search(r"trained 30 epochs", r.stdout)
    assert _gemm.gemm_info(False)["name"] in r.stdout
    assert "MLPClassifier" in r.stdout
    assert re.search(r"speed-up over scikit-learn: \d+(\.\d+)?x", r.stdout), r.stdout
    sk = re.search(r"scikit-learn MLPClassifier: .* test accuracy (\d+(?:\.\d+)?)", r.stdout)
    assert sk and abs(float(sk.group(1)) - acc) < 0.02, r.stdout   # same model, same data


def test_demo_rejects_bad_epochs(tmp_path):
    r = _run(["demo", "--epochs", "0"], tmp_path)
    assert r.returncode == 2
    assert "--epochs must be >= 1" in r.stderr


def test_cli_requires_a_command(tmp_path):
    r = _run([], tmp_path)
    assert r.returncode == 2
    assert "demo" in r.stderr and "info" in r.stderr


def test_info_prints_kernels_and_openmp(tmp_path):
    r = _run(["info"], tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert _gemm.gemm_info(False)["name"] in out
    assert _gemm.gemm_info(True)["name"] in out
    assert "OpenMP" in out
    assert f"fastmlp {fastmlp.__version__}" in out
    threads = re.search(r"threads:\s+(\d+)", out)
    assert threads and int(threads.group(1)) == _runtime.omp_num_procs()


def test_show_config(capsys):
    with fastmlp.threads(1):
        fastmlp.show_config()
    out = capsys.readouterr().out
    assert _runtime.compiler() in out
    assert re.search(r"compiler:\s+\S", out)
    assert "OpenMP" in out
    omp = _runtime.openmp_version()
    assert (f"on (version {omp})" in out) if omp else ("OpenMP:          off" in out)
    assert "avx2" in out or "ref" in out
    assert _gemm.gemm_info(False)["name"] in out and _gemm.gemm_info(True)["name"] in out
    m = re.search(r"threads:\s+(\d+)", out)
    assert m and int(m.group(1)) == 1
    fastmlp.show_config()
    out = capsys.readouterr().out
    m = re.search(r"threads:\s+(\d+)", out)
    assert m and int(m.group(1)) == fastmlp.get_num_threads()


def test_show_config_to_file(tmp_path):
    path = tmp_path / "cfg.txt"
    with open(path, "w") as f:
        fastmlp.show_config(file=f)
    text = path.read_text()
    assert text.startswith(f"fastmlp {fastmlp.__version__}")
    assert "OpenMP" in text


def test_get_config_consistent():
    cfg = fastmlp.get_config()
    assert cfg["version"] == fastmlp.__version__
    assert cfg["num_threads"] == fastmlp.get_num_threads()
    assert "ref" in cfg["kernels_compiled"]
    assert cfg["gemm_float32"]["name"] == _gemm.gemm_info(False)["name"]
    assert set(cfg["cpu_features"]) == {"avx2", "fma", "avx512", "avx512_full_width"}


def test_version_is_a_string():
    assert isinstance(fastmlp.__version__, str)
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", fastmlp.__version__)


def test_info_says_which_kernel_family_and_why(tmp_path):
    r = _run(["info"], tmp_path)
    assert r.returncode == 0, r.stderr
    arch = _gemm.gemm_info(False)["arch"]
    line = [ln for ln in r.stdout.splitlines() if "kernel choice:" in ln]
    assert len(line) == 1 and f"kernel choice:   {arch} (" in line[0], r.stdout
    feats = fastmlp.get_config()["cpu_features"]
    if not os.environ.get("FASTMLP_KERNEL") and feats["avx512"] and not feats["avx512_full_width"]:
        assert arch == "avx2" and "two 256-bit halves" in line[0]


def test_info_prints_the_measured_peak(tmp_path):
    from fastmlp import _peak

    r = _run(["info"], tmp_path)
    assert r.returncode == 0, r.stderr
    m = re.search(r"FMA peak:\s+([\d.]+) GFLOP/s float32 on 1 thread, ([\d.]+) on (\d+); "
                  r"float64 ([\d.]+) on 1 \(measured, (\w+) FMA probe", r.stdout)
    assert m, r.stdout
    assert m.group(5) == _peak.widest_isa()
    assert int(m.group(3)) == _runtime.omp_num_procs()
    assert all(float(m.group(i)) > 0 for i in (1, 2, 4))


def test_info_reports_a_forced_kernel(tmp_path):
    env = dict(os.environ, FASTMLP_KERNEL="ref")
    r = subprocess.run([sys.executable, "-m", "fastmlp", "info"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "kernel choice:   ref (forced by FASTMLP_KERNEL=ref)" in r.stdout
    assert "GEMM float32:    ref" in r.stdout
