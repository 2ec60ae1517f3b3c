"""Memory: no growth of the resident set over 1000 fit/predict cycles (beyond
allocator noise), and fit needs the data plus O(parameters + batch), never a
second copy of the data (tools/memory_profile.py measures the full-size case,
60000 x 784).

Both run in fresh subprocesses: RSS is a per-process figure, and VmHWM a
per-process high-water mark.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="Linux /proc")

LEAK_SCRIPT = textwrap.dedent("""
    import gc, json, os, warnings
    import numpy as np
    import fastmlp
    import fastmlp.sklearn
    from fastmlp import nn, ops
    warnings.simplefilter("ignore")
    PAGE = os.sysconf("SC_PAGE_SIZE")

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)

    def estimator(i):
        clf = fastmlp.MLPClassifier(hidden_layer_sizes=(16,), max_iter=1, batch_size=32,
                                    random_state=i).fit(X, y)
        return clf.predict_proba(X)

    def model(i):
        m = nn.Sequential(nn.Linear(8, 16, random_state=i), nn.ReLU(),
                          nn.Dropout(0.1, random_state=i), nn.BatchNorm1d(16),
                          nn.Linear(16, 2, random_state=i))
        nn.fit(m, X, y, loss="cross_entropy", epochs=1, batch_size=32, verbose=0,
               random_state=i)
        return m.predict(X)

    def kernels(i):
        # shapes change from call to call: the per-thread GEMM workspace is reused
        a = rng.standard_normal((40 + i % 7, 30 + i % 5))
        h = ops.linear(a, a.T.copy(), None, "relu")
        ops.softmax_cross_entropy(h, np.zeros(len(h), int))
        y2, c = ops.batch_norm_forward(ops.dropout(h, 0.3, seed=i), None, None, None, None)
        ops.batch_norm_backward(y2, c)
        p = np.zeros(a.size); g = a.ravel().copy()
        ops.optimizer_step("adam", p, g, ops.optimizer_state("adam", p), step=1)
        return h

    out = {}
    for name, f in (("estimator", estimator), ("nn", model), ("kernels", kernels)):
        for i in range(100):                      # warm-up: caches, lazy imports, arenas
            f(i)
        gc.collect()
        before = rss()
        for i in range(1000):
            r = f(i)
            assert np.isfinite(r).all()
        gc.collect()
        out[name] = rss() - before
    print(json.dumps(out))
""")


def test_no_rss_growth_over_1000_fit_predict_cycles(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", LEAK_SCRIPT], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    growth = json.loads(r.stdout.strip().splitlines()[-1])
    # A leak of even 1 KiB per cycle would show as 1000 KiB; allocator noise is
    # a few pages.
    for name, g in growth.items():
        assert g < 512 * 1024, f"{name}: RSS grew by {g / 1024:.0f} KiB over 1000 cycles"


PEAK_SCRIPT = textwrap.dedent("""
    import json, os, resource, warnings
    import numpy as np
    import fastmlp
    import fastmlp.sklearn
    warnings.simplefilter("ignore")

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def peak_rss():
        # VmHWM: the high-water mark of THIS process image. (ru_maxrss is not:
        # Linux carries the RSS of the forked copy of the parent into it at exec.)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    rng = np.random.default_rng(0)
    n, d = 32768, 256
    X = np.empty((n, d), np.float32)
    for i in range(0, n, 4096):
        X[i:i + 4096] = rng.standard_normal((4096, d), dtype=np.float32)
    y = rng.integers(0, 10, n)
    clf = fastmlp.MLPClassifier(hidden_layer_sizes=(256, 128), solver="sgd", max_iter=1,
                                batch_size=128, random_state=0)
    before = rss()
    clf.fit(X, y)
    peak = peak_rss()
    print(json.dumps({"data": X.nbytes, "added": peak - before,
                      "params": sum(c.nbytes + b.nbytes
                                    for c, b in zip(clf.coefs_, clf.intercepts_)),
                      "n_iter": clf.n_iter_}))
""")


def test_fit_needs_no_copy_of_the_data(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads(r.stdout.strip().splitlines()[-1])
    assert m["n_iter"] == 1 and m["data"] == 32 * 2 ** 20
    # peak - RSS before fit: parameters, optimizer state, one batch's activations,
    # the label matrix (n x 10) and allocator slack -- well under one copy of X.
    budget = 0.25 * m["data"] + 8 * m["params"]
    assert m["added"] < budget, (f"fit added {m['added'] / 2**20:.1f} MiB for "
                                 f"{m['data'] / 2**20:.0f} MiB of data")
