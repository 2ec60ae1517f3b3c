"""scikit-learn drop-in: `MLPClassifier` and `MLPRegressor` on fastmlp's kernels.

Design: the estimators SUBCLASS scikit-learn's own ``MLPClassifier`` /
``MLPRegressor`` (and so ``sklearn.base.BaseEstimator`` with the classifier /
regressor mixins, ``validate_data`` and ``_parameter_constraints``) and
replace only the numerical core -- the forward pass (`_forward_pass`,
`_forward_pass_fast`) and the backward pass (`_backprop`) -- with fastmlp's
kernels: ``ops.linear`` (GEMM with the bias and the hidden activation fused
into the micro-kernel's store), ``ops.linear_backward`` (both products on the
GEMM engine, transposes read in place, deterministic bias sums),
``ops.softmax`` / ``ops.activation`` for the output activation and
``ops.activation_backward`` for relu / leaky_relu. Everything else -- input
validation, label binarisation, weight initialisation (``_init_coef``:
uniform in +-sqrt(6 / (fan_in + fan_out)), factor 2 for logistic), the
SGD/Adam optimizers, learning-rate schedules, early stopping,
``n_iter_no_change``/``tol``, ConvergenceWarning, ``partial_fit``,
``warm_start``, lbfgs through ``scipy.optimize.minimize(method="L-BFGS-B")``
(fed by the fused loss+gradient below via ``_loss_grad_lbfgs``) -- is
scikit-learn's own code, so parameters, defaults, fitted attributes and
semantics are scikit-learn's by construction, and results agree with
scikit-learn's up to floating-point rounding (same random draws, same
batches, same updates).

The loss is scikit-learn's (``LOSS_FUNCTIONS``: data loss + alpha / (2 sw_sum)
* sum ||W||^2); the gradient is computed with the output delta pre-scaled by
1 / sw_sum (sample weights folded in), which is algebraically the same as
scikit-learn's division of every gradient by sw_sum but saves a pass per layer.

float32 input trains and predicts in float32 end to end (scikit-learn keeps
the dtype; every fastmlp kernel runs in the input's dtype); float64 in float64.
Sparse X is supported: the first layer's products then use scipy.sparse.

Extra over scikit-learn: ``activation="leaky_relu"`` (negative slope 0.01).
"""
import inspect
import logging

import numpy as np
import scipy.sparse as sp
from sklearn.neural_network import MLPClassifier as _SkMLPClassifier
from sklearn.neural_network import MLPRegressor as _SkMLPRegressor
from sklearn.neural_network._base import LOSS_FUNCTIONS
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import check_is_fitted, validate_data

from fastmlp import _io, ops

__all__ = ["MLPClassifier", "MLPRegressor", "patch_sklearn", "unpatch_sklearn",
           "sklearn_is_patched"]

logger = logging.getLogger("fastmlp")

_HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "leaky_relu")
_LEAKY_SLOPE = 0.01
# scikit-learn >= 1.7 passes sample_weight to _backprop; older releases do not.
_BACKPROP_HAS_SW = "sample_weight" in inspect.signature(_SkMLPClassifier._backprop).parameters


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


class _FastMLPMixin:
    """Forward/backward passes on fastmlp's kernels (see the module docstring)."""

    def _fm_act(self):
        return None if self.activation == "identity" else self.activation

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

    def _forward_pass_fast(self, X, check_input=True):
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        activations = [X] + [None] * (self.n_layers_ - 1)
        return self._forward_pass(activations)[-1]

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
        if _BACKPROP_HAS_SW:
            loss = LOSS_FUNCTIONS[loss_name](y, activations[-1], sample_weight)
        else:
            loss = LOSS_FUNCTIONS[loss_name](y, activations[-1])
        values = 0.0
        for s in self.coefs_:
            s = s.ravel()
            values += float(np.dot(s, s))
        sw_sum = n_samples if sample_weight is None else float(np.sum(sample_weight))
        loss += (0.5 * self.alpha) * values / sw_sum

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
            if need_x:
                _inplace_derivative(activations[i], grad_x, self.activation)
                deltas[i - 1] = grad_x
        return loss, coef_grads, intercept_grads

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


def _constraints(base):
    c = dict(base._parameter_constraints)
    c["activation"] = [StrOptions(set(_HIDDEN_ACTIVATIONS))]
    return c


@_io.register("MLPClassifier")
class MLPClassifier(_FastMLPMixin, _SkMLPClassifier):
    __doc__ = ("scikit-learn's MLPClassifier with its forward and backward passes on "
               "fastmlp's kernels (same parameters, defaults, attributes and semantics; "
               "extra: activation='leaky_relu'). See fastmlp.sklearn.\n\n"
               + (_SkMLPClassifier.__doc__ or ""))
    _parameter_constraints = _constraints(_SkMLPClassifier)


@_io.register("MLPRegressor")
class MLPRegressor(_FastMLPMixin, _SkMLPRegressor):
    __doc__ = ("scikit-learn's MLPRegressor with its forward and backward passes on "
               "fastmlp's kernels (same parameters, defaults, attributes and semantics; "
               "extra: activation='leaky_relu'). See fastmlp.sklearn.\n\n"
               + (_SkMLPRegressor.__doc__ or ""))
    _parameter_constraints = _constraints(_SkMLPRegressor)


# ---------------------------------------------------------------- patch_sklearn

_ORIGINAL = {"MLPClassifier": _SkMLPClassifier, "MLPRegressor": _SkMLPRegressor}
_PATCHED = {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}


def patch_sklearn():
    """After this, ``from sklearn.neural_network import MLPClassifier, MLPRegressor``
    gives fastmlp's estimators (objects created before keep their class)."""
    import sklearn.neural_network as nn_mod
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
