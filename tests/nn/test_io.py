"""fastmlp.save / fastmlp.load: round trips, the registry protocol, damaged and
hostile files (truncated, flipped bytes, pickled object arrays, bad metadata),
atomic writes."""
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import fastmlp
from fastmlp import Perceptron, _io


@pytest.fixture
def fitted(rng):
    X = rng.standard_normal((200, 5))
    s = X @ np.array([1.0, -2.0, 0.5, 0.0, 1.0]) + 0.2
    X, s = X[np.abs(s) > 0.5][:80], s[np.abs(s) > 0.5][:80]      # a margin: converges
    y = np.where(s > 0, "yes", "no")
    return Perceptron(max_iter=50, random_state=3, eta0=0.5).fit(X, y), X


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry, so classes registered in a test vanish after it."""
    monkeypatch.setattr(_io, "_REGISTRY", dict(_io._REGISTRY))
    monkeypatch.setattr(_io, "_NAMES", dict(_io._NAMES))


def same_perceptron(a, b, X):
    assert type(b) is Perceptron
    assert b.get_params() == a.get_params()
    np.testing.assert_array_equal(b.coef_, a.coef_)
    np.testing.assert_array_equal(b.intercept_, a.intercept_)
    np.testing.assert_array_equal(b.classes_, a.classes_)
    assert (b.n_iter_, b.converged_, b.n_features_in_) == (a.n_iter_, a.converged_,
                                                           a.n_features_in_)
    assert np.array_equal(b.predict(X), a.predict(X))
    assert np.array_equal(b.decision_function(X), a.decision_function(X))


def read_meta(path):
    with np.load(path, allow_pickle=False) as z:
        return json.loads(z["__meta__"].tobytes().decode("utf-8")), {
            k: z[k] for k in z.files if k != "__meta__"}


def write_npz(path, meta, arrays):
    """A raw .npz with the given meta (dict or bytes) and arrays (no fastmlp involved)."""
    if isinstance(meta, dict):
        meta = json.dumps(meta).encode("utf-8")
    members = dict(arrays)
    if meta is not None:
        members["__meta__"] = np.frombuffer(meta, np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **members)


# ---- round trips --------------------------------------------------------------

def test_fitted_round_trip(fitted, tmp_path):
    p, X = fitted
    path = tmp_path / "model.npz"
    assert fastmlp.save(p, path) is None
    q = fastmlp.load(path)
    same_perceptron(p, q, X)
    assert q.predict(X).dtype.kind == "U"
    # str paths too, and the file is a plain .npz readable without pickle
    q2 = fastmlp.load(str(path))
    same_perceptron(p, q2, X)
    meta, arrays = read_meta(path)
    assert meta["format"] == "fastmlp" and meta["format_version"] == 1
    assert meta["fastmlp_version"] == fastmlp.__version__
    assert meta["class"] == "Perceptron"
    assert meta["params"]["hyperparameters"] == p.get_params()
    assert sorted(meta["arrays"]) == ["classes_", "coef_", "intercept_"] == sorted(arrays)
    assert len(meta["checksum"]) == 64
    assert meta["checksum"] == _io._checksum(meta["arrays"], arrays)


@pytest.mark.parametrize("labels", [[0, 1], [-1.5, 2.5], [False, True]])
def test_numeric_labels_round_trip(tmp_path, labels):
    X = np.array([[0.0, 0], [0, 1], [1, 0], [1, 1]])
    y = np.array(labels)[[0, 1, 1, 1]]
    p = Perceptron(shuffle=False).fit(X, y)
    fastmlp.save(p, tmp_path / "p.npz")
    q = fastmlp.load(tmp_path / "p.npz")
    same_perceptron(p, q, X)
    assert q.classes_.dtype == p.classes_.dtype


def test_object_string_labels_round_trip(tmp_path):
    X = np.array([[0.0, 0], [0, 1], [1, 0], [1, 1]])
    y = np.array(["a", "b", "b", "b"], dtype=object)
    p = Perceptron(shuffle=False).fit(X, y)
    assert p.classes_.dtype == object
    fastmlp.save(p, tmp_path / "p.npz")
    np.testing.assert_array_equal(fastmlp.load(tmp_path / "p.npz").predict(X), p.predict(X))


def test_unfitted_round_trip(tmp_path):
    p = Perceptron(max_iter=7, shuffle=False, random_state=11, eta0=0.25, fit_intercept=False)
    fastmlp.save(p, tmp_path / "u.npz")
    q = fastmlp.load(tmp_path / "u.npz")
    assert type(q) is Perceptron and q.get_params() == p.get_params()
    with pytest.raises(NotFittedError):
        q.predict(np.zeros((1, 2)))
    meta, arrays = read_meta(tmp_path / "u.npz")
    assert meta["arrays"] == [] and arrays == {} and meta["params"]["fitted"] is None


def test_numpy_typed_hyperparameters_are_saved_as_plain_json(tmp_path):
    p = Perceptron(max_iter=np.int64(9), shuffle=np.bool_(False), random_state=np.int32(4),
                   eta0=np.float32(0.5), fit_intercept=np.bool_(True))
    fastmlp.save(p, tmp_path / "p.npz")
    q = fastmlp.load(tmp_path / "p.npz")
    assert q.get_params() == {"max_iter": 9, "shuffle": False, "random_state": 4,
                              "eta0": 0.5, "fit_intercept": True}
    assert type(q.max_iter) is int and type(q.eta0) is float


def test_invalid_hyperparameters_are_not_saved(tmp_path):
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        fastmlp.save(Perceptron(max_iter=0), tmp_path / "p.npz")
    assert os.listdir(tmp_path) == []


def test_overwrite_and_name_without_suffix(fitted, tmp_path):
    p, X = fitted
    path = tmp_path / "model"                     # saved exactly here: no ".npz" appended
    fastmlp.save(Perceptron(), path)
    fastmlp.save(p, path)
    assert os.listdir(tmp_path) == ["model"]
    same_perceptron(p, fastmlp.load(path), X)


def test_file_permissions_follow_umask(fitted, tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    fastmlp.save(fitted[0], tmp_path / "m.npz")
    assert os.stat(tmp_path / "m.npz").st_mode & 0o777 == 0o666 & ~umask


class Bag:
    """A registered test class holding arbitrary arrays."""

    def __init__(self, params, arrays):
        self.params, self.arrays = params, arrays

    def _get_state(self):
        return self.params, self.arrays

    @classmethod
    def _from_state(cls, params, arrays):
        return cls(params, arrays)


def test_protocol_preserves_dtypes_shapes_and_order(registry, tmp_path):
    _io.register("TestBag")(Bag)
    arrays = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "strided": np.arange(20.0)[::3],
        "big_endian": np.arange(4, dtype=">f4"),
        "i8": np.array([-128, 0, 127], np.int8),
        "u64": np.array([2**64 - 1], np.uint64),
        "b": np.array([[True, False]]),
        "c128": np.array([1 + 2j, -3j]),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 5)),
        "text": np.array(["α", "beta"]),
        "bytes": np.array([b"ab", b"c"]),
        "name.with-dots_1": np.ones(2),
        "file": np.ones(1),                      # np.savez's own argument names
        "allow_pickle": np.zeros(1),
    }
    params = {"nested": {"list": [1, 2.5, None, True, "s"]}, "unicode": "ü"}
    fastmlp.save(Bag(params, arrays), tmp_path / "bag.npz")
    back = fastmlp.load(tmp_path / "bag.npz")
    assert isinstance(back, Bag) and back.params == params
    assert list(back.arrays) == list(arrays)
    for k, a in arrays.items():
        assert back.arrays[k].dtype == a.dtype and back.arrays[k].shape == a.shape, k
        np.testing.assert_array_equal(back.arrays[k], a)


def test_save_rejects_what_cannot_be_saved(registry, tmp_path):
    _io.register("TestBag")(Bag)
    with pytest.raises(TypeError, match="only classes registered"):
        fastmlp.save(object(), tmp_path / "x.npz")
    with pytest.raises(TypeError, match="never object arrays"):
        fastmlp.save(Bag({}, {"o": np.array([{"a": 1}], dtype=object)}), tmp_path / "x.npz")
    with pytest.raises(TypeError, match="not plain JSON"):
        fastmlp.save(Bag({"f": float("nan")}, {}), tmp_path / "x.npz")
    with pytest.raises(TypeError, match="not plain JSON"):
        fastmlp.save(Bag({"f": object()}, {}), tmp_path / "x.npz")
    for bad in ("../evil", "a/b", "", "__meta__", ".hidden", 3):
        with pytest.raises(ValueError, match="bad array name"):
            fastmlp.save(Bag({}, {bad: np.ones(1)}), tmp_path / "x.npz")
    with pytest.raises(TypeError, match="params must be a dict"):
        fastmlp.save(Bag([1], {}), tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_register_rules(registry):
    with pytest.raises(ValueError, match="already taken"):
        _io.register("Perceptron")(Bag)
    with pytest.raises(TypeError, match="does not define _from_state"):
        _io.register("NoFromState")(type("NoFromState", (), {"_get_state": lambda self: None}))
    with pytest.raises(ValueError, match="non-empty string"):
        _io.register("")
    assert _io.register("Perceptron")(Perceptron) is Perceptron      # idempotent


# ---- damaged and hostile files -------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastmlp.load(tmp_path / "nope.npz")
    with pytest.raises(OSError):
        fastmlp.load(tmp_path)                     # a directory


def test_truncations_are_rejected(fitted, tmp_path):
    p, _ = fitted
    path = tmp_path / "m.npz"
    fastmlp.save(p, path)
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    # every 5th length, and every one of the last 64 bytes (zip directory)
    for n in sorted(set(range(0, len(data), 5)) | set(range(len(data) - 64, len(data)))):
        cut.write_bytes(data[:n])
        with pytest.raises(ValueError, match=r"fastmlp\.load\(.*cut\.npz"):
            fastmlp.load(cut)


def _regions(data):
    """Byte ranges of every member's .npy header+data (located via the zip)."""
    spans = []
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            off = info.header_offset
            name_len = int.from_bytes(data[off + 26:off + 28], "little")
            extra_len = int.from_bytes(data[off + 28:off + 30], "little")
            start = off + 30 + name_len + extra_len
            spans.append((info.filename, start, start + info.compress_size))
    return spans


def test_flipped_bytes_are_rejected_or_harmless(fitted, tmp_path):
    p, X = fitted
    path = tmp_path / "m.npz"
    fastmlp.save(p, path)
    data = path.read_bytes()
    payload = set()
    for _, start, end in _regions(data):
        payload.update(range(start, end))
    bad = tmp_path / "flip.npz"
    rejected = 0
    positions = range(0, len(data), 3)     # every third byte: ~500 loads
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= 0xFF
        bad.write_bytes(bytes(flipped))
        try:
            q = fastmlp.load(bad)
        except ValueError as exc:
            assert "flip.npz" in str(exc)
            rejected += 1
            continue
        # Bytes the reader ignores (zip timestamps, "version made by", ...) may
        # change without harm, but never those of an array or of __meta__.
        assert pos not in payload, f"flip at {pos} inside an array went unnoticed"
        same_perceptron(p, q, X)
    assert rejected >= len(payload & set(positions)) > 100


def test_flipped_bits_in_array_data_hit_the_checksum(fitted, tmp_path):
    # Rewrite the file with valid zip CRCs but one changed weight: only the
    # SHA-256 checksum can tell.
    p, _ = fitted
    path = tmp_path / "m.npz"
    fastmlp.save(p, path)
    meta, arrays = read_meta(path)
    for bit in (0, 17, 63):
        coef = arrays["coef_"].copy()
        coef.view(np.uint64)[0, 2] ^= np.uint64(1 << bit)
        write_npz(path, meta, dict(arrays, coef_=coef))
        with pytest.raises(ValueError, match="checksum mismatch"):
            fastmlp.load(path)
    # a changed dtype or shape with the same bytes is caught too
    write_npz(path, meta, dict(arrays, coef_=arrays["coef_"].reshape(-1)))
    with pytest.raises(ValueError, match="checksum mismatch"):
        fastmlp.load(path)


class Evil:
    """Unpickling this would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_object_arrays_are_never_loaded(fitted, tmp_path):
    p, _ = fitted
    marker = tmp_path / "PWNED"
    path = tmp_path / "m.npz"
    fastmlp.save(p, path)
    meta, arrays = read_meta(path)
    evil = np.array([Evil(marker)], dtype=object)
    # in place of a real array, as an extra array, and as a listed array
    for members, listed in [(dict(arrays, classes_=evil), meta["arrays"]),
                            (dict(arrays, extra=evil), meta["arrays"]),
                            (dict(arrays, extra=evil), meta["arrays"] + ["extra"])]:
        write_npz(path, dict(meta, arrays=listed), members)
        with pytest.raises(ValueError, match="object array"):
            fastmlp.load(path)
    # a raw pickle under the name of a model file
    path.write_bytes(pickle.dumps(Evil(marker)))
    with pytest.raises(ValueError, match="no zip signature"):
        fastmlp.load(path)
    # a lone .npy with an object array
    with open(path, "wb") as f:
        np.save(f, evil, allow_pickle=True)
    with pytest.raises(ValueError, match="no zip signature"):
        fastmlp.load(path)
    assert not marker.exists()


def test_missing_or_bad_meta(fitted, tmp_path):
    p, _ = fitted
    path = tmp_path / "m.npz"
    fastmlp.save(p, path)
    meta, arrays = read_meta(path)
    cases = [
        (None, "no __meta__"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps(dict(meta, format="other")).encode(), "not a fastmlp file"),
        (json.dumps({k: v for k, v in meta.items() if k != "format"}).encode(),
         "not a fastmlp file"),
        (json.dumps(dict(meta, format_version=2)).encode(), "newer fastmlp.*upgrade"),
        (json.dumps(dict(meta, format_version=0)).encode(), "bad format_version 0"),
        (json.dumps(dict(meta, format_version="1")).encode(), "bad format_version '1'"),
        (json.dumps(dict(meta, format_version=True)).encode(), "bad format_version"),
        (json.dumps(dict(meta, format_version=1.0)).encode(), "bad format_version"),
        (json.dumps(dict(meta, **{"class": "NoSuchModel"})).encode(),
         "unknown class 'NoSuchModel'"),
        (json.dumps(dict(meta, params=[])).encode(), "'params' is missing"),
        (json.dumps({k: v for k, v in meta.items() if k != "checksum"}).encode(),
         "'checksum' is missing"),
        (json.dumps(dict(meta, arrays=meta["arrays"][:2])).encode(), "but __meta__ lists"),
        (json.dumps(dict(meta, arrays=meta["arrays"] + ["ghost"])).encode(),
         "but __meta__ lists"),
        (json.dumps(dict(meta, arrays=["coef_", "coef_", "classes_"])).encode(),
         "distinct array names"),
        (json.dumps(dict(meta, checksum="0" * 64)).encode(), "checksum mismatch"),
        (json.dumps(meta).replace('"eta0": 0.5', '"eta0": NaN').encode(),
         "not valid JSON.*NaN"),
    ]
    for raw, match in cases:
        write_npz(path, raw, arrays)
        with pytest.raises(ValueError, match=match):
            fastmlp.load(path)
    # __meta__ of the wrong dtype
    write_npz(path, None, dict(arrays, __meta__=np.zeros(3)))
    with pytest.raises(ValueError, match="not a 1-D uint8 array"):
        fastmlp.load(path)


def test_inconsistent_state_with_valid_checksum(fitted, tmp_path):
    p, _ = fitted
    path = tmp_path / "m.npz"
    fastmlp.save(p, path)
    meta, arrays = read_meta(path)
    for changes, params, match in [
        ({"coef_": np.zeros((1, 3))}, None, r"coef_ has shape \(1, 3\)"),
        ({"coef_": arrays["coef_"].astype(np.float32)}, None, "float64"),
        ({"classes_": np.array([1, 2, 3])}, None, "classes_ has shape"),
        ({}, {"hyperparameters": {"max_iter": 0}, "fitted": None}, "max_iter must be >= 1"),
        ({}, {"hyperparameters": {"bogus": 1}, "fitted": None}, "unknown hyperparameters"),
        ({}, {"hyperparameters": {}}, "KeyError"),
        ({}, dict(meta["params"], fitted=None), "unfitted Perceptron with arrays"),
    ]:
        new = dict(arrays, **changes)
        m = dict(meta, checksum=_io._checksum(meta["arrays"], new),
                 params=params if params is not None else meta["params"])
        m["meta_checksum"] = _io._meta_checksum(m)
        write_npz(path, m, new)
        with pytest.raises(ValueError, match="inconsistent Perceptron state.*" + match):
            fastmlp.load(path)


def _npy_bytes(header, data):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + data


def test_lying_array_header_does_not_allocate(fitted, tmp_path):
    p, _ = fitted
    path = tmp_path / "m.npz"
    fastmlp.save(p, path)
    meta, arrays = read_meta(path)
    huge = _npy_bytes({"descr": "<f8", "fortran_order": False, "shape": (10**15,)}, b"\0" * 8)
    neg = _npy_bytes({"descr": "<f8", "fortran_order": False, "shape": (-1,)}, b"\0" * 8)
    obj = _npy_bytes({"descr": "|O", "fortran_order": False, "shape": (1,)}, b"\0" * 8)
    for member, match in [(huge, "header says shape"), (neg, "header says shape|corrupt"),
                          (obj, "object array"), (b"\x93NUMPY\x09\x00", "npy version|corrupt"),
                          (b"garbage", "corrupt header")]:
        with zipfile.ZipFile(path, "w") as z:
            for name, a in arrays.items():
                buf = io.BytesIO()
                np.save(buf, a)
                z.writestr(name + ".npy", buf.getvalue() if name != "coef_" else member)
            buf = io.BytesIO()
            np.save(buf, np.frombuffer(json.dumps(meta).encode(), np.uint8))
            z.writestr("__meta__.npy", buf.getvalue())
        with pytest.raises(ValueError, match=match):
            fastmlp.load(path)
    # a member that is not an .npy array at all
    fastmlp.save(p, path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("../../etc/notes.txt", b"hello")
    with pytest.raises(ValueError, match="not an array"):
        fastmlp.load(path)


def test_compressed_npz_with_valid_content_loads(fitted, tmp_path):
    # The reader does not depend on how the zip was written.
    p, X = fitted
    path = tmp_path / "m.npz"
    fastmlp.save(p, path)
    meta, arrays = read_meta(path)
    np.savez_compressed(path, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                        **arrays)
    same_perceptron(p, fastmlp.load(path), X)


# ---- atomic writes -----------------------------------------------------------------------

def test_failed_state_leaves_existing_file_untouched(fitted, tmp_path, monkeypatch):
    p, X = fitted
    path = tmp_path / "m.npz"
    fastmlp.save(p, path)
    before = path.read_bytes()

    def boom(self):
        raise RuntimeError("state exploded")

    monkeypatch.setattr(Perceptron, "_get_state", boom)
    with pytest.raises(RuntimeError, match="state exploded"):
        fastmlp.save(Perceptron(), path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["m.npz"]
    assert path.read_bytes() == before
    same_perceptron(p, fastmlp.load(path), X)


@pytest.mark.parametrize("where", ["savez", "replace"])
def test_failed_write_removes_temp_file(fitted, tmp_path, monkeypatch, where):
    p, X = fitted
    path = tmp_path / "m.npz"
    fastmlp.save(p, path)
    before = path.read_bytes()
    if where == "savez":
        def half_write(f, members):
            f.write(b"PK\x03\x04 half a file")
            raise OSError("disk full")
        monkeypatch.setattr(_io, "_write_npz", half_write)
    else:
        def no_replace(src, dst):
            assert os.path.exists(src) and os.path.dirname(src) == str(tmp_path)
            raise OSError("rename failed")
        monkeypatch.setattr(_io.os, "replace", no_replace)
    with pytest.raises(OSError, match="disk full|rename failed"):
        fastmlp.save(Perceptron(max_iter=3), path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["m.npz"]
    assert path.read_bytes() == before


def test_interrupted_write_removes_temp_file(tmp_path, monkeypatch):
    def interrupted(f, members):
        raise KeyboardInterrupt
    monkeypatch.setattr(_io, "_write_npz", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fastmlp.save(Perceptron(), tmp_path / "m.npz")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastmlp.save(Perceptron(), tmp_path / "no" / "such" / "m.npz")


def test_load_in_a_fresh_process_imports_the_class_on_demand(fitted, tmp_path):
    # `import fastmlp` does not import scikit-learn; load() imports the module
    # of a fastmlp class (from a fixed table) when a file needs it.
    import subprocess
    import sys
    p, X = fitted
    fastmlp.save(p, tmp_path / "m.npz")
    np.save(tmp_path / "X.npy", X)
    code = (
        "import sys, numpy as np, fastmlp\n"
        "assert 'sklearn' not in sys.modules and 'fastmlp.perceptron' not in sys.modules\n"
        "q = fastmlp.load('m.npz')\n"
        "print(type(q).__name__, ''.join(q.predict(np.load('X.npy'))[:5]))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["Perceptron", "".join(p.predict(X)[:5])]
