"""Optimizers over flat parameter buffers (``fastmlp.ops.optimizer_step``).

Design: ``Optimizer(params, lr, ...)`` where params is either a model's flat
1-D parameter buffer or a list of arrays. A list of arrays that are views
covering exactly one flat C-contiguous buffer (what `Sequential.parameters()`
returns) is detected, and ``step(grads)`` then updates the whole model with
ONE fused kernel call over the flat buffers; the gradients must likewise be
the flat gradient buffer or views covering one buffer in the same layout.
Any other list falls back to one kernel call per array (each with its own
state). The update rules are those of ``ops.optimizer_step`` (its docstring
has the formulas): SGD ``p -= lr g``; momentum ``v = mu v - lr g; p += v``;
Nesterov ``v = mu v - lr g; p += mu v - lr g``; Adam with bias correction
and eps outside the square root; ...

``lr`` is a plain settable attribute (a schedule from `fastmlp.nn.schedules`
or `fastmlp.nn.fit` sets it between steps). ``weight_decay`` (L2, gradient
weight_decay * p) and ``l1`` (l1 * sign(p)) apply to every optimizer.
"""
import numpy as np

from fastmlp import ops

__all__ = ["Optimizer", "SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "AMSGrad",
           "AdaMax", "get_optimizer"]


def _addr(a):
    return a.__array_interface__["data"][0]


def _flat_base(arrays):
    """The 1-D buffer that `arrays` (C-contiguous views) cover exactly, with
    their offsets (in elements), or (None, None)."""
    if isinstance(arrays, np.ndarray):
        if arrays.ndim == 1 and arrays.flags.c_contiguous:
            return arrays, None
        arrays = [arrays]
    arrays = list(arrays)
    if not arrays or not all(isinstance(a, np.ndarray) for a in arrays):
        return None, None
    base = arrays[0].base if arrays[0].base is not None else arrays[0]
    if not (isinstance(base, np.ndarray) and base.ndim == 1 and base.flags.c_contiguous):
        return None, None
    offsets = []
    for a in arrays:
        b = a.base if a.base is not None else a
        if b is not base or not a.flags.c_contiguous or a.dtype != base.dtype:
            return None, None
        off, rem = divmod(_addr(a) - _addr(base), base.itemsize)
        if rem:
            return None, None
        offsets.append((off, a.size))
    covered = sorted(offsets)
    pos = 0
    for off, size in covered:
        if off != pos:
            return None, None
        pos += size
    if pos != base.size:
        return None, None
    return base, offsets


class Optimizer:
    """Base class; subclasses set `method` (an ``ops.OPTIMIZERS`` name)."""

    method = None
    _hyper = ()

    def __init__(self, params, lr, *, weight_decay=0.0, l1=0.0, clip_norm=None, **hyper):
        self.lr = lr
        self.weight_decay = weight_decay
        self.l1 = l1
        self.clip_norm = clip_norm
        for k, v in hyper.items():
            setattr(self, k, v)
        self.t = 0
        base, offsets = _flat_base(params)
        if base is not None:
            self._flat = base
            self._offsets = offsets
            self.params = [base] if offsets is None else list(params)
            self.state = ops.optimizer_state(self.method, base)
        else:
            self._flat = None
            self.params = list(params) if not isinstance(params, np.ndarray) else [params]
            for p in self.params:
                if not (isinstance(p, np.ndarray) and p.flags.c_contiguous and p.flags.writeable):
                    raise ValueError(f"{type(self).__name__}: every parameter must be a "
                                     f"writeable C-contiguous ndarray")
            self.state = [ops.optimizer_state(self.method, p.reshape(-1)) for p in self.params]

    @property
    def fused(self):
        """True when one kernel call updates every parameter."""
        return self._flat is not None

    def _kwargs(self):
        kw = {"lr": self.lr, "weight_decay": self.weight_decay, "l1": self.l1,
              "clip_norm": self.clip_norm}
        for k in self._hyper:
            kw[k] = getattr(self, k)
        if self.method in ("adam", "amsgrad", "adamw", "adamax"):
            kw["step"] = self.t
        return kw

    def _flat_grads(self, grads):
        base, offsets = _flat_base(grads)
        if base is None or base.shape != self._flat.shape:
            return None
        if self._offsets is not None and offsets is not None and offsets != self._offsets:
            return None
        if self._offsets is not None and offsets is None and isinstance(grads, list):
            return None
        return base

    def step(self, grads):
        """Update the parameters in place from `grads` (the flat gradient buffer,
        or a list of arrays matching the parameters). Returns the gradient norm
        before clipping when clip_norm is set, else None."""
        self.t += 1
        kw = self._kwargs()
        if self._flat is not None:
            g = self._flat_grads(grads)
            if g is not None:
                return ops.optimizer_step(self.method, self._flat, g, self.state, **kw)
            grads = list(grads) if not isinstance(grads, np.ndarray) else [grads]
            if self._offsets is None or len(grads) != len(self._offsets):
                raise ValueError(f"{type(self).__name__}.step: grads do not match the "
                                 f"parameters")
            g = np.empty_like(self._flat)
            for (off, size), gi in zip(self._offsets, grads):
                g[off:off + size] = np.asarray(gi).reshape(-1)
            return ops.optimizer_step(self.method, self._flat, g, self.state, **kw)
        grads = list(grads) if not isinstance(grads, np.ndarray) else [grads]
        if len(grads) != len(self.params):
            raise ValueError(f"{type(self).__name__}.step: {len(grads)} gradients for "
                             f"{len(self.params)} parameters")
        if self.clip_norm is not None:
            raise ValueError(f"{type(self).__name__}: clip_norm needs parameters in one flat "
                             f"buffer (a global norm)")
        for p, g, st in zip(self.params, grads, self.state):
            ops.optimizer_step(self.method, p.reshape(-1), np.asarray(g).reshape(-1), st, **kw)
        return None

    def state_dict(self):
        return {"t": self.t, "lr": self.lr}

    def __repr__(self):
        hp = ", ".join(f"{k}={getattr(self, k)!r}" for k in ("lr",) + tuple(self._hyper))
        return f"{type(self).__name__}({hp})"


class SGD(Optimizer):
    """SGD; momentum > 0 gives scikit-learn's momentum (v = mu v - lr g; p += v),
    nesterov=True its Nesterov form (p += mu v - lr g after updating v)."""

    def __init__(self, params, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, l1=0.0,
                 clip_norm=None):
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.method = "sgd" if momentum == 0 else ("nesterov" if nesterov else "momentum")
        self._hyper = () if momentum == 0 else ("momentum",)
        self.nesterov = bool(nesterov)
        super().__init__(params, lr, weight_decay=weight_decay, l1=l1, clip_norm=clip_norm,
                         momentum=momentum)


class Adagrad(Optimizer):
    method = "adagrad"
    _hyper = ("eps",)

    def __init__(self, params, lr=0.01, eps=1e-10, weight_decay=0.0, l1=0.0, clip_norm=None):
        super().__init__(params, lr, weight_decay=weight_decay, l1=l1, clip_norm=clip_norm,
                         eps=eps)


class Adadelta(Optimizer):
    method = "adadelta"
    _hyper = ("rho", "eps")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, l1=0.0,
                 clip_norm=None):
        super().__init__(params, lr, weight_decay=weight_decay, l1=l1, clip_norm=clip_norm,
                         rho=rho, eps=eps)


class RMSprop(Optimizer):
    method = "rmsprop"
    _hyper = ("rho", "eps")

    def __init__(self, params, lr=0.001, rho=0.9, eps=1e-8, weight_decay=0.0, l1=0.0,
                 clip_norm=None):
        super().__init__(params, lr, weight_decay=weight_decay, l1=l1, clip_norm=clip_norm,
                         rho=rho, eps=eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba): bias-corrected moments, eps outside the square root."""
    method = "adam"
    _hyper = ("beta1", "beta2", "eps")

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 l1=0.0, clip_norm=None):
        super().__init__(params, lr, weight_decay=weight_decay, l1=l1, clip_norm=clip_norm,
                         beta1=beta1, beta2=beta2, eps=eps)


class AMSGrad(Adam):
    method = "amsgrad"


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01)."""
    method = "adamw"

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                 l1=0.0, clip_norm=None):
        super().__init__(params, lr, beta1, beta2, eps, weight_decay, l1, clip_norm)


class AdaMax(Adam):
    method = "adamax"

    def __init__(self, params, lr=0.002, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 l1=0.0, clip_norm=None):
        super().__init__(params, lr, beta1, beta2, eps, weight_decay, l1, clip_norm)


_NAMES = {"sgd": SGD, "adagrad": Adagrad, "adadelta": Adadelta, "rmsprop": RMSprop,
          "adam": Adam, "amsgrad": AMSGrad, "adamw": AdamW, "adamax": AdaMax}


def get_optimizer(optimizer, params, *, learning_rate=0.01, momentum=0.9):
    """An Optimizer from an instance (returned as is) or a name ('sgd' uses
    `momentum`; 'momentum' and 'nesterov' are SGD with momentum)."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if optimizer in ("momentum", "nesterov"):
        return SGD(params, learning_rate, momentum=momentum, nesterov=optimizer == "nesterov")
    if optimizer == "sgd":
        return SGD(params, learning_rate, momentum=momentum)
    cls = _NAMES.get(optimizer) if isinstance(optimizer, str) else None
    if cls is None:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected an Optimizer or one of "
                         f"{', '.join(sorted(_NAMES))}, momentum, nesterov")
    return cls(params, learning_rate)
