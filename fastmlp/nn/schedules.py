"""Learning-rate schedules.

Design: a schedule is a small state machine with a common interface:

* ``.lr``: the current learning rate (read-only; use it for the next update);
* ``.step(metric=None)``: advance the schedule. Call it once per *epoch*,
  after the epoch, for every schedule except `InverseScalingLR`, which counts
  *updates* (see its doc); ``metric`` is only used by `ReduceLROnPlateau` and
  ignored by the others;
* ``.t``: how many steps were taken (epochs, or updates for invscaling);
* ``state_dict()`` / ``load_state_dict(d)``: the whole state as a plain
  JSON-able dict (str, int, float, bool, None only), to checkpoint training;
  `fastmlp.save` / `fastmlp.load` save a schedule to a file as well.

Epoch-indexed schedules are computed in closed form from ``t`` (as PyTorch's
``_get_closed_form_lr``), not by repeated multiplication, so they neither
drift nor depend on how often the state was saved and restored.

    ============================  =========================================
    ConstantLR(lr)                lr
    StepLR(lr, step_size, gamma)  lr * gamma ** (t // step_size)
    ExponentialLR(lr, gamma)      lr * gamma ** t
    InverseScalingLR(lr, power_t) lr / (t + 1) ** power_t   (t = updates)
    CosineLR(lr, t_max, lr_min)   lr_min + (lr - lr_min) (1 + cos(pi t / t_max)) / 2
    ReduceLROnPlateau(lr, ...)    lr * factor after `patience` epochs without improvement
    ============================  =========================================
"""
import math
import numbers

from fastmlp import _io

__all__ = ["ConstantLR", "StepLR", "ExponentialLR", "InverseScalingLR", "CosineLR",
           "ReduceLROnPlateau"]


def _real(value, name, cls):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{cls}: {name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{cls}: {name} must be finite, got {value}")
    return value


def _positive(value, name, cls):
    value = _real(value, name, cls)
    if value <= 0:
        raise ValueError(f"{cls}: {name} must be > 0, got {value}")
    return value


def _int(value, name, cls, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{cls}: {name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{cls}: {name} must be >= {low}, got {value}")
    return int(value)


def _gamma(value, cls):
    value = _real(value, "gamma", cls)
    if not 0 < value <= 1:
        raise ValueError(f"{cls}: gamma must be in (0, 1], got {value}")
    return value


class _Schedule:
    """Base class: subclasses list their hyperparameters in `_params` (the
    constructor's argument names) and their extra state in `_state`, and
    implement `_compute()` (the lr for the current t)."""

    _params = ("lr",)
    _state = ()
    _closed_form = True     # lr is a function of t and the hyperparameters

    def __init__(self, lr):
        self.base_lr = _positive(lr, "lr", type(self).__name__)
        self.t = 0
        self._lr = self.base_lr

    @property
    def lr(self):
        """The current learning rate."""
        return self._lr

    def step(self, metric=None):
        """End of an epoch: advance t by one and update `lr`; returns the new lr."""
        self.t += 1
        self._lr = self._compute()
        return self._lr

    def _compute(self):
        raise NotImplementedError

    def _hyper(self):
        return {p: (self.base_lr if p == "lr" else getattr(self, p)) for p in self._params}

    def state_dict(self):
        """The full state as a plain JSON-able dict."""
        state = {"class": type(self).__name__, "t": self.t, "current_lr": self._lr}
        state.update(self._hyper())
        for name in self._state:
            state[name] = getattr(self, name)
        return state

    def load_state_dict(self, state):
        """Restore a `state_dict()` of the same class (hyperparameters included)."""
        cls = type(self).__name__
        if not isinstance(state, dict):
            raise TypeError(f"{cls}.load_state_dict: expected a dict, got {type(state).__name__}")
        if state.get("class") != cls:
            raise ValueError(f"{cls}.load_state_dict: state is for {state.get('class')!r}, "
                             f"not {cls}")
        expected = {"class", "t", "current_lr", *self._params, *self._state}
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ValueError(f"{cls}.load_state_dict: bad keys (missing {missing}, "
                             f"unexpected {extra})")
        fresh = type(self)(**{p: state[p] for p in self._params})   # validates hyperparameters
        fresh.t = _int(state["t"], "t", cls, 0)
        lr = _real(state["current_lr"], "current_lr", cls)
        if lr < 0:
            raise ValueError(f"{cls}.load_state_dict: current_lr must be >= 0, got {lr}")
        fresh._lr = lr
        if fresh._closed_form:
            expected = fresh.base_lr if fresh.t == 0 else fresh._compute()
            if not math.isclose(lr, expected, rel_tol=1e-9, abs_tol=1e-300):
                raise ValueError(f"{cls}.load_state_dict: current_lr {lr} does not match "
                                 f"the schedule at t={fresh.t} ({expected})")
        fresh._load_extra(state)
        self.__dict__.update(fresh.__dict__)

    def _load_extra(self, state):
        pass

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyper().items())
        return f"{type(self).__name__}({args})"

    # fastmlp.save / fastmlp.load
    def _get_state(self):
        return self.state_dict(), {}

    @classmethod
    def _from_state(cls, params, arrays):
        if arrays:
            raise ValueError(f"{cls.__name__} state has unexpected arrays {sorted(arrays)}")
        obj = cls(**{p: params[p] for p in cls._params})
        obj.load_state_dict(params)
        return obj


@_io.register("ConstantLR")
class ConstantLR(_Schedule):
    """A constant learning rate ``lr`` (scikit-learn's ``learning_rate='constant'``)."""

    def _compute(self):
        return self.base_lr


@_io.register("StepLR")
class StepLR(_Schedule):
    """``lr * gamma ** (t // step_size)``: decay by `gamma` every `step_size` epochs
    (PyTorch's StepLR). gamma in (0, 1], step_size >= 1."""

    _params = ("lr", "step_size", "gamma")

    def __init__(self, lr, step_size, gamma=0.1):
        super().__init__(lr)
        self.step_size = _int(step_size, "step_size", "StepLR", 1)
        self.gamma = _gamma(gamma, "StepLR")

    def _compute(self):
        return self.base_lr * self.gamma ** (self.t // self.step_size)


@_io.register("ExponentialLR")
class ExponentialLR(_Schedule):
    """``lr * gamma ** t``: decay by `gamma` every epoch (PyTorch's ExponentialLR).
    gamma in (0, 1]. The lr underflows to 0.0 after very many epochs; `step`
    then keeps returning 0.0."""

    _params = ("lr", "gamma")

    def __init__(self, lr, gamma):
        super().__init__(lr)
        self.gamma = _gamma(gamma, "ExponentialLR")

    def _compute(self):
        return self.base_lr * self.gamma ** self.t


@_io.register("InverseScalingLR")
class InverseScalingLR(_Schedule):
    """scikit-learn's ``learning_rate='invscaling'``: ``lr / (t + 1) ** power_t``.

    Here ``t`` counts *updates*, not epochs: ``lr`` is used for the first
    update, and after t updates the rate is ``lr / (t + 1) ** power_t`` (i.e.
    ``lr / t'**power_t`` with the update number t' = t + 1 starting at 1).
    Call ``step()`` after every update, or ``step(n=k)`` after k of them.

    To reproduce scikit-learn's MLPClassifier/MLPRegressor(solver='sgd',
    learning_rate='invscaling'), which keeps the rate fixed during an epoch
    and then sets it to ``learning_rate_init / (samples_seen + 1) ** power_t``
    (SGDOptimizer.iteration_ends with MLP's ``t_``, the number of samples
    seen), call ``step(n=n_samples)`` once at the end of every epoch.

    power_t >= 0 (0 gives a constant rate; scikit-learn's default is 0.5).
    """

    _params = ("lr", "power_t")

    def __init__(self, lr, power_t=0.5):
        super().__init__(lr)
        power_t = _real(power_t, "power_t", "InverseScalingLR")
        if power_t < 0:
            raise ValueError(f"InverseScalingLR: power_t must be >= 0, got {power_t}")
        self.power_t = power_t

    def step(self, metric=None, n=1):
        """After `n` more updates (default 1): advance t by n; returns the new lr."""
        n = _int(n, "n", "InverseScalingLR.step", 1)
        self.t += n
        self._lr = self._compute()
        return self._lr

    def _compute(self):
        return self.base_lr / (self.t + 1) ** self.power_t


@_io.register("CosineLR")
class CosineLR(_Schedule):
    """Cosine annealing from `lr` down to `lr_min` over `t_max` epochs.

    ``lr_min + (lr - lr_min) * (1 + cos(pi * t / t_max)) / 2``: the closed
    form of PyTorch's ``CosineAnnealingLR(T_max=t_max, eta_min=lr_min)``. It
    reaches `lr_min` at ``t == t_max``; like PyTorch's formula it is periodic
    beyond that (it rises back to `lr` at ``t == 2 * t_max``), so size
    ``t_max`` to the number of epochs. 0 <= lr_min <= lr, t_max >= 1.
    """

    _params = ("lr", "t_max", "lr_min")

    def __init__(self, lr, t_max, lr_min=0.0):
        super().__init__(lr)
        self.t_max = _int(t_max, "t_max", "CosineLR", 1)
        lr_min = _real(lr_min, "lr_min", "CosineLR")
        if not 0 <= lr_min <= self.base_lr:
            raise ValueError(f"CosineLR: lr_min must be in [0, lr={self.base_lr}], got {lr_min}")
        self.lr_min = lr_min

    def _compute(self):
        cos = math.cos(math.pi * self.t / self.t_max)
        return self.lr_min + (self.base_lr - self.lr_min) * (1.0 + cos) / 2.0



@_io.register("ReduceLROnPlateau")
class ReduceLROnPlateau(_Schedule):
    """Multiply the rate by `factor` when a metric stops improving.

    ``step(metric)`` after every epoch, with the monitored value (e.g. the
    training or validation loss for ``mode='min'``, an accuracy for
    ``mode='max'``). An epoch *improves* when the metric beats ``best`` (the
    best value seen so far) by more than `min_delta`: ``metric < best -
    min_delta`` ('min') or ``metric > best + min_delta`` ('max'); the first
    epoch always does. When more than `patience` epochs in a row did not
    improve, the rate becomes ``max(lr * factor, min_lr)`` and the count
    restarts from 0. ``best`` follows every new best value, even one that is
    better by less than `min_delta` (as scikit-learn's ``best_loss_``). A
    non-finite metric (NaN, inf) never improves and never becomes ``best``.

    Attributes: ``best`` (None before the first step), ``num_bad_epochs``,
    ``num_reductions``.

    scikit-learn's ``learning_rate='adaptive'`` (MLPClassifier/MLPRegressor,
    solver='sgd'), which divides the rate by 5 when the loss has not improved
    by ``tol`` for more than ``n_iter_no_change`` consecutive epochs, is::

        ReduceLROnPlateau(learning_rate_init, factor=0.2, patience=n_iter_no_change,
                          min_delta=tol, mode='min')     # step(training loss)
        # early_stopping=True: mode='max', step(validation score)

    scikit-learn stops training instead when a reduction is due while the
    rate is already <= 1e-6; to do the same::

        lr_before = sched.lr
        sched.step(loss)
        if sched.lr < lr_before <= 1e-6:
            break                       # and keep training with lr_before

    (scikit-learn counts a metric of exactly ``best - tol`` as an
    improvement; this class does not.)

    factor in (0, 1), patience >= 0, min_delta >= 0, 0 <= min_lr <= lr.
    """

    _params = ("lr", "factor", "patience", "min_delta", "mode", "min_lr")
    _state = ("best", "num_bad_epochs", "num_reductions")
    _closed_form = False

    def __init__(self, lr, factor=0.1, patience=10, min_delta=1e-4, mode="min", min_lr=0.0):
        super().__init__(lr)
        cls = "ReduceLROnPlateau"
        factor = _real(factor, "factor", cls)
        if not 0 < factor < 1:
            raise ValueError(f"{cls}: factor must be in (0, 1), got {factor}")
        self.factor = factor
        self.patience = _int(patience, "patience", cls, 0)
        min_delta = _real(min_delta, "min_delta", cls)
        if min_delta < 0:
            raise ValueError(f"{cls}: min_delta must be >= 0, got {min_delta}")
        self.min_delta = min_delta
        if mode not in ("min", "max"):
            raise ValueError(f"{cls}: mode must be 'min' or 'max', got {mode!r}")
        self.mode = mode
        min_lr = _real(min_lr, "min_lr", cls)
        if not 0 <= min_lr <= self.base_lr:
            raise ValueError(f"{cls}: min_lr must be in [0, lr={self.base_lr}], got {min_lr}")
        self.min_lr = min_lr
        self.best = None
        self.num_bad_epochs = 0
        self.num_reductions = 0

    def step(self, metric=None):
        """End of an epoch with the monitored `metric`; returns the (new) lr."""
        if metric is None:
            raise ValueError("ReduceLROnPlateau.step: a metric is required (e.g. the epoch's loss)")
        if isinstance(metric, bool) or not isinstance(metric, numbers.Real):
            raise TypeError(f"ReduceLROnPlateau.step: metric must be a real number, "
                            f"got {metric!r}")
        metric = float(metric)
        self.t += 1
        best = self.best
        if self.mode == "min":
            improved = best is None or metric < best - self.min_delta
            new_best = best is None or metric < best
        else:
            improved = best is None or metric > best + self.min_delta
            new_best = best is None or metric > best
        finite = math.isfinite(metric)
        if new_best and finite:
            self.best = metric
        if improved and finite:
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.num_bad_epochs > self.patience:
            new_lr = max(self._lr * self.factor, self.min_lr)
            if new_lr < self._lr:
                self.num_reductions += 1
            self._lr = new_lr
            self.num_bad_epochs = 0
        return self._lr

    def _load_extra(self, state):
        cls = "ReduceLROnPlateau.load_state_dict"
        best = state["best"]
        self.best = None if best is None else _real(best, "best", cls)
        self.num_bad_epochs = _int(state["num_bad_epochs"], "num_bad_epochs", cls, 0)
        self.num_reductions = _int(state["num_reductions"], "num_reductions", cls, 0)
        if not self.min_lr <= self._lr <= self.base_lr:
            raise ValueError(f"{cls}: current_lr {self._lr} is outside [min_lr, lr]")
