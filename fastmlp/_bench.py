"""``python -m fastmlp bench``: one training epoch of an MLP, side by side.

Workload (issue 7): 60000 x 784 synthetic data (Gaussian blobs, seed 0: ten
class centres drawn N(0, 0.1^2) per feature, plus unit Gaussian noise; labels
balanced and shuffled), 10 classes, and ::

    MLPClassifier(hidden_layer_sizes=(256, 128), solver="sgd",
                  learning_rate_init=0.05, momentum=0.9, nesterovs_momentum=False,
                  batch_size=128, max_iter=1, alpha=0, shuffle=True,
                  random_state=0, early_stopping=False)

trained for one epoch by, in one process and on the same arrays:

* ``fastmlp``: ``fastmlp.MLPClassifier(...).fit(X, y)``;
* ``numpy-ref``: the NumPy reference trainer (``fastmlp._numpy_mlp.NumpyMLP``,
  the same training as scikit-learn's written as idiomatic NumPy: BLAS matmuls
  into preallocated buffers, in-place updates) -- the baseline of every ratio;
* ``scikit-learn``: scikit-learn's own ``MLPClassifier``
  (``sklearn.neural_network._multilayer_perceptron``, never a patched one);
* ``pytorch`` when installed: ``nn.Sequential`` of Linear/ReLU,
  ``CrossEntropyLoss``, ``optim.SGD`` with the same learning rate, momentum
  and batch size (its own initialisation and shuffling).

fastmlp, numpy-ref and scikit-learn train the same model on the same batches
(same initial weights, same updates), so their ``loss`` column (mean training
loss of the epoch) agrees up to rounding: the timings compare equal work.

Every timed call builds a fresh estimator and fits it (initialisation and
input validation included). Each configuration is timed ``repeats`` times,
the implementations interleaved (so drifts of a noisy machine hit all alike),
each run after a 0.3 s pause that lets the previous run's worker threads stop
spinning (OpenBLAS's spin about 0.1 s after a call and would hold a core the
next run needs), and the best time is reported. Threads: ``fastmlp.threads(n)`` and
``threadpoolctl.threadpool_limits(n)`` (BLAS and OpenMP) around every row,
``torch.set_num_threads(n)`` for PyTorch.

Columns: s/epoch (best), samples/s = n / t, GFLOP/s = epoch FLOPs / t, % of the
FMA peak of the cores used, and ``vs numpy`` = t(numpy-ref) / t (> 1: faster
than the NumPy reference). Epoch FLOPs count the GEMMs only
(:func:`epoch_flops`): forward 2*n*sum(in*out), weight gradients as much again,
input gradients of every layer but the first; 60.4 GFLOP for the workload.

Peak: measured, not derived from the nominal clock (fastmlp._peak): the
best of 5 short runs of an FMA probe of the machine's widest ISA (AVX-512
where the CPU and OS support it, else AVX2+FMA, else portable C), on as many
threads as the row uses, once per process. It is the hardware limit whatever
kernel the GEMM runs (on AMD Zen 4 fastmlp runs AVX2 kernels, whose limit
there equals AVX-512's; on Intel AVX-512 cores the limit is twice AVX2's),
so "% peak" says how far from the machine's limit an epoch is. The header
prints the peak, the ISA it belongs to and the GEMM kernel that ran.
``--peak GFLOPS`` (one core) overrides it: then peak = GFLOPS x
min(threads, cores).

Then single-row predict latency (best of many calls) on the fitted models.
"""
import contextlib
import importlib.util
import os
import time
import warnings

import numpy as np

N_FEATURES = 784
N_CLASSES = 10
FULL_SAMPLES = 60000
QUICK_SAMPLES = 6000
MIN_SAMPLES = 200

#: The scikit-learn parameters of the workload (shared by every implementation).
WORKLOAD = dict(hidden_layer_sizes=(256, 128), solver="sgd", learning_rate_init=0.05,
                momentum=0.9, nesterovs_momentum=False, batch_size=128, alpha=0.0,
                shuffle=True, random_state=0)
#: Extra parameters of the estimators (fastmlp's and scikit-learn's).
ESTIMATOR_EXTRA = dict(max_iter=1, early_stopping=False)

IMPLS = ("fastmlp", "numpy-ref", "scikit-learn", "pytorch")
#: Pause before each timed run (see run_bench).
SETTLE_S = 0.3


def layer_units(n_features=N_FEATURES, n_classes=N_CLASSES,
                hidden=WORKLOAD["hidden_layer_sizes"]):
    return [n_features, *hidden, n_classes]


def epoch_flops(n_samples, units):
    """GEMM flops of one training epoch of an MLP with layer sizes `units`:
    forward 2*n*sum(in*out), the same for the weight gradients, and the input
    gradients of every layer but the first."""
    pairs = list(zip(units[:-1], units[1:]))
    fwd = 2.0 * n_samples * sum(a * b for a, b in pairs)
    grad_x = 2.0 * n_samples * sum(a * b for a, b in pairs[1:])
    return 2.0 * fwd + grad_x


def make_data(n_samples, dtype=np.float32, seed=0):
    """Gaussian blobs: (X, y), n_samples x 784, 10 balanced shuffled classes."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n_samples) % N_CLASSES)
    centers = rng.standard_normal((N_CLASSES, N_FEATURES), dtype=np.float32) * np.float32(0.1)
    X = rng.standard_normal((n_samples, N_FEATURES), dtype=np.float32)
    X += centers[y]
    return X.astype(dtype, copy=False), y


# ------------------------------------------------------------------ peak
def row_peak(threads, dtype, peak_core=None):
    """GFLOP/s limit of a row on `threads` threads: --peak's per-core figure x
    min(threads, cores) when given, else the measured FMA peak (fastmlp._peak)."""
    from fastmlp import _peak

    if peak_core is not None:
        return float(peak_core) * min(threads, os.cpu_count() or 1)
    return _peak.measure(dtype, threads).gflops


def _timed(func):
    t0 = time.perf_counter()
    func()
    return time.perf_counter() - t0


# ------------------------------------------------------------------ trainers
def _fit_fastmlp(X, y):
    from fastmlp.sklearn import MLPClassifier

    est = MLPClassifier(**WORKLOAD, **ESTIMATOR_EXTRA).fit(X, y)
    return est, float(est.loss_)


def _fit_numpy(X, y):
    from fastmlp._numpy_mlp import NumpyMLP

    est = NumpyMLP(**WORKLOAD).fit_epoch(X, y)
    return est, float(est.loss_)


def _fit_sklearn(X, y):
    from sklearn.neural_network._multilayer_perceptron import MLPClassifier

    est = MLPClassifier(**WORKLOAD, **ESTIMATOR_EXTRA).fit(X, y)
    return est, float(est.loss_)


class _TorchMLP:
    """The workload in PyTorch: Linear/ReLU Sequential, CrossEntropyLoss,
    SGD with momentum (PyTorch's form v = mu*v + g; p -= lr*v, which is
    scikit-learn's for a constant learning rate), one epoch over a random
    permutation in batches of the same size. scikit-learn's alpha
    (alpha / (2 batch) ||W||^2, coefficients only) is weight_decay =
    alpha / batch on the weights."""

    def __init__(self, torch, X, y):
        self.torch = torch
        self.X = torch.from_numpy(np.ascontiguousarray(X))
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64))

    def fit(self):
        torch = self.torch
        nn = torch.nn
        torch.manual_seed(WORKLOAD["random_state"])
        units = layer_units(self.X.shape[1], int(self.y.max()) + 1)
        layers = []
        for i, (a, b) in enumerate(zip(units[:-1], units[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(units) - 2:
                layers.append(nn.ReLU())
        model = nn.Sequential(*layers).to(self.X.dtype)
        bs = WORKLOAD["batch_size"]
        weights = [m.weight for m in model if isinstance(m, nn.Linear)]
        biases = [m.bias for m in model if isinstance(m, nn.Linear)]
        opt = torch.optim.SGD(
            [{"params": weights, "weight_decay": WORKLOAD["alpha"] / bs},
             {"params": biases, "weight_decay": 0.0}],
            lr=WORKLOAD["learning_rate_init"], momentum=WORKLOAD["momentum"],
            nesterov=WORKLOAD["nesterovs_momentum"])
        crit = nn.CrossEntropyLoss()
        n = self.X.shape[0]
        gen = torch.Generator().manual_seed(WORKLOAD["random_state"])
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            xb = self.X.index_select(0, idx)
            yb = self.y.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            loss = crit(model(xb), yb)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.shape[0]
        model.eval()
        return model, total / n


def torch_or_none():
    if importlib.util.find_spec("torch") is None:
        return None
    try:
        import torch
    except Exception:      # a broken install counts as not installed
        return None
    return torch


# ------------------------------------------------------------------ running
@contextlib.contextmanager
def _limit(n, torch=None):
    import fastmlp
    from threadpoolctl import threadpool_limits

    prev_torch = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=n), fastmlp.threads(n):
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(prev_torch)


def _predict_fn(impl, model, x1, torch=None):
    if impl == "pytorch":
        xt = torch.from_numpy(x1)

        def f():
            with torch.no_grad():
                return model(xt).argmax(1)
        return f
    return lambda: model.predict(x1)


def run_bench(threads=(1,), quick=False, samples=None, repeats=None, dtype="float32",
              peak=None, plot=None, predict_calls=None, file=None):
    """Run the benchmark, print the tables to `file` (stdout) and return the
    rows: dicts with impl, threads, seconds, samples_per_s, gflops,
    peak_percent, vs_numpy, loss, predict_us (None where not measured)."""
    from sklearn.exceptions import ConvergenceWarning

    import fastmlp
    from fastmlp import _peak

    def out(*args):
        print(*args, file=file, flush=True)

    dtype = np.dtype(dtype)
    n = samples or (QUICK_SAMPLES if quick else FULL_SAMPLES)
    repeats = repeats or (2 if quick else 3)
    predict_calls = predict_calls or (50 if quick else 300)
    X, y = make_data(n, dtype)
    units = layer_units()
    flops = epoch_flops(n, units)
    torch = torch_or_none()

    params = ", ".join(f"{k}={v!r}" for k, v in {**WORKLOAD, **ESTIMATOR_EXTRA}.items())
    cfg = fastmlp.get_config()
    out(f"fastmlp {fastmlp.__version__} bench: one epoch of MLPClassifier({params})")
    out(f"data: {n} x {N_FEATURES} {dtype.name}, {N_CLASSES} classes (Gaussian blobs, seed 0); "
        f"{flops / 1e9:.2f} GFLOP per epoch (GEMMs); best of {repeats}; "
        f"kernel {cfg['gemm_float32' if dtype == np.float32 else 'gemm_float64']['name']}")
    kname = cfg['gemm_float32' if dtype == np.float32 else 'gemm_float64']['name']
    if peak is not None:
        out(f"peak: --peak {float(peak):.1f} GFLOP/s per core x min(threads, "
            f"{os.cpu_count() or 1} cores) ({dtype.name})")
    else:
        pk = [_peak.measure(dtype, nt) for nt in threads]
        out(f"peak: measured FMA probe of the widest ISA, {pk[0].isa} ({dtype.name}): "
            + ", ".join(f"{p.gflops:.1f} GFLOP/s on {nt} thread{'s' if nt > 1 else ''}"
                        for nt, p in zip(threads, pk))
            + f"; the GEMM runs {kname}")
    out("")

    fitters = {"fastmlp": _fit_fastmlp, "numpy-ref": _fit_numpy, "scikit-learn": _fit_sklearn}
    if torch is not None:
        tm = _TorchMLP(torch, X, y)
        fitters["pytorch"] = lambda X, y: tm.fit()

    rows = []
    x1 = np.ascontiguousarray(X[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for nt in threads:
            with _limit(nt, torch):
                best = {k: float("inf") for k in fitters}
                models, losses = {}, {}
                for _ in range(repeats):
                    for impl, fit in fitters.items():
                        # Let the previous run's idle worker threads park:
                        # OpenBLAS's spin for ~0.1 s after a call (libgomp's
                        # far less), and a spinning thread holds a core the
                        # next implementation's threads need.
                        time.sleep(SETTLE_S)
                        t0 = time.perf_counter()
                        model, loss = fit(X, y)
                        dt = time.perf_counter() - t0
                        best[impl] = min(best[impl], dt)
                        models[impl], losses[impl] = model, loss
                pk = row_peak(nt, dtype, peak)
                lat = {}
                for impl, model in models.items():
                    f = _predict_fn(impl, model, x1, torch)
                    time.sleep(SETTLE_S)
                    f()
                    lat[impl] = min(_timed(f) for _ in range(predict_calls)) * 1e6
            for impl in IMPLS:
                if impl not in fitters:
                    rows.append(dict(impl=impl, threads=nt, seconds=None))
                    continue
                t = best[impl]
                rows.append(dict(impl=impl, threads=nt, seconds=t, samples_per_s=n / t,
                                 gflops=flops / t / 1e9, peak_percent=100 * flops / t / 1e9 / pk,
                                 peak_gflops=pk, flops=flops,
                                 vs_numpy=best["numpy-ref"] / t, loss=losses[impl],
                                 predict_us=lat[impl]))

    hdr = (f"{'implementation':<14} {'threads':>7} {'s/epoch':>9} {'samples/s':>10} "
           f"{'GFLOP/s':>8} {'% peak':>7} {'vs numpy':>9} {'loss':>8}")
    out(hdr)
    out("-" * len(hdr))
    for r in rows:
        if r["seconds"] is None:
            out(f"{r['impl']:<14} {r['threads']:>7} {'not installed':>9}")
            continue
        out(f"{r['impl']:<14} {r['threads']:>7} {r['seconds']:>9.4g} {r['samples_per_s']:>10.0f} "
            f"{r['gflops']:>8.2f} {r['peak_percent']:>7.1f} {r['vs_numpy']:>8.2f}x "
            f"{r['loss']:>8.4f}")
    if any(r["seconds"] is not None and r["peak_percent"] > 100 for r in rows):
        out("(% peak above 100: " + ("--peak is below what the cores did" if peak is not None else
            "the probe ran while other work held the cores (a shared machine); rerun") + ")")
    out("")
    out(f"predict latency, one row (best of {predict_calls} calls, fitted models above):")
    hdr2 = f"{'implementation':<14} {'threads':>7} {'us/call':>9}"
    out(hdr2)
    out("-" * len(hdr2))
    for r in rows:
        if r["seconds"] is None:
            out(f"{r['impl']:<14} {r['threads']:>7} {'not installed':>9}")
        else:
            out(f"{r['impl']:<14} {r['threads']:>7} {r['predict_us']:>9.1f}")
    if plot:
        write_plot(rows, plot, title=f"one epoch, {n} x {N_FEATURES} {dtype.name}, "
                                     f"784-256-128-10 SGD batch 128",
                   peak_label="--peak" if peak is not None else
                   f"FMA peak ({_peak.widest_isa()}, measured)")
        out(f"\nplot written to {plot}")
    return rows


def matplotlib_available():
    return importlib.util.find_spec("matplotlib") is not None


def write_plot(rows, path, title="", peak_label="FMA peak"):
    """Bar chart of samples/s per implementation, grouped by thread count, with
    the peak (rows' peak_gflops) drawn as a dashed line over each group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["seconds"] is not None]
    impls = [i for i in IMPLS if any(r["impl"] == i for r in done)]
    threads = sorted({r["threads"] for r in done})
    width = 0.8 / max(1, len(impls))
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, impl in enumerate(impls):
        xs, hs = [], []
        for j, nt in enumerate(threads):
            for r in done:
                if r["impl"] == impl and r["threads"] == nt:
                    xs.append(j + (k - (len(impls) - 1) / 2) * width)
                    hs.append(r["samples_per_s"])
        ax.bar(xs, hs, width, label=impl)
    # The limit, in the bars' unit: the epoch's flops at the peak rate, n / (flops / peak).
    for j, nt in enumerate(threads):
        r = next(r for r in done if r["threads"] == nt)
        lim = r["peak_gflops"] / r["gflops"] * r["samples_per_s"]
        ax.hlines(lim, j - 0.45, j + 0.45, colors="k", linestyles="--",
                  label=peak_label if j == 0 else None)
        ax.annotate(f"{r['peak_gflops']:.0f} GFLOP/s", (j + 0.45, lim), fontsize=7,
                    ha="right", va="bottom")
    ax.set_xticks(range(len(threads)))
    ax.set_xticklabels([f"{t} thread{'s' if t > 1 else ''}" for t in threads])
    ax.set_ylabel("training samples / s (higher is better)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
