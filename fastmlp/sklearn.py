"""scikit-learn drop-in: `MLPClassifier` and `MLPRegressor` on fastmlp's kernels.

Design: the estimators SUBCLASS scikit-learn's own ``MLPClassifier`` /
``MLPRegressor`` (so ``sklearn.base.BaseEstimator``, the classifier /
regressor mixins, ``validate_data``, ``_parameter_constraints``, label
binarisation, weight initialisation, ``partial_fit``/``warm_start``
bookkeeping and lbfgs through ``scipy.optimize.minimize(method="L-BFGS-B")``
are scikit-learn's code) and replace the numerical work:

* Stochastic solvers (sgd, adam, and the extra adagrad, adadelta, rmsprop,
  adamax) run fastmlp's own epoch loop (`_FastMLPMixin._fm_fit_stochastic`)
  on a `fastmlp.nn.mlp.DenseMLP`: ``coefs_`` and ``intercepts_`` are views
  into one flat parameter buffer, each batch is gathered into a preallocated
  buffer (no copy of X, not even for early stopping's split: batches are
  gathered by index), the forward pass runs GEMMs with the bias and hidden
  activation fused into the store, the softmax + log-loss and its gradient are
  one fused kernel, and the optimizer update is one fused kernel over the flat
  buffer (two: weights with the L2/L1 term, biases without). The loop
  reproduces scikit-learn 1.9's `_fit_stochastic` step for step -- the same
  random draws (train/validation split, per-epoch shuffle), batches, loss
  values (``loss_``, ``loss_curve_``), learning-rate schedules (constant,
  invscaling, adaptive), stopping rule (``tol``, ``n_iter_no_change``),
  early stopping with best-weight restore, verbose messages and warnings --
  so results agree with scikit-learn up to floating-point rounding. The loss
  of the softmax output is computed from the logits with a log-sum-exp
  (scikit-learn clips probabilities to [eps, 1 - eps] first; the values
  differ only for probabilities within eps of 0 or 1).
* lbfgs: scikit-learn's driver, fed by `_backprop` below (fastmlp kernels).
* Prediction: a validated fast path (dense float input of the model's dtype
  calls the GEMM core directly) and scikit-learn's validation otherwise.

Extras (defaults keep scikit-learn's behaviour): ``activation='leaky_relu'``
(slope 0.01); solvers 'adagrad', 'adadelta', 'rmsprop' (decay ``rho``) and
'adamax' (``beta_1``, ``beta_2``), all with ``learning_rate_init`` as their
step size (Adadelta's paper uses 1.0) and ``epsilon``; ``dropout`` (inverted
dropout on every hidden layer in training, masks from ``random_state``);
``batch_norm`` (batch normalisation of every hidden pre-activation; running
statistics for prediction; a batch of one sample uses the running statistics);
``l1`` (penalty ``l1 * ||W||_1 / n_samples_in_batch``, the analogue of
scikit-learn's ``alpha * ||W||^2 / (2 n)``); ``n_threads`` (threads for this
estimator's fit and predict; None = fastmlp's setting); ``class_weight``
(classifier: None, 'balanced' or {class: weight}, multiplied into
sample_weight as in scikit-learn's linear models). dropout and batch_norm need
a stochastic solver.

float32 input trains and predicts in float32 end to end; float64 in float64.
Sparse X is supported (batches are densified; lbfgs uses scipy.sparse).
"""
import contextlib
import inspect
import logging
import numbers
import time
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn import config_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as _SkMLPClassifier
from sklearn.neural_network import MLPRegressor as _SkMLPRegressor
from sklearn.neural_network._base import LOSS_FUNCTIONS
from sklearn.utils import gen_batches, shuffle as _sk_shuffle
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from fastmlp import _io, ops
from fastmlp._core import _act as _act_core
from fastmlp._core import _gemm, _optim
from fastmlp._core import _mlp as _mlp_core
from fastmlp._threads import get_num_threads, threads as _threads_ctx
from fastmlp.nn.mlp import DenseMLP, FlatOptimizer, apply_output_activation

__all__ = ["MLPClassifier", "MLPRegressor", "patch_sklearn", "unpatch_sklearn",
           "sklearn_is_patched"]

logger = logging.getLogger("fastmlp")

_HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "leaky_relu")
_LEAKY_SLOPE = 0.01
_SK_SOLVERS = ("lbfgs", "sgd", "adam")
_EXTRA_SOLVERS = ("adagrad", "adadelta", "rmsprop", "adamax")
_STOCHASTIC = ("sgd", "adam") + _EXTRA_SOLVERS
_GEMM_ACT = {"identity": 0, "logistic": _gemm.ACTIVATIONS["sigmoid"],
             "tanh": _gemm.ACTIVATIONS["tanh"], "relu": _gemm.ACTIVATIONS["relu"],
             "leaky_relu": _gemm.ACTIVATIONS["leaky_relu"]}
# scikit-learn >= 1.7 passes sample_weight to _backprop and the loss functions.
_BACKPROP_HAS_SW = "sample_weight" in inspect.signature(_SkMLPClassifier._backprop).parameters
_VAL_CHUNK = 4096      # rows per chunk when scoring the validation set


def _sklearn_api_ok():
    """True when the installed scikit-learn has the private MLP API this module
    builds on (checked once; patch_sklearn keeps scikit-learn's classes if not)."""
    try:
        for cls in (_SkMLPClassifier, _SkMLPRegressor):
            for name in ("_initialize", "_init_coef", "_fit_lbfgs", "_validate_input",
                         "_backprop", "_forward_pass_fast", "_loss_grad_lbfgs"):
                if not callable(getattr(cls, name, None)):
                    return False
            params = list(inspect.signature(cls._fit_lbfgs).parameters)
            if params[1:] != ["X", "y", "sample_weight", "activations", "deltas", "coef_grads",
                              "intercept_grads", "layer_units"]:
                return False
        return True
    except (TypeError, ValueError):      # pragma: no cover
        return False


_SK_API_OK = _sklearn_api_ok()


def _hidden_forward(x, w, b, activation):
    """act(x @ w + b) with the activation fused into the GEMM (dense x), or
    scipy.sparse product then fastmlp's element-wise activation (sparse x)."""
    if sp.issparse(x):
        z = np.asarray(safe_sparse_dot(x, w, dense_output=True))
        z += b
        if activation not in (None, "identity"):
            ops.activation(activation, z, out=z, alpha=_LEAKY_SLOPE)
        return z
    if x.dtype != np.float32 and x.dtype != np.float64:
        x = x.astype(np.float64)      # ints (predict accepts them): float64, as numpy's x @ w
    return ops.linear(x, w, b, activation=activation, alpha=_LEAKY_SLOPE)


def _output_activation(z, name):
    """Apply the output activation in place (z is a fresh array)."""
    if name == "softmax":
        ops.softmax(z, out=z)
    elif name == "logistic":
        ops.activation("sigmoid", z, out=z)
    elif name == "exp":
        np.exp(z, out=z)
    # identity: nothing
    return z


def _inplace_derivative(a, delta, activation):
    """delta *= f'(z) expressed through the layer's OUTPUT a = f(z), as scikit-learn does."""
    if activation == "relu":
        ops.activation_backward("relu", a, delta, out=delta)   # a > 0 <=> z > 0
    elif activation == "leaky_relu":
        # a < 0 <=> z < 0 for a positive slope
        ops.activation_backward("leaky_relu", a, delta, out=delta, alpha=_LEAKY_SLOPE)
    elif activation == "tanh":
        delta *= 1 - a * a
    elif activation == "logistic":
        delta *= a
        delta *= 1 - a


def _sk_loss(name, y, p, sw):
    if _BACKPROP_HAS_SW:
        return LOSS_FUNCTIONS[name](y, p, sw)
    return LOSS_FUNCTIONS[name](y, p)      # pragma: no cover  (scikit-learn < 1.7)


def _penalized(loss, nrm, l1sum, alpha, l1, sw_sum):
    """A batch's loss plus scikit-learn's L2 term (and fastmlp's L1 term), from
    the weights' norm ||W||_2 and sum |W| and the batch's sum of weights."""
    if alpha:
        sq = nrm * nrm      # inf, not OverflowError, for huge weights
        loss += (0.5 * alpha) * sq / sw_sum
    if l1:
        loss += l1 * l1sum / sw_sum
    return loss


def _fm_known_finite_y(y):
    """y is an ndarray that scikit-learn's finiteness check would pass: integer,
    boolean or string labels, or finite floats."""
    if type(y) is not np.ndarray:
        return False
    if y.dtype.kind in "iubUS":
        return True
    return _mlp_core.all_finite(y)


class _SGDSchedule:
    """scikit-learn's SGDOptimizer learning-rate logic (constant, invscaling, adaptive)."""

    def __init__(self, est):
        self.lr_init = float(est.learning_rate_init)
        self.lr = self.lr_init
        self.schedule = est.learning_rate
        self.power_t = est.power_t

    def iteration_ends(self, t):
        if self.schedule == "invscaling":
            self.lr = self.lr_init / (t + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        if self.schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.lr <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.lr /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.lr)
        return False


class _ConstSchedule:
    """Adam and the extra solvers: constant step size, stop when triggered."""

    def __init__(self, est):
        self.lr = float(est.learning_rate_init)

    def iteration_ends(self, t):
        pass

    def trigger_stopping(self, msg, verbose):
        if verbose:
            print(msg + " Stopping.")
        return True


class _FastMLPMixin:
    """fastmlp's training loop, prediction and extras (see the module docstring)."""

    # ---------------------------------------------------------------- helpers
    def _fm_act(self):
        return None if self.activation == "identity" else self.activation

    def _fm_threads(self):
        n = getattr(self, "n_threads", None)
        return contextlib.nullcontext() if n is None else _threads_ctx(n)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC:
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 "%s is not stochastic." % self.solver)
        return True

    def _initialize(self, y, layer_units, dtype):
        super()._initialize(y, layer_units, dtype)
        if self.solver in _EXTRA_SOLVERS:     # scikit-learn only sets these for sgd/adam
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
        self._fm_engine = None
        self._fm_bind(layer_units, dtype)
        # scikit-learn's _best_coefs: the initial weights until validation improves
        self._fm_best = self._fm_engine.snapshot() if self.early_stopping else None

    def _fm_bind(self, layer_units, dtype):
        """The DenseMLP holding coefs_/intercepts_ as views (rebuilt, keeping the
        values, when the user or scikit-learn code replaced those arrays)."""
        eng = getattr(self, "_fm_engine", None)
        bn = bool(self.batch_norm)
        if (eng is not None and eng.units == list(layer_units) and eng.dtype == dtype
                and eng.batch_norm == bn and eng.holds(self.coefs_, self.intercepts_)):
            eng.dropout = float(self.dropout)
            return eng
        new = DenseMLP(layer_units, self.activation, dtype, slope=_LEAKY_SLOPE,
                       dropout=float(self.dropout), batch_norm=bn)
        new.set_parameters(self.coefs_, self.intercepts_)
        if eng is not None and new.same_layout(eng) and bn:
            new.set_bn_state(eng.bn_state())
        self.coefs_ = list(new.coefs)
        self.intercepts_ = list(new.intercepts)
        self._fm_engine = new
        if not new.same_layout(eng):
            self.__dict__.pop("_fm_opt", None)      # optimizer state of another layout
        return new

    # ---------------------------------------------------------------- fit
    def _fm_sample_weight(self, y, sample_weight, incremental):
        cw = getattr(self, "class_weight", None)
        if cw is None:
            return sample_weight
        if incremental and cw == "balanced":
            raise ValueError("class_weight='balanced' is not supported by partial_fit (the "
                             "class frequencies of the whole data are unknown); pass a dict "
                             "of weights computed on the whole data instead")
        w = compute_sample_weight(cw, y)
        if sample_weight is None:
            return w
        return np.asarray(sample_weight, dtype=np.float64) * w

    def _fit(self, X, y, sample_weight=None, incremental=False):
        with self._fm_threads():
            return self._fm_fit(X, y, sample_weight, incremental)

    def _validate_input(self, X, y, incremental, reset):
        # scikit-learn's validation, with its finiteness check of X (a serial
        # pass over the data, ~20 ms for 60000 x 784) done by fastmlp's
        # multi-threaded one when X and y are plain arrays it can read; any
        # other input, or a non-finite value, takes scikit-learn's own check
        # (and its error message).
        if _mlp_core.all_finite(X, get_num_threads()) and _fm_known_finite_y(y):
            with config_context(assume_finite=True):
                return super()._validate_input(X, y, incremental, reset)
        return super()._validate_input(X, y, incremental, reset)

    def _fm_fit(self, X, y, sample_weight, incremental):
        hidden = self.hidden_layer_sizes
        if not hasattr(hidden, "__iter__"):
            hidden = [hidden]
        hidden = list(hidden)
        if not all(isinstance(h, (numbers.Integral, np.integer)) and not isinstance(h, bool)
                   for h in hidden):
            raise ValueError("hidden_layer_sizes must be positive integers, got %r."
                             % (self.hidden_layer_sizes,))
        if np.any(np.array(hidden) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden)
        if self.solver == "lbfgs" and (self.dropout > 0 or self.batch_norm):
            raise ValueError("dropout and batch_norm need a stochastic solver (sgd, adam, "
                             "adagrad, adadelta, rmsprop or adamax), not lbfgs")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [n_features] + hidden + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        if self.solver == "lbfgs":
            self._fm_engine = None
            activations = [X] + [None] * (len(layer_units) - 1)
            deltas = [None] * (len(activations) - 1)
            coef_grads = [np.empty((a, b), dtype=X.dtype)
                          for a, b in zip(layer_units[:-1], layer_units[1:])]
            intercept_grads = [np.empty(b, dtype=X.dtype) for b in layer_units[1:]]
            self._fit_lbfgs(X, y, sample_weight, activations, deltas, coef_grads,
                            intercept_grads, layer_units)
        else:
            self._fm_fit_stochastic(X, y, sample_weight, layer_units, incremental)
        if not all(np.isfinite(w).all() for w in self.coefs_ + self.intercepts_):
            raise ValueError("Solver produced non-finite parameter weights. The input data may"
                             " contain large values and need to be preprocessed.")
        return self

    def _fm_make_optimizer(self, eng):
        s = self.solver
        eps = float(self.epsilon)
        if s == "sgd":
            method = "sgd" if self.momentum == 0 else (
                "nesterov" if self.nesterovs_momentum else "momentum")
            hyper = {} if method == "sgd" else {"momentum": float(self.momentum)}
            opt = FlatOptimizer(method, eng, **hyper)
            opt.schedule = _SGDSchedule(self)
            return opt
        if s in ("adam", "adamax"):
            opt = FlatOptimizer(s, eng, beta1=float(self.beta_1), beta2=float(self.beta_2),
                                eps=eps)
        elif s == "adagrad":
            opt = FlatOptimizer("adagrad", eng, eps=eps)
        else:       # adadelta, rmsprop
            opt = FlatOptimizer(s, eng, rho=float(self.rho), eps=eps)
        opt.schedule = _ConstSchedule(self)
        return opt

    def _fm_fit_stochastic(self, X, y, sample_weight, layer_units, incremental):
        eng = self._fm_bind(layer_units, X.dtype)
        if not incremental or getattr(self, "_fm_opt", None) is None:
            self._fm_opt = self._fm_make_optimizer(eng)
        opt = self._fm_opt
        sched = opt.schedule
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        n_all = X.shape[0]
        if early_stopping:
            # The same split as scikit-learn's train_test_split(X, y, ...): it
            # depends only on n, the stratification and the random state.
            stratify = y if (self._fm_is_classifier() and self.n_outputs_ == 1) else None
            train_idx, val_idx = train_test_split(
                np.arange(n_all), random_state=self._random_state,
                test_size=self.validation_fraction, stratify=stratify)
            if val_idx.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            y_val = y[val_idx]
            if self._fm_is_classifier():
                y_val = self._label_binarizer.inverse_transform(y_val)
            sw_val = None if sample_weight is None else sample_weight[val_idx]
        else:
            train_idx = None
        n_samples = n_all if train_idx is None else train_idx.shape[0]
        sample_idx = np.arange(n_samples, dtype=int)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        dt = X.dtype
        softmax = self.out_activation_ == "softmax"
        if softmax:
            labels = np.ascontiguousarray(np.argmax(y, axis=1), dtype=np.int64)
            lab_buf = np.empty(batch_size, np.int64)
        else:
            yf = np.ascontiguousarray(y, dtype=dt)
            loss_name = self.loss
            if loss_name == "log_loss" and self.out_activation_ == "logistic":
                loss_name = "binary_log_loss"
        sw = None if sample_weight is None else np.ascontiguousarray(sample_weight, np.float64)
        sparse = sp.issparse(X)
        if sparse:
            X = X.tocsr()
        dense_view = not sparse and (X.flags.c_contiguous or X.flags.f_contiguous)
        alpha, l1 = float(self.alpha), float(self.l1)
        dropout_seed = (int(self._random_state.randint(0, 2**31 - 1)) << 20
                        if self.dropout > 0 else 0)
        adam = self.solver == "adam"
        nt = get_num_threads()
        step_no = 0
        # Dense input without dropout or batch norm trains on the compiled
        # step (bitwise the kernel-by-kernel step below): a softmax
        # classifier's epoch runs as runs of whole steps (_fm_epoch_steps);
        # other outputs take two calls a batch, around scikit-learn's loss
        # computed here.
        trainer = None
        if not sparse:
            try:
                trainer = eng.trainer(X, labels if softmax else None, opt, batch_size)
            except ValueError:      # an X the compiled step cannot address in place
                trainer = None
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    sample_idx = _sk_shuffle(sample_idx, random_state=self._random_state)
                if trainer is not None and softmax:
                    # dense softmax classifier: runs of compiled steps
                    accumulated_loss = self._fm_epoch_steps(
                        trainer, opt, sample_idx, train_idx, sw, n_samples, batch_size, alpha, l1)
                    step_no += -(-n_samples // batch_size)
                else:
                    accumulated_loss = 0.0
                    for batch_slice in gen_batches(n_samples, batch_size):
                        m = batch_slice.stop - batch_slice.start
                        if self.shuffle:
                            rows = sample_idx[batch_slice]
                            if train_idx is not None:
                                rows = train_idx[rows]
                        elif train_idx is not None:
                            rows = train_idx[batch_slice]
                        else:
                            rows = batch_slice
                        if sw is None:
                            swb, sw_sum = None, float(m)
                        else:
                            swb = sw[rows]
                            sw_sum = float(swb.sum())
                        eps_scale = 1.0
                        if adam:   # scikit-learn's Adam adds eps to sqrt(v), not sqrt(v_hat)
                            eps_scale = 1.0 / np.sqrt(1.0 - self.beta_2 ** (opt.t + 1))
                        if trainer is not None:
                            if isinstance(rows, slice):
                                r_arr, row0 = None, rows.start
                            else:
                                r_arr, row0 = np.ascontiguousarray(rows, np.int64), 0
                            # (a softmax output with a trainer runs whole epochs above)
                            trainer.forward(r_arr, row0, m, nt)
                            loss = self._fm_output_loss(eng, eng.output_buffer(m), yf[rows],
                                                        swb, sw_sum, loss_name, nt)
                            nrm, l1sum = opt.fused_update(
                                trainer, r_arr, row0, m, sched.lr, alpha / sw_sum, l1 / sw_sum,
                                eps_scale, bool(alpha), bool(l1))
                        else:
                            # -- the batch's inputs
                            if sparse:
                                xb = eng.input_buffer(m)
                                xb[...] = X[rows].toarray()
                            elif isinstance(rows, slice) and dense_view:
                                xb = X[rows]
                            else:
                                xb = eng.input_buffer(m)
                                np.take(X, rows, axis=0, out=xb, mode="clip")   # rows are valid
                            z = eng.forward_train(xb, dropout_seed + step_no)
                            delta = eng.delta_buffer(m)
                            # -- loss and output gradient, scikit-learn's definitions
                            if softmax:
                                if isinstance(rows, slice):
                                    lb = labels[rows]
                                else:
                                    lb = lab_buf[:m]
                                    np.take(labels, rows, out=lb, mode="clip")
                                loss = _act_core.softmax_xent(z, lb, None, swb, sw_sum, delta, nt)
                            else:
                                loss = self._fm_output_loss(eng, z, yf[rows], swb, sw_sum,
                                                            loss_name, nt)
                            # the penalty terms' sums, over the weights this batch used
                            nrm = _optim.grad_norm(eng.params[:eng.n_coef], nt) if alpha else 0.0
                            l1sum = float(np.abs(eng.params[:eng.n_coef]).sum(
                                dtype=np.float64)) if l1 else 0.0
                            eng.backward()
                            opt.step(eng, sched.lr, alpha / sw_sum, l1 / sw_sum, eps_scale)
                        step_no += 1
                        accumulated_loss += _penalized(loss, nrm, l1sum, alpha, l1, sw_sum) * m

                self.n_iter_ += 1
                self.loss_ = accumulated_loss / n_samples
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                if early_stopping:
                    self._fm_validation_step(X, val_idx, y_val, sw_val)
                else:
                    if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                        self._no_improvement_count += 1
                    else:
                        self._no_improvement_count = 0
                    if self.loss_curve_[-1] < self.best_loss_:
                        self.best_loss_ = self.loss_curve_[-1]
                sched.iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = ("Validation score did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    else:
                        msg = ("Training loss did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    if sched.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and "
                                  "the optimization hasn't converged yet." % self.max_iter,
                                  ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        best = getattr(self, "_fm_best", None)
        if early_stopping and best is not None and len(best) == len(eng.state_arrays()) and \
                all(a.shape == b.shape for a, b in zip(best, eng.state_arrays())):
            eng.restore(best)      # best weights, in place (the coefs_ views stay valid)

    # steps per compiled call of an epoch: amortizes the call, and keeps
    # KeyboardInterrupt (checked between calls) responsive
    _FM_STEPS_PER_CALL = 32

    def _fm_epoch_steps(self, trainer, opt, sample_idx, train_idx, sw, n_samples, batch_size,
                        alpha, l1):
        """One epoch of a softmax classifier on the compiled trainer, a run of
        steps per call (Trainer.steps: one parallel region, the next batch's
        rows prefetched during each update). Bitwise the per-batch fused_step
        loop: the same batches, per-batch sums of weights, penalties scaled by
        them, Adam's eps factor per step. Returns the accumulated loss."""
        if self.shuffle:
            order = sample_idx if train_idx is None else train_idx[sample_idx]
        else:
            order = train_idx          # None: X's rows read in place
        if order is not None:
            order = np.ascontiguousarray(order, np.int64)
        sw_pos = None if sw is None else (sw if order is None else sw[order])
        los = range(0, n_samples, batch_size)
        wsums = None if sw_pos is None else np.array(
            [float(sw_pos[lo:lo + batch_size].sum()) for lo in los])
        eps_scale = None
        if self.solver == "adam":   # scikit-learn adds eps to sqrt(v), not sqrt(v_hat)
            eps_scale = np.array([1.0 / np.sqrt(1.0 - self.beta_2 ** (opt.t + s + 1))
                                  for s in range(len(los))], dtype=np.float64)
        accumulated_loss = 0.0
        per_call = self._FM_STEPS_PER_CALL
        for s0 in range(0, len(los), per_call):
            s1 = min(s0 + per_call, len(los))
            start, stop = los[s0], min(n_samples, los[s1 - 1] + batch_size)
            res = opt.fused_steps(
                trainer, order, start, stop, batch_size, sw_pos,
                None if wsums is None else wsums[s0:s1], opt.schedule.lr, alpha, l1,
                None if eps_scale is None else eps_scale[s0:s1], bool(alpha), bool(l1))
            for s, (loss, nrm, l1sum) in enumerate(res.tolist(), start=s0):
                lo = los[s]
                m = min(batch_size, n_samples - lo)
                sw_sum = float(m) if wsums is None else float(wsums[s])
                accumulated_loss += _penalized(loss, nrm, l1sum, alpha, l1, sw_sum) * m
        return accumulated_loss

    def _fm_output_loss(self, eng, z, yb, swb, sw_sum, loss_name, nt):
        """scikit-learn's loss of a batch whose output pre-activation is z (m
        rows, an engine buffer: the output activation is applied in place),
        and its gradient (out - y) * w / sum(w) written to the engine's delta
        buffer."""
        m = z.shape[0]
        out = apply_output_activation(z, self.out_activation_, nt)
        loss = _sk_loss(loss_name, yb, out, swb)
        delta = eng.delta_buffer(m)
        np.subtract(out, yb, out=delta)
        if swb is None:
            delta *= delta.dtype.type(1.0 / sw_sum)
        else:
            delta *= (swb / sw_sum).astype(delta.dtype).reshape(-1, 1)
        return loss

    def _fm_is_classifier(self):
        return hasattr(self, "_label_binarizer")

    def _fm_validation_step(self, X, val_idx, y_val, sw_val):
        """scikit-learn's early-stopping bookkeeping; the validation rows are
        predicted in chunks gathered by index (no copy of the validation set)."""
        preds = []
        for s in range(0, val_idx.shape[0], _VAL_CHUNK):
            preds.append(self._fm_forward(X[val_idx[s:s + _VAL_CHUNK]]))
        y_pred = np.concatenate(preds)
        if self._fm_is_classifier():
            if self.n_outputs_ == 1:
                y_pred = y_pred.ravel()
            y_pred = self._label_binarizer.inverse_transform(y_pred)
            score_fn = accuracy_score
        else:
            if y_pred.shape[1] == 1:
                y_pred = y_pred.ravel()
            score_fn = r2_score
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            score = np.nan
        else:
            score = score_fn(y_val, y_pred, sample_weight=sw_val)
        self.validation_scores_.append(score)
        if self.verbose:
            print("Validation score: %f" % self.validation_scores_[-1])
        last = self.validation_scores_[-1]
        if last < (self.best_validation_score_ + self.tol):
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if last > self.best_validation_score_:
            self.best_validation_score_ = last
            self._fm_best = self._fm_engine.snapshot()
            self._best_coefs = [c.copy() for c in self.coefs_]
            self._best_intercepts = [i.copy() for i in self.intercepts_]

    # ---------------------------------------------------------------- lbfgs backprop
    def _forward_pass(self, activations):
        act = self._fm_act()
        last = self.n_layers_ - 2
        for i in range(self.n_layers_ - 1):
            if i == last:
                z = _hidden_forward(activations[i], self.coefs_[i], self.intercepts_[i], None)
                activations[i + 1] = _output_activation(z, self.out_activation_)
            else:
                activations[i + 1] = _hidden_forward(activations[i], self.coefs_[i],
                                                     self.intercepts_[i], act)
        return activations

    def _backprop(self, X, y, *args):
        if _BACKPROP_HAS_SW:
            sample_weight, activations, deltas, coef_grads, intercept_grads = args
        else:
            sample_weight = None
            activations, deltas, coef_grads, intercept_grads = args
        n_samples = X.shape[0]
        activations = self._forward_pass(activations)

        loss_name = self.loss
        if loss_name == "log_loss" and self.out_activation_ == "logistic":
            loss_name = "binary_log_loss"
        loss = _sk_loss(loss_name, y, activations[-1], sample_weight)
        sw_sum = n_samples if sample_weight is None else float(np.sum(sample_weight))
        values = 0.0
        for s in self.coefs_:
            s = s.ravel()
            values += float(np.dot(s, s))
        loss += (0.5 * self.alpha) * values / sw_sum
        l1 = float(getattr(self, "l1", 0.0))
        if l1:
            loss += l1 * sum(float(np.abs(c).sum()) for c in self.coefs_) / sw_sum

        last = self.n_layers_ - 2
        out = activations[-1]
        delta = out - y.astype(out.dtype, copy=False)
        if sample_weight is None:
            delta *= out.dtype.type(1.0 / sw_sum)
        else:
            delta *= (np.asarray(sample_weight, dtype=np.float64) / sw_sum
                      ).astype(out.dtype).reshape(-1, 1)
        deltas[last] = delta
        decay = out.dtype.type(self.alpha / sw_sum)
        for i in range(last, -1, -1):
            a_in = activations[i]
            need_x = i > 0
            if sp.issparse(a_in):
                coef_grads[i] = np.asarray(safe_sparse_dot(a_in.T, deltas[i],
                                                           dense_output=True),
                                           dtype=coef_grads[i].dtype)
                ops.bias_grad(deltas[i], out=intercept_grads[i])
                grad_x = None
            else:
                grad_x, _, _ = ops.linear_backward(a_in, self.coefs_[i], deltas[i],
                                                   need_grad_x=need_x,
                                                   grad_w_out=coef_grads[i],
                                                   grad_b_out=intercept_grads[i])
            if self.alpha:
                coef_grads[i] += decay * self.coefs_[i]
            if l1:
                coef_grads[i] += out.dtype.type(l1 / sw_sum) * np.sign(self.coefs_[i])
            if need_x:
                _inplace_derivative(activations[i], grad_x, self.activation)
                deltas[i - 1] = grad_x
        return loss, coef_grads, intercept_grads

    # ---------------------------------------------------------------- predict
    def _fm_forward(self, X):
        """Network output (after the output activation) for validated X."""
        eng = getattr(self, "_fm_engine", None)
        if eng is not None and eng.batch_norm:
            if not eng.holds(self.coefs_, self.intercepts_):
                eng.set_parameters(self.coefs_, self.intercepts_)
                self.coefs_, self.intercepts_ = list(eng.coefs), list(eng.intercepts)
            if sp.issparse(X):
                X = X.toarray()
            return eng.predict_raw(np.asarray(X, dtype=eng.dtype), self.out_activation_)
        if not sp.issparse(X) and X.dtype == self.coefs_[0].dtype:
            fast = self._fm_fast_forward(X)
            if fast is not None:
                return fast
        activations = [X] + [None] * (self.n_layers_ - 1)
        return self._forward_pass(activations)[-1]

    def _fm_fast_forward(self, X, argmax=False):
        """The forward pass straight on the compiled core (one call for the
        whole network), for dense float input whose dtype matches consistent
        parameters; None otherwise (the caller then takes the general path).
        With `argmax` and a softmax output: each row's index of largest
        probability (int64) instead of the probabilities.
        The core checks the parameters' types, dtypes and shapes on every call
        (nanoseconds each, no copy): predict must not change the estimator's
        __dict__ (scikit-learn's check_dict_unchanged)."""
        nt = get_num_threads()
        softmax = self.out_activation_ == "softmax"
        try:
            out, done = _mlp_core.forward(X, self.coefs_, self.intercepts_,
                                          _GEMM_ACT[self.activation], _LEAKY_SLOPE, softmax,
                                          nt, argmax and softmax)
        except (TypeError, ValueError):
            return None     # parameters the core cannot take as they are
        if done:
            return out
        return apply_output_activation(out, self.out_activation_, nt)

    def _fm_fast_output(self, X, argmax=False):
        """The network's output for X through the one-call core, when X is what
        validate_data would pass unchanged (a finite 2-D float32/float64
        ndarray of the fitted width, model fitted without feature names) and
        the model needs no batch-norm statistics; else None. This is the
        whole of predict's work for a few rows, so every check is a cheap
        one (single-row latency is a benchmark target)."""
        d = self.__dict__
        if (type(X) is not np.ndarray or X.ndim != 2 or X.shape[0] < 1
                or X.shape[1] != d.get("n_features_in_", -1) or "feature_names_in_" in d):
            return None
        eng = d.get("_fm_engine")
        if (eng is not None and eng.batch_norm) or not _mlp_core.all_finite(X):
            return None
        if d.get("n_threads") is None:
            return self._fm_fast_forward(X, argmax)
        with self._fm_threads():
            return self._fm_fast_forward(X, argmax)

    def _forward_pass_fast(self, X, check_input=True):
        if check_input:
            out = self._fm_fast_output(X)
            if out is not None:
                return out
            fast = self._fm_check_fast(X)
            X = fast if fast is not None else validate_data(
                self, X, accept_sparse=["csr", "csc"], reset=False)
        with self._fm_threads():
            return self._fm_forward(X)

    def _fm_check_fast(self, X):
        """X itself when it is a plain 2-D float32/float64 ndarray of the fitted
        width, finite, and the model was fitted without feature names (what
        validate_data would accept unchanged); else None (full validation)."""
        if (type(X) is not np.ndarray or X.ndim != 2 or X.dtype.kind != "f"
                or X.dtype.itemsize not in (4, 8) or hasattr(self, "feature_names_in_")
                or X.shape[1] != getattr(self, "n_features_in_", -1) or X.shape[0] < 1):
            return None
        if not _mlp_core.all_finite(X):
            return None     # validate_data raises its own error
        return X

    # ---------------------------------------------------------------- save / load
    _FM_FITTED = ("n_iter_", "t_", "n_outputs_", "n_layers_", "out_activation_", "loss_",
                  "best_loss_", "loss_curve_", "validation_scores_", "best_validation_score_",
                  "n_features_in_")

    def _get_state(self):
        check_is_fitted(self, "coefs_")
        params = {}
        for k, v in self.get_params(deep=False).items():
            if isinstance(v, np.integer):
                v = int(v)
            elif isinstance(v, np.floating):
                v = float(v)
            elif isinstance(v, np.ndarray):
                v = v.tolist()
            elif isinstance(v, tuple):
                v = [int(x) for x in v]
            if k == "random_state" and not (v is None or isinstance(v, int)):
                v = None      # a RandomState object cannot be saved; it only seeded the fit
            if isinstance(v, float) and not np.isfinite(v):
                v = {"float": repr(v)}
            params[k] = v
        fitted = {}
        for k in self._FM_FITTED:
            if not hasattr(self, k):
                continue
            v = getattr(self, k)
            if isinstance(v, (np.integer,)):
                v = int(v)
            elif isinstance(v, (np.floating, float)):
                v = float(v)
                if not np.isfinite(v):
                    v = {"float": repr(v)}
            elif isinstance(v, list):
                v = [float(x) for x in v]
            fitted[k] = v
        arrays = {}
        for i, (c, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            arrays[f"coef_{i}"] = c
            arrays[f"intercept_{i}"] = b
        eng = getattr(self, "_fm_engine", None)
        if eng is not None and eng.batch_norm:
            arrays.update((k, np.array(a)) for k, a in eng.bn_state().items())
        if hasattr(self, "classes_"):
            arrays["classes_"] = np.asarray(self.classes_)
        if hasattr(self, "feature_names_in_"):
            arrays["feature_names_in_"] = np.asarray(self.feature_names_in_, dtype=str)
        if hasattr(self, "_label_binarizer"):
            lb = self._label_binarizer
            fitted["_lb"] = {"y_type_": lb.y_type_, "sparse_input_": bool(lb.sparse_input_)}
        return {"params": params, "fitted": fitted}, arrays

    @classmethod
    def _from_state(cls, state, arrays):
        def unfloat(v):
            if isinstance(v, dict) and set(v) == {"float"}:
                return float(v["float"])
            return v

        params = {k: unfloat(v) for k, v in state["params"].items()}
        if isinstance(params.get("hidden_layer_sizes"), list):
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        est = cls(**params)
        for k, v in state["fitted"].items():
            if k == "_lb":
                continue
            setattr(est, k, unfloat(v))
        n = est.n_layers_ - 1
        est.coefs_ = [np.array(arrays[f"coef_{i}"]) for i in range(n)]
        est.intercepts_ = [np.array(arrays[f"intercept_{i}"]) for i in range(n)]
        for i in range(n):
            if est.coefs_[i].ndim != 2 or est.intercepts_[i].shape != (est.coefs_[i].shape[1],):
                raise ValueError(f"layer {i}: inconsistent coef/intercept shapes")
        if est.batch_norm:
            units = [est.coefs_[0].shape[0]] + [c.shape[1] for c in est.coefs_]
            eng = DenseMLP(units, est.activation, est.coefs_[0].dtype, slope=_LEAKY_SLOPE,
                           dropout=float(est.dropout), batch_norm=True)
            eng.set_parameters(est.coefs_, est.intercepts_)
            eng.set_bn_state(arrays)
            est.coefs_, est.intercepts_ = list(eng.coefs), list(eng.intercepts)
            est._fm_engine = eng
        if "feature_names_in_" in arrays:
            est.feature_names_in_ = np.asarray(arrays["feature_names_in_"], dtype=object)
        if "classes_" in arrays:
            from sklearn.preprocessing import LabelBinarizer
            lb = LabelBinarizer()
            classes = arrays["classes_"]
            lb.classes_ = classes
            lb.y_type_ = state["fitted"]["_lb"]["y_type_"]
            lb.sparse_input_ = state["fitted"]["_lb"]["sparse_input_"]
            lb.neg_label, lb.pos_label, lb.sparse_output = 0, 1, False
            est._label_binarizer = lb
            est.classes_ = classes
        return est


_EXTRA_DOC = """
    fastmlp extras (defaults keep scikit-learn's behaviour; see fastmlp.sklearn):

    solver : also 'adagrad', 'adadelta', 'rmsprop', 'adamax' (step size
        learning_rate_init; epsilon; rmsprop/adadelta decay rho; adamax beta_1/beta_2).
    activation : also 'leaky_relu' (negative slope 0.01).
    rho : float in [0, 1), default 0.9. Decay of rmsprop's and adadelta's averages.
    dropout : float in [0, 1), default 0.0. Probability of dropping each hidden
        unit in training (inverted dropout; stochastic solvers only).
    batch_norm : bool, default False. Batch-normalise every hidden layer's
        pre-activation (stochastic solvers only).
    l1 : float >= 0, default 0.0. L1 penalty l1 * ||W||_1 / n_samples_in_batch on the weights.
    n_threads : int >= 1 or None, default None. Threads for this estimator's
        fit and predict (None: fastmlp's global setting).
"""


def _constraints(base, classifier):
    c = dict(base._parameter_constraints)
    c["activation"] = [StrOptions(set(_HIDDEN_ACTIVATIONS))]
    c["solver"] = [StrOptions(set(_SK_SOLVERS + _EXTRA_SOLVERS))]
    c["rho"] = [Interval(numbers.Real, 0, 1, closed="left")]
    c["dropout"] = [Interval(numbers.Real, 0, 1, closed="left")]
    c["batch_norm"] = ["boolean"]
    c["l1"] = [Interval(numbers.Real, 0, None, closed="left")]
    c["n_threads"] = [None, Interval(numbers.Integral, 1, None, closed="left")]
    if classifier:
        c["class_weight"] = [None, dict, StrOptions({"balanced"})]
    return c


@_io.register("MLPClassifier")
class MLPClassifier(_FastMLPMixin, _SkMLPClassifier):
    __doc__ = ("scikit-learn's MLPClassifier trained and evaluated on fastmlp's kernels "
               "(same parameters, defaults, attributes and semantics; see fastmlp.sklearn)."
               "\n" + _EXTRA_DOC + "    class_weight : None, 'balanced' or dict, default "
               "None. Multiplies sample_weight by the weight of each sample's class.\n\n"
               + (_SkMLPClassifier.__doc__ or ""))
    _parameter_constraints = _constraints(_SkMLPClassifier, True)

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 rho=0.9, dropout=0.0, batch_norm=False, l1=0.0, n_threads=None,
                 class_weight=None):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun)
        self.rho = rho
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.l1 = l1
        self.n_threads = n_threads
        self.class_weight = class_weight

    def fit(self, X, y, sample_weight=None):
        if self.class_weight is not None:
            self._validate_params()
            sample_weight = self._fm_sample_weight(y, sample_weight, False)
        return super().fit(X, y, sample_weight=sample_weight)

    def _fit(self, X, y, sample_weight=None, incremental=False):
        if incremental and self.class_weight is not None:
            sample_weight = self._fm_sample_weight(y, sample_weight, True)
        return super()._fit(X, y, sample_weight=sample_weight, incremental=incremental)

    def predict(self, X):
        if not hasattr(self, "coefs_"):
            check_is_fitted(self)       # raises NotFittedError
        lb = self._label_binarizer
        if lb.y_type_ == "multiclass" and self.out_activation_ == "softmax":
            # The class of largest probability, argmax taken in the core.
            idx = self._fm_fast_output(X, argmax=True)
            if idx is not None:
                return self.classes_.take(idx, mode="clip")
        y = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y = y.ravel()
        if lb.y_type_ == "multiclass" and y.ndim == 2:
            return self.classes_.take(np.argmax(y, axis=1), mode="clip")
        if lb.y_type_ == "binary" and y.ndim == 1 and len(self.classes_) == 2:
            return self.classes_[(y > 0.5).astype(int)]
        return lb.inverse_transform(y)


@_io.register("MLPRegressor")
class MLPRegressor(_FastMLPMixin, _SkMLPRegressor):
    __doc__ = ("scikit-learn's MLPRegressor trained and evaluated on fastmlp's kernels "
               "(same parameters, defaults, attributes and semantics; see fastmlp.sklearn)."
               "\n" + _EXTRA_DOC + "\n" + (_SkMLPRegressor.__doc__ or ""))
    _parameter_constraints = _constraints(_SkMLPRegressor, False)

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 rho=0.9, dropout=0.0, batch_norm=False, l1=0.0, n_threads=None):
        super().__init__(
            loss=loss, hidden_layer_sizes=hidden_layer_sizes, activation=activation,
            solver=solver, alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun)
        self.rho = rho
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.l1 = l1
        self.n_threads = n_threads


# ---------------------------------------------------------------- patch_sklearn

_ORIGINAL = {"MLPClassifier": _SkMLPClassifier, "MLPRegressor": _SkMLPRegressor}
_PATCHED = {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}


def patch_sklearn():
    """After this, ``from sklearn.neural_network import MLPClassifier, MLPRegressor``
    gives fastmlp's estimators (objects created before keep their class)."""
    import sklearn
    import sklearn.neural_network as nn_mod
    if not _SK_API_OK:
        logger.warning("fastmlp: the installed scikit-learn %s has a different private MLP API "
                       "than fastmlp supports; keeping scikit-learn's own MLPClassifier and "
                       "MLPRegressor (fastmlp.MLPClassifier still needs a supported version)",
                       sklearn.__version__)
        return
    for name, cls in _PATCHED.items():
        setattr(nn_mod, name, cls)
    logger.info("fastmlp: scikit-learn's MLPClassifier and MLPRegressor now use fastmlp")


def unpatch_sklearn():
    """Undo `patch_sklearn`: scikit-learn's own classes again."""
    import sklearn.neural_network as nn_mod
    for name, cls in _ORIGINAL.items():
        setattr(nn_mod, name, cls)


def sklearn_is_patched():
    """True when `patch_sklearn` is in effect."""
    import sklearn.neural_network as nn_mod
    return all(getattr(nn_mod, n) is c for n, c in _PATCHED.items())
