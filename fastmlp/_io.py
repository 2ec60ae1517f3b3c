"""Saving and loading fastmlp objects: ``fastmlp.save(obj, path)``, ``fastmlp.load(path)``.

Design: one uncompressed ``.npz`` file (a zip of ``.npy`` members, the
layout ``np.savez`` writes; any ``.npz`` reader opens it) holds the object's
plain arrays plus one uint8 array ``__meta__``: UTF-8 JSON ::

    {"format": "fastmlp", "format_version": 1, "fastmlp_version": "0.1.0",
     "class": "Perceptron", "params": {...}, "arrays": ["coef_", ...],
     "checksum": "<sha256 hex>", "meta_checksum": "<sha256 hex>"}

* Never pickle. Files are read with ``np.load(..., allow_pickle=False)`` and
  only arrays of plain dtypes (bool, integers, floats, complex, fixed-width
  strings) are written, so loading a file cannot run code; an object array in
  a file is rejected. The JSON carries hyperparameters; nothing in it is
  evaluated or imported: ``"class"`` is looked up in a registry of classes
  that opted in (see `register`).
* Integrity. The zip's CRC-32 catches most damage; the SHA-256 checksum over
  every array's name, dtype, shape and bytes (`_checksum`) and the one over
  the rest of the metadata -- class, hyperparameters, array list
  (`_meta_checksum`, in canonical JSON) -- catch the rest, and any
  inconsistency (a missing or extra array, a header whose size does not
  match its member, bad JSON, an unknown metadata field, a newer
  ``format_version``) is a ValueError that names the file and the problem.
  Files written before ``meta_checksum`` existed (no such field) are still
  read. Bytes after the end of the zip archive are rejected (zip readers
  ignore them; fastmlp never writes them). Bytes that the zip reader ignores
  (timestamps, "version made by") may change without harm: what loads is
  then exactly what was saved. Every array header is
  checked against the member's size before the array is read, so a corrupt
  shape cannot make the reader allocate an absurd amount of memory.
* Atomic write. The file is first written in full to a temporary file in the
  target's directory (same file system), flushed and fsync'ed, then renamed
  over the target with ``os.replace``: readers see the old file or the new
  one, never half a file. On any error the temporary file is removed and an
  existing target is left untouched. The object's state is collected before
  anything is written.

Protocol for savable classes::

    @fastmlp._io.register("MyModel")
    class MyModel:
        def _get_state(self):          # -> (params: JSON-able dict, arrays: {name: ndarray})
            ...
        @classmethod
        def _from_state(cls, params, arrays):   # -> instance; raise ValueError if inconsistent
            ...
"""
import hashlib
import importlib
import json
import os
import re
import secrets
import zipfile

import numpy as np

from fastmlp._version import __version__

__all__ = ["save", "load", "register", "FORMAT_VERSION"]

#: Version of the file layout written by `save`; `load` reads versions 1..FORMAT_VERSION.
FORMAT_VERSION = 1
_FORMAT = "fastmlp"
_META = "__meta__"
_ZIP_MAGIC = b"PK\x03\x04"
# Array dtypes a file may hold: none of them needs pickle to be read back.
_ALLOWED_KINDS = frozenset("biufcUS")
# Array names: become zip member names "<name>.npy", so no path separators.
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}\Z")
# Largest __meta__ accepted (the JSON of hyperparameters is a few kB at most).
_MAX_META_BYTES = 16 * 1024 * 1024

_REGISTRY = {}      # registered name -> class
_NAMES = {}         # class -> registered name
# fastmlp's own savable classes whose modules are imported only when needed
# (they import scikit-learn): name -> module that registers it. `load` imports
# a module from this fixed table only, never one named by a file.
_PROVIDERS = {"Perceptron": "fastmlp.perceptron", "MLPClassifier": "fastmlp.sklearn",
              "MLPRegressor": "fastmlp.sklearn"}


def register(name):
    """Class decorator: make a class savable by `save` under `name`.

    The class must define ``_get_state(self) -> (params, arrays)`` (params a
    JSON-able dict, arrays a dict of str -> ndarray of a plain dtype) and a
    classmethod ``_from_state(params, arrays)`` that rebuilds an instance.
    Names are unique: registering another class under a taken name is a
    ValueError.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register: name must be a non-empty string, got {name!r}")

    def decorator(cls):
        if not isinstance(cls, type):
            raise TypeError(f"register({name!r}) decorates classes, got {type(cls).__name__}")
        for attr in ("_get_state", "_from_state"):
            if not callable(getattr(cls, attr, None)):
                raise TypeError(f"register({name!r}): {cls.__qualname__} does not define {attr}")
        old = _REGISTRY.get(name)
        if old is not None and old is not cls and (old.__module__, old.__qualname__) != (
                cls.__module__, cls.__qualname__):
            raise ValueError(f"register: name {name!r} is already taken by "
                             f"{old.__module__}.{old.__qualname__}")
        if old is not None:           # same class re-defined (module reload): replace it
            _NAMES.pop(old, None)
        _REGISTRY[name] = cls
        _NAMES[cls] = name
        return cls

    return decorator


def _checksum(names, arrays):
    """SHA-256 over each array's name, dtype, shape and C-order bytes, in `names` order."""
    h = hashlib.sha256()
    for name in names:
        a = np.ascontiguousarray(arrays[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode("utf-8"))
        h.update(a.reshape(-1).view(np.uint8) if a.size else b"")
    return h.hexdigest()


# Fields of __meta__; "meta_checksum" covers all of them but the two checksums.
_META_FIELDS = ("format", "format_version", "fastmlp_version", "class", "params", "arrays",
                "checksum", "meta_checksum")


def _meta_checksum(meta):
    """SHA-256 of the canonical JSON (sorted keys, no spaces, ASCII) of the
    metadata fields other than the checksums, as they read back from the file."""
    covered = {k: meta.get(k) for k in _META_FIELDS if k not in ("checksum", "meta_checksum")}
    text = json.dumps(covered, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _collect_state(obj):
    cls = type(obj)
    name = _NAMES.get(cls)
    if name is None:
        raise TypeError(f"save: cannot save a {cls.__module__}.{cls.__qualname__}: only classes "
                        f"registered with fastmlp._io.register can be saved "
                        f"(registered: {', '.join(sorted(_REGISTRY)) or 'none'})")
    state = obj._get_state()
    if not (isinstance(state, tuple) and len(state) == 2):
        raise TypeError(f"save: {cls.__qualname__}._get_state must return (params, arrays)")
    params, arrays = state
    if not isinstance(params, dict):
        raise TypeError(f"save: {cls.__qualname__}._get_state params must be a dict, "
                        f"got {type(params).__name__}")
    if not isinstance(arrays, dict):
        raise TypeError(f"save: {cls.__qualname__}._get_state arrays must be a dict, "
                        f"got {type(arrays).__name__}")
    out = {}
    for key, value in arrays.items():
        if not isinstance(key, str) or not _NAME_RE.match(key) or key == _META:
            raise ValueError(f"save: bad array name {key!r} (letters, digits, '_', '.', '-'; "
                             f"must not start with '.' or '-')")
        a = np.asarray(value)
        if a.dtype.kind not in _ALLOWED_KINDS:
            raise TypeError(f"save: array {key!r} has dtype {a.dtype}; only bool, integer, "
                            f"float, complex and fixed-width string arrays can be saved "
                            f"(never object arrays: files are read without pickle)")
        out[key] = a
    try:
        meta = {
            "format": _FORMAT,
            "format_version": FORMAT_VERSION,
            "fastmlp_version": __version__,
            "class": name,
            "params": params,
            "arrays": list(out),
            "checksum": _checksum(list(out), out),
        }
        # over the metadata as it will read back (tuples become lists, ...)
        meta["meta_checksum"] = _meta_checksum(json.loads(json.dumps(meta, allow_nan=False)))
        text = json.dumps(meta, allow_nan=False, sort_keys=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"save: the parameters of {cls.__qualname__} are not plain JSON "
                        f"({exc})") from None
    return text.encode("utf-8"), out


def save(obj, path):
    """Save a registered fastmlp object (e.g. a `Perceptron`) to `path`.

    Writes a single ``.npz`` file exactly at `path` (no suffix is added),
    atomically: the target is replaced only once the new file is complete;
    if anything fails, no temporary file is left behind and an existing file
    at `path` is untouched (a symbolic link at `path` is replaced by the new
    file, not followed). Read it back with `load`.
    """
    path = os.fspath(path)
    meta, arrays = _collect_state(obj)      # before touching the file system
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            # mode 0o666 minus the umask: the saved file gets ordinary permissions
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, {_META: np.frombuffer(meta, dtype=np.uint8), **arrays})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _write_npz(f, members):
    """What ``np.savez`` writes (a stored zip of .npy members), without its
    keyword-argument names (an array may be called "file") and refusing
    pickle outright."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, a in members.items():
            with zf.open(name + ".npy", mode="w", force_zip64=True) as m:
                np.lib.format.write_array(m, a, allow_pickle=False)


def _fsync_directory(directory):
    """Make the rename durable (POSIX); best effort, not available everywhere."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Bad(Exception):
    """A problem with the file's contents (turned into ValueError by `load`)."""


def _check_member_sizes(zf):
    """Every .npy member: a header whose dtype needs no pickle and whose data
    size matches the member's size, checked before any array is read."""
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            raise _Bad(f"unexpected member {info.filename!r} (not an array)")
        with zf.open(info) as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise _Bad(f"array {info.filename!r} has unsupported .npy version {version}")
            except _Bad:
                raise
            except zipfile.BadZipFile as exc:      # e.g. the member's CRC-32 does not match
                raise _Bad(f"array {info.filename!r} is corrupt ({exc})") from None
            except Exception as exc:
                raise _Bad(f"array {info.filename!r} has a corrupt header ({exc})") from None
            header_len = f.tell()
        if dtype.hasobject:
            raise _Bad(f"array {info.filename!r} is an object array (dtype {dtype}); object "
                       f"arrays need pickle and are never loaded")
        if dtype.kind not in _ALLOWED_KINDS:
            raise _Bad(f"array {info.filename!r} has unsupported dtype {dtype}")
        count = 1
        for s in shape:
            count *= s
        if count * dtype.itemsize != info.file_size - header_len:
            raise _Bad(f"array {info.filename!r}: header says shape {shape} of {dtype} "
                       f"({count * dtype.itemsize} bytes) but the member holds "
                       f"{info.file_size - header_len} bytes")


def _parse_meta(raw):
    if not isinstance(raw, np.ndarray) or raw.dtype != np.uint8 or raw.ndim != 1:
        raise _Bad("__meta__ is not a 1-D uint8 array")
    if raw.size > _MAX_META_BYTES:
        raise _Bad(f"__meta__ is too large ({raw.size} bytes)")
    try:
        text = raw.tobytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Bad(f"__meta__ is not UTF-8 ({exc})") from None

    def no_constants(name):
        raise ValueError(f"non-standard JSON constant {name}")

    try:
        meta = json.loads(text, parse_constant=no_constants)
    except (ValueError, RecursionError) as exc:
        raise _Bad(f"__meta__ is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise _Bad("__meta__ is not a JSON object")
    if meta.get("format") != _FORMAT:
        raise _Bad(f"not a fastmlp file (format {meta.get('format')!r}, expected {_FORMAT!r})")
    version = meta.get("format_version")
    if type(version) is not int or version < 1:
        raise _Bad(f"bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise _Bad(f"format_version {version} was written by a newer fastmlp "
                   f"({meta.get('fastmlp_version')!r}); this fastmlp {__version__} reads "
                   f"format_version <= {FORMAT_VERSION}: upgrade fastmlp")
    for key, typ in (("class", str), ("params", dict), ("arrays", list), ("checksum", str)):
        if not isinstance(meta.get(key), typ):
            raise _Bad(f"__meta__ field {key!r} is missing or not a {typ.__name__}")
    unknown = sorted(set(meta) - set(_META_FIELDS))
    if unknown:
        raise _Bad(f"__meta__ has unexpected fields {unknown}")
    if "meta_checksum" in meta and not isinstance(meta["meta_checksum"], str):
        raise _Bad("__meta__ field 'meta_checksum' is not a str")
    names = meta["arrays"]
    if not all(isinstance(n, str) and _NAME_RE.match(n) for n in names) or \
            len(set(names)) != len(names):
        raise _Bad("__meta__ field 'arrays' is not a list of distinct array names")
    return meta


def load(path):
    """Load an object saved with `save`.

    Raises FileNotFoundError (an OSError) if `path` does not exist, and
    ValueError naming the file and the problem if it is not an intact fastmlp
    file: truncated or corrupt, missing or bad metadata, a checksum mismatch
    (arrays or metadata),
    unknown class, a format_version newer than this fastmlp reads, or any
    array that would need pickle. Never unpickles anything.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:          # OSError (FileNotFoundError, ...) propagates
        magic = f.read(len(_ZIP_MAGIC))
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - _EOCD_SEARCH))
        tail = f.read()
    try:
        if magic != _ZIP_MAGIC:
            raise _Bad("not a fastmlp .npz file (no zip signature)")
        if not _ends_with_eocd(tail):
            raise _Bad("the end of the zip archive is damaged or followed by extra data "
                       "(a truncated, appended-to or otherwise damaged file)")
        try:
            arrays, meta = _read(path)
        except _Bad:
            raise
        except MemoryError:
            raise _Bad("an array is too large to load") from None
        except Exception as exc:       # zipfile, zlib, struct, numpy format errors ...
            raise _Bad(f"corrupt or truncated file ({type(exc).__name__}: {exc})") from None
        cls = _lookup(meta["class"])
        if cls is None:
            raise _Bad(f"unknown class {meta['class']!r} (known: "
                       f"{', '.join(sorted(set(_REGISTRY) | set(_PROVIDERS))) or 'none'})")
        if "meta_checksum" in meta and _meta_checksum(meta) != meta["meta_checksum"]:
            raise _Bad("checksum mismatch: the metadata (class, hyperparameters) are corrupt")
        try:
            return cls._from_state(meta["params"], arrays)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise _Bad(f"inconsistent {meta['class']} state ({type(exc).__name__}: {exc})") \
                from None
        except (MemoryError, OverflowError) as exc:
            raise _Bad(f"the {meta['class']} it describes cannot be built "
                       f"({type(exc).__name__}: {exc})") from None
    except _Bad as exc:
        raise ValueError(f"fastmlp.load({path!r}): {exc}") from None


_EOCD_SIG = b"PK\x05\x06"
_EOCD_SEARCH = 22 + 0xFFFF      # the end record (22 bytes) and the longest zip comment


def _ends_with_eocd(tail):
    """True when `tail` (the file's last bytes) ends exactly with a zip
    end-of-central-directory record and its comment. zipfile itself also
    accepts bytes after the archive; fastmlp writes none, so they mean damage."""
    pos = tail.rfind(_EOCD_SIG)
    while pos >= 0:
        if pos + 22 <= len(tail) and \
                pos + 22 + int.from_bytes(tail[pos + 20:pos + 22], "little") == len(tail):
            return True
        pos = tail.rfind(_EOCD_SIG, 0, pos)
    return False


def _lookup(name):
    cls = _REGISTRY.get(name)
    if cls is None and name in _PROVIDERS:
        importlib.import_module(_PROVIDERS[name])
        cls = _REGISTRY.get(name)
    return cls


def _read(path):
    npz = np.load(path, allow_pickle=False)
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise _Bad("not a fastmlp .npz file")
    with npz:
        _check_member_sizes(npz.zip)
        if _META not in npz.files:
            raise _Bad("no __meta__ array: not a fastmlp file")
        meta = _parse_meta(npz[_META])
        names = meta["arrays"]
        present = [n for n in npz.files if n != _META]
        if sorted(present) != sorted(names):
            raise _Bad(f"the file holds arrays {sorted(present)} but __meta__ lists "
                       f"{sorted(names)}")
        arrays = {}
        for name in names:
            a = npz[name]
            if not isinstance(a, np.ndarray):
                raise _Bad(f"member {name!r} is not an array")
            arrays[name] = a
    if _checksum(names, arrays) != meta["checksum"]:
        raise _Bad("checksum mismatch: the file is corrupt")
    return arrays, meta
