"""``python -m fastmlp demo``: fastmlp.MLPClassifier on scikit-learn's digits.

Trains ``fastmlp.MLPClassifier(hidden_layer_sizes=(100,))`` (Adam) one epoch
per ``partial_fit`` call under a progress bar, prints the test accuracy, then
trains scikit-learn's own MLPClassifier the same way on the same data and
prints the speed-up (fit time of scikit-learn / fit time of fastmlp).
"""
import sys
import time
import warnings

import numpy as np

from fastmlp._config import get_config


def _train(cls, Xtr, ytr, epochs, seed, progress=None):
    clf = cls(hidden_layer_sizes=(100,), random_state=seed)
    classes = np.unique(ytr)
    t0 = time.perf_counter()
    for _ in range(epochs):
        clf.partial_fit(Xtr, ytr, classes=classes)
        if progress is not None:
            progress.set_postfix(loss=f"{clf.loss_:.4f}", refresh=False)
            progress.update(1)
    return clf, time.perf_counter() - t0


def run_demo(epochs=60, seed=0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network._multilayer_perceptron import MLPClassifier as SkMLP
    from tqdm import tqdm

    from fastmlp.sklearn import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    cfg = get_config()
    print(f"fastmlp demo: MLPClassifier(hidden_layer_sizes=(100,)) on digits "
          f"({Xtr.shape[0]} train / {Xte.shape[0]} test, {X.shape[1]} features), kernel "
          f"{cfg['gemm_float32']['name']}, {cfg['num_threads']} thread(s)", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tqdm(total=epochs, desc="fastmlp", unit="epoch", file=sys.stderr) as bar:
            clf, dt = _train(MLPClassifier, Xtr, ytr, epochs, seed, bar)
        acc = float(clf.score(Xte, yte))
        print(f"trained {epochs} epochs in {dt:.2f} s; test accuracy {acc:.4f}", flush=True)
        with tqdm(total=epochs, desc="scikit-learn", unit="epoch", file=sys.stderr) as bar:
            ref, dt_sk = _train(SkMLP, Xtr, ytr, epochs, seed, bar)
        acc_sk = float(ref.score(Xte, yte))
    print(f"scikit-learn MLPClassifier: {dt_sk:.2f} s; test accuracy {acc_sk:.4f}")
    print(f"speed-up over scikit-learn: {dt_sk / dt:.2f}x")
    return acc
