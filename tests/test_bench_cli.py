"""``python -m fastmlp bench``: the side-by-side training benchmark's table."""
import os
import re
import subprocess
import sys

import pytest

from fastmlp._bench import epoch_flops, layer_units

UNITS = [784, 256, 128, 10]
NUM = r"(\d+(?:\.\d*)?(?:e[-+]?\d+)?)"


def _run(args, tmp_path, timeout=180):
    # cwd outside the source tree, so the installed package is the one run
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    return subprocess.run([sys.executable, "-m", "fastmlp", "bench", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=timeout)


def _flops(n):
    """Independent count: forward and weight-gradient GEMMs 2*n*in*out per layer,
    input-gradient GEMMs for every layer but the first."""
    fwd = sum(2 * n * a * b for a, b in zip(UNITS[:-1], UNITS[1:]))
    gx = sum(2 * n * a * b for a, b in zip(UNITS[1:-1], UNITS[2:]))
    return 2 * fwd + gx


def test_epoch_flops_is_the_issues_count():
    assert layer_units() == UNITS
    assert epoch_flops(60000, UNITS) == _flops(60000)
    assert round(epoch_flops(60000, UNITS) / 1e9, 1) == 60.4


def test_bench_quick_table(tmp_path):
    n = 512
    r = _run(["--quick", "--threads", "1", "--samples", str(n), "--repeats", "1",
              "--peak", "10"], tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"data: {n} x 784 float32" in out
    assert f"{_flops(n) / 1e9:.2f} GFLOP per epoch" in out
    rows = {}
    for m in re.finditer(rf"^(\S+)\s+1\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}x\s+{NUM}$",
                         out, re.M):
        rows[m.group(1)] = [float(v) for v in m.groups()[1:]]
    assert set(rows) >= {"fastmlp", "numpy-ref", "scikit-learn"}, out
    t_np = rows["numpy-ref"][0]
    for impl, (t, sps, gflops, peak, vs, loss) in rows.items():
        assert t > 0 and sps > 0 and gflops > 0 and peak > 0 and vs > 0, out
        assert sps == pytest.approx(n / t, rel=2e-3, abs=1)
        assert gflops == pytest.approx(_flops(n) / t / 1e9, rel=2e-3, abs=0.01)
        # --peak 10 GFLOP/s, 1 core; both printed rounded (.1f / .2f): up to 0.05 + 0.05
        assert peak == pytest.approx(gflops * 10, rel=2e-3, abs=0.11)
        assert vs == pytest.approx(t_np / t, rel=2e-3, abs=0.01)
    assert rows["numpy-ref"][4] == 1.0
    # a % of peak above 100 (here: a 10 GFLOP/s --peak) comes with a note saying why
    assert ("% peak above 100" in out) == any(row[3] > 100 for row in rows.values()), out
    # fastmlp, the NumPy reference and scikit-learn train the same model
    losses = [rows[k][5] for k in ("fastmlp", "numpy-ref", "scikit-learn")]
    assert 0.1 < losses[1] < 5 and max(losses) - min(losses) <= 2e-4, out
    try:
        import torch  # noqa: F401
        assert "pytorch" in rows, out
    except ImportError:
        assert re.search(r"^pytorch\s+1\s+not installed", out, re.M), out
    lat = dict(re.findall(rf"^(\S+)\s+1\s+{NUM}$", out.split("predict latency")[1], re.M))
    assert set(lat) >= {"fastmlp", "numpy-ref", "scikit-learn"}, out
    assert all(float(v) > 0 for v in lat.values())


def test_bench_quotes_the_measured_peak_of_the_widest_isa(tmp_path):
    from fastmlp import _peak
    from fastmlp._core import _gemm

    n = 256
    r = _run(["--quick", "--threads", "1", "--samples", str(n), "--repeats", "1"], tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    isa = _peak.widest_isa()
    m = re.search(rf"^peak: measured FMA probe of the widest ISA, {isa} \(float32\): {NUM} "
                  rf"GFLOP/s on 1 thread; the GEMM runs (.+)$", out, re.M)
    assert m, out
    peak = float(m.group(1))
    assert m.group(2) == _gemm.gemm_info(False)["name"]
    # the probe in the child and in this process measure the same limit (loose: a busy machine)
    mine = _peak.measure("float32", 1).gflops
    assert mine / 3 < peak < mine * 3, (peak, mine)
    row = re.search(rf"^fastmlp\s+1\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}\s+", out, re.M)
    gflops, pct = float(row.group(3)), float(row.group(4))
    assert pct == pytest.approx(100 * gflops / peak, rel=5e-3, abs=0.06), out


def test_bench_plot_without_matplotlib(tmp_path):
    try:
        import matplotlib  # noqa: F401
        pytest.skip("matplotlib is installed")
    except ImportError:
        pass
    r = _run(["--quick", "--plot", str(tmp_path / "out.png")], tmp_path, timeout=60)
    assert r.returncode == 2
    assert "--plot needs matplotlib, which is not installed" in r.stderr
    assert "GFLOP" not in r.stdout and not (tmp_path / "out.png").exists()   # stopped before running


def test_bench_plot_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "out.png"
    r = _run(["--quick", "--threads", "1", "--samples", "256", "--repeats", "1",
              "--plot", str(png)], tmp_path)
    assert r.returncode == 0, r.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    assert f"plot written to {png}" in r.stdout


@pytest.mark.parametrize("args, msg", [
    (["--threads", "0"], "--threads must be integers >= 1"),
    (["--threads", "1,x"], "--threads must be comma-separated integers"),
    (["--samples", "10"], "--samples must be >= 200"),
    (["--peak", "-1"], "--peak must be > 0"),
])
def test_bench_rejects_bad_options(tmp_path, args, msg):
    r = _run(args, tmp_path, timeout=60)
    assert r.returncode == 2 and msg in r.stderr
