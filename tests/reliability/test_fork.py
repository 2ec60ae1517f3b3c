"""Fork safety: after fastmlp ran multi-threaded OpenMP work in the parent,
work in forked children (multiprocessing's fork start method, joblib's
multiprocessing backend) completes instead of hanging in GNU OpenMP, and
joblib's default loky workers (cross_val_score / GridSearchCV with n_jobs=2)
give the same results as n_jobs=1.

Every scenario runs in its own Python process with a timeout, so a hang fails
the test instead of blocking the suite (and pytest itself is never forked).
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

TIMEOUT = 240

PRELUDE = textwrap.dedent("""
    import json, warnings
    import numpy as np
    import fastmlp
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((240, 20))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    def fit(seed):
        import warnings
        warnings.simplefilter("ignore")
        clf = fastmlp.MLPClassifier(hidden_layer_sizes=(64,), max_iter=30, random_state=seed)
        clf.fit(X, y)
        return clf.predict_proba(X).tobytes().hex(), fastmlp.get_num_threads()
    # multi-threaded OpenMP work in the parent BEFORE any fork
    fastmlp.set_num_threads(2)
    big = rng.standard_normal((400, 400))
    assert np.allclose(fastmlp.matmul(big, big), big @ big)
    assert fastmlp.get_num_threads() == 2
""")


def _run(body, tmp_path):
    code = PRELUDE + textwrap.dedent(body)
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    try:
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"hung for {TIMEOUT} s:\n{(exc.stderr or b'')[-3000:]}")
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_fit_in_fork_children_after_openmp_in_parent(tmp_path):
    out = _run("""
        import multiprocessing as mp
        ref = fit(0)[0], fit(1)[0]
        with mp.get_context("fork").Pool(2) as pool:
            res = pool.map(fit, [0, 1])
        # a second generation: a fork child that forks again
        ctx = mp.get_context("fork")
        def grandchild(q):
            q.put(fit(1)[0])
        def child(q):
            p = ctx.Process(target=grandchild, args=(q,))
            p.start()
            p.join()
        q = ctx.Queue()
        p = ctx.Process(target=child, args=(q,))
        p.start()
        res2 = q.get()
        p.join()
        print(json.dumps({"same": [r[0] == s for r, s in zip(res, ref)],
                          "child_threads": [r[1] for r in res],
                          "grandchild_same": res2 == ref[1],
                          "parent_threads": fastmlp.get_num_threads()}))
    """, tmp_path)
    # identical to the parent's fits (results do not depend on the thread count)
    assert out["same"] == [True, True] and out["grandchild_same"]
    assert out["child_threads"] == [1, 1]          # a forked child runs single-threaded
    assert out["parent_threads"] == 2              # the parent keeps its threads


def test_joblib_loky_and_multiprocessing_backends(tmp_path):
    out = _run("""
        from joblib import parallel_backend
        from sklearn.model_selection import GridSearchCV, cross_val_score
        est = fastmlp.MLPClassifier(hidden_layer_sizes=(32,), max_iter=30,
                                     learning_rate_init=0.01, random_state=0)
        serial = cross_val_score(est, X, y, cv=3, n_jobs=1).tolist()
        loky = cross_val_score(est, X, y, cv=3, n_jobs=2).tolist()
        with parallel_backend("multiprocessing"):      # fork-based workers
            forked = cross_val_score(est, X, y, cv=3, n_jobs=2).tolist()
        grid = {"alpha": [1e-4, 1e-1], "hidden_layer_sizes": [(8,), (32,)]}
        g1 = GridSearchCV(est, grid, cv=2, n_jobs=1).fit(X, y)
        g2 = GridSearchCV(est, grid, cv=2, n_jobs=2).fit(X, y)
        print(json.dumps({
            "serial": serial, "loky": loky, "forked": forked,
            "grid_scores": [g1.cv_results_["mean_test_score"].tolist(),
                            g2.cv_results_["mean_test_score"].tolist()],
            "best": [str(g1.best_params_), str(g2.best_params_)],
            "refit_same": g1.best_estimator_.predict_proba(X).tobytes()
                          == g2.best_estimator_.predict_proba(X).tobytes()}))
    """, tmp_path)
    assert out["loky"] == out["serial"] and out["forked"] == out["serial"]
    assert min(out["serial"]) > 0.7                    # real fits, not chance
    assert out["grid_scores"][0] == out["grid_scores"][1]
    assert out["best"][0] == out["best"][1] and out["refit_same"]
