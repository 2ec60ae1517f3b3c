"""The nn examples run against the installed fastmlp (subprocess, cwd=tmp_path)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(name, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_xor_2_2_1(tmp_path):
    out = _run("xor_2_2_1.py", tmp_path)
    assert re.search(r"^accuracy 1\.00$", out, re.M), out
    rows = re.findall(r"^([01])  ([01])   ([01])\s+\S+\s+([01])$", out, re.M)
    assert len(rows) == 4
    for a, b, t, p in rows:
        assert int(t) == int(a) ^ int(b) and p == t


def test_softmax_regression_digits(tmp_path):
    out = _run("softmax_regression_digits.py", tmp_path)
    acc = float(re.search(r"^test accuracy ([0-9.]+)$", out, re.M).group(1))
    assert acc >= 0.94, out


def test_digits_mlp(tmp_path):
    out = _run("digits_mlp.py", tmp_path)
    acc = float(re.search(r"^test accuracy ([0-9.]+)$", out, re.M).group(1))
    assert acc >= 0.96, out
    assert "reloaded predictions identical: True" in out
    assert (tmp_path / "digits_mlp.npz").exists()


def test_two_layer_seed05(tmp_path):
    out = _run("two_layer_seed05.py", tmp_path)
    diff = float(re.search(r"hand-derived vs backward: max abs difference (\S+)", out).group(1))
    assert diff < 1e-12
    fd = float(re.search(r"finite differences: max relative error (\S+)", out).group(1))
    assert fd < 1e-4
    w = float(re.search(r"weights after training: max abs difference (\S+)", out).group(1))
    assert w < 1e-10
    losses = [float(v) for v in re.findall(r"^epoch\s+\d+\s+loss (\S+)$", out, re.M)]
    assert len(losses) == 10 and losses[-1] < losses[0]
