"""`DenseMLP`: a fully connected network trained over ONE flat parameter buffer.

Design:

* This is the training engine under fastmlp's scikit-learn estimators (and
  usable on its own): dense layers ``h_{i+1} = act(h_i @ W_i + b_i)``, an
  output layer without activation (the caller owns the loss and so the output
  activation), optional batch normalisation after each hidden product (before
  its activation) and optional (inverted) dropout on each hidden layer's output.
* Flat layout, scikit-learn's parameter order: ``[W_0 .. W_{L-1}, b_0 ..
  b_{L-1}, gamma_0 .., beta_0 ..]``. ``coefs`` / ``intercepts`` / ``bn_gamma``
  / ``bn_beta`` are views into ``params``; ``grads`` has the same layout. The
  weights form the prefix ``params[:n_coef]``, so an L2/L1 penalty on the
  weights only (scikit-learn's ``alpha``) is one fused optimizer call on the
  prefix and one without decay on the rest (`FlatOptimizer`).
* Validated once, then raw: shapes and dtypes are fixed when the engine is
  built and every per-batch buffer is allocated once per batch size, so the
  training step calls the compiled core (``fastmlp._core``) directly instead
  of the validating ``fastmlp.ops`` wrappers: a batch costs about a dozen
  GIL-releasing kernel calls and no allocation.
* Fused epilogues: without batch norm the hidden activation is applied in the
  GEMM's store (``ops.linear``'s path) and its derivative is taken from the
  OUTPUT (relu: y > 0; leaky relu: y < 0 -> slope; tanh: 1 - y^2; logistic:
  y (1 - y)), exactly as scikit-learn's ``DERIVATIVES`` do.
* Determinism: every kernel is bitwise reproducible for any thread count, and
  dropout masks are Philox streams keyed by (seed, layer) and indexed by the
  element, so a fixed seed gives the same training on 1 or 16 threads.
"""
import numpy as np

from fastmlp import ops
from fastmlp._core import _act as _act_core
from fastmlp._core import _gemm, _mlp, _norm, _optim
from fastmlp._threads import get_num_threads

__all__ = ["DenseMLP", "FlatOptimizer", "HIDDEN_ACTIVATIONS", "FLAT_METHODS"]

#: Hidden activations (scikit-learn's names, plus leaky_relu).
HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "leaky_relu")
_GEMM_ACT = {"identity": _gemm.ACTIVATIONS[None], "logistic": _gemm.ACTIVATIONS["sigmoid"],
             "tanh": _gemm.ACTIVATIONS["tanh"], "relu": _gemm.ACTIVATIONS["relu"],
             "leaky_relu": _gemm.ACTIVATIONS["leaky_relu"]}
_ELT_ACT = {"identity": _act_core.ACTIVATIONS["identity"],
            "logistic": _act_core.ACTIVATIONS["sigmoid"], "tanh": _act_core.ACTIVATIONS["tanh"],
            "relu": _act_core.ACTIVATIONS["relu"],
            "leaky_relu": _act_core.ACTIVATIONS["leaky_relu"]}
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: Optimizer methods FlatOptimizer runs (fastmlp.ops.optimizer_step's names).
FLAT_METHODS = tuple(_optim.METHODS)


def _seed_for(seed, layer):
    """Philox key of one layer's dropout mask in one step (distinct per layer)."""
    return (int(seed) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019 * (layer + 1)) % (1 << 64)


class DenseMLP:
    """Dense MLP over one flat float32/float64 parameter buffer (see the module doc).

    layer_units: [n_in, hidden..., n_out]; activation: hidden activation;
    slope: leaky_relu's negative slope; dropout: probability of dropping a
    hidden unit in training (0 = off); batch_norm: normalise each hidden
    layer's pre-activation over the batch (PyTorch's BatchNorm1d: momentum,
    eps, running statistics for prediction).
    """

    def __init__(self, layer_units, activation="relu", dtype=np.float64, *, slope=0.01,
                 dropout=0.0, batch_norm=False, bn_momentum=0.1, bn_eps=1e-5):
        units = [int(u) for u in layer_units]
        if len(units) < 2 or min(units) < 1:
            raise ValueError(f"DenseMLP: layer_units must be >= 2 positive sizes, got {units}")
        if activation not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"DenseMLP: unknown activation {activation!r}; expected one of "
                             f"{', '.join(HIDDEN_ACTIVATIONS)}")
        dtype = np.dtype(dtype)
        if dtype not in _DTYPES:
            raise TypeError(f"DenseMLP: dtype must be float32 or float64, got {dtype}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"DenseMLP: dropout must be in [0, 1), got {dropout}")
        self.units, self.activation, self.dtype = units, activation, dtype
        self.slope, self.dropout, self.batch_norm = float(slope), float(dropout), bool(batch_norm)
        self.bn_momentum, self.bn_eps = float(bn_momentum), float(bn_eps)
        L = self.n_layers = len(units) - 1
        w_sizes = [units[i] * units[i + 1] for i in range(L)]
        hidden = units[1:-1] if batch_norm else []
        self.n_coef = sum(w_sizes)
        total = self.n_coef + sum(units[1:]) + 2 * sum(hidden)
        if total * dtype.itemsize > np.iinfo(np.intp).max:
            raise MemoryError(f"DenseMLP: {total} parameters do not fit in memory")
        self.params = np.zeros(total, dtype)
        self.grads = np.zeros(total, dtype)
        self._make_views()
        for g in self.bn_gamma:
            g[...] = 1.0
        self.bn_running_mean = [np.zeros(n, np.float64) for n in hidden]
        self.bn_running_var = [np.ones(n, np.float64) for n in hidden]
        self._bufs = {}
        self._rows = 0

    _VIEWS = ("coefs", "coef_grads", "intercepts", "intercept_grads", "bn_gamma", "bn_beta",
              "bn_gamma_grads", "bn_beta_grads")

    def _make_views(self):
        """coefs / intercepts / batch-norm parameters (and their gradients) as
        views into the flat buffers, in the layout of the module docstring."""
        units, L = self.units, self.n_layers
        hidden = units[1:-1] if self.batch_norm else []
        shapes = ([("coefs", "coef_grads", (units[i], units[i + 1])) for i in range(L)]
                  + [("intercepts", "intercept_grads", (units[i + 1],)) for i in range(L)]
                  + [("bn_gamma", "bn_gamma_grads", (n,)) for n in hidden]
                  + [("bn_beta", "bn_beta_grads", (n,)) for n in hidden])
        for name in self._VIEWS:
            setattr(self, name, [])
        off = 0
        for pname, gname, shape in shapes:
            size = int(np.prod(shape))
            getattr(self, pname).append(self.params[off:off + size].reshape(shape))
            getattr(self, gname).append(self.grads[off:off + size].reshape(shape))
            off += size
        assert off == self.params.shape[0]

    def __getstate__(self):
        # views are rebuilt on unpickling (pickle would store them as copies);
        # per-batch work buffers are scratch and not pickled
        drop = set(self._VIEWS) | {"_bufs", "_X", "_bn_cache"}
        state = {k: v for k, v in self.__dict__.items() if k not in drop}
        state["_bufs"], state["_rows"] = {}, 0
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._make_views()

    # ------------------------------------------------------------ parameters
    def set_parameters(self, coefs, intercepts):
        """Copy weights and biases (lists of arrays of the right shapes) in."""
        for dst, src in zip(self.coefs + self.intercepts, list(coefs) + list(intercepts)):
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(f"DenseMLP: parameter of shape {src.shape} where {dst.shape} "
                                 f"is expected")
            dst[...] = src

    def holds(self, coefs, intercepts):
        """True when `coefs` / `intercepts` are exactly this engine's views."""
        return (len(coefs) == len(self.coefs) and len(intercepts) == len(self.intercepts)
                and all(a is b for a, b in zip(coefs, self.coefs))
                and all(a is b for a, b in zip(intercepts, self.intercepts)))

    def same_layout(self, other):
        return (other is not None and other.units == self.units
                and other.dtype == self.dtype and other.batch_norm == self.batch_norm)

    _BN_STATE = ("bn_gamma", "bn_beta", "bn_running_mean", "bn_running_var")

    def bn_state(self):
        """Batch-norm parameters and running statistics by name: ``{"bn_gamma_0": ...}``
        (views; empty without batch norm)."""
        return {f"{name}_{i}": a for name in self._BN_STATE
                for i, a in enumerate(getattr(self, name))}

    def set_bn_state(self, arrays):
        """Copy batch-norm state in from a mapping shaped like `bn_state()`."""
        for key, dst in self.bn_state().items():
            src = np.asarray(arrays[key])
            if src.shape != dst.shape:
                raise ValueError(f"{key}: shape {src.shape}, expected {dst.shape}")
            dst[...] = src

    def state_arrays(self):
        """Everything that defines the model (for snapshots): params and BN statistics."""
        return [self.params] + self.bn_running_mean + self.bn_running_var

    def snapshot(self):
        return [a.copy() for a in self.state_arrays()]

    def restore(self, snap):
        for dst, src in zip(self.state_arrays(), snap):
            dst[...] = src

    # ------------------------------------------------------------ buffers
    def _buffers(self, rows):
        """Per-layer work arrays with room for `rows` samples (grown, never shrunk)."""
        if rows > self._rows:
            u, dt = self.units, self.dtype
            L = self.n_layers
            b = {"x": np.empty((rows, u[0]), dt),
                 "h": [np.empty((rows, u[i + 1]), dt) for i in range(L)],
                 "g": [np.empty((rows, u[i + 1]), dt) for i in range(L)],
                 "tmp": np.empty((rows, max(u[1:])), dt)}
            if self.dropout > 0:
                b["d"] = [np.empty((rows, u[i + 1]), dt) for i in range(L - 1)]
            if self.batch_norm:
                b["z"] = [np.empty((rows, u[i + 1]), dt) for i in range(L - 1)]
            self._bufs, self._rows = b, rows
        return self._bufs

    def input_buffer(self, rows):
        """A (rows, n_in) array the caller may gather a batch into."""
        return self._buffers(rows)["x"][:rows]

    def delta_buffer(self, rows):
        """The (rows, n_out) array `backward` takes the output gradient from."""
        return self._buffers(rows)["g"][self.n_layers - 1][:rows]

    # ------------------------------------------------------------ training
    def forward_train(self, X, seed=0):
        """Training forward pass of a batch X (m, n_in) in the engine's dtype (any
        strides). Returns the output layer's pre-activation (m, n_out), a view of
        an internal buffer. Batch norm uses batch statistics (running ones for a
        batch of one sample) and updates the running statistics; dropout draws
        its masks from `seed`."""
        m = X.shape[0]
        B = self._buffers(m)
        nt = get_num_threads()
        L = self.n_layers
        self._X, self._m, self._seed, self._bn_cache = X, m, seed, [None] * (L - 1)
        act_code = _GEMM_ACT[self.activation]
        a = X
        for i in range(L):
            h = B["h"][i][:m]
            if i == L - 1:
                _gemm.gemm(a, self.coefs[i], h, 1.0, 0.0, self.intercepts[i], 0, 0.0, nt)
                return h
            if self.batch_norm:
                z = B["z"][i][:m]
                _gemm.gemm(a, self.coefs[i], z, 1.0, 0.0, self.intercepts[i], 0, 0.0, nt)
                _, self._bn_cache[i] = ops.batch_norm_forward(
                    z, self.bn_gamma[i], self.bn_beta[i], self.bn_running_mean[i],
                    self.bn_running_var[i], training=m > 1, momentum=self.bn_momentum,
                    eps=self.bn_eps, out=h)
                if self.activation != "identity":
                    hf = h.reshape(-1)
                    _act_core.forward(_ELT_ACT[self.activation], hf, hf, self.slope, nt)
            else:
                _gemm.gemm(a, self.coefs[i], h, 1.0, 0.0, self.intercepts[i], act_code,
                           self.slope, nt)
            if self.dropout > 0:
                d = B["d"][i][:m]
                _norm.dropout(h.reshape(-1), d.reshape(-1), 1.0 - self.dropout,
                              _seed_for(seed, i), 0, nt)
                a = d
            else:
                a = h
        return None  # pragma: no cover  (L >= 1 always returns in the loop)

    def backward(self):
        """Fill ``grads`` from the output gradient the caller wrote into
        ``delta_buffer(m)`` (d loss / d output pre-activation), for the batch of
        the last `forward_train`. No regularisation term is added here."""
        m, X, B = self._m, self._X, self._bufs
        nt = get_num_threads()
        L = self.n_layers
        for i in range(L - 1, -1, -1):
            delta = B["g"][i][:m]
            if i == 0:
                a_in = X
            elif self.dropout > 0:
                a_in = B["d"][i - 1][:m]
            else:
                a_in = B["h"][i - 1][:m]
            _gemm.gemm(a_in.T, delta, self.coef_grads[i], 1.0, 0.0, None, 0, 0.0, nt)
            _norm.bias_grad(delta, self.intercept_grads[i], nt)
            if i == 0:
                break
            gx = B["g"][i - 1][:m]
            _gemm.gemm(delta, self.coefs[i].T, gx, 1.0, 0.0, None, 0, 0.0, nt)
            gf = gx.reshape(-1)
            if self.dropout > 0:
                _norm.dropout(gf, gf, 1.0 - self.dropout, _seed_for(self._seed, i - 1), 0, nt)
            self._act_backward(B["h"][i - 1][:m], gx, B["tmp"], nt)
            if self.batch_norm:
                gz, gg, gb = ops.batch_norm_backward(gx, self._bn_cache[i - 1])
                self.bn_gamma_grads[i - 1][...] = gg
                self.bn_beta_grads[i - 1][...] = gb
                gx[...] = gz

    def _act_backward(self, y, g, tmp, nt):
        """g *= f'(z), with f'(z) expressed through the output y = f(z)."""
        act = self.activation
        if act in ("relu", "leaky_relu"):
            # relu: y > 0 <=> z > 0; leaky relu (slope > 0): y < 0 <=> z < 0.
            _act_core.backward(_ELT_ACT[act], y.reshape(-1), g.reshape(-1), g.reshape(-1),
                               self.slope, nt)
        elif act == "tanh":
            t = tmp[:y.shape[0], :y.shape[1]]
            np.multiply(y, y, out=t)
            np.subtract(1, t, out=t)
            g *= t
        elif act == "logistic":
            t = tmp[:y.shape[0], :y.shape[1]]
            np.subtract(1, y, out=t)
            t *= y
            g *= t

    def trainer(self, X, labels, optimizer, rows_cap):
        """The training step on the compiled core (fastmlp._core._mlp.Trainer)
        over X (any strides, this engine's dtype), the `FlatOptimizer`'s state
        and batches of up to `rows_cap` rows. With `labels` (int64 class of each
        row of X), a softmax classifier's whole step is one call
        (``optimizer.fused_step``); otherwise ``trainer.forward``, the caller's
        loss writing ``delta_buffer(m)``, then ``optimizer.fused_update``. The
        parameters are bitwise those of forward_train + backward +
        optimizer.step. None where it does not apply (dropout, batch norm)."""
        if self.dropout > 0 or self.batch_norm:
            return None
        B = self._buffers(rows_cap)
        return _mlp.Trainer(X, labels, self.coefs, self.intercepts, self.coef_grads,
                            self.intercept_grads, B["h"], B["g"], B["x"], self.params,
                            self.grads, self.n_coef, self.optimizer_state(optimizer),
                            optimizer.code, _GEMM_ACT[self.activation], self.slope)

    def output_buffer(self, rows):
        """The (rows, n_out) array a trainer's forward pass leaves the output
        pre-activation in."""
        return self._buffers(rows)["h"][self.n_layers - 1][:rows]

    def optimizer_state(self, optimizer):
        if optimizer.state and optimizer.state[0].shape != self.params.shape:
            raise ValueError("DenseMLP: the optimizer's state does not match the parameters")
        return list(optimizer.state)

    # ------------------------------------------------------------ prediction
    def predict_raw(self, X, out_activation="identity"):
        """Output of the network for X (dense, any strides, engine dtype) in
        evaluation mode (no dropout, running batch-norm statistics), fresh array,
        with `out_activation` ('identity', 'softmax', 'logistic', 'exp') applied."""
        nt = get_num_threads()
        a = X
        L = self.n_layers
        for i in range(L):
            h = np.empty((a.shape[0], self.units[i + 1]), self.dtype)
            last = i == L - 1
            if self.batch_norm and not last:
                _gemm.gemm(a, self.coefs[i], h, 1.0, 0.0, self.intercepts[i], 0, 0.0, nt)
                h, _ = ops.batch_norm_forward(h, self.bn_gamma[i], self.bn_beta[i],
                                              self.bn_running_mean[i], self.bn_running_var[i],
                                              training=False, eps=self.bn_eps, out=h)
                if self.activation != "identity":
                    hf = h.reshape(-1)
                    _act_core.forward(_ELT_ACT[self.activation], hf, hf, self.slope, nt)
            else:
                act = 0 if last else _GEMM_ACT[self.activation]
                _gemm.gemm(a, self.coefs[i], h, 1.0, 0.0, self.intercepts[i], act, self.slope,
                           nt)
            a = h
        return apply_output_activation(a, out_activation, nt)


def apply_output_activation(z, name, nt=None):
    """Apply scikit-learn's output activation to a fresh C-contiguous z in place."""
    if nt is None:
        nt = get_num_threads()
    if name == "softmax":
        _act_core.softmax(z, z, False, nt)
    elif name == "logistic":
        zf = z.reshape(-1)
        _act_core.forward(_ELT_ACT["logistic"], zf, zf, 0.01, nt)
    elif name == "exp":
        np.exp(z, out=z)
    elif name != "identity":
        raise ValueError(f"unknown output activation {name!r}")
    return z


class FlatOptimizer:
    """A fused optimizer over a `DenseMLP`'s flat buffers.

    method: a ``fastmlp.ops.optimizer_step`` method ('sgd', 'momentum',
    'nesterov', 'adagrad', 'adadelta', 'rmsprop', 'adam', 'adamax', ...). Its
    state covers the whole flat buffer. ``step`` applies weight_decay and l1 to
    the weights (``params[:n_coef]``) only -- scikit-learn's alpha does not
    decay the biases -- as two kernel calls; `eps_scale` multiplies eps for this
    step (used to express scikit-learn's Adam, which adds eps to sqrt(v) rather
    than to the bias-corrected sqrt(v_hat)).
    """

    def __init__(self, method, engine, **hyper):
        if method not in _optim.METHODS:
            raise ValueError(f"FlatOptimizer: unknown method {method!r}")
        self.method, self.code = method, _optim.METHODS[method]
        self.hyper = dict(hyper)
        n = engine.params.shape[0]
        self.state = [np.zeros(n, engine.dtype) for _ in range(_optim.N_STATE[method])]
        self.t = 0

    def _fused_hyper(self, eps_scale):
        """This step's hyper-parameters in the order Trainer.step/update/steps
        take them after lr (momentum, rho, beta1, beta2, eps)."""
        h = self.hyper
        return (h.get("momentum", 0.0), h.get("rho", 0.0), h.get("beta1", 0.0),
                h.get("beta2", 0.0), h.get("eps", 0.0) * eps_scale)

    def fused_step(self, trainer, rows, row0, m, weights, wsum, lr, weight_decay=0.0, l1=0.0,
                   eps_scale=1.0, want_sq=False, want_abs=False):
        """A softmax classifier's whole training step through a `DenseMLP.trainer` (the
        update this object's ``step`` would make, bitwise). Returns the batch's
        mean cross-entropy, ||W||_2 and sum |W| of the weights it used (the
        norms only when asked for, else 0)."""
        self.t += 1
        return trainer.step(rows, row0, m, weights, wsum, lr, *self._fused_hyper(eps_scale),
                            weight_decay, l1, self.t, want_sq, want_abs, get_num_threads())

    def fused_steps(self, trainer, order, start, stop, batch, weights, wsums, lr,
                    alpha=0.0, l1=0.0, eps_scale=None, want_sq=False, want_abs=False):
        """`fused_step` on every batch of `batch` positions in [start, stop) in one
        compiled call (Trainer.steps: one parallel region for all of them).
        order: int64 row indices or None (rows read in place); weights: None or
        float64 sample weights aligned with the positions, wsums the sum of each
        batch's; alpha, l1: penalties per unit of sample weight (step s uses
        weight_decay alpha / wsum_s and l1 / wsum_s, as scikit-learn's loop);
        eps_scale: None or one factor per step. Returns the (n_steps, 3)
        results of the steps (loss, ||W||_2, sum |W|), bitwise fused_step's."""
        out = trainer.steps(order, start, stop, batch, weights, wsums, lr,
                            *self._fused_hyper(1.0), eps_scale, alpha, l1, self.t, want_sq,
                            want_abs, get_num_threads())
        self.t += out.shape[0]
        return out

    def fused_update(self, trainer, rows, row0, m, lr, weight_decay=0.0, l1=0.0,
                     eps_scale=1.0, want_sq=False, want_abs=False):
        """Backward pass and update through a `DenseMLP.trainer` after its
        ``forward`` on the same batch and the caller's output gradient (this
        object's ``step``, bitwise). Returns ||W||_2 and sum |W| of the weights
        the batch used (when asked for, else 0)."""
        self.t += 1
        return trainer.update(rows, row0, m, lr, *self._fused_hyper(eps_scale), weight_decay,
                              l1, self.t, want_sq, want_abs, get_num_threads())

    def step(self, engine, lr, weight_decay=0.0, l1=0.0, eps_scale=1.0):
        self.t += 1
        nt = get_num_threads()
        h = dict(self.hyper)
        if "eps" in h:
            h["eps"] = h["eps"] * eps_scale
        k = engine.n_coef
        p, g = engine.params, engine.grads
        for lo, hi, wd, l in ((0, k, weight_decay, l1), (k, p.shape[0], 0.0, 0.0)):
            if hi <= lo:
                continue
            st = [s[lo:hi] for s in self.state] + [None] * (3 - len(self.state))
            _optim.step(self.code, p[lo:hi], g[lo:hi], st[0], st[1], st[2], lr=lr,
                        weight_decay=wd, l1=l, step=self.t, n_threads=nt, **h)
