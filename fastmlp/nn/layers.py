"""Layers and `Sequential` models on top of `fastmlp.ops`.

Design:

* Every layer has ``forward(X, training=True)`` -> output and
  ``backward(grad_out)`` -> gradient with respect to its input; backward uses
  what the LAST forward stored and OVERWRITES (does not accumulate) the
  parameter gradients. ``parameters()`` and ``gradients()`` return lists of
  ndarrays (e.g. ``[W, b]`` and ``[dW, db]``).
* One flat buffer. A layer's parameters are views into ONE contiguous 1-D
  parameter buffer and its gradients views into ONE 1-D gradient buffer. A
  standalone layer owns its own pair; `Sequential` allocates one pair for the
  whole model, copies every layer's values into it and rebinds the layers'
  arrays as views (so a layer must not be shared between two models). An
  optimizer then updates the whole model with one fused kernel call
  (``fastmlp.ops.optimizer_step`` on ``model.flat_parameters`` /
  ``model.flat_gradients``); `fastmlp.nn.optim` detects such views.
* Fused epilogues. When `Sequential` sees `Linear` directly followed by
  `ReLU`, `LeakyReLU` (alpha > 0), `Sigmoid` or `Tanh`, it runs the pair as
  one ``ops.linear(x, W, b, activation=...)`` call (the activation is
  applied as the GEMM stores each tile) and the activation's backward then
  works from the OUTPUT y instead of the pre-activation z: relu'(z) = [y > 0],
  leaky'(z) = y < 0 ? alpha : 1 (the sign of y is the sign of z when
  alpha > 0), sigmoid'(z) = y (1 - y), tanh'(z) = 1 - y^2. These are exact
  except in the far tails of sigmoid/tanh, where y rounds to 0/1 or +-1 and
  the derivative computed from y is 0 while the one from z is tiny but
  nonzero (below the dtype's epsilon relative to the output).
  Stand-alone (unfused) activations keep z and use
  ``ops.activation_backward`` (accurate in the tails).
* No steady-state allocations in training: in ``training=True`` forward and in
  backward, layers write into buffers cached per batch shape (the output of a
  training forward is therefore overwritten by the next training forward of
  the same shape: copy it if you keep it). ``training=False`` (prediction)
  always returns fresh arrays.
* dtype: float32 (default) or float64 for every layer of a model; inputs are
  converted to the model's dtype.
"""
import numbers

import numpy as np

from fastmlp import _io, ops

__all__ = ["Layer", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Identity", "Softmax",
           "Dropout", "BatchNorm1d", "LayerNorm", "Sequential", "LAYERS"]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_INITS = ("he", "glorot", "lecun", "sklearn", "sklearn_logistic")

#: Layer classes by name (used to rebuild saved models).
LAYERS = {}


def _register_layer(cls):
    LAYERS[cls.__name__] = cls
    return _io.register(cls.__name__)(cls)


def _state_of(layers, dtype, fuse):
    arrays = {"parameters": np.concatenate([np.asarray(p, dtype).reshape(-1)
                                            for layer in layers for p in layer.parameters()]
                                           or [np.empty(0, dtype)])}
    specs = []
    for i, layer in enumerate(layers):
        extra, extra_arrays = layer._extra_state()
        specs.append({"type": type(layer).__name__, "config": layer._config(), "state": extra})
        for name, a in extra_arrays.items():
            arrays[f"layer{i}.{name}"] = np.array(a)
    return {"dtype": str(dtype), "fuse": fuse, "layers": specs}, arrays


def _dtype(dtype, cls):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{cls}: dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in _DTYPES:
        raise TypeError(f"{cls}: dtype must be float32 or float64, got {dt}")
    return dt


def _pos_int(v, name, cls):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{cls}: {name} must be an int, got {type(v).__name__}")
    if v < 1:
        raise ValueError(f"{cls}: {name} must be >= 1, got {v}")
    return int(v)


def _float(v, name, cls, low=None, high=None, low_open=False, high_open=False):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{cls}: {name} must be a real number, got {type(v).__name__}")
    v = float(v)
    ok = np.isfinite(v)
    if low is not None:
        ok = ok and (v > low if low_open else v >= low)
    if high is not None:
        ok = ok and (v < high if high_open else v <= high)
    if not ok:
        raise ValueError(f"{cls}: {name}={v} is out of range")
    return v


def _rng(random_state):
    """A numpy RandomState (scikit-learn's convention: None, int or RandomState)."""
    if random_state is None or isinstance(random_state, (numbers.Integral, np.integer)):
        return np.random.RandomState(random_state)
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if isinstance(random_state, np.random.Generator):
        return np.random.RandomState(random_state.integers(0, 2**32))
    raise TypeError(f"random_state must be None, an int, a RandomState or a Generator, "
                    f"got {type(random_state).__name__}")


def _as_input(X, dtype, who, name="X"):
    """`X` as an ndarray of `dtype` (float32/float64). Real numbers (floats,
    ints, bools, and object arrays of numbers) are converted, as NumPy's
    ``astype`` would; complex, string and other dtypes are a TypeError rather
    than a silent conversion (complex -> real would drop the imaginary part).
    The caller's array is never written to."""
    if not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{who}: {name} cannot be converted to an array ({exc})") from None
    if X.dtype == dtype:
        return X
    kind = X.dtype.kind
    if kind == "O":
        try:
            return X.astype(dtype)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{who}: {name} has dtype object with non-numeric entries ({exc}); "
                            f"pass an array of real numbers") from None
    if kind not in "biuf":
        raise TypeError(f"{who}: {name} has dtype {X.dtype}; fastmlp.nn models take real numbers "
                        f"(float32/float64; ints and bools are converted)")
    return X.astype(dtype)


class Layer:
    """Base class. Subclasses with parameters call ``_create_params`` in
    ``__init__`` with their initial values (an ordered dict name -> array)."""

    _param_names = ()

    def __init__(self, dtype=np.float32):
        self.dtype = _dtype(dtype, type(self).__name__)
        self._params = {}
        self._grads = {}
        self._bufs = {}
        self.flat_parameters = np.empty(0, self.dtype)
        self.flat_gradients = np.empty(0, self.dtype)

    # ---- parameters -----------------------------------------------------
    def _create_params(self, values):
        n = sum(v.size for v in values.values())
        flat = np.empty(n, self.dtype)
        grad = np.zeros(n, self.dtype)
        self._bind(flat, grad, 0, values)
        self.flat_parameters, self.flat_gradients = flat, grad

    def _bind(self, flat, grad, offset, values=None):
        """Rebind this layer's parameters as views of flat[offset:...] (copying
        the current values, or `values`, in) and its gradients as views of
        grad; returns the offset after the last one."""
        values = self._params if values is None else values
        params, grads = {}, {}
        for name in self._param_names:
            v = values[name]
            view = flat[offset:offset + v.size].reshape(v.shape)
            view[...] = v
            params[name] = view
            grads[name] = grad[offset:offset + v.size].reshape(v.shape)
            offset += v.size
        self._params, self._grads = params, grads
        for name in self._param_names:
            setattr(self, name, params[name])
            setattr(self, "d" + name, grads[name])
        return offset

    @property
    def n_parameters(self):
        return sum(v.size for v in self._params.values())

    def parameters(self):
        """The parameter arrays (views into one flat buffer)."""
        return list(self._params.values())

    def gradients(self):
        """The gradient arrays (views into one flat buffer), same order as parameters()."""
        return list(self._grads.values())

    # ---- buffers ----------------------------------------------------------
    def _buf(self, key, shape):
        """A cached work array of `shape` (reallocated when the shape changes)."""
        b = self._bufs.get(key)
        if b is None or b.shape != shape:
            b = np.empty(shape, self.dtype)
            self._bufs[key] = b
        return b

    def _input(self, X):
        X = _as_input(X, self.dtype, f"{type(self).__name__}.forward")
        if X.ndim != 2:
            raise ValueError(f"{type(self).__name__}.forward: X must be 2-D "
                             f"(n_samples, n_features), got shape {X.shape}")
        return X

    def __call__(self, X, training=True):
        return self.forward(X, training=training)

    # ---- save / load -----------------------------------------------------
    def _config(self):
        """Constructor arguments (JSON-able), dtype excluded."""
        return {}

    def _extra_state(self):
        """(JSON-able dict, {name: array}) beyond parameters (running stats, counters)."""
        return {}, {}

    def _load_extra_state(self, params, arrays):
        pass

    def _get_state(self):
        return _state_of([self], self.dtype, True)

    @classmethod
    def _from_state(cls, params, arrays):
        model = Sequential._from_state(params, arrays)
        if len(model.layers) != 1 or type(model.layers[0]) is not cls:
            raise ValueError(f"the file does not hold a single {cls.__name__}")
        return model.layers[0]

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({args})"


@_register_layer
class Linear(Layer):
    """Fully connected layer ``y = X @ W + b`` with W (n_in, n_out), b (n_out,).

    init: 'he' (normal, std sqrt(2 / n_in); for ReLU), 'glorot' (uniform in
    +-sqrt(6 / (n_in + n_out))), 'lecun' (normal, std sqrt(1 / n_in)) -- biases
    0 -- or 'sklearn': scikit-learn MLP's ``_init_coef``, W and b uniform in
    +-sqrt(6 / (n_in + n_out)) drawn from a RandomState(random_state) (W first,
    then b); 'sklearn_logistic' is its variant for logistic activations,
    +-sqrt(2 / (n_in + n_out)).
    """

    _param_names = ("W", "b")

    def __init__(self, n_in, n_out, *, bias=True, init="he", dtype=np.float32,
                 random_state=None):
        super().__init__(dtype)
        cls = "Linear"
        self.n_in = _pos_int(n_in, "n_in", cls)
        self.n_out = _pos_int(n_out, "n_out", cls)
        if init not in _INITS:
            raise ValueError(f"{cls}: unknown init {init!r}; expected one of {', '.join(_INITS)}")
        self.bias = bool(bias)
        self.init = init
        if not self.bias:
            self._param_names = ("W",)
        rs = _rng(random_state)
        try:
            shape = (self.n_in, self.n_out)
            b = np.zeros(self.n_out)
            if init == "he":
                W = rs.normal(0.0, np.sqrt(2.0 / n_in), shape)
            elif init == "lecun":
                W = rs.normal(0.0, np.sqrt(1.0 / n_in), shape)
            elif init == "glorot":
                bound = np.sqrt(6.0 / (n_in + n_out))
                W = rs.uniform(-bound, bound, shape)
            else:
                bound = np.sqrt((2.0 if init == "sklearn_logistic" else 6.0) / (n_in + n_out))
                W = rs.uniform(-bound, bound, shape)
                b = rs.uniform(-bound, bound, self.n_out)
            values = {"W": W}
            if self.bias:
                values["b"] = b
            self._create_params(values)
        except MemoryError:
            n = self.n_in * self.n_out + (self.n_out if self.bias else 0)
            raise MemoryError(
                f"{cls}({self.n_in}, {self.n_out}): cannot allocate {n} parameters "
                f"({n * 8 / 2**30:.3g} GiB while initialising in float64); use fewer "
                f"units") from None
        self._X = None

    def _config(self):
        return {"n_in": self.n_in, "n_out": self.n_out, "bias": self.bias, "init": self.init}

    def forward(self, X, training=True, activation=None, alpha=0.01):
        X = self._input(X)
        self._X = X
        out = self._buf("out", (X.shape[0], self.n_out)) if training else None
        return ops.linear(X, self.W, self.b if self.bias else None, activation, out=out,
                          alpha=alpha)

    def backward(self, grad_out, need_input_grad=True):
        X = self._X
        if X is None:
            raise RuntimeError("Linear.backward called before forward")
        gx = self._buf("grad_x", X.shape) if need_input_grad else None
        gx, _, _ = ops.linear_backward(
            X, self.W, grad_out, need_grad_x=need_input_grad, grad_x_out=gx,
            grad_w_out=self.dW, grad_b_out=self.db if self.bias else None)
        return gx


class _Activation(Layer):
    """Element-wise activation; backward from the stored pre-activation z, or
    from the output y when a Sequential fused it into the preceding Linear."""

    _name = None

    def __init__(self, dtype=np.float32):
        super().__init__(dtype)
        self._z = None
        self._y = None
        self.alpha = 0.01

    def forward(self, X, training=True):
        X = _as_input(X, self.dtype, f"{type(self).__name__}.forward")
        self._z, self._y = X, None
        out = self._buf("out", X.shape) if training else None
        return ops.activation(self._name, X, out=out, alpha=self.alpha)

    def _fused_output(self, y):
        """Called by Sequential: y = f(z) was computed by a fused Linear."""
        self._z, self._y = None, y

    def backward(self, grad_out):
        grad_out = np.asarray(grad_out, dtype=self.dtype)
        out = self._buf("grad_x", grad_out.shape)
        if self._y is None:
            if self._z is None:
                raise RuntimeError(f"{type(self).__name__}.backward called before forward")
            return ops.activation_backward(self._name, self._z, grad_out, out=out,
                                           alpha=self.alpha)
        return self._backward_from_output(self._y, grad_out, out)

    def _backward_from_output(self, y, g, out):
        raise NotImplementedError


@_register_layer
class Identity(_Activation):
    """y = x."""
    _name = "identity"

    def forward(self, X, training=True):
        return _as_input(X, self.dtype, "Identity.forward")

    def backward(self, grad_out):
        return np.asarray(grad_out).astype(self.dtype, copy=False)


@_register_layer
class ReLU(_Activation):
    """max(x, 0); the derivative at 0 is taken as 0 (as scikit-learn)."""
    _name = "relu"

    def _backward_from_output(self, y, g, out):
        # y > 0 exactly where z > 0
        return ops.activation_backward("relu", y, g, out=out)


@_register_layer
class LeakyReLU(_Activation):
    """x < 0 ? alpha x : x."""
    _name = "leaky_relu"

    def __init__(self, alpha=0.1, dtype=np.float32):
        super().__init__(dtype)
        self.alpha = _float(alpha, "alpha", "LeakyReLU")

    def _config(self):
        return {"alpha": self.alpha}

    def _backward_from_output(self, y, g, out):
        # only used when alpha > 0: y < 0 exactly where z < 0
        return ops.activation_backward("leaky_relu", y, g, out=out, alpha=self.alpha)


@_register_layer
class Sigmoid(_Activation):
    """1 / (1 + exp(-x))."""
    _name = "sigmoid"

    def _backward_from_output(self, y, g, out):
        np.subtract(1, y, out=out)
        out *= y
        out *= g
        return out


@_register_layer
class Tanh(_Activation):
    """tanh(x)."""
    _name = "tanh"

    def _backward_from_output(self, y, g, out):
        np.multiply(y, y, out=out)
        np.subtract(1, out, out=out)
        out *= g
        return out


@_register_layer
class Softmax(Layer):
    """Row-wise softmax. (For training with cross-entropy use the logits with
    `SoftmaxCrossEntropy` instead: it fuses softmax into the loss.)"""

    def __init__(self, dtype=np.float32):
        super().__init__(dtype)
        self._y = None

    def forward(self, X, training=True):
        X = self._input(X)
        out = self._buf("out", X.shape) if training else None
        self._y = ops.softmax(X, out=out)
        return self._y

    def backward(self, grad_out):
        if self._y is None:
            raise RuntimeError("Softmax.backward called before forward")
        y = self._y
        g = np.asarray(grad_out, dtype=self.dtype)
        out = self._buf("grad_x", g.shape)
        # J^T g = y * (g - sum_j g_j y_j)
        s = np.einsum("ij,ij->i", g, y)
        np.subtract(g, s[:, None], out=out)
        out *= y
        return out


_SEED_STEP = 0x9E3779B97F4A7C15     # golden-ratio increment (splitmix64's)
_U64 = (1 << 64) - 1


@_register_layer
class Dropout(Layer):
    """Inverted dropout (``ops.dropout``): in training each element is zeroed
    with probability p and the others scaled by 1/(1-p); identity in eval.

    The mask of the k-th training forward call is keyed by the seed
    ``(base + k * 0x9E3779B97F4A7C15) mod 2**64`` with ``base`` drawn once from
    random_state: masks differ between batches and the whole sequence is
    reproducible for a given random_state. ``counter`` (k) is saved with the
    model.
    """

    def __init__(self, p=0.5, *, dtype=np.float32, random_state=None):
        super().__init__(dtype)
        self.p = _float(p, "p", "Dropout", 0.0, 1.0, high_open=True)
        self.random_state = random_state if isinstance(random_state, numbers.Integral) else None
        if random_state is None or isinstance(random_state, numbers.Integral):
            # None: fresh OS entropy; int: a fixed 64-bit base seed
            ss = np.random.SeedSequence(None if random_state is None else int(random_state))
            self.base_seed = int(ss.generate_state(1, dtype=np.uint64)[0])
        else:
            rs = _rng(random_state)
            self.base_seed = int(rs.randint(0, 2**62, dtype=np.int64))
        self.counter = 0
        self._seed = None

    def _config(self):
        return {"p": self.p, "random_state": self.random_state}

    def _extra_state(self):
        return {"counter": self.counter, "base_seed": str(self.base_seed)}, {}

    def _load_extra_state(self, params, arrays):
        self.counter = int(params["counter"])
        self.base_seed = int(params["base_seed"])

    def forward(self, X, training=True):
        X = _as_input(X, self.dtype, f"{type(self).__name__}.forward")
        if not training or self.p == 0.0:
            self._seed = None
            return X
        self._seed = (self.base_seed + self.counter * _SEED_STEP) & _U64
        self.counter += 1
        return ops.dropout(X, self.p, seed=self._seed, out=self._buf("out", X.shape))

    def backward(self, grad_out):
        g = np.asarray(grad_out, dtype=self.dtype)
        if self._seed is None:
            return g
        return ops.dropout_backward(g, self.p, seed=self._seed, out=self._buf("grad_x", g.shape))


@_register_layer
class BatchNorm1d(Layer):
    """Batch normalisation over the batch per feature (``ops.batch_norm_forward``);
    parameters gamma (ones) and beta (zeros); running_mean / running_var
    (float64 arrays, not parameters) are updated in training and used in eval
    (PyTorch's convention: running = (1 - momentum) running + momentum stat)."""

    _param_names = ("gamma", "beta")

    def __init__(self, n, momentum=0.1, eps=1e-5, *, dtype=np.float32):
        super().__init__(dtype)
        self.n = _pos_int(n, "n", "BatchNorm1d")
        self.momentum = _float(momentum, "momentum", "BatchNorm1d", 0.0, 1.0)
        self.eps = _float(eps, "eps", "BatchNorm1d", 0.0, low_open=True)
        self._create_params({"gamma": np.ones(self.n), "beta": np.zeros(self.n)})
        self.running_mean = np.zeros(self.n)
        self.running_var = np.ones(self.n)
        self._cache = None

    def _config(self):
        return {"n": self.n, "momentum": self.momentum, "eps": self.eps}

    def _extra_state(self):
        return {}, {"running_mean": self.running_mean, "running_var": self.running_var}

    def _load_extra_state(self, params, arrays):
        for name in ("running_mean", "running_var"):
            a = arrays[name]
            if a.shape != (self.n,):
                raise ValueError(f"BatchNorm1d {name} has shape {a.shape}, expected ({self.n},)")
            setattr(self, name, np.array(a, dtype=np.float64))

    def forward(self, X, training=True):
        X = self._input(X)
        out = self._buf("out", X.shape) if training else None
        y, self._cache = ops.batch_norm_forward(
            X, self.gamma, self.beta, self.running_mean, self.running_var, training=training,
            momentum=self.momentum, eps=self.eps, out=out)
        return y

    def backward(self, grad_out):
        if self._cache is None:
            raise RuntimeError("BatchNorm1d.backward called before forward")
        g = np.asarray(grad_out, dtype=self.dtype)
        gx, gg, gb = ops.batch_norm_backward(g, self._cache,
                                             grad_x_out=self._buf("grad_x", g.shape))
        self.dgamma[...] = gg
        self.dbeta[...] = gb
        return gx


@_register_layer
class LayerNorm(Layer):
    """Layer normalisation of each row over its n features (``ops.layer_norm_forward``)."""

    _param_names = ("gamma", "beta")

    def __init__(self, n, eps=1e-5, *, dtype=np.float32):
        super().__init__(dtype)
        self.n = _pos_int(n, "n", "LayerNorm")
        self.eps = _float(eps, "eps", "LayerNorm", 0.0, low_open=True)
        self._create_params({"gamma": np.ones(self.n), "beta": np.zeros(self.n)})
        self._cache = None

    def _config(self):
        return {"n": self.n, "eps": self.eps}

    def forward(self, X, training=True):
        X = self._input(X)
        out = self._buf("out", X.shape) if training else None
        y, self._cache = ops.layer_norm_forward(X, self.gamma, self.beta, eps=self.eps, out=out)
        return y

    def backward(self, grad_out):
        if self._cache is None:
            raise RuntimeError("LayerNorm.backward called before forward")
        g = np.asarray(grad_out, dtype=self.dtype)
        gx, gg, gb = ops.layer_norm_backward(g, self._cache,
                                             grad_x_out=self._buf("grad_x", g.shape))
        self.dgamma[...] = gg
        self.dbeta[...] = gb
        return gx


_FUSABLE = {ReLU: "relu", LeakyReLU: "leaky_relu", Sigmoid: "sigmoid", Tanh: "tanh"}


@_io.register("Sequential")
class Sequential(Layer):
    """A chain of layers sharing one flat parameter buffer and one flat
    gradient buffer (``flat_parameters``, ``flat_gradients``).

    Nested Sequentials are flattened into one list of layers. All layers must
    have the same dtype. ``fuse=True`` (default) runs Linear + ReLU /
    LeakyReLU (alpha > 0) / Sigmoid / Tanh pairs as one fused GEMM call (see
    the module docstring).
    """

    def __init__(self, *layers, fuse=True):
        flat = []
        for layer in layers:
            if isinstance(layer, Sequential):
                flat.extend(layer.layers)
            elif isinstance(layer, Layer):
                flat.append(layer)
            else:
                raise TypeError(f"Sequential: expected Layer instances, got "
                                f"{type(layer).__name__}")
        if not flat:
            raise ValueError("Sequential: at least one layer is required")
        dtypes = {layer.dtype for layer in flat}
        if len(dtypes) != 1:
            raise ValueError(f"Sequential: all layers must have the same dtype, got "
                             f"{sorted(str(d) for d in dtypes)}")
        super().__init__(flat[0].dtype)
        self.layers = flat
        self.fuse = bool(fuse)
        n = sum(layer.n_parameters for layer in flat)
        self.flat_parameters = np.empty(n, self.dtype)
        self.flat_gradients = np.zeros(n, self.dtype)
        offset = 0
        for layer in flat:
            offset = layer._bind(self.flat_parameters, self.flat_gradients, offset)
        # plan: list of (index, fused activation layer or None)
        self._plan = []
        i = 0
        while i < len(flat):
            layer = flat[i]
            nxt = flat[i + 1] if i + 1 < len(flat) else None
            if (self.fuse and isinstance(layer, Linear) and type(nxt) in _FUSABLE
                    and not (type(nxt) is LeakyReLU and nxt.alpha <= 0)):
                self._plan.append((layer, nxt))
                i += 2
            else:
                self._plan.append((layer, None))
                i += 1

    @property
    def n_parameters(self):
        return self.flat_parameters.size

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def gradients(self):
        return [g for layer in self.layers for g in layer.gradients()]

    def _bind(self, flat, grad, offset, values=None):
        raise TypeError("Sequential cannot be rebound (nested Sequentials are flattened)")

    def forward(self, X, training=True):
        X = _as_input(X, self.dtype, f"{type(self).__name__}.forward")
        for layer, act in self._plan:
            if act is None:
                X = layer.forward(X, training=training)
            else:
                X = layer.forward(X, training=training, activation=_FUSABLE[type(act)],
                                  alpha=act.alpha)
                act._fused_output(X)
        return X

    def backward(self, grad_out, need_input_grad=True):
        """Backpropagate `grad_out` (d loss / d output); fills the gradient
        buffer and returns d loss / d input (None when need_input_grad is
        False and the first layer is a Linear: its input gradient is skipped)."""
        g = np.asarray(grad_out)
        if g.dtype != self.dtype:
            g = g.astype(self.dtype)
        for k in range(len(self._plan) - 1, -1, -1):
            layer, act = self._plan[k]
            if act is not None:
                g = act.backward(g)
            if isinstance(layer, Linear):
                g = layer.backward(g, need_input_grad=need_input_grad or k > 0)
            else:
                g = layer.backward(g)
        return g

    def predict(self, X):
        """forward(X, training=False): a fresh array."""
        return self.forward(X, training=False)

    def zero_grad(self):
        self.flat_gradients[...] = 0

    def astype(self, dtype):
        """A copy of the model with all parameters and buffers in `dtype`."""
        params, arrays = self._get_state()
        params = dict(params, dtype=str(np.dtype(dtype)))
        return Sequential._from_state(params, arrays)

    def __repr__(self):
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner})"

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    # ---- fastmlp.save / fastmlp.load -----------------------------------------
    def _get_state(self):
        return _state_of(self.layers, self.dtype, self.fuse)

    @classmethod
    def _from_state(cls, params, arrays):
        dtype = _dtype(params["dtype"], "Sequential")
        specs = params["layers"]
        if not isinstance(specs, list) or not specs:
            raise ValueError("layers must be a non-empty list")
        layers = []
        for spec in specs:
            kind = LAYERS.get(spec["type"])
            if kind is None:
                raise ValueError(f"unknown layer type {spec['type']!r}")
            config = spec["config"]
            if not isinstance(config, dict):
                raise TypeError("layer config is not a dict")
            layers.append(kind(**config, dtype=dtype))
        model = cls(*layers, fuse=bool(params["fuse"]))
        flat = arrays["parameters"]
        if flat.shape != model.flat_parameters.shape or flat.dtype.kind != "f":
            raise ValueError(f"parameters has shape {flat.shape} and dtype {flat.dtype}, "
                             f"expected {model.flat_parameters.shape} floats")
        model.flat_parameters[...] = flat
        expected = {"parameters"}
        for i, (layer, spec) in enumerate(zip(model.layers, specs)):
            names = [k[len(f"layer{i}."):] for k in arrays if k.startswith(f"layer{i}.")]
            expected.update(f"layer{i}.{n}" for n in names)
            layer._load_extra_state(spec.get("state", {}),
                                    {n: arrays[f"layer{i}.{n}"] for n in names})
        if set(arrays) != expected:
            raise ValueError(f"unexpected arrays {sorted(set(arrays) - expected)}")
        return model
