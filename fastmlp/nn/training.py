"""Gradient checking and the training loop `fit`."""
import math
import numbers

import numpy as np

from fastmlp.nn.layers import Dropout, Layer, Sequential, _as_input
from fastmlp.nn.losses import get_loss
from fastmlp.nn.optim import get_optimizer

__all__ = ["check_gradients", "fit"]


def _snapshot(model):
    layers = model.layers if isinstance(model, Sequential) else [model]
    saved = []
    for layer in layers:
        saved.append((layer, getattr(layer, "counter", None),
                      [np.array(getattr(layer, n)) for n in ("running_mean", "running_var")
                       if hasattr(layer, n)]))
    return saved


def _restore(saved):
    for layer, counter, running in saved:
        if counter is not None:
            layer.counter = counter
        if running:
            layer.running_mean[...] = running[0]
            layer.running_var[...] = running[1]


def check_gradients(model, loss, X, y, eps=1e-6, *, check_input=True, floor=1e-5,
                    return_details=False):
    """Max relative error of the model's backward gradients against central
    finite differences ``(f(p + eps) - f(p - eps)) / (2 eps)``, in float64.

    model: a Sequential or a single layer (a float32 model is checked on a
    float64 copy, `Sequential.astype`). loss: a Loss (or name). Every
    parameter (and, with check_input, every element of X) is perturbed; all
    forwards run in training mode with the same dropout masks (the dropout
    counters are reset before each evaluation) and batch-norm running
    statistics are restored afterwards. The relative error of each element is
    ``|a - n| / max(|a|, |n|, floor)``: gradients below `floor` are compared
    absolutely, because the rounding noise of a central difference is about
    1e-16 |f| / eps ~ 1e-10 whatever the gradient's size. Values around 1e-7
    are typical for a correct float64 backward, 1e-2 and more for a wrong one. Returns the maximum, or with
    return_details a dict {'parameters': err, 'input': err, 'analytic': ...,
    'numeric': ...}.
    """
    loss = get_loss(loss)
    if not isinstance(model, Sequential):
        if not isinstance(model, Layer):
            raise TypeError("check_gradients: model must be a fastmlp.nn Layer or Sequential")
        model = Sequential(model)
    if model.dtype != np.float64:
        model = model.astype(np.float64)
    X = np.array(X, dtype=np.float64)
    saved = _snapshot(model)

    def f(Xv):
        _restore(saved)
        out = model.forward(Xv, training=True)
        return loss(out, y)[0]

    _restore(saved)
    out = model.forward(X, training=True)
    _, g = loss(out, y)
    gx = model.backward(g)
    ga = np.array(model.flat_gradients)
    gx = None if gx is None else np.array(gx)

    p = model.flat_parameters
    gn = np.empty_like(ga)
    for i in range(p.size):
        old = p[i]
        p[i] = old + eps
        fp = f(X)
        p[i] = old - eps
        fm = f(X)
        p[i] = old
        gn[i] = (fp - fm) / (2 * eps)
    xn = None
    if check_input:
        xn = np.empty_like(X)
        flat = X.reshape(-1)
        xf = xn.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            fp = f(X)
            flat[i] = old - eps
            fm = f(X)
            flat[i] = old
            xf[i] = (fp - fm) / (2 * eps)
    _restore(saved)

    def rel(a, n):
        if a is None or n is None or a.size == 0:
            return 0.0
        return float(np.max(np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)))

    ep = rel(ga, gn)
    ex = rel(gx, xn) if check_input else 0.0
    if return_details:
        return {"parameters": ep, "input": ex, "analytic": ga, "numeric": gn,
                "analytic_input": gx, "numeric_input": xn}
    return max(ep, ex)


def _check_target(y, func, name="y"):
    """Targets as an ndarray of real numbers with at least one dimension;
    float targets must be finite (a NaN target would silently give a NaN loss)."""
    try:
        y = np.asarray(y)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{func}: {name} cannot be converted to an array ({exc})") from None
    if y.ndim == 0:
        raise ValueError(f"{func}: {name} must have one entry per sample, got a scalar")
    if y.dtype.kind == "O":
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{func}: {name} has non-numeric entries ({exc})") from None
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{func}: {name} has dtype {y.dtype}; expected real numbers (integer "
                        f"class labels or float targets)")
    _check_finite(y, name, func)
    return y


def _check_finite(a, name, func):
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{func}: {name} contains NaN or infinity; remove or impute those "
                         f"values first")


def _split_validation(X, y, fraction, rng):
    n = X.shape[0]
    n_val = max(1, int(round(n * fraction)))
    if n_val >= n:
        raise ValueError(f"fit: validation_fraction={fraction} leaves no training samples")
    perm = rng.permutation(n)
    return perm[n_val:], perm[:n_val]


def fit(model, X, y, *, loss, optimizer="sgd", learning_rate=0.01, momentum=0.9, epochs=10,
        batch_size=32, shuffle=True, validation_data=None, validation_fraction=None,
        early_stopping=False, patience=10, min_delta=1e-4, restore_best=True, noise_std=0.0,
        callbacks=(), random_state=None, verbose=1, lr_schedule=None):
    """Train `model` (a Sequential) with minibatch gradient descent.

    Each epoch visits the training samples in batches of `batch_size` (in a
    fresh random order when shuffle), adding Gaussian noise of std
    `noise_std` to the inputs when > 0, and takes one optimizer step per batch
    on the model's flat buffers. optimizer: a name ('sgd' with `momentum`,
    'momentum', 'nesterov', 'adam', 'adamw', 'amsgrad', 'adamax', 'adagrad',
    'adadelta', 'rmsprop') built with `learning_rate`, or an Optimizer
    instance over the model's parameters.

    Validation on `validation_data=(Xv, yv)` or a random `validation_fraction`
    of (X, y): per epoch ``val_loss`` and ``val_score`` (accuracy for the
    classification losses, R^2 for regression). early_stopping stops after
    `patience` epochs in which the monitored value (val_loss, or the training
    loss without validation) did not improve on the best by more than
    min_delta, and with restore_best puts the best parameters back.

    lr_schedule: a schedule from fastmlp.nn.schedules; its lr is set on the
    optimizer before each epoch and it is stepped after each epoch (with the
    monitored value as metric; InverseScalingLR is stepped per update).
    callbacks: callables(epoch, logs) (logs: this epoch's values); returning
    True stops training. verbose=1: a tqdm progress bar with the running loss;
    0: silent. Returns a history dict of per-epoch lists: 'loss', 'lr' and,
    when validating, 'val_loss' and 'val_score'.

    Errors: X must hold real numbers (TypeError otherwise) and, like y when it
    holds floats, be finite (ValueError for NaN/inf). A training loss that
    becomes NaN or infinite (divergence) is a ValueError raised before that
    batch's step, so the model keeps its last finite parameters.
    """
    if not isinstance(model, Sequential):
        if not isinstance(model, Layer):
            raise TypeError("fit: model must be a fastmlp.nn Sequential or Layer")
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"fit: {name} must be a positive int, got {v!r}")
    loss = get_loss(loss)
    X = _as_input(X, model.dtype, "fit")
    if X.ndim != 2:
        raise ValueError(f"fit: X must be 2-D, got shape {X.shape}")
    y = _check_target(y, "fit")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"fit: X has {X.shape[0]} samples but y has {y.shape[0]}")
    if X.shape[0] == 0:
        raise ValueError("fit: no samples")
    _check_finite(X, "X", "fit")
    rng = np.random.default_rng(random_state)
    if validation_data is not None and validation_fraction is not None:
        raise ValueError("fit: give validation_data or validation_fraction, not both")
    if validation_fraction is not None:
        if not 0 < validation_fraction < 1:
            raise ValueError("fit: validation_fraction must be in (0, 1)")
        tr, va = _split_validation(X, y, validation_fraction, rng)
        validation_data = (X[va], y[va])
        X, y = X[tr], y[tr]
    if validation_data is not None:
        Xv, yv = validation_data
        Xv = _as_input(Xv, model.dtype, "fit", "validation X")
        yv = _check_target(yv, "fit", "validation y")
        _check_finite(Xv, "validation X", "fit")
    opt = get_optimizer(optimizer, model.parameters(), learning_rate=learning_rate,
                        momentum=momentum)
    per_update = lr_schedule is not None and type(lr_schedule).__name__ == "InverseScalingLR"
    grads = model.flat_gradients
    history = {"loss": [], "lr": []}
    if validation_data is not None:
        history["val_loss"] = []
        history["val_score"] = []
    n = X.shape[0]
    n_batches = -(-n // batch_size)
    best, best_params, best_epoch, bad = np.inf, None, -1, 0
    bar = None
    if verbose:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs * n_batches, unit="batch", leave=False)
    noise = None
    try:
        for epoch in range(epochs):
            if lr_schedule is not None:
                opt.lr = lr_schedule.lr
            order = rng.permutation(n) if shuffle else None
            total, count = 0.0, 0
            for k in range(n_batches):
                sl = slice(k * batch_size, min(n, (k + 1) * batch_size))
                if order is None:
                    xb, yb = X[sl], y[sl]
                else:
                    idx = order[sl]
                    xb, yb = X[idx], y[idx]
                if noise_std > 0:
                    if noise is None or noise.shape != xb.shape:
                        noise = np.empty(xb.shape, model.dtype)
                    noise[...] = rng.standard_normal(xb.shape)
                    noise *= noise_std
                    xb = xb + noise
                out = model.forward(xb, training=True)
                value, g = loss(out, yb)
                if not math.isfinite(value):
                    # Checked before the step: the model keeps its last finite parameters.
                    raise ValueError(
                        f"fit: the training loss is {value} at epoch {epoch + 1}, batch {k + 1}: "
                        f"training diverged (learning_rate {opt.lr:g}); lower the learning "
                        f"rate, scale the inputs, or clip the gradients (an optimizer with "
                        f"clip_norm)")
                model.backward(g, need_input_grad=False)
                opt.step(grads)
                if per_update:
                    lr_schedule.step()
                    opt.lr = lr_schedule.lr
                m = xb.shape[0]
                total += value * m
                count += m
                if bar is not None:
                    bar.update(1)
                    if k % 10 == 0 or k == n_batches - 1:
                        bar.set_postfix(epoch=epoch + 1, loss=f"{total / count:.4g}",
                                        refresh=k == n_batches - 1)
            logs = {"loss": total / count, "lr": float(opt.lr)}
            if validation_data is not None:
                pv = model.forward(Xv, training=False)
                logs["val_loss"] = float(loss(pv, yv)[0])
                logs["val_score"] = float(loss.score(pv, yv))
            for key, v in logs.items():
                history[key].append(v)
            monitored = logs.get("val_loss", logs["loss"])
            if monitored < best - min_delta:
                best, best_epoch, bad = monitored, epoch, 0
                if early_stopping and restore_best:
                    best_params = np.array(model.flat_parameters)
            else:
                bad += 1
            if lr_schedule is not None and not per_update:
                lr_schedule.step(monitored)
            stop = False
            for cb in callbacks:
                if cb(epoch, dict(logs)) is True:
                    stop = True
            if stop or (early_stopping and bad >= patience):
                break
    finally:
        if bar is not None:
            bar.close()
    if early_stopping and restore_best and best_params is not None:
        model.flat_parameters[...] = best_params
    history["best_epoch"] = best_epoch
    return history
