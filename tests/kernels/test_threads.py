"""Thread control: fastmlp.get_num_threads / set_num_threads / threads,
OMP_NUM_THREADS and threadpoolctl. (The autouse fixture in tests/conftest.py
restores the settings after every test.)"""
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
import threadpoolctl

import fastmlp
from fastmlp._core import _gemm, _runtime


def _all_procs():
    return _runtime.omp_num_procs()


def test_get_num_threads_is_positive_int():
    n = fastmlp.get_num_threads()
    assert isinstance(n, int)
    assert n >= 1


@pytest.mark.parametrize("n", [1, 2, 3])
def test_set_num_threads(n):
    fastmlp.set_num_threads(n)
    assert fastmlp.get_num_threads() == n
    assert fastmlp.get_config()["num_threads"] == n


def test_set_num_threads_accepts_numpy_int():
    fastmlp.set_num_threads(np.int64(1))
    assert fastmlp.get_num_threads() == 1


def test_minus_one_means_all_cores():
    fastmlp.set_num_threads(1)
    fastmlp.set_num_threads(-1)
    n = fastmlp.get_num_threads()
    assert n == _all_procs()
    cores = {os.cpu_count()}
    if hasattr(os, "sched_getaffinity"):
        cores.add(len(os.sched_getaffinity(0)))
    assert n in cores
    with fastmlp.threads(1):
        with fastmlp.threads(-1) as got:
            assert got == n
            assert fastmlp.get_num_threads() == n


def test_threads_context_sets_and_restores():
    before = fastmlp.get_num_threads()
    with fastmlp.threads(1) as n:
        assert n == 1
        assert fastmlp.get_num_threads() == 1
        with fastmlp.threads(3):
            assert fastmlp.get_num_threads() == 3
        assert fastmlp.get_num_threads() == 1
    assert fastmlp.get_num_threads() == before


def test_threads_context_restores_a_previous_setting():
    fastmlp.set_num_threads(1)
    with fastmlp.threads(2):
        assert fastmlp.get_num_threads() == 2
    assert fastmlp.get_num_threads() == 1
    fastmlp.set_num_threads(3)
    with fastmlp.threads(1):
        assert fastmlp.get_num_threads() == 1
    assert fastmlp.get_num_threads() == 3


def test_threads_context_restores_when_block_raises():
    fastmlp.set_num_threads(2)
    with pytest.raises(RuntimeError, match="boom"):
        with fastmlp.threads(1):
            assert fastmlp.get_num_threads() == 1
            raise RuntimeError("boom")
    assert fastmlp.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -2, -100])
def test_bad_thread_count_value(bad):
    fastmlp.set_num_threads(2)
    with pytest.raises(ValueError, match=r"in \[1, "):
        fastmlp.set_num_threads(bad)
    with pytest.raises(ValueError, match=r"in \[1, "):
        with fastmlp.threads(bad):
            pass  # pragma: no cover
    assert fastmlp.get_num_threads() == 2  # unchanged


@pytest.mark.parametrize("bad", [1.5, "2", None, 2.0])
def test_bad_thread_count_type(bad):
    fastmlp.set_num_threads(2)
    with pytest.raises(TypeError, match="int"):
        fastmlp.set_num_threads(bad)
    with pytest.raises(TypeError, match="int"):
        with fastmlp.threads(bad):
            pass  # pragma: no cover
    assert fastmlp.get_num_threads() == 2


def test_setting_is_process_wide():
    # set_num_threads sets it for the process: other Python threads see it too.
    fastmlp.set_num_threads(1)
    seen = []
    t = threading.Thread(target=lambda: seen.append(fastmlp.get_num_threads()))
    t.start()
    t.join()
    assert seen == [1]


def test_results_do_not_depend_on_setting():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((90, 70)), rng.standard_normal((70, 80))
    outs = []
    for n in (1, 2):
        with fastmlp.threads(n):
            outs.append(fastmlp.matmul(a, b))
    assert np.array_equal(outs[0], outs[1])
    assert np.allclose(outs[0], a @ b, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- threadpoolctl

def test_threadpoolctl_limit_applies_and_restores():
    fastmlp.set_num_threads(2)
    assert fastmlp.get_num_threads() == 2
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert fastmlp.get_num_threads() == 1
    assert fastmlp.get_num_threads() == 2


def test_threadpoolctl_limit_with_default_setting():
    before = fastmlp.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastmlp.get_num_threads() == 1
        assert fastmlp.get_config()["num_threads"] == 1
    assert fastmlp.get_num_threads() == before


def test_smaller_of_setting_and_later_limit_wins():
    fastmlp.set_num_threads(1)
    with threadpoolctl.threadpool_limits(2, user_api="openmp"):
        assert fastmlp.get_num_threads() == 1
    assert fastmlp.get_num_threads() == 1


def test_latest_setting_wins_over_an_enclosing_threadpoolctl_limit():
    # Documented in fastmlp/_threads.py: the most recent setting wins. An
    # explicit fastmlp.threads(2) inside threadpool_limits(1) asks for 2...
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        with fastmlp.threads(2):
            assert fastmlp.get_num_threads() == 2
        # ...and leaving it restores the enclosing limit.
        assert fastmlp.get_num_threads() == 1


def test_failed_set_num_threads_leaves_setting_unchanged():
    fastmlp.set_num_threads(1)
    with pytest.raises(ValueError, match="threads"):
        fastmlp.set_num_threads(2**31)
    assert fastmlp.get_num_threads() == 1


def _loaded_openmp_libs():
    """Real paths of the OpenMP runtimes mapped into this process (Linux)."""
    if not os.path.exists("/proc/self/maps"):
        return None
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and any(k in os.path.basename(parts[-1])
                                       for k in ("libgomp", "libomp", "libiomp")):
                libs.add(os.path.realpath(parts[-1]))
    return libs


def _extension_openmp_lib():
    """The OpenMP runtime fastmlp's GEMM extension links to, per ldd (or None)."""
    ldd = shutil.which("ldd")
    if ldd is None or not sys.platform.startswith("linux"):
        return None
    r = subprocess.run([ldd, _gemm.__file__], capture_output=True, text=True, timeout=30)
    for line in r.stdout.splitlines():
        if any(k in line for k in ("libgomp", "libomp", "libiomp")) and "=>" in line:
            path = line.split("=>")[1].split("(")[0].strip()
            if path and path != "not found":
                return os.path.realpath(path)
    return None


def test_threadpoolctl_sees_fastmlps_openmp():
    info = threadpoolctl.threadpool_info()
    omp = [d for d in info if d["user_api"] == "openmp"]
    assert omp, f"threadpoolctl lists no OpenMP runtime: {info}"
    paths = {os.path.realpath(d["filepath"]) for d in omp}
    loaded = _loaded_openmp_libs()
    if loaded is not None:
        assert paths & loaded, (paths, loaded)
    ext_lib = _extension_openmp_lib()
    if ext_lib is not None:
        assert ext_lib in paths, (ext_lib, paths)
    # and it reports the thread count fastmlp uses
    with fastmlp.threads(1):
        assert any(d["num_threads"] == 1 for d in threadpoolctl.threadpool_info()
                   if d["user_api"] == "openmp")


# ---------------------------------------------------------------- OMP_NUM_THREADS

def _run_in_subprocess(code, env_updates, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(env_updates)
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


@pytest.mark.parametrize("omp", ["1", "2", "3"])
def test_default_honours_omp_num_threads(omp, tmp_path):
    out = _run_in_subprocess(
        "import fastmlp; print(fastmlp.get_num_threads());"
        "print(fastmlp.get_config()['OMP_NUM_THREADS'])",
        {"OMP_NUM_THREADS": omp}, tmp_path)
    assert out == [omp, omp]


def test_default_without_omp_num_threads_is_all_cores(tmp_path):
    out = _run_in_subprocess(
        "import fastmlp; from fastmlp._core import _runtime;"
        "print(fastmlp.get_num_threads(), _runtime.omp_num_procs())", {}, tmp_path)
    assert out[0] == out[1]
    assert int(out[0]) >= 1


def test_set_num_threads_overrides_omp_num_threads(tmp_path):
    out = _run_in_subprocess(
        "import fastmlp; fastmlp.set_num_threads(2); print(fastmlp.get_num_threads())",
        {"OMP_NUM_THREADS": "1"}, tmp_path)
    assert out == ["2"]


def test_fork_child_after_parallel_work_completes(tmp_path):
    # GNU libgomp hangs in a forked child that enters a parallel region after
    # the parent ran one; fastmlp must run such children single-threaded.
    import subprocess
    import sys
    code = (
        "import multiprocessing as mp, numpy as np, fastmlp\n"
        "a = np.random.default_rng(0).standard_normal((400, 400))\n"
        "with fastmlp.threads(2):\n"
        "    fastmlp.matmul(a, a)\n"
        "def work(_):\n"
        "    with fastmlp.threads(2):\n"
        "        return fastmlp.get_num_threads(), float(np.abs(fastmlp.matmul(a, a) - a @ a).max())\n"
        "if __name__ == '__main__':\n"
        "    with mp.get_context('fork').Pool(2) as pool:\n"
        "        res = pool.map(work, range(4))\n"
        "    assert all(n == 1 and err < 1e-9 for n, err in res), res\n"
        "    print('ok')\n")
    script = tmp_path / "fork_check.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
