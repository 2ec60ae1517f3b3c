"""NumPy reference trainer: scikit-learn's MLPClassifier training, written as
idiomatic, efficient NumPy. The baseline every speed ratio of
``python -m fastmlp bench`` and of the asv suite (benchmarks/numpy_reference.py
re-exports this module) is measured against.

Semantics are exactly scikit-learn's ``MLPClassifier`` with relu hidden layers
and a softmax output (3 or more classes), log-loss with the L2 term
``alpha / (2 n_batch) * sum ||W||^2``, and the stochastic solvers:

* init: Glorot-uniform, drawn like ``MLPClassifier._init_coef`` -- per layer
  the coefficients, then the intercepts, from one ``RandomState``
  (``check_random_state(random_state)``) in +-sqrt(6 / (fan_in + fan_out));
* epochs: ``sample_idx = sklearn.utils.shuffle(sample_idx, random_state=rng)``
  (the same RandomState, the permutation carried over from epoch to epoch),
  then mini-batches ``gen_batches(n_samples, batch_size)`` of the shuffled
  indices (``batch_size="auto"`` = min(200, n)); ``shuffle=False`` takes the
  rows in order;
* ``solver="sgd"``: scikit-learn's momentum ``v = mu*v - lr*g; p += v``, and
  with ``nesterovs_momentum`` ``p += mu*v - lr*g`` (with the new v);
  ``learning_rate`` "constant" or "invscaling" (``lr_init / (t + 1)**power_t``
  after each epoch, t = samples seen);
* ``solver="adam"``: ``m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g**2;
  lr_t = lr * sqrt(1 - b2**t) / (1 - b1**t); p -= lr_t * m / (sqrt(v) + eps)``.

So ``k`` calls of ``fit_epoch`` (or ``fit(X, y, epochs=k)``) give the weights
of scikit-learn's ``MLPClassifier(solver=..., max_iter=k, ...).fit(X, y)`` up
to floating-point rounding (``tests/test_numpy_reference.py`` checks it). Note
this is ``fit``'s semantics: scikit-learn's ``partial_fit`` re-seeds an integer
``random_state`` on every call.

How it is written: the matmuls are NumPy's ``@`` (BLAS) with ``out=`` into
buffers allocated once per fit; every parameter lives in one flat buffer
(coefficients then intercepts, the order of scikit-learn's ``coefs_ +
intercepts_``), the gradients likewise, so each optimizer step is a few
in-place whole-vector ufunc calls; bias, activation, softmax and the output
delta are in-place ufuncs; the batch is gathered with ``np.take(..., out=)``.
The element-wise work is single-threaded (NumPy); the matmuls use as many
threads as BLAS is allowed (``threadpoolctl.threadpool_limits``).

This module imports only NumPy and scikit-learn (never fastmlp), so that
benchmarks/numpy_reference.py can load it by file path: the baseline then does
not change when asv benchmarks other commits of fastmlp.
"""
import numpy as np
from sklearn.utils import check_random_state, gen_batches, shuffle

__all__ = ["NumpyMLP"]


class NumpyMLP:
    """scikit-learn's ``MLPClassifier`` training (relu, softmax, log-loss,
    sgd/adam) in plain NumPy; see the module docstring.

    Parameters have scikit-learn's names, defaults and meaning; ``dtype``
    (float32 or float64) fixes the parameters' dtype, None = X's (float32 stays
    float32, anything else becomes float64, as scikit-learn does).

    Attributes after fitting: ``coefs_``, ``intercepts_`` (views of one flat
    buffer ``params_``), ``classes_``, ``loss_`` (mean batch loss of the last
    epoch, as scikit-learn's), ``n_iter_`` (epochs), ``t_`` (samples seen).
    """

    def __init__(self, hidden_layer_sizes=(100,), *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
                 power_t=0.5, shuffle=True, random_state=None, momentum=0.9,
                 nesterovs_momentum=True, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 dtype=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.shuffle = shuffle
        self.random_state = random_state
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.dtype = dtype

    # ------------------------------------------------------------ public API
    def fit(self, X, y, epochs=1):
        """Initialise afresh, then train `epochs` epochs (scikit-learn's
        ``fit`` with ``max_iter=epochs`` and no early stop)."""
        if int(epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        X, yi = self._prepare(X, y, reset=True)
        for _ in range(int(epochs)):
            self._epoch(X, yi)
        return self

    def fit_epoch(self, X, y):
        """One more epoch (initialises on the first call)."""
        X, yi = self._prepare(X, y, reset=not hasattr(self, "params_"))
        self._epoch(X, yi)
        return self

    def predict_proba(self, X):
        p = self._logits(X)
        p -= p.max(axis=1, keepdims=True)
        np.exp(p, out=p)
        p /= p.sum(axis=1, keepdims=True)
        return p

    def predict(self, X):
        # argmax of the logits = argmax of the softmax: no exp needed
        idx = np.argmax(self._logits(X), axis=1)
        return self.classes_[idx]

    def score(self, X, y):
        return float(np.mean(self.predict(X) == np.asarray(y)))

    # ------------------------------------------------------------ internals
    def _logits(self, X):
        if not hasattr(self, "params_"):
            raise RuntimeError("NumpyMLP is not fitted yet: call fit or fit_epoch first")
        a = np.asarray(X, dtype=self.params_.dtype)
        if a.ndim != 2 or a.shape[1] != self.coefs_[0].shape[0]:
            raise ValueError(f"X must be 2-D with {self.coefs_[0].shape[0]} columns, "
                             f"got shape {a.shape}")
        last = len(self.coefs_) - 1
        for i, (w, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            z = a @ w
            z += b
            if i < last:
                np.maximum(z, 0, out=z)
            a = z
        return a

    def _prepare(self, X, y, reset):
        if self.solver not in ("sgd", "adam"):
            raise ValueError(f"solver must be 'sgd' or 'adam', got {self.solver!r}")
        if self.learning_rate not in ("constant", "invscaling"):
            raise ValueError("learning_rate must be 'constant' or 'invscaling', "
                             f"got {self.learning_rate!r}")
        if reset:
            dtype = self.dtype
            if dtype is None:
                dtype = np.float32 if np.asarray(X).dtype == np.float32 else np.float64
            dtype = np.dtype(dtype)
            if dtype not in (np.float32, np.float64):
                raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        else:
            dtype = self.params_.dtype
        X = np.asarray(X, dtype=dtype)
        y = np.asarray(y)
        if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0] or X.shape[0] == 0:
            raise ValueError(f"X must be 2-D and y 1-D with as many rows, got {X.shape} "
                             f"and {y.shape}")
        if reset:
            classes = np.unique(y)
            if classes.size < 3:
                raise ValueError("NumpyMLP implements the softmax output only: y needs at "
                                 f"least 3 classes, got {classes.size}")
            self.classes_ = classes
            self._initialize(X.shape[1], dtype)
        yi = np.searchsorted(self.classes_, y)
        if np.any(yi >= self.classes_.size) or np.any(self.classes_[yi] != y):
            raise ValueError("y has labels not seen in the first call")
        if self._sample_idx.size != X.shape[0]:
            self._sample_idx = np.arange(X.shape[0], dtype=int)
        return X, yi

    def _initialize(self, n_features, dtype):
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        units = [n_features] + [int(h) for h in hidden] + [self.classes_.size]
        if min(units) <= 0:
            raise ValueError(f"layer sizes must be > 0, got {units}")
        self._rng = check_random_state(self.random_state)
        shapes = list(zip(units[:-1], units[1:]))
        n_coef = sum(a * b for a, b in shapes)
        n_total = n_coef + sum(units[1:])
        self.params_ = np.empty(n_total, dtype)
        self.grads_ = np.empty(n_total, dtype)
        self._n_coef = n_coef

        def views(flat):
            coefs, inters, off, boff = [], [], 0, n_coef
            for fan_in, fan_out in shapes:
                coefs.append(flat[off:off + fan_in * fan_out].reshape(fan_in, fan_out))
                inters.append(flat[boff:boff + fan_out])
                off += fan_in * fan_out
                boff += fan_out
            return coefs, inters

        self.coefs_, self.intercepts_ = views(self.params_)
        self._dW, self._db = views(self.grads_)
        # scikit-learn's _init_coef, layer by layer: coef, then intercept
        for w, b, (fan_in, fan_out) in zip(self.coefs_, self.intercepts_, shapes):
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            w[...] = self._rng.uniform(-bound, bound, (fan_in, fan_out))
            b[...] = self._rng.uniform(-bound, bound, fan_out)
        # optimizer state and scratch, whole flat vectors
        self._state = [np.zeros(n_total, dtype) for _ in range(2 if self.solver == "adam" else 1)]
        self._tmp = np.empty(n_total, dtype)
        self._tmp2 = np.empty(n_total, dtype) if self.solver == "sgd" else None
        self._lr = float(self.learning_rate_init)
        self._adam_t = 0
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_ = None
        self._units = units
        self._bufs_for = None
        self._sample_idx = np.arange(0, dtype=int)

    def _buffers(self, batch):
        """Per-batch work arrays, allocated once per batch size."""
        if self._bufs_for != batch:
            dt = self.params_.dtype
            u = self._units
            self._xbuf = np.empty((batch, u[0]), dt)
            self._h = [np.empty((batch, n), dt) for n in u[1:]]       # layer outputs
            self._d = [np.empty((batch, n), dt) for n in u[1:-1]]     # hidden deltas
            self._mask = [np.empty((batch, n), bool) for n in u[1:-1]]
            self._rows = np.arange(batch)
            self._bufs_for = batch
        return self._xbuf

    def _batch_size(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        return int(np.clip(self.batch_size, 1, n))

    def _epoch(self, X, yi):
        n = X.shape[0]
        bs = self._batch_size(n)
        xbuf = self._buffers(bs)
        if self.shuffle:
            self._sample_idx = shuffle(self._sample_idx, random_state=self._rng)
        acc = 0.0
        for sl in gen_batches(n, bs):
            m = sl.stop - sl.start
            if self.shuffle:
                idx = self._sample_idx[sl]
                xb = np.take(X, idx, axis=0, out=xbuf[:m], mode="clip")  # unbuffered gather
                yb = yi[idx]
            else:
                xb, yb = X[sl], yi[sl]
            acc += self._step(xb, yb) * m
        self.n_iter_ += 1
        self.t_ += n
        self.loss_ = acc / n
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            self._lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t

    def _step(self, xb, yb):
        """Forward, loss, backward and one optimizer update on one batch; returns the loss."""
        m = xb.shape[0]
        coefs, inters = self.coefs_, self.intercepts_
        last = len(coefs) - 1
        acts = [xb] + [h[:m] for h in self._h]
        for i in range(last + 1):
            z = acts[i + 1]
            np.matmul(acts[i], coefs[i], out=z)
            z += inters[i]
            if i < last:
                np.maximum(z, 0, out=z)
        # softmax, in place
        p = acts[-1]
        p -= p.max(axis=1, keepdims=True)
        np.exp(p, out=p)
        p /= p.sum(axis=1, keepdims=True)
        rows = self._rows[:m]
        eps = np.finfo(p.dtype).eps
        p_true = np.clip(p[rows, yb], eps, 1 - eps)
        loss = -float(np.sum(np.log(p_true), dtype=np.float64)) / m
        alpha = float(self.alpha)
        if alpha:
            w = self.params_[:self._n_coef]
            loss += 0.5 * alpha * float(np.dot(w, w)) / m
        # output delta = (softmax - onehot) / m, in place
        p[rows, yb] -= 1
        p *= 1.0 / m
        delta = p
        for i in range(last, -1, -1):
            np.matmul(acts[i].T, delta, out=self._dW[i])
            np.sum(delta, axis=0, out=self._db[i])
            if i > 0:
                d = self._d[i - 1][:m]
                np.matmul(delta, coefs[i].T, out=d)
                mask = np.less_equal(acts[i], 0, out=self._mask[i - 1][:m])
                np.copyto(d, 0, where=mask)       # relu': the layer's output > 0
                delta = d
        g, params, tmp = self.grads_, self.params_, self._tmp
        if alpha:   # + alpha / m * W for the coefficients (one flat slice)
            nc = self._n_coef
            np.multiply(params[:nc], alpha / m, out=tmp[:nc])
            g[:nc] += tmp[:nc]
        if self.solver == "sgd":
            (v,) = self._state
            mu, lr = float(self.momentum), self._lr
            v *= mu
            np.multiply(g, lr, out=tmp)
            v -= tmp                               # v = mu*v - lr*g
            if self.nesterovs_momentum:
                upd = np.multiply(v, mu, out=self._tmp2)
                upd -= tmp                         # mu*v - lr*g with the new v
                params += upd
            else:
                params += v
        else:
            mom, vel = self._state
            b1, b2 = float(self.beta_1), float(self.beta_2)
            self._adam_t += 1
            t = self._adam_t
            mom *= b1
            np.multiply(g, 1 - b1, out=tmp)
            mom += tmp
            vel *= b2
            np.multiply(g, g, out=tmp)
            tmp *= 1 - b2
            vel += tmp
            lr_t = float(self.learning_rate_init) * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            np.sqrt(vel, out=tmp)
            tmp += float(self.epsilon)
            np.divide(mom, tmp, out=tmp)
            tmp *= -float(lr_t)
            params += tmp
        return loss
