"""Damaged model files: 1000 random corruptions and truncations of files
written by fastmlp.save (a fitted MLPClassifier, a fastmlp.nn.Sequential with
dropout, batch norm and layer norm, and a Perceptron) are loaded with
fastmlp.load, all in ONE subprocess so that a crash is caught (the case being
loaded is written to disk first, so a crash names it).

Every load must either raise a clear error -- ValueError naming the file
(OSError is allowed too) -- or, where only bytes the zip reader ignores were
touched (timestamps, "version made by"), return exactly the saved object.
Truncations, appended bytes, and changes inside any member's data (arrays
and the metadata) must always be rejected. Besides
raw byte damage, a third of the cases rewrite the file as a VALID zip (all
CRC-32s correct) around a damaged member -- metadata JSON, an .npy header or
array bytes -- so that the checks behind the CRC (SHA-256 checksums of arrays
and metadata, header/size consistency, the classes' own validation) are hit.

Loading never unpickles: in the subprocess pickle's loaders are replaced by
traps (a BaseException, so nothing can swallow it) and every np.load call
must pass allow_pickle=False.
"""
import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(r'''
    import io, json, os, pickle, sys, warnings, zipfile
    import numpy as np

    class PickleUsed(BaseException):
        pass

    def _trap(*args, **kwargs):
        raise PickleUsed("pickle was used")

    class _NoUnpickler:
        def __init__(self, *args, **kwargs):
            raise PickleUsed("pickle.Unpickler was used")

    pickle.load = pickle.loads = _trap
    pickle.Unpickler = _NoUnpickler
    _np_load = np.load
    np_load_calls = []

    def _checked_np_load(*args, **kwargs):
        np_load_calls.append(kwargs.get("allow_pickle", "not given"))
        if kwargs.get("allow_pickle") is not False:
            raise PickleUsed(f"np.load called with allow_pickle={kwargs.get('allow_pickle')!r}")
        return _np_load(*args, **kwargs)

    np.load = _checked_np_load

    import fastmlp
    from fastmlp import _io, nn
    warnings.simplefilter("ignore")
    workdir = sys.argv[1]
    N = int(sys.argv[2])
    rng = np.random.default_rng(20261123)

    X = rng.standard_normal((60, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    clf = fastmlp.MLPClassifier(hidden_layer_sizes=(7, 5), max_iter=5, random_state=0).fit(X, y)
    seq = nn.Sequential(nn.Linear(6, 8, random_state=0), nn.ReLU(), nn.Dropout(0.2, random_state=1),
                        nn.BatchNorm1d(8), nn.LayerNorm(8), nn.Linear(8, 2, random_state=2))
    nn.fit(seq, X, y, loss="cross_entropy", epochs=2, batch_size=16, random_state=0, verbose=0)
    perc = fastmlp.Perceptron(random_state=0).fit(X, np.where(y, "yes", "no"))
    objects = {"MLPClassifier": clf, "Sequential": seq, "Perceptron": perc}

    def state(obj):
        meta, arrays = _io._collect_state(obj)
        return json.loads(meta), {k: (a.dtype.str, a.shape, a.tobytes()) for k, a in arrays.items()}

    def outputs(obj):
        if isinstance(obj, nn.Sequential):
            return obj.predict(X).tobytes()
        return (obj.predict_proba(X) if hasattr(obj, "predict_proba")
                else obj.decision_function(X)).tobytes()

    originals = {}
    for name, obj in objects.items():
        path = os.path.join(workdir, name + ".npz")
        fastmlp.save(obj, path)
        with open(path, "rb") as f:
            data = f.read()
        members, payload = [], set()
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for info in z.infolist():
                off = info.header_offset
                start = off + 30 + int.from_bytes(data[off + 26:off + 28], "little") + \
                    int.from_bytes(data[off + 28:off + 30], "little")
                payload.update(range(start, start + info.compress_size))
                members.append((info.filename, z.read(info)))
        originals[name] = dict(data=data, payload=payload, members=members,
                               state=state(obj), out=outputs(obj))

    def rezip(members):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for fname, content in members:
                z.writestr(fname, content)
        return buf.getvalue()

    def mutate_bytes(b, n_max=8):
        b = bytearray(b)
        for _ in range(rng.integers(1, n_max + 1)):
            if len(b) == 0:
                break
            j = int(rng.integers(0, len(b)))
            op = rng.integers(0, 3)
            if op == 0:
                b[j] ^= 1 << int(rng.integers(0, 8))
            elif op == 1:
                b[j] = int(rng.integers(0, 256))
            else:
                b[j] = int(rng.choice(list(b"0123456789-.eE,:{}[]\"' ntfaxyz_")))
        return bytes(b)

    def corrupt(orig, kind):
        data = orig["data"]
        b = bytearray(data)
        n = len(b)
        if kind == "truncate":
            return bytes(b[:int(rng.integers(0, n))]), "always"
        if kind == "flip_bits":
            pos = rng.integers(0, n, rng.integers(1, 9))
            for p in pos:
                b[p] ^= 1 << int(rng.integers(0, 8))
            return bytes(b), ("always" if any(int(p) in orig["payload"] for p in pos) else "may")
        if kind == "overwrite":
            j = int(rng.integers(0, n)); k = min(n, j + int(rng.integers(1, 64)))
            b[j:k] = rng.bytes(k - j)
            changed = [p for p in range(j, k) if b[p] != data[p]]
            return bytes(b), ("always" if any(p in orig["payload"] for p in changed) else "may")
        if kind == "zero_run":
            j = int(rng.integers(0, n)); k = min(n, j + int(rng.integers(1, 256)))
            b[j:k] = bytes(k - j)
            changed = [p for p in range(j, k) if data[p] != 0]
            return bytes(b), ("always" if any(p in orig["payload"] for p in changed) else "may")
        if kind == "insert":
            j = int(rng.integers(0, n))
            return bytes(b[:j] + rng.bytes(int(rng.integers(1, 32))) + b[j:]), "may"
        if kind == "delete":
            j = int(rng.integers(0, n))
            return bytes(b[:j] + b[j + int(rng.integers(1, 32)):]), "may"
        if kind == "append":
            return bytes(b + rng.bytes(int(rng.integers(1, 200)))), "always"
        if kind == "swap_members":
            m = list(orig["members"])
            i, k = rng.choice(len(m), 2, replace=False)
            m[i], m[k] = (m[i][0], m[k][1]), (m[k][0], m[i][1])
            return rezip(m), "always"
        # valid zip around one damaged member
        m = list(orig["members"])
        names = [f for f, _ in m]
        if kind == "rezip_meta":
            i = names.index("__meta__.npy")
        else:
            i = int(rng.integers(0, len(m)))
        fname, content = m[i]
        arr = np.lib.format.read_magic(io.BytesIO(content))
        buf = io.BytesIO(content)
        np.lib.format.read_magic(buf)
        np.lib.format.read_array_header_1_0(buf) if arr == (1, 0) else \
            np.lib.format.read_array_header_2_0(buf)
        hdr = buf.tell()
        if kind == "rezip_header":
            new = mutate_bytes(content[:hdr], 3) + content[hdr:]
        else:        # rezip_meta / rezip_data: damage the data part
            body = content[hdr:]
            new = content[:hdr] + (mutate_bytes(body) if body else b"x")
        if new == content:
            new = content + b"\0"
        m[i] = (fname, new)
        # Changed array bytes must always be caught. A changed .npy header or
        # JSON text may be harmless (header padding, JSON whitespace): then
        # what loads must be identical to what was saved.
        return rezip(m), ("always" if kind == "rezip_data" and fname != "__meta__.npy"
                          else "may")

    KINDS = ["truncate", "flip_bits", "overwrite", "zero_run", "insert", "delete", "append",
             "swap_members", "rezip_meta", "rezip_header", "rezip_data",
             "rezip_meta", "rezip_data"]
    path = os.path.join(workdir, "damaged.npz")
    current = os.path.join(workdir, "current_case.json")
    counts, failures = {}, []
    names = list(objects)
    for case in range(N):
        name = names[case % len(names)]
        kind = KINDS[int(rng.integers(0, len(KINDS)))]
        orig = originals[name]
        data, must_fail = corrupt(orig, kind)
        with open(path, "wb") as f:
            f.write(data)
        with open(current, "w") as f:
            json.dump({"case": case, "model": name, "kind": kind, "size": len(data)}, f)
        if data == orig["data"]:
            outcome = "unchanged"
        else:
            try:
                obj = fastmlp.load(path)
            except ValueError as exc:
                outcome = "rejected" if "damaged.npz" in str(exc) else "unclear: " + str(exc)
            except OSError:
                outcome = "rejected"
            except Exception as exc:
                outcome = f"wrong exception {type(exc).__name__}: {exc}"
            else:
                if type(obj) is not type(objects[name]):
                    outcome = f"loaded a {type(obj).__name__}"
                elif state(obj) != orig["state"] or outputs(obj) != orig["out"]:
                    outcome = "loaded a DIFFERENT model"
                elif must_fail == "always":
                    outcome = "loaded although its data were damaged"
                else:
                    outcome = "identical"
        key = f"{name}/{kind}/{outcome if outcome in ('rejected', 'identical', 'unchanged') else 'FAIL'}"
        counts[key] = counts.get(key, 0) + 1
        if outcome not in ("rejected", "identical", "unchanged"):
            failures.append({"case": case, "model": name, "kind": kind, "outcome": outcome})
    print(json.dumps({"counts": counts, "failures": failures[:20], "n_failures": len(failures),
                      "np_load_calls": len(np_load_calls),
                      "np_load_allow_pickle": sorted({repr(v) for v in np_load_calls})}))
''')

N_CASES = 1000


def test_1000_corrupted_files_are_rejected_or_harmless(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(N_CASES)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        current = tmp_path / "current_case.json"
        case = current.read_text() if current.exists() else "(before the first case)"
        raise AssertionError(f"the loader process died (exit {r.returncode}) on case {case}; "
                             f"the file is {tmp_path / 'damaged.npz'}\n{r.stderr[-4000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["n_failures"] == 0, json.dumps(res["failures"], indent=1)
    counts = res["counts"]
    assert sum(counts.values()) == N_CASES
    by_outcome = {}
    for key, n in counts.items():
        model, kind, outcome = key.split("/")
        by_outcome[outcome] = by_outcome.get(outcome, 0) + n
        by_outcome[(model, kind)] = by_outcome.get((model, kind), 0) + n
    # the damage is real: nearly everything is rejected, every model and kind is exercised
    assert by_outcome.get("rejected", 0) > 0.85 * N_CASES, counts
    for model in ("MLPClassifier", "Sequential", "Perceptron"):
        for kind in ("truncate", "flip_bits", "overwrite", "rezip_meta", "rezip_header",
                     "rezip_data", "swap_members"):
            assert by_outcome.get((model, kind), 0) >= 3, (model, kind, counts)
    # never unpickled: every np.load call passed allow_pickle=False
    assert res["np_load_calls"] > N_CASES // 2
    assert res["np_load_allow_pickle"] == ["False"]


def test_valid_zip_with_changed_hyperparameters_is_rejected(tmp_path):
    # The metadata checksum: a file whose zip CRCs and array checksum are all
    # valid but whose JSON hyperparameters were changed does not load.
    import io
    import zipfile

    import numpy as np
    import pytest

    import fastmlp
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = (X[:, 0] > 0).astype(int)
    path = tmp_path / "m.npz"
    fastmlp.save(fastmlp.Perceptron(max_iter=7, random_state=0).fit(X, y), path)
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    meta = json.loads(np.load(io.BytesIO(members["__meta__.npy"])).tobytes())
    assert meta["params"]["hyperparameters"]["max_iter"] == 7 and "meta_checksum" in meta
    hyper = dict(meta["params"]["hyperparameters"], max_iter=8)
    for change, match in [({"params": dict(meta["params"], hyperparameters=hyper)},
                           "checksum mismatch: the metadata"),
                          ({"fastmlp_version": "9.9.9"}, "checksum mismatch: the metadata"),
                          ({"meta_checksum": "0" * 64}, "checksum mismatch: the metadata"),
                          ({"arrays": meta["arrays"][::-1]}, "checksum mismatch"),
                          ({"extra": 1}, r"unexpected fields \['extra'\]")]:
        buf = io.BytesIO()
        np.save(buf, np.frombuffer(json.dumps(dict(meta, **change)).encode(), np.uint8))
        with zipfile.ZipFile(path, "w") as z:
            for name, content in members.items():
                z.writestr(name, buf.getvalue() if name == "__meta__.npy" else content)
        with pytest.raises(ValueError, match=match):
            fastmlp.load(path)
    # files without the field (written before it existed) still load
    old = {k: v for k, v in meta.items() if k != "meta_checksum"}
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(old).encode(), np.uint8))
    with zipfile.ZipFile(path, "w") as z:
        for name, content in members.items():
            z.writestr(name, buf.getvalue() if name == "__meta__.npy" else content)
    assert fastmlp.load(path).max_iter == 7
