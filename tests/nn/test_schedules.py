"""Learning-rate schedules: hand-computed sequences, PyTorch's (recursive)
update rules written out, scikit-learn's invscaling/adaptive, state dicts."""
import json
import math
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.neural_network._stochastic_optimizers import SGDOptimizer

import fastmlp
from fastmlp.nn import (ConstantLR, CosineLR, ExponentialLR, InverseScalingLR,
                        ReduceLROnPlateau, StepLR)


def run(sched, n, metrics=None):
    """[lr before any step, lr after step 1, ..., lr after step n]."""
    out = [sched.lr]
    for i in range(n):
        out.append(sched.step(None if metrics is None else metrics[i]))
        assert sched.lr == out[-1]
    return out


# ---- PyTorch's chainable (recursive) get_lr, written out ------------------

def torch_step_lr(base, step_size, gamma, n):
    lrs, lr = [base], base
    for epoch in range(1, n + 1):
        if epoch % step_size == 0:
            lr = lr * gamma
        lrs.append(lr)
    return lrs


def torch_exponential_lr(base, gamma, n):
    lrs, lr = [base], base
    for _ in range(n):
        lr = lr * gamma
        lrs.append(lr)
    return lrs


def torch_cosine_annealing_lr(base, t_max, eta_min, n):
    """torch.optim.lr_scheduler.CosineAnnealingLR.get_lr (recursive form)."""
    lrs, lr = [base], base
    for e in range(1, n + 1):
        if (e - 1 - t_max) % (2 * t_max) == 0:
            lr = lr + (base - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        else:
            lr = ((1 + math.cos(math.pi * e / t_max)) / (1 + math.cos(math.pi * (e - 1) / t_max))
                  * (lr - eta_min) + eta_min)
        lrs.append(lr)
    return lrs


# ---- sequences ---------------------------------------------------------------

def test_constant():
    assert run(ConstantLR(0.05), 5) == [0.05] * 6
    assert ConstantLR(3).lr == 3.0 and isinstance(ConstantLR(3).lr, float)


def test_step_by_hand():
    lrs = run(StepLR(0.1, step_size=3, gamma=0.5), 10)
    expected = [0.1] * 3 + [0.05] * 3 + [0.025] * 3 + [0.0125, 0.0125]
    assert lrs == pytest.approx(expected, rel=1e-15)
    assert run(StepLR(1.0, 1), 3) == pytest.approx([1.0, 0.1, 0.01, 0.001], rel=1e-15)


@pytest.mark.parametrize("step_size,gamma", [(1, 0.9), (3, 0.1), (7, 0.5), (2, 1.0)])
def test_step_matches_torch(step_size, gamma):
    assert run(StepLR(0.3, step_size, gamma), 40) == pytest.approx(
        torch_step_lr(0.3, step_size, gamma, 40), rel=1e-12)


def test_exponential():
    assert run(ExponentialLR(2.0, 0.5), 4) == [2.0, 1.0, 0.5, 0.25, 0.125]
    for gamma in (0.9, 0.99, 1.0):
        assert run(ExponentialLR(0.1, gamma), 200) == pytest.approx(
            torch_exponential_lr(0.1, gamma, 200), rel=1e-12)
    s = ExponentialLR(1.0, 0.5)
    for _ in range(1100):
        s.step()
    assert s.lr == 0.0                        # underflows quietly


def test_cosine_by_hand():
    c = math.cos(math.pi / 4)
    lrs = run(CosineLR(1.0, t_max=4), 8)
    expected = [1.0, (1 + c) / 2, 0.5, (1 - c) / 2, 0.0, (1 - c) / 2, 0.5, (1 + c) / 2, 1.0]
    assert lrs == pytest.approx(expected, rel=1e-12, abs=1e-15)
    lrs = run(CosineLR(0.1, t_max=2, lr_min=0.02), 2)
    assert lrs == pytest.approx([0.1, 0.06, 0.02], rel=1e-12)


@pytest.mark.parametrize("t_max,lr_min", [(1, 0.0), (5, 0.0), (10, 0.001), (37, 0.05)])
def test_cosine_matches_torch(t_max, lr_min):
    n = 3 * t_max + 2                        # beyond t_max: periodic, as PyTorch's
    assert run(CosineLR(0.1, t_max, lr_min), n) == pytest.approx(
        torch_cosine_annealing_lr(0.1, t_max, lr_min, n), rel=1e-9, abs=1e-12)


def test_inverse_scaling_by_hand():
    assert run(InverseScalingLR(1.0, 0.5), 3) == pytest.approx(
        [1.0, 1 / math.sqrt(2), 1 / math.sqrt(3), 0.5], rel=1e-15)
    assert run(InverseScalingLR(0.6, 1.0), 2) == pytest.approx([0.6, 0.3, 0.2], rel=1e-15)
    assert run(InverseScalingLR(0.6, 0.0), 3) == [0.6] * 4
    s = InverseScalingLR(1.0, 0.5)
    assert s.step(n=15) == 0.25 and s.t == 15


@pytest.mark.parametrize("power_t", [0.5, 0.25, 1.0])
def test_inverse_scaling_matches_sklearn_optimizer(power_t):
    opt = SGDOptimizer([np.zeros(3)], learning_rate_init=0.2, lr_schedule="invscaling",
                       power_t=power_t)
    s = InverseScalingLR(0.2, power_t)
    assert s.lr == opt.learning_rate
    n_samples = 37
    for epoch in range(1, 12):                # MLP: t_ += n_samples, then iteration_ends(t_)
        opt.iteration_ends(epoch * n_samples)
        s.step(n=n_samples)
        assert s.lr == pytest.approx(opt.learning_rate, rel=1e-15)


def _small_problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


def test_inverse_scaling_matches_mlpclassifier():
    X, y = _small_problem()
    clf = MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", learning_rate="invscaling",
                        learning_rate_init=0.3, power_t=0.5, max_iter=9, batch_size=20,
                        random_state=0, tol=0.0, n_iter_no_change=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    s = InverseScalingLR(0.3, 0.5)
    for _ in range(clf.n_iter_):
        s.step(n=len(X))
    assert s.lr == pytest.approx(clf._optimizer.learning_rate, rel=1e-15)


def test_plateau_by_hand():
    s = ReduceLROnPlateau(1.0, factor=0.5, patience=2, min_delta=0.1)
    #            improve  bad  bad  bad->cut  improve  bad  bad  bad->cut
    losses = [1.0, 0.95, 0.99, 0.92, 0.5, 0.45, 0.6, 0.41]
    lrs = run(s, len(losses), losses)
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25]
    assert s.best == 0.41                      # follows every new best (like sklearn)
    assert s.num_reductions == 2 and s.num_bad_epochs == 0


def test_plateau_patience_zero_min_lr_and_max_mode():
    s = ReduceLROnPlateau(1.0, factor=0.1, patience=0, min_delta=0.0, min_lr=0.005)
    assert run(s, 4, [1.0, 1.0, 1.0, 1.0]) == pytest.approx([1.0, 1.0, 0.1, 0.01, 0.005])
    assert s.step(1.0) == 0.005 and s.num_reductions == 3          # floor: no more cuts
    s = ReduceLROnPlateau(0.1, factor=0.5, patience=1, min_delta=0.01, mode="max")
    accs = [0.5, 0.7, 0.705, 0.71, 0.9, 0.8, 0.85]
    assert run(s, len(accs), accs) == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])
    assert s.best == 0.9


def test_plateau_non_finite_metric_never_improves():
    s = ReduceLROnPlateau(1.0, factor=0.5, patience=1, min_delta=0.0)
    assert run(s, 4, [float("nan"), 1.0, float("inf"), float("nan")]) == [1.0, 1.0, 1.0, 1.0, 0.5]
    assert s.best == 1.0
    json.dumps(s.state_dict(), allow_nan=False)


def _replay_sklearn_adaptive(losses, lr0, tol, n_iter_no_change):
    """The recipe in ReduceLROnPlateau's doc; returns (lr, epochs run, reductions)."""
    s = ReduceLROnPlateau(lr0, factor=0.2, patience=n_iter_no_change, min_delta=tol)
    for epoch, loss in enumerate(losses, 1):
        lr_before = s.lr
        s.step(loss)
        if s.lr < lr_before <= 1e-6:      # scikit-learn stops instead of reducing
            return lr_before, epoch, s.num_reductions - 1
    return s.lr, len(losses), s.num_reductions


def test_plateau_reproduces_sklearn_adaptive_optimizer():
    # scikit-learn's loop (MLP _fit_stochastic + _update_no_improvement_count +
    # SGDOptimizer.trigger_stopping) on a given loss sequence.
    rng = np.random.default_rng(1)
    losses = list(np.cumsum(-np.abs(rng.standard_normal(80)) * 0.02) + 5 +
                  0.05 * rng.standard_normal(80))
    tol, n_iter_no_change, lr0 = 1e-2, 3, 0.1
    opt = SGDOptimizer([np.zeros(2)], learning_rate_init=lr0, lr_schedule="adaptive")
    best, count, sk_lrs = np.inf, 0, []
    for loss in losses:
        if loss > best - tol:
            count += 1
        else:
            count = 0
        if loss < best:
            best = loss
        if count > n_iter_no_change:
            assert not opt.trigger_stopping("", False)
            count = 0
        sk_lrs.append(opt.learning_rate)
    s = ReduceLROnPlateau(lr0, factor=0.2, patience=n_iter_no_change, min_delta=tol)
    ours = [s.step(loss) for loss in losses]
    assert ours == pytest.approx(sk_lrs, rel=1e-14)
    assert s.num_reductions >= 3               # the test exercises several cuts



@pytest.mark.parametrize("max_iter", [20, 40])      # 40: scikit-learn stops on a tiny rate
def test_plateau_reproduces_mlpclassifier_adaptive(max_iter):
    X, y = _small_problem()
    clf = MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", learning_rate="adaptive",
                        learning_rate_init=0.05, momentum=0.0, max_iter=max_iter,
                        batch_size=20, tol=0.02, n_iter_no_change=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    lr, epochs, reductions = _replay_sklearn_adaptive(clf.loss_curve_, 0.05, 0.02, 2)
    assert reductions >= 2 and epochs == clf.n_iter_
    assert lr == pytest.approx(clf._optimizer.learning_rate, rel=1e-14)



# ---- state dicts, save/load ----------------------------------------------------

ALL = [
    lambda: ConstantLR(0.1),
    lambda: StepLR(0.1, 3, 0.5),
    lambda: ExponentialLR(0.2, 0.9),
    lambda: InverseScalingLR(0.5, 0.25),
    lambda: CosineLR(0.1, 7, 0.01),
    lambda: ReduceLROnPlateau(0.1, factor=0.5, patience=1, min_delta=0.01, mode="max",
                              min_lr=1e-4),
]
OTHER = {  # a differently configured instance of each class, to load into
    "ConstantLR": lambda: ConstantLR(9.0),
    "StepLR": lambda: StepLR(1.0, 1),
    "ExponentialLR": lambda: ExponentialLR(1.0, 0.5),
    "InverseScalingLR": lambda: InverseScalingLR(1.0),
    "CosineLR": lambda: CosineLR(1.0, 2),
    "ReduceLROnPlateau": lambda: ReduceLROnPlateau(1.0),
}
METRICS = [0.5, 0.6, 0.6, 0.61, 0.605, 0.7, 0.69, 0.69, 0.69, 0.7, 0.7, 0.7]


@pytest.mark.parametrize("make", ALL, ids=lambda m: type(m()).__name__)
def test_state_dict_round_trip_continues_identically(make, tmp_path):
    a = make()
    for m in METRICS[:6]:
        a.step(m)
    state = a.state_dict()
    text = json.dumps(state, allow_nan=False)       # plain JSON
    assert state["class"] == type(a).__name__ and state["t"] == 6
    b = OTHER[type(a).__name__]()
    b.load_state_dict(json.loads(text))
    assert b.state_dict() == state and repr(b) == repr(a)
    fastmlp.save(a, tmp_path / "sched.npz")
    c = fastmlp.load(tmp_path / "sched.npz")
    assert type(c) is type(a) and c.state_dict() == state
    for m in METRICS[6:]:
        assert a.step(m) == b.step(m) == c.step(m)


def test_load_state_dict_errors():
    s = StepLR(0.1, 2)
    state = s.state_dict()
    with pytest.raises(ValueError, match="state is for 'ExponentialLR', not StepLR"):
        s.load_state_dict(ExponentialLR(0.1, 0.5).state_dict())
    with pytest.raises(ValueError, match=r"missing \['gamma'\]"):
        s.load_state_dict({k: v for k, v in state.items() if k != "gamma"})
    with pytest.raises(ValueError, match=r"unexpected \['junk'\]"):
        s.load_state_dict(dict(state, junk=1))
    with pytest.raises(ValueError, match="gamma must be in"):
        s.load_state_dict(dict(state, gamma=2.0))
    with pytest.raises(ValueError, match="does not match the schedule"):
        s.load_state_dict(dict(state, t=4))
    with pytest.raises(ValueError, match="t must be >= 0"):
        s.load_state_dict(dict(state, t=-1))
    with pytest.raises(TypeError, match="expected a dict"):
        s.load_state_dict([("t", 1)])
    p = ReduceLROnPlateau(0.1, min_lr=0.01)
    with pytest.raises(ValueError, match="outside"):
        p.load_state_dict(dict(p.state_dict(), current_lr=0.001))
    assert s.state_dict() == state and p.lr == 0.1   # failed loads change nothing


# ---- bad arguments ------------------------------------------------------------

@pytest.mark.parametrize("factory,exc,match", [
    (lambda: ConstantLR(0), ValueError, "lr must be > 0"),
    (lambda: ConstantLR(-0.1), ValueError, "lr must be > 0"),
    (lambda: ConstantLR(float("nan")), ValueError, "lr must be finite"),
    (lambda: ConstantLR(float("inf")), ValueError, "lr must be finite"),
    (lambda: ConstantLR("0.1"), TypeError, "lr must be a real number"),
    (lambda: ConstantLR(True), TypeError, "lr must be a real number"),
    (lambda: StepLR(0.1, 0), ValueError, "step_size must be >= 1"),
    (lambda: StepLR(0.1, 2.5), TypeError, "step_size must be an int"),
    (lambda: StepLR(0.1, 2, gamma=0), ValueError, r"gamma must be in \(0, 1\]"),
    (lambda: StepLR(0.1, 2, gamma=1.5), ValueError, r"gamma must be in \(0, 1\]"),
    (lambda: ExponentialLR(0.1, -0.5), ValueError, r"gamma must be in \(0, 1\]"),
    (lambda: InverseScalingLR(0.1, -0.5), ValueError, "power_t must be >= 0"),
    (lambda: InverseScalingLR(0.1).step(n=0), ValueError, "n must be >= 1"),
    (lambda: CosineLR(0.1, 0), ValueError, "t_max must be >= 1"),
    (lambda: CosineLR(0.1, 5, lr_min=0.2), ValueError, "lr_min must be in"),
    (lambda: CosineLR(0.1, 5, lr_min=-0.1), ValueError, "lr_min must be in"),
    (lambda: ReduceLROnPlateau(0.1, factor=1.0), ValueError, r"factor must be in \(0, 1\)"),
    (lambda: ReduceLROnPlateau(0.1, factor=0), ValueError, r"factor must be in \(0, 1\)"),
    (lambda: ReduceLROnPlateau(0.1, patience=-1), ValueError, "patience must be >= 0"),
    (lambda: ReduceLROnPlateau(0.1, min_delta=-1e-3), ValueError, "min_delta must be >= 0"),
    (lambda: ReduceLROnPlateau(0.1, mode="avg"), ValueError, "mode must be 'min' or 'max'"),
    (lambda: ReduceLROnPlateau(0.1, min_lr=1.0), ValueError, "min_lr must be in"),
    (lambda: ReduceLROnPlateau(0.1).step(), ValueError, "a metric is required"),
    (lambda: ReduceLROnPlateau(0.1).step("low"), TypeError, "metric must be a real number"),
])
def test_bad_arguments(factory, exc, match):
    with pytest.raises(exc, match=match):
        factory()


def test_metric_ignored_and_repr():
    s = StepLR(0.1, 1, 0.5)
    assert s.step(123.0) == 0.05                # the metric is ignored
    assert repr(s) == "StepLR(lr=0.1, step_size=1, gamma=0.5)"
    assert ExponentialLR(np.float64(0.1), np.float32(0.5)).step() == 0.05
